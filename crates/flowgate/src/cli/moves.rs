//! `release`, `promote` and `rollback`, and the flags every move shares.

use clap::Args;

use super::EnvArg;

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
    /// With --all, also move flows the build leaves unchanged (same code, settings and image).
    #[arg(long, requires = "all")]
    pub force: bool,
    #[command(flatten)]
    pub moves: MoveArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[arg(long, value_name = "ENV")]
    pub from: String,
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Flows to promote (default: every flow released in --from, except those whose code, settings and image --to already runs).
    pub flows: Vec<String>,
    /// Without flows named, also move flows whose code, settings and image --to already runs.
    #[arg(long)]
    pub force: bool,
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
