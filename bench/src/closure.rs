//! Issue 16, benchmark 1: what computing and recording 200 flows' code
//! closures over 2,000 modules adds to `flowgate build`, cold and unchanged.
//! Each side is the same build of the same files (`closure_tree.rs`); the
//! baseline's `flowgate.toml` has no env with a Prefect server, so it resolves
//! no deployment settings and computes no closure. The difference of the
//! medians is what the closures add; the ranges say whether that is above
//! noise (see `verdict`).
//!
//! Both builds also run the build checks, which parse every flow's entrypoint
//! and the project modules it imports with the full parser (each module once
//! per build, shared by the flows): at this size that is most of a cold
//! build, and its run-to-run spread is as large as the closures' cost. So the
//! closures are also timed on their own, in this
//! process through `flowgate_entrypoint` as `flowgate build` computes them
//! (each file read once, for its imports and its BLAKE3 together; 200
//! closures; their digests), beside reading and hashing the same files: the
//! first is all a cold build adds for closures, the second the part of it
//! that is I/O and hashing.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use crate::closure_tree::{self, ClosureSpec, ClosureTrees};
use crate::report::{Row, Target};
use crate::timing::{self, fmt_duration, Case, Plan, Timing};
use crate::Ctx;

const COLD_TARGET: Duration = Duration::from_millis(300);
const REBUILD_TARGET: Duration = Duration::from_millis(20);

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("Failed to remove `{}`", path.display())),
    }
}

fn settle() -> Result<()> {
    let status = Command::new("sync").status().context("Failed to run `sync`")?;
    ensure!(status.success(), "`sync` failed ({status})");
    Ok(())
}

/// `flowgate ARGS` in `dir`, with `USER` set as in a login shell: without it,
/// resolving settings starts `id -un` once per flow (about 1.5 ms each), which
/// would be charged to the closures here.
fn flowgate(ctx: &Ctx, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = ctx.flowgate_in(dir, args);
    cmd.env("USER", "bench");
    cmd
}

/// `flowgate build --json` in `dir`: the build record and whether it was new.
fn build(ctx: &Ctx, dir: &Path) -> Result<(Value, bool)> {
    let out = timing::capture("flowgate build --json", flowgate(ctx, dir, &["build", "--json"]))?;
    let json: Value = serde_json::from_str(&out).context("`flowgate build --json` printed no JSON document")?;
    let recorded = json.get("recorded").and_then(Value::as_bool).context("no `recorded` in the build's JSON")?;
    Ok((json["build"].clone(), recorded))
}

/// A fast wrong answer is not a result: before anything is timed, a cold build
/// of `with/` records the code of every flow (two of them whole-bundle), one of
/// `without/` records none, and a second build of each is unchanged.
fn check(ctx: &Ctx, trees: &ClosureTrees, flows: usize) -> Result<()> {
    remove(&trees.with.join(".flowgate"))?;
    let (built, _) = build(ctx, &trees.with)?;
    let qa = built["settings"]["qa"].as_object().context("the build of `with/` has no settings for `qa`")?;
    ensure!(qa.len() == flows, "the build of `with/` has settings for {} flows, not {flows}", qa.len());
    let codes: Vec<&Value> = qa.values().map(|s| &s["code"]).collect();
    ensure!(codes.iter().all(|c| c["digest"].is_string()), "a flow of `with/` has no code digest");
    let whole = codes.iter().filter(|c| c["whole_bundle"].is_string()).count();
    let dynamic = (0..flows).filter(|&i| closure_tree::is_dynamic(i)).count();
    ensure!(whole == dynamic, "{whole} flows depend on the whole bundle, not {dynamic}");
    let files: Vec<u64> = codes.iter().filter_map(|c| c["files"].as_u64()).collect();
    eprintln!(
        "  closures: {} flows, {whole} whole-bundle, {}–{} files each (median {})",
        files.len(),
        files.iter().min().unwrap_or(&0),
        files.iter().max().unwrap_or(&0),
        timing_free_median(&files)
    );
    remove(&trees.without.join(".flowgate"))?;
    let (built, _) = build(ctx, &trees.without)?;
    if built["settings"].as_object().is_some_and(|s| !s.is_empty()) {
        bail!("the build of `without/` has settings: it would compute closures");
    }
    for dir in [&trees.with, &trees.without] {
        let (_, recorded) = build(ctx, dir)?;
        ensure!(!recorded, "a second build of `{}` was not unchanged", dir.display());
    }
    Ok(())
}

