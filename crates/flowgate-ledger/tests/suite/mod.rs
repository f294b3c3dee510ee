//! The ledger stories, written once and run against every backend
//! (`tests/sqlite.rs`, `tests/postgres.rs`). Each story gets a fresh, empty
//! database behind `Target` and may open it as often as it likes.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use flowgate_core::{Build, BuildId, Digest, EnvName, FlowKey, Move, MoveKind, Revision};
use flowgate_ledger::testing::{open, TestLedger};
use flowgate_ledger::{LedgerError, LedgerUrl, ProjectClaim};

mod gates;
mod leases;
mod maintenance;
mod migration;
mod outbox;
mod previews;
mod projects;
mod rollouts;
mod tokens;

pub use gates::*;
pub use leases::*;
pub use maintenance::*;
pub use migration::*;
pub use outbox::*;
pub use previews::*;
pub use projects::*;
pub use rollouts::*;
pub use tokens::*;

/// Every story, for a backend to instantiate with its own `story!` macro.
macro_rules! stories {
    ($story:ident) => {
        $story!(record_build_new_then_existing);
        $story!(deployment_settings_round_trip_with_their_build);
        $story!(builds_are_read_by_id_in_batches_with_or_without_settings);
        $story!(commit_aliases_and_prefixes_find_builds);
        $story!(release_moves_the_pointer_and_appends_history);
        $story!(cas_conflict_changes_nothing);
        $story!(multi_move_apply_is_all_or_nothing);
        $story!(unknown_build_changes_nothing);
        $story!(history_is_newest_first_and_gap_free);
        $story!(concurrent_applies_exactly_one_wins);
        $story!(reopen_keeps_data_and_migrations_are_idempotent);
        $story!(sync_state_records_per_env_and_never_goes_back);
        $story!(audit_round_trips_through_apply_and_history);
        $story!(approvals_are_insert_if_absent);
        $story!(approvals_per_flow_and_for_every_flow);
        $story!(approval_of_an_unknown_build_changes_nothing);
        $story!(one_active_rollout_per_env);
        $story!(concurrent_starts_exactly_one_wins);
        $story!(transitions_are_compare_and_swap_with_their_moves);
        $story!(rollouts_are_listed_newest_first);
        $story!(a_lease_has_one_holder_until_it_runs_out_or_is_given_back);
        $story!(replicas_asking_at_once_get_one_lease);
        $story!(pins_are_insert_if_absent_and_removable);
        $story!(verified_identities_are_kept_with_approvals_and_pins);
        $story!(provenance_is_one_row_per_registration_and_goes_with_its_build);
        $story!(inventory_reads_everything_gc_and_fsck_need);
        $story!(deleting_builds_refuses_what_is_needed_and_keeps_history);
        $story!(maintenance_lock_is_exclusive_and_names_its_holder);
        $story!(a_dead_holder_does_not_block_the_lock);
        $story!(projects_in_one_database_never_see_each_other);
        $story!(a_name_from_another_repository_is_refused_and_changes_nothing);
        $story!(first_opens_of_two_projects_at_once_both_register);
        $story!(migrating_a_single_project_ledger_gives_every_row_to_its_project);
        $story!(tokens_are_created_once_found_by_hash_and_revoked_once);
        $story!(a_server_looks_projects_up_without_registering_them);
        $story!(changes_write_their_events_in_their_own_transaction);
        $story!(a_deliverer_claims_an_event_alone_until_it_settles_or_the_claim_runs_out);
        $story!(previews_open_reopen_and_close_once_per_project);
    };
}
pub(crate) use stories;

/// A fresh database for one story.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: LedgerUrl,
    pub base_dir: PathBuf,
}

/// The project stories open unless they say otherwise.
pub const PROJECT: &str = "alpha";

impl Target {
    /// The ledger of [`PROJECT`], claimed without a repository.
    pub async fn open(&self) -> Arc<TestLedger> {
        self.open_as(&ProjectClaim::named(PROJECT)).await
    }

