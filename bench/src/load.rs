//! The load benchmark: two `flowgate serve` replicas over one PostgreSQL
//! ledger, and 200 concurrent clients on 127.0.0.1, each in a bounded loop
//! mixing `status` (the matrix `flowgate status --json` reads), `history` and
//! releases into an env the replicas protect, for 60 s. It counts every answer
//! by kind and status and prints p50 and p99 latency; the baseline, beside it
//! in the same run, is the same clients asking `GET /api/v1/health`, the
//! least a request can cost. Answers other than 2xx and the documented 4xx
//! (409: a pointer another client moved first) are errors, and are printed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use flowgate_ledger::{LedgerUrl, ProjectClaim};

use crate::populate::{self, LedgerSpec};
use crate::report::{Row, Target};
use crate::served::{create_token, Served};
use crate::status::{admin, database_url};
use crate::timing::{self, fmt_duration, Timing};
use crate::Ctx;

const PROJECT: &str = "load-bench";
const CLIENTS: usize = 200;
/// The env the replicas protect (ledger-only): where the clients release.
const PROTECTED: &str = "env-00";

/// What a client asks, in the order of its loop: six statuses, three
/// histories, one release in every ten requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Health,
    Status,
    History,
    Release,
}

impl Kind {
    fn of_turn(turn: usize) -> Kind {
        match turn % 10 {
            0..=5 => Kind::Status,
            6..=8 => Kind::History,
            _ => Kind::Release,
        }
    }
}

/// Every answer of one load run: latency by kind, and counts by kind and status
/// (`0` for a request that got no answer).
#[derive(Default)]
struct Tally {
    latencies: BTreeMap<Kind, Vec<Duration>>,
    answers: BTreeMap<(Kind, u16), usize>,
}

pub async fn run(ctx: &Ctx, server: &str) -> Result<(Vec<Row>, Vec<String>)> {
    let db = format!("flowgate_bench_load_{}", std::process::id());
    let url = database_url(server, &db)?;
    admin(server, &format!("CREATE DATABASE {db}")).await?;
    let result = measure(ctx, &url).await;
    let dropped = admin(server, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
    let result = result?;
    dropped?;
    Ok(result)
}

async fn measure(ctx: &Ctx, ledger: &str) -> Result<(Vec<Row>, Vec<String>)> {
    let spec = LedgerSpec { flows: if ctx.quick { 20 } else { 100 }, envs: 3, revisions: 20, builds: 5 };
    let dir = ctx.work.join("load-postgres");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("Failed to remove `{}`", dir.display()))?;
    }
    let builds = prepare(ctx, &dir, ledger, spec).await?;
    let token = create_token(ctx, &dir, ledger, "releaser")?;
    let config = dir.join("server.toml");
    std::fs::create_dir_all(dir.join("server-store"))?;
    std::fs::write(
        &config,
        format!(
            "ledger = \"{ledger}\"\nartifacts = \"file://{}\"\n\n[projects.{PROJECT}.envs.{PROTECTED}]\n",
            dir.join("server-store").display()
        ),
    )?;
    let config = config.display().to_string();
    let replicas = [
        Served::start_with(ctx, &dir, &["--config", &config, "--replica", "load-a"], token.clone())?,
        Served::start_with(ctx, &dir, &["--config", &config, "--replica", "load-b"], token.clone())?,
    ];
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let seconds = if ctx.quick { 10 } else { 60 };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let flows = populate::flow_keys(spec.flows).iter().map(ToString::to_string).collect::<Vec<_>>();
    let envs = populate::env_names(spec.envs).iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let work = Work { http, urls, token, flows, envs, builds };

    eprintln!("  baseline: {CLIENTS} clients asking /api/v1/health for {} s…", seconds / 6);
    let baseline = drive(&work, Duration::from_secs(seconds / 6), |_| Kind::Health).await;
    eprintln!("  {CLIENTS} clients mixing status, history and releases for {seconds} s against two replicas…");
    let load = drive(&work, Duration::from_secs(seconds), Kind::of_turn).await;
    drop(replicas);

    let health = timing_of("GET /api/v1/health under the same load", &baseline, Kind::Health);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (kind, label) in [(Kind::Status, "status"), (Kind::History, "history"), (Kind::Release, "release")] {
        let t = timing_of(label, &load, kind);
        rows.push(Row::new(
            &format!("{label}, {CLIENTS} clients, two replicas (p50 latency)"),
            &t,
            &health,
            Target::None,
        ));
        notes.push(format!("load {label}: {}", summary(&t.samples)));
    }
    notes.push(format!("load baseline health: {}", summary(&health.samples)));
    let answered: Vec<String> =
        load.answers.iter().map(|((kind, status), n)| format!("{kind:?} {status}: {n}")).collect();
    notes.push(format!("load answers in {seconds} s: {}", answered.join(", ")));
    let errors: usize =
        load.answers.iter().filter(|((_, status), _)| !documented(*status)).map(|(_, n)| n).sum::<usize>()
            + baseline.answers.iter().filter(|((_, status), _)| !documented(*status)).map(|(_, n)| n).sum::<usize>();
    notes.push(format!("load errors other than documented 4xx: {errors}"));
    Ok((rows, notes))
}

/// 2xx, and 409 (a pointer another client moved first: exit 4 in the CLI).
fn documented(status: u16) -> bool {
    (200..300).contains(&status) || status == 409
}

