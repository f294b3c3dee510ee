//! The story of issue 12, item 2's "done when": a ledger made by the previous
//! release (migrations 0001-0005, every table filled through raw SQL in that
//! schema) opened by this one. Every row becomes the project of the first
//! opener, reads back exactly through the `Ledger` API, and the project goes on
//! releasing; a second project sees none of it.

use chrono::{DateTime, Utc};
use flowgate_core::{Approval, Audit, Build, BuildSettings, Gate, GateResult, GateStatus, MoveKind, Release};
use flowgate_ledger::{Pin, ProjectClaim, RolloutRecord, RolloutStatus};
use serde_json::json;

use super::{bid, build, env, flow, mv, Target, B1, B2, B3};

/// The last migration of the previous release.
const PREVIOUS_RELEASE: i64 = 5;

const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
const C2: &str = "d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2";
const C3: &str = "e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3";
const ALIAS: &str = "f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4";

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// A SQL string literal.
fn text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn text_or_null(s: Option<&str>) -> String {
    s.map_or_else(|| "NULL".to_string(), text)
}

/// The previous release's `builds` row of `b`, and its commit alias rows.
fn insert_build(b: &Build, commits: &[&str]) -> String {
    let images = serde_json::to_string(&b.images).unwrap();
    let settings = b.settings.as_ref().map(|s| serde_json::to_string(s).unwrap());
    let mut sql = format!(
        "INSERT INTO builds (id, bundle, bundle_size, file_count, images, commit_sha, branch, dirty, author, \
         created_at_ms, settings) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});\n",
        text(b.id.as_str()),
        text(&b.bundle.to_hex()),
        b.bundle_size,
        b.file_count,
        text(&images),
        text(&b.commit),
        text_or_null(b.branch.as_deref()),
        if b.dirty { "TRUE" } else { "FALSE" },
        text(&b.author),
        b.created_at.timestamp_millis(),
        text_or_null(settings.as_deref()),
    );
    for commit in commits {
        sql += &format!(
            "INSERT INTO build_commits (build_id, commit_sha) VALUES ({}, {});\n",
            text(b.id.as_str()),
            text(commit)
        );
    }
    sql
}

/// The previous release's `releases` row of `r`.
fn insert_release(r: &Release) -> String {
    let (kind, detail) = match &r.kind {
        MoveKind::Release => ("release", None),
        MoveKind::Promote { from } => ("promote", Some(from.to_string())),
        MoveKind::Rollback { to_revision } => ("rollback", Some(to_revision.to_string())),
    };
    let gates = (!r.audit.gates.is_empty()).then(|| serde_json::to_string(&r.audit.gates).unwrap());
    format!(
        "INSERT INTO releases (flow, env, revision, build_id, previous_build_id, kind, kind_detail, actor, reason, \
         created_at_ms, gates, override_reason, rollout_id) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});\n",
        text(r.flow.as_str()),
        text(r.env.as_str()),
        r.revision,
        text(r.build.as_str()),
        text_or_null(r.previous_build.as_ref().map(|b| b.as_str())),
        text(kind),
        text_or_null(detail.as_deref()),
        text(&r.actor),
        text_or_null(r.reason.as_deref()),
        r.created_at.timestamp_millis(),
        text_or_null(gates.as_deref()),
        text_or_null(r.audit.override_reason.as_deref()),
        text_or_null(r.audit.rollout.as_deref()),
    )
}

fn insert_rollout(r: &RolloutRecord) -> String {
    format!(
        "INSERT INTO rollouts (id, env, status, version, actor, body, created_at_ms, updated_at_ms) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {});\n",
        text(&r.id),
        text(r.env.as_str()),
        text(r.status.as_str()),
        r.version,
        text(&r.actor),
        text(&serde_json::to_string(&r.body).unwrap()),
        r.created_at.timestamp_millis(),
        r.updated_at.timestamp_millis(),
    )
}

fn release(f: &str, e: &str, revision: i64, b: &str, previous: Option<&str>, ms: i64) -> Release {
    Release {
        flow: flow(f),
        env: env(e),
        revision,
        build: bid(b),
        previous_build: previous.map(bid),
        kind: MoveKind::Release,
        actor: "alice".into(),
        reason: Some(format!("ship {b}")),
        created_at: at(ms),
        audit: Audit::default(),
    }
}

fn settings() -> BuildSettings {
    let deployment = serde_json::from_value(json!({
        "flow_name": "etl", "deployment_name": "etl-nightly", "entrypoint": "flows/etl.py:etl",
        "parameter_schema": {"type": "object"}, "work_pool": "pool", "parameters": {"note": "it's"},
        "schedules": [{"cron": "0 3 * * *", "timezone": "UTC"}], "tags": ["nightly"], "paused": false
    }))
    .unwrap();
    let mut settings = BuildSettings::default();
    settings.insert("prod", flow("etl"), deployment);
    settings
}

/// What the previous release's ledger holds, as the `Ledger` API reads it.
struct Expected {
    builds: Vec<Build>,
    etl_qa: Vec<Release>,
    etl_prod: Vec<Release>,
    report_qa: Vec<Release>,
    approvals: Vec<Approval>,
    finished: RolloutRecord,
    running: RolloutRecord,
    pin: Pin,
}

