//! A build carries its deployment settings, against a real Prefect 3.9.1 server
//! and worker: an uncommitted edit to `flowgate.toml` changes nothing `sync`
//! sends; a promotion from a checkout of another branch gives prod field for
//! field the deployment qa runs (apart from the env's placement), and the run
//! in prod executes with qa's parameters, not the laptop's; a flow removed from
//! the config in a later commit stays deployed at the build that carries it.

mod common;

use std::path::Path;

use common::runs::{api, run_marker};
use common::{bin, run};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::GitProject;
use serde_json::{json, Value};

const POOL: &str = "settings-pool";

const GREET_FLOW: &str = "from prefect import flow\n\n\n\
@flow(name=\"greet\", log_prints=True)\ndef greet(who: str = \"nobody\", times: int = 1):\n    \
print(f\"marker-{who}-{times}\")\n";

/// The config of the `main` branch: qa and prod on one server, prod with an
/// env-specific parameter; `who` is the flow-level parameter.
fn config(url: &str, who: &str) -> String {
    format!(
        "[project]\nname = \"settings\"\n\n\
         [flows.greet]\nentrypoint = \"flows/greet.py:greet\"\nwork_pool = \"{POOL}\"\n\
         parameters = {{ who = \"{who}\" }}\ntags = [\"team-data\"]\n\n\
         [envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"sq-\"\n\n\
         [envs.prod]\nprefect_api_url = \"{url}\"\nname_prefix = \"sp-\"\n\n\
         [envs.prod.flows.greet]\nparameters = {{ times = 2 }}\n"
    )
}

/// The server's record of the deployment named `name`.
fn deployment(server: &PrefectServer, name: &str) -> Value {
    let found = api(server, "POST", "/deployments/filter", &json!({"deployments": {"name": {"any_": [name]}}}));
    found.as_array().and_then(|all| all.first()).cloned().unwrap_or_else(|| panic!("no deployment `{name}`"))
}

/// What a deployment runs: every field a build decides, the env tag left out.
fn what_runs(d: &Value) -> Value {
    let tags: Vec<&str> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| !t.starts_with("flowgate-env:"))
        .collect();
    json!({
        "flow_id": d["flow_id"], "version": d["version"], "entrypoint": d["entrypoint"],
        "parameter_openapi_schema": d["parameter_openapi_schema"], "description": d["description"],
        "job_variables": d["job_variables"], "pull_steps": d["pull_steps"], "work_pool_name": d["work_pool_name"],
        "schedules": d["schedules"].as_array().unwrap().len(), "tags": tags,
    })
}

