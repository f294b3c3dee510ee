//! Stories for projects: one database serves many, each handle sees and
//! writes only its own project's rows (even under the same build ids, rollout
//! ids and envs), and a name claimed from another repository is refused
//! without a write.

use chrono::{DateTime, Utc};
use flowgate_core::{Approval, Build};
use flowgate_ledger::{LedgerError, Pin, ProjectClaim, RolloutRecord, RolloutStatus};
use serde_json::json;

use super::{assert_conflict, bid, build, env, flow, mv, Target, B1, B2};

const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
const C2: &str = "d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2";
const ROOT_A: &str = "1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b";
const ROOT_B: &str = "9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e";

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn claim(name: &str, root: Option<&str>, remote: Option<&str>) -> ProjectClaim {
    ProjectClaim { root_commit: root.map(Into::into), remote: remote.map(Into::into), ..ProjectClaim::named(name) }
}

fn rollout(id: &str, e: &str, actor: &str, build: &str) -> RolloutRecord {
    RolloutRecord {
        id: id.into(),
        env: env(e),
        status: RolloutStatus::Running,
        version: 1,
        actor: actor.into(),
        body: json!({ "source": { "build": build }, "waves": [], "wave": 0 }),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn ids(builds: &[Build]) -> Vec<&str> {
    builds.iter().map(|b| b.id.as_str()).collect()
}

pub async fn projects_in_one_database_never_see_each_other(t: &Target) {
    let alpha = t.open_as(&ProjectClaim::named("alpha")).await;
    let beta = t.open_as(&ProjectClaim::named("beta")).await;
    assert_eq!((alpha.project().as_str(), beta.project().as_str()), ("alpha", "beta"));

    // Builds: one id recorded by both is two records, each its project's.
    let alpha_b1 = build(B1, C1, 1_000);
    let beta_b1 = Build { author: "bob".into(), ..build(B1, C2, 2_000) };
    assert!(alpha.record_build(alpha_b1.clone()).await.unwrap().created);
    assert!(beta.record_build(beta_b1.clone()).await.unwrap().created, "an id of another project is new here");
    assert!(alpha.record_build(build(B2, C2, 3_000)).await.unwrap().created);
    assert_eq!(alpha.build(&bid(B1)).await.unwrap(), Some(alpha_b1.clone()));
    assert_eq!(beta.build(&bid(B1)).await.unwrap(), Some(beta_b1.clone()));
    assert_eq!(beta.build(&bid(B2)).await.unwrap(), None);
    assert_eq!(ids(&alpha.builds(10).await.unwrap()), [B2, B1]);
    assert_eq!(beta.builds(10).await.unwrap(), std::slice::from_ref(&beta_b1));
    assert_eq!(ids(&alpha.find_builds("aaaa").await.unwrap()), [B2, B1]);
    assert_eq!(ids(&beta.find_builds("aaaa").await.unwrap()), [B1]);
    assert!(beta.find_builds("c1c1").await.unwrap().is_empty(), "alpha's commit");
    assert_eq!(ids(&alpha.find_builds("d2d2").await.unwrap()), [B2], "not beta's commit of B1");

    // Pointers and history: both start at revision 1 of the same (flow, env).
    alpha.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    let beta_first = beta.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    assert_eq!(beta_first[0].revision, 1, "alpha's pointer is not beta's");
    alpha.apply(&[mv("etl", "qa", Some(1), B2)]).await.unwrap();
    let err = beta.apply(&[mv("etl", "qa", Some(1), B2)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::UnknownBuild { ref build } if build.as_str() == B2), "{err:?}");
    assert_conflict(beta.apply(&[mv("etl", "qa", Some(2), B1)]).await.unwrap_err(), "etl", "qa", Some(2), Some(1));
    assert_conflict(alpha.apply(&[mv("etl", "qa", Some(1), B1)]).await.unwrap_err(), "etl", "qa", Some(1), Some(2));
    let pointer = |p: Option<flowgate_core::Pointer>| p.map(|p| (p.revision, p.build.to_string()));
    assert_eq!(pointer(alpha.pointer(&flow("etl"), &env("qa")).await.unwrap()), Some((2, B2.into())));
    assert_eq!(pointer(beta.pointer(&flow("etl"), &env("qa")).await.unwrap()), Some((1, B1.into())));
    assert_eq!(alpha.pointers(None).await.unwrap().len(), 1);
    assert_eq!(beta.pointers(Some(&env("qa"))).await.unwrap().len(), 1);
    assert_eq!(alpha.history(&flow("etl"), &env("qa"), None).await.unwrap().len(), 2);
    assert_eq!(beta.history(&flow("etl"), &env("qa"), None).await.unwrap(), beta_first);

    // Sync state.
    alpha.record_synced(&env("qa"), &[(flow("etl"), 2)]).await.unwrap();
    assert!(beta.synced(&env("qa")).await.unwrap().is_empty());
    beta.record_synced(&env("qa"), &[(flow("etl"), 1)]).await.unwrap();
    assert_eq!(alpha.synced(&env("qa")).await.unwrap(), [(flow("etl"), 2)]);
    assert_eq!(beta.synced(&env("qa")).await.unwrap(), [(flow("etl"), 1)]);

    // Approvals: the same key in both, each its own record.
    let approval = |reason: &str| Approval {
        env: env("prod"),
        build: bid(B1),
        flow: None,
        actor: "carol".into(),
        reason: reason.into(),
        created_at: at(5_000),
        verified: None,
    };
    assert!(alpha.record_approval(&approval("alpha's")).await.unwrap());
    assert!(beta.record_approval(&approval("beta's")).await.unwrap());
    assert_eq!(alpha.approvals(&env("prod"), &bid(B1)).await.unwrap(), [approval("alpha's")]);
    assert_eq!(beta.approvals(&env("prod"), &bid(B1)).await.unwrap(), [approval("beta's")]);
    let err = beta.record_approval(&Approval { build: bid(B2), ..approval("x") }).await.unwrap_err();
    assert!(matches!(err, LedgerError::UnknownBuild { .. }), "{err:?}");

    // Rollouts: the same id in the same env runs in both at once.
    let alpha_run = alpha.start_rollout(&rollout("prod-1", "prod", "alice", B2)).await.unwrap();
    let beta_run = beta.start_rollout(&rollout("prod-1", "prod", "bob", B1)).await.unwrap();
    assert_eq!(alpha.active_rollout(&env("prod")).await.unwrap().unwrap().actor, "alice");
    assert_eq!(beta.active_rollout(&env("prod")).await.unwrap().unwrap().actor, "bob");
    let mut done = alpha_run.clone();
    (done.status, done.version) = (RolloutStatus::Succeeded, 2);
    alpha.transition_rollout(&done, &[], &[]).await.unwrap();
    assert_eq!(alpha.rollout("prod-1").await.unwrap().unwrap().status, RolloutStatus::Succeeded);
    assert_eq!(beta.rollout("prod-1").await.unwrap(), Some(beta_run.clone()));
    assert_eq!(beta.rollouts(None, 10).await.unwrap(), [beta_run]);
    assert_eq!(alpha.rollouts(Some(&env("prod")), 10).await.unwrap().len(), 1);
    assert!(alpha.active_rollout(&env("prod")).await.unwrap().is_none());
    let err = beta.start_rollout(&rollout("prod-2", "prod", "bob", B1)).await.unwrap_err();
    assert!(matches!(err, LedgerError::RolloutActive { ref id, .. } if id == "prod-1"), "{err:?}");

    // Pins.
    let pin = |b: &str, actor: &str| Pin {
        build: bid(b),
        actor: actor.into(),
        reason: "keep".into(),
        created_at: at(6_000),
        verified: None,
    };
    assert!(alpha.pin(&pin(B1, "alice")).await.unwrap());
    assert!(matches!(beta.pin(&pin(B2, "bob")).await.unwrap_err(), LedgerError::UnknownBuild { .. }));
    assert!(!beta.unpin(&bid(B1)).await.unwrap(), "alice's pin is not beta's");
    assert_eq!(alpha.pins().await.unwrap(), [pin(B1, "alice")]);
    assert!(beta.pins().await.unwrap().is_empty());

    // gc's inventory and build deletion.
    let (a_inv, b_inv) = (alpha.inventory().await.unwrap(), beta.inventory().await.unwrap());
    assert_eq!(ids(&a_inv.builds), [B1, B2]);
    assert_eq!(b_inv.builds, std::slice::from_ref(&beta_b1));
    assert_eq!(a_inv.pins.len() + b_inv.pins.len(), 1);
    assert_eq!(a_inv.releases.len(), 2);
    assert_eq!(b_inv.releases.len(), 1);
    assert!(a_inv.rollout_builds.is_empty(), "alpha's rollout finished");
    assert_eq!(b_inv.rollout_builds, [(bid(B1), "prod-1".to_string())]);
    assert!(beta.delete_builds(&[bid(B2)]).await.unwrap().is_empty(), "alpha's build is not beta's to delete");
    assert!(alpha.build(&bid(B2)).await.unwrap().is_some());
    alpha.unpin(&bid(B1)).await.unwrap();
    assert_eq!(alpha.delete_builds(&[bid(B1)]).await.unwrap(), [alpha_b1]);
    assert_eq!(beta.build(&bid(B1)).await.unwrap(), Some(beta_b1), "beta's B1 stays");
    let err = beta.delete_builds(&[bid(B1)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::BuildInUse { ref by, .. } if by.contains("pointer")), "{err:?}");

    // Both projects are listed, from either handle; the dump shows both.
    let names = |records: Vec<flowgate_ledger::ProjectRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.name.to_string()).collect()
    };
    assert_eq!(names(alpha.projects().await.unwrap()), ["alpha", "beta"]);
    assert_eq!(names(beta.projects().await.unwrap()), ["alpha", "beta"]);
    let dump = alpha.dump().await.unwrap();
    assert!(dump.contains("[alpha] builds") && dump.contains("[beta] builds"), "{dump}");
    assert_eq!(beta.dump().await.unwrap(), dump);
}

