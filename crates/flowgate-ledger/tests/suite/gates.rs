//! Stories for what gates need from the ledger: a release's audit kept with it,
//! and approvals recorded once per (env, build, flow, actor).

use chrono::{DateTime, Utc};
use flowgate_core::{Approval, Audit, Gate, GateResult, GateStatus};
use flowgate_ledger::LedgerError;

use super::{bid, env, flow, mv, three_builds, Target, B1, B2, B3};

fn gate(gate: Gate, status: GateStatus) -> GateResult {
    GateResult { gate, status, detail: format!("{gate}: required and found") }
}

pub async fn audit_round_trips_through_apply_and_history(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    // Nanoseconds inside a gate result are JSON, not a column: kept exactly.
    let until = DateTime::<Utc>::from_timestamp(1_900_000_000, 123_456_789).unwrap();
    let audit = Audit {
        gates: vec![
            gate(Gate::Branches, GateStatus::Pass),
            gate(Gate::Approval, GateStatus::Refuse),
            gate(Gate::Soak, GateStatus::Wait { until: Some(until) }),
            gate(Gate::MinSuccessfulRuns, GateStatus::Wait { until: None }),
        ],
        override_reason: Some("hotfix for INC-42".into()),
        rollout: Some("prod-20261126T120000-0a1b".into()),
        verified: Some(flowgate_core::Verified {
            subject: "repo:acme/flows:ref:refs/heads/main".into(),
            method: flowgate_core::AuthMethod::Oidc,
            issuer: Some("https://token.actions.githubusercontent.com".into()),
            claims: [("ref".to_string(), "refs/heads/main".to_string())].into(),
            request_id: "0a1b".into(),
        }),
    };
    let mut audited = mv("etl", "prod", None, B1);
    audited.audit = audit.clone();
    let released = ledger.apply(&[audited]).await.unwrap();
    assert_eq!(released[0].audit, audit);

    // Each part alone, and none at all (no policy): NULL columns read back empty.
    let mut only_override = mv("etl", "prod", Some(1), B2);
    only_override.audit.override_reason = Some(String::new());
    let mut only_rollout = mv("report", "prod", None, B2);
    only_rollout.audit.rollout = Some("r".into());
    let plain = mv("etl", "prod", Some(2), B3);
    let more = ledger.apply(&[only_override.clone(), only_rollout.clone(), plain]).await.unwrap();
    assert_eq!(
        more.iter().map(|r| r.audit.clone()).collect::<Vec<_>>(),
        [only_override.audit, only_rollout.audit.clone(), Audit::default()]
    );

    let history = ledger.history(&flow("etl"), &env("prod"), None).await.unwrap();
    assert_eq!(history, vec![more[2].clone(), more[0].clone(), released[0].clone()]);
    assert_eq!(ledger.history(&flow("report"), &env("prod"), None).await.unwrap()[0].audit, only_rollout.audit);
    let dump = ledger.dump().await.unwrap();
    assert!(dump.contains("hotfix for INC-42") && dump.contains("prod-20261126T120000-0a1b"), "{dump}");

    // A second connection (or process) reads the same audit.
    let again = t.open().await;
    assert_eq!(again.history(&flow("etl"), &env("prod"), Some(1)).await.unwrap()[0].audit, Audit::default());
    assert_eq!(again.history(&flow("etl"), &env("prod"), None).await.unwrap()[2].audit, audit);
}

fn approval(e: &str, build: &str, f: Option<&str>, actor: &str, ms: i64) -> Approval {
    Approval {
        env: env(e),
        build: bid(build),
        flow: f.map(flow),
        actor: actor.into(),
        reason: format!("{actor} checked {build} at {ms}"),
        created_at: DateTime::from_timestamp_millis(ms).unwrap(),
        verified: None,
    }
}

