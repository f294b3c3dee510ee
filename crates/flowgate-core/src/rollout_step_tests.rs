//! The rollout state machine, step by step, without Prefect or a database.

use chrono::Duration;
use serde_json::Map;

use super::*;
use crate::rollout::{VerifyPlan, Wave, WaveFlow};

fn flow(s: &str) -> FlowKey {
    s.parse().unwrap()
}
fn build(n: u8) -> BuildId {
    format!("{n:020x}").parse().unwrap()
}
fn env() -> EnvName {
    "prod".parse().unwrap()
}
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}
fn cx(env: &EnvName, now: DateTime<Utc>) -> StepContext<'_> {
    StepContext { rollout: "prod-1", env, actor: "ci", has_server: true, now }
}
fn pointer(f: &str, revision: i64, b: u8) -> (FlowKey, Pointer) {
    (flow(f), Pointer { flow: flow(f), env: env(), revision, build: build(b), updated_at: t0() })
}
fn run(id: &str, state: &str) -> VerifyRun {
    VerifyRun { key: format!("key-{id}"), flow_run_id: id.into(), name: format!("run-{id}"), state: state.into() }
}

/// Two waves (`f0`, then `f1`), both to build 2, promoted from qa.
fn body(verify: Option<VerifyPlan>) -> RolloutBody {
    let wave = |f: &str| Wave {
        flows: vec![WaveFlow {
            flow: flow(f),
            build: build(2),
            gates: Vec::new(),
            replaced: None,
            released_revision: None,
            runs: Vec::new(),
        }],
        released_at: None,
        verify_started_at: None,
        outcome: None,
    };
    RolloutBody {
        source: Source::Env("qa".parse().unwrap()),
        reason: Some("weekly".into()),
        override_reason: None,
        verify,
        waves: vec![wave("f0"), wave("f1")],
        wave: 0,
        phase: Phase::Release,
        failure: None,
        started_by: None,
    }
}

fn one_run(timeout_secs: Option<u64>) -> Option<VerifyPlan> {
    Some(VerifyPlan { runs: 1, timeout_secs, parameters: Map::new(), trigger: true })
}

fn transition(next: Next) -> (RolloutBody, StepStatus, Vec<Move>, bool) {
    match next {
        Next::Transition { body, status, moves, finished, .. } => (body, status, moves, finished),
        other => panic!("expected a transition, got {other:?}"),
    }
}

/// A body whose first wave released `f0` (r1 on build 1 → r2 on build 2) and is verifying.
fn verifying(verify: Option<VerifyPlan>) -> RolloutBody {
    let mut b = body(verify);
    b.phase = Phase::Verify;
    let f0 = &mut b.waves[0].flows[0];
    f0.replaced = Some(Replaced { revision: 1, build: build(1) });
    f0.released_revision = Some(2);
    b.waves[0].released_at = Some(t0());
    b.waves[0].verify_started_at = Some(t0());
    b
}

#[test]
fn release_reads_the_pointers_then_moves_only_flows_not_yet_on_the_build() {
    let env = env();
    let mut b = body(None);
    let f2 = WaveFlow { flow: flow("f2"), ..b.waves[0].flows[0].clone() };
    b.waves[0].flows.push(f2);
    assert_eq!(step(&cx(&env, t0()), &b, true, &Observed::default()), Ok(Next::Perform(Effect::ReadPointers)));

    let seen = Observed { pointers: Some([pointer("f0", 1, 1), pointer("f2", 4, 2)].into()), ..Observed::default() };
    let (next, status, moves, finished) = transition(step(&cx(&env, t0()), &b, true, &seen).unwrap());
    assert_eq!((status, finished, next.phase), (StepStatus::Running, false, Phase::Sync));
    assert_eq!(moves.len(), 1, "f2 is already on build 2");
    let mv = &moves[0];
    assert_eq!((mv.flow.as_str(), mv.expected, &mv.build), ("f0", Some(1), &build(2)));
    assert_eq!(mv.kind, MoveKind::Promote { from: "qa".parse().unwrap() });
    assert_eq!((mv.audit.rollout.as_deref(), mv.reason.as_deref()), (Some("prod-1"), Some("weekly")));
    let released = &next.waves[0].flows[0];
    assert_eq!(released.replaced, Some(Replaced { revision: 1, build: build(1) }));
    assert_eq!(released.released_revision, Some(2));
    assert_eq!(next.waves[0].flows[1].released_revision, None);
    assert_eq!(next.waves[0].released_at, Some(t0()));
}