fn expected() -> Expected {
    let b1 = build(B1, C1, 1_000);
    let b2 = Build { settings: Some(settings()), ..build(B2, C2, 2_000) };
    let b3 = Build { branch: None, dirty: true, author: "bob <bob@example.com>".into(), ..build(B3, C3, 3_000) };
    let gates = vec![
        GateResult {
            gate: Gate::Soak,
            status: GateStatus::Wait { until: Some(at(9_999)) },
            detail: "2h in `qa`".into(),
        },
        GateResult { gate: Gate::Approval, status: GateStatus::Pass, detail: "approved by carol".into() },
    ];
    let promoted = Release {
        kind: MoveKind::Promote { from: env("dev") },
        reason: None,
        audit: Audit { gates, override_reason: Some("hotfix".into()), rollout: Some("qa-1".into()), verified: None },
        ..release("etl", "qa", 2, B2, Some(B1), 4_500)
    };
    let rolled_back = Release {
        kind: MoveKind::Rollback { to_revision: 1 },
        audit: Audit { override_reason: Some(String::new()), ..Audit::default() },
        ..release("report", "qa", 2, B3, Some(B1), 5_000)
    };
    let approval = |f: Option<&str>, actor: &str, ms| Approval {
        env: env("prod"),
        build: bid(B2),
        flow: f.map(flow),
        actor: actor.into(),
        reason: format!("{actor}'s ok"),
        created_at: at(ms),
        verified: None,
    };
    let rollout = |id: &str, e: &str, status, version, b: &str, created, updated| RolloutRecord {
        id: id.into(),
        env: env(e),
        status,
        version,
        actor: "alice".into(),
        body: json!({ "source": { "build": b }, "waves": [["etl"], ["*"]], "wave": 1 }),
        created_at: at(created),
        updated_at: at(updated),
    };
    Expected {
        builds: vec![b3, b2, b1],
        etl_qa: vec![promoted, release("etl", "qa", 1, B1, None, 4_000)],
        etl_prod: vec![release("etl", "prod", 1, B1, None, 4_200)],
        report_qa: vec![rolled_back, release("report", "qa", 1, B1, None, 4_100)],
        approvals: vec![approval(None, "carol", 6_000), approval(Some("etl"), "dave", 6_100)],
        finished: rollout("qa-1", "qa", RolloutStatus::Succeeded, 3, B2, 4_400, 4_600),
        running: rollout("prod-1", "prod", RolloutStatus::Running, 1, B2, 7_000, 7_000),
        pin: Pin {
            build: bid(B3),
            actor: "bob".into(),
            reason: "audit of INC-7".into(),
            created_at: at(8_000),
            verified: None,
        },
    }
}

/// Every table of the 0005 schema, filled the way the previous release did.
fn previous_release_rows(x: &Expected) -> String {
    let [b3, b2, b1] = &x.builds[..] else { unreachable!() };
    let mut sql = insert_build(b1, &[C1, ALIAS]) + &insert_build(b2, &[C2]) + &insert_build(b3, &[C3]);
    for r in x.etl_qa.iter().chain(&x.etl_prod).chain(&x.report_qa) {
        sql += &insert_release(r);
    }
    sql += "INSERT INTO pointers (flow, env, revision, build_id, updated_at_ms) VALUES
        ('etl', 'qa', 2, 'aaaa0000000000000002', 4500),
        ('etl', 'prod', 1, 'aaaa0000000000000001', 4200),
        ('report', 'qa', 2, 'bbbb0000000000000003', 5000);
    INSERT INTO sync_state (flow, env, revision, synced_at_ms) VALUES
        ('etl', 'qa', 2, 4700), ('etl', 'prod', 1, 4300), ('report', 'qa', 1, 4150);\n";
    for a in &x.approvals {
        sql += &format!(
            "INSERT INTO approvals (env, build_id, flow, actor, reason, created_at_ms) VALUES ({}, {}, {}, {}, {}, {});\n",
            text(a.env.as_str()),
            text(a.build.as_str()),
            text(a.flow.as_ref().map_or("", |f| f.as_str())),
            text(&a.actor),
            text(&a.reason),
            a.created_at.timestamp_millis(),
        );
    }
    sql += &insert_rollout(&x.finished);
    sql += &insert_rollout(&x.running);
    let p = &x.pin;
    sql += &format!(
        "INSERT INTO pins (build_id, actor, reason, created_at_ms) VALUES ({}, {}, {}, {});\n",
        text(p.build.as_str()),
        text(&p.actor),
        text(&p.reason),
        p.created_at.timestamp_millis()
    );
    sql
}

