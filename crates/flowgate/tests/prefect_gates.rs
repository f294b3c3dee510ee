//! Gates that count flow runs, against a real Prefect 3.9.1 server and a process
//! worker: prod refuses a feature-branch build; refuses a main build before its
//! qa soak and successful qa runs; accepts it once two qa runs that executed
//! that build (confirmed by their pull record) have completed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{bin, run, State};
use flowgate_prefect::PrefectClient;
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::GitProject;
use serde_json::Value;

const FLOW: &str = "from prefect import flow\nfrom lib.marker import MARKER\n\n\
@flow(name=\"report\", log_prints=True)\ndef report():\n    print(f\"marker-{MARKER}\")\n";

fn project(url: &str, pool: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"gates\"\n\n[flows.report]\nentrypoint = \"flows/report.py:report\"\nwork_pool = \"{pool}\"\n\n\
             [envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"gq-\"\n\n\
             [envs.prod]\nprefect_api_url = \"{url}\"\nname_prefix = \"gp-\"\n\
             policy = {{ branches = [\"main\"], after = \"qa\", soak = \"3s\", min_successful_runs = 2, max_failure_rate = 0.0 }}\n"
        ),
    );
    p.write("flows/report.py", FLOW);
    p.write("lib/marker.py", "MARKER = \"v1\"\n");
    p.commit("v1");
    p
}

/// The ledger and store as they are, read on a thread of its own (the ledger
/// helper runs its own runtime, which cannot start inside this test's).
fn state(p: &GitProject) -> State {
    std::thread::scope(|s| s.spawn(|| common::state(p)).join().expect("read state"))
}

fn build(p: &GitProject) -> String {
    run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().expect("build id").to_string()
}

fn gate<'a>(gates: &'a Value, name: &str) -> &'a Value {
    gates.as_array().and_then(|g| g.iter().find(|g| g["gate"] == name)).unwrap_or_else(|| panic!("no {name}: {gates}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn prod_takes_only_a_main_build_that_soaked_and_ran_successfully_in_qa() {
    let server = PrefectServer::start();
    let pool = "gates-pool";
    let p = project(&server.api_url(), pool);
    let client = PrefectClient::new(&server.api_url(), None).expect("client");
    let main_build = build(&p);

    // A feature-branch build is refused by the branch gate (and, never in qa, by the others).
    p.git(&["checkout", "-q", "-b", "feature/x"]);
    p.write("lib/marker.py", "MARKER = \"feature\"\n");
    p.commit("feature");
    let feature = build(&p);
    p.git(&["checkout", "-q", "main"]);
    let before = state(&p);
    let refused = run(&p, &["release", "report", "--env", "prod", "--build", &feature]).expect_code(3);
    assert!(refused.stderr.contains("feature/x"), "{}", refused.stderr);
    assert_eq!(state(&p), before);

    // The main build in qa, before any run and before its soak: refused, with both reasons.
    run(&p, &["release", "report", "--env", "qa", "--build", &main_build, "--create-work-pools"]).success();
    let early = run(&p, &["release", "report", "--env", "prod", "--build", &main_build, "--dry-run", "--json"])
        .success()
        .json();
    let gates = &early["gates"][0]["gates"];
    assert_eq!(gate(gates, "branches")["status"], "pass", "{early}");
    assert_eq!(gate(gates, "soak")["status"], "wait", "{early}");
    assert_eq!(gate(gates, "min_successful_runs")["status"], "wait", "{early}");
    let before = state(&p);
    let refused = run(&p, &["release", "report", "--env", "prod", "--build", &main_build]).expect_code(3);
    assert!(refused.stderr.contains("soak") && refused.stderr.contains("min_successful_runs"), "{}", refused.stderr);
    assert_eq!(state(&p), before);

    // One qa run is not enough.
    let bin_dir = Path::new(bin()).parent().expect("bin dir").to_path_buf();
    let worker = PrefectWorker::start(&server.api_url(), pool, Some(&bin_dir));
    common::run_to_completion(&client, "gq-report", &worker).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let one = run(&p, &["release", "report", "--env", "prod", "--build", &main_build]).expect_code(3);
    assert!(one.stderr.contains("completed 1 of the 2 runs"), "{}", one.stderr);

    // Two completed qa runs of that build and the soak behind it: prod takes it.
    common::run_to_completion(&client, "gq-report", &worker).await;
    let moved = run(&p, &["release", "report", "--env", "prod", "--build", &main_build, "--json"]).success().json();
    assert_eq!(moved["moves"][0]["build"], main_build.as_str(), "{moved}");
    let history = run(&p, &["history", "report", "--env", "prod", "--json"]).success().json();
    let gates = &history[0]["audit"]["gates"];
    for name in ["branches", "after", "soak", "min_successful_runs", "max_failure_rate"] {
        assert_eq!(gate(gates, name)["status"], "pass", "{name}: {history}");
    }
    assert!(gate(gates, "min_successful_runs")["detail"].as_str().unwrap().contains('2'), "{history}");
    drop(worker);
}
