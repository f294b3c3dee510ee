//! `flowgate-bench`: runs flowgate's benchmarks beside their baselines in the same
//! run and prints medians and ratios. Timings are reported, never asserted.

mod changed_release;
mod closure;
mod closure_tree;
mod code;
mod content;
mod deploy_all;
mod frames;
mod git;
mod load;
mod populate;
mod pull_s3;
mod report;
mod rng;
mod served;
mod status;
mod timing;
mod tree;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// build, rebuild, pull cached and uncached on the generated tree
    Tree,
    /// status over the SQLite ledger
    Sqlite,
    /// status over the PostgreSQL ledger
    Postgres,
    /// 200 concurrent clients against two server replicas on PostgreSQL
    Load,
    /// release --all after a commit that changes one of 200 flows, against a real Prefect server
    ChangedRelease,
    /// cold build and unchanged rebuild with 200 flows' code closures over 2,000 modules, against the same without
    Closure,
    /// create, update and re-release of 50 and 200 flows beside prefect deploy --all, Prefect on SQLite and PostgreSQL
    DeployAll,
    /// pull from an S3 store (moto) behind a proxy adding 20 ms a request: cold, and one file away from a cached build
    PullS3,
    /// what the store holds after 100 commits, and what each build uploads, per frame size (sizes, not times)
    Frames,
}

/// Benchmarks of flowgate, each against a baseline measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "flowgate-bench")]
struct Args {
    /// The flowgate binary to measure (default: `flowgate` beside this binary).
    #[arg(long)]
    flowgate: Option<PathBuf>,
    /// Where generated trees, ledgers and caches live (reused across runs).
    #[arg(long, env = "FLOWGATE_BENCH_DIR", default_value = "/tmp/flowgate-bench")]
    work: PathBuf,
    /// Scale every size down 10× for a fast check.
    #[arg(long)]
    quick: bool,
    /// Timed runs per command (default: per benchmark, 5 to 20).
    #[arg(long)]
    runs: Option<usize>,
    /// Only these parts (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// The PostgreSQL server for the status, load and deploy-all benchmarks (databases are created and dropped).
    #[arg(long, env = "FLOWGATE_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Concurrent writers populating PostgreSQL (disjoint pointers).
    #[arg(long, default_value_t = 4)]
    pg_writers: usize,
    /// Seed of the generated tree.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// What every benchmark needs.
#[derive(Debug)]
pub struct Ctx {
    pub flowgate: PathBuf,
    pub work: PathBuf,
    pub quick: bool,
    pub runs: Option<usize>,
    pub pg_writers: usize,
}

impl Ctx {
    /// Timed runs for a benchmark whose default is `default`.
    pub fn runs(&self, default: usize) -> usize {
        self.runs.unwrap_or(if self.quick { default.div_ceil(2).max(3) } else { default })
    }

    /// `flowgate ARGS` started in `dir`.
    pub fn flowgate_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.flowgate);
        cmd.current_dir(dir).args(args).env_remove("RUST_LOG").env_remove("FLOWGATE_ENV");
        cmd
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// The 1-minute load average: benchmarks on a busy machine say so.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn preflight(ctx: &Ctx) -> Result<String> {
    for tool in ["git", "tar", "zstd", "sh", "curl"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            bail!("`{tool}` is not on PATH; the baselines need it");
        }
    }
    let version = timing::capture("flowgate --version", ctx.flowgate_in(&ctx.work, &["--version"]))
        .with_context(|| format!("Failed to run the flowgate binary `{}`", ctx.flowgate.display()))?;
    Ok(version.trim().to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let flowgate = match args.flowgate {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("flowgate"),
    };
    std::fs::create_dir_all(&args.work).with_context(|| format!("Failed to create `{}`", args.work.display()))?;
    let ctx = Ctx {
        flowgate: std::path::absolute(&flowgate)?,
        work: std::path::absolute(&args.work)?,
        quick: args.quick,
        runs: args.runs,
        pg_writers: args.pg_writers,
    };
    let version = preflight(&ctx)?;
    let load_before = load();
    let wants = |part| args.only.is_empty() || args.only.contains(&part);
    let scale = if ctx.quick { 10 } else { 1 };
    let spec = tree::TreeSpec { files: 20_000 / scale, total_bytes: 200_000_000 / scale as u64, seed: args.seed };
    let ledger = populate::LedgerSpec { flows: 1_000 / scale, envs: 10, revisions: 100, builds: 5 };

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if wants(Part::Tree) {
        eprintln!("generating (or reusing) a tree of {} files, {} MB…", spec.files, spec.total_bytes / 1_000_000);
        let tree = tree::ensure(&ctx.work, &spec)?;
        notes.push(format!(
            "tree: {} files, {} bytes ({} bytes incompressible), seed {}",
            tree.files, tree.bytes, tree.blob_bytes, spec.seed
        ));
        let (r, n) = code::run(&ctx, &tree)?;
        rows.extend(r);
        notes.extend(n);
    }
    for (part, backend) in [
        (Part::Sqlite, status::Backend::Sqlite),
        (Part::Postgres, status::Backend::Postgres { server: args.postgres.clone() }),
    ] {
        if wants(part) {
            eprintln!(
                "status ({part:?}, {} flows × {} envs × {} revisions):",
                ledger.flows, ledger.envs, ledger.revisions
            );
            let (r, note) = status::run(&ctx, ledger, &backend).await?;
            rows.extend(r);
            notes.push(note);
        }
    }

    if wants(Part::Load) {
        eprintln!("load (two replicas, PostgreSQL):");
        let (r, n) = load::run(&ctx, &args.postgres).await?;
        rows.extend(r);
        notes.extend(n);
    }

    if wants(Part::Closure) {
        eprintln!("closure ({} flows over {} modules):", 200 / scale, 2_000 / scale);
        let (r, n) = closure::run(&ctx, args.seed)?;
        rows.extend(r);
        notes.extend(n);
    }

    if wants(Part::ChangedRelease) {
        eprintln!("changed release (one of {} flows changed, real Prefect server):", 200 / scale);
        let (r, n) = changed_release::run(&ctx)?;
        rows.extend(r);
        notes.extend(n);
    }

    if wants(Part::Frames) {
        let tree = tree::ensure(&ctx.work, &spec)?;
        notes.extend(frames::run(&ctx, &tree, args.seed).await?);
    }

    if wants(Part::PullS3) {
        eprintln!("pull from S3 (moto behind a proxy adding 20 ms a request):");
        let tree = tree::ensure(&ctx.work, &spec)?;
        let (r, n) = pull_s3::run(&ctx, &tree).await?;
        rows.extend(r);
        notes.extend(n);
    }

    if wants(Part::DeployAll) {
        eprintln!("deploy all (beside prefect deploy --all, real Prefect servers on SQLite and PostgreSQL):");
        let (r, n) = deploy_all::run(&ctx, &args.postgres).await?;
        rows.extend(r);
        notes.extend(n);
    }

    println!(
        "flowgate-bench {} — {} — load average {load_before} at start, {} at end",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        load()
    );
    println!("{version}{}", if ctx.quick { " — QUICK (sizes ÷ 10)" } else { "" });
    println!();
    print!("{}", report::table(&rows));
    println!();
    for note in notes {
        println!("- {note}");
    }
    Ok(())
}
