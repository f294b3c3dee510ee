//! Events derived from moves, approvals, refusals, rollout steps and drift.

use super::*;
use crate::release::{Audit, MoveKind};
use crate::rollout::{Phase, Replaced, Source, Wave, WaveFlow};
use crate::test_fixtures::{at, id};

fn project() -> ProjectName {
    "analytics".parse().unwrap()
}
fn env(s: &str) -> EnvName {
    s.parse().unwrap()
}
fn flow(s: &str) -> FlowKey {
    s.parse().unwrap()
}
fn release(f: &str, e: &str, revision: Revision, kind: MoveKind, rollout: Option<&str>) -> Release {
    Release {
        flow: flow(f),
        env: env(e),
        revision,
        build: id(revision as u64),
        previous_build: (revision > 1).then(|| id(revision as u64 - 1)),
        kind,
        actor: "ana".into(),
        reason: Some("ship it".into()),
        created_at: at(1),
        audit: Audit { rollout: rollout.map(String::from), ..Audit::default() },
    }
}

#[test]
fn moves_make_one_event_per_env_kind_and_rollout_with_stable_ids() {
    let releases = [
        release("etl", "prod", 2, MoveKind::Release, None),
        release("report", "prod", 3, MoveKind::Release, None),
        release("etl", "qa", 4, MoveKind::Promote { from: env("dev") }, None),
        release("load", "prod", 5, MoveKind::Release, Some("prod-1")),
    ];
    let events = for_releases(&project(), &releases);
    let shape: Vec<(EventKind, &str, usize, Option<&str>)> =
        events.iter().map(|e| (e.kind, e.env.as_str(), e.flows.len(), e.rollout.as_deref())).collect();
    assert_eq!(
        shape,
        [
            (EventKind::Release, "prod", 2, None),
            (EventKind::Promote, "qa", 1, None),
            (EventKind::Release, "prod", 1, Some("prod-1")),
        ]
    );
    assert_eq!(events[0].flows[1].previous_build, Some(id(2)));
    assert_eq!(for_releases(&project(), &releases), events, "the same moves give the same ids");
    let other: ProjectName = "finance".parse().unwrap();
    assert_ne!(for_releases(&other, &releases)[0].id, events[0].id, "projects never share an id");
    let later = [release("etl", "prod", 6, MoveKind::Rollback { to_revision: 2 }, None)];
    assert_ne!(for_releases(&project(), &later)[0].id, events[0].id);
    assert_eq!(for_releases(&project(), &later)[0].kind, EventKind::Rollback);
}

#[test]
fn a_refusal_by_the_approval_gate_also_requests_an_approval() {
    let gate = |gate: Gate, status: GateStatus| GateResult { gate, status, detail: format!("{gate} said so") };
    let held = [gate(Gate::Branches, GateStatus::Pass), gate(Gate::Approval, GateStatus::Refuse)];
    let soaking = [gate(Gate::Soak, GateStatus::Wait { until: None })];
    let (etl, report) = (flow("etl"), flow("report"));
    let build = id(7).to_string();
    let refused = [
        Refused { flow: &etl, build: &build, gates: &held },
        Refused { flow: &report, build: &build, gates: &soaking },
    ];
    let events = gate_refused(&project(), &env("prod"), "ana", at(2), &refused);
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::GateRefused, EventKind::ApprovalRequested]
    );
    assert_eq!(events[0].flows[0].notes, ["approval: approval said so"], "only the failing gates");
    assert_eq!(events[1].flows.iter().map(|f| f.flow.as_str()).collect::<Vec<_>>(), ["etl"]);
    assert_ne!(events[0].id, events[1].id);
    let only_soak = gate_refused(&project(), &env("prod"), "ana", at(2), &refused[1..]);
    assert_eq!(only_soak.len(), 1, "no approval is requested when the approval gate passed");
}

#[test]
fn a_rollout_step_notifies_the_wave_that_passed_or_failed_and_its_rollback() {
    let wave = |outcome: Option<WaveOutcome>| Wave {
        flows: vec![WaveFlow {
            flow: flow("etl"),
            build: id(3),
            gates: Vec::new(),
            replaced: Some(Replaced { revision: 1, build: id(2) }),
            released_revision: Some(2),
            runs: Vec::new(),
        }],
        released_at: None,
        verify_started_at: None,
        outcome,
    };
    let body = |outcomes: [Option<WaveOutcome>; 2], failure: Option<&str>| RolloutBody {
        source: Source::Env(env("qa")),
        reason: Some("weekly".into()),
        override_reason: None,
        verify: None,
        waves: outcomes.into_iter().map(wave).collect(),
        wave: 0,
        phase: Phase::Verify,
        failure: failure.map(String::from),
        started_by: None,
    };
    let step = |before: &RolloutBody, after: &RolloutBody| {
        for_rollout_step(&project(), &env("prod"), "prod-1", "ana", at(3), before, after)
    };
    let start = body([None, None], None);
    let passed = body([Some(WaveOutcome::Passed), None], None);
    let events = step(&start, &passed);
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::WavePassed]);
    assert_eq!(events[0].detail.as_deref(), Some("wave 1 of 2 passed its verification"));
    assert!(step(&passed, &passed).is_empty(), "a transition that settles nothing new says nothing");
    let rolled = body([Some(WaveOutcome::Passed), Some(WaveOutcome::RolledBack)], Some("run x FAILED"));
    let events = step(&passed, &rolled);
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::WaveFailed, EventKind::AutomaticRollback]
    );
    assert_eq!(events[0].detail.as_deref(), Some("run x FAILED"));
    assert_eq!(events[1].flows[0].previous_build, Some(id(2)));
    assert_eq!(step(&passed, &rolled), events, "ids are stable");
}

#[test]
fn the_same_drift_has_the_same_id_and_a_new_drift_another() {
    let drift = |fields: &[&str]| {
        drift_found(
            &project(),
            &env("prod"),
            at(4),
            &[(flow("etl"), Some(id(1)), 3, fields.iter().map(|f| f.to_string()).collect())],
        )
    };
    assert_eq!(drift(&["schedule"]).id, drift(&["schedule"]).id);
    assert_ne!(drift(&["schedule"]).id, drift(&["schedule", "tags"]).id);
}

#[test]
fn kinds_round_trip_through_their_names() {
    for kind in EventKind::ALL {
        assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::Value::from(kind.as_str()));
    }
    assert!("deploy".parse::<EventKind>().unwrap_err().contains("unknown event `deploy`"));
}