    pub async fn open_as(&self, claim: &ProjectClaim) -> Arc<TestLedger> {
        let ledger = self.try_open(claim).await.unwrap_or_else(|e| panic!("open {} as {claim:?}: {e:?}", self.url));
        Arc::new(ledger)
    }

    pub async fn try_open(&self, claim: &ProjectClaim) -> Result<TestLedger, LedgerError> {
        open(&self.url, &self.base_dir, claim).await
    }
}

pub fn flow(s: &str) -> FlowKey {
    s.parse().unwrap()
}
pub fn env(s: &str) -> EnvName {
    s.parse().unwrap()
}
pub fn bid(s: &str) -> BuildId {
    s.parse().unwrap()
}
fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// A build with a chosen id (20 hex) and commit; times are whole milliseconds,
/// the precision the ledger stores.
pub fn build(id: &str, commit: &str, ms: i64) -> Build {
    Build {
        id: bid(id),
        bundle: Digest::of(id.as_bytes()),
        bundle_size: 4096,
        file_count: 12,
        images: [(flow("etl"), format!("ghcr.io/acme/flows@sha256:{:064x}", ms))].into_iter().collect(),
        commit: commit.to_string(),
        branch: Some("main".into()),
        dirty: false,
        author: "alice <alice@example.com>".into(),
        created_at: at(ms),
        settings: None,
    }
}

pub(crate) const B1: &str = "aaaa0000000000000001";
pub(crate) const B2: &str = "aaaa0000000000000002";
pub(crate) const B3: &str = "bbbb0000000000000003";
const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
const C2: &str = "d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2";
const C3: &str = "e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3";

pub(crate) async fn three_builds(ledger: &TestLedger) {
    for (id, commit, ms) in [(B1, C1, 1_000), (B2, C2, 2_000), (B3, C3, 3_000)] {
        assert!(ledger.record_build(build(id, commit, ms)).await.unwrap().created);
    }
}

pub fn mv(f: &str, e: &str, expected: Option<Revision>, build: &str) -> Move {
    Move {
        flow: flow(f),
        env: env(e),
        expected,
        build: bid(build),
        kind: MoveKind::Release,
        actor: "alice".into(),
        reason: Some(format!("ship {build}")),
        audit: Default::default(),
    }
}

fn ids(builds: &[Build]) -> Vec<&str> {
    builds.iter().map(|b| b.id.as_str()).collect()
}

pub async fn record_build_new_then_existing(t: &Target) {
    let ledger = t.open().await;
    let first = build(B1, C1, 1_000);
    let recorded = ledger.record_build(first.clone()).await.unwrap();
    assert!(recorded.created);
    assert_eq!(recorded.build, first);

    // Same id from another commit, author and time: the first record wins.
    let mut again = build(B1, C2, 9_000);
    again.author = "bob".into();
    let recorded = ledger.record_build(again.clone()).await.unwrap();
    assert!(!recorded.created);
    assert_eq!(recorded.build, first);
    assert_eq!(ledger.build(&bid(B1)).await.unwrap(), Some(first.clone()));
    assert_eq!(ledger.build(&bid(B2)).await.unwrap(), None);

    ledger.record_build(build(B3, C3, 3_000)).await.unwrap();
    ledger.record_build(build(B2, C2, 2_000)).await.unwrap();
    assert_eq!(ids(&ledger.builds(10).await.unwrap()), vec![B3, B2, B1]);
    assert_eq!(ids(&ledger.builds(2).await.unwrap()), vec![B3, B2]);
}

