//! Gates through the real binary, on ledger-only envs (no Prefect server: the
//! gates that count runs are in `prefect_gates.rs`): branch, approval with a
//! separate approver, upstream env and soak, freeze, override and dry run. A
//! refusal exits 3, names every failed gate, and changes nothing.

mod common;

use common::{bin, run, state};
use flowgate_testkit::GitProject;
use serde_json::Value;

/// The example project with `policy` (a TOML inline table) on prod.
fn project(policy: &str) -> GitProject {
    let p = GitProject::example();
    let mut config = p.read("flowgate.toml");
    // `[envs.prod]` is the config's last table: these keys land in it.
    config.push_str(&format!("policy = {policy}\n"));
    p.write("flowgate.toml", &config);
    p.commit("prod policy");
    p
}

fn build(p: &GitProject) -> String {
    run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().expect("build id").to_string()
}

fn as_actor(p: &GitProject, actor: &str, args: &[&str]) -> flowgate_testkit::Run {
    p.run_with_env(bin(), args, &[("FLOWGATE_ACTOR", actor)])
}

fn gate<'a>(gates: &'a Value, name: &str) -> &'a Value {
    gates
        .as_array()
        .and_then(|g| g.iter().find(|g| g["gate"] == name))
        .unwrap_or_else(|| panic!("no gate {name} in {gates}"))
}

