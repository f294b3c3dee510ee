//! Source layouts (issue 15): a package under `src/` made importable by
//! `python_path`, reached through a file entrypoint and a module entrypoint,
//! runs on a real Prefect 3.9.1 worker; and `build` refuses (exit 2, naming the
//! flow, nothing recorded) an entrypoint the bundle lacks.

mod common;

use std::path::Path;

use common::runs::{api, run_marker};
use common::{bin, run};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::GitProject;
use serde_json::json;

const POOL: &str = "layouts-pool";

const SHARED: &str = "GREETING = \"marker-from-src\"\n";
const MODELS: &str = "from pydantic import BaseModel, Field\n\n\n\
class Options(BaseModel):\n    \
loud: bool = Field(False, description=\"Shout it\")\n    \
times: int = 1\n";
const FLOWS: &str = "from prefect import flow\n\n\
from acme.models import Options\nfrom acme.shared import GREETING\n\n\n\
@flow(log_prints=True)\ndef by_file(options: Options = Options()):\n    print(f\"{GREETING}-file-{options.times}\")\n\n\n\
@flow(log_prints=True)\ndef by_module(suffix: str = \"module\"):\n    print(f\"{GREETING}-{suffix}\")\n";

fn config(url: &str) -> String {
    format!(
        "[project]\nname = \"layouts\"\npython_path = [\"src\"]\nwork_pool = \"{POOL}\"\n\n\
         [flows.by-file]\nentrypoint = \"src/acme/flows.py:by_file\"\nparameters = {{ options = {{ times = 2 }} }}\n\n\
         [flows.by-module]\nentrypoint = \"acme.flows:by_module\"\n\n\
         [envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"lq-\"\n"
    )
}

fn project(url: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flowgate.toml", &config(url));
    p.write("src/acme/__init__.py", "");
    p.write("src/acme/shared.py", SHARED);
    p.write("src/acme/models.py", MODELS);
    p.write("src/acme/flows.py", FLOWS);
    p.commit("a src layout");
    p
}

/// The id of the deployment named `name`.
fn deployment_id(server: &PrefectServer, name: &str) -> String {
    let found = api(server, "POST", "/deployments/filter", &json!({"deployments": {"name": {"any_": [name]}}}));
    found[0]["id"].as_str().unwrap_or_else(|| panic!("no deployment `{name}`: {found}")).to_string()
}

#[test]
fn a_package_under_src_runs_through_file_and_module_entrypoints() {
    let server = PrefectServer::start();
    let url = server.api_url();
    let p = project(&url);
    let built = run(&p, &["build", "--json"]).success().json();
    let settings = &built["build"]["settings"]["qa"];
    // The schema of a pydantic model imported from the package, read without running Python.
    let schema = &settings["by-file"]["parameter_schema"];
    assert_eq!(schema["definitions"]["Options"]["properties"]["loud"]["description"], "Shout it", "{schema}");
    assert_eq!(settings["by-module"]["entrypoint"], "acme.flows:by_module", "{settings}");
    let pull = settings["by-file"]["pull"].as_array().expect("pull steps");
    assert_eq!(pull[0], json!({"site.addsitedir": {"sitedir": "{{ pull-code.stdout }}/src"}}), "{settings}");
    run(
        &p,
        &["release", "--all", "--env", "qa", "--build", built["build"]["id"].as_str().unwrap(), "--create-work-pools"],
    )
    .success();
    let worker = PrefectWorker::start(&url, POOL, Some(Path::new(bin()).parent().expect("bin dir")));
    assert_eq!(run_marker(&server, &deployment_id(&server, "lq-by-file"), &worker), "marker-from-src-file-2");
    assert_eq!(run_marker(&server, &deployment_id(&server, "lq-by-module"), &worker), "marker-from-src-module");
}

#[test]
fn build_refuses_an_entrypoint_the_bundle_lacks_and_records_nothing() {
    let p = project("http://127.0.0.1:9/api");
    let cases = [
        ("src/acme/flows.py:by_file", "src/acme/gone.py:by_file", "names no file of the build"),
        ("src/acme/flows.py:by_file", "src/acme/flows.py:missing", "Function `missing` is not defined"),
        ("acme.flows:by_module", "acme.nowhere:by_module", "`src/acme/nowhere.py`"),
        ("src/acme/flows.py:by_file", "src/acme/shared.py:GREETING", "is not defined at the top level"),
    ];
    for (good, bad, says) in cases {
        p.write("flowgate.toml", &config("http://127.0.0.1:9/api").replace(good, bad));
        p.commit(&format!("entrypoint {bad}"));
        let refused = run(&p, &["build"]).expect_code(2);
        assert!(refused.stderr.contains(says), "{bad}: {}", refused.stderr);
        let flow = if good.contains(".py") { "by-file" } else { "by-module" };
        assert!(refused.stderr.contains(&format!("Flow `{flow}`")), "{bad}: {}", refused.stderr);
        let builds = run(&p, &["builds", "--json"]).success().json();
        assert_eq!(builds, json!([]), "nothing recorded for {bad}: {builds}");
    }
}

/// A parameter type the static reader refuses (a third-party class) is derived
/// by the project's Python running Prefect's own schema function, and recorded
/// with the build; without `python` the build names the parameter and line.
#[test]
fn the_projects_python_derives_what_static_reading_cannot() {
    let python = flowgate_testkit::prefect::prefect_bin().with_file_name("python");
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write(
        "flows/net.py",
        "from ipaddress import IPv4Address\n\nfrom prefect import flow\n\n\n\
         @flow\ndef ping(host: IPv4Address, count: int = 3):\n    \"\"\"Ping a host.\"\"\"\n",
    );
    let base =
        "[project]\nname = \"fallback\"\nwork_pool = \"p\"\n\n[flows.ping]\nentrypoint = \"flows/net.py:ping\"\n\n\
                [envs.qa]\nprefect_api_url = \"http://127.0.0.1:9/api\"\n";
    p.write("flowgate.toml", base);
    p.commit("a third-party parameter type");
    let refused = run(&p, &["build"]).expect_code(2);
    assert!(refused.stderr.contains("parameter `host` (line 7)"), "{}", refused.stderr);

    p.write("flowgate.toml", &base.replace("work_pool", &format!("python = \"{}\"\nwork_pool", python.display())));
    p.commit("with the project's python");
    let built = run(&p, &["build", "--json"]).success().json();
    let ping = &built["build"]["settings"]["qa"]["ping"];
    assert_eq!(ping["flow_name"], "ping");
    assert_eq!(ping["description"], "Ping a host.");
    let schema = &ping["parameter_schema"];
    assert_eq!(schema["properties"]["host"]["format"], "ipv4", "Prefect's own schema: {schema}");
    assert_eq!(schema["required"], json!(["host"]), "{schema}");

    p.write("flowgate.toml", &base.replace("work_pool", "python = \"/nonexistent/python3\"\nwork_pool"));
    p.commit("a python that is not there");
    let failed = run(&p, &["build"]).expect_code(1);
    assert!(failed.stderr.contains("/nonexistent/python3"), "{}", failed.stderr);
}