pub async fn deployment_settings_round_trip_with_their_build(t: &Target) {
    let ledger = t.open().await;
    let mut settings = flowgate_core::BuildSettings::default();
    let deployment: flowgate_core::DeploymentSettings = serde_json::from_value(serde_json::json!({
        "flow_name": "etl", "deployment_name": "etl-nightly", "entrypoint": "flows/etl.py:etl",
        "parameter_schema": {"type": "object", "properties": {"day": {"type": "integer"}}},
        "work_pool": "pool", "parameters": {"day": 3, "tables": ["a", "b"]},
        "schedules": [{"cron": "0 3 * * *", "timezone": "UTC"}], "tags": ["nightly"], "paused": false
    }))
    .unwrap();
    settings.insert("qa", flow("etl"), deployment.clone());
    settings.insert("prod", flow("etl"), deployment);
    let with_settings = Build { settings: Some(settings), ..build(B1, C1, 1_000) };
    assert!(ledger.record_build(with_settings.clone()).await.unwrap().created);
    assert_eq!(ledger.build(&bid(B1)).await.unwrap(), Some(with_settings.clone()));
    assert_eq!(ledger.find_builds("aaaa").await.unwrap(), vec![with_settings.clone()]);

    // Built again from another commit (an unchanged rebuild): the first record
    // with its settings, and the new commit finds it.
    let alias = "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5";
    let again = Build { commit: alias.into(), author: "bob".into(), ..with_settings.clone() };
    let recorded = ledger.record_build(again.clone()).await.unwrap();
    assert!(!recorded.created);
    assert_eq!(recorded.build, with_settings);
    assert_eq!(ledger.find_builds("e5e5e5").await.unwrap(), vec![with_settings]);

    // A build without recorded settings (made before builds carried them) stays without.
    ledger.record_build(build(B2, C2, 2_000)).await.unwrap();
    assert_eq!(ledger.build(&bid(B2)).await.unwrap().unwrap().settings, None);
}

pub async fn builds_are_read_by_id_in_batches_with_or_without_settings(t: &Target) {
    let ledger = t.open().await;
    let mut settings = flowgate_core::BuildSettings::default();
    let deployment: flowgate_core::DeploymentSettings = serde_json::from_value(serde_json::json!({
        "flow_name": "etl", "deployment_name": "etl", "entrypoint": "flows/etl.py:etl",
        "parameter_schema": {"type": "object", "properties": {}}, "work_pool": "pool"
    }))
    .unwrap();
    settings.insert("qa", flow("etl"), deployment);
    let with_settings = Build { settings: Some(settings), ..build(B1, C1, 1_000) };
    ledger.record_build(with_settings.clone()).await.unwrap();
    ledger.record_build(build(B2, C2, 2_000)).await.unwrap();
    ledger.record_build(build(B3, C3, 3_000)).await.unwrap();

    // Repeats, absent ids and more ids than one statement takes: each present build once, by id.
    let absent = (0..flowgate_ledger::IDS_PER_STATEMENT + 10).map(|i| bid(&format!("cccc{i:016}")));
    let mut wanted: Vec<BuildId> = vec![bid(B3), bid(B1), bid(B1)];
    wanted.extend(absent);
    wanted.push(bid(B2));
    let full = ledger.builds_by_id(&wanted, true).await.unwrap();
    assert_eq!(ids(&full), vec![B1, B2, B3]);
    assert_eq!(full[0], with_settings);
    let brief = ledger.builds_by_id(&wanted, false).await.unwrap();
    assert_eq!(brief[0], Build { settings: None, ..with_settings });
    assert_eq!(brief[1..], full[1..]);
    assert!(ledger.builds_by_id(&[], false).await.unwrap().is_empty());
}

pub async fn commit_aliases_and_prefixes_find_builds(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    // Another commit with the same tree produces B1 again.
    let alias = "f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4";
    assert!(!ledger.record_build(build(B1, alias, 5_000)).await.unwrap().created);

    assert_eq!(ids(&ledger.find_builds("f4f4f4").await.unwrap()), vec![B1], "commit alias");
    assert_eq!(ids(&ledger.find_builds(C1).await.unwrap()), vec![B1], "first commit, full sha");
    assert_eq!(ids(&ledger.find_builds("C1C1").await.unwrap()), vec![B1], "case-insensitive");
    assert_eq!(ids(&ledger.find_builds(B3).await.unwrap()), vec![B3], "full id");
    assert_eq!(ids(&ledger.find_builds("bbbb").await.unwrap()), vec![B3], "id prefix");
    assert_eq!(ids(&ledger.find_builds("aaaa").await.unwrap()), vec![B2, B1], "ambiguous prefix, newest first");
    assert_eq!(ids(&ledger.find_builds("e3").await.unwrap()), vec![B3]);
    for nothing in ["", "0", "main", "ffff", "aaaa1"] {
        assert!(ledger.find_builds(nothing).await.unwrap().is_empty(), "{nothing:?}");
    }

    // A prefix matching a build both by id and by one of its commits lists it once.
    let twin = "aaaa00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    ledger.record_build(build(B2, twin, 6_000)).await.unwrap();
    assert_eq!(ids(&ledger.find_builds("aaaa00").await.unwrap()), vec![B2, B1]);
}