#[test]
fn sync_comes_first_then_verification_starts_or_the_wave_passes() {
    let env = env();
    let mut b = body(one_run(None));
    b.phase = Phase::Sync;
    assert_eq!(step(&cx(&env, t0()), &b, true, &Observed::default()), Ok(Next::Perform(Effect::Sync)));
    let synced = Observed { synced: true, ..Observed::default() };
    let (next, status, moves, _) = transition(step(&cx(&env, t0()), &b, true, &synced).unwrap());
    assert_eq!((next.phase, status, moves.len()), (Phase::Verify, StepStatus::Running, 0));
    assert_eq!(next.waves[0].verify_started_at, Some(t0()));

    // No verify plan, or no server to verify on: the wave passes once synced.
    let mut last = body(None);
    (last.phase, last.wave) = (Phase::Sync, 1);
    let (next, status, _, _) = transition(step(&cx(&env, t0()), &last, true, &synced).unwrap());
    assert_eq!((next.phase, next.wave, status), (Phase::Done, 2, StepStatus::Succeeded));
    assert_eq!(next.waves[1].outcome, Some(WaveOutcome::Passed));
    let no_server = StepContext { has_server: false, ..cx(&env, t0()) };
    let (next, ..) = transition(step(&no_server, &b, true, &synced).unwrap());
    assert_eq!((next.phase, next.wave), (Phase::Release, 1));
}

