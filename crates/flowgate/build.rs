//! Names the commit the binary was built from, for `flowgate --version`:
//! `FLOWGATE_COMMIT` is the short sha (with `-dirty` when tracked files had
//! changes), or `FLOWGATE_BUILD_COMMIT` when the builder sets it (a wheel built
//! from a source archive has no git), or `unknown`.

use std::path::Path;
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
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", git_dir.join("packed-refs").display());
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", git_dir.join(branch).display());
        }
    }
}
