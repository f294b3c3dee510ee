//! The benchmarks on the generated tree: cold `flowgate build` against tar + zstd
//! of the same files, an unchanged rebuild against `git status`, and `flowgate
//! pull` (cached and uncached) against process start and `tar -x --zstd`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::report::{Row, Target};
use crate::timing::{self, Case, Plan};
use crate::tree::Tree;
use crate::Ctx;

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("Failed to remove `{}`", path.display())),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("Failed to remove `{}`", path.display())),
    }
}

/// Flush dirty pages (untimed), so a run does not pay for the writeback of the
/// files the previous run wrote or deleted.
fn settle() -> Result<()> {
    let status = Command::new("sync").status().context("Failed to run `sync`")?;
    anyhow::ensure!(status.success(), "`sync` failed ({status})");
    Ok(())
}

fn shell(dir: &Path, script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir).arg("-c").arg(script);
    cmd
}

/// Cold `flowgate build` in `root` (its `.flowgate/` deleted before each run)
/// interleaved with `git ls-files | tar | zstd -3` into `out`, multi-threaded
/// and single-threaded: the three timings in that order.
fn cold_build(ctx: &Ctx, root: &Path, out: &Path) -> Result<Vec<timing::Timing>> {
    let state = root.join(".flowgate");
    let pack = |threads: &str| {
        let script = format!("git ls-files -z | tar --null -T - -cf - | zstd -3 {threads} -q -o '{}'", out.display());
        move || shell(root, &script)
    };
    timing::measure_interleaved(
        Plan { warmup: 1, runs: ctx.runs(5) },
        vec![
            Case::new(
                "flowgate build",
                || remove(&state).and_then(|()| settle()),
                || ctx.flowgate_in(root, &["build"]),
            ),
            Case::new(
                "git ls-files -z | tar --null -T - -cf - | zstd -3 -T0",
                || remove_file(out).and_then(|()| settle()),
                pack("-T0"),
            ),
            Case::new("… | zstd -3 -T1", || remove_file(out).and_then(|()| settle()), pack("-T1")),
        ],
    )
}

/// The type of the filesystem `dir` is on, as `stat -f` names it (`ext2/ext3`, `tmpfs`, …).
fn filesystem(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "an unknown filesystem".into())
}

/// The build flowgate made, as `flowgate build --json` reports it.
#[derive(Debug)]
struct Built {
    id: String,
    bundle: PathBuf,
    bundle_size: u64,
}

fn built(ctx: &Ctx, tree: &Tree) -> Result<Built> {
    let out = timing::capture("flowgate build --json", ctx.flowgate_in(&tree.root, &["build", "--json"]))?;
    let json: serde_json::Value =
        serde_json::from_str(&out).context("`flowgate build --json` printed no JSON document")?;
    let build = json.get("build").context("`flowgate build --json` has no `build`")?;
    let id = build.get("id").and_then(|v| v.as_str()).context("`flowgate build --json` has no `build.id`")?;
    let digest =
        build.get("bundle").and_then(|v| v.as_str()).context("`flowgate build --json` has no `build.bundle`")?;
    // The store keeps the bundle as frames; the baseline unpacks their concatenation.
    let artifacts = tree.root.join(".flowgate/artifacts");
    let list = artifacts.join("bundles").join(format!("{digest}.frames"));
    let list = std::fs::read_to_string(&list)
        .with_context(|| format!("The bundle of build `{id}` is not at `{}`", list.display()))?;
    let bundle = ctx.work.join("flowgate-bundle.tar.zst");
    let mut archive = std::fs::File::create(&bundle)?;
    for line in list.lines().skip(1) {
        let frame = artifacts.join("frames").join(format!("{}.zst", line.split(' ').next().unwrap_or_default()));
        std::io::copy(&mut std::fs::File::open(&frame)?, &mut archive)
            .with_context(|| format!("Failed to read `{}`", frame.display()))?;
    }
    let bundle_size = std::fs::metadata(&bundle)?.len();
    let recorded = build.get("bundle_size").and_then(|v| v.as_u64());
    if recorded != Some(bundle_size) {
        bail!("The frames of build `{id}` add up to {bundle_size} bytes, the build records {recorded:?}");
    }
    Ok(Built { id: id.to_string(), bundle, bundle_size })
}

