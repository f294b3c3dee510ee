//! The arguments of the commands that build, inspect and sync: everything but
//! moves, gates and maintenance.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Import the deployments of an existing prefect.yaml as flows.
    #[arg(long, value_name = "FILE")]
    pub from_prefect_yaml: Option<PathBuf>,
    /// Project name (default: the prefect.yaml's `name` when importing one, else the directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite an existing flowgate.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Image for every flow (`REF`) or for one flow (`FLOW=REF`); repeatable. Overrides the configured template.
    #[arg(long, value_name = "REF|FLOW=REF")]
    pub image: Vec<String>,
    /// Build even when tracked files have uncommitted changes.
    #[arg(long)]
    pub allow_dirty: bool,
}

#[derive(Debug, Args)]
pub struct BuildsArgs {
    /// How many builds to list.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A build id or unique prefix, a commit sha or prefix, or a git ref.
    pub build: String,
    /// Also compare each flow with this build (an older one, say): code, settings and parameter contract.
    #[arg(long, value_name = "BUILD")]
    pub against: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnvArg {
    /// Environment (default: FLOWGATE_ENV, else your personal dev env).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this environment.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Every project in the ledger, each with its own flows and envs (what the
    /// ledger records; no Prefect server is read).
    #[arg(long, conflicts_with = "env")]
    pub all_projects: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub flow: String,
    #[command(flatten)]
    pub env: EnvArg,
    /// How many revisions to show (default: all).
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Build id (or, inside a project, any BUILD reference).
    pub build: String,
    /// Artifact store URL (default: the project's).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Expected bundle digest: checked against the build record.
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// Cache directory (default: FLOWGATE_CACHE_DIR, else $XDG_CACHE_HOME/flowgate/bundles).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct WhichArgs {
    /// The flow run's id (a UUID).
    pub flow_run_id: String,
    #[command(flatten)]
    pub env: EnvArg,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub env: EnvArg,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub env: EnvArg,
    /// Delete this env's flowgate deployments whose flow is no longer released here.
    #[arg(long)]
    pub prune: bool,
    /// Create missing work pools (type: `work_pool_type`, default `process`).
    #[arg(long)]
    pub create_work_pools: bool,
}
