//! Rollouts driven by the server: `rollout start` through a flowgate server
//! records the rollout and returns, and the server's replicas drive it (release,
//! sync, verify, automatic rollback). Two replicas share one PostgreSQL ledger;
//! the one driving a rollout is killed with SIGKILL while the rollout waits on
//! its verification runs, and the other takes it over within 30 s and finishes
//! it without triggering a verification run twice. Against a real Prefect
//! server and a process worker that runs the flows from the server's store.
//! The replicas deliver the rollouts' notifications to a local receiver: each
//! wave passed, failed and rolled back, and each release, under one key each.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::server::{create_token, Server};
use flowgate_prefect::{PrefectClient, ServerDeployment};
use flowgate_testkit::postgres::Database;
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::receiver::Receiver;
use flowgate_testkit::{GitProject, Run};
use serde_json::Value;

const POOL: &str = "served-rollouts";

fn flow(name: &str, body: &str) -> String {
    format!("from prefect import flow\n\n@flow(name=\"{name}\", log_prints=True)\ndef {name}():\n    {body}\n")
}

/// Project `rollouts`: flows alpha and beta; its own `prod` points at a dead
/// address, so only the server's placement can deploy anything.
fn project(ledger: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"rollouts\"\nledger = \"{ledger}\"\n\n\
             [flows.alpha]\nentrypoint = \"flows/alpha.py:alpha\"\nwork_pool = \"laptop-pool\"\n\n\
             [flows.beta]\nentrypoint = \"flows/beta.py:beta\"\nwork_pool = \"laptop-pool\"\n\n\
             [envs.prod]\nprefect_api_url = \"http://127.0.0.1:9/api\"\n"
        ),
    );
    p.write("flows/alpha.py", &flow("alpha", "print(\"alpha v1\")"));
    p.write("flows/beta.py", &flow("beta", "print(\"beta v1\")"));
    p.commit("v1");
    p
}

/// `flowgate ARGS` in `p` through the server at `port` as the token's holder.
fn through(p: &GitProject, port: u16, token: &str, args: &[&str]) -> Run {
    let url = format!("http://127.0.0.1:{port}");
    p.run_with_env(common::bin(), args, &[("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", token)])
}

/// The env's rollout as the server at `server` answers for it.
fn rollout(server: &Server, token: &str) -> Value {
    let (status, view) = server.get("/api/v1/projects/rollouts/envs/prod/rollout", Some(token));
    assert_eq!(status, 200, "{view}");
    view
}

/// Waits (bounded) until the rollout satisfies `done`; its view then.
fn wait_for(server: &Server, token: &str, what: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let view = rollout(server, token);
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "the rollout never reached {what}: {view}\n--- log\n{}", server.log());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn recorded_runs(view: &Value) -> usize {
    view["body"]["waves"][0]["flows"]
        .as_array()
        .map_or(0, |f| f.iter().map(|f| f["runs"].as_array().map_or(0, Vec::len)).sum())
}

