//! Names the commit the binary was built from, for `flowgate --version`:
//! `FLOWGATE_COMMIT` is the short sha (with `-dirty` when tracked files had
//! changes), or `FLOWGATE_BUILD_COMMIT` when the builder sets it (a wheel built
//! from a source archive has no git), or `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=FLOWGATE_BUILD_COMMIT");
    let commit = std::env::var("FLOWGATE_BUILD_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let sha = git(&["rev-parse", "--short=12", "HEAD"])?;
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{sha}-dirty") } else { sha })
    });
    println!("cargo:rustc-env=FLOWGATE_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
    // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
    // The paths are relative to this crate: clones sharing one target directory
    // share this build script's fingerprint, and an absolute path would keep
    // watching the clone that ran it first.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let absolute = PathBuf::from(&git_dir);
        let git_dir = relative_to(&absolute, Path::new(&manifest_dir));
        let branch = git(&["symbolic-ref", "-q", "HEAD"]);
        // A path that does not exist would make cargo rerun this on every build.
        for file in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
            if absolute.join(file).exists() {
                println!("cargo:rerun-if-changed={}", git_dir.join(file).display());
            }
        }
    }
}

/// `path` as seen from `base` (both absolute): `../../.git` for this repository.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (path, base): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out: PathBuf = base[common..].iter().map(|_| "..").collect();
    out.extend(&path[common..]);
    out
}
