//! Issue 5 (2): sixteen real `flowgate` processes at once, in rounds, releasing,
//! promoting and rolling back two shared (flow, env) pairs and eight private
//! ones, on a SQLite ledger and on a PostgreSQL one. Every command must exit 0
//! (or 4 on a shared pair, with nothing changed); no "database is locked" or
//! "busy" may reach the user; afterwards every pair's history is revisions 1..n,
//! each claimed by exactly one successful command, and its pointer is revision n.

mod common;

use std::collections::BTreeMap;
use std::sync::Barrier;

use common::{bin, run};
use flowgate_ledger::LedgerUrl;
use flowgate_testkit::postgres::Database;
use flowgate_testkit::{GitProject, Run};

const PROCESSES: usize = 16;
/// Processes `0..SHARED_RACERS` work on the shared pairs; each of the others owns one flow.
const SHARED_RACERS: usize = 8;
const ROUNDS: usize = 4;
const SHARED_FLOW: &str = "etl-daily";
const ENVS: [&str; 2] = ["qa", "prod"];

type Pair = (String, String);

fn private_flow(process: usize) -> String {
    format!("solo-{}", process - SHARED_RACERS)
}

fn flows() -> Vec<String> {
    let mut out = vec![SHARED_FLOW.to_string()];
    out.extend((SHARED_RACERS..PROCESSES).map(private_flow));
    out
}

/// A project on `ledger` with every flow on one entrypoint and two ledger-only envs.
fn project(ledger: &str) -> GitProject {
    let p = GitProject::new();
    let mut toml = format!("[project]\nname = \"race\"\nledger = \"{ledger}\"\n\n");
    for flow in flows() {
        toml.push_str(&format!("[flows.{flow}]\nentrypoint = \"flows/etl.py:etl\"\n\n"));
    }
    toml.push_str("[envs.qa]\n\n[envs.prod]\n");
    p.write("flowgate.toml", &toml);
    p.write(".gitignore", ".flowgate/\n");
    p
}

