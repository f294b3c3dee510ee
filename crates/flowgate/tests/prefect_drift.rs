//! Drift in `flowgate status` against a real Prefect 3.9.1 server: a deployment
//! edited by hand shows as `drift` with the differing fields, `sync` repairs it,
//! and an unreachable server makes its env `unknown` without failing the status.
//! Drift read again and again is one notification.

mod common;

use common::run;
use flowgate_prefect::{PrefectClient, Subject};
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::GitProject;
use serde_json::{json, Value};

const FLOW: &str = r#"from prefect import flow


@flow(name="hello-flow")
def hello(name: str = "world"):
    print(f"hello {name}")
"#;

/// qa and prod on `qa_url`/`prod_url` (one pool, prefixed names); staging ledger-only.
fn config(qa_url: &str, prod_url: &str) -> String {
    format!(
        "[project]\nname = \"acme\"\n\n[flows.hello]\nentrypoint = \"flows/hello.py:hello\"\nwork_pool = \"drift-pool\"\n\n\
         [envs.qa]\nprefect_api_url = \"{qa_url}\"\nname_prefix = \"qa-\"\n\n\
         [envs.prod]\nprefect_api_url = \"{prod_url}\"\nname_prefix = \"prod-\"\n\n\
         [envs.staging]\n"
    )
}

/// The `hello` cell of `env` in `status --json` (all envs unless `only` is given).
fn cell(p: &GitProject, env: &str, only: bool) -> Value {
    let mut args = vec!["status", "--json"];
    if only {
        args.extend(["--env", env]);
    }
    let status = run(p, &args).success().json();
    let index = status["envs"].as_array().unwrap().iter().position(|e| e == env).expect("env listed");
    status["flows"][0]["cells"][index].clone()
}

/// A URL where no server listens: a port the OS just handed out and took back.
/// The ledger's `drift.found` events, as (id, env, type).
async fn drift_events(p: &GitProject) -> Vec<(String, String, String)> {
    let url: flowgate_ledger::LedgerUrl = common::LEDGER_URL.parse().unwrap();
    let claim = common::project_claim(p.path()).unwrap();
    let ledger = flowgate_ledger::testing::open(&url, p.path(), &claim).await.unwrap();
    ledger.events().await.unwrap().into_iter().filter(|(_, _, kind)| kind == "drift.found").collect()
}

fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/api")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_edit_is_drift_until_sync_and_a_dead_server_is_unknown() {
    let server = PrefectServer::start();
    let url = server.api_url();
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flowgate.toml", &config(&url, &url));
    p.write("flows/hello.py", FLOW);
    p.commit("hello");
    let build = run(&p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    for env in ["qa", "prod"] {
        run(&p, &["release", "hello", "--env", env, "--build", &build, "--create-work-pools"]).success();
    }
    run(&p, &["release", "hello", "--env", "staging", "--build", &build]).success();

    let qa = cell(&p, "qa", false);
    assert_eq!(qa["sync"], "synced", "{qa:#}");
    assert!(qa.get("drift").is_none(), "{qa:#}");
    let staging = cell(&p, "staging", false);
    assert!(staging.get("sync").is_none(), "a ledger-only env has no sync state: {staging:#}");

    // Someone edits qa's deployment by hand: version and pull steps.
    let client = PrefectClient::new(&url, None).unwrap();
    let all = client.read_deployments(&["qa-hello".into()]).await.expect("read");
    let id = all.into_iter().find(|d| d.name == "qa-hello").expect("qa-hello deployed").id;
    client
        .update_deployment(&id, &json!({"version": "edited-by-hand", "pull_steps": []}), &Subject::default())
        .await
        .expect("hand edit");

    let qa = cell(&p, "qa", true);
    assert_eq!(qa["sync"], "drift", "{qa:#}");
    let fields: Vec<&str> = qa["drift"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["version", "pull_steps"], "{qa:#}");
    assert_eq!(qa["drift"][0]["server"], "edited-by-hand", "{qa:#}");
    assert_eq!(qa["drift"][0]["ledger"], json!(build), "{qa:#}");
    assert_eq!(qa["drift"][1]["server"], json!([]), "{qa:#}");
    assert_eq!(cell(&p, "prod", false)["sync"], "synced", "prod's deployment was not edited");
    let text = run(&p, &["status"]).success().stdout;
    assert!(text.contains("(drift: version, pull_steps)"), "{text}");
    // Read by every status above, the same drift is one `drift.found` event for the env's webhooks.
    let events = drift_events(&p).await;
    assert_eq!(events.iter().map(|(_, env, _)| env.as_str()).collect::<Vec<_>>(), ["qa"], "{events:?}");

    // sync repairs it, and the status is clean again.
    run(&p, &["sync", "--env", "qa"]).success();
    let qa = cell(&p, "qa", false);
    assert_eq!(qa["sync"], "synced", "{qa:#}");
    assert!(qa.get("drift").is_none(), "{qa:#}");
    let text = run(&p, &["status"]).success().stdout;
    assert!(!text.contains("drift") && !text.contains("unknown"), "{text}");

    // prod's server goes away: status without --env still answers, prod unknown.
    p.write("flowgate.toml", &config(&url, &dead_url()));
    let out = run(&p, &["status", "--json"]).success();
    let status = out.json();
    let envs: Vec<&str> = status["envs"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    let at = |env: &str| status["flows"][0]["cells"][envs.iter().position(|e| *e == env).unwrap()].clone();
    assert_eq!(at("prod")["sync"], "unknown", "{status:#}");
    assert_eq!(at("qa")["sync"], "synced", "{status:#}");
    assert!(at("staging").get("sync").is_none(), "{status:#}");
    assert!(out.stderr.contains("env `prod`") && out.stderr.contains("`unknown`"), "{}", out.stderr);
    let text = run(&p, &["status"]).success().stdout;
    assert!(text.contains("(unknown)"), "{text}");
}
