//! Rollouts against a real Prefect 3.9.1 server and a process worker: a wave
//! whose flow raises fails verification and is rolled back by itself while the
//! wave before it stays; a `watch` killed with SIGKILL during verification and
//! restarted completes without triggering any run twice.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{bin, run};
use flowgate_prefect::{PrefectClient, ServerDeployment};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::GitProject;
use serde_json::Value;

const ALPHA: &str =
    "from prefect import flow\n\n@flow(name=\"alpha\", log_prints=True)\ndef alpha():\n    print(\"alpha\")\n";
const BETA_OK: &str =
    "from prefect import flow\n\n@flow(name=\"beta\", log_prints=True)\ndef beta():\n    print(\"beta\")\n";
const BETA_RAISES: &str =
    "from prefect import flow\n\n@flow(name=\"beta\", log_prints=True)\ndef beta():\n    raise RuntimeError(\"beta is broken\")\n";

fn project(url: &str, pool: &str, prefix: &str, rollout: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"rollouts\"\n\n\
             [flows.alpha]\nentrypoint = \"flows/alpha.py:alpha\"\nwork_pool = \"{pool}\"\n\n\
             [flows.beta]\nentrypoint = \"flows/beta.py:beta\"\nwork_pool = \"{pool}\"\n\n\
             [envs.prod]\nprefect_api_url = \"{url}\"\nname_prefix = \"{prefix}\"\nrollout = {rollout}\n"
        ),
    );
    p.write("flows/alpha.py", ALPHA);
    p.write("flows/beta.py", BETA_OK);
    p.commit("v1");
    p
}

fn build(p: &GitProject) -> String {
    run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().expect("build id").to_string()
}

fn status(p: &GitProject) -> Value {
    run(p, &["rollout", "status", "--env", "prod", "--json"]).success().json()
}

fn history(p: &GitProject, flow: &str) -> Value {
    run(p, &["history", flow, "--env", "prod", "--json"]).success().json()
}

async fn deployment(client: &PrefectClient, name: &str) -> ServerDeployment {
    let found = client.read_deployments(&[name.to_string()]).await.expect("read deployments");
    found.into_iter().find(|d| d.name == name).unwrap_or_else(|| panic!("no deployment `{name}`"))
}