async fn deployment(client: &PrefectClient, name: &str) -> ServerDeployment {
    let found = client.read_deployments(&[name.to_string()]).await.expect("read deployments");
    found.into_iter().find(|d| d.name == name).unwrap_or_else(|| panic!("no deployment `{name}`"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_drives_rollouts_and_a_second_replica_takes_over_from_a_killed_one() {
    let Some(database) = Database::create("server_rollouts") else { return };
    let ledger = database.url();
    let prefect = PrefectServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "ledger = \"{ledger}\"\nartifacts = \"file://{}\"\n\n[projects.rollouts.envs.prod]\n\
             prefect_api_url = \"{}\"\nname_prefix = \"sr-\"\nwork_pool = \"{POOL}\"\n\
             rollout = {{ waves = [[\"*\"]], verify = {{ runs = 1, timeout = \"300s\" }} }}\n\n\
             [notify]\npoll = \"200ms\"\n\n\
             [[webhooks]]\nname = \"releases\"\nurl = {{ env = \"HOOK_URL\" }}\nsecret = {{ env = \"HOOK_KEY\" }}\n",
            store.display(),
            prefect.api_url()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let p = project(&ledger);
    common::run(&p, &["builds"]).success(); // registers the project in the ledger
    let ci = create_token(dir.path(), &ledger, "ci", &["--role", "releaser:prod"]);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let receiver = Receiver::start();
    let hook = receiver.url("/releases");
    let hook_env = [("HOOK_URL", hook.as_str()), ("HOOK_KEY", "key")];
    let mut replicas = [
        Server::start_with_env(&["--config", &config, "--replica", "replica-a"], &hook_env),
        Server::start_with_env(&["--config", &config, "--replica", "replica-b"], &hook_env),
    ];
    let port = replicas[0].port;
    let client = PrefectClient::new(&prefect.api_url(), None).expect("client");

    through(&p, port, &ci, &["build"]).success();
    let release = ["release", "--all", "--env", "prod", "--build", "HEAD", "--create-work-pools"];
    through(&p, port, &ci, &release).success();
    p.write("flows/beta.py", &flow("beta", "print(\"beta v2\")"));
    p.commit("v2");
    let v2 = through(&p, port, &ci, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();

    // A viewer may not start one; the releaser's start is recorded and returns.
    // --force: only beta's code changed, and the rollout is to hold both flows.
    let start =
        ["rollout", "start", "--to", "prod", "--build", "HEAD", "--force", "--reason", "weekly", "--detach", "--json"];
    let refused = through(&p, port, &viewer, &start).expect_code(3);
    assert!(refused.stderr.contains("`viewer` lacks the `releaser` role on env `prod`"), "{}", refused.stderr);
    let started = through(&p, port, &ci, &start).success().json();
    let id = started["rollout"]["id"].as_str().expect("a recorded rollout").to_string();
    assert_eq!(started["rollout"]["actor"], "ci", "{started}");
    let advance = through(&p, port, &ci, &["rollout", "advance", "--env", "prod"]).expect_code(2);
    assert!(advance.stderr.contains("drives the rollouts of `prod`"), "{}", advance.stderr);

    // No worker yet: the runs stay scheduled, so the rollout waits in verification.
    let waiting = wait_for(&replicas[1], &viewer, "its verification runs", Duration::from_secs(120), |v| {
        v["body"]["phase"] == "verify" && recorded_runs(v) == 2
    });
    let holder = waiting["driver"]["holder"].as_str().expect("a driving replica").to_string();
    let (dead, alive) = if holder == "replica-a" { (0, 1) } else { (1, 0) };
    replicas[dead].kill();
    let killed_at = Instant::now();
    let survivor = if alive == 0 { "replica-a" } else { "replica-b" };
    let taken = wait_for(&replicas[alive], &viewer, "another replica", Duration::from_secs(60), |v| {
        v["driver"]["holder"] == survivor
    });
    let takeover = killed_at.elapsed();
    eprintln!("{survivor} took the rollout over {takeover:?} after the kill");
    assert!(takeover < Duration::from_secs(30), "took {takeover:?} to take over: {taken}");
    assert_eq!(recorded_runs(&taken), 2, "{taken}");

    // With a worker the runs complete; `rollout watch` through the survivor follows it to the end.
    let bin_dir = Path::new(common::bin()).parent().unwrap().to_path_buf();
    let worker = PrefectWorker::start(&prefect.api_url(), POOL, Some(&bin_dir));
    let watched = through(&p, replicas[alive].port, &viewer, &["rollout", "watch", "--env", "prod"]);
    assert_eq!(
        watched.code,
        0,
        "{}\n--- worker\n{}\n--- server\n{}",
        watched.stderr,
        worker.log(),
        replicas[alive].log()
    );
    assert!(watched.stdout.contains(&format!("Rollout {id} into `prod`: succeeded")), "{}", watched.stdout);
    for name in ["sr-alpha", "sr-beta"] {
        let d = deployment(&client, name).await;
        assert_eq!(d.version.as_deref(), Some(v2.as_str()), "{name}");
        let runs = client.read_flow_runs(&d.id, &[]).await.expect("runs");
        assert_eq!(runs.len(), 1, "{name}: no verification run was triggered twice: {runs:?}");
        assert!(runs.iter().all(|r| r.state_type() == "COMPLETED"), "{runs:?}");
    }
    // Its moves were made as the verified caller who started it.
    let history = through(&p, replicas[alive].port, &viewer, &["history", "beta", "--env", "prod", "--json"]);
    let history = history.success().json();
    assert_eq!(
        (history[0]["actor"].as_str(), history[0]["audit"]["rollout"].as_str()),
        (Some("ci"), Some(id.as_str())),
        "{history}"
    );
    assert_eq!(history[0]["audit"]["verified"]["subject"], "ci", "{history}");

    // A wave whose flow raises fails verification; the server rolls it back by
    // itself, and `rollout start` without --detach follows it to the failure.
    p.write("flows/beta.py", &flow("beta", "raise RuntimeError(\"beta is broken\")"));
    p.commit("v3: beta raises");
    through(&p, replicas[alive].port, &ci, &["build"]).success();
    let failed =
        through(&p, replicas[alive].port, &ci, &["rollout", "start", "--to", "prod", "--build", "HEAD", "--force"]);
    assert_eq!(failed.code, 1, "{}\n--- worker\n{}", failed.stderr, worker.log());
    assert!(failed.stderr.contains("beta") && failed.stderr.contains("FAILED"), "{}", failed.stderr);
    let view = rollout(&replicas[alive], &viewer);
    assert_eq!(view["rollout"]["status"], "failed", "{view}");
    assert_eq!(view["body"]["waves"][0]["outcome"], "rolled_back", "{view}");
    for name in ["sr-alpha", "sr-beta"] {
        assert_eq!(deployment(&client, name).await.version.as_deref(), Some(v2.as_str()), "{name} is back on v2");
    }
    drop(worker);

    // The notifications: the CLI's release, each rollout's releases and
    // waves, and the automatic rollback. A replica killed while posting may
    // have sent one twice, always under the same key: count keys, not posts.
    let second = view["rollout"]["id"].as_str().unwrap().to_string();
    let wanted = [
        ("release", None),
        ("release", Some(id.as_str())),
        ("rollout.wave_passed", Some(id.as_str())),
        ("release", Some(second.as_str())),
        ("rollout.wave_failed", Some(second.as_str())),
        ("rollout.rolled_back", Some(second.as_str())),
        ("rollback", Some(second.as_str())),
    ];
    let events = |got: &[flowgate_testkit::receiver::Received]| {
        let mut seen: Vec<(String, Option<String>, String)> = got
            .iter()
            .map(|r| {
                let body = r.json();
                let rollout = body["rollout"].as_str().map(String::from);
                (body["type"].as_str().unwrap_or_default().to_string(), rollout, body["id"].to_string())
            })
            .collect();
        seen.sort();
        seen.dedup();
        seen
    };
    let got = receiver.wait_for("every rollout notification", Duration::from_secs(30), |got| {
        let seen = events(got);
        wanted.iter().all(|(kind, rollout)| seen.iter().any(|(k, r, _)| k == kind && r.as_deref() == *rollout))
    });
    let seen = events(&got);
    assert_eq!(seen.len(), wanted.len(), "one key per event: {seen:#?}");
    let rolled_back = got.iter().map(|r| r.json()).find(|b| b["type"] == "rollout.rolled_back").unwrap();
    assert_eq!(rolled_back["flows"][0]["previous_build"], v2.as_str(), "{rolled_back}");
}
