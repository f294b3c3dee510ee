//! Stories for rollouts: one active per env (held by the database, also under
//! concurrent starts), transitions as compare-and-swap transactions that carry
//! their moves all or nothing, and the listing order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flowgate_core::Revision;
use flowgate_ledger::testing::TestLedger;
use flowgate_ledger::{LedgerError, RolloutRecord, RolloutStatus};
use serde_json::json;

use super::{assert_conflict, bid, env, flow, mv, three_builds, Target, B1, B2, B3};

/// A start request whose status, version and times are deliberately wrong:
/// `start_rollout` must ignore them.
fn request(id: &str, e: &str) -> RolloutRecord {
    let long_ago = DateTime::from_timestamp_millis(1_000).unwrap();
    RolloutRecord {
        id: id.into(),
        env: env(e),
        status: RolloutStatus::Failed,
        version: 7,
        actor: "alice".into(),
        body: json!({ "wave": 0, "waves": [["etl"], ["*"]], "reason": "ship" }),
        created_at: long_ago,
        updated_at: long_ago,
    }
}

/// The transition a driver makes from `current`.
fn next(current: &RolloutRecord, status: RolloutStatus, wave: i64) -> RolloutRecord {
    let mut body = current.body.clone();
    body["wave"] = json!(wave);
    RolloutRecord {
        status,
        version: current.version + 1,
        body,
        updated_at: current.updated_at + chrono::Duration::milliseconds(5),
        ..current.clone()
    }
}

fn assert_active(err: LedgerError, e: &str, id: &str) {
    match err {
        LedgerError::RolloutActive { env: ref got_env, id: ref got_id } => {
            assert_eq!((got_env.as_str(), got_id.as_str()), (e, id), "{err}");
            assert!(err.is_conflict());
            assert!(err.to_string().contains(&format!("`{id}`")), "{err}");
        }
        other => panic!("expected RolloutActive, got {other:?}"),
    }
}

fn assert_moved(err: LedgerError, id: &str, expected: i64, found: Option<i64>) {
    match err {
        LedgerError::RolloutMoved { id: ref got, expected: exp, found: fnd } => {
            assert_eq!((got.as_str(), exp, fnd), (id, expected, found), "{err}");
            assert!(err.is_conflict());
        }
        other => panic!("expected RolloutMoved, got {other:?}"),
    }
}

pub async fn one_active_rollout_per_env(t: &Target) {
    let ledger = t.open().await;
    let before_start = Utc::now() - chrono::Duration::milliseconds(1);
    let started = ledger.start_rollout(&request("r1", "prod")).await.unwrap();
    assert_eq!((started.status, started.version, started.actor.as_str()), (RolloutStatus::Running, 1, "alice"));
    assert_eq!(started.created_at, started.updated_at);
    assert!(started.created_at >= before_start && started.created_at <= Utc::now(), "{started:?}");
    assert_eq!(started.body, request("r1", "prod").body);
    assert_eq!(ledger.rollout("r1").await.unwrap(), Some(started.clone()));
    assert_eq!(ledger.active_rollout(&env("prod")).await.unwrap(), Some(started.clone()));
    assert_eq!(ledger.rollout("nope").await.unwrap(), None);
    assert_eq!(ledger.active_rollout(&env("qa")).await.unwrap(), None);

    let before = ledger.dump().await.unwrap();
    assert!(before.contains("rollouts") && before.contains("r1"), "{before}");
    let err = ledger.start_rollout(&request("r2", "prod")).await.unwrap_err();
    assert_active(err, "prod", "r1");
    // An id taken by an earlier rollout is refused too, in any env.
    let err = ledger.start_rollout(&request("r1", "dev")).await.unwrap_err();
    assert!(matches!(err, LedgerError::RolloutIdTaken { ref id } if id == "r1"), "{err:?}");
    assert_eq!(ledger.dump().await.unwrap(), before);

    // Other envs are free; a finished rollout frees its env.
    ledger.start_rollout(&request("q1", "qa")).await.unwrap();
    let done = next(&started, RolloutStatus::Succeeded, 2);
    assert!(ledger.transition_rollout(&done, &[], &[]).await.unwrap().is_empty());
    assert_eq!(ledger.active_rollout(&env("prod")).await.unwrap(), None);
    let stored = ledger.rollout("r1").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.version, &stored.body, stored.updated_at),
        (RolloutStatus::Succeeded, 2, &done.body, done.updated_at)
    );
    let r2 = ledger.start_rollout(&request("r2", "prod")).await.unwrap();
    assert_eq!(ledger.active_rollout(&env("prod")).await.unwrap(), Some(r2.clone()));

    // The finished one cannot come back to life while another runs in its env.
    let before = ledger.dump().await.unwrap();
    let err = ledger.transition_rollout(&next(&stored, RolloutStatus::Running, 0), &[], &[]).await.unwrap_err();
    assert_active(err, "prod", "r2");
    assert_eq!(ledger.dump().await.unwrap(), before);
}

/// Two starts race for one env from separate handles (separate connection
/// pools): exactly one wins, the other names the winner.
pub async fn concurrent_starts_exactly_one_wins(t: &Target) {
    let first = t.open().await;
    let second = t.open().await;
    for round in 0..10 {
        let e = format!("env{round}");
        let (x, y) = (first.clone(), second.clone());
        let (a, b) = (request(&format!("a{round}"), &e), request(&format!("b{round}"), &e));
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { x.start_rollout(&a).await }),
            tokio::spawn(async move { y.start_rollout(&b).await })
        );
        let results = [ra.unwrap(), rb.unwrap()];
        let shown = format!("{results:?}");
        let (wins, losses): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!((wins.len(), losses.len()), (1, 1), "round {round}: {shown}");
        let winner = wins.into_iter().next().unwrap().unwrap();
        assert_active(losses.into_iter().next().unwrap().unwrap_err(), &e, &winner.id);
        assert_eq!(first.active_rollout(&env(&e)).await.unwrap(), Some(winner));
        assert_eq!(second.rollouts(Some(&env(&e)), 10).await.unwrap().len(), 1, "round {round}");
    }
}

