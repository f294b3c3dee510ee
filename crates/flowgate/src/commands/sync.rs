//! `flowgate sync [--env ENV] [--prune] [--create-work-pools]`: make the env's
//! Prefect server match the ledger. The env is chosen as for every command
//! (`--env`, else FLOWGATE_ENV, else the personal env); a ledger-only env is a
//! usage error. Safe to repeat: a second run sends no write. With
//! `FLOWGATE_SERVER`, the server syncs an env it protects, with its own credentials.

use anyhow::Result;
use flowgate_prefect::{SyncOptions, SyncReport, PROJECT_TAG_PREFIX};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::deploy;
use super::plan::server_target;
use crate::cli::SyncArgs;
use crate::client::ServerClient;
use crate::printer::Printer;
use crate::project::Project;

/// What a sync did, as `sync --json` prints it (and a move's `sync`).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SyncView {
    pub env: String,
    pub created: Vec<String>,
    pub updated: Vec<UpdatedView>,
    pub unchanged: Vec<String>,
    /// flowgate deployments from before projects, now tagged as this project's.
    pub adopted: Vec<String>,
    /// flowgate deployments without a project tag that look like this env's and
    /// that nothing wants: reported, left alone.
    pub unclaimed: Vec<String>,
    pub pruned: Vec<String>,
    pub created_work_pools: Vec<String>,
    /// Write requests (POST/PATCH/DELETE) sent to the server: 0 when nothing changed.
    pub writes: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UpdatedView {
    pub name: String,
    pub fields: Vec<String>,
}

pub async fn run(project: &Project, args: SyncArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    if let Some(server) = ServerClient::from_env().await? {
        let path = format!("/projects/{}/envs/{}/sync", project.config.project_name(), env.ledger_name);
        let body = json!({ "prune": args.prune, "create_work_pools": args.create_work_pools });
        let view: SyncView = server.post(&path, &body).await?;
        return printer.result(&view, |out| render(out, &view));
    }
    let target = server_target(&env)?;
    let ledger = project.ledger().await?;
    let options = SyncOptions { prune: args.prune, create_work_pools: args.create_work_pools };
    let (_, report) = deploy::sync(project, ledger.as_ref(), &target, &options).await?;
    let view = view(&env.config_name, report, target.client.write_count());
    printer.result(&view, |out| render(out, &view))
}

pub fn view(env: &str, report: SyncReport, writes: u64) -> SyncView {
    SyncView {
        env: env.to_string(),
        created: report.created,
        updated: report
            .updated
            .into_iter()
            .map(|(name, fields)| UpdatedView { name, fields: fields.into_iter().map(String::from).collect() })
            .collect(),
        unchanged: report.unchanged,
        adopted: report.adopted,
        unclaimed: report.unclaimed,
        pruned: report.pruned,
        created_work_pools: report.created_work_pools,
        writes,
    }
}

pub fn render(out: &mut String, view: &SyncView) {
    for pool in &view.created_work_pools {
        out.push_str(&format!("created work pool `{pool}`\n"));
    }
    for name in &view.created {
        out.push_str(&format!("created `{name}`\n"));
    }
    for u in &view.updated {
        out.push_str(&format!("updated `{}`: {}\n", u.name, u.fields.join(", ")));
    }
    for name in &view.pruned {
        out.push_str(&format!("pruned `{name}`\n"));
    }
    for name in &view.adopted {
        out.push_str(&format!("adopted `{name}`: synced before projects existed, now tagged as this project's\n"));
    }
    for name in &view.unclaimed {
        out.push_str(&format!(
            "left alone `{name}`: a flowgate deployment of this env without a project tag that nothing here wants; \
             delete it, or tag it `{PROJECT_TAG_PREFIX}<project>` so that project may prune it\n"
        ));
    }
    out.push_str(&format!(
        "Env `{}` in sync: {} created, {} updated, {} unchanged, {} write(s).\n",
        view.env,
        view.created.len(),
        view.updated.len(),
        view.unchanged.len(),
        view.writes
    ));
}
