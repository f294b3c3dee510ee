//! Stories for maintenance: pins, the inventory gc and fsck read, deleting
//! builds (refused while anything needs them, history kept), and the
//! maintenance lock (exclusive, names its holder, not blocked by a dead holder).

use std::time::Duration;

use chrono::{DateTime, Utc};
use flowgate_core::{Approval, BuildId};
use flowgate_ledger::{LedgerError, LockHolder, Pin, ReleaseRef, RolloutRecord, RolloutStatus};
use serde_json::json;

use super::{bid, build, env, flow, mv, three_builds, Target, B1, B2, B3};

fn pin(id: &str, actor: &str, reason: &str) -> Pin {
    Pin {
        build: bid(id),
        actor: actor.into(),
        reason: reason.into(),
        created_at: DateTime::from_timestamp_millis(5_000).unwrap(),
        verified: None,
    }
}

fn rollout(id: &str, e: &str, build: &str) -> RolloutRecord {
    let now = Utc::now();
    RolloutRecord {
        id: id.into(),
        env: env(e),
        status: RolloutStatus::Running,
        version: 1,
        actor: "alice".into(),
        body: json!({ "source": { "build": build }, "waves": [], "wave": 0, "reason": "ship it" }),
        created_at: now,
        updated_at: now,
    }
}

fn ids(builds: &[flowgate_core::Build]) -> Vec<&str> {
    builds.iter().map(|b| b.id.as_str()).collect()
}

pub async fn pins_are_insert_if_absent_and_removable(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    let before = ledger.dump().await.unwrap();
    let err = ledger.pin(&pin("cccc0000000000000009", "alice", "x")).await.unwrap_err();
    assert!(
        matches!(err, LedgerError::UnknownBuild { ref build } if build.as_str() == "cccc0000000000000009"),
        "{err:?}"
    );
    assert_eq!(ledger.dump().await.unwrap(), before, "a refused pin changes nothing");

    assert!(ledger.pin(&pin(B2, "alice", "audit of INC-7")).await.unwrap());
    assert!(!ledger.pin(&pin(B2, "bob", "again")).await.unwrap(), "pinning again keeps the first pin");
    let mut later = pin(B1, "bob", "baseline");
    later.created_at = DateTime::from_timestamp_millis(9_000).unwrap();
    assert!(ledger.pin(&later).await.unwrap());
    assert_eq!(ledger.pins().await.unwrap(), vec![pin(B2, "alice", "audit of INC-7"), later.clone()]);
    assert!(ledger.dump().await.unwrap().contains("pins (\"aaaa0000000000000002\", \"alice\""));

    assert!(ledger.unpin(&bid(B2)).await.unwrap());
    assert!(!ledger.unpin(&bid(B2)).await.unwrap(), "unpinning an unpinned build is a no-op");
    assert_eq!(ledger.pins().await.unwrap(), vec![later]);
}

pub async fn inventory_reads_everything_gc_and_fsck_need(t: &Target) {
    let ledger = t.open().await;
    assert_eq!(ledger.inventory().await.unwrap(), Default::default());
    three_builds(&ledger).await;
    ledger.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    ledger.apply(&[mv("etl", "qa", Some(1), B2), mv("report", "prod", None, B1)]).await.unwrap();
    ledger.pin(&pin(B3, "alice", "keep")).await.unwrap();
    ledger.start_rollout(&rollout("prod-1", "prod", B3)).await.unwrap();
    let finished = ledger.start_rollout(&rollout("qa-1", "qa", B1)).await.unwrap();
    let mut done = finished.clone();
    (done.status, done.version) = (RolloutStatus::Succeeded, 2);
    ledger.transition_rollout(&done, &[], &[]).await.unwrap();

    let inv = ledger.inventory().await.unwrap();
    assert_eq!(ids(&inv.builds), vec![B1, B2, B3]);
    assert_eq!(inv.builds[0], build(B1, "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1", 1_000));
    let pointers: Vec<_> = inv.pointers.iter().map(|p| (p.env.as_str(), p.flow.as_str(), p.revision)).collect();
    assert_eq!(pointers, vec![("prod", "report", 1), ("qa", "etl", 2)]);
    let r = |f: &str, e: &str, revision, b: &str| ReleaseRef { flow: flow(f), env: env(e), revision, build: bid(b) };
    assert_eq!(inv.releases, vec![r("etl", "qa", 1, B1), r("etl", "qa", 2, B2), r("report", "prod", 1, B1)]);
    assert_eq!(inv.pins, vec![pin(B3, "alice", "keep")]);
    assert_eq!(inv.rollout_builds, vec![(bid(B3), "prod-1".to_string())], "only running rollouts count");
    assert!(inv.synced.is_empty());
    ledger.record_synced(&env("qa"), &[(flow("etl"), 1)]).await.unwrap();
    assert_eq!(ledger.inventory().await.unwrap().synced, vec![r("etl", "qa", 1, B1)]);
    assert_eq!(inv.check(), vec![]);
}

