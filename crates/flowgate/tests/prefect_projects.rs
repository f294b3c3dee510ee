//! Two projects, one Prefect server: the same env name (`qa`), the same name
//! prefix and the same work pool. Each project's release, rollback, sync and
//! `sync --prune` leave the other's deployments byte for byte as they were; a
//! deployment another project (or nobody) owns is refused with exit 3 and
//! nothing written; flowgate deployments from before projects are adopted when
//! unambiguous and reported when not.

mod common;

use common::{ledger_dump, run};
use flowgate_testkit::http::{port_of, request};
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::GitProject;
use serde_json::{json, Value};

const PREFIX: &str = "shared-";
const POOL: &str = "projects-pool";

fn flow_source(flow_name: &str, marker: &str) -> String {
    format!("from prefect import flow\n\n\n@flow(name=\"{flow_name}\")\ndef main(days: int = 1):\n    print(\"{marker}\")\n")
}

/// `[project] name = project`, env `qa` on `api_url` with the shared prefix, and
/// one `[flows.KEY]` per `(key, file)`.
fn config(project: &str, api_url: &str, flows: &[(&str, &str)]) -> String {
    let mut out = format!("[project]\nname = \"{project}\"\n\n");
    for (key, file) in flows {
        out.push_str(&format!("[flows.{key}]\nentrypoint = \"flows/{file}.py:main\"\nwork_pool = \"{POOL}\"\n\n"));
    }
    out.push_str(&format!("[envs.qa]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"{PREFIX}\"\n"));
    out
}

/// A project with flows `(key, Prefect flow name)`, committed.
fn project(name: &str, api_url: &str, flows: &[(&str, &str)]) -> GitProject {
    let p = GitProject::new();
    // Without it the next commit would track the ledger and the build cache,
    // which the build after it rewrites: a dirty tree.
    p.write(".gitignore", ".flowgate/\n");
    let keys: Vec<(&str, &str)> = flows.iter().map(|(key, _)| (*key, *key)).collect();
    p.write("flowgate.toml", &config(name, api_url, &keys));
    for (key, flow_name) in flows {
        p.write(&format!("flows/{key}.py"), &flow_source(flow_name, "v1"));
    }
    p.commit("first");
    p
}

fn build(p: &GitProject) -> String {
    run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().expect("build id").to_string()
}

struct Server {
    prefect: PrefectServer,
}

