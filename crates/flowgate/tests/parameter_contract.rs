//! Parameter contracts (issue 16), against a real Prefect 3.9.1 server: `diff`
//! and `show --against` name a flow's parameter changes between two builds;
//! prod's `compatible_parameters` gate refuses a promotion whose new schema
//! rejects what prod sends the flow (a caller's flow run, the deployment's
//! parameters on the server), lets a compatible build through, and gives way
//! to `--override-gates` with a reason. No worker: a created run is what a
//! caller sent, whether or not it ran.

mod common;

use common::run;
use common::runs::api;
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::GitProject;
use serde_json::json;

const POOL: &str = "contract-pool";

fn flow(params: &str) -> String {
    format!("from prefect import flow\n\n\n@flow(name=\"load\")\ndef load({params}):\n    pass\n")
}

const V1: &str = "day: str = \"today\", limit: int = 10";
const RENAMED: &str = "day: str = \"today\", max_rows: int = 10";
const WIDER: &str = "day: str = \"today\", limit: int = 10, dry_run: bool = False";

fn config(url: &str) -> String {
    format!(
        "[project]\nname = \"contract\"\n\n\
         [flows.load]\nentrypoint = \"flows/load.py:load\"\nwork_pool = \"{POOL}\"\n\n\
         [envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"cq-\"\n\n\
         [envs.prod]\nprefect_api_url = \"{url}\"\nname_prefix = \"cp-\"\n\
         policy = {{ compatible_parameters = true, allow_override = true }}\n"
    )
}

/// Commits `params` as the flow's signature, builds it and releases it to qa.
fn ship_to_qa(p: &GitProject, params: &str) -> String {
    p.write("flows/load.py", &flow(params));
    p.commit(params);
    let id = run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    run(p, &["release", "load", "--env", "qa", "--build", &id, "--create-work-pools"]).success();
    id
}

fn prod_deployment_id(server: &PrefectServer) -> String {
    let found = api(server, "POST", "/deployments/filter", &json!({"deployments": {"name": {"any_": ["cp-load"]}}}));
    found[0]["id"].as_str().expect("prod's deployment").to_string()
}

fn prod_build(p: &GitProject) -> String {
    let status = run(p, &["status", "--json"]).success().json();
    let prod = status["envs"].as_array().and_then(|envs| envs.iter().position(|e| e == "prod")).expect("prod");
    let row = status["flows"].as_array().and_then(|rows| rows.iter().find(|r| r["flow"] == "load")).expect("load");
    row["cells"][prod]["build"].as_str().unwrap_or_else(|| panic!("prod's build in {status}")).to_string()
}

#[test]
fn a_rename_shows_in_diff_and_the_contract_gate_refuses_it_until_overridden() {
    let server = PrefectServer::start();
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flowgate.toml", &config(&server.api_url()));
    let v1 = ship_to_qa(&p, V1);
    run(&p, &["promote", "--from", "qa", "--to", "prod"]).success();
    // A caller relies on `limit`: a flow run of prod's deployment, and a hand-set default on the server.
    let deployment = prod_deployment_id(&server);
    api(&server, "POST", &format!("/deployments/{deployment}/create_flow_run"), &json!({"parameters": {"limit": 5}}));
    api(&server, "PATCH", &format!("/deployments/{deployment}"), &json!({"parameters": {"limit": 3}}));

    let renamed = ship_to_qa(&p, RENAMED);
    let diff = run(&p, &["diff", "prod", "qa"]).success().stdout;
    assert!(diff.contains("parameters (BREAKING): `limit` looks renamed to `max_rows`"), "{diff}");
    assert!(diff.contains("code: 1 closure file(s) changed: flows/load.py"), "{diff}");
    let json = run(&p, &["diff", "prod", "qa", "--json"]).success().json();
    let change = &json["flows"][0]["changes"]["parameters"][0];
    assert_eq!((change["parameter"].as_str(), change["kind"].as_str()), (Some("limit"), Some("renamed")), "{json}");
    let shown = run(&p, &["show", &renamed, "--against", &v1]).success().stdout;
    assert!(shown.contains(&format!("against  {v1}: load in prod")), "{shown}");
    assert!(shown.contains("`limit` looks renamed to `max_rows`"), "{shown}");

    let refused = run(&p, &["promote", "--from", "qa", "--to", "prod"]).expect_code(3);
    let said = refused.stderr.clone();
    assert!(said.contains("compatible_parameters (refused)"), "{said}");
    assert!(said.contains("load (build"), "{said}");
    assert!(said.contains("parameter `limit` is not in the new schema"), "{said}");
    assert!(said.contains("(`limit` looks renamed to `max_rows`"), "{said}");
    assert!(said.contains("flow run `") && said.contains("the deployment's parameters on the server"), "{said}");
    assert_eq!(prod_build(&p), v1, "a refused promotion changes nothing");

    // A build that only adds an optional parameter takes what prod sends.
    let wider = ship_to_qa(&p, WIDER);
    let passed = run(&p, &["promote", "--from", "qa", "--to", "prod", "--dry-run"]).success().stdout;
    assert!(passed.contains("compatible_parameters") && passed.contains("accepts all"), "{passed}");
    run(&p, &["promote", "--from", "qa", "--to", "prod"]).success();
    assert_eq!(prod_build(&p), wider);

    // The rename again, forced with a reason: recorded in the history.
    let forced = ship_to_qa(&p, RENAMED);
    let args = ["promote", "--from", "qa", "--to", "prod", "--override-gates", "--reason", "callers moved to max_rows"];
    run(&p, &args).success();
    assert_eq!(prod_build(&p), forced);
    let history = run(&p, &["history", "load", "--env", "prod", "--json"]).success().stdout;
    assert!(history.contains("callers moved to max_rows"), "{history}");
}
