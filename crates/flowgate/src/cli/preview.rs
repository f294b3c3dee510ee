//! `flowgate preview up|down|list`.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum PreviewCommand {
    /// Open (or bring up to date) a branch's preview env: the flows whose code differs from --from's, released at the branch's build, schedules paused.
    #[command(after_help = r#"Examples:
  flowgate preview up                          # the branch checked out, like your env
  flowgate preview up --branch feature/x --from qa --ttl 3d
  flowgate preview up --branch feature/x --from qa --schedules
  flowgate preview up --branch "$BRANCH" --build HEAD --from qa  # in CI"#)]
    Up(PreviewUpArgs),
    /// Close a branch's preview: its deployments are deleted on the Prefect server; its history stays in the ledger. A branch without an open preview is no error (CI closes on every merge).
    #[command(after_help = r#"Examples:
  flowgate preview down
  flowgate preview down --branch feature/x"#)]
    Down(PreviewBranchArgs),
    /// The project's open previews (with --all, the closed ones too).
    #[command(after_help = r#"Examples:
  flowgate preview list
  flowgate preview list --all --json"#)]
    List(PreviewListArgs),
}

#[derive(Debug, Args)]
pub struct PreviewBranchArgs {
    /// The branch (default: the one checked out).
    #[arg(long)]
    pub branch: Option<String>,
}

#[derive(Debug, Args)]
pub struct PreviewUpArgs {
    #[command(flatten)]
    pub branch: PreviewBranchArgs,
    /// The env the preview is placed like (its Prefect server and work pools) and compared with (default: FLOWGATE_ENV, else your personal dev env).
    #[arg(long, value_name = "ENV")]
    pub from: Option<String>,
    /// The build to preview, by commit, tag or build id (default: the branch's head; in CI, where the branch may not exist as a local ref, the commit checked out: `--build HEAD`).
    #[arg(long, value_name = "REF")]
    pub build: Option<String>,
    /// How long the preview lives before `flowgate gc` closes it.
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub ttl: String,
    /// Run the deployments' schedules (default: paused).
    #[arg(long)]
    pub schedules: bool,
    /// Create missing work pools (type: `work_pool_type`, default `process`) when syncing.
    #[arg(long)]
    pub create_work_pools: bool,
}

#[derive(Debug, Args)]
pub struct PreviewListArgs {
    /// Also closed previews.
    #[arg(long)]
    pub all: bool,
}
