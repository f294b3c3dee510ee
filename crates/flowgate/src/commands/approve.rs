//! `flowgate approve BUILD --env ENV [FLOW...] --reason TEXT`: records who
//! approved which build for which env (and flows), for the `approval` gate.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::{Approval, Build, EnvName, FlowKey, Verified};
use flowgate_ledger::Ledger;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::cli::ApproveArgs;
use crate::client::{server_build_ref, ServerClient};
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::{actor, Project};
use crate::refs::resolve_build;

/// What `flowgate approve --json` prints, and the server answers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Approved {
    pub build: String,
    pub env: String,
    /// Empty: every flow.
    pub flows: Vec<FlowKey>,
    /// Who approved: in server mode the verified identity.
    pub actor: String,
    pub reason: String,
    /// False when this actor had already approved it (the first approval is kept).
    pub recorded: bool,
    /// How the server verified the actor; absent in direct mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
}

/// Who approves: a name the CLI found (direct mode), or the caller a server verified.
pub enum Who {
    Named(String),
    Verified(Verified),
}

/// Records the approval of `build` for `env`: one per flow, or one for every
/// flow when `flows` is empty. True when any of them is new.
pub async fn record_approvals(
    ledger: &dyn Ledger,
    env: &EnvName,
    build: &Build,
    flows: &[FlowKey],
    reason: &str,
    who: Who,
) -> Result<bool> {
    let (actor, verified) = match who {
        Who::Named(name) => (name, None),
        Who::Verified(verified) => (verified.subject.clone(), Some(verified)),
    };
    let scopes: Vec<Option<FlowKey>> =
        if flows.is_empty() { vec![None] } else { flows.iter().cloned().map(Some).collect() };
    let mut recorded = false;
    for flow in scopes {
        let approval = Approval {
            env: env.clone(),
            build: build.id.clone(),
            flow,
            actor: actor.clone(),
            reason: reason.to_string(),
            created_at: Utc::now(),
            verified: verified.clone(),
        };
        recorded |= ledger.record_approval(&approval).await?;
    }
    Ok(recorded)
}

async fn approve_directly(
    project: &Project,
    env: &EnvName,
    flows: Vec<FlowKey>,
    args: &ApproveArgs,
) -> Result<Approved> {
    let ledger = project.ledger().await?;
    let repo = Repo::discover(&project.root).ok();
    let build = resolve_build(ledger.as_ref(), repo.as_ref(), &args.build).await?;
    let who = actor(&project.root);
    let recorded =
        record_approvals(ledger.as_ref(), env, &build, &flows, &args.reason, Who::Named(who.clone())).await?;
    Ok(Approved {
        build: build.id.to_string(),
        env: env.to_string(),
        flows,
        actor: who,
        reason: args.reason.clone(),
        recorded,
        verified: None,
    })
}

pub async fn run(project: &Project, args: ApproveArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let flows = if args.flows.is_empty() { Vec::new() } else { project.flows(&args.flows)? };
    let result = match ServerClient::from_env().await? {
        Some(server) => {
            let body = json!({
                "build": server_build_ref(project, &args.build)?,
                "env": env.ledger_name,
                "flows": flows,
                "reason": args.reason,
            });
            server.post(&format!("/projects/{}/approvals", project.config.project_name()), &body).await?
        }
        None => approve_directly(project, &env.ledger_name, flows, &args).await?,
    };
    printer.result(&result, |out| {
        let scope = if result.flows.is_empty() {
            "every flow".to_string()
        } else {
            result.flows.iter().map(FlowKey::as_str).collect::<Vec<_>>().join(", ")
        };
        let verb = if result.recorded { "approved" } else { "had already approved" };
        out.push_str(&format!(
            "{} {verb} build {} for `{}` ({scope}): {}\n",
            result.actor, result.build, result.env, result.reason
        ));
    })
}
