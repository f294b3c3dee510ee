//! What flowgate asks git: the commit, branch and dirty state of a build, the
//! tracked files, refs to resolve, and commit ranges for `diff`. It runs the `git`
//! binary, as users' own tooling does, so every repository layout git supports works.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

/// HEAD and the working tree as `git status` sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub commit: String,
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    /// Tracked paths that differ from HEAD, relative to the root.
    pub dirty: Vec<String>,
}

impl Repo {
    /// The repository that holds `dir`, or an error saying `dir` is not in one.
    pub fn discover(dir: &Path) -> Result<Self> {
        let out = run(dir, &["rev-parse", "--show-toplevel"])
            .with_context(|| format!("`{}` is not inside a git repository", dir.display()))?;
        Ok(Self { root: PathBuf::from(out.trim_end()) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn git(&self, args: &[&str]) -> Result<String> {
        run(&self.root, args)
    }

    /// The commit and branch of HEAD and the tracked files that differ from it
    /// (staged or not), from one `git status`. A rename or copy lists both paths.
    pub fn status(&self) -> Result<Status> {
        // Without preloading the index on threads: build stats every file itself
        // at the same time, so git's extra threads would only compete for the cores.
        let args =
            ["-c", "core.preloadIndex=false", "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=no"];
        let out = self.git(&args)?;
        parse_status(&out)
    }

    /// Who made HEAD, as `name <email>`.
    pub fn author(&self) -> Result<String> {
        Ok(self.git(&["log", "-1", "--format=%an <%ae>"])?.trim().to_string())
    }

    /// Every tracked file, '/'-separated, relative to the root; submodules and
    /// symlinks are left out because a bundle holds regular files only.
    pub fn tracked_files(&self) -> Result<Vec<String>> {
        let out = self.git(&["ls-files", "-z", "--stage"])?;
        Ok(out
            .split('\0')
            .filter_map(|line| {
                let (meta, path) = line.split_once('\t')?;
                let mode = meta.split(' ').next()?;
                matches!(mode, "100644" | "100755").then(|| path.to_string())
            })
            .collect())
    }

    /// The branch checked out; `None` on a detached HEAD.
    pub fn current_branch(&self) -> Option<String> {
        let out = self.git(&["symbolic-ref", "--quiet", "--short", "HEAD"]).ok()?;
        Some(out.trim().to_string()).filter(|b| !b.is_empty())
    }

    /// The commit a ref names, if it names one.
    pub fn resolve_commit(&self, reference: &str) -> Option<String> {
        if reference.starts_with('-') {
            return None;
        }
        let spec = format!("{reference}^{{commit}}");
        self.git(&["rev-parse", "--verify", "--quiet", &spec]).ok().map(|s| s.trim().to_string())
    }

    /// The repository's first commit (the smallest sha when histories were
    /// merged): the same in every clone, different in another repository.
    /// `None` before the first commit.
    pub fn root_commit(&self) -> Option<String> {
        let out = self.git(&["rev-list", "--max-parents=0", "HEAD"]).ok()?;
        out.lines().map(str::trim).filter(|l| !l.is_empty()).min().map(str::to_string)
    }

    /// The URL of the `origin` remote, if there is one, without the user and
    /// password a URL may carry (`https://user:token@host/...`): a token must
    /// not reach the ledger, and two clones with different tokens are one repository.
    pub fn origin_remote(&self) -> Option<String> {
        let out = self.git(&["remote", "get-url", "origin"]).ok()?;
        Some(without_userinfo(out.trim())).filter(|url| !url.is_empty())
    }

    /// One-line summaries of the commits in `from..to`, newest first; `None` when
    /// either commit is unknown here (a shallow clone, another repository).
    pub fn log_range(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let range = format!("{from}..{to}");
        self.git(&["log", "--format=%h %s", &range]).ok().map(|out| out.lines().map(str::to_string).collect())
    }
}

/// Parses `git status --porcelain=v2 --branch -z`: `# branch.*` headers, then
/// one entry per changed path (`1` changed, `2` renamed or copied with its source
/// path in the next field, `u` unmerged); the path is the last field of an entry.
fn parse_status(out: &str) -> Result<Status> {
    let (mut commit, mut branch, mut dirty) = (None, None, Vec::new());
    let mut fields = out.split('\0').filter(|e| !e.is_empty());
    while let Some(entry) = fields.next() {
        if let Some(oid) = entry.strip_prefix("# branch.oid ") {
            commit = (oid != "(initial)").then(|| oid.to_string());
            continue;
        }
        if let Some(head) = entry.strip_prefix("# branch.head ") {
            branch = (head != "(detached)").then(|| head.to_string());
            continue;
        }
        let before_path = match entry.as_bytes().first() {
            Some(b'1') => 8,
            Some(b'2') => 9,
            Some(b'u') => 10,
            _ => continue,
        };
        if let Some(path) = entry.splitn(before_path + 1, ' ').nth(before_path) {
            dirty.push(path.to_string());
        }
        if entry.starts_with('2') {
            dirty.extend(fields.next().map(str::to_string));
        }
    }
    let commit = commit.context("The repository has no commit yet")?;
    Ok(Status { commit, branch, dirty })
}

fn run(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .with_context(|| "Failed to run `git`; is it installed and on PATH?".to_string())?;
    if !output.status.success() {
        bail!("`git {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    String::from_utf8(output.stdout).context("git printed a path that is not UTF-8")
}

/// `scheme://user:secret@host/path` → `scheme://host/path`; scp-like remotes
/// (`git@host:path`) name a login, not a secret, and stay as they are.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_commit_branch_and_both_paths_of_a_rename() {
        let out = "# branch.oid 0123abcd\0# branch.head main\0\
                   1 .M N... 100644 100644 100644 aa bb lib/a b.py\0\
                   2 R. N... 100644 100644 100644 aa aa R100 new name.py\0old name.py\0\
                   u UU N... 100644 100644 100644 100644 aa bb cc conflict.py\0";
        let status = parse_status(out).unwrap();
        assert_eq!(status.commit, "0123abcd");
        assert_eq!(status.branch.as_deref(), Some("main"));
        assert_eq!(status.dirty, ["lib/a b.py", "new name.py", "old name.py", "conflict.py"]);
    }

    #[test]
    fn status_of_a_detached_head_and_of_an_empty_repository() {
        let detached = parse_status("# branch.oid 0123abcd\0# branch.head (detached)\0").unwrap();
        assert_eq!((detached.branch, detached.dirty.len()), (None, 0));
        let empty = parse_status("# branch.oid (initial)\0# branch.head main\0").unwrap_err();
        assert_eq!(empty.to_string(), "The repository has no commit yet");
    }

    #[test]
    fn a_remote_is_claimed_without_its_credentials() {
        assert_eq!(
            without_userinfo("https://ci:ghp_secret@github.com/org/repo.git"),
            "https://github.com/org/repo.git"
        );
        assert_eq!(without_userinfo("ssh://git@host:22/org/repo"), "ssh://host:22/org/repo");
        assert_eq!(without_userinfo("git@github.com:org/repo.git"), "git@github.com:org/repo.git");
        assert_eq!(without_userinfo("https://github.com/org/a@b.git"), "https://github.com/org/a@b.git");
    }
}
