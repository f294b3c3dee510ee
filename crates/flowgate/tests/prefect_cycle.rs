//! The release cycle against a real Prefect 3.9.1 server and process workers:
//! release, promote, release a new commit, roll back, each proven by the marker
//! a real run printed from a library file of the build; `which` names the build
//! of every run (a run created at v2 and executed after the rollback included).
//! The cycle runs twice: in direct mode, and with every command going through
//! a `flowgate serve` that protects both envs (same text, JSON and runs).
//! Then what a release must not disturb: a deployment paused by hand, and the
//! scheduled runs of a deployment whose build did not change.
//! One server per test binary; each test has its own pools and name prefixes.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::server::{create_token, Server};
use common::{bin, run};
use flowgate_prefect::{PrefectClient, ServerDeployment, Subject};
use flowgate_testkit::http::exchange;
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::{GitProject, Run};
use serde_json::{json, Value};

/// How long one run may take from creation to a terminal state.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the run's printed marker may take to reach the server's logs.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

fn server() -> &'static PrefectServer {
    static SERVER: OnceLock<PrefectServer> = OnceLock::new();
    SERVER.get_or_init(PrefectServer::start)
}

fn client() -> PrefectClient {
    PrefectClient::new(&server().api_url(), None).expect("client")
}

/// The flow prints a marker it imports from a library file, so a run proves
/// which bundle's `lib/` it executed, not only which entrypoint.
const REPORT_FLOW: &str = "from prefect import flow\nfrom lib.marker import MARKER\n\n\
@flow(name=\"report\", log_prints=True)\ndef report():\n    print(f\"marker-{MARKER}\")\n";

const NIGHTLY_FLOW: &str = "from prefect import flow\n\n\
@flow(name=\"nightly\", log_prints=True)\ndef nightly(days: int = 1):\n    print(f\"nightly {days}\")\n";

/// A project with `report` (and `nightly`, scheduled, when `with_nightly`),
/// marker `v1` committed; `envs` is the `[envs.*]` part of the config.
fn project(envs: &str, pool: &str, with_nightly: bool) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    let mut config = format!(
        "[project]\nname = \"cycle\"\n\n[flows.report]\nentrypoint = \"flows/report.py:report\"\nwork_pool = \"{pool}\"\n\n"
    );
    if with_nightly {
        config.push_str(&format!(
            "[flows.nightly]\nentrypoint = \"flows/nightly.py:nightly\"\nwork_pool = \"{pool}\"\n\
             schedules = [{{ cron = \"0 3 * * *\", timezone = \"UTC\" }}]\n\n"
        ));
        p.write("flows/nightly.py", NIGHTLY_FLOW);
    }
    config.push_str(envs);
    p.write("flowgate.toml", &config);
    p.write("flows/report.py", REPORT_FLOW);
    p.write("lib/marker.py", "MARKER = \"v1\"\n");
    p.commit("v1");
    p
}

/// How the cycle's commands reach the ledger and the Prefect server.
enum Mode {
    /// The CLI opens the project's ledger and store and talks to Prefect itself.
    Direct,
    /// Every command goes through a flowgate server, as a token's holder; the
    /// server protects the envs with its own placement (prefixes and pools).
    Served { server: Server, token: String, _dir: tempfile::TempDir },
}

impl Mode {
    /// A server protecting `qa` and `prod` of project `cycle` on the test's
    /// Prefect server, with `placement` (prefix, pool) for each; its ledger and
    /// store are its own, and a token with `releaser` on every env.
    fn served(qa: (&str, &str), prod: (&str, &str)) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).expect("the server's store");
        let url = server().api_url();
        let mut config = format!("ledger = \"{ledger}\"\nartifacts = \"file://{}\"\n", store.display());
        for (env, (prefix, pool)) in [("qa", qa), ("prod", prod)] {
            config.push_str(&format!(
                "\n[projects.cycle.envs.{env}]\nprefect_api_url = \"{url}\"\nname_prefix = \"{prefix}\"\nwork_pool = \"{pool}\"\n"
            ));
        }
        let config_file = dir.path().join("server.toml");
        std::fs::write(&config_file, config).expect("the server's config");
        let token = create_token(dir.path(), &ledger, "ci", &["--role", "releaser"]);
        let server = Server::start(&["--config", &config_file.display().to_string()]);
        Self::Served { server, token, _dir: dir }
    }

    fn run(&self, p: &GitProject, args: &[&str]) -> Run {
        match self {
            Self::Direct => run(p, args),
            Self::Served { server, token, .. } => {
                let url = format!("http://127.0.0.1:{}", server.port);
                p.run_with_env(bin(), args, &[("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", token.as_str())])
            }
        }
    }

    /// Builds HEAD; returns the build id.
    fn build(&self, p: &GitProject) -> String {
        let built = self.run(p, &["build", "--json"]).success().json();
        built["build"]["id"].as_str().expect("build id").to_string()
    }

    fn which_build(&self, p: &GitProject, run_id: &str, env: &str) -> Value {
        let which = self.run(p, &["which", run_id, "--env", env, "--json"]).success().json();
        which["build"].clone()
    }
}