pub async fn a_name_from_another_repository_is_refused_and_changes_nothing(t: &Target) {
    let remote_a = "git@x:a.git";
    let ours = claim("alpha", Some(ROOT_A), Some(remote_a));
    let alpha = t.open_as(&ours).await;
    alpha.record_build(build(B1, C1, 1_000)).await.unwrap();
    alpha.apply(&[mv("etl", "qa", None, B1)]).await.unwrap();
    let before = alpha.dump().await.unwrap();

    // Another root commit: refused, naming both repositories, nothing written.
    let theirs = claim("alpha", Some(ROOT_B), Some("git@y:b.git"));
    let err = t.try_open(&theirs).await.unwrap_err();
    match &err {
        LedgerError::ProjectCollision { name, recorded_root, recorded_remote, claimed_root, claimed_remote } => {
            assert_eq!(name, "alpha");
            assert_eq!((recorded_root.as_deref(), recorded_remote.as_deref()), (Some(ROOT_A), Some(remote_a)));
            assert_eq!((claimed_root.as_deref(), claimed_remote.as_deref()), (Some(ROOT_B), Some("git@y:b.git")));
        }
        other => panic!("expected ProjectCollision, got {other:?}"),
    }
    let shown = err.to_string();
    for part in ["`alpha`", ROOT_A, remote_a, ROOT_B, "git@y:b.git", "[project] name"] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
    assert!(!err.is_conflict());
    assert_eq!(alpha.dump().await.unwrap(), before, "a refused claim writes nothing");

    // Without a root commit on one side, remotes decide.
    let err = t.try_open(&claim("alpha", None, Some("git@y:b.git"))).await.unwrap_err();
    assert!(matches!(err, LedgerError::ProjectCollision { .. }), "{err:?}");
    assert_eq!(alpha.dump().await.unwrap(), before);
    // The same root from another remote (a moved repository) is the same project.
    let moved = t.open_as(&claim("alpha", Some(ROOT_A), Some("git@z:moved.git"))).await;
    assert_eq!(moved.pointers(None).await.unwrap().len(), 1);
    // A claim without a repository (`status --all-projects`) opens any project.
    let anyone = t.open_as(&ProjectClaim::named("alpha")).await;
    assert_eq!(anyone.build(&bid(B1)).await.unwrap(), Some(build(B1, C1, 1_000)));
    assert_eq!(alpha.dump().await.unwrap(), before, "opening the known project wrote nothing");

    // What a record does not know is filled in from the first claim that does,
    // and from then on decides.
    t.open_as(&ProjectClaim::named("beta")).await;
    let record = |records: Vec<flowgate_ledger::ProjectRecord>, name: &str| {
        let r = records.into_iter().find(|r| r.name.as_str() == name).unwrap();
        (r.root_commit, r.remote)
    };
    assert_eq!(record(alpha.projects().await.unwrap(), "beta"), (None, None));
    t.open_as(&claim("beta", None, Some("git@y:b.git"))).await;
    assert_eq!(record(alpha.projects().await.unwrap(), "beta"), (None, Some("git@y:b.git".into())));
    t.open_as(&claim("beta", Some(ROOT_B), Some("git@y:b.git"))).await;
    let filled = (Some(ROOT_B.to_string()), Some("git@y:b.git".to_string()));
    assert_eq!(record(alpha.projects().await.unwrap(), "beta"), filled);
    let before = alpha.dump().await.unwrap();
    let err = t.try_open(&claim("beta", Some(ROOT_A), None)).await.unwrap_err();
    assert!(matches!(err, LedgerError::ProjectCollision { ref name, .. } if name == "beta"), "{err:?}");
    assert_eq!(alpha.dump().await.unwrap(), before);
    let projects = alpha.projects().await.unwrap();
    assert_eq!(projects.len(), 2);
    assert_eq!(record(projects.clone(), "alpha"), (Some(ROOT_A.into()), Some(remote_a.into())));
    assert!(projects.iter().all(|p| p.created_at <= Utc::now()), "{projects:?}");
}

/// Two projects opening a new database at once: both are recorded, and
/// neither takes the other's rows.
pub async fn first_opens_of_two_projects_at_once_both_register(t: &Target) {
    let (alpha, beta) = (ProjectClaim::named("alpha"), ProjectClaim::named("beta"));
    let (a, b) = tokio::join!(t.open_as(&alpha), t.open_as(&beta));
    a.record_build(build(B1, C1, 1_000)).await.unwrap();
    assert!(b.builds(10).await.unwrap().is_empty());
    let names: Vec<String> = a.projects().await.unwrap().into_iter().map(|p| p.name.to_string()).collect();
    assert_eq!(names, ["alpha", "beta"]);
}