fn timing_free_median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// Whether the closures meet `target`: met when the medians' difference does
/// and so does the largest difference the ranges allow (slowest `with` run
/// against the fastest baseline run); missed when the medians' difference is
/// over; within noise in between.
fn verdict(with: &Timing, without: &Timing, target: Duration) -> String {
    let added = with.median().saturating_sub(without.median());
    let worst = with.max().saturating_sub(without.min());
    let least = with.min().saturating_sub(without.max());
    let range = format!("range {} to {}", fmt_duration(least), fmt_duration(worst));
    if added > target {
        format!("**missed**: {} added ({range})", fmt_duration(added))
    } else if worst <= target {
        format!("met: {} added ({range})", fmt_duration(added))
    } else {
        format!("within noise: {} added, but the ranges allow {}", fmt_duration(added), fmt_duration(worst))
    }
}

fn summary(name: &str, with: &Timing, without: &Timing, target: Duration) -> String {
    format!(
        "{name}: {} against {}; target ≤ {} added: {}",
        with.spread(),
        without.spread(),
        fmt_duration(target),
        verdict(with, without, target)
    )
}

/// The closures of `flows` in `dir` as `flowgate build` computes them; the
/// number of closure files, summed over the flows.
fn closures(dir: &Path, files: &BTreeSet<String>, flows: usize) -> Result<usize> {
    let hashes: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    let read = |path: &str| {
        let bytes = std::fs::read(dir.join(path)).ok()?;
        hashes.borrow_mut().insert(path.to_string(), blake3::hash(&bytes).to_hex().to_string());
        String::from_utf8(bytes).ok()
    };
    let mut index = flowgate_entrypoint::ClosureIndex::new(files, &read, &[]);
    let mut total = 0;
    for i in 0..flows {
        let closure = index.closure(&format!("flows/flow_{i:03}.py"), &[])?;
        let mut hashes = hashes.borrow_mut();
        for path in &closure.files {
            if !hashes.contains_key(path) {
                let bytes = std::fs::read(dir.join(path)).unwrap_or_default();
                hashes.insert(path.clone(), blake3::hash(&bytes).to_hex().to_string());
            }
        }
        let digest =
            flowgate_entrypoint::closure_digest(closure.files.iter().map(|p| (p.as_str(), hashes[p].as_str())));
        ensure!(digest.len() == 64, "a closure digest is not BLAKE3 hex");
        total += closure.files.len();
    }
    Ok(total)
}

/// Reading and hashing `files`, as the closures do for the files they read.
fn read_and_hash(dir: &Path, files: &BTreeSet<String>) -> Result<u64> {
    let mut bytes = 0;
    for path in files {
        let data = std::fs::read(dir.join(path)).with_context(|| format!("Failed to read `{path}`"))?;
        bytes += data.len() as u64;
        std::hint::black_box(blake3::hash(&data));
    }
    Ok(bytes)
}

