//! Preview environments (issue 16), on a real Prefect 3.9.1 server and worker:
//! two branches each get a preview placed like qa, holding exactly the flows
//! their branch changed, paused, each running its own branch's code; `down`
//! deletes exactly its own deployments (qa's and the other preview's stay),
//! keeps its history, and an expired preview is closed by `gc`.

mod common;

use std::path::Path;

use common::runs::{api, run_marker};
use common::{bin, run};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::GitProject;
use serde_json::{json, Value};

const POOL: &str = "preview-pool";

fn flow(name: &str, marker: &str) -> String {
    format!("from prefect import flow\n\n\n@flow(name=\"{name}\", log_prints=True)\ndef {name}():\n    print(\"marker-{marker}\")\n")
}

fn config(url: &str) -> String {
    format!(
        "[project]\nname = \"previews\"\nwork_pool = \"{POOL}\"\n\n\
         [flows.alpha]\nentrypoint = \"flows/alpha.py:alpha\"\nschedules = [{{ cron = \"0 3 * * *\" }}]\n\n\
         [flows.beta]\nentrypoint = \"flows/beta.py:beta\"\n\n\
         [envs.qa]\nprefect_api_url = \"{url}\"\nname_prefix = \"vq-\"\n"
    )
}

/// Every deployment on the server: name → (id, paused).
fn deployments(server: &PrefectServer) -> Vec<(String, String, bool)> {
    let all = api(server, "POST", "/deployments/filter", &json!({}));
    let mut out: Vec<(String, String, bool)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().into(), d["id"].as_str().unwrap().into(), d["paused"] == true))
        .collect();
    out.sort();
    out
}

fn names(server: &PrefectServer) -> Vec<String> {
    deployments(server).into_iter().map(|(name, _, _)| name).collect()
}

fn id_of(server: &PrefectServer, name: &str) -> String {
    deployments(server).into_iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("no `{name}`")).1
}

/// Checks out `branch` from main, commits `file` there and builds it.
fn branch_with(p: &GitProject, branch: &str, file: &str, text: &str) {
    p.git(&["checkout", "-q", "-b", branch, "main"]);
    p.write(file, text);
    p.commit(branch);
    run(p, &["build"]).success();
}

#[test]
fn two_branches_get_their_own_previews_and_down_removes_exactly_its_deployments() {
    let server = PrefectServer::start();
    let url = server.api_url();
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flowgate.toml", &config(&url));
    p.write("flows/alpha.py", &flow("alpha", "alpha-main"));
    p.write("flows/beta.py", &flow("beta", "beta-main"));
    p.commit("main");
    p.git(&["branch", "-M", "main"]);
    run(&p, &["build"]).success();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD", "--create-work-pools"]).success();

    // Each branch changes one flow; its preview holds exactly that one.
    branch_with(&p, "feature/one", "flows/alpha.py", &flow("alpha", "alpha-one"));
    let one = run(&p, &["preview", "up", "--from", "qa", "--json"]).success().json();
    assert_eq!(one["preview"]["env"], "preview-feature-one", "{one}");
    let moved: Vec<&Value> = one["released"]["moves"].as_array().unwrap().iter().map(|m| &m["flow"]).collect();
    assert_eq!(moved, [&json!("alpha")], "{one}");
    branch_with(&p, "feature/two", "flows/beta.py", &flow("beta", "beta-two"));
    let two = run(&p, &["preview", "up", "--branch", "feature/two", "--from", "qa", "--ttl", "1s"]).success().stdout;
    assert!(two.contains("Preview `preview-feature-two` of branch `feature/two`"), "{two}");
    assert!(two.contains("deployments are paused"), "{two}");
    let all = deployments(&server);
    let preview_names: Vec<(&str, bool)> =
        all.iter().filter(|(n, _, _)| n.starts_with("preview-")).map(|(n, _, paused)| (n.as_str(), *paused)).collect();
    assert_eq!(preview_names, [("preview-feature-one-alpha", true), ("preview-feature-two-beta", true)]);

    // Each preview runs its own branch's code; qa still runs main's.
    let worker = PrefectWorker::start(&url, POOL, Some(Path::new(bin()).parent().expect("bin dir")));
    assert_eq!(run_marker(&server, &id_of(&server, "preview-feature-one-alpha"), &worker), "marker-alpha-one");
    assert_eq!(run_marker(&server, &id_of(&server, "preview-feature-two-beta"), &worker), "marker-beta-two");
    assert_eq!(run_marker(&server, &id_of(&server, "vq-alpha"), &worker), "marker-alpha-main");

    let listed = run(&p, &["preview", "list", "--json"]).success().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    // `down` on feature/one deletes its deployment only; its history stays.
    p.git(&["checkout", "-q", "feature/one"]);
    let down = run(&p, &["preview", "down"]).success().stdout;
    assert!(down.contains("deleted 1 deployment preview-feature-one-alpha"), "{down}");
    assert_eq!(names(&server), ["preview-feature-two-beta", "vq-alpha", "vq-beta"]);
    let history = run(&p, &["history", "alpha", "--env", "preview-feature-one", "--json"]).success().json();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    let again = run(&p, &["preview", "down"]).success().stdout;
    assert!(again.contains("no open preview: nothing to close"), "{again}");

    // feature/two's preview expired (ttl 1s): gc closes it and deletes its deployment.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let gc = run(&p, &["gc", "--keep-last", "10", "--keep-days", "30"]).success().stdout;
    assert!(gc.contains("Closed preview `preview-feature-two`"), "{gc}");
    assert_eq!(names(&server), ["vq-alpha", "vq-beta"]);
    let closed = run(&p, &["preview", "list", "--all", "--json"]).success().json();
    assert!(closed.as_array().unwrap().iter().all(|p| !p["closed_at"].is_null()), "{closed}");
    assert_eq!(run(&p, &["preview", "list"]).success().stdout.trim(), "No previews.");
}