#[test]
fn verification_runs_are_requested_stored_read_and_judged() {
    let env = env();
    let b = verifying(one_run(Some(600)));
    let request = RunRequest { flow: flow("f0"), build: build(2), key: "flowgate-rollout:prod-1:wave-1:f0:0".into() };
    assert_eq!(
        step(&cx(&env, t0()), &b, true, &Observed::default()),
        Ok(Next::Perform(Effect::TriggerRuns(vec![request])))
    );
    let created = Observed { created: Some(vec![(flow("f0"), run("r1", "SCHEDULED"))]), ..Observed::default() };
    let (stored, status, moves, _) = transition(step(&cx(&env, t0()), &b, true, &created).unwrap());
    assert_eq!((status, moves.len(), stored.waves[0].flows[0].runs.len()), (StepStatus::Running, 0, 1));

    // Stored runs are read, then judged: a state change is worth storing while pending.
    assert_eq!(
        step(&cx(&env, t0()), &stored, true, &Observed::default()),
        Ok(Next::Perform(Effect::ReadRuns(vec!["r1".into()])))
    );
    let states = |s: &str| Observed { states: Some([("r1".to_string(), s.to_string())].into()), ..Observed::default() };
    match step(&cx(&env, t0()), &stored, true, &states("RUNNING")).unwrap() {
        Next::Wait { body: Some(changed), note } => {
            assert_eq!(changed.waves[0].flows[0].runs[0].state, "RUNNING");
            assert!(note.contains("f0 RUNNING"), "{note}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(step(&cx(&env, t0()), &stored, true, &states("SCHEDULED")), Ok(Next::Wait { body: None, .. })));
    let (passed, status, _, _) = transition(step(&cx(&env, t0()), &stored, true, &states("COMPLETED")).unwrap());
    assert_eq!((passed.phase, passed.wave, status), (Phase::Release, 1, StepStatus::Running));
}

#[test]
fn a_failed_run_rolls_the_wave_back_then_the_rollback_is_synced_and_the_rollout_fails() {
    let env = env();
    let mut b = verifying(one_run(None));
    b.waves[0].flows[0].runs.push(run("r1", "RUNNING"));
    let failed = Observed { states: Some([("r1".to_string(), "CRASHED".to_string())].into()), ..Observed::default() };
    assert_eq!(step(&cx(&env, t0()), &b, true, &failed), Ok(Next::Perform(Effect::ReadPointers)));
    let seen = Observed { pointers: Some([pointer("f0", 2, 2)].into()), ..failed };
    let (rolled, status, moves, _) = transition(step(&cx(&env, t0()), &b, true, &seen).unwrap());
    assert_eq!((rolled.phase, status), (Phase::SyncRollBack, StepStatus::Running));
    assert_eq!((moves[0].expected, &moves[0].build), (Some(2), &build(1)));
    assert_eq!(moves[0].kind, MoveKind::Rollback { to_revision: 1 });
    assert_eq!(rolled.waves[0].outcome, Some(WaveOutcome::RolledBack));
    assert!(rolled.failure.as_deref().unwrap().contains("run-r1"), "{:?}", rolled.failure);

    assert_eq!(step(&cx(&env, t0()), &rolled, true, &Observed::default()), Ok(Next::Perform(Effect::Sync)));
    let synced = Observed { synced: true, ..Observed::default() };
    let (done, status, _, finished) = transition(step(&cx(&env, t0()), &rolled, true, &synced).unwrap());
    assert_eq!((done.phase, status, finished), (Phase::Done, StepStatus::Failed, true));
    assert_eq!(step(&cx(&env, t0()), &done, true, &Observed::default()), Ok(Next::Finished));
}

#[test]
fn runs_that_outlast_the_timeout_fail_the_wave() {
    let env = env();
    let mut b = verifying(one_run(Some(60)));
    b.waves[0].flows[0].runs.push(run("r1", "RUNNING"));
    let seen = Observed {
        states: Some([("r1".to_string(), "RUNNING".to_string())].into()),
        pointers: Some([pointer("f0", 2, 2)].into()),
        ..Observed::default()
    };
    assert!(matches!(step(&cx(&env, t0() + Duration::seconds(59)), &b, true, &seen), Ok(Next::Wait { .. })));
    let (rolled, ..) = transition(step(&cx(&env, t0() + Duration::seconds(60)), &b, true, &seen).unwrap());
    assert!(rolled.failure.as_deref().unwrap().contains("timed out after 60 s"), "{:?}", rolled.failure);
}

#[test]
fn without_triggering_the_deployments_own_runs_are_read_and_judged() {
    let env = env();
    let b = verifying(Some(VerifyPlan { runs: 1, timeout_secs: None, parameters: Map::new(), trigger: false }));
    assert_eq!(
        step(&cx(&env, t0()), &b, true, &Observed::default()),
        Ok(Next::Perform(Effect::ReadOwnRuns(vec![(flow("f0"), build(2))])))
    );
    let own =
        |state: &str| Observed { own_runs: Some([(flow("f0"), vec![run("s1", state)])].into()), ..Observed::default() };
    match step(&cx(&env, t0()), &b, true, &own("RUNNING")).unwrap() {
        Next::Wait { body: Some(_), note } => assert!(note.contains("own runs"), "{note}"),
        other => panic!("{other:?}"),
    }
    let (passed, ..) = transition(step(&cx(&env, t0()), &b, true, &own("COMPLETED")).unwrap());
    assert_eq!(passed.waves[0].outcome, Some(WaveOutcome::Passed));
}

#[test]
fn ended_rollouts_do_nothing_and_bodies_that_cannot_verify_are_named() {
    let env = env();
    assert_eq!(step(&cx(&env, t0()), &body(None), false, &Observed::default()), Ok(Next::Finished));
    let no_plan = verifying(None);
    assert_eq!(
        step(&cx(&env, t0()), &no_plan, true, &Observed::default()),
        Err(StepError::NoVerifyPlan("prod-1".into()))
    );
    let no_server = StepContext { has_server: false, ..cx(&env, t0()) };
    let err = step(&no_server, &verifying(one_run(None)), true, &Observed::default()).unwrap_err();
    assert_eq!(err.to_string(), "verification of rollout `prod-1` needs the Prefect server of env `prod`");
    let aborted = abort(&body(None), "alice", Some("bad data"));
    assert_eq!((aborted.phase, aborted.failure.as_deref()), (Phase::Done, Some("aborted by alice: bad data")));
}
