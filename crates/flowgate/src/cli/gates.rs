//! `approve` and `rollout`: the commands of gated, gradual promotion.

use clap::{Args, Subcommand};

use super::EnvArg;

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
    /// Flows to roll out (default: every flow of the source, except those whose code, settings and image --to already runs).
    pub flows: Vec<String>,
    /// Without flows named, also roll out flows whose code, settings and image --to already runs.
    #[arg(long)]
    pub force: bool,
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
