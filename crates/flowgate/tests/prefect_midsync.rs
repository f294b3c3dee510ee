//! The Prefect server dies while `flowgate release --all` is syncing many flows:
//! the CLI fails clearly with the move recorded, `status` shows the cells pending,
//! and once a server is back on the same database `flowgate sync` converges.
//! No deployment is ever half-written.

mod common;

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::run;
use flowgate_prefect::{ensure_work_pool, PrefectClient, ServerDeployment};
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::GitProject;
use serde_json::Value;

const FLOWS: usize = 40;
const PREFIX: &str = "mid-";
const POOL: &str = "mid-pool";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn flow_key(i: usize) -> String {
    format!("f{i:02}")
}

/// `FLOWS` flows, one file each, all in env `qa` on `api_url`; committed and built.
fn project(api_url: &str) -> (GitProject, String) {
    let p = GitProject::new();
    let mut config = String::from("[project]\nname = \"acme\"\n\n");
    for i in 0..FLOWS {
        let key = flow_key(i);
        p.write(
            &format!("flows/{key}.py"),
            &format!(
                "from prefect import flow\n\n\n@flow(name=\"mid-{key}\")\ndef {key}(n: int = {i}):\n    print(n)\n"
            ),
        );
        config.push_str(&format!("[flows.{key}]\nentrypoint = \"flows/{key}.py:{key}\"\nwork_pool = \"{POOL}\"\n\n"));
    }
    config.push_str(&format!("[envs.qa]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"{PREFIX}\"\n"));
    p.write("flowgate.toml", &config);
    p.commit("many flows");
    let build = run(&p, &["build", "--json"]).success().json();
    (p, build["build"]["id"].as_str().expect("build id").to_string())
}

fn ours(client: &PrefectClient, rt: &tokio::runtime::Runtime) -> Vec<ServerDeployment> {
    let mut all = rt.block_on(client.read_deployments(&[])).expect("read deployments");
    all.retain(|d| d.name.starts_with(PREFIX));
    all
}

/// Each deployment is whole: version, build tag and pull step all name `build`.
fn assert_whole(deployments: &[ServerDeployment], build: &str) {
    for d in deployments {
        assert_eq!(d.version.as_deref(), Some(build), "{}: {d:?}", d.name);
        assert!(d.tags.iter().any(|t| *t == format!("flowgate-build:{build}")), "{}: {:?}", d.name, d.tags);
        let steps = serde_json::to_string(&d.pull_steps).expect("pull steps as JSON");
        assert!(steps.contains(&format!("flowgate pull {build} --store ")), "{}: {steps}", d.name);
        let key = d.name.trim_start_matches(PREFIX);
        assert_eq!(d.flow_name, format!("mid-{key}"), "{d:?}");
        assert_eq!(d.entrypoint.as_deref(), Some(format!("flows/{key}.py:{key}").as_str()), "{d:?}");
    }
}

fn cell_states(p: &GitProject) -> Vec<Value> {
    let status = run(p, &["status", "--env", "qa", "--json"]).success().json();
    let flows = status["flows"].as_array().expect("flows in status").clone();
    assert_eq!(flows.len(), FLOWS, "{status}");
    flows.iter().map(|f| f["cells"][0]["sync"].clone()).collect()
}

#[test]
fn server_killed_mid_sync_then_back_on_the_same_database_sync_converges() {
    let mut server = PrefectServer::start();
    let rt = runtime();
    let client = PrefectClient::new(&server.api_url(), None).expect("client");
    rt.block_on(ensure_work_pool(&client, POOL, "process", true)).expect("work pool");
    let (p, build) = project(&server.api_url());

    // Start the release, and kill the server once its first deployment exists.
    let logs = tempfile::tempdir().expect("log dir");
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = Command::new(common::bin())
        .current_dir(p.path())
        .args(["release", "--all", "--env", "qa", "--build", &build])
        .env_remove("FLOWGATE_ENV")
        .env_remove("RUST_LOG")
        .env("FLOWGATE_ACTOR", "tester@example.com")
        .env("FLOWGATE_USER", "tester")
        .env("FLOWGATE_CACHE_DIR", p.cache_dir())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start flowgate release");
    let deadline = Instant::now() + Duration::from_secs(120);
    let created_before_kill = loop {
        assert!(Instant::now() < deadline, "no deployment appeared within 120 s:\n{}", server.log());
        if let Ok(Some(status)) = child.try_wait() {
            panic!("release ended ({status}) before any deployment was seen; raise FLOWS");
        }
        let found = ours(&client, &rt).len();
        if found > 0 {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    server.kill();
    assert!(created_before_kill < FLOWS, "all {FLOWS} were created before the kill; raise FLOWS");

    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for flowgate") {
            break status;
        }
        assert!(Instant::now() < deadline, "flowgate release still runs 180 s after the server died");
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&err_path).expect("stderr");
    assert_eq!(status.code(), Some(1), "release should fail with 1:\n{stderr}");
    for part in ["The move is recorded in the ledger", "syncing env `qa` to Prefect failed", "flowgate sync --env qa"] {
        assert!(stderr.contains(part), "`{part}` missing from:\n{stderr}");
    }
    let history = run(&p, &["history", "f00", "--env", "qa", "--json"]).success().stdout;
    assert!(history.contains(&build), "the move stands: {history}");
    let states = cell_states(&p);
    assert!(states.iter().all(|s| s == "pending sync"), "every cell pending while the server is down: {states:?}");

    // A new server on the same port and database: what exists is whole.
    server.restart();
    let before = ours(&client, &rt);
    assert!(!before.is_empty() && before.len() < FLOWS, "{} deployments after restart", before.len());
    assert_whole(&before, &build);

    let synced = run(&p, &["sync", "--env", "qa", "--json"]).success().json();
    let created = synced["created"].as_array().expect("created list").len();
    let unchanged = synced["unchanged"].as_array().expect("unchanged list").len();
    assert_eq!((created, unchanged), (FLOWS - before.len(), before.len()), "{synced}");
    assert_eq!(synced["updated"].as_array().map(Vec::len), Some(0), "{synced}");

    let after = ours(&client, &rt);
    assert_eq!(after.len(), FLOWS, "{after:?}");
    assert_whole(&after, &build);
    let states = cell_states(&p);
    assert!(states.iter().all(|s| s == "synced"), "nothing pending after sync: {states:?}");
    let again = run(&p, &["sync", "--env", "qa", "--json"]).success().json();
    assert_eq!(again["writes"].as_u64(), Some(0), "{again}");
}