/// Run the four tree benchmarks; returns rows and notes (sizes).
pub fn run(ctx: &Ctx, tree: &Tree) -> Result<(Vec<Row>, Vec<String>)> {
    let root = &tree.root;
    let out = ctx.work.join("baseline.tar.zst");
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    eprintln!("build (cold, {} files, {:.1} MB):", tree.files, tree.bytes as f64 / 1e6);
    let t = cold_build(ctx, root, &out)?;
    let baseline_size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    rows.push(Row::new("build (cold)", &t[0], &t[1], Target::Ratio(1.0)));
    rows.push(Row::new("build (cold) vs single-threaded zstd", &t[0], &t[2], Target::None));
    notes.push(format!("build (cold): the tree is on {}", filesystem(root)));
    // The same on a copy in tmpfs: no disk under either side, so what is left
    // is the work itself (on disk, writeback and the page cache share the time).
    let shm = Path::new("/dev/shm");
    if filesystem(shm) == "tmpfs" {
        let copy = shm.join("flowgate-bench-cold");
        remove(&copy)?;
        let status = Command::new("cp").arg("-a").arg(root).arg(&copy).status().context("Failed to run `cp -a`")?;
        anyhow::ensure!(status.success(), "`cp -a {} {}` failed ({status})", root.display(), copy.display());
        eprintln!("build (cold), the tree copied to tmpfs ({}):", copy.display());
        let measured = cold_build(ctx, &copy, &shm.join("flowgate-bench-baseline.tar.zst"));
        remove(&copy)?;
        remove_file(&shm.join("flowgate-bench-baseline.tar.zst"))?;
        let t = measured?;
        rows.push(Row::new("build (cold), tree in tmpfs", &t[0], &t[1], Target::Ratio(1.0)));
    }

    let built = built(ctx, tree)?;
    notes.push(format!(
        "bundle {} bytes ({:.2}× smaller than the files); `tar | zstd -3` of the same files gives {} bytes",
        built.bundle_size,
        tree.bytes as f64 / built.bundle_size.max(1) as f64,
        baseline_size
    ));

    eprintln!("rebuild (unchanged):");
    let t = timing::measure_interleaved(
        Plan { warmup: 2, runs: ctx.runs(15) },
        vec![
            Case::plain("flowgate build", || ctx.flowgate_in(root, &["build"])),
            Case::plain("git status --porcelain", || {
                let mut cmd = Command::new("git");
                cmd.current_dir(root).args(["status", "--porcelain"]);
                cmd
            }),
        ],
    )?;
    rows.push(Row::new("rebuild (unchanged)", &t[0], &t[1], Target::Absolute(Duration::from_millis(100))));

    let cache = ctx.work.join("pull-cache");
    let pull_args = ["pull", built.id.as_str(), "--cache", cache.to_str().context("The work dir is not UTF-8")?];
    eprintln!("pull (cached):");
    remove(&cache)?;
    timing::capture("flowgate pull", ctx.flowgate_in(root, &pull_args))?;
    let t = timing::measure_interleaved(
        Plan { warmup: 2, runs: ctx.runs(20) },
        vec![
            Case::plain("flowgate pull", || ctx.flowgate_in(root, &pull_args)),
            Case::plain("flowgate --version", || ctx.flowgate_in(root, &["--version"])),
        ],
    )?;
    rows.push(Row::new("pull (cached)", &t[0], &t[1], Target::Absolute(Duration::from_millis(20))));

    eprintln!("pull (uncached, local store):");
    let untar = ctx.work.join("untar");
    let t = timing::measure_interleaved(
        Plan { warmup: 1, runs: ctx.runs(5) },
        vec![
            Case::new("flowgate pull", || remove(&cache).and_then(|()| settle()), || ctx.flowgate_in(root, &pull_args)),
            Case::new(
                "tar -x --zstd -f BUNDLE",
                || {
                    remove(&untar)?;
                    std::fs::create_dir_all(&untar)
                        .with_context(|| format!("Failed to create `{}`", untar.display()))?;
                    settle()
                },
                || {
                    let mut cmd = Command::new("tar");
                    cmd.arg("-x").arg("--zstd").arg("-f").arg(&built.bundle).arg("-C").arg(&untar);
                    cmd
                },
            ),
        ],
    )?;
    rows.push(Row::new("pull (uncached)", &t[0], &t[1], Target::Ratio(1.5)));
    remove(&untar)?;
    remove(&cache)?;
    remove_file(&out)?;
    Ok((rows, notes))
}