pub async fn release_moves_the_pointer_and_appends_history(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    let released = ledger.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    assert_eq!(released.len(), 1);
    let r = &released[0];
    assert_eq!((r.revision, &r.build, &r.previous_build, &r.kind), (1, &bid(B1), &None, &MoveKind::Release));
    assert_eq!(r.reason.as_deref(), Some("ship aaaa0000000000000001"));

    let p = ledger.pointer(&flow("etl"), &env("qa")).await.unwrap().unwrap();
    assert_eq!((p.revision, &p.build, p.updated_at), (1, &bid(B1), r.created_at));
    assert_eq!(ledger.history(&flow("etl"), &env("qa"), None).await.unwrap(), released);
    assert_eq!(ledger.pointer(&flow("etl"), &env("prod")).await.unwrap(), None);

    let second = ledger.apply(&[mv("etl", "qa", Some(1), B2)]).await.unwrap();
    assert_eq!((second[0].revision, &second[0].previous_build), (2, &Some(bid(B1))));
    ledger.apply(&[mv("report", "qa", None, B3), mv("etl", "prod", None, B1), mv("a", "qa", None, B1)]).await.unwrap();

    let all: Vec<(String, String, Revision)> = ledger
        .pointers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.env.to_string(), p.flow.to_string(), p.revision))
        .collect();
    let expected = [("prod", "etl", 1), ("qa", "a", 1), ("qa", "etl", 2), ("qa", "report", 1)];
    assert_eq!(all, expected.map(|(e, f, r)| (e.to_string(), f.to_string(), r)));
    let qa = ledger.pointers(Some(&env("qa"))).await.unwrap();
    assert_eq!(qa.iter().map(|p| p.flow.as_str()).collect::<Vec<_>>(), vec!["a", "etl", "report"]);
    assert!(ledger.pointers(Some(&env("dev"))).await.unwrap().is_empty());
}