pub async fn deleting_builds_refuses_what_is_needed_and_keeps_history(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    let alias = "f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4";
    ledger.record_build(build(B1, alias, 5_000)).await.unwrap();
    ledger.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    ledger.apply(&[mv("etl", "qa", Some(1), B2)]).await.unwrap();
    let approval = Approval {
        env: env("prod"),
        build: bid(B1),
        flow: None,
        actor: "carol".into(),
        reason: "ok".into(),
        created_at: DateTime::from_timestamp_millis(7_000).unwrap(),
        verified: None,
    };
    ledger.record_approval(&approval).await.unwrap();
    ledger.pin(&pin(B3, "alice", "keep")).await.unwrap();
    let before = ledger.dump().await.unwrap();

    // The pointer's build, and a pinned one, are refused together with a free one: nothing goes.
    for (asked, needed, by) in
        [(vec![B1, B2], B2, "the pointer of `etl` in `qa`"), (vec![B3, B1], B3, "a pin by `alice` (keep)")]
    {
        let asked: Vec<BuildId> = asked.into_iter().map(bid).collect();
        match ledger.delete_builds(&asked).await.unwrap_err() {
            LedgerError::BuildInUse { build, by: got } => assert_eq!((build.as_str(), got.as_str()), (needed, by)),
            other => panic!("expected BuildInUse, got {other:?}"),
        }
        assert_eq!(ledger.dump().await.unwrap(), before, "a refused deletion changes nothing");
    }
    // qa's Prefect server still runs r1 (B1) until the next sync.
    ledger.record_synced(&env("qa"), &[(flow("etl"), 1)]).await.unwrap();
    let err = ledger.delete_builds(&[bid(B1)]).await.unwrap_err();
    assert!(err.to_string().contains("the deployment of `etl` on the Prefect server of `qa` (synced at r1)"), "{err}");
    ledger.record_synced(&env("qa"), &[(flow("etl"), 2)]).await.unwrap();
    ledger.unpin(&bid(B3)).await.unwrap();
    ledger.start_rollout(&rollout("prod-1", "prod", B3)).await.unwrap();
    let err = ledger.delete_builds(&[bid(B3)]).await.unwrap_err();
    assert!(err.is_conflict() && err.to_string().contains("the running rollout `prod-1`"), "{err}");

    // B1 is only in history (and approved): it goes, history keeps naming it.
    let history = ledger.history(&flow("etl"), &env("qa"), None).await.unwrap();
    let deleted = ledger.delete_builds(&[bid(B1), bid("cccc0000000000000009"), bid(B1)]).await.unwrap();
    assert_eq!(ids(&deleted), vec![B1], "unknown and repeated ids are skipped");
    assert_eq!(ledger.build(&bid(B1)).await.unwrap(), None);
    assert!(ledger.find_builds("f4f4f4").await.unwrap().is_empty(), "its commit aliases went with it");
    assert_eq!(ledger.history(&flow("etl"), &env("qa"), None).await.unwrap(), history);
    assert_eq!(ledger.approvals(&env("prod"), &bid(B1)).await.unwrap(), vec![approval]);
    assert_eq!(ids(&ledger.inventory().await.unwrap().builds), vec![B2, B3]);
    assert!(ledger.delete_builds(&[]).await.unwrap().is_empty());

    // The same build made again is a new record; a rollback to it works again.
    assert!(ledger.record_build(build(B1, alias, 8_000)).await.unwrap().created);
    let mut back = mv("etl", "qa", Some(2), B1);
    back.kind = flowgate_core::MoveKind::Rollback { to_revision: 1 };
    ledger.apply(&[back]).await.unwrap();
}

fn holder(command: &str, pid: u32) -> LockHolder {
    LockHolder {
        command: command.into(),
        actor: "alice@example.com".into(),
        host: "test-host".into(),
        pid,
        started_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    }
}

/// A pid no process has (above Linux's pid_max).
const DEAD_PID: u32 = 4_194_304 + 17;

pub async fn maintenance_lock_is_exclusive_and_names_its_holder(t: &Target) {
    let (first, second) = (t.open().await, t.open().await);
    let held = first.lock_maintenance(&holder("gc", std::process::id())).await.unwrap();
    assert_eq!(held.holder().command, "gc");
    let before = second.dump().await.unwrap();
    for ledger in [&first, &second] {
        match ledger.lock_maintenance(&holder("fsck", std::process::id())).await.unwrap_err() {
            LedgerError::MaintenanceLocked { holder: Some(h) } => assert_eq!(h, holder("gc", std::process::id())),
            other => panic!("expected MaintenanceLocked naming the holder, got {other:?}"),
        }
    }
    let err = second.lock_maintenance(&holder("fsck", 1)).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert!(err.to_string().contains("`gc` run by `alice@example.com` on host `test-host`"), "{err}");
    held.release().await.unwrap();
    assert_eq!(second.dump().await.unwrap(), before, "the lock is not ledger state");

    let again = second.lock_maintenance(&holder("fsck", std::process::id())).await.unwrap();
    again.release().await.unwrap();

    // Of concurrent takers exactly one wins.
    let takers: Vec<_> = (0..4)
        .map(|i| {
            let ledger = if i % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move { ledger.lock_maintenance(&holder("gc", std::process::id())).await })
        })
        .collect();
    let mut won = Vec::new();
    for taker in takers {
        match taker.await.unwrap() {
            Ok(lock) => won.push(lock),
            Err(e) => assert!(matches!(e, LedgerError::MaintenanceLocked { .. }), "{e:?}"),
        }
    }
    assert_eq!(won.len(), 1);
    won.pop().unwrap().release().await.unwrap();
}