#[test]
fn a_build_carries_its_settings_and_no_checkout_changes_what_an_env_runs() {
    let server = PrefectServer::start();
    let url = server.api_url();
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flowgate.toml", &config(&url, "main"));
    p.write("flows/greet.py", GREET_FLOW);
    p.commit("main");
    let built = run(&p, &["build", "--json"]).success().json();
    let v1 = built["build"]["id"].as_str().expect("build id").to_string();
    let carried = &built["build"]["settings"];
    assert_eq!(carried["prod"]["greet"]["parameters"], json!({"who": "main", "times": 2}), "{carried}");
    assert_eq!(carried["qa"]["greet"]["flow_name"], "greet", "{carried}");
    let shown = run(&p, &["show", &v1]).success().stdout;
    assert!(shown.contains("settings prod") && shown.contains("deployment `greet` of flow `greet`"), "{shown}");
    run(&p, &["release", "greet", "--env", "qa", "--build", &v1, "--create-work-pools"]).success();
    let qa_before = deployment(&server, "sq-greet");

    // An uncommitted edit to the config changes nothing sync sends.
    p.write("flowgate.toml", &config(&url, "edited").replace("tags = [\"team-data\"]", "tags = [\"edited\"]"));
    let plan = run(&p, &["plan", "--env", "qa", "--json"]).success().json();
    assert_eq!(plan["deployments"][0]["action"], "unchanged", "{plan}");
    let synced = run(&p, &["sync", "--env", "qa", "--json"]).success().json();
    assert_eq!(synced["writes"], 0, "{synced}");
    assert_eq!(deployment(&server, "sq-greet"), qa_before);
    // ...and a build made from it is dirty: its settings are not the commit's.
    let refused = run(&p, &["build"]).expect_code(2);
    assert!(refused.stderr.contains("`flowgate.toml`"), "{}", refused.stderr);
    p.git(&["checkout", "--", "flowgate.toml"]);

    // A laptop on another branch, whose config says other parameters, promotes qa to prod.
    p.git(&["checkout", "-q", "-b", "laptop"]);
    p.write("flowgate.toml", &config(&url, "laptop"));
    p.commit("laptop settings");
    run(&p, &["promote", "--from", "qa", "--to", "prod", "--create-work-pools"]).success();
    let qa = deployment(&server, "sq-greet");
    let prod = deployment(&server, "sp-greet");
    assert_eq!(what_runs(&prod), what_runs(&qa), "prod runs what qa runs, apart from placement");
    assert_eq!(qa["parameters"], json!({"who": "main"}));
    assert_eq!(prod["parameters"], json!({"who": "main", "times": 2}), "prod's own override, from the same build");
    let worker = PrefectWorker::start(&url, POOL, Some(Path::new(bin()).parent().expect("bin dir")));
    assert_eq!(run_marker(&server, prod["id"].as_str().unwrap(), &worker), "marker-main-2", "qa's parameters ran");

    // A later commit drops the flow from the config: the build that carries it stays deployed.
    let without_greet =
        format!("[project]\nname = \"settings\"\n\n[envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"sq-\"\n");
    p.write("flowgate.toml", &without_greet);
    p.commit("drop greet");
    let pruned = run(&p, &["sync", "--env", "qa", "--prune", "--json"]).success().json();
    assert_eq!((pruned["pruned"].clone(), pruned["writes"].clone()), (json!([]), json!(0)), "{pruned}");
    let qa_after = deployment(&server, "sq-greet");
    // The worker polls the pool meanwhile (`status`, `last_polled`): compare what a write would change.
    let written = |d: &Value| (d["updated"].clone(), d["parameters"].clone(), what_runs(d));
    assert_eq!(written(&qa_after), written(&qa_before), "the dropped flow's deployment was written");
    drop(worker);
}

