//! `flowgate plan --env ENV`: what sync would create, update (field by field,
//! old → new), adopt, leave alone, refuse (another project's deployment) and
//! could prune.

use anyhow::Result;
use flowgate_prefect::{Action, Plan};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::deploy::{self, Target};
use crate::cli::PlanArgs;
use crate::client::ServerClient;
use crate::exit::usage;
use crate::printer::Printer;
use crate::project::Project;

/// What `plan --json` prints, and a server answers for a protected env.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub env: String,
    pub deployments: Vec<PlannedView>,
    /// This project's deployments of this env whose flow left the config or the ledger (`sync --prune` deletes them).
    pub prune: Vec<PruneView>,
    /// flowgate deployments without a project tag, of this env and prefix, that
    /// nothing here wants: never adopted or pruned, only reported.
    pub unclaimed: Vec<PruneView>,
    /// Work pools the server lacks, with the type `--create-work-pools` would create.
    #[schema(value_type = Vec<Vec<String>>)]
    pub missing_work_pools: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PlannedView {
    pub name: String,
    pub flow_name: String,
    pub version: String,
    /// `create`, `update`, `unchanged`, `adopt` (flowgate's from before projects:
    /// sync tags it as this project's) or `foreign` (another project's or no
    /// project's: sync refuses, exit 3).
    pub action: String,
    pub id: Option<String>,
    /// Who owns a `foreign` deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub changes: Vec<ChangeView>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ChangeView {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PruneView {
    pub name: String,
    pub flow_name: String,
    pub id: String,
}

pub async fn run(project: &Project, args: PlanArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    if let Some(server) = ServerClient::from_env().await? {
        let path = format!("/projects/{}/envs/{}/plan", project.config.project_name(), env.ledger_name);
        let view: PlanView = server.get(&path).await?;
        return printer.result(&view, |out| render(out, &view));
    }
    let target = server_target(&env)?;
    let ledger = project.ledger().await?;
    let (plan, desired) = deploy::plan(project, ledger.as_ref(), &target).await?;
    let view = view(&plan, desired.missing_pools.into_iter().collect());
    printer.result(&view, |out| render(out, &view))
}

/// The env's server, or a usage error for a ledger-only env.
pub fn server_target(env: &flowgate_config::SelectedEnv) -> Result<Target> {
    Target::of(env)?.ok_or_else(|| {
        usage(format!(
            "Env `{}` has no `prefect_api_url`: it is ledger-only, so there is nothing to plan or sync",
            env.config_name
        ))
    })
}

pub fn view(plan: &Plan, missing_work_pools: Vec<(String, String)>) -> PlanView {
    let deployments = plan
        .deployments
        .iter()
        .map(|p| {
            let changed = |changes: &[flowgate_prefect::FieldChange]| -> Vec<ChangeView> {
                changes
                    .iter()
                    .map(|c| ChangeView { field: c.field.to_string(), old: c.old.clone(), new: c.new.clone() })
                    .collect()
            };
            let (action, id, changes, owner) = match &p.action {
                Action::Create => ("create", None, Vec::new(), None),
                Action::Update { id, changes } => ("update", Some(id.clone()), changed(changes), None),
                Action::Adopt { id, changes } => ("adopt", Some(id.clone()), changed(changes), None),
                Action::Unchanged { id } => ("unchanged", Some(id.clone()), Vec::new(), None),
                Action::Foreign { id, owner } => ("foreign", Some(id.clone()), Vec::new(), Some(owner.to_string())),
            };
            PlannedView {
                name: p.desired.name.clone(),
                flow_name: p.desired.flow_name.clone(),
                version: p.desired.version.clone(),
                action: action.to_string(),
                id,
                owner,
                changes,
            }
        })
        .collect();
    let listed = |list: &[flowgate_prefect::PruneCandidate]| -> Vec<PruneView> {
        list.iter()
            .map(|c| PruneView { name: c.name.clone(), flow_name: c.flow_name.clone(), id: c.id.clone() })
            .collect()
    };
    PlanView {
        env: plan.env.to_string(),
        deployments,
        prune: listed(&plan.prune),
        unclaimed: listed(&plan.unclaimed),
        missing_work_pools,
    }
}

fn render(out: &mut String, view: &PlanView) {
    if view.deployments.is_empty() && view.prune.is_empty() && view.unclaimed.is_empty() {
        out.push_str(&format!("Env `{}`: nothing released, nothing to sync.\n", view.env));
        return;
    }
    for d in &view.deployments {
        let what = match (d.action.as_str(), &d.owner) {
            ("adopt", _) => "adopt (synced before projects; sync tags it as this project's)".to_string(),
            ("foreign", Some(owner)) => format!("REFUSED (owned by {owner}; sync writes nothing)"),
            (action, _) => action.to_string(),
        };
        out.push_str(&format!("{what}: {}/{} (version {})\n", d.flow_name, d.name, d.version));
        for c in &d.changes {
            out.push_str(&format!("    {}: {} → {}\n", c.field, compact(&c.old), compact(&c.new)));
        }
    }
    for p in &view.prune {
        out.push_str(&format!(
            "prune candidate: {}/{} (flow no longer released here; `sync --prune` deletes it)\n",
            p.flow_name, p.name
        ));
    }
    for p in &view.unclaimed {
        out.push_str(&format!(
            "unclaimed: {}/{} (flowgate's, of this env, without a project tag; never adopted or pruned)\n",
            p.flow_name, p.name
        ));
    }
    for (pool, pool_type) in &view.missing_work_pools {
        out.push_str(&format!("missing work pool: `{pool}` (`--create-work-pools` creates it as `{pool_type}`)\n"));
    }
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(119).collect::<String>())
    } else {
        text
    }
}