/// A holder that dies without releasing (its process gone, its connection
/// closed) does not block the next run for long.
pub async fn a_dead_holder_does_not_block_the_lock(t: &Target) {
    let (first, second) = (t.open().await, t.open().await);
    let dead = first.lock_maintenance(&holder("gc", DEAD_PID)).await.unwrap();
    drop(dead);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lock = loop {
        match second.lock_maintenance(&holder("fsck", std::process::id())).await {
            Ok(lock) => break lock,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(matches!(e, LedgerError::MaintenanceLocked { .. }), "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the lock of a dead holder still blocks after 10 s: {e}"),
        }
    };
    assert_eq!(lock.holder().command, "fsck");
    lock.release().await.unwrap();
}

/// What a server verified of an approval's or a pin's actor comes back as it
/// was recorded; rows written in direct mode have none.
pub async fn verified_identities_are_kept_with_approvals_and_pins(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    let verified = flowgate_core::Verified {
        subject: "repo:acme/flows:ref:refs/heads/main".into(),
        method: flowgate_core::AuthMethod::Oidc,
        issuer: Some("https://token.actions.githubusercontent.com".into()),
        claims: [("ref", "refs/heads/main"), ("run_id", "4242")].map(|(k, v)| (k.into(), v.into())).into(),
        request_id: "0123456789abcdef0123456789abcdef".into(),
    };
    let approval = Approval {
        env: env("prod"),
        build: bid(B1),
        flow: None,
        actor: verified.subject.clone(),
        reason: "reviewed".into(),
        created_at: DateTime::from_timestamp_millis(5_000).unwrap(),
        verified: Some(verified.clone()),
    };
    assert!(ledger.record_approval(&approval).await.unwrap());
    assert_eq!(ledger.approvals(&env("prod"), &bid(B1)).await.unwrap(), [approval]);
    let direct = pin(B2, "alice", "kept by hand");
    let served = Pin { verified: Some(verified), ..pin(B3, "lead", "audit") };
    assert!(ledger.pin(&direct).await.unwrap() && ledger.pin(&served).await.unwrap());
    assert_eq!(ledger.pins().await.unwrap(), [direct, served]);
}

/// A build registered through a server keeps every verified registration (a
/// retried request adds none); an unknown build is refused and nothing
/// changes; deleting the build deletes its provenance.
pub async fn provenance_is_one_row_per_registration_and_goes_with_its_build(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    let job = |git_ref: &str, request: &str| flowgate_core::Verified {
        subject: format!("repo:acme/flows:ref:{git_ref}"),
        method: flowgate_core::AuthMethod::Oidc,
        issuer: Some("https://token.actions.githubusercontent.com".into()),
        claims: [("ref", git_ref), ("sha", "c1")].map(|(k, v)| (k.into(), v.into())).into(),
        request_id: request.into(),
    };
    assert_eq!(ledger.provenance(&bid(B1)).await.unwrap(), []);
    let before = ledger.dump().await.unwrap();
    let err = ledger.record_provenance(&bid("cccc0000000000000009"), &job("refs/heads/main", "r0")).await.unwrap_err();
    assert!(matches!(err, LedgerError::UnknownBuild { .. }), "{err}");
    assert_eq!(ledger.dump().await.unwrap(), before);

    ledger.record_provenance(&bid(B1), &job("refs/heads/feature", "r1")).await.unwrap();
    ledger.record_provenance(&bid(B1), &job("refs/heads/main", "r2")).await.unwrap();
    ledger.record_provenance(&bid(B1), &job("refs/heads/main", "r2")).await.unwrap();
    let refs: Vec<String> =
        ledger.provenance(&bid(B1)).await.unwrap().into_iter().map(|p| p.registrar.claims["ref"].clone()).collect();
    assert_eq!(refs, ["refs/heads/feature", "refs/heads/main"]);
    assert_eq!(ledger.provenance(&bid(B2)).await.unwrap(), [], "another build's provenance");

    // B1 is unneeded once no pointer names it: deleting it takes its provenance.
    let deleted = ledger.delete_builds(&[bid(B1)]).await.unwrap();
    assert_eq!(ids(&deleted), [B1]);
    assert_eq!(ledger.provenance(&bid(B1)).await.unwrap(), []);
    assert!(!ledger.dump().await.unwrap().contains("build_provenance"), "rows left behind");
}
