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

#[derive(Debug, Clone)]
pub struct Head {
    pub commit: String,
    pub branch: Option<String>,
    pub author: String,
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

    pub fn head(&self) -> Result<Head> {
        let commit = self.git(&["rev-parse", "--verify", "HEAD"]).context("The repository has no commit yet")?;
        let branch = self.git(&["symbolic-ref", "--quiet", "--short", "HEAD"]).ok().map(|b| b.trim().to_string());
        let author = self.git(&["log", "-1", "--format=%an <%ae>"])?;
        Ok(Head { commit: commit.trim().to_string(), branch, author: author.trim().to_string() })
    }

    /// Tracked files that differ from HEAD (staged or not), relative to the root.
    /// A rename or copy lists both paths (in `-z` output the source path is a
    /// field of its own, without the status columns).
    pub fn dirty_files(&self) -> Result<Vec<String>> {
        let out = self.git(&["status", "--porcelain=v1", "-z", "--untracked-files=no"])?;
        let mut files = Vec::new();
        let mut fields = out.split('\0').filter(|e| !e.is_empty());
        while let Some(entry) = fields.next() {
            let (Some(status), Some(path)) = (entry.get(..2), entry.get(3..)) else { continue };
            files.push(path.to_string());
            if status.contains(['R', 'C']) {
                files.extend(fields.next().map(str::to_string));
            }
        }
        Ok(files)
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

    /// The commit a ref names, if it names one.
    pub fn resolve_commit(&self, reference: &str) -> Option<String> {
        if reference.starts_with('-') {
            return None;
        }
        let spec = format!("{reference}^{{commit}}");
        self.git(&["rev-parse", "--verify", "--quiet", &spec]).ok().map(|s| s.trim().to_string())
    }

    /// One-line summaries of the commits in `from..to`, newest first; `None` when
    /// either commit is unknown here (a shallow clone, another repository).
    pub fn log_range(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let range = format!("{from}..{to}");
        self.git(&["log", "--format=%h %s", &range]).ok().map(|out| out.lines().map(str::to_string).collect())
    }
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
