//! What the store holds as commits pile up (issue 17, deliverable 2), measured
//! on the bench tree with the real packer and the real store: a series of
//! builds, each after a commit that edits some files, is packed by
//! `flowgate_bundle` exactly as `flowgate build` packs and stored by
//! `ArtifactStore::put_bundle_frames` into a fresh local store, as `flowgate
//! build` stores it. The store's bytes after the series (frames and lists),
//! against one build's archive, is what it keeps; the objects each build
//! uploaded are its new frames and its list.
//!
//! The mean group size is varied with `PackOptions::frame_target` to choose the
//! format's; an unbounded target gives the previous format's cuts (a group ends
//! only when the next entry would take it past 4 MiB, so an edit moves every cut
//! after it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context as _, Result};
use flowgate_bundle::{scan, write_archive, PackOptions, Packed, FRAME_TARGET};
use flowgate_store::ArtifactStore;

use crate::rng::Rng;
use crate::tree::Tree;
use crate::Ctx;

/// How each commit of a series edits the tree.
#[derive(Debug, Clone, Copy)]
enum Edit {
    /// One file anywhere (what a fix is).
    OneFile,
    /// 10 files of one directory (a feature's work).
    TenInOneDirectory,
    /// 1% of all files, anywhere.
    OnePercentAtRandom,
}

impl Edit {
    fn label(self) -> &'static str {
        match self {
            Edit::OneFile => "one file",
            Edit::TenInOneDirectory => "10 files in one directory",
            Edit::OnePercentAtRandom => "1% of files at random",
        }
    }

    /// The files commit `commit` edits (indices into the sorted paths).
    fn pick(self, paths: &[String], commit: u64, seed: u64) -> Vec<usize> {
        let mut rng = Rng::derive(seed ^ 0x00f7_a3e5, commit);
        match self {
            Edit::OneFile => vec![rng.below(paths.len() as u64) as usize],
            Edit::TenInOneDirectory => {
                // A directory with at least 10 files, then 10 distinct files of it.
                let dirs = directories(paths);
                let candidates: Vec<&(usize, usize)> = dirs.iter().filter(|(_, n)| *n >= 10).collect();
                let (start, count) = *candidates[rng.below(candidates.len() as u64) as usize];
                let mut picked = HashSet::new();
                while picked.len() < 10 {
                    picked.insert(start + rng.below(count as u64) as usize);
                }
                let mut picked: Vec<usize> = picked.into_iter().collect();
                picked.sort_unstable();
                picked
            }
            Edit::OnePercentAtRandom => {
                let wanted = paths.len().div_ceil(100);
                let mut picked = HashSet::new();
                while picked.len() < wanted {
                    picked.insert(rng.below(paths.len() as u64) as usize);
                }
                let mut picked: Vec<usize> = picked.into_iter().collect();
                picked.sort_unstable();
                picked
            }
        }
    }
}

/// Runs of sorted paths that share a directory: (first index, count).
fn directories(paths: &[String]) -> Vec<(usize, usize)> {
    let dir = |p: &str| p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        match runs.last_mut() {
            Some((start, count)) if dir(&paths[*start]) == dir(path) => *count += 1,
            _ => runs.push((i, 1)),
        }
    }
    runs
}

/// One series' outcome.
struct Series {
    builds: usize,
    /// One build's archive, in bytes.
    one_build: u64,
    /// The store's bytes after the series.
    stored: u64,
    frames_per_build: usize,
    /// Objects each build after the first uploaded (its new frames and its list), sorted.
    new_objects: Vec<usize>,
    /// Seconds packing took, over the series.
    packing: f64,
}

/// The scratch copy the series edit, with its sorted paths.
pub(crate) struct Scratch {
    pub root: PathBuf,
    pub paths: Vec<String>,
}

impl Scratch {
    /// A fresh copy of the tree's tracked files (the tree itself stays as generated).
    pub fn copy(tree: &Tree, work: &Path) -> Result<Self> {
        let root = work.join("frames-scratch");
        if root.exists() {
            std::fs::remove_dir_all(&root).with_context(|| format!("Failed to remove `{}`", root.display()))?;
        }
        let listed = std::process::Command::new("git").args(["ls-files", "-z"]).current_dir(&tree.root).output()?;
        ensure!(listed.status.success(), "git ls-files failed in `{}`", tree.root.display());
        let mut paths: Vec<String> =
            String::from_utf8(listed.stdout)?.split('\0').filter(|p| !p.is_empty()).map(str::to_string).collect();
        paths.sort_unstable();
        for path in &paths {
            let to = root.join(path);
            std::fs::create_dir_all(to.parent().expect("a file has a parent"))?;
            std::fs::copy(tree.root.join(path), &to).with_context(|| format!("Failed to copy `{path}`"))?;
        }
        Ok(Self { root, paths })
    }