#[test]
fn a_build_is_not_released_into_an_env_its_commit_gave_no_server() {
    // The URL is never called: the release is refused before anything is read or written.
    let url = "http://127.0.0.1:9/api";
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    let qa_only = config(url, "main").split("[envs.prod]").next().unwrap().to_string();
    p.write("flowgate.toml", &qa_only);
    p.write("flows/greet.py", GREET_FLOW);
    p.commit("qa only");
    let v1 = run(&p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    p.write("flowgate.toml", &config(url, "main"));
    p.commit("prod too");
    let before = common::ledger_dump(&p).expect("ledger");
    let refused = run(&p, &["release", "--all", "--env", "prod", "--build", &v1]).expect_code(2);
    for needle in [format!("Build `{v1}` carries no deployment settings for env `prod`"), "`qa` only".to_string()] {
        assert!(refused.stderr.contains(&needle), "missing {needle}: {}", refused.stderr);
    }
    assert_eq!(common::ledger_dump(&p).expect("ledger"), before, "a refused release changed the ledger");
}

/// Issue 15: a flow's concurrency limit (with its collision strategy) and
/// `enforce_parameter_schema` come with the build, reach the server, compare
/// equal to what the server answers (a second sync writes nothing), and a new
/// build's values are patched field by field, down to no limit at all.
#[test]
fn issue_15_concurrency_limit_and_enforce_parameter_schema_reach_the_server() {
    let server = PrefectServer::start();
    let url = server.api_url();
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flows/greet.py", GREET_FLOW);
    let with = |settings: &str| {
        format!(
            "[project]\nname = \"limits\"\n\n[flows.greet]\nentrypoint = \"flows/greet.py:greet\"\n\
             work_pool = \"{POOL}\"\n{settings}\n[envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"lq-\"\n"
        )
    };
    p.write(
        "flowgate.toml",
        &with(
            "concurrency_limit = { limit = 2, collision_strategy = \"CANCEL_NEW\" }\nenforce_parameter_schema = true\n",
        ),
    );
    p.commit("limit 2");
    let built = run(&p, &["build", "--json"]).success().json();
    let carried = &built["build"]["settings"]["qa"]["greet"];
    assert_eq!(carried["concurrency_limit"], json!({"limit": 2, "collision_strategy": "CANCEL_NEW"}), "{carried}");
    assert_eq!(carried["enforce_parameter_schema"], true, "{carried}");
    let v1 = built["build"]["id"].as_str().expect("build id").to_string();
    run(&p, &["release", "greet", "--env", "qa", "--build", &v1, "--create-work-pools"]).success();
    let d = deployment(&server, "lq-greet");
    assert_eq!(d["global_concurrency_limit"]["limit"], 2, "{d}");
    assert_eq!(d["concurrency_options"]["collision_strategy"], "CANCEL_NEW", "{d}");
    assert_eq!(d["enforce_parameter_schema"], true, "{d}");

    // What the server answers is what the build says: nothing to plan, nothing written.
    let plan = run(&p, &["plan", "--env", "qa", "--json"]).success().json();
    assert_eq!(plan["deployments"][0]["action"], "unchanged", "{plan}");
    let synced = run(&p, &["sync", "--env", "qa", "--json"]).success().json();
    assert_eq!(synced["writes"], 0, "{synced}");
    let written = |d: &Value| (d["updated"].clone(), d["global_concurrency_limit"]["limit"].clone());
    assert_eq!(written(&deployment(&server, "lq-greet")), written(&d), "a second sync wrote");

    // A new build with another limit, no strategy and no enforcement: plan shows each field.
    p.write("flowgate.toml", &with("concurrency_limit = 3\nenforce_parameter_schema = false\n"));
    p.commit("limit 3");
    let v2 = run(&p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    run(&p, &["release", "greet", "--env", "qa", "--build", &v2, "--no-sync"]).success();
    let plan = run(&p, &["plan", "--env", "qa", "--json"]).success().json();
    let changes: Vec<(Value, Value, Value)> = plan["deployments"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| !["version", "tags", "pull_steps"].contains(&c["field"].as_str().unwrap()))
        .map(|c| (c["field"].clone(), c["old"].clone(), c["new"].clone()))
        .collect();
    assert_eq!(
        changes,
        [
            (json!("concurrency_limit"), json!(2), json!(3)),
            (
                json!("concurrency_options"),
                json!({"collision_strategy": "CANCEL_NEW", "grace_period_seconds": null}),
                Value::Null
            ),
            (json!("enforce_parameter_schema"), json!(true), json!(false)),
        ],
        "{plan}"
    );
    let shown = run(&p, &["plan", "--env", "qa"]).success().stdout;
    assert!(shown.contains("    concurrency_limit: 2 → 3\n"), "{shown}");
    run(&p, &["sync", "--env", "qa"]).success();
    let d = deployment(&server, "lq-greet");
    assert_eq!(d["global_concurrency_limit"]["limit"], 3, "{d}");
    assert_eq!(d["concurrency_options"], Value::Null, "{d}");
    assert_eq!(d["enforce_parameter_schema"], false, "{d}");
    assert_eq!(run(&p, &["sync", "--env", "qa", "--json"]).success().json()["writes"], 0);

    // A build without either: the limit is removed, enforcement is Prefect's default again.
    p.write("flowgate.toml", &with(""));
    p.commit("no limit");
    let v3 = run(&p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    run(&p, &["release", "greet", "--env", "qa", "--build", &v3]).success();
    let d = deployment(&server, "lq-greet");
    assert_eq!(
        (d["global_concurrency_limit"].clone(), d["enforce_parameter_schema"].clone()),
        (Value::Null, json!(true)),
        "{d}"
    );
    assert_eq!(run(&p, &["sync", "--env", "qa", "--json"]).success().json()["writes"], 0);
}
