//! Many repositories, one ledger: each project's commands see and move only its
//! own rows, `status --all-projects` shows every project's matrix, and a second
//! repository that takes a project name already in the ledger is told so (exit
//! 2, naming both repositories) with nothing written.

mod common;

use std::path::Path;

use common::run;
use flowgate_testkit::GitProject;
use serde_json::json;

const FLOW: &str = "from prefect import flow\n\n\n@flow\ndef main():\n    pass\n";

/// A repository whose project `name` keeps its ledger in `ledger` (shared) and
/// has flows `flows`, each released to the ledger-only env `qa`.
fn project(name: &str, ledger: &Path, flows: &[&str]) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    let mut config =
        format!("[project]\nname = \"{name}\"\nledger = \"sqlite://{}\"\n\n[envs.qa]\n\n", ledger.display());
    for flow in flows {
        config.push_str(&format!("[flows.{flow}]\nentrypoint = \"flows/{flow}.py:main\"\n\n"));
        p.write(&format!("flows/{flow}.py"), FLOW);
    }
    p.write("flowgate.toml", &config);
    p.commit(&format!("{name}: first"));
    p
}

/// Every project's rows as text. Not the file's bytes: SQLite writes its
/// write-ahead log back into the file when a connection closes, which changes
/// the bytes and not the ledger.
fn shared_dump(ledger: &Path) -> String {
    let url: flowgate_ledger::LedgerUrl = format!("sqlite://{}", ledger.display()).parse().expect("ledger url");
    let claim = flowgate_ledger::ProjectClaim { name: "alpha".parse().unwrap(), root_commit: None, remote: None };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let opened =
            flowgate_ledger::testing::open(&url, ledger.parent().unwrap(), &claim).await.expect("open the ledger");
        opened.dump().await.expect("dump the ledger")
    })
}

#[test]
fn projects_share_one_ledger_without_seeing_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("team-ledger.db");
    let alpha = project("alpha", &ledger, &["ingest", "report"]);
    let beta = project("beta", &ledger, &["ingest"]);
    run(&alpha, &["build"]).success();
    run(&alpha, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    run(&beta, &["build"]).success();
    run(&beta, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    beta.write("flows/ingest.py", &format!("{FLOW}# v2\n"));
    beta.commit("beta: v2");
    run(&beta, &["build"]).success();
    run(&beta, &["release", "ingest", "--env", "qa", "--build", "HEAD"]).success();

    // Each project's own view: its flows, its revisions, its builds.
    let status = run(&alpha, &["status", "--json"]).success().json();
    let flows: Vec<&str> = status["flows"].as_array().unwrap().iter().map(|f| f["flow"].as_str().unwrap()).collect();
    assert_eq!(flows, ["ingest", "report"]);
    assert_eq!(status["flows"][0]["cells"][0]["revision"], 1, "beta's second release is not alpha's: {status}");
    let history = run(&beta, &["history", "ingest", "--env", "qa", "--json"]).success().json();
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
    let builds = run(&alpha, &["builds", "--json"]).success().json();
    assert_eq!(builds.as_array().map(Vec::len), Some(1), "alpha sees only its own build: {builds}");

    // Across projects: both matrices, from either checkout.
    let all = run(&alpha, &["status", "--all-projects", "--json"]).success().json();
    let names: Vec<&str> = all["projects"].as_array().unwrap().iter().map(|p| p["project"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"], "{all}");
    assert_eq!(all["projects"][1]["flows"][0]["flow"], "ingest");
    assert_eq!(all["projects"][1]["flows"][0]["cells"][0]["revision"], 2);
    assert_eq!(all["projects"][0]["envs"], json!(["qa"]));
    let text = run(&beta, &["status", "--all-projects"]).success().stdout;
    assert!(text.contains("project alpha") && text.contains("project beta"), "{text}");

    // Another repository that names itself `alpha`: told so, nothing written.
    let before = shared_dump(&ledger);
    let impostor = project("alpha", &ledger, &["ingest"]);
    let refused = run(&impostor, &["status"]).expect_code(2);
    for needle in ["project `alpha`", "another repository", "[project] name"] {
        assert!(refused.stderr.contains(needle), "missing {needle}: {}", refused.stderr);
    }
    run(&impostor, &["build"]).expect_code(2);
    assert_eq!(shared_dump(&ledger), before, "a refused project changed the ledger");

    // A clone of alpha's repository is alpha.
    let clone = alpha.clone_repo(true);
    let status = run(&clone, &["status", "--json"]).success().json();
    assert_eq!(status["flows"].as_array().map(Vec::len), Some(2), "{status}");
}