fn worker(server: &PrefectServer, pool: &str) -> PrefectWorker {
    let bin_dir = Path::new(bin()).parent().expect("bin dir").to_path_buf();
    PrefectWorker::start(&server.api_url(), pool, Some(&bin_dir))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wave_that_fails_verification_is_rolled_back_and_the_rollout_fails() {
    let server = PrefectServer::start();
    let (pool, prefix) = ("rollout-fail-pool", "rf-");
    let rollout = "{ waves = [[\"alpha\"], [\"beta\"]], verify = { runs = 1, timeout = \"180s\" } }";
    let p = project(&server.api_url(), pool, prefix, rollout);
    let client = PrefectClient::new(&server.api_url(), None).expect("client");
    let v1 = build(&p);
    run(&p, &["release", "--all", "--env", "prod", "--build", &v1, "--create-work-pools"]).success();
    p.write("flows/alpha.py", &ALPHA.replace("print(\"alpha\")", "print(\"alpha v2\")"));
    p.write("flows/beta.py", BETA_RAISES);
    p.commit("v2: beta raises");
    let v2 = build(&p);
    let w = worker(&server, pool);

    let failed = run(&p, &["rollout", "start", "--to", "prod", "--build", &v2, "--interval", "1"]);
    assert_eq!(failed.code, 1, "{}\n--- worker\n{}", failed.stderr, w.log());
    assert!(failed.stderr.contains("beta") && failed.stderr.contains("FAILED"), "{}", failed.stderr);

    let s = status(&p);
    assert_eq!(s["rollout"]["status"], "failed", "{s}");
    assert_eq!(s["body"]["waves"][0]["outcome"], "passed", "{s}");
    assert_eq!(s["body"]["waves"][1]["outcome"], "rolled_back", "{s}");
    assert_eq!(s["body"]["waves"][0]["flows"][0]["runs"][0]["state"], "COMPLETED", "{s}");
    assert_eq!(s["body"]["waves"][1]["flows"][0]["runs"][0]["state"], "FAILED", "{s}");

    // The ledger: alpha stays on v2; beta went to v2 and back to v1, all within the rollout.
    let rollout_id = s["rollout"]["id"].as_str().unwrap();
    let alpha = history(&p, "alpha");
    assert_eq!(
        (alpha[0]["build"].as_str(), alpha[0]["audit"]["rollout"].as_str()),
        (Some(v2.as_str()), Some(rollout_id))
    );
    let beta = history(&p, "beta");
    assert_eq!(beta[0]["kind"], "rollback", "{beta}");
    assert_eq!(beta[0]["build"], v1.as_str(), "{beta}");
    assert_eq!(beta[1]["build"], v2.as_str(), "{beta}");
    // The server agrees with the ledger.
    assert_eq!(deployment(&client, "rf-alpha").await.version.as_deref(), Some(v2.as_str()));
    assert_eq!(deployment(&client, "rf-beta").await.version.as_deref(), Some(v1.as_str()));
    let plan = run(&p, &["plan", "--env", "prod", "--json"]).success().json();
    let actions: Vec<&Value> =
        plan["deployments"].as_array().expect("deployments").iter().map(|d| &d["action"]).collect();
    assert_eq!(actions, vec!["unchanged", "unchanged"], "nothing left to sync: {plan}");
    drop(w);
}

/// `flowgate rollout watch` as a child process, killable with SIGKILL.
fn spawn_watch(p: &GitProject) -> Child {
    Command::new(bin())
        .current_dir(p.path())
        .args(["rollout", "watch", "--env", "prod", "--interval", "1", "-q"])
        .env_remove("FLOWGATE_ENV")
        .env("FLOWGATE_ACTOR", "tester@example.com")
        .env("FLOWGATE_USER", "tester")
        .env("FLOWGATE_CACHE_DIR", p.cache_dir())
        .spawn()
        .expect("spawn watch")
}

/// Waits (bounded) until the rollout's status satisfies `done`.
fn wait_for(p: &GitProject, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(p);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "rollout never reached {what}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn recorded_runs(s: &Value) -> usize {
    s["body"]["waves"][0]["flows"]
        .as_array()
        .map_or(0, |f| f.iter().map(|f| f["runs"].as_array().map_or(0, Vec::len)).sum())
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_killed_during_verification_and_restarted_completes_without_a_duplicate_run() {
    let server = PrefectServer::start();
    let (pool, prefix) = ("rollout-kill-pool", "rk-");
    let rollout = "{ waves = [[\"*\"]], verify = { runs = 2, timeout = \"300s\" } }";
    let p = project(&server.api_url(), pool, prefix, rollout);
    let client = PrefectClient::new(&server.api_url(), None).expect("client");
    let v1 = build(&p);
    run(&p, &["release", "--all", "--env", "prod", "--build", &v1, "--create-work-pools"]).success();
    p.write("flows/beta.py", &BETA_OK.replace("print(\"beta\")", "print(\"beta v2\")"));
    p.commit("v2");
    let v2 = build(&p);
    // --force: only beta's code changed, and both flows are to be verified.
    run(&p, &["rollout", "start", "--to", "prod", "--build", &v2, "--force", "--detach"]).success();

    // No worker yet: runs stay scheduled, so the watchers are killed mid-verification.
    let mut first = spawn_watch(&p);
    wait_for(&p, "verification", |s| s["body"]["phase"] == "verify");
    first.kill().expect("SIGKILL");
    first.wait().expect("reap");
    let mut second = spawn_watch(&p);
    let s = wait_for(&p, "recorded runs", |s| recorded_runs(s) == 4);
    assert_eq!(s["body"]["phase"], "verify");
    std::thread::sleep(Duration::from_secs(2)); // the watcher is polling the runs now
    second.kill().expect("SIGKILL");
    second.wait().expect("reap");

    let w = worker(&server, pool);
    let done = run(&p, &["rollout", "watch", "--env", "prod", "--interval", "1"]);
    assert_eq!(done.code, 0, "{}\n--- worker\n{}", done.stderr, w.log());
    let s = status(&p);
    assert_eq!(s["rollout"]["status"], "succeeded", "{s}");
    // Both flows moved to the new build: exactly two verification runs each, none twice.
    for name in ["rk-alpha", "rk-beta"] {
        let d = deployment(&client, name).await;
        let runs = client.read_flow_runs(&d.id, &[]).await.expect("runs");
        assert_eq!(runs.len(), 2, "{name}: no run was triggered twice: {runs:?}");
        assert!(runs.iter().all(|r| r.state_type() == "COMPLETED"), "{runs:?}");
    }
    let beta = deployment(&client, "rk-beta").await;
    assert_eq!(beta.version.as_deref(), Some(v2.as_str()));
    drop(w);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_trigger_a_wave_is_judged_by_the_deployments_own_runs() {
    let server = PrefectServer::start();
    let (pool, prefix) = ("rollout-own-pool", "ro-");
    let rollout = "{ waves = [[\"beta\"]], verify = { runs = 1, trigger = false, timeout = \"300s\" } }";
    let p = project(&server.api_url(), pool, prefix, rollout);
    let client = PrefectClient::new(&server.api_url(), None).expect("client");
    let v1 = build(&p);
    run(&p, &["release", "--all", "--env", "prod", "--build", &v1, "--create-work-pools"]).success();
    p.write("flows/beta.py", &BETA_OK.replace("print(\"beta\")", "print(\"beta v2\")"));
    p.commit("v2");
    let v2 = build(&p);
    run(&p, &["rollout", "start", "--to", "prod", "--build", &v2, "beta", "--detach"]).success();
    for _ in 0..3 {
        run(&p, &["rollout", "advance", "--env", "prod"]).success(); // release, sync, first look
    }
    let s = status(&p);
    assert_eq!(s["body"]["phase"], "verify", "{s}");
    let beta = deployment(&client, "ro-beta").await;
    assert!(client.read_flow_runs(&beta.id, &[]).await.expect("runs").is_empty(), "flowgate triggered nothing");

    // A run the deployment gets by itself (as from its schedule) decides the wave.
    let own = client.create_flow_run(&beta.id).await.expect("create run").id;
    let w = worker(&server, pool);
    let done = run(&p, &["rollout", "watch", "--env", "prod", "--interval", "1"]);
    assert_eq!(done.code, 0, "{}\n--- worker\n{}", done.stderr, w.log());
    let s = status(&p);
    assert_eq!(s["rollout"]["status"], "succeeded", "{s}");
    assert_eq!(s["body"]["waves"][0]["flows"][0]["runs"][0]["flow_run_id"], own.as_str(), "{s}");
    assert_eq!(
        client.read_flow_runs(&beta.id, &[]).await.expect("runs").len(),
        1,
        "still only the deployment's own run"
    );
    drop(w);
}