#[test]
fn prod_refuses_a_feature_branch_build_naming_every_failed_gate_and_changes_nothing() {
    let p = project(r#"{ branches = ["main"], approval = 1 }"#);
    p.git(&["checkout", "-q", "-b", "feature/x"]);
    p.write("lib/common.py", "MARKER = \"feature\"\n");
    p.commit("feature work");
    let feature = build(&p);
    let before = state(&p);
    let refused = run(&p, &["release", "report", "--env", "prod", "--build", &feature]).expect_code(3);
    assert!(refused.stderr.contains("branches") && refused.stderr.contains("feature/x"), "{}", refused.stderr);
    assert!(refused.stderr.contains("approval") && refused.stderr.contains("flowgate approve"), "{}", refused.stderr);
    assert_eq!(state(&p), before, "a refusal changes nothing");
    // --dry-run prints the verdict and exits 0, still changing nothing.
    let dry =
        run(&p, &["release", "report", "--env", "prod", "--build", &feature, "--dry-run", "--json"]).success().json();
    assert_eq!(dry["gates"][0]["passed"], false, "{dry}");
    assert_eq!(gate(&dry["gates"][0]["gates"], "branches")["status"], "refuse", "{dry}");
    assert_eq!(state(&p), before);
    // qa has no policy: the same build goes there.
    run(&p, &["release", "report", "--env", "qa", "--build", &feature]).success();
}

#[test]
fn approvals_count_distinct_people_and_a_separate_approver_excludes_the_releaser() {
    let p = project("{ approval = 2, separate_approver = true }");
    let id = build(&p);
    let approve = |actor: &str| {
        as_actor(&p, actor, &["approve", &id, "--env", "prod", "--reason", "looks good", "--json"]).success().json()
    };
    assert_eq!(approve("tester@example.com")["recorded"], true);
    assert_eq!(approve("alice@example.com")["recorded"], true);
    assert_eq!(approve("alice@example.com")["recorded"], false, "a second approval by one person is not another");
    let refused = run(&p, &["release", "report", "--env", "prod", "--build", &id]).expect_code(3);
    assert!(refused.stderr.contains("approval"), "{}", refused.stderr);
    // An approval for another flow does not count for report.
    as_actor(&p, "bob@example.com", &["approve", &id, "cleanup", "--env", "prod", "--reason", "cleanup only"])
        .success();
    run(&p, &["release", "report", "--env", "prod", "--build", &id]).expect_code(3);
    approve("carol@example.com");
    run(&p, &["release", "report", "--env", "prod", "--build", &id]).success();
    let history = run(&p, &["history", "report", "--env", "prod", "--json"]).success().json();
    let approval = gate(&history[0]["audit"]["gates"], "approval");
    assert_eq!(approval["status"], "pass", "{history}");
    assert!(approval["detail"].as_str().unwrap().contains("carol"), "{approval}");
}

#[test]
fn after_and_soak_refuse_a_build_never_upstream_and_wait_for_the_soak() {
    let p = project(r#"{ after = "qa", soak = "1h" }"#);
    let id = build(&p);
    let before = state(&p);
    let never = run(&p, &["release", "etl-daily", "--env", "prod", "--build", &id]).expect_code(3);
    assert!(never.stderr.contains("never") && never.stderr.contains("qa"), "{}", never.stderr);
    assert_eq!(state(&p), before);
    run(&p, &["release", "etl-daily", "--env", "qa", "--build", &id]).success();
    let soaking = run(&p, &["release", "etl-daily", "--env", "prod", "--build", &id]).expect_code(3);
    assert!(soaking.stderr.contains("soak") && soaking.stderr.contains("waiting until"), "{}", soaking.stderr);
    // promote checks the same gates.
    run(&p, &["promote", "--from", "qa", "--to", "prod"]).expect_code(3);
}

#[test]
fn a_freeze_refuses_releases_but_not_rollbacks() {
    let p = project("{ }");
    let v1 = build(&p);
    run(&p, &["release", "report", "--env", "prod", "--build", &v1]).success();
    p.write("lib/common.py", "MARKER = \"v2\"\n");
    p.commit("v2");
    let v2 = build(&p);
    run(&p, &["release", "report", "--env", "prod", "--build", &v2]).success();
    let mut config = p.read("flowgate.toml");
    config = config.replace(
        "policy = { }",
        "policy = { freeze = [{ from = 2020-01-01T00:00:00Z, until = 2099-01-01T00:00:00Z, reason = \"year-end\" }] }",
    );
    p.write("flowgate.toml", &config);
    p.commit("freeze");
    let frozen = run(&p, &["release", "report", "--env", "prod", "--build", &v1]).expect_code(3);
    assert!(frozen.stderr.contains("freeze") && frozen.stderr.contains("year-end"), "{}", frozen.stderr);
    // The way out of an incident stays open.
    let back = run(&p, &["rollback", "report", "--env", "prod", "--json"]).success().json();
    assert_eq!(back["moves"][0]["build"], v1.as_str(), "{back}");
}

#[test]
fn an_override_needs_the_env_to_allow_it_and_a_reason_and_history_shows_it() {
    let p = project(r#"{ branches = ["main"] }"#);
    p.git(&["checkout", "-q", "-b", "hotfix"]);
    p.write("lib/common.py", "MARKER = \"hotfix\"\n");
    p.commit("hotfix");
    let hotfix = build(&p);
    let before = state(&p);
    let args = ["release", "report", "--env", "prod", "--build", &hotfix, "--override-gates", "--reason", "outage"];
    let not_allowed = run(&p, &args).expect_code(2);
    assert!(not_allowed.stderr.contains("allow_override"), "{}", not_allowed.stderr);
    run(&p, &["release", "report", "--env", "prod", "--build", &hotfix, "--override-gates"]).expect_code(2);
    assert_eq!(state(&p), before);

    let config = p
        .read("flowgate.toml")
        .replace(r#"policy = { branches = ["main"] }"#, r#"policy = { branches = ["main"], allow_override = true }"#);
    p.write("flowgate.toml", &config);
    p.commit("allow override");
    let moved = run(&p, &args).success().stdout;
    assert!(moved.contains("GATES OVERRIDDEN"), "{moved}");
    let history = run(&p, &["history", "report", "--env", "prod"]).success().stdout;
    assert!(
        history.contains("OVERRIDDEN (1 of 1 failed)")
            && history.contains("!! GATES OVERRIDDEN by tester@example.com: outage"),
        "{history}"
    );
    let json = run(&p, &["history", "report", "--env", "prod", "--json"]).success().json();
    assert_eq!(json[0]["audit"]["override_reason"], "outage", "{json}");
}