pub async fn approvals_are_insert_if_absent(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    let first = approval("prod", B1, None, "bob", 5_000);
    assert!(ledger.record_approval(&first).await.unwrap());
    let dump = ledger.dump().await.unwrap();
    assert!(dump.contains("approvals") && dump.contains("bob checked"), "{dump}");

    // Approving again (another reason, another time) keeps the first record.
    let mut again = approval("prod", B1, None, "bob", 9_000);
    again.reason = "changed my mind about the reason".into();
    assert!(!ledger.record_approval(&again).await.unwrap());
    assert_eq!(ledger.approvals(&env("prod"), &bid(B1)).await.unwrap(), vec![first.clone()]);
    assert_eq!(ledger.dump().await.unwrap(), dump);

    // A second handle sees the same key as taken.
    let other = t.open().await;
    assert!(!other.record_approval(&first).await.unwrap());
    assert_eq!(other.approvals(&env("prod"), &bid(B1)).await.unwrap(), vec![first]);
}

pub async fn approvals_per_flow_and_for_every_flow(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    // Recorded out of time order, so "oldest first" is by time, not insertion.
    let all_by_bob = approval("prod", B1, None, "bob", 3_000);
    let etl_by_carol = approval("prod", B1, Some("etl"), "carol", 1_000);
    let report_by_carol = approval("prod", B1, Some("report"), "carol", 2_000);
    let all_by_carol = approval("prod", B1, None, "carol", 4_000);
    let etl_by_bob = approval("prod", B1, Some("etl"), "bob", 4_000);
    for a in [&all_by_bob, &etl_by_carol, &report_by_carol, &all_by_carol, &etl_by_bob] {
        assert!(ledger.record_approval(a).await.unwrap(), "{a:?} is a key of its own");
    }
    // The same build in another env, and another build in this env, are apart.
    assert!(ledger.record_approval(&approval("qa", B1, None, "bob", 500)).await.unwrap());
    assert!(ledger.record_approval(&approval("prod", B2, Some("etl"), "bob", 600)).await.unwrap());

    let got = ledger.approvals(&env("prod"), &bid(B1)).await.unwrap();
    // Same time: by flow ('' = every flow first), then actor.
    assert_eq!(got, vec![etl_by_carol, report_by_carol, all_by_bob, all_by_carol, etl_by_bob]);
    assert_eq!(ledger.approvals(&env("qa"), &bid(B1)).await.unwrap().len(), 1);
    assert_eq!(ledger.approvals(&env("prod"), &bid(B2)).await.unwrap()[0].flow, Some(flow("etl")));
    assert!(ledger.approvals(&env("prod"), &bid(B3)).await.unwrap().is_empty());
    assert!(ledger.approvals(&env("dev"), &bid(B1)).await.unwrap().is_empty());

    // Read for many builds at once: each build's as above, builds without any absent.
    let all = ledger.approvals_of(&env("prod"), &[bid(B3), bid(B1), bid(B2), bid(B1)]).await.unwrap();
    assert_eq!(all.keys().map(|b| b.as_str()).collect::<Vec<_>>(), vec![B1, B2]);
    assert_eq!(all[&bid(B1)], got);
    assert_eq!(all[&bid(B2)], ledger.approvals(&env("prod"), &bid(B2)).await.unwrap());
    assert!(ledger.approvals_of(&env("prod"), &[]).await.unwrap().is_empty());
}

pub async fn approval_of_an_unknown_build_changes_nothing(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    ledger.record_approval(&approval("prod", B1, None, "bob", 1_000)).await.unwrap();
    let before = ledger.dump().await.unwrap();
    let unknown = "cccc0000000000000009";
    let err = ledger.record_approval(&approval("prod", unknown, Some("etl"), "bob", 2_000)).await.unwrap_err();
    match err {
        LedgerError::UnknownBuild { ref build } => assert_eq!(build.as_str(), unknown),
        other => panic!("expected UnknownBuild, got {other:?}"),
    }
    assert!(err.to_string().contains(unknown) && !err.is_conflict(), "{err}");
    assert_eq!(ledger.dump().await.unwrap(), before);
    assert!(ledger.approvals(&env("prod"), &bid(unknown)).await.unwrap().is_empty());
}