pub(crate) fn assert_conflict(err: LedgerError, f: &str, e: &str, expected: Option<Revision>, found: Option<Revision>) {
    match err {
        LedgerError::Conflict { ref flow, ref env, expected: exp, found: fnd } => {
            assert_eq!((flow.as_str(), env.as_str(), exp, fnd), (f, e, expected, found), "{err}");
            assert!(err.is_conflict());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub async fn cas_conflict_changes_nothing(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    ledger.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    ledger.apply(&[mv("etl", "qa", Some(1), B2)]).await.unwrap();
    let before = ledger.dump().await.unwrap();

    let err = ledger.apply(&[mv("etl", "qa", Some(1), B3)]).await.unwrap_err();
    assert_conflict(err, "etl", "qa", Some(1), Some(2));
    let err = ledger.apply(&[mv("etl", "qa", None, B3)]).await.unwrap_err();
    assert_conflict(err, "etl", "qa", None, Some(2));
    let err = ledger.apply(&[mv("etl", "prod", Some(1), B3)]).await.unwrap_err();
    assert_conflict(err, "etl", "prod", Some(1), None);
    assert_eq!(ledger.dump().await.unwrap(), before);
}

pub async fn multi_move_apply_is_all_or_nothing(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    ledger.apply(&[mv("report", "qa", None, B1)]).await.unwrap();
    let before = ledger.dump().await.unwrap();

    // The first move is fine, the second conflicts: neither lands.
    let err = ledger.apply(&[mv("etl", "qa", None, B2), mv("report", "qa", None, B2)]).await.unwrap_err();
    assert_conflict(err, "report", "qa", None, Some(1));
    assert_eq!(ledger.dump().await.unwrap(), before);
    assert_eq!(ledger.pointer(&flow("etl"), &env("qa")).await.unwrap(), None);

    // Both fine: both land, in the order given; a later move may build on an earlier one.
    let moves = [mv("etl", "qa", None, B2), mv("report", "qa", Some(1), B2), mv("etl", "qa", Some(1), B3)];
    let released = ledger.apply(&moves).await.unwrap();
    let got: Vec<_> = released.iter().map(|r| (r.flow.as_str(), r.revision, r.build.as_str())).collect();
    assert_eq!(got, vec![("etl", 1, B2), ("report", 2, B2), ("etl", 2, B3)]);
    assert_eq!(ledger.pointer(&flow("etl"), &env("qa")).await.unwrap().unwrap().build, bid(B3));
    assert!(ledger.apply(&[]).await.unwrap().is_empty());
}

pub async fn unknown_build_changes_nothing(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    ledger.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    let before = ledger.dump().await.unwrap();
    let unknown = "cccc0000000000000009";
    let err = ledger.apply(&[mv("report", "qa", None, B2), mv("etl", "qa", Some(1), unknown)]).await.unwrap_err();
    match err {
        LedgerError::UnknownBuild { ref build } => assert_eq!(build.as_str(), unknown),
        other => panic!("expected UnknownBuild, got {other:?}"),
    }
    assert!(err.to_string().contains(unknown), "{err}");
    assert_eq!(ledger.dump().await.unwrap(), before);
}

pub async fn history_is_newest_first_and_gap_free(t: &Target) {
    let ledger = t.open().await;
    three_builds(&ledger).await;
    ledger.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    ledger.apply(&[mv("etl", "qa", Some(1), B2)]).await.unwrap();
    let mut promote = mv("etl", "qa", Some(2), B3);
    promote.kind = MoveKind::Promote { from: env("dev") };
    promote.reason = None;
    ledger.apply(&[promote]).await.unwrap();
    let mut rollback = mv("etl", "qa", Some(3), B1);
    rollback.kind = MoveKind::Rollback { to_revision: 1 };
    ledger.apply(&[rollback]).await.unwrap();
    ledger.apply(&[mv("etl", "prod", None, B3)]).await.unwrap();

    let history = ledger.history(&flow("etl"), &env("qa"), None).await.unwrap();
    assert_eq!(history.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![4, 3, 2, 1]);
    assert_eq!(ids_of(&history), vec![B1, B3, B2, B1]);
    let previous: Vec<Option<&str>> = history.iter().map(|r| r.previous_build.as_ref().map(|b| b.as_str())).collect();
    assert_eq!(previous, vec![Some(B3), Some(B2), Some(B1), None]);
    assert_eq!(history[0].kind, MoveKind::Rollback { to_revision: 1 });
    assert_eq!(history[1].kind, MoveKind::Promote { from: env("dev") });
    assert_eq!(history[1].reason, None);
    assert!(history.iter().all(|r| r.flow == flow("etl") && r.env == env("qa")));

    let recent = ledger.history(&flow("etl"), &env("qa"), Some(2)).await.unwrap();
    assert_eq!(recent, history[..2]);
    assert!(ledger.history(&flow("etl"), &env("dev"), None).await.unwrap().is_empty());

    // Many flows' histories at once: each as `history` gives it, flows without releases absent.
    ledger.apply(&[mv("report", "qa", None, B2)]).await.unwrap();
    let all = ledger.histories(&[flow("report"), flow("etl"), flow("nothing")], &env("qa")).await.unwrap();
    assert_eq!(all.keys().map(|f| f.as_str()).collect::<Vec<_>>(), vec!["etl", "report"]);
    assert_eq!(all[&flow("etl")], history);
    assert_eq!(all[&flow("report")], ledger.history(&flow("report"), &env("qa"), None).await.unwrap());
}

fn ids_of(history: &[flowgate_core::Release]) -> Vec<&str> {
    history.iter().map(|r| r.build.as_str()).collect()
}

/// Two writers race for the same expected revision: one wins, one conflicts,
/// and the pointer advances exactly once. Rounds alternate between writers on
/// separate connections pools and tasks sharing one.
pub async fn concurrent_applies_exactly_one_wins(t: &Target) {
    let first = t.open().await;
    let second = t.open().await;
    three_builds(&first).await;
    for round in 0..12 {
        let f = format!("flow{round}");
        let expected = if round % 3 == 0 {
            None
        } else {
            first.apply(&[mv(&f, "qa", None, B1)]).await.unwrap();
            Some(1)
        };
        let other = if round % 2 == 0 { second.clone() } else { first.clone() };
        let (a, b) = (mv(&f, "qa", expected, B2), mv(&f, "qa", expected, B3));
        let (x, y) = (first.clone(), other);
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { x.apply(&[a]).await }),
            tokio::spawn(async move { y.apply(&[b]).await })
        );
        let results = [ra.unwrap(), rb.unwrap()];
        let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(wins.len(), 1, "round {round}: {results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(loser.is_conflict(), "round {round}: {loser:?}");
        let next = expected.unwrap_or(0) + 1;
        let pointer = second.pointer(&flow(&f), &env("qa")).await.unwrap().unwrap();
        assert_eq!((pointer.revision, &pointer.build), (next, &wins[0][0].build), "round {round}");
        assert_eq!(first.history(&flow(&f), &env("qa"), None).await.unwrap().len() as i64, next);
    }
}

pub async fn reopen_keeps_data_and_migrations_are_idempotent(t: &Target) {
    let before = {
        let ledger = t.open().await;
        three_builds(&ledger).await;
        ledger.apply(&[mv("etl", "qa", None, B1), mv("etl", "prod", None, B2)]).await.unwrap();
        ledger.dump().await.unwrap()
    };
    assert!(before.contains(B1) && before.contains("prod"), "{before}");
    // Two opens at once each run the (already applied) migrations.
    let (a, b) = tokio::join!(t.open(), t.open());
    assert_eq!(a.dump().await.unwrap(), before);
    assert_eq!(b.dump().await.unwrap(), before);
    a.apply(&[mv("etl", "qa", Some(1), B3)]).await.unwrap();
    assert_eq!(b.pointer(&flow("etl"), &env("qa")).await.unwrap().unwrap().revision, 2);
}

pub async fn sync_state_records_per_env_and_never_goes_back(t: &Target) {
    let ledger = t.open().await;
    assert!(ledger.synced(&env("qa")).await.unwrap().is_empty());
    ledger.record_synced(&env("qa"), &[]).await.unwrap();
    assert!(ledger.synced(&env("qa")).await.unwrap().is_empty());
    ledger.record_synced(&env("qa"), &[(flow("etl"), 2), (flow("report"), 1)]).await.unwrap();
    ledger.record_synced(&env("prod"), &[(flow("etl"), 1)]).await.unwrap();
    assert_eq!(ledger.synced(&env("qa")).await.unwrap(), vec![(flow("etl"), 2), (flow("report"), 1)]);
    assert_eq!(ledger.synced(&env("prod")).await.unwrap(), vec![(flow("etl"), 1)]);
    // Advancing works; an older revision recorded late (a slower sync) is ignored.
    ledger.record_synced(&env("qa"), &[(flow("etl"), 3), (flow("report"), 0)]).await.unwrap();
    assert_eq!(ledger.synced(&env("qa")).await.unwrap(), vec![(flow("etl"), 3), (flow("report"), 1)]);
    let dump = ledger.dump().await.unwrap();
    assert!(dump.contains("sync_state (\"etl\", \"qa\", 3)"), "{dump}");
    // Reopening keeps it.
    let again = t.open().await;
    assert_eq!(again.synced(&env("prod")).await.unwrap(), vec![(flow("etl"), 1)]);
}