    /// Edits a file as a commit would: a line rewritten near its start and a few appended.
    pub fn edit(&self, index: usize, commit: u64) -> Result<()> {
        let path = self.root.join(&self.paths[index]);
        let mut bytes = std::fs::read(&path)?;
        let stamp = format!("# edited by commit {commit}\n");
        let at = bytes.len().min(64);
        bytes.splice(at..at, stamp.bytes());
        bytes.extend_from_slice(format!("value_{commit} = {}\n", commit * 7).repeat(3).as_bytes());
        std::fs::write(&path, bytes).with_context(|| format!("Failed to edit `{}`", path.display()))
    }

    /// Packs the scratch tree as `flowgate build` does into a temp file.
    pub fn pack(&self, opts: &PackOptions) -> Result<(Packed, tempfile::NamedTempFile)> {
        let scanned = scan(&self.root, &self.paths, opts)?;
        let mut out = tempfile::NamedTempFile::new()?;
        let packed = write_archive(&self.root, &scanned.manifest, out.as_file_mut(), opts)?;
        Ok((packed, out))
    }
}

/// Packs and stores the scratch tree; the objects the store lacked and got.
async fn store_build(store: &ArtifactStore, scratch: &Scratch, opts: &PackOptions) -> Result<(Packed, usize)> {
    let (packed, file) = scratch.pack(opts)?;
    let (upload, stored) = store.put_bundle_frames(&packed.digest, file.path(), &packed.frames).await?;
    Ok((packed, stored.uploaded + usize::from(upload.is_created())))
}

async fn series(tree: &Tree, ctx: &Ctx, edit: Edit, target: u64, builds: usize, seed: u64) -> Result<Series> {
    let scratch = Scratch::copy(tree, &ctx.work)?;
    let index = ctx.work.join("frames-index");
    let _ = std::fs::remove_file(&index);
    let store_dir = ctx.work.join("frames-store");
    if store_dir.exists() {
        std::fs::remove_dir_all(&store_dir)?;
    }
    std::fs::create_dir_all(&store_dir)?;
    let store = ArtifactStore::open(&format!("file://{}", store_dir.display()), &ctx.work)?;
    let opts = PackOptions {
        index_path: Some(index),
        frame_target: (target != FRAME_TARGET).then_some(target),
        ..PackOptions::default()
    };
    let started = Instant::now();
    let (first, _) = store_build(&store, &scratch, &opts).await?;
    let mut new_objects = Vec::new();
    for commit in 1..builds as u64 {
        for file in edit.pick(&scratch.paths, commit, seed) {
            scratch.edit(file, commit)?;
        }
        new_objects.push(store_build(&store, &scratch, &opts).await?.1);
    }
    new_objects.sort_unstable();
    let stored = store.listing().await?.iter().map(|(_, size)| size).sum();
    Ok(Series {
        builds,
        one_build: first.size,
        stored,
        frames_per_build: first.frames.len(),
        new_objects,
        packing: started.elapsed().as_secs_f64(),
    })
}

fn size_label(target: u64) -> String {
    match target {
        u64::MAX => "none (4 MiB groups, the previous format)".to_string(),
        t if t == FRAME_TARGET => format!("{} KiB (the format's)", t >> 10),
        t => format!("{} KiB", t >> 10),
    }
}

/// The frame-sharing table: the format's frame size over the full series for
/// both kinds of commit, the other sizes over a shorter one.
pub async fn run(ctx: &Ctx, tree: &Tree, seed: u64) -> Result<Vec<String>> {
    let full = if ctx.quick { 10 } else { 100 };
    let short = if ctx.quick { 5 } else { 20 };
    let mut notes =
        vec!["frames (`flowgate_bundle` packs the bench tree after each commit; a local store keeps the frames):"
            .to_string()];
    let mut cases: Vec<(Edit, u64, usize)> = vec![
        (Edit::TenInOneDirectory, FRAME_TARGET, full),
        (Edit::OnePercentAtRandom, FRAME_TARGET, full),
        (Edit::OneFile, FRAME_TARGET, short),
    ];
    for target in [256 << 10, 512 << 10, 2 << 20, u64::MAX] {
        cases.push((Edit::TenInOneDirectory, target, short));
    }
    for (edit, target, builds) in cases {
        eprintln!("  frames: {} builds, {}, mean group {}", builds, edit.label(), size_label(target));
        let s = series(tree, ctx, edit, target, builds, seed).await?;
        let median = s.new_objects.get(s.new_objects.len() / 2).copied().unwrap_or(0);
        let max = s.new_objects.last().copied().unwrap_or(0);
        notes.push(format!(
            "  frames: {} builds, each commit editing {}, mean group {}: the store holds {:.3}× one build \
             ({} bytes, one build {} bytes; whole archives: {}×), {} frames per build, objects uploaded per \
             build after the first (new frames + its list) median {median} max {max} (packing and storing {:.1} s)",
            s.builds,
            edit.label(),
            size_label(target),
            s.stored as f64 / s.one_build as f64,
            s.stored,
            s.one_build,
            s.builds,
            s.frames_per_build,
            s.packing,
        ));
    }
    Ok(notes)
}
