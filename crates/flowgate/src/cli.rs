//! The command line as clap types. No logic lives here: `settings.rs` turns these
//! raw values into validated ones and `commands/` acts on those.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "flowgate",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FLOWGATE_COMMIT"), ")"),
    about = "Release manager for Prefect flows: immutable builds, a ledger of what runs where, promotion and rollback.",
    after_help = r#"Examples:
  flowgate init
  flowgate build
  flowgate release --all --env qa --build HEAD
  flowgate promote --from qa --to prod --reason "qa looked good"
  flowgate status

Each command's --help shows examples of its own; `flowgate man` prints the manual."#
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
    #[command(after_help = r#"Examples:
  flowgate init
  flowgate init --from-prefect-yaml prefect.yaml --name acme-flows"#)]
    Init(InitArgs),
    /// Pack the project's code into a content-addressed bundle, upload it and record the build.
    #[command(after_help = r#"Examples:
  flowgate build
  flowgate build --image ghcr.io/acme/flows:3f2a9c1
  flowgate build --image etl-daily=ghcr.io/acme/etl:3f2a9c1 --allow-dirty"#)]
    Build(BuildArgs),
    /// List builds, newest first.
    #[command(after_help = r#"Examples:
  flowgate builds
  flowgate builds --limit 5 --json"#)]
    Builds(BuildsArgs),
    /// Show one build with its manifest summary.
    #[command(after_help = r#"Examples:
  flowgate show HEAD
  flowgate show b7e4c19a"#)]
    Show(ShowArgs),
    /// Point flows in an environment at a build.
    #[command(after_help = r#"Examples:
  flowgate release etl-daily --env qa --build HEAD
  flowgate release --all --env prod --build 3f2a9c --reason "fix #42"
  flowgate release report cleanup --env qa --build main --dry-run"#)]
    Release(ReleaseArgs),
    /// Release into one environment exactly the builds current in another.
    #[command(after_help = r#"Examples:
  flowgate promote --from qa --to prod --reason "qa green since Monday"
  flowgate promote --from qa --to prod etl-daily --dry-run"#)]
    Promote(PromoteArgs),
    /// Move flows back to their previous (or a named) revision.
    #[command(after_help = r#"Examples:
  flowgate rollback etl-daily --env prod --reason "wrong totals since 3f2a9c"
  flowgate rollback etl-daily report --env prod --to 12 --reason "back to last week""#)]
    Rollback(RollbackArgs),
    /// The matrix of flows × environments: build, commit, age.
    #[command(after_help = r#"Examples:
  flowgate status
  flowgate status --env prod --json"#)]
    Status(StatusArgs),
    /// The revisions of one flow in one environment.
    #[command(after_help = r#"Examples:
  flowgate history etl-daily --env prod
  flowgate history etl-daily --env qa --limit 5"#)]
    History(HistoryArgs),
    /// Which flows differ between two environments, with commits and changed files.
    #[command(after_help = r#"Examples:
  flowgate diff qa prod"#)]
    Diff(DiffArgs),
    /// Fetch, verify and unpack a build's bundle; prints the directory.
    #[command(after_help = r#"Examples:
  flowgate pull HEAD
  # On a worker, as a deployment's pull step runs it:
  flowgate pull b7e4c19a2f03d5e86a11 --store s3://acme-flowgate/artifacts"#)]
    Pull(PullArgs),
    /// The deployments sync would create, update (field by field) or leave alone.
    #[command(after_help = r#"Examples:
  flowgate plan --env qa
  flowgate plan --env prod --json"#)]
    Plan(PlanArgs),
    /// Make the env's Prefect server match the ledger (env: --env, else FLOWGATE_ENV, else your personal env).
    #[command(after_help = r#"Examples:
  flowgate sync --env qa
  flowgate sync --env prod --prune --create-work-pools"#)]
    Sync(SyncArgs),
    /// The build, commit and image a Prefect flow run actually executed.
    #[command(after_help = r#"Examples:
  flowgate which 0b6e8c2e-6a53-4c1f-9f58-2d1f7a3e9c41 --env prod"#)]
    Which(WhichArgs),
    /// Approve a build for an environment; its `approval` gate counts approvals.
    #[command(after_help = r#"Examples:
  flowgate approve HEAD --env prod --reason "reviewed in #123"
  flowgate approve 3f2a9c etl-daily report --env prod --reason "checked the totals""#)]
    Approve(ApproveArgs),
    /// Gradual promotion into one environment: waves of flows, each released, synced and verified by flow runs.
    #[command(subcommand)]
    #[command(after_help = r#"Examples:
  flowgate rollout start --to prod --from qa --reason "weekly promotion"
  flowgate rollout status --env prod
  flowgate rollout abort --env prod --reason "wave 2 runs hang""#)]
    Rollout(RolloutCommand),
    /// Check that the ledger and the artifact store agree; exit 1 lists every problem.
    #[command(after_help = r#"Examples:
  flowgate fsck
  flowgate fsck --repair --grace 2h --json"#)]
    Fsck(FsckArgs),
    /// Delete builds nothing keeps, then store objects no build references (never younger than --grace).
    #[command(after_help = r#"Examples:
  flowgate gc --keep-last 10 --keep-days 30 --dry-run
  flowgate gc --keep-last 10 --keep-days 30 --grace 2h"#)]
    Gc(GcArgs),
    /// Pin a build so gc keeps it, or unpin it with --remove.
    #[command(after_help = r#"Examples:
  flowgate pin 3f2a9c --reason "audit of INC-42"
  flowgate pin --remove 3f2a9c"#)]
    Pin(PinArgs),
    /// List pinned builds with who pinned them and why.
    #[command(after_help = r#"Examples:
  flowgate pins --json"#)]
    Pins,
    /// Print a shell completion script generated from this command line.
    #[command(after_help = r#"Examples:
  flowgate completions bash > ~/.local/share/bash-completion/completions/flowgate
  flowgate completions zsh > ~/.zfunc/_flowgate   # with fpath+=(~/.zfunc) in ~/.zshrc
  flowgate completions fish > ~/.config/fish/completions/flowgate.fish"#)]
    Completions(CompletionsArgs),
    /// Print flowgate's man page (roff), or write it and one page per subcommand into a directory.
    #[command(after_help = r#"Examples:
  flowgate man | man -l -
  flowgate man --dir ~/.local/share/man/man1"#)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write flowgate.1 and one page per subcommand (flowgate-release.1, ...) into DIR instead of printing flowgate.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The build: id or prefix, commit or git ref.
    pub build: String,
    /// Approve for these flows only (default: every flow).
    pub flows: Vec<String>,
    #[command(flatten)]
    pub env: EnvArg,
    /// Why; recorded with the approval.
    #[arg(long, required = true)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout into --to, from the builds current in --from or one --build; drives it to the end unless --detach.
    #[command(after_help = r#"Examples:
  flowgate rollout start --to prod --from qa --reason "weekly promotion"
  flowgate rollout start --to prod --from qa --dry-run
  flowgate rollout start --to prod --build 3f2a9c etl-daily --detach"#)]
    Start(RolloutStartArgs),
    /// The env's active (else latest) rollout: waves, moves, verification runs.
    #[command(after_help = r#"Examples:
  flowgate rollout status --env prod
  flowgate rollout status --env prod --json"#)]
    Status(RolloutArgs),
    /// Take one step of the env's active rollout.
    #[command(after_help = r#"Examples:
  flowgate rollout advance --env prod"#)]
    Advance(RolloutArgs),
    /// Stop the env's active rollout. Waves already released stay released (roll them back with `flowgate rollback`); verification runs are left alone.
    #[command(after_help = r#"Examples:
  flowgate rollout abort --env prod --reason "wave 2 runs hang""#)]
    Abort(RolloutAbortArgs),
    /// Drive the env's active rollout until it ends; safe to kill and restart at any moment.
    #[command(after_help = r#"Examples:
  flowgate rollout watch --env prod
  flowgate rollout watch --env prod --interval 10"#)]
    Watch(RolloutWatchArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from", "build"])))]
pub struct RolloutStartArgs {
    /// The env the rollout goes into.
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Roll out the builds current in this env.
    #[arg(long, value_name = "ENV")]
    pub from: Option<String>,
    /// Roll out this build (id or prefix, commit or git ref).
    #[arg(long, value_name = "BUILD")]
    pub build: Option<String>,
    /// Flows to roll out (default: every flow of the source).
    pub flows: Vec<String>,
    /// Why; recorded on every move of the rollout.
    #[arg(long)]
    pub reason: Option<String>,
    /// Start even though gates refuse, when the env allows it; needs --reason.
    #[arg(long, requires = "reason")]
    pub override_gates: bool,
    /// Show the waves and the gates' verdicts and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Record the rollout and return; `flowgate rollout watch` drives it.
    #[arg(long)]
    pub detach: bool,
    /// Seconds between polls of verification runs.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    pub interval: u64,
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub env: EnvArg,
}

#[derive(Debug, Args)]
pub struct RolloutAbortArgs {
    #[command(flatten)]
    pub env: EnvArg,
    /// Why; recorded on the rollout.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RolloutWatchArgs {
    #[command(flatten)]
    pub env: EnvArg,
    /// Seconds between polls of verification runs.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    pub interval: u64,
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
    /// Move even though gates refuse, when the env's policy has `allow_override = true`; needs --reason, recorded in the history.
    #[arg(long, requires = "reason")]
    pub override_gates: bool,
}

impl MoveArgs {
    /// The reason to record when gates are overridden.
    pub fn override_reason(&self) -> Option<&str> {
        self.override_gates.then_some(self.reason.as_deref()).flatten()
    }
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

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Delete leftovers of killed uploads and objects no build references, when older than --grace.
    /// Never writes the ledger, never uploads anything.
    #[arg(long)]
    pub repair: bool,
    /// Objects younger than this are never deleted: a build may still be uploading them (90s, 30m, 1h, 1d).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub grace: String,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep the builds of the last N revisions of every flow in every env.
    #[arg(long, value_name = "N")]
    pub keep_last: u32,
    /// Keep builds made in the last D days.
    #[arg(long, value_name = "D")]
    pub keep_days: u32,
    /// Objects and builds younger than this are never deleted: a build may still be uploading them (90s, 30m, 1h, 1d).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub grace: String,
    /// Show what would be deleted and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The build: id or prefix, commit or git ref.
    pub build: String,
    /// Why it must be kept; recorded with the pin.
    #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
    pub reason: Option<String>,
    /// Unpin the build instead.
    #[arg(long)]
    pub remove: bool,
}