async fn pointer_revision(ledger: &TestLedger, f: &str, e: &str) -> Option<Revision> {
    ledger.pointer(&flow(f), &env(e)).await.unwrap().map(|p| p.revision)
}

pub async fn transitions_are_compare_and_swap_with_their_moves(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    ledger.apply(&[mv("etl", "prod", None, B1)]).await.unwrap();
    let v1 = ledger.start_rollout(&request("r1", "prod")).await.unwrap();

    // A wave: the row moves to version 2 and the pointers move with it.
    let v2 = next(&v1, RolloutStatus::Running, 1);
    let mut wave = [mv("etl", "prod", Some(1), B2), mv("report", "prod", None, B2)];
    wave.iter_mut().for_each(|m| m.audit.rollout = Some("r1".into()));
    let released = ledger.transition_rollout(&v2, &wave, &[]).await.unwrap();
    let got: Vec<_> = released.iter().map(|r| (r.flow.as_str(), r.revision, r.audit.rollout.as_deref())).collect();
    assert_eq!(got, vec![("etl", 2, Some("r1")), ("report", 1, Some("r1"))]);
    assert_eq!(ledger.rollout("r1").await.unwrap(), Some(v2.clone()));
    assert_eq!(ledger.history(&flow("report"), &env("prod"), None).await.unwrap(), released[1..]);

    let before = ledger.dump().await.unwrap();
    // A stale driver (read version 1) loses and changes nothing, moves included.
    let stale = next(&v1, RolloutStatus::Aborted, 9);
    let err = ledger.transition_rollout(&stale, &[mv("etl", "prod", Some(2), B3)], &[]).await.unwrap_err();
    assert_moved(err, "r1", 1, Some(2));
    let ghost = RolloutRecord { id: "r9".into(), ..next(&v2, RolloutStatus::Running, 2) };
    assert_moved(ledger.transition_rollout(&ghost, &[], &[]).await.unwrap_err(), "r9", 2, None);
    assert_eq!(ledger.dump().await.unwrap(), before);

    // A move that conflicts (or names no build) changes neither row nor pointers.
    let v3 = next(&v2, RolloutStatus::Running, 2);
    let err =
        ledger.transition_rollout(&v3, &[mv("etl", "prod", Some(2), B3), mv("report", "prod", None, B3)], &[]).await;
    assert_conflict(err.unwrap_err(), "report", "prod", None, Some(1));
    let err = ledger.transition_rollout(&v3, &[mv("etl", "prod", Some(2), "cccc0000000000000009")], &[]).await;
    assert!(matches!(err, Err(LedgerError::UnknownBuild { .. })), "{err:?}");
    assert_eq!(ledger.dump().await.unwrap(), before);
    assert_eq!(pointer_revision(&ledger, "etl", "prod").await, Some(2));

    // The same transition with good moves lands, then the rollout finishes.
    ledger.transition_rollout(&v3, &[mv("etl", "prod", Some(2), B3)], &[]).await.unwrap();
    assert_eq!(ledger.pointer(&flow("etl"), &env("prod")).await.unwrap().unwrap().build, bid(B3));
    let v4 = next(&v3, RolloutStatus::Failed, 2);
    ledger.transition_rollout(&v4, &[mv("etl", "prod", Some(3), B2)], &[]).await.unwrap();
    assert_eq!(ledger.rollout("r1").await.unwrap().map(|r| (r.status, r.version)), Some((RolloutStatus::Failed, 4)));
    assert_eq!(pointer_revision(&ledger, "etl", "prod").await, Some(4));
    assert_eq!(ledger.active_rollout(&env("prod")).await.unwrap(), None);
}

/// Newest first by creation, not by id: ids here sort against creation order.
pub async fn rollouts_are_listed_newest_first(t: &Target) {
    let ledger = t.open().await;
    let mut started = Vec::new();
    for (id, e) in [("rz", "prod"), ("ra", "qa"), ("rm", "prod")] {
        if let Some(active) = ledger.active_rollout(&env(e)).await.unwrap() {
            ledger.transition_rollout(&next(&active, RolloutStatus::Aborted, 0), &[], &[]).await.unwrap();
        }
        started.push(ledger.start_rollout(&request(id, e)).await.unwrap());
        // Creation times are milliseconds: make each start's distinct.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let ids = |list: Vec<RolloutRecord>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(ledger.rollouts(None, 10).await.unwrap()), ["rm", "ra", "rz"]);
    assert_eq!(ids(ledger.rollouts(None, 2).await.unwrap()), ["rm", "ra"]);
    assert_eq!(ids(ledger.rollouts(Some(&env("prod")), 10).await.unwrap()), ["rm", "rz"]);
    assert_eq!(ids(ledger.rollouts(Some(&env("prod")), 1).await.unwrap()), ["rm"]);
    assert!(ledger.rollouts(Some(&env("dev")), 10).await.unwrap().is_empty());
    let listed = ledger.rollouts(Some(&env("prod")), 10).await.unwrap();
    assert_eq!((listed[0].status, listed[1].status), (RolloutStatus::Running, RolloutStatus::Aborted));
    assert_eq!(listed[0], started[2]);
}