/// The project, its populated ledger and two builds of its own (carrying
/// settings, as a server release needs): their ids.
async fn prepare(ctx: &Ctx, dir: &Path, ledger: &str, spec: LedgerSpec) -> Result<Vec<String>> {
    let mut toml = format!("[project]\nname = \"{PROJECT}\"\nledger = \"{ledger}\"\n");
    for flow in populate::flow_keys(spec.flows) {
        toml.push_str(&format!("\n[flows.{flow}]\nentrypoint = \"flows/f.py:f\"\nwork_pool = \"pool\"\n"));
    }
    for env in populate::env_names(spec.envs) {
        toml.push_str(&format!("\n[envs.{env}]\n"));
    }
    // An env with a Prefect server (never reached) makes each build carry its flows' settings.
    toml.push_str("\n[envs.live]\nprefect_api_url = \"http://127.0.0.1:9/api\"\n");
    std::fs::create_dir_all(dir.join("flows"))?;
    std::fs::write(dir.join("flowgate.toml"), toml)?;
    std::fs::write(dir.join(".gitignore"), ".flowgate/\n")?;
    std::fs::write(dir.join("flows/f.py"), "from prefect import flow\n\n\n@flow\ndef f() -> None:\n    pass\n")?;
    crate::git::init_and_commit(dir, "Load benchmark project")?;
    let parsed: LedgerUrl = ledger.parse()?;
    let opened = flowgate_ledger::open(&parsed, dir, &ProjectClaim::named(PROJECT)).await?;
    eprintln!("  populating PostgreSQL with {} releases…", spec.releases());
    populate::populate(Arc::from(opened), spec, ctx.pg_writers, 10_000).await?;
    let mut ids = Vec::new();
    for round in 0..2 {
        if round > 0 {
            std::fs::write(
                dir.join("flows/f.py"),
                "from prefect import flow\n\n\n@flow\ndef f() -> None:\n    pass  # 2\n",
            )?;
            crate::git::run(dir, &["commit", "-qam", "second"])?;
        }
        let built = timing::capture("flowgate build", ctx.flowgate_in(dir, &["build", "--json"]))?;
        let built: serde_json::Value =
            serde_json::from_str(&built).context("`flowgate build --json` printed no JSON")?;
        ids.push(built["build"]["id"].as_str().context("no build id")?.to_string());
    }
    Ok(ids)
}

struct Work {
    http: reqwest::Client,
    urls: Vec<String>,
    token: String,
    flows: Vec<String>,
    envs: String,
    builds: Vec<String>,
}

/// `CLIENTS` clients, each on one replica, in a loop until `length` has passed.
async fn drive(work: &Work, length: Duration, kind_of: fn(usize) -> Kind) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + length;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (tally, next) = (tally.clone(), next.clone());
        let http = work.http.clone();
        let base = format!("{}/api/v1", work.urls[client % work.urls.len()]);
        let (token, flows, envs, builds) =
            (work.token.clone(), work.flows.clone(), work.envs.clone(), work.builds.clone());
        clients.spawn(async move {
            let mut turn = client;
            while Instant::now() < deadline {
                let kind = kind_of(turn);
                let n = next.fetch_add(1, Ordering::Relaxed);
                let flow = &flows[n % flows.len()];
                let request = match kind {
                    Kind::Health => http.get(format!("{base}/health")),
                    Kind::Status => http.get(format!("{base}/projects/{PROJECT}/matrix?envs={envs}")),
                    Kind::History => {
                        http.get(format!("{base}/projects/{PROJECT}/history?flow={flow}&env={PROTECTED}&limit=20"))
                    }
                    Kind::Release => http.post(format!("{base}/projects/{PROJECT}/envs/{PROTECTED}/releases")).json(
                        &serde_json::json!({ "build": builds[n % builds.len()], "flows": [flow], "reason": "load" }),
                    ),
                };
                let started = Instant::now();
                let status = match request.bearer_auth(&token).send().await {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        let _ = answer.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                let took = started.elapsed();
                let mut tally = tally.lock().expect("the tally");
                tally.latencies.entry(kind).or_default().push(took);
                *tally.answers.entry((kind, status)).or_default() += 1;
                turn += 1;
            }
        });
    }
    while clients.join_next().await.is_some() {}
    Arc::try_unwrap(tally).ok().expect("every client ended").into_inner().expect("the tally")
}

fn timing_of(label: &str, tally: &Tally, kind: Kind) -> Timing {
    Timing { label: label.to_string(), samples: tally.latencies.get(&kind).cloned().unwrap_or_default() }
}

/// `n requests, min …, p50 …, p99 …, max …`.
fn summary(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "no requests".to_string();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!(
        "{} requests, min {}, p50 {}, p99 {}, max {}",
        sorted.len(),
        fmt_duration(sorted[0]),
        fmt_duration(at(0.5)),
        fmt_duration(at(0.99)),
        fmt_duration(sorted[sorted.len() - 1])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_in_ten_is_a_release() {
        let kinds: Vec<Kind> = (0..10).map(Kind::of_turn).collect();
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Release).count(), 1);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Status).count(), 6);
    }

    #[test]
    fn only_success_and_a_lost_race_are_documented() {
        assert!(documented(200) && documented(409));
        assert!(!documented(0) && !documented(400) && !documented(500) && !documented(503));
    }

    #[test]
    fn summary_names_the_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let text = summary(&samples);
        assert!(text.starts_with("100 requests, min 1.0 ms, p50 "), "{text}");
        assert!(text.contains("p99 99.0 ms") && text.ends_with("max 100.0 ms"), "{text}");
    }
}