impl Server {
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if body.is_null() { String::new() } else { body.to_string() };
        let (status, text) = request(port_of(&self.prefect.api_url()), method, &format!("/api{path}"), &[], &body);
        assert!((200..300).contains(&status), "{method} {path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Every deployment named with the shared prefix, as `(flow name, name, id)`, sorted.
    fn deployments(&self) -> Vec<(String, String, String)> {
        let found = self.call("POST", "/deployments/filter", &json!({"deployments": {"name": {"like_": PREFIX}}}));
        let mut out: Vec<(String, String, String)> = found
            .as_array()
            .expect("deployments")
            .iter()
            .map(|d| {
                let flow = self.call("GET", &format!("/flows/{}", d["flow_id"].as_str().unwrap()), &Value::Null);
                let name = d["name"].as_str().unwrap().to_string();
                (flow["name"].as_str().unwrap().to_string(), name, d["id"].as_str().unwrap().to_string())
            })
            .collect();
        out.sort();
        out
    }

    /// The server's own text of every deployment of `flow_names`, keyed as above:
    /// what "byte for byte as they were" compares.
    fn raw(&self, flow_names: &[&str]) -> Vec<(String, String, String)> {
        let port = port_of(&self.prefect.api_url());
        self.deployments()
            .into_iter()
            .filter(|(flow, _, _)| flow_names.contains(&flow.as_str()))
            .map(|(flow, name, id)| {
                let (status, text) = request(port, "GET", &format!("/api/deployments/{id}"), &[], "");
                assert_eq!(status, 200, "{text}");
                (flow, name, text)
            })
            .collect()
    }

    fn tags(&self, id: &str) -> Vec<String> {
        let d = self.call("GET", &format!("/deployments/{id}"), &Value::Null);
        serde_json::from_value(d["tags"].clone()).expect("tags")
    }

    fn id_of(&self, flow_name: &str, name: &str) -> String {
        let found = self.deployments().into_iter().find(|(f, n, _)| f == flow_name && n == name);
        found.unwrap_or_else(|| panic!("no deployment {flow_name}/{name}")).2
    }

    /// A deployment made without flowgate, with these tags.
    fn create_by_hand(&self, flow_name: &str, name: &str, tags: &[String]) -> String {
        let flow = self.call("POST", "/flows/", &json!({"name": flow_name}));
        let body = json!({"name": name, "flow_id": flow["id"], "tags": tags, "work_pool_name": POOL});
        self.call("POST", "/deployments/", &body)["id"].as_str().expect("id").to_string()
    }
}

#[test]
fn two_projects_on_one_server_never_touch_each_other() {
    let server = Server { prefect: PrefectServer::start() };
    let url = server.prefect.api_url();
    let alpha = project("alpha", &url, &[("one", "alpha-one"), ("two", "alpha-two")]);
    let beta = project("beta", &url, &[("one", "beta-one")]);
    let alpha_v1 = build(&alpha);
    run(&alpha, &["release", "--all", "--env", "qa", "--build", &alpha_v1, "--create-work-pools"]).success();
    let beta_v1 = build(&beta);
    run(&beta, &["release", "--all", "--env", "qa", "--build", &beta_v1]).success();
    let names: Vec<(String, String)> = server.deployments().into_iter().map(|(f, n, _)| (f, n)).collect();
    let expected = [("alpha-one", "shared-one"), ("alpha-two", "shared-two"), ("beta-one", "shared-one")];
    assert_eq!(names, expected.map(|(f, n)| (f.to_string(), n.to_string())));
    let owner_tag = |flow: &str, name: &str| {
        server
            .tags(&server.id_of(flow, name))
            .into_iter()
            .filter(|t| t.starts_with("flowgate-project:"))
            .collect::<Vec<_>>()
    };
    assert_eq!(owner_tag("alpha-one", "shared-one"), ["flowgate-project:alpha"]);
    assert_eq!(owner_tag("beta-one", "shared-one"), ["flowgate-project:beta"]);

    // alpha updates, rolls back, stops wanting a deployment and prunes: beta's bytes stay.
    let beta_before = server.raw(&["beta-one"]);
    alpha.write("flows/one.py", &flow_source("alpha-one", "v2"));
    alpha.commit("v2");
    let alpha_v2 = build(&alpha);
    let updated = run(&alpha, &["release", "one", "--env", "qa", "--build", &alpha_v2, "--json"]).success().json();
    assert_eq!(updated["sync"]["updated"][0]["name"], "shared-one", "{updated}");
    run(&alpha, &["rollback", "one", "--env", "qa"]).success();
    // A deployment the project no longer wants: flow two is renamed (builds carry
    // their settings, so the rename takes effect with the build that carries it).
    let renamed = config("alpha", &url, &[("one", "one"), ("two", "two")])
        .replace("[flows.two]\n", "[flows.two]\ndeployment_name = \"two-b\"\n");
    alpha.write("flowgate.toml", &renamed);
    alpha.commit("rename two");
    let alpha_v3 = build(&alpha);
    run(&alpha, &["release", "two", "--env", "qa", "--build", &alpha_v3]).success();
    let plan = run(&alpha, &["plan", "--env", "qa", "--json"]).success().json();
    assert_eq!(
        plan["prune"],
        json!([{"name": "shared-two", "flow_name": "alpha-two", "id": server.id_of("alpha-two", "shared-two")}]),
        "{plan}"
    );
    let pruned = run(&alpha, &["sync", "--env", "qa", "--prune", "--json"]).success().json();
    assert_eq!(pruned["pruned"], json!(["shared-two"]), "{pruned}");
    assert_eq!(server.raw(&["beta-one"]), beta_before, "alpha's moves touched beta's deployment");

    // beta prunes: alpha's deployment, same env, prefix and deployment name, stays.
    let alpha_before = server.raw(&["alpha-one"]);
    let pruned = run(&beta, &["sync", "--env", "qa", "--prune", "--json"]).success().json();
    assert_eq!((pruned["pruned"].clone(), pruned["writes"].clone()), (json!([]), json!(0)), "{pruned}");
    assert_eq!(server.raw(&["alpha-one"]), alpha_before, "beta's prune touched alpha's deployment");

    // A third project wanting alpha's deployment is refused, naming the owner; nothing is written.
    let gamma = project("gamma", &url, &[("one", "alpha-one")]);
    let gamma_build = build(&gamma);
    let ledger_before = ledger_dump(&gamma).expect("gamma's ledger");
    let refused = run(&gamma, &["release", "one", "--env", "qa", "--build", &gamma_build]).expect_code(3);
    for needle in ["flowgate project `alpha`", "`alpha-one/shared-one`", "project `gamma`", "Nothing moved"] {
        assert!(refused.stderr.contains(needle), "missing {needle}: {}", refused.stderr);
    }
    assert_eq!(ledger_dump(&gamma).expect("gamma's ledger"), ledger_before, "a refused release changed the ledger");
    run(&gamma, &["release", "one", "--env", "qa", "--build", &gamma_build, "--no-sync"]).success();
    let refused = run(&gamma, &["sync", "--env", "qa"]).expect_code(3);
    assert!(refused.stderr.contains("nothing was written"), "{}", refused.stderr);
    assert_eq!(server.raw(&["alpha-one"]), alpha_before, "a refused project touched alpha's deployment");

    // A deployment made by hand under a name beta wants: refused, not overwritten.
    let by_hand = server.create_by_hand("hand-flow", "shared-hand", &["team-x".into()]);
    let hand_before = server.raw(&["hand-flow"]);
    beta.write("flowgate.toml", &config("beta", &url, &[("one", "one"), ("hand", "hand")]));
    beta.write("flows/hand.py", &flow_source("hand-flow", "v1"));
    beta.commit("hand");
    let beta_v2 = build(&beta);
    let refused = run(&beta, &["release", "hand", "--env", "qa", "--build", &beta_v2]).expect_code(3);
    assert!(refused.stderr.contains("not managed by flowgate"), "{}", refused.stderr);
    assert_eq!(server.raw(&["hand-flow"]), hand_before);
    assert_eq!(server.tags(&by_hand), ["team-x"]);

    // Deployments synced before projects existed: the one alpha's config names in
    // its env is adopted; one nothing wants is reported and never pruned.
    let one = server.id_of("alpha-one", "shared-one");
    let legacy: Vec<String> = server.tags(&one).into_iter().filter(|t| !t.starts_with("flowgate-project:")).collect();
    server.call("PATCH", &format!("/deployments/{one}"), &json!({"tags": legacy}));
    let orphan_tags = ["flowgate".to_string(), "flowgate-env:qa".to_string()];
    server.create_by_hand("old-flow", "shared-old", &orphan_tags);
    let orphan_before = server.raw(&["old-flow"]);
    let plan = run(&alpha, &["plan", "--env", "qa", "--json"]).success().json();
    assert_eq!(plan["deployments"][0]["action"], "adopt", "{plan}");
    assert_eq!(plan["unclaimed"][0]["name"], "shared-old", "{plan}");
    let adopted = run(&alpha, &["sync", "--env", "qa", "--prune", "--json"]).success().json();
    assert_eq!(adopted["adopted"], json!(["shared-one"]), "{adopted}");
    assert_eq!(adopted["unclaimed"], json!(["shared-old"]), "{adopted}");
    assert!(server.tags(&one).contains(&"flowgate-project:alpha".to_string()));
    run(&beta, &["sync", "--env", "qa", "--prune"]).success();
    assert_eq!(server.raw(&["old-flow"]), orphan_before, "an unclaimed deployment was touched");
}
