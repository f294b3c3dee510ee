//! Stories for the leases server replicas take on driving rollouts: one holder
//! at a time, renewed by its holder, passed on only when it has run out or was
//! given back, also when replicas ask at the same moment.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flowgate_ledger::{ProjectClaim, RolloutLease, RolloutRecord, RolloutStatus};
use serde_json::json;

use super::{env, Target};

const TTL: Duration = Duration::from_secs(10);

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn rollout(id: &str, e: &str) -> RolloutRecord {
    RolloutRecord {
        id: id.into(),
        env: env(e),
        status: RolloutStatus::Running,
        version: 1,
        actor: "alice".into(),
        body: json!({ "wave": 0 }),
        created_at: at(0),
        updated_at: at(0),
    }
}

pub async fn a_lease_has_one_holder_until_it_runs_out_or_is_given_back(t: &Target) {
    let ledger = t.open().await;
    assert!(ledger.active_rollouts().await.unwrap().is_empty());
    ledger.start_rollout(&rollout("q1", "qa")).await.unwrap();
    ledger.start_rollout(&rollout("p1", "prod")).await.unwrap();
    let active: Vec<String> = ledger.active_rollouts().await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(active, ["p1", "q1"], "by env");

    assert_eq!(ledger.rollout_lease("p1").await.unwrap(), None);
    assert!(ledger.lease_rollout("p1", "replica-a", at(0), TTL).await.unwrap());
    let held = |holder: &str, until: i64| Some(RolloutLease { holder: holder.into(), expires_at: at(until) });
    assert_eq!(ledger.rollout_lease("p1").await.unwrap(), held("replica-a", 10));
    // Another replica is refused while the lease runs; the holder renews it.
    assert!(!ledger.lease_rollout("p1", "replica-b", at(1), TTL).await.unwrap());
    assert!(ledger.lease_rollout("p1", "replica-a", at(5), TTL).await.unwrap());
    assert_eq!(ledger.rollout_lease("p1").await.unwrap(), held("replica-a", 15));
    assert!(!ledger.lease_rollout("p1", "replica-b", at(14), TTL).await.unwrap());
    // The holder stopped renewing (it died): at its end the lease passes on.
    assert!(ledger.lease_rollout("p1", "replica-b", at(15), TTL).await.unwrap());
    assert_eq!(ledger.rollout_lease("p1").await.unwrap(), held("replica-b", 25));
    assert!(!ledger.lease_rollout("p1", "replica-a", at(16), TTL).await.unwrap());
    // Giving back a lease one does not hold changes nothing; the holder's ends it.
    ledger.end_rollout_lease("p1", "replica-a").await.unwrap();
    assert_eq!(ledger.rollout_lease("p1").await.unwrap(), held("replica-b", 25));
    ledger.end_rollout_lease("p1", "replica-b").await.unwrap();
    assert!(ledger.lease_rollout("p1", "replica-a", at(17), TTL).await.unwrap());
    // Leases are per rollout and per project.
    assert!(ledger.lease_rollout("q1", "replica-b", at(17), TTL).await.unwrap());
    let beta = t.open_as(&ProjectClaim::named("beta")).await;
    assert_eq!(beta.rollout_lease("p1").await.unwrap(), None);
    assert!(beta.lease_rollout("p1", "replica-b", at(17), TTL).await.unwrap());
    assert_eq!(ledger.rollout_lease("p1").await.unwrap(), held("replica-a", 27));
}

/// Two replicas (separate connection pools) ask for a fresh lease at the same
/// moment, ten times: exactly one is granted each time.
pub async fn replicas_asking_at_once_get_one_lease(t: &Target) {
    let first = t.open().await;
    let second = t.open().await;
    for round in 0..10 {
        let id = format!("r{round}");
        let (x, y) = (first.clone(), second.clone());
        let (a, b) = (id.clone(), id.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { x.lease_rollout(&a, "replica-a", at(0), TTL).await }),
            tokio::spawn(async move { y.lease_rollout(&b, "replica-b", at(0), TTL).await })
        );
        let granted = [ra.unwrap().unwrap(), rb.unwrap().unwrap()];
        assert_eq!(granted.iter().filter(|g| **g).count(), 1, "round {round}: {granted:?}");
        let holder = first.rollout_lease(&id).await.unwrap().unwrap().holder;
        assert_eq!(holder, if granted[0] { "replica-a" } else { "replica-b" });
    }
}
