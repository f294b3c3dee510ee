//! The command line as clap types. No logic lives here: `settings.rs` turns these
//! raw values into validated ones and `commands/` acts on those.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "flowgate",
    version,
    about = "Release manager for Prefect flows: immutable builds, a ledger of what runs where, promotion and rollback."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Run as if started in DIR.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub directory: Option<PathBuf>,
    /// More log output on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starting flowgate.toml.
    Init(InitArgs),
    /// Pack the project's code into a content-addressed bundle, upload it and record the build.
    Build(BuildArgs),
    /// List builds, newest first.
    Builds(BuildsArgs),
    /// Show one build with its manifest summary.
    Show(ShowArgs),
    /// Point flows in an environment at a build.
    Release(ReleaseArgs),
    /// Release into one environment exactly the builds current in another.
    Promote(PromoteArgs),
    /// Move flows back to their previous (or a named) revision.
    Rollback(RollbackArgs),
    /// The matrix of flows × environments: build, commit, age.
    Status(StatusArgs),
    /// The revisions of one flow in one environment.
    History(HistoryArgs),
    /// Which flows differ between two environments, with commits and changed files.
    Diff(DiffArgs),
    /// Fetch, verify and unpack a build's bundle; prints the directory.
    Pull(PullArgs),
    /// The deployments sync would create, update (field by field) or leave alone.
    Plan(PlanArgs),
    /// Make the env's Prefect server match the ledger (env: --env, else FLOWGATE_ENV, else your personal env).
    Sync(SyncArgs),
    /// The build, commit and image a Prefect flow run actually executed.
    Which(WhichArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Import the deployments of an existing prefect.yaml as flows.
    #[arg(long, value_name = "FILE")]
    pub from_prefect_yaml: Option<PathBuf>,
    /// Project name (default: the directory's name).
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
}

#[derive(Debug, Args)]
pub struct EnvArg {
    /// Environment (default: FLOWGATE_ENV, else your personal dev env).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// Why; recorded in the history.
    #[arg(long)]
    pub reason: Option<String>,
    /// Show what would move and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Record the move in the ledger only; `flowgate sync` pushes it later.
    #[arg(long)]
    pub no_sync: bool,
    /// Create missing work pools (type: `work_pool_type`, default `process`) when syncing.
    #[arg(long)]
    pub create_work_pools: bool,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Flows to release.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub flows: Vec<String>,
    /// Release every flow of the project.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub env: EnvArg,
    /// The build: id or prefix, commit or prefix, or git ref.
    #[arg(long)]
    pub build: String,
    #[command(flatten)]
    pub moves: MoveArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[arg(long, value_name = "ENV")]
    pub from: String,
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Flows to promote (default: every flow released in --from).
    pub flows: Vec<String>,
    #[command(flatten)]
    pub moves: MoveArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(required = true)]
    pub flows: Vec<String>,
    #[command(flatten)]
    pub env: EnvArg,
    /// Revision to return to (default: the newest earlier revision with another build).
    #[arg(long, value_name = "REVISION")]
    pub to: Option<i64>,
    #[command(flatten)]
    pub moves: MoveArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this environment.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
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
