//! Helpers shared by the end-to-end test files: the binary under test, direct
//! ledger access (to dump it, or to record crafted builds), snapshots of the
//! project's state that prove a failed command changed nothing, and filters.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

pub mod pages;
pub mod runs;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowgate_core::{Build, Digest, Images};
use flowgate_ledger::{Ledger, LedgerUrl, ProjectClaim};
use flowgate_prefect::PrefectClient;
use flowgate_testkit::prefect::PrefectWorker;
use flowgate_testkit::{GitProject, Run};

pub const LEDGER_URL: &str = "sqlite://.flowgate/ledger.db";

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_flowgate"))
}

pub fn run(project: &GitProject, args: &[&str]) -> Run {
    project.run(bin(), args)
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(future)
}

/// The project the binary acts on in the project at `root`: the `[project]
/// name` of its `flowgate.toml` (read leniently, so a test that breaks the
/// file still finds it), claimed without a repository, so a test's open never
/// collides with the binary's claim nor fills it in.
pub fn project_claim(root: &Path) -> Result<ProjectClaim, String> {
    let toml = std::fs::read_to_string(root.join("flowgate.toml")).map_err(|e| format!("read flowgate.toml: {e}"))?;
    let mut in_project = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_project = line == "[project]";
        } else if let Some(value) = line.strip_prefix("name").and_then(|rest| rest.trim_start().strip_prefix('=')) {
            if in_project {
                let name = value.trim().trim_matches('"');
                let name = name.parse().map_err(|e| format!("`[project] name` of flowgate.toml: {e}"))?;
                return Ok(ProjectClaim { name, root_commit: None, remote: None });
            }
        }
    }
    Err("flowgate.toml has no `[project] name`".into())
}

async fn open_ledger(project: &GitProject) -> Result<Box<dyn Ledger>, String> {
    let url: LedgerUrl = LEDGER_URL.parse().expect("ledger url");
    let claim = project_claim(project.path())?;
    flowgate_ledger::open(&url, project.path(), &claim).await.map_err(|e| e.to_string())
}

/// The ledger's full text dump (every project's), or the error opening it gave.
pub fn ledger_dump(project: &GitProject) -> Result<String, String> {
    block_on(async {
        let url: LedgerUrl = LEDGER_URL.parse().expect("ledger url");
        let claim = project_claim(project.path())?;
        let ledger = flowgate_ledger::testing::open(&url, project.path(), &claim).await.map_err(|e| e.to_string())?;
        ledger.dump().await.map_err(|e| e.to_string())
    })
}

/// Records a build with a chosen id straight through the ledger API (the CLI
/// derives ids from content, so it cannot make two ids share a prefix).
pub fn record_crafted_build(project: &GitProject, id: &str, commit: &str) {
    let build = Build {
        id: id.parse().expect("build id"),
        bundle: Digest::of(id.as_bytes()),
        bundle_size: 1,
        file_count: 1,
        images: Images::new(),
        commit: commit.to_string(),
        branch: Some("main".into()),
        dirty: false,
        author: "Crafted <crafted@example.com>".into(),
        created_at: chrono::Utc::now(),
        settings: None,
    };
    block_on(async {
        let ledger = open_ledger(project).await.expect("open ledger");
        assert!(
            ledger.record_build(build.clone()).await.expect("record build").created,
            "build `{id}` was already recorded"
        );
    });
}

/// Everything a command could change: the ledger (its dump, or its raw bytes
/// when it cannot be opened) and every byte of the artifact store.
#[derive(Debug, PartialEq, Eq)]
pub struct State {
    ledger: Result<String, Vec<u8>>,
    store: Vec<(PathBuf, Vec<u8>)>,
}

pub fn state(project: &GitProject) -> State {
    let ledger =
        ledger_dump(project).map_err(|_| std::fs::read(project.path().join(".flowgate/ledger.db")).unwrap_or_default());
    State { ledger, store: project.tree_contents(".flowgate/artifacts") }
}

/// The testkit's filters plus the ones a test adds (e.g. another temp dir).
pub fn filters(project: &GitProject, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = extra.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    out.extend(flowgate_testkit::snapshot_filters(project));
    out
}

/// Borrowed pairs, the form `insta::with_settings!` takes.
pub fn pairs(filters: &[(String, String)]) -> Vec<(&str, &str)> {
    filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Runs the deployment `name` once on `worker` and waits (at most two minutes)
/// until the run completes; any other end fails the test with the worker's log.
pub async fn run_to_completion(client: &PrefectClient, name: &str, worker: &PrefectWorker) {
    let found = client.read_deployments(&[name.to_string()]).await.expect("read deployments");
    let d = found.into_iter().find(|d| d.name == name).unwrap_or_else(|| panic!("no deployment {name}"));
    let id = client.create_flow_run(&d.id).await.expect("create run").id;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let current = client.read_flow_run(&id).await.expect("read run");
        if ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].contains(&current.state_type()) {
            assert_eq!(current.state_type(), "COMPLETED", "{:?}\n--- worker\n{}", current.state, worker.log());
            return;
        }
        assert!(Instant::now() < deadline, "run stuck in {:?}\n--- worker\n{}", current.state, worker.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
