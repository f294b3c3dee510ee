//! The flow name and parameter schema flowgate derives must equal what the real
//! `prefect deploy` command sends to a real Prefect 3.9.1 server for the same
//! entrypoint, read back from the created deployment.

use std::path::Path;
use std::process::Command;

use flowgate_entrypoint::read_flow;
use flowgate_prefect::{ensure_work_pool, PrefectClient};
use flowgate_testkit::prefect::{prefect_bin, PrefectServer};

/// Fixture entrypoints: a decorator with `name=` and a description, defaults
/// with `Optional`/unions, lists and dicts, and a pydantic-free enum.
const ENTRYPOINTS: [(&str, &str); 4] =
    [("named.py", "etl"), ("optional_union.py", "choose"), ("containers.py", "shapes"), ("enums.py", "paint")];

const POOL: &str = "deploy-pool";

/// Runs `prefect --no-prompt deploy FILE:FN --name NAME --pool POOL` in `project`.
fn prefect_deploy(api_url: &str, project: &Path, home: &Path, entrypoint: &str, name: &str) {
    let output = Command::new(prefect_bin())
        .args(["--no-prompt", "deploy", entrypoint, "--name", name, "--pool", POOL])
        .current_dir(project)
        .env("PREFECT_API_URL", api_url)
        .env("PREFECT_HOME", home)
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env("DO_NOT_TRACK", "1")
        .env_remove("PREFECT_API_KEY")
        .env_remove("PREFECT_API_AUTH_STRING")
        .output()
        .expect("run prefect deploy");
    assert!(
        output.status.success(),
        "`prefect deploy {entrypoint}` failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `prefect deploy` dumps the schema with `exclude_unset`, so a flow without
/// enum definitions sends no `definitions` key, where flowgate (like Prefect's
/// `model_dump_for_openapi`) sends `"definitions": {}`. The two are the same JSON
/// Schema; this is the one difference tolerated, and only when empty.
fn without_empty_definitions(schema: &serde_json::Value) -> serde_json::Value {
    let mut schema = schema.clone();
    if let Some(object) = schema.as_object_mut() {
        if object.get("definitions").is_some_and(|d| d.as_object().is_some_and(|d| d.is_empty())) {
            object.remove("definitions");
        }
    }
    schema
}

#[tokio::test(flavor = "multi_thread")]
async fn flow_name_and_schema_equal_what_prefect_deploy_sends() {
    let server = PrefectServer::start();
    let client = PrefectClient::new(&server.api_url(), None).expect("client");
    ensure_work_pool(&client, POOL, "process", true).await.expect("work pool");

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let project = tempfile::tempdir().expect("project dir");
    let home = tempfile::tempdir().expect("prefect home");
    let mut mismatches = Vec::new();
    for (index, (file, function)) in ENTRYPOINTS.iter().enumerate() {
        std::fs::copy(fixtures.join(file), project.path().join(file)).expect("copy fixture");
        let name = format!("oracle-{index}");
        prefect_deploy(&server.api_url(), project.path(), home.path(), &format!("{file}:{function}"), &name);

        let found = client.read_deployments(std::slice::from_ref(&name)).await.expect("read deployments");
        let deployment = found
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("`prefect deploy` created no deployment `{name}`: {found:?}"));
        let source = std::fs::read_to_string(fixtures.join(file)).expect("read fixture");
        let ours = read_flow(file, &source, function).unwrap_or_else(|e| panic!("{file}:{function}: {e}"));

        if deployment.flow_name != ours.flow_name {
            mismatches.push(format!("{file}:{function}: flow name {:?} != {:?}", deployment.flow_name, ours.flow_name));
        }
        // Without a flow description, Prefect 3.9.1 stores the string "None";
        // flowgate sends its own description then, so only a set one is compared.
        if ours.description.is_some() && deployment.description != ours.description {
            mismatches
                .push(format!("{file}:{function}: description {:?} != {:?}", deployment.description, ours.description));
        }
        let theirs = deployment.parameter_openapi_schema.clone().unwrap_or_default();
        if theirs != without_empty_definitions(&ours.parameter_schema) {
            mismatches.push(format!(
                "{file}:{function}: schema differs\n prefect deploy: {theirs}\n flowgate:       {}",
                ours.parameter_schema
            ));
        }
        assert!(
            theirs["properties"].as_object().is_some_and(|p| !p.is_empty()),
            "{file}:{function}: Prefect sent no parameters: {theirs}"
        );
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
