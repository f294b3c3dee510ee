//! The generated project tree of the build and pull benchmarks: N files of mixed
//! kinds and sizes adding up to a target total, deterministic from a seed, committed
//! in a git repository with a one-flow `flowgate.toml`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::content::{self, Kind};
use crate::rng::Rng;

/// Bump when the generator changes, so cached trees are regenerated.
const GENERATOR_VERSION: u32 = 2;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct TreeSpec {
    pub files: usize,
    pub total_bytes: u64,
    pub seed: u64,
}

/// One file of the plan.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    pub executable: bool,
    index: u64,
}

/// Summary of a generated tree.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub blob_bytes: u64,
}

/// The fixed files every project has: config, ignore file, the flow, pyproject.
fn fixed_files() -> Vec<(&'static str, String)> {
    vec![
        ("flowgate.toml", "[project]\nname = \"bench\"\n\n[flows.f]\nentrypoint = \"flows/f.py:f\"\n".to_string()),
        (".gitignore", ".flowgate/\n".to_string()),
        (
            "flows/f.py",
            "from prefect import flow\n\n\n@flow(name=\"f\")\ndef f(days: int = 1) -> None:\n    print(days)\n"
                .to_string(),
        ),
        (
            "pyproject.toml",
            "[project]\nname = \"bench\"\nversion = \"0.1.0\"\ndependencies = [\"prefect>=3\"]\n".to_string(),
        ),
    ]
}

/// The generated files: kinds and sizes drawn from the seed, then sizes scaled so
/// the whole tree (fixed files included) adds up to `spec.total_bytes`.
pub fn plan(spec: &TreeSpec) -> Vec<PlannedFile> {
    let fixed = fixed_files();
    let count = spec.files.saturating_sub(fixed.len());
    let fixed_bytes: u64 = fixed.iter().map(|(_, c)| c.len() as u64).sum();
    let mut counters = [0u64; 5];
    let mut files: Vec<PlannedFile> = (0..count as u64)
        .map(|index| {
            let mut rng = Rng::derive(spec.seed, index);
            let roll = rng.below(100);
            let (kind, size, slot) = match roll {
                // One file in a thousand is a large data extract, as repositories tend to have.
                _ if index % 1000 == 999 => (Kind::Csv, rng.log_uniform(1_000_000, 4_000_000), 1),
                0..=59 => (Kind::Python, rng.log_uniform(300, 24_000), 0),
                60..=74 => (Kind::Csv, rng.log_uniform(1_000, 160_000), 1),
                75..=84 => (Kind::Json, rng.log_uniform(500, 64_000), 2),
                85..=92 => (Kind::Markdown, rng.log_uniform(200, 8_000), 3),
                _ => (Kind::Blob, rng.log_uniform(1_000, 128_000), 4),
            };
            let n = counters[slot];
            counters[slot] += 1;
            let name = format!("{}_{}_{index}", rng.pick(&["core", "io", "util", "etl", "api", "db"]), n % 97);
            let executable = kind == Kind::Python && rng.below(200) == 0;
            let dir = match kind {
                Kind::Python if executable => "bin".to_string(),
                Kind::Python => format!("src/pkg_{:03}", n / 100),
                Kind::Csv => format!("data/raw/batch_{:03}", n / 100),
                Kind::Json => format!("data/fixtures/set_{:03}", n / 100),
                Kind::Markdown => format!("docs/section_{:02}", n / 100),
                Kind::Blob => format!("assets/blobs_{:02}", n / 100),
            };
            PlannedFile { path: format!("{dir}/{name}.{}", kind.extension()), kind, size, executable, index }
        })
        .collect();
    let drawn: u64 = files.iter().map(|f| f.size).sum();
    let scale = spec.total_bytes.saturating_sub(fixed_bytes) as f64 / drawn.max(1) as f64;
    for file in &mut files {
        file.size = (file.size as f64 * scale).round() as u64;
    }
    files
}

/// The tree for `spec` under `work`, generated and committed unless a complete one
/// is already there (a marker file beside it says so).
pub fn ensure(work: &Path, spec: &TreeSpec) -> Result<Tree> {
    let name = format!("tree-v{GENERATOR_VERSION}-{}f-{}b-s{}", spec.files, spec.total_bytes, spec.seed);
    let root = work.join(&name);
    let marker = work.join(format!("{name}.complete"));
    let planned = plan(spec);
    let tree = Tree {
        root: root.clone(),
        files: planned.len() + fixed_files().len(),
        bytes: planned.iter().map(|f| f.size).sum::<u64>()
            + fixed_files().iter().map(|(_, c)| c.len() as u64).sum::<u64>(),
        blob_bytes: planned.iter().filter(|f| f.kind == Kind::Blob).map(|f| f.size).sum(),
    };
    if marker.exists() && root.join(".git").exists() {
        return Ok(tree);
    }
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("Failed to remove `{}`", root.display()))?;
    }
    write(&root, spec, &planned)?;
    crate::git::init_and_commit(&root, "Generated benchmark tree")?;
    std::fs::write(&marker, b"").with_context(|| format!("Failed to write `{}`", marker.display()))?;
    Ok(tree)
}

fn write(root: &Path, spec: &TreeSpec, planned: &[PlannedFile]) -> Result<()> {
    for (path, content) in fixed_files() {
        write_file(&root.join(path), content.as_bytes(), false)?;
    }
    // Two writers: generation is CPU-bound and the machine has two cores.
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2usize)
            .map(|w| {
                scope.spawn(move || -> Result<()> {
                    for file in planned.iter().skip(w).step_by(2) {
                        let mut rng = Rng::derive(spec.seed ^ 0x5eed, file.index);
                        let bytes = content::generate(file.kind, &mut rng, file.size as usize);
                        write_file(&root.join(&file.path), &bytes, file.executable)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().expect("generator thread panicked"))
    })
}

fn write_file(path: &Path, bytes: &[u8], executable: bool) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("Failed to create `{}`", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("Failed to write `{}`", path.display()))?;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("Failed to set the mode of `{}`", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: TreeSpec = TreeSpec { files: 2_000, total_bytes: 20_000_000, seed: 42 };

    #[test]
    fn plan_hits_the_file_count_and_total_and_mixes_kinds() {
        let planned = plan(&SPEC);
        assert_eq!(planned.len() + fixed_files().len(), SPEC.files);
        let fixed: u64 = fixed_files().iter().map(|(_, c)| c.len() as u64).sum();
        let total: u64 = planned.iter().map(|f| f.size).sum::<u64>() + fixed;
        let off = total.abs_diff(SPEC.total_bytes);
        assert!(off < SPEC.total_bytes / 1000, "total {total} is not ~{}", SPEC.total_bytes);
        for kind in [Kind::Python, Kind::Csv, Kind::Json, Kind::Markdown, Kind::Blob] {
            assert!(planned.iter().any(|f| f.kind == kind), "no {kind:?}");
        }
        assert!(planned.iter().any(|f| f.executable));
        assert!(planned.iter().any(|f| f.size > 500_000), "no large file");
        let mut paths: Vec<&str> = planned.iter().map(|f| f.path.as_str()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), planned.len(), "paths must be unique");
    }

    #[test]
    fn plan_is_deterministic_from_the_seed() {
        let a: Vec<(String, u64)> = plan(&SPEC).into_iter().map(|f| (f.path, f.size)).collect();
        let b: Vec<(String, u64)> = plan(&SPEC).into_iter().map(|f| (f.path, f.size)).collect();
        let c: Vec<(String, u64)> =
            plan(&TreeSpec { seed: 43, ..SPEC }).into_iter().map(|f| (f.path, f.size)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
