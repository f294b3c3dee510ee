//! The notifications outbox: events are written in the transaction of the
//! change they tell of (and not at all when it fails), once per id; a
//! deliverer claims an event alone until its claim runs out, records each
//! webhook's attempts, and settles it.

use chrono::{DateTime, Duration, Utc};
use flowgate_core::events::{self, Event};
use flowgate_core::{Approval, EventKind};
use flowgate_ledger::testing::TestLedger;
use flowgate_ledger::{DeliveryRecord, LedgerDatabase, RolloutRecord, RolloutStatus};
use serde_json::json;

use super::{bid, env, flow, mv, three_builds, Target, B1, B2, B3};

/// The state a failed change must leave as it was: the ledger's rows and the outbox's events.
async fn state(ledger: &TestLedger) -> (String, Vec<(String, String, String)>) {
    (ledger.dump().await.unwrap(), ledger.events().await.unwrap())
}

async fn kinds(ledger: &TestLedger) -> Vec<String> {
    ledger.events().await.unwrap().into_iter().map(|(_, _, kind)| kind).collect()
}

fn drift(n: i64) -> Event {
    let project = super::PROJECT.parse().unwrap();
    events::drift_found(&project, &env("prod"), at(n), &[(flow("etl"), None, n, vec!["schedule".into()])])
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

pub async fn changes_write_their_events_in_their_own_transaction(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    ledger.apply(&[mv("etl", "qa", None, B1), mv("report", "qa", None, B1)]).await.unwrap();
    assert_eq!(kinds(&ledger).await, ["release"], "one event for the two moves of one env");

    let before = state(&ledger).await;
    assert!(ledger.apply(&[mv("load", "qa", None, B2), mv("etl", "qa", None, B2)]).await.unwrap_err().is_conflict());
    assert_eq!(state(&ledger).await, before, "a failed apply writes no event");

    let approval = Approval {
        env: env("prod"),
        build: bid(B1),
        flow: None,
        actor: "carol".into(),
        reason: "reviewed".into(),
        created_at: Utc::now(),
        verified: None,
    };
    assert!(ledger.record_approval(&approval).await.unwrap());
    assert!(!ledger.record_approval(&approval).await.unwrap());
    let unknown = Approval { build: bid("cccc0000000000000009"), ..approval.clone() };
    assert!(ledger.record_approval(&unknown).await.is_err());
    assert_eq!(kinds(&ledger).await.iter().filter(|k| k.contains("approval.given")).count(), 1);

    let started = ledger
        .start_rollout(&RolloutRecord {
            id: "prod-1".into(),
            env: env("prod"),
            status: RolloutStatus::Running,
            version: 1,
            actor: "alice".into(),
            body: json!({}),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    let step = RolloutRecord { version: 2, ..started.clone() };
    let wave_passed = Event { kind: EventKind::WavePassed, id: "ev_wave_1".into(), ..drift(1) };
    let stale = RolloutRecord { version: 9, ..started.clone() };
    let before = state(&ledger).await;
    assert!(ledger.transition_rollout(&stale, &[], std::slice::from_ref(&wave_passed)).await.is_err());
    assert_eq!(state(&ledger).await, before, "a lost transition writes no event");
    ledger.transition_rollout(&step, &[mv("etl", "prod", None, B3)], std::slice::from_ref(&wave_passed)).await.unwrap();
    let events = ledger.events().await.unwrap();
    assert!(events.contains(&("ev_wave_1".into(), "prod".into(), "rollout.wave_passed".into())), "{events:?}");
    assert_eq!(events.len(), 4, "release, approval, the wave and the rollout's release: {events:?}");

    ledger.record_events(&[drift(1), drift(1)]).await.unwrap();
    ledger.record_events(&[drift(1)]).await.unwrap();
    assert_eq!(kinds(&ledger).await.iter().filter(|k| k.contains("drift.found")).count(), 1);
    let stranger = Event { project: "beta".parse().unwrap(), ..drift(2) };
    let before = state(&ledger).await;
    assert!(ledger.record_events(&[drift(3), stranger]).await.is_err());
    assert_eq!(state(&ledger).await, before, "another project's event writes nothing");
}

pub async fn a_deliverer_claims_an_event_alone_until_it_settles_or_the_claim_runs_out(t: &Target) {
    let ledger = t.open().await;
    ledger.record_events(&[drift(1), drift(2)]).await.unwrap();
    let db = LedgerDatabase::open(&t.url, &t.base_dir).await.unwrap();
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let until = now + Duration::seconds(30);

    let first = db.claim_events("replica-a", now, until, 1).await.unwrap();
    assert_eq!(first.len(), 1, "at most the limit");
    assert_eq!(first[0].event, drift(1), "the event comes back as written");
    let second = db.claim_events("replica-b", now, until, 10).await.unwrap();
    assert_eq!(second.iter().map(|p| p.event.id.clone()).collect::<Vec<_>>(), [drift(2).id], "a's claim holds b off");
    assert_eq!(db.claim_events("replica-a", now, until, 10).await.unwrap().len(), 1, "a renews its own claim only");

    let failed = DeliveryRecord {
        hook: "slack".into(),
        attempts: 1,
        next_attempt_at: Some(now + Duration::seconds(2)),
        delivered_at: None,
        last_error: Some("HTTP 500".into()),
    };
    db.record_delivery(&first[0].event.id, &failed).await.unwrap();
    db.release_event(&first[0].event.id, "replica-a", now + Duration::seconds(2), None).await.unwrap();
    assert!(db.claim_events("replica-b", now, until, 10).await.unwrap().iter().all(|p| p.event.id != drift(1).id));
    let due = db.claim_events("replica-b", now + Duration::seconds(3), until, 10).await.unwrap();
    let again = due.iter().find(|p| p.event.id == drift(1).id).expect("due again after its next attempt time");
    assert_eq!(again.deliveries, std::slice::from_ref(&failed));

    let delivered =
        DeliveryRecord { attempts: 2, next_attempt_at: None, delivered_at: Some(now), last_error: None, ..failed };
    db.record_delivery(&drift(1).id, &delivered).await.unwrap();
    db.release_event(&drift(1).id, "replica-a", now, Some(now)).await.unwrap();
    let still = db.claim_events("replica-c", now + Duration::seconds(3), until, 10).await.unwrap();
    assert!(still.is_empty(), "only the holder gives a claim back; b's claims hold: {still:?}");
    db.release_event(&drift(1).id, "replica-b", now, Some(now)).await.unwrap();

    // b dies holding drift(2): once its claim has run out, c takes it.
    let after = until + Duration::seconds(1);
    let taken = db.claim_events("replica-c", after, after + Duration::seconds(30), 10).await.unwrap();
    assert_eq!(taken.iter().map(|p| p.event.id.clone()).collect::<Vec<_>>(), [drift(2).id], "settled never comes back");

    let listed = db.outbox_events(10).await.unwrap();
    let settled = listed.iter().find(|r| r.event.id == drift(1).id).unwrap();
    assert!(settled.settled_at.is_some());
    assert_eq!(settled.deliveries, [delivered]);
}
