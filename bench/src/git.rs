//! Running git in generated projects with a fixed identity and fixed dates, so the
//! same tree always makes the same commit.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _, Result};

/// A git command in `dir` with a fixed author, committer and date.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

/// Run git with `args` in `dir`; fail with git's stderr.
pub fn run(dir: &Path, args: &[&str]) -> Result<String> {
    let output = command(dir).args(args).output().with_context(|| format!("Failed to run `git {}`", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`git {}` in `{}` failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `git init` + add everything + one commit.
pub fn init_and_commit(dir: &Path, message: &str) -> Result<()> {
    run(dir, &["init", "-q", "-b", "main"])?;
    run(dir, &["add", "."])?;
    run(dir, &["commit", "-q", "-m", message])?;
    Ok(())
}
