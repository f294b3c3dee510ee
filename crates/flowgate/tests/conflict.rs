//! Concurrent moves of one (flow, env) pointer: every process either wins its
//! compare-and-swap (exit 0) or is told of the conflict (exit 4) with nothing
//! changed; no update is lost and the history has no gaps.

mod common;

use std::process::{Command, Stdio};

use common::{bin, record_crafted_build, run};
use flowgate_testkit::GitProject;

const RACERS: usize = 8;

#[test]
fn concurrent_releases_of_one_pointer_exit_0_or_4_and_leave_a_gap_free_history() {
    let p = GitProject::example();
    let head = p.git(&["rev-parse", "HEAD"]).trim().to_string();
    // Distinct builds to race with, recorded through the ledger (releases need no bundle).
    let ids: Vec<String> = (0..RACERS).map(|i| format!("{:020x}", 0x00c0_ffee_0000_u64 + i as u64)).collect();
    run(&p, &["status"]).success(); // creates the ledger, so the racers do not race on its creation
    for id in &ids {
        record_crafted_build(&p, id, &head);
    }

    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            Command::new(bin())
                .current_dir(p.path())
                .args(["release", "report", "--env", "qa", "--build", id, "--json"])
                .env("FLOWGATE_ACTOR", "racer@example.com")
                .env("FLOWGATE_USER", "tester")
                .env_remove("FLOWGATE_ENV")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn flowgate")
        })
        .collect();
    let mut winners = Vec::new();
    for (id, child) in ids.iter().zip(children) {
        let out = child.wait_with_output().expect("wait for flowgate");
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(code == 0 || code == 4, "release of `{id}` exited {code}: {stderr}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        if code == 0 {
            assert_eq!(doc["moves"][0]["build"].as_str(), Some(id.as_str()), "{doc}");
            winners.push((doc["moves"][0]["revision"].as_i64().unwrap(), id.clone()));
        } else {
            assert_eq!(doc["error"]["exit_code"].as_i64(), Some(4), "{doc}");
        }
    }
    assert!(!winners.is_empty(), "no release succeeded");

    let history = run(&p, &["history", "report", "--env", "qa", "--json"]).success().json();
    let mut history: Vec<serde_json::Value> = history.as_array().unwrap().clone();
    history.reverse();
    assert_eq!(history.len(), winners.len(), "one revision per successful release");
    winners.sort();
    for (i, (release, (revision, id))) in history.iter().zip(&winners).enumerate() {
        assert_eq!(release["revision"].as_i64(), Some(i as i64 + 1), "revisions are gap-free");
        assert_eq!(*revision, i as i64 + 1);
        assert_eq!(release["build"].as_str(), Some(id.as_str()), "revision {revision} holds its winner's build");
        let previous = if i == 0 { None } else { history[i - 1]["build"].as_str() };
        assert_eq!(release["previous_build"].as_str(), previous, "each revision moved from the one before");
    }
}