/// Three builds of three commits, made by the CLI.
fn three_builds(p: &GitProject) -> Vec<String> {
    (1..=3)
        .map(|n| {
            p.write("flows/etl.py", &format!("from prefect import flow\n\n@flow\ndef etl():\n    print({n})\n"));
            p.commit(&format!("v{n}"));
            let built = run(p, &["build", "--json"]).success().json();
            built["build"]["id"].as_str().expect("build id").to_string()
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Op {
    ReleaseQa,
    RollbackQa,
    Promote,
    ReleaseProd,
    RollbackProd,
}

/// What the shared racers cycle through, and what each private one does per round.
const SHARED_OPS: [Op; 5] = [Op::ReleaseQa, Op::RollbackQa, Op::Promote, Op::ReleaseProd, Op::RollbackProd];
const PRIVATE_OPS: [Op; 4] = [Op::ReleaseQa, Op::Promote, Op::RollbackProd, Op::RollbackQa];

/// One command of the race: its arguments, and whether its pair is shared.
fn command(process: usize, round: usize, builds: &[String]) -> (Vec<String>, bool) {
    let shared = process < SHARED_RACERS;
    let (flow, op) = if shared {
        (SHARED_FLOW.to_string(), SHARED_OPS[(process + round) % SHARED_OPS.len()])
    } else {
        (private_flow(process), PRIVATE_OPS[round % PRIVATE_OPS.len()])
    };
    let build = builds[(process + round) % builds.len()].as_str();
    let words: Vec<&str> = match op {
        Op::ReleaseQa => vec!["release", &flow, "--env", "qa", "--build", build],
        Op::ReleaseProd => vec!["release", &flow, "--env", "prod", "--build", build],
        Op::RollbackQa => vec!["rollback", &flow, "--env", "qa"],
        Op::RollbackProd => vec!["rollback", &flow, "--env", "prod"],
        Op::Promote => vec!["promote", "--from", "qa", "--to", "prod", &flow],
    };
    let mut args: Vec<String> = words.into_iter().map(String::from).collect();
    args.extend(["--json".into(), "--reason".into(), format!("racer {process} round {round}")]);
    (args, shared)
}

/// Every (flow, env) pair with the revisions and builds successful commands reported.
#[derive(Default)]
struct Claims(BTreeMap<Pair, BTreeMap<i64, String>>);

impl Claims {
    /// Records the `moves` of a successful command; a revision claimed twice fails.
    #[track_caller]
    fn record(&mut self, what: &str, out: &Run) {
        let doc = out.json();
        for mv in doc["moves"].as_array().unwrap_or_else(|| panic!("`{what}` has no moves: {doc}")) {
            let field = |key: &str| mv[key].as_str().unwrap_or_else(|| panic!("`{key}` in {mv}")).to_string();
            let revision = mv["revision"].as_i64().unwrap_or_else(|| panic!("revision in {mv}"));
            let pair = (field("flow"), field("env"));
            let earlier = self.0.entry(pair.clone()).or_default().insert(revision, field("build"));
            assert!(earlier.is_none(), "revision {revision} of {pair:?} was reported by two commands (last `{what}`)");
        }
    }
}

fn show(args: &[String], out: &Run) -> String {
    format!("`flowgate {}` exited {}\n--- stdout\n{}\n--- stderr\n{}", args.join(" "), out.code, out.stdout, out.stderr)
}

/// Runs every process of one round at once: each thread waits at the barrier,
/// then starts its child, so the sixteen processes overlap from their first
/// statement. Returns each command with its outcome.
fn race(p: &GitProject, round: usize, builds: &[String]) -> Vec<(Vec<String>, bool, Run)> {
    let barrier = Barrier::new(PROCESSES);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PROCESSES)
            .map(|process| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let (args, shared) = command(process, round, builds);
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    barrier.wait();
                    let out = p.run_with_env(bin(), &refs, &[("FLOWGATE_ACTOR", &format!("racer-{process}"))]);
                    (args, shared, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("racer thread")).collect()
    })
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(future)
}

/// The whole story against the ledger at `ledger` (as written in flowgate.toml).
fn story(ledger: &str) {
    let p = project(ledger);
    let builds = three_builds(&p);
    let mut claims = Claims::default();

    // Every pair gets two distinct builds in its history first, so any rollback
    // in the race has an earlier build to go back to.
    let seed: [&[&str]; 4] = [
        &["release", "--all", "--env", "qa", "--build", &builds[0], "--json"],
        &["release", "--all", "--env", "qa", "--build", &builds[1], "--json"],
        &["promote", "--from", "qa", "--to", "prod", "--json"],
        &["release", "--all", "--env", "prod", "--build", &builds[2], "--json"],
    ];
    for args in seed {
        let out = run(&p, args).success();
        claims.record(&args.join(" "), &out);
    }

    let (mut successes, mut no_ops, mut conflicts) = (0, 0, 0);
    for round in 0..ROUNDS {
        for (args, shared, out) in race(&p, round, &builds) {
            let stderr = out.stderr.to_lowercase();
            assert!(
                !stderr.contains("database is locked") && !stderr.contains("busy"),
                "a lock error reached the user: {}",
                show(&args, &out)
            );
            match out.code {
                0 => {
                    claims.record(&args.join(" "), &out);
                    successes += 1;
                    if out.json()["moves"].as_array().is_some_and(Vec::is_empty) {
                        no_ops += 1;
                    }
                }
                4 if shared => {
                    let doc = out.json();
                    assert_eq!(doc["error"]["exit_code"].as_i64(), Some(4), "{}", show(&args, &out));
                    conflicts += 1;
                }
                _ => panic!("{}", show(&args, &out)),
            }
        }
    }
    // The counts go into docs/RELIABILITY.md; they vary from run to run.
    eprintln!("{ledger}: {successes} commands succeeded ({no_ops} moved nothing), {conflicts} met a conflict (exit 4)");
    assert!(successes >= ROUNDS * (PROCESSES - SHARED_RACERS), "every private command succeeds");

    let url: LedgerUrl = ledger.parse().expect("ledger url");
    block_on(async {
        let claim = common::project_claim(p.path()).expect("project");
        let ledger = flowgate_ledger::open(&url, p.path(), &claim).await.expect("open ledger");
        let pointers = ledger.pointers(None).await.expect("pointers");
        for flow in flows() {
            for env in ENVS {
                let pair = (flow.clone(), env.to_string());
                let mut history =
                    ledger.history(&flow.parse().unwrap(), &env.parse().unwrap(), None).await.expect("history");
                history.sort_by_key(|r| r.revision);
                let revisions: Vec<i64> = history.iter().map(|r| r.revision).collect();
                let expected: Vec<i64> = (1..=history.len() as i64).collect();
                assert_eq!(revisions, expected, "{pair:?}: the history has a gap or a duplicate");
                for pair_of in history.windows(2) {
                    assert_eq!(
                        pair_of[1].previous_build.as_ref(),
                        Some(&pair_of[0].build),
                        "{pair:?}: revision {} did not move from revision {}",
                        pair_of[1].revision,
                        pair_of[0].revision
                    );
                }
                let claimed = claims.0.get(&pair).cloned().unwrap_or_default();
                let recorded: BTreeMap<i64, String> =
                    history.iter().map(|r| (r.revision, r.build.to_string())).collect();
                assert_eq!(claimed, recorded, "{pair:?}: successful commands and the history disagree");
                let pointer = pointers
                    .iter()
                    .find(|ptr| ptr.flow.as_str() == flow && ptr.env.as_str() == env)
                    .unwrap_or_else(|| panic!("{pair:?} has no pointer"));
                let newest = history.last().expect("seeded history");
                assert_eq!((pointer.revision, &pointer.build), (newest.revision, &newest.build), "{pair:?}");
            }
        }
    });
}

#[test]
fn sixteen_processes_on_sqlite_leave_gap_free_histories() {
    story("sqlite://.flowgate/ledger.db");
}

#[test]
fn sixteen_processes_on_postgres_leave_gap_free_histories() {
    let Some(db) = Database::create("flowgate_race") else { return };
    story(&db.url());
}