pub async fn migrating_a_single_project_ledger_gives_every_row_to_its_project(t: &Target) {
    let x = expected();
    let old = flowgate_ledger::testing::migrated_until(&t.url, &t.base_dir, PREVIOUS_RELEASE).await.unwrap();
    old.execute(&previous_release_rows(&x)).await.unwrap();
    old.close().await;

    let claim = ProjectClaim {
        root_commit: Some(C1.into()),
        remote: Some("git@github.com:acme/flows.git".into()),
        ..ProjectClaim::named("alpha")
    };
    let alpha = t.open_as(&claim).await;
    let dump = alpha.dump().await.unwrap();
    assert!(dump.lines().skip(1).all(|line| line.starts_with("[alpha] ")), "every row is alpha's:\n{dump}");
    assert_eq!(dump.lines().filter(|l| l.starts_with("[alpha] build_commits")).count(), 4, "{dump}");

    // Every row reads back exactly.
    assert_eq!(alpha.builds(10).await.unwrap(), x.builds);
    assert_eq!(alpha.build(&bid(B2)).await.unwrap().unwrap().settings, Some(settings()));
    assert_eq!(alpha.find_builds("f4f4").await.unwrap(), [x.builds[2].clone()], "a commit alias");
    assert_eq!(alpha.history(&flow("etl"), &env("qa"), None).await.unwrap(), x.etl_qa);
    assert_eq!(alpha.history(&flow("etl"), &env("prod"), None).await.unwrap(), x.etl_prod);
    assert_eq!(alpha.history(&flow("report"), &env("qa"), None).await.unwrap(), x.report_qa);
    let pointers: Vec<_> = alpha
        .pointers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.env.to_string(), p.flow.to_string(), p.revision, p.build.to_string(), p.updated_at))
        .collect();
    let pointer = |e: &str, f: &str, r, b: &str, ms| (e.to_string(), f.to_string(), r, b.to_string(), at(ms));
    assert_eq!(
        pointers,
        [
            pointer("prod", "etl", 1, B1, 4_200),
            pointer("qa", "etl", 2, B2, 4_500),
            pointer("qa", "report", 2, B3, 5_000)
        ]
    );
    assert_eq!(alpha.synced(&env("qa")).await.unwrap(), [(flow("etl"), 2), (flow("report"), 1)]);
    assert_eq!(alpha.synced(&env("prod")).await.unwrap(), [(flow("etl"), 1)]);
    assert_eq!(alpha.approvals(&env("prod"), &bid(B2)).await.unwrap(), x.approvals);
    assert_eq!(alpha.rollout("qa-1").await.unwrap(), Some(x.finished.clone()));
    assert_eq!(alpha.active_rollout(&env("prod")).await.unwrap(), Some(x.running.clone()));
    assert_eq!(alpha.rollouts(None, 10).await.unwrap(), [x.running.clone(), x.finished.clone()]);
    assert_eq!(alpha.pins().await.unwrap(), std::slice::from_ref(&x.pin));
    let inventory = alpha.inventory().await.unwrap();
    assert_eq!((inventory.builds.len(), inventory.releases.len(), inventory.synced.len()), (3, 5, 3));
    assert_eq!(inventory.check(), vec![]);
    let projects = alpha.projects().await.unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(
        (projects[0].name.as_str(), &projects[0].root_commit, &projects[0].remote),
        ("alpha", &claim.root_commit, &claim.remote)
    );

    // Another project opened later sees nothing of it, and gets nothing of it.
    let beta = t.open_as(&ProjectClaim::named("beta")).await;
    assert!(beta.builds(10).await.unwrap().is_empty());
    assert!(beta.find_builds("aaaa").await.unwrap().is_empty());
    assert!(beta.pointers(None).await.unwrap().is_empty());
    assert!(beta.history(&flow("etl"), &env("qa"), None).await.unwrap().is_empty());
    assert!(beta.synced(&env("qa")).await.unwrap().is_empty());
    assert!(beta.approvals(&env("prod"), &bid(B2)).await.unwrap().is_empty());
    assert!(beta.rollouts(None, 10).await.unwrap().is_empty());
    assert!(beta.pins().await.unwrap().is_empty());
    assert_eq!(beta.inventory().await.unwrap(), Default::default());
    let reopened = t.open_as(&claim).await;
    assert_eq!(
        reopened.dump().await.unwrap().lines().filter(|l| l.starts_with("[alpha] ")).count(),
        dump.lines().count() - 1
    );

    // alpha goes on: revisions continue, its running rollout still holds prod;
    // beta's own prod is free.
    let next = alpha.apply(&[mv("etl", "qa", Some(2), B3)]).await.unwrap();
    assert_eq!((next[0].revision, next[0].previous_build.as_ref()), (3, Some(&bid(B2))));
    assert_eq!(alpha.history(&flow("etl"), &env("qa"), None).await.unwrap().len(), 3);
    let mut second = x.running.clone();
    second.id = "prod-2".into();
    let err = alpha.start_rollout(&second).await.unwrap_err();
    assert!(matches!(err, flowgate_ledger::LedgerError::RolloutActive { ref id, .. } if id == "prod-1"), "{err:?}");
    beta.record_build(build(B2, C2, 9_000)).await.unwrap();
    beta.start_rollout(&second).await.unwrap();
    assert_eq!(alpha.active_rollout(&env("prod")).await.unwrap(), Some(x.running));
}
