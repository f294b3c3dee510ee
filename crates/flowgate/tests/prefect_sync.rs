//! `flowgate release` / `sync` / `plan` / `status` against a real Prefect 3.9.1
//! server: one server per test binary, each test with its own work pool and
//! deployment-name prefix so tests never see each other's deployments.

mod common;

use std::sync::OnceLock;

use common::run;
use flowgate_prefect::{PrefectClient, ServerDeployment};
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::GitProject;
use serde_json::Value;

fn server() -> &'static PrefectServer {
    static SERVER: OnceLock<PrefectServer> = OnceLock::new();
    SERVER.get_or_init(PrefectServer::start)
}

const FLOW: &str = r#"from prefect import flow


@flow(name="hello-flow")
def hello(name: str = "world", times: int = 1):
    """Says hello."""
    print(f"hello {name}" * times)
"#;

/// A project with one flow `hello` and an env `qa` on `api_url`, deployments
/// prefixed `prefix` in work pool `pool`; committed and built. Returns the build id.
fn project(api_url: &str, prefix: &str, pool: &str) -> (GitProject, String) {
    let p = GitProject::new();
    p.write("flowgate.toml", &config(api_url, prefix, pool));
    p.write("flows/hello.py", FLOW);
    p.commit("hello");
    let build = run(&p, &["build", "--json"]).success().json();
    let id = build["build"]["id"].as_str().expect("build id").to_string();
    (p, id)
}

fn config(api_url: &str, prefix: &str, pool: &str) -> String {
    format!(
        "[project]\nname = \"acme\"\n\n[flows.hello]\nentrypoint = \"flows/hello.py:hello\"\nwork_pool = \"{pool}\"\ntags = [\"etl\"]\n\n[envs.qa]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"{prefix}\"\n"
    )
}

fn deployments(prefix: &str) -> Vec<ServerDeployment> {
    let client = PrefectClient::new(&server().api_url(), None).expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut all = runtime.block_on(client.read_deployments(&[])).expect("read deployments");
    all.retain(|d| d.name.starts_with(prefix));
    all
}

fn cell_sync(p: &GitProject) -> Value {
    let status = run(p, &["status", "--env", "qa", "--json"]).success().json();
    status["flows"][0]["cells"][0]["sync"].clone()
}

/// A URL where no server listens: a port the OS just handed out and took back.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/api")
}

#[test]
fn missing_pool_then_created_then_second_sync_sends_nothing() {
    let (prefix, pool) = ("t1-", "t1-pool");
    let (p, build) = project(&server().api_url(), prefix, pool);

    // The pool does not exist: the move is recorded, the error names the pool and env.
    let failed = run(&p, &["release", "hello", "--env", "qa", "--build", &build]).expect_code(1);
    assert!(failed.stderr.contains(&format!("`{pool}`")), "{}", failed.stderr);
    assert!(failed.stderr.contains("env `qa`"), "{}", failed.stderr);
    assert!(failed.stderr.contains("flowgate sync --env qa"), "{}", failed.stderr);
    assert!(failed.stderr.contains("--create-work-pools"), "{}", failed.stderr);
    assert_eq!(cell_sync(&p), "pending sync");
    assert!(deployments(prefix).is_empty());

    // The plan shows the create and the missing pool; it sends nothing.
    let plan = run(&p, &["plan", "--env", "qa", "--json"]).success().json();
    assert_eq!(plan["deployments"][0]["action"], "create", "{plan}");
    assert_eq!(plan["missing_work_pools"][0][0], pool, "{plan}");

    let synced = run(&p, &["sync", "--env", "qa", "--create-work-pools", "--json"]).success().json();
    assert_eq!(synced["created_work_pools"], serde_json::json!([pool]), "{synced}");
    assert_eq!(synced["created"], serde_json::json!(["t1-hello"]), "{synced}");
    assert_eq!(cell_sync(&p), "synced");

    // The deployment runs exactly this build, with the schema of its entrypoint.
    let found = deployments(prefix);
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!((d.name.as_str(), d.flow_name.as_str()), ("t1-hello", "hello-flow"));
    assert_eq!(d.version.as_deref(), Some(build.as_str()));
    for tag in ["flowgate", "etl", &format!("flowgate-build:{build}")] {
        assert!(d.tags.iter().any(|t| t == tag), "tag `{tag}` missing: {:?}", d.tags);
    }
    let steps = serde_json::to_string(&d.pull_steps).unwrap();
    assert!(steps.contains(&format!("flowgate pull {build} --store ")), "{steps}");
    let schema = d.parameter_openapi_schema.clone().unwrap_or_default();
    assert_eq!(schema["properties"]["name"]["default"], "world", "{schema}");
    assert_eq!(schema["properties"]["times"]["type"], "integer", "{schema}");
    assert_eq!(d.description.as_deref(), Some("Says hello."));

    // Again: nothing is sent, and the plan says unchanged.
    let again = run(&p, &["sync", "--env", "qa", "--json"]).success().json();
    assert_eq!((again["writes"].as_u64(), again["unchanged"].clone()), (Some(0), serde_json::json!(["t1-hello"])));
    let plan = run(&p, &["plan", "--env", "qa", "--json"]).success().json();
    assert_eq!(plan["deployments"][0]["action"], "unchanged", "{plan}");
    // A release of the same build (a re-run CI job) sends nothing either.
    let rerun = run(&p, &["release", "hello", "--env", "qa", "--build", &build, "--json"]).success().json();
    assert_eq!(rerun["sync"]["writes"].as_u64(), Some(0), "{rerun}");
}

