//! The command line as clap types. No logic lives here: `settings.rs` turns these
//! raw values into validated ones and `commands/` acts on those.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod gates;
mod maintenance;
mod moves;
mod preview;
mod project;
mod server;

pub use gates::*;
pub use maintenance::*;
pub use moves::*;
pub use preview::*;
pub use project::*;
pub use server::*;

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
  flowgate status --env prod --json
  flowgate status --all-projects"#)]
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
    /// Ephemeral envs for branches: each runs the flows its branch changed, placed like another env.
    #[command(subcommand)]
    #[command(after_help = r#"Examples:
  flowgate preview up --branch feature/x --from qa
  flowgate preview list
  flowgate preview down --branch feature/x"#)]
    Preview(PreviewCommand),
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
    /// Run the flowgate server: an HTTP API over one ledger, for every project in it.
    #[command(after_help = r#"Examples:
  flowgate serve --listen 0.0.0.0:8470 --ledger postgres://flowgate@db/flowgate
  flowgate serve --listen 127.0.0.1:0 --ledger sqlite://server.db
  flowgate serve --config /etc/flowgate/server.toml"#)]
    Serve(ServeArgs),
    /// What a server's operator runs where its ledger is reachable: API tokens.
    #[command(subcommand)]
    #[command(after_help = r#"Examples:
  flowgate admin token create --name ci --role releaser:qa --ledger sqlite://server.db
  flowgate admin token revoke ci --ledger sqlite://server.db"#)]
    Admin(AdminCommand),
    /// Keep a credential for a flowgate server: reads the token from standard input, checks it, stores it (mode 0600).
    #[command(after_help = r#"Examples:
  flowgate login --server https://flowgate.example.com   # paste the token, then Ctrl-D
  flowgate login --server http://127.0.0.1:8470 < token.txt"#)]
    Login(ServerArg),
    /// Forget the credential `flowgate login` stored for a server.
    #[command(after_help = r#"Examples:
  flowgate logout --server https://flowgate.example.com"#)]
    Logout(ServerArg),
    /// Who a flowgate server takes you for, and what your grants allow.
    #[command(after_help = r#"Examples:
  flowgate whoami --server https://flowgate.example.com
  flowgate whoami --server http://127.0.0.1:8470 --json   # FLOWGATE_TOKEN wins"#)]
    Whoami(ServerArg),
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
