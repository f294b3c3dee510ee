//! Commands that look after the project rather than move flows: `completions`,
//! `man`, `fsck`, `gc` and `pin`.

use std::path::PathBuf;

use clap::Args;

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