#[test]
fn server_down_keeps_the_move_pending_and_sync_converges() {
    let (prefix, pool) = ("t2-", "t2-pool");
    let (p, build) = project(&dead_url(), prefix, pool);
    let failed = run(&p, &["release", "hello", "--env", "qa", "--build", &build]).expect_code(1);
    assert!(failed.stderr.contains("The move is recorded in the ledger"), "{}", failed.stderr);
    assert!(failed.stderr.contains("flowgate sync --env qa"), "{}", failed.stderr);
    let history = run(&p, &["history", "hello", "--env", "qa", "--json"]).success().stdout;
    assert!(history.contains(&build), "{history}");
    assert_eq!(cell_sync(&p), "pending sync");
    let status = run(&p, &["status", "--env", "qa"]).success().stdout;
    assert!(status.contains("pending sync"), "{status}");

    // The server is back (here: the env now names a live one): sync converges.
    p.write("flowgate.toml", &config(&server().api_url(), prefix, pool));
    let synced = run(&p, &["sync", "--env", "qa", "--create-work-pools", "--json"]).success().json();
    assert_eq!(synced["created"], serde_json::json!(["t2-hello"]), "{synced}");
    assert_eq!(cell_sync(&p), "synced");
    let status = run(&p, &["status", "--env", "qa"]).success().stdout;
    assert!(!status.contains("pending"), "{status}");
}

#[test]
fn ledger_only_envs_never_sync_and_a_missing_auth_variable_is_a_usage_error() {
    let p = GitProject::new();
    let mut text = config(&server().api_url(), "t3-", "t3-pool");
    text.push_str("prefect_auth = { env = \"FLOWGATE_TEST_UNSET_AUTH\", scheme = \"basic\" }\n\n[envs.lab]\n");
    p.write("flowgate.toml", &text);
    p.write("flows/hello.py", FLOW);
    p.commit("hello");
    let build = run(&p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    let before = common::ledger_dump(&p).unwrap();
    let err = run(&p, &["release", "hello", "--env", "qa", "--build", &build]).expect_code(2);
    assert!(err.stderr.contains("`FLOWGATE_TEST_UNSET_AUTH`"), "{}", err.stderr);
    assert_eq!(common::ledger_dump(&p).unwrap(), before, "nothing moved");
    // `lab` has no server: the release is recorded and nothing is synced.
    let moved = run(&p, &["release", "hello", "--env", "lab", "--build", &build, "--json"]).success().json();
    assert!(moved.get("sync").is_none(), "{moved}");
    let err = run(&p, &["sync", "--env", "lab"]).expect_code(2);
    assert!(err.stderr.contains("ledger-only"), "{}", err.stderr);
}