/// Times the closures in this process against reading and hashing the same
/// files, interleaved like the processes are.
fn in_process(ctx: &Ctx, trees: &ClosureTrees, flows: usize) -> Result<(Timing, Timing, String)> {
    let dir = &trees.with;
    let listed = crate::git::run(dir, &["ls-files"])?;
    let files: BTreeSet<String> = listed.lines().map(str::to_string).collect();
    // The files the closures read or hash: every file, since two flows depend on the whole bundle.
    let total = closures(dir, &files, flows)?;
    let runs = ctx.runs(15);
    let mut with = Timing { label: "closures in process".into(), samples: Vec::new() };
    let mut without = Timing { label: "read + BLAKE3 of the same files".into(), samples: Vec::new() };
    let mut bytes = 0;
    for round in 0..runs + 2 {
        let start = Instant::now();
        std::hint::black_box(closures(dir, &files, flows)?);
        let closure_time = start.elapsed();
        let start = Instant::now();
        bytes = read_and_hash(dir, &files)?;
        let read_time = start.elapsed();
        if round >= 2 {
            with.samples.push(closure_time);
            without.samples.push(read_time);
        }
    }
    with.report();
    without.report();
    let note = format!(
        "closures in process ({flows} flows, {total} closure files in all, {} files / {bytes} bytes read): {}, \
         of which reading and hashing the files {}; target ≤ {}: {}",
        files.len(),
        with.spread(),
        without.spread(),
        fmt_duration(COLD_TARGET),
        if with.max() <= COLD_TARGET {
            "met: the slowest run is under"
        } else if with.median() <= COLD_TARGET {
            "within noise: the median is under, the slowest run is not"
        } else {
            "**missed**"
        }
    );
    Ok((with, without, note))
}

/// Runs both benchmarks; returns rows and notes.
pub fn run(ctx: &Ctx, seed: u64) -> Result<(Vec<Row>, Vec<String>)> {
    let scale = if ctx.quick { 10 } else { 1 };
    let spec = ClosureSpec { modules: 2_000 / scale, flows: 200 / scale, seed };
    eprintln!("generating (or reusing) {} modules and {} flows…", spec.modules, spec.flows);
    let trees = closure_tree::ensure(&ctx.work, &spec)?;
    check(ctx, &trees, spec.flows)?;
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "closure trees: {} modules + {} flows, {} bytes of Python, seed {seed}, in `{}`",
        trees.modules,
        spec.flows,
        trees.bytes,
        trees.with.parent().map_or_else(String::new, |p| p.display().to_string())
    )];

    eprintln!("closure: computed in this process against reading and hashing the same files:");
    let (with, without, note) = in_process(ctx, &trees, spec.flows)?;
    let name = format!("closure: computation alone (in process), {} flows", spec.flows);
    rows.push(Row::new(&name, &with, &without, Target::Absolute(COLD_TARGET)));
    notes.push(note);

    eprintln!("closure: cold build, {} flows (with) against no closures (without):", spec.flows);
    let cold = |dir: &Path| {
        let (dir, state) = (dir.to_path_buf(), dir.join(".flowgate"));
        Case::new(
            &format!("flowgate build ({})", dir.file_name().unwrap_or_default().to_string_lossy()),
            move || {
                remove(&state)?;
                settle()
            },
            move || flowgate(ctx, &dir, &["build", "-q"]),
        )
    };
    let t = timing::measure_interleaved(
        Plan { warmup: 2, runs: ctx.runs(11) },
        vec![cold(&trees.with), cold(&trees.without)],
    )?;
    let name = format!("closure: cold build, {} flows × {} modules", spec.flows, spec.modules);
    notes.push(summary(&name, &t[0], &t[1], COLD_TARGET));
    let worst = t[0].max().saturating_sub(t[1].min());
    rows.push(Row::new(&name, &t[0], &t[1], Target::Added { max: COLD_TARGET, worst }));

    eprintln!("closure: unchanged rebuild (with) against the same without closures:");
    let again = |dir: &Path| {
        let dir = dir.to_path_buf();
        Case::plain(
            &format!("flowgate build, unchanged ({})", dir.file_name().unwrap_or_default().to_string_lossy()),
            move || flowgate(ctx, &dir, &["build", "-q"]),
        )
    };
    let t = timing::measure_interleaved(
        Plan { warmup: 2, runs: ctx.runs(21) },
        vec![again(&trees.with), again(&trees.without)],
    )?;
    let name = format!("closure: unchanged rebuild, {} flows", spec.flows);
    notes.push(summary(&name, &t[0], &t[1], REBUILD_TARGET));
    let worst = t[0].max().saturating_sub(t[1].min());
    rows.push(Row::new(&name, &t[0], &t[1], Target::Added { max: REBUILD_TARGET, worst }));
    Ok((rows, notes))
}