/// Builds HEAD in direct mode; returns the build id.
fn build(p: &GitProject) -> String {
    Mode::Direct.build(p)
}

async fn deployment(client: &PrefectClient, name: &str) -> ServerDeployment {
    let found = client.read_deployments(&[name.to_string()]).await.expect("read deployments");
    found.into_iter().find(|d| d.name == name).unwrap_or_else(|| panic!("no deployment `{name}` on the server"))
}

/// Triggers a run of deployment `name`; returns its id.
async fn trigger(client: &PrefectClient, name: &str) -> String {
    let d = deployment(client, name).await;
    client.create_flow_run(&d.id).await.expect("create flow run").id
}

/// Waits (bounded) for run `id` to complete, then for `marker` in its logs; no other marker may show.
async fn expect_marker(client: &PrefectClient, id: &str, marker: &str, worker: &PrefectWorker) {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let current = client.read_flow_run(id).await.expect("read run");
        if ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].contains(&current.state_type()) {
            assert_eq!(current.state_type(), "COMPLETED", "{:?}\n--- worker\n{}", current.state, worker.log());
            break;
        }
        assert!(Instant::now() < deadline, "run `{id}` stuck in {:?}\n--- worker\n{}", current.state, worker.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        let logs = client.read_logs(id).await.expect("read logs");
        let markers: Vec<&str> = logs.iter().map(|l| l.message.as_str()).filter(|m| m.starts_with("marker-")).collect();
        if !markers.is_empty() {
            assert_eq!(markers, vec![format!("marker-{marker}")], "run `{id}`");
            return;
        }
        assert!(Instant::now() < deadline, "run `{id}` logged no marker: {logs:?}\n--- worker\n{}", worker.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn worker(pool: &str) -> PrefectWorker {
    let bin_dir = Path::new(bin()).parent().expect("bin dir").to_path_buf();
    PrefectWorker::start(&server().api_url(), pool, Some(&bin_dir))
}

#[tokio::test(flavor = "multi_thread")]
async fn release_promote_release_rollback_each_run_executes_the_moved_build() {
    let url = server().api_url();
    let envs = format!(
        "[envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"cq-\"\n\n\
         [envs.prod]\nprefect_api_url = \"{url}\"\nname_prefix = \"cp-\"\n\n\
         [envs.qa.flows.report]\nwork_pool = \"cycle-qa-pool\"\n\n[envs.prod.flows.report]\nwork_pool = \"cycle-prod-pool\"\n"
    );
    let p = project(&envs, "unused-pool", false);
    cycle(&Mode::Direct, &p, ("cq-", "cycle-qa-pool"), ("cp-", "cycle-prod-pool")).await;
}

/// The same cycle with every command through a flowgate server: the project's
/// own ledger and store are never opened, the server's placement is used.
#[tokio::test(flavor = "multi_thread")]
async fn the_cycle_through_a_server_runs_the_moved_builds_and_which_names_them() {
    // The project's envs are on a dead address with other prefixes and pools:
    // only the server's placement can make these deployments.
    let envs = "[envs.qa]\nprefect_api_url = \"http://127.0.0.1:9/api\"\nname_prefix = \"laptop-qa-\"\n\n\
         [envs.prod]\nprefect_api_url = \"http://127.0.0.1:9/api\"\nname_prefix = \"laptop-prod-\"\n";
    let p = project(envs, "laptop-pool", false);
    let (qa, prod) = (("sq-", "served-qa-pool"), ("sp-", "served-prod-pool"));
    let mode = Mode::served(qa, prod);
    let (v1, run_prod_v1) = cycle(&mode, &p, qa, prod).await;
    assert!(!p.path().join(".flowgate/ledger.db").exists(), "a command opened the project's own ledger");
    let Mode::Served { server, token, .. } = &mode else { unreachable!() };

    // The dashboard shows the same: the matrix with the protected envs' sync
    // state, the build with the parameter schema it carries, `which` of a run.
    let bearer = format!("Bearer {token}");
    let page = |path: &str| {
        let answer = exchange(server.port, "GET", path, &[("Authorization", bearer.as_str())], b"");
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answer.body
    };
    let matrix = page("/projects/cycle");
    assert!(matrix.contains("<th>qa</th><th>prod</th>") && matrix.contains("class=\"sync-synced\""), "{matrix}");
    let shown = page(&format!("/projects/cycle/builds/{v1}"));
    for needle in ["<summary>report</summary>", "&quot;type&quot;: &quot;object&quot;", "<td>prod</td><td>report</td>"]
    {
        assert!(shown.contains(needle), "missing {needle}: {shown}");
    }
    let which = page(&format!("/projects/cycle/which?env=prod&run={run_prod_v1}"));
    assert!(which.contains(&v1), "{which}");

    let log = server.log();
    for path in ["/builds", "/envs/qa/releases", "/envs/prod/promotions", "/envs/qa/rollbacks", "/envs/qa/flow-runs/"] {
        assert!(log.contains(&format!("path=/api/v1/projects/cycle{path}")), "no request to {path}:\n{log}");
    }
}

/// Release v1 to qa, promote to prod, release v2 to qa, roll qa back; each
/// run prints the marker of the build it executed, and `which` names it.
async fn cycle(
    mode: &Mode,
    p: &GitProject,
    (qa_prefix, qa_pool): (&str, &str),
    (prod_prefix, prod_pool): (&str, &str),
) -> (String, String) {
    let (qa_name, prod_name) = (format!("{qa_prefix}report"), format!("{prod_prefix}report"));
    let (qa_name, prod_name) = (qa_name.as_str(), prod_name.as_str());
    let client = client();
    let v1 = mode.build(p);

    // First release creates the pool; the deployment runs v1.
    let released = mode
        .run(p, &["release", "report", "--env", "qa", "--build", &v1, "--create-work-pools", "--json"])
        .success()
        .json();
    assert_eq!(released["sync"]["created_work_pools"], json!([qa_pool]), "{released}");
    assert_eq!(released["sync"]["created"], json!([qa_name]), "{released}");
    let mut qa_worker = worker(qa_pool);
    let run_qa_v1 = trigger(&client, qa_name).await;
    expect_marker(&client, &run_qa_v1, "v1", &qa_worker).await;

    // Promote: prod gets exactly qa's build, in its own pool.
    let promoted =
        mode.run(p, &["promote", "--from", "qa", "--to", "prod", "--create-work-pools", "--json"]).success().json();
    assert_eq!(promoted["moves"][0]["build"], json!(v1), "{promoted}");
    assert_eq!(promoted["sync"]["created"], json!([prod_name]), "{promoted}");
    assert_eq!(deployment(&client, prod_name).await.work_pool_name.as_deref(), Some(prod_pool));
    let prod_worker = worker(prod_pool);
    let run_prod_v1 = trigger(&client, prod_name).await;
    expect_marker(&client, &run_prod_v1, "v1", &prod_worker).await;

    // A new commit changes only the library file; released to qa, runs print v2.
    p.write("lib/marker.py", "MARKER = \"v2\"\n");
    p.commit("v2");
    let v2 = mode.build(p);
    assert_ne!(v1, v2);
    let released = mode.run(p, &["release", "report", "--env", "qa", "--build", &v2, "--json"]).success().json();
    assert_eq!(released["sync"]["updated"][0]["name"], json!(qa_name), "{released}");
    let run_qa_v2 = trigger(&client, qa_name).await;
    expect_marker(&client, &run_qa_v2, "v2", &qa_worker).await;
    assert_eq!(deployment(&client, prod_name).await.version.as_deref(), Some(v1.as_str()), "prod untouched");

    // A run created at v2 but held (no worker polls qa) until after the rollback runs v1.
    drop(qa_worker);
    let held = trigger(&client, qa_name).await;
    let rolled = mode.run(p, &["rollback", "report", "--env", "qa", "--json"]).success().json();
    assert_eq!(rolled["moves"][0]["build"], json!(v1), "{rolled}");
    assert_eq!(deployment(&client, qa_name).await.version.as_deref(), Some(v1.as_str()));
    qa_worker = worker(qa_pool);
    expect_marker(&client, &held, "v1", &qa_worker).await;
    let run_qa_back = trigger(&client, qa_name).await;
    expect_marker(&client, &run_qa_back, "v1", &qa_worker).await;
    assert_eq!(
        client.read_flow_run(&held).await.expect("read held run").deployment_version.as_deref(),
        Some(v2.as_str()),
        "the server reports the version the held run was created at"
    );

    // `which` names the build each run actually executed.
    for (run_id, env, expected) in [
        (&run_qa_v1, "qa", &v1),
        (&run_prod_v1, "prod", &v1),
        (&run_qa_v2, "qa", &v2),
        (&held, "qa", &v1),
        (&run_qa_back, "qa", &v1),
    ] {
        assert_eq!(mode.which_build(p, run_id, env), json!(expected), "run `{run_id}` in `{env}`");
    }
    drop((qa_worker, prod_worker));
    (v1, run_prod_v1)
}

/// SCHEDULED runs of a deployment, by id.
async fn scheduled_runs(client: &PrefectClient, deployment_id: &str) -> Vec<String> {
    let runs = client.read_flow_runs(deployment_id, &["SCHEDULED"]).await.expect("read flow runs");
    let mut ids: Vec<String> = runs.into_iter().map(|r| r.id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_keeps_a_hand_paused_deployment_paused_and_another_flows_scheduled_runs() {
    let url = server().api_url();
    let envs = format!("[envs.stage]\nprefect_api_url = \"{url}\"\nname_prefix = \"sch-\"\n");
    let p = project(&envs, "sched-pool", true);
    let client = client();
    let b1 = build(&p);
    let released = run(&p, &["release", "--all", "--env", "stage", "--build", &b1, "--create-work-pools", "--json"])
        .success()
        .json();
    assert_eq!(released["sync"]["created"], json!(["sch-nightly", "sch-report"]), "{released}");

    // By hand: pause `report`; let the server schedule `nightly`'s upcoming runs now.
    let report = deployment(&client, "sch-report").await;
    client.update_deployment(&report.id, &json!({"paused": true}), &Subject::default()).await.expect("pause");
    let nightly = deployment(&client, "sch-nightly").await;
    client.schedule_runs(&nightly.id).await.expect("schedule runs");
    let before = scheduled_runs(&client, &nightly.id).await;
    assert!(!before.is_empty(), "the server scheduled no run of `sch-nightly`");

    // A new build of `report` only.
    p.write("lib/marker.py", "MARKER = \"v2\"\n");
    p.commit("v2");
    let b2 = build(&p);
    let released = run(&p, &["release", "report", "--env", "stage", "--build", &b2, "--json"]).success().json();
    assert_eq!(released["sync"]["updated"][0]["name"], json!("sch-report"), "{released}");
    assert_eq!(released["sync"]["unchanged"], json!(["sch-nightly"]), "{released}");

    let report = deployment(&client, "sch-report").await;
    assert_eq!(report.version.as_deref(), Some(b2.as_str()));
    assert!(report.paused, "the release unpaused `sch-report`");
    let nightly_after = deployment(&client, "sch-nightly").await;
    assert_eq!(nightly_after.version.as_deref(), Some(b1.as_str()));
    let after = scheduled_runs(&client, &nightly.id).await;
    for id in &before {
        assert!(
            after.contains(id),
            "scheduled run `{id}` of `sch-nightly` is gone: before {before:?}, after {after:?}"
        );
    }

    // Right after, a sync has nothing to send, and the plan agrees.
    let synced = run(&p, &["sync", "--env", "stage", "--json"]).success().json();
    assert_eq!(synced["writes"], json!(0), "{synced}");
    assert_eq!(synced["unchanged"], json!(["sch-nightly", "sch-report"]), "{synced}");
    assert!(deployment(&client, "sch-report").await.paused);
    assert_eq!(scheduled_runs(&client, &nightly.id).await, after);
}
