//! Where a command acts: `-C DIR` from another directory, `FLOWGATE_ENV`, and
//! the personal env `dev-<user>` when neither it nor `--env` is given.

mod common;

use common::{bin, run};
use flowgate_testkit::GitProject;

#[test]
fn dash_c_runs_the_project_from_another_directory() {
    let p = GitProject::example();
    let elsewhere = tempfile::tempdir().unwrap();
    let project = p.path().to_str().unwrap();
    let built = p.run_in(bin(), elsewhere.path(), &["-C", project, "build", "--json"], &[]).success().json();
    let id = built["build"]["id"].as_str().unwrap();
    // A git ref resolves in the project's repository, not the starting directory.
    p.run_in(bin(), elsewhere.path(), &["-C", project, "release", "--all", "--env", "qa", "--build", "HEAD"], &[])
        .success();
    let from_elsewhere = p.run_in(bin(), elsewhere.path(), &["-C", project, "status", "--json"], &[]).success();
    assert_eq!(from_elsewhere.stdout, run(&p, &["status", "--json"]).success().stdout);
    assert_eq!(from_elsewhere.json()["flows"][0]["cells"][0]["build"].as_str(), Some(id));
    // A subdirectory of the project finds its config too.
    let nested = p.run_in(bin(), elsewhere.path(), &["-C", &format!("{project}/flows"), "builds", "--json"], &[]);
    assert_eq!(nested.success().json()[0]["id"].as_str(), Some(id));
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing written where it started");
    // Without -C, a directory outside any project is refused and named.
    let outside = p.run_in(bin(), elsewhere.path(), &["status"], &[]).expect_code(2);
    assert!(outside.stderr.contains(&format!("`{}`", elsewhere.path().display())), "{}", outside.stderr);
}

#[test]
fn flowgate_env_selects_the_env_and_the_flag_wins() {
    let p = GitProject::example();
    run(&p, &["build"]).success();
    let qa = [("FLOWGATE_ENV", "qa")];
    let moved = p.run_with_env(bin(), &["release", "report", "--build", "HEAD", "--json"], &qa).success().json();
    assert_eq!(moved["moves"][0]["env"].as_str(), Some("qa"), "{moved}");
    let history = p.run_with_env(bin(), &["history", "report", "--json"], &qa).success().json();
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    // --env beats the variable.
    let moved = p.run_with_env(bin(), &["release", "report", "--env", "prod", "--build", "HEAD", "--json"], &qa);
    assert_eq!(moved.success().json()["moves"][0]["env"].as_str(), Some("prod"));
    let status = run(&p, &["status", "--json"]).success().json();
    assert!(status["flows"][1]["cells"].as_array().unwrap().iter().all(|c| c["revision"].as_i64() == Some(1)));
}

#[test]
fn without_an_env_commands_act_on_the_personal_env_and_status_shows_it() {
    let p = GitProject::example();
    run(&p, &["build"]).success();
    let moved = run(&p, &["release", "--all", "--build", "HEAD", "--json"]).success().json();
    let envs: Vec<&str> = moved["moves"].as_array().unwrap().iter().map(|m| m["env"].as_str().unwrap()).collect();
    assert_eq!(envs, ["dev-tester"; 3]);
    let history = run(&p, &["history", "report", "--json"]).success().json();
    assert_eq!(history[0]["env"].as_str(), Some("dev-tester"));
    // qa and prod were not touched.
    let qa = run(&p, &["history", "report", "--env", "qa", "--json"]).success().json();
    assert_eq!(qa, serde_json::json!([]));

    let status = run(&p, &["status", "--json"]).success().json();
    let columns: Vec<&str> = status["envs"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(columns.contains(&"dev-tester"), "status hides the personal env it just released to: {status}");
    let text = run(&p, &["status"]).success();
    assert!(text.stdout.lines().next().unwrap().contains("DEV-TESTER"), "{}", text.stdout);
}
