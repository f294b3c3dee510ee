//! Rollouts through the real binary on ledger-only envs (no verification runs:
//! those are in `prefect_rollout.rs`): waves moved one step at a time, one
//! active rollout per env even when two starts race, abort, gates at start.

mod common;

use common::{run, state};
use flowgate_testkit::GitProject;
use serde_json::Value;

/// The example project with `rollout` (and optionally `policy`) on prod.
fn project(extra: &str) -> GitProject {
    let p = GitProject::example();
    let mut config = p.read("flowgate.toml");
    // `[envs.prod]` is the config's last table: these keys land in it.
    config.push_str("rollout = { waves = [[\"etl-daily\"], [\"*\"]] }\n");
    config.push_str(extra);
    p.write("flowgate.toml", &config);
    p.commit("prod rollout");
    p
}

fn build_and_release_to_qa(p: &GitProject) -> String {
    let id = run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    run(p, &["release", "--all", "--env", "qa", "--build", &id]).success();
    id
}

fn status(p: &GitProject) -> Value {
    run(p, &["rollout", "status", "--env", "prod", "--json"]).success().json()
}

fn prod_build(p: &GitProject, flow: &str) -> Option<String> {
    let history = run(p, &["history", flow, "--env", "prod", "--json"]).success().json();
    history[0]["build"].as_str().map(str::to_string)
}

#[test]
fn a_rollout_moves_one_wave_per_step_and_records_itself_on_each_release() {
    let p = project("");
    let id = build_and_release_to_qa(&p);
    let started = run(&p, &["rollout", "start", "--to", "prod", "--from", "qa", "--detach", "--json"]).success().json();
    let rollout = started["rollout"]["id"].as_str().expect("rollout id").to_string();
    let waves = &started["body"]["waves"];
    assert_eq!(waves[0]["flows"].as_array().unwrap().len(), 1, "{started}");
    assert_eq!(waves[1]["flows"].as_array().unwrap().len(), 2, "{started}");

    // Step 1 releases wave 1 only.
    run(&p, &["rollout", "advance", "--env", "prod"]).success();
    assert_eq!(prod_build(&p, "etl-daily"), Some(id.clone()));
    assert_eq!(prod_build(&p, "report"), None);
    assert_eq!(status(&p)["body"]["phase"], "sync");
    // Step 2 syncs (a ledger-only env: nothing to push) and passes the wave.
    run(&p, &["rollout", "advance", "--env", "prod"]).success();
    let s = status(&p);
    assert_eq!((s["body"]["wave"].as_u64(), s["body"]["phase"].as_str()), (Some(1), Some("release")), "{s}");
    assert_eq!(s["body"]["waves"][0]["outcome"], "passed");
    // watch drives the rest.
    run(&p, &["rollout", "watch", "--env", "prod", "--interval", "1"]).success();
    let s = status(&p);
    assert_eq!(s["rollout"]["status"], "succeeded", "{s}");
    for flow in ["etl-daily", "report", "cleanup"] {
        assert_eq!(prod_build(&p, flow), Some(id.clone()), "{flow}");
        let history = run(&p, &["history", flow, "--env", "prod", "--json"]).success().json();
        assert_eq!(history[0]["audit"]["rollout"], rollout.as_str(), "{history}");
        assert_eq!(history[0]["kind"], "promote", "{history}");
    }
    // A finished rollout frees the env; with nothing left to change, nothing is recorded.
    let again = run(&p, &["rollout", "start", "--to", "prod", "--from", "qa"]).success();
    assert!(again.stdout.contains("Nothing to roll out"), "{}", again.stdout);
}

#[test]
fn two_starts_at_once_one_wins_and_the_other_exits_4_naming_it() {
    let p = project("");
    build_and_release_to_qa(&p);
    let args = ["rollout", "start", "--to", "prod", "--from", "qa", "--detach", "--json"];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&p, &args));
        let b = s.spawn(|| run(&p, &args));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [0, 4], "\n--- a\n{}\n{}\n--- b\n{}\n{}", a.stdout, a.stderr, b.stdout, b.stderr);
    let (winner, loser) = if a.code == 0 { (a, b) } else { (b, a) };
    let id = winner.json()["rollout"]["id"].as_str().unwrap().to_string();
    assert!(loser.stderr.contains(&id), "the loser names the active rollout: {}", loser.stderr);
    let s = status(&p);
    assert_eq!(s["rollout"]["id"], id.as_str());
    assert_eq!(s["body"]["wave"], 0, "nothing advanced: {s}");
}

#[test]
fn abort_stops_the_rollout_keeps_released_waves_and_frees_the_env() {
    let p = project("");
    let id = build_and_release_to_qa(&p);
    run(&p, &["rollout", "start", "--to", "prod", "--from", "qa", "--detach"]).success();
    run(&p, &["rollout", "advance", "--env", "prod"]).success();
    let aborted =
        run(&p, &["rollout", "abort", "--env", "prod", "--reason", "changed my mind", "--json"]).success().json();
    assert_eq!(aborted["rollout"]["status"], "aborted", "{aborted}");
    assert!(aborted["body"]["failure"].as_str().unwrap().contains("changed my mind"));
    assert_eq!(prod_build(&p, "etl-daily"), Some(id), "a released wave stays released");
    assert_eq!(prod_build(&p, "report"), None);
    run(&p, &["rollout", "advance", "--env", "prod"]).expect_code(2);
    let watch = run(&p, &["rollout", "watch", "--env", "prod"]).expect_code(1);
    assert!(watch.stderr.contains("aborted"), "{}", watch.stderr);
    run(&p, &["rollout", "start", "--to", "prod", "--from", "qa", "--detach"]).success();
}

#[test]
fn gates_refuse_a_start_with_nothing_recorded() {
    let p = project("policy = { branches = [\"release/*\"] }\n");
    build_and_release_to_qa(&p);
    let before = state(&p);
    let refused = run(&p, &["rollout", "start", "--to", "prod", "--from", "qa"]).expect_code(3);
    assert!(refused.stderr.contains("branches") && refused.stderr.contains("main"), "{}", refused.stderr);
    assert_eq!(state(&p), before);
    let dry = run(&p, &["rollout", "start", "--to", "prod", "--from", "qa", "--dry-run", "--json"]).success().json();
    assert_eq!(dry["gates"].as_array().unwrap().len(), 3, "{dry}");
    assert_eq!(state(&p), before);
    run(&p, &["rollout", "status", "--env", "prod"]).expect_code(2);
}
