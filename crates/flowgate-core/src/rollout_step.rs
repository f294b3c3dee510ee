//! The rollout state machine as one pure function. [`step`] takes the stored
//! body, what the driver has observed so far in this step and the time, and
//! says what comes next: an effect to perform first (read the pointers, push the
//! env to Prefect, create or read runs), or the transition to store (the next
//! body, its status and the pointer moves that commit with it), or a wait. The
//! driver only performs effects and stores transitions, so every decision is
//! table-tested here without Prefect or a database.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::ids::{BuildId, EnvName, FlowKey};
use crate::release::{Audit, Move, MoveKind, Pointer};
use crate::rollout::{
    judge, rollback_moves, verification_key, Judgement, Phase, Replaced, RolloutBody, Source, VerifyRun, WaveOutcome,
};

/// Who steps which rollout, where, and when.
#[derive(Debug, Clone)]
pub struct StepContext<'a> {
    pub rollout: &'a str,
    pub env: &'a EnvName,
    pub actor: &'a str,
    /// False for a ledger-only env: nothing is pushed or verified there.
    pub has_server: bool,
    pub now: DateTime<Utc>,
}

/// What the driver has observed during this step: the results of the effects
/// [`step`] asked for, each `None` until performed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The env's pointers ([`Effect::ReadPointers`]).
    pub pointers: Option<BTreeMap<FlowKey, Pointer>>,
    /// The env was pushed to Prefect ([`Effect::Sync`]).
    pub synced: bool,
    /// The runs created for [`Effect::TriggerRuns`], by flow.
    pub created: Option<Vec<(FlowKey, VerifyRun)>>,
    /// The state type of each run read for [`Effect::ReadRuns`], by flow run id.
    pub states: Option<BTreeMap<String, String>>,
    /// Each flow's own runs of its build ([`Effect::ReadOwnRuns`]); a flow
    /// without a deployment is absent.
    pub own_runs: Option<BTreeMap<FlowKey, Vec<VerifyRun>>>,
}

/// I/O the driver performs before stepping again with its result in [`Observed`].
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    ReadPointers,
    /// Push the env's pointers to its Prefect server (idempotent).
    Sync,
    /// Create these verification runs (idempotent by key).
    TriggerRuns(Vec<RunRequest>),
    /// Read the current state of these flow runs.
    ReadRuns(Vec<String>),
    /// Read the runs each flow's deployment made of its build.
    ReadOwnRuns(Vec<(FlowKey, BuildId)>),
}

/// One verification run to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub flow: FlowKey,
    pub build: BuildId,
    /// The idempotency key: the same step always asks for the same run.
    pub key: String,
}

/// A rollout's status as the state machine sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
}

/// What comes after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Perform this, record its result in [`Observed`] and step again.
    Perform(Effect),
    /// Store `body` with `status`, applying `moves` in the same transaction.
    Transition { body: RolloutBody, status: StepStatus, moves: Vec<Move>, note: String, finished: bool },
    /// Nothing decided yet; `body` is `Some` when run states changed and are worth storing.
    Wait { body: Option<RolloutBody>, note: String },
    /// The rollout has ended; nothing to do.
    Finished,
}

/// A body the state machine cannot step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("rollout `{0}` is in its verify phase without a verify plan")]
    NoVerifyPlan(String),
    #[error("verification of rollout `{rollout}` needs the Prefect server of env `{env}`")]
    NoServer { rollout: String, env: EnvName },
}

/// The next thing to do for an `active` rollout whose stored body is `body`.
pub fn step(cx: &StepContext<'_>, body: &RolloutBody, active: bool, seen: &Observed) -> Result<Next, StepError> {
    if !active || body.phase == Phase::Done {
        return Ok(Next::Finished);
    }
    match body.phase {
        Phase::Release => Ok(release(cx, body, seen)),
        Phase::Sync => Ok(after_sync(cx, body, seen)),
        Phase::Verify => verify(cx, body, seen),
        Phase::SyncRollBack => Ok(if !seen.synced {
            Next::Perform(Effect::Sync)
        } else {
            let body = RolloutBody { phase: Phase::Done, ..body.clone() };
            let note = "rolled back and synced".to_string();
            Next::Transition { body, status: StepStatus::Failed, moves: Vec::new(), note, finished: true }
        }),
        Phase::Done => unreachable!("handled above"),
    }
}

/// The body of a rollout aborted by `actor`.
pub fn abort(body: &RolloutBody, actor: &str, reason: Option<&str>) -> RolloutBody {
    let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
    RolloutBody { failure: Some(format!("aborted by {actor}{reason}")), phase: Phase::Done, ..body.clone() }
}

fn release(cx: &StepContext<'_>, body: &RolloutBody, seen: &Observed) -> Next {
    let Some(current) = &seen.pointers else { return Next::Perform(Effect::ReadPointers) };
    let mut body = body.clone();
    let index = body.wave;
    let kind = match &body.source {
        Source::Env(from) => MoveKind::Promote { from: from.clone() },
        Source::Build(_) => MoveKind::Release,
    };
    let mut moves = Vec::new();
    for flow in &mut body.waves[index].flows {
        let now = current.get(&flow.flow);
        if now.is_some_and(|p| p.build == flow.build) {
            continue; // already there: nothing to move, nothing to verify or undo
        }
        flow.replaced = now.map(|p| Replaced { revision: p.revision, build: p.build.clone() });
        let expected = now.map(|p| p.revision);
        let mv = Move::new(&flow.flow, cx.env, expected, &flow.build, kind.clone(), cx.actor, body.reason.as_deref())
            .with_audit(Audit {
                gates: flow.gates.clone(),
                override_reason: body.override_reason.clone(),
                rollout: Some(cx.rollout.to_string()),
                verified: body.started_by.clone(),
            });
        flow.released_revision = Some(mv.next_revision());
        moves.push(mv);
    }
    body.waves[index].released_at = Some(cx.now);
    body.phase = Phase::Sync;
    let note = format!("wave {}/{}: released {} flow(s)", index + 1, body.waves.len(), moves.len());
    Next::Transition { body, status: StepStatus::Running, moves, note, finished: false }
}

fn after_sync(cx: &StepContext<'_>, body: &RolloutBody, seen: &Observed) -> Next {
    if !seen.synced {
        return Next::Perform(Effect::Sync);
    }
    if body.verify.is_none() || !cx.has_server {
        return pass_wave(body.clone(), "synced (no verification configured)");
    }
    let mut body = body.clone();
    let index = body.wave;
    body.waves[index].verify_started_at = Some(cx.now);
    body.phase = Phase::Verify;
    let note = format!("wave {}/{}: synced; verifying", index + 1, body.waves.len());
    Next::Transition { body, status: StepStatus::Running, moves: Vec::new(), note, finished: false }
}

fn verify(cx: &StepContext<'_>, body: &RolloutBody, seen: &Observed) -> Result<Next, StepError> {
    let verify = body.verify.clone().ok_or_else(|| StepError::NoVerifyPlan(cx.rollout.to_string()))?;
    if !cx.has_server {
        return Err(StepError::NoServer { rollout: cx.rollout.to_string(), env: cx.env.clone() });
    }
    let index = body.wave;
    let mut body = body.clone();
    let released = |f: &&mut crate::rollout::WaveFlow| f.released_revision.is_some();
    let mut changed = false;
    if verify.trigger {
        // Missing runs are created, and stored, before any is watched.
        if let Some(created) = &seen.created {
            for (flow, run) in created {
                if let Some(f) = body.waves[index].flows.iter_mut().find(|f| &f.flow == flow) {
                    f.runs.push(run.clone());
                }
            }
            let note = format!("wave {}: triggered {} verification run(s)", index + 1, created.len());
            return Ok(Next::Transition {
                body,
                status: StepStatus::Running,
                moves: Vec::new(),
                note,
                finished: false,
            });
        }
        let mut requests = Vec::new();
        for flow in body.waves[index].flows.iter_mut().filter(released) {
            for n in flow.runs.len() as u32..verify.runs {
                let key = verification_key(cx.rollout, index, &flow.flow, n);
                requests.push(RunRequest { flow: flow.flow.clone(), build: flow.build.clone(), key });
            }
        }
        if !requests.is_empty() {
            return Ok(Next::Perform(Effect::TriggerRuns(requests)));
        }
        let open: Vec<String> = body.waves[index]
            .flows
            .iter()
            .flat_map(|f| f.runs.iter())
            .filter(|r| !is_terminal(&r.state))
            .map(|r| r.flow_run_id.clone())
            .collect();
        match &seen.states {
            None if !open.is_empty() => return Ok(Next::Perform(Effect::ReadRuns(open))),
            None => {}
            Some(states) => {
                for run in body.waves[index].flows.iter_mut().flat_map(|f| f.runs.iter_mut()) {
                    if let Some(state) = states.get(&run.flow_run_id).filter(|s| **s != run.state) {
                        run.state = state.clone();
                        changed = true;
                    }
                }
            }
        }
    } else {
        let Some(own) = &seen.own_runs else {
            let flows = body.waves[index]
                .flows
                .iter_mut()
                .filter(released)
                .map(|f| (f.flow.clone(), f.build.clone()))
                .collect();
            return Ok(Next::Perform(Effect::ReadOwnRuns(flows)));
        };
        for flow in body.waves[index].flows.iter_mut().filter(released) {
            if let Some(runs) = own.get(&flow.flow).filter(|runs| **runs != flow.runs) {
                flow.runs = runs.clone();
                changed = true;
            }
        }
    }
    let how = if verify.trigger { "verification runs completed" } else { "the deployments' own runs completed" };
    Ok(match judge(&body.waves[index], &verify, cx.now) {
        Judgement::Pass => pass_wave(body, how),
        Judgement::Fail(reasons) => fail_wave(cx, body, reasons, seen),
        Judgement::Pending => {
            let note = if verify.trigger {
                let states: Vec<String> = body.waves[index]
                    .flows
                    .iter()
                    .flat_map(|f| f.runs.iter().map(move |r| format!("{} {}", f.flow, r.state)))
                    .collect();
                format!("wave {}: waiting for runs ({})", index + 1, states.join(", "))
            } else {
                format!("wave {}: waiting for the deployments' own runs", index + 1)
            };
            Next::Wait { body: changed.then_some(body), note }
        }
    })
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "COMPLETED" | "FAILED" | "CRASHED" | "CANCELLED")
}

fn pass_wave(mut body: RolloutBody, how: &str) -> Next {
    let index = body.wave;
    let total = body.waves.len();
    body.waves[index].outcome = Some(WaveOutcome::Passed);
    body.wave += 1;
    let status = if body.wave == total { StepStatus::Succeeded } else { StepStatus::Running };
    body.phase = if body.wave == total { Phase::Done } else { Phase::Release };
    let note = format!("wave {}/{total}: {how}; passed", index + 1);
    Next::Transition { body, status, moves: Vec::new(), note, finished: false }
}

/// Rolls the wave back to the builds it replaced, in the same transition that
/// records the failure; the sync of that comes next.
fn fail_wave(cx: &StepContext<'_>, mut body: RolloutBody, reasons: Vec<String>, seen: &Observed) -> Next {
    let Some(current) = &seen.pointers else { return Next::Perform(Effect::ReadPointers) };
    let index = body.wave;
    let (moves, notes) = rollback_moves(cx.rollout, cx.env, &body.waves[index], current, cx.actor);
    body.waves[index].outcome = Some(if moves.is_empty() { WaveOutcome::Failed } else { WaveOutcome::RolledBack });
    let mut failure = format!("wave {} failed verification:\n  {}", index + 1, reasons.join("\n  "));
    for note in notes {
        failure.push_str(&format!("\n  {note}"));
    }
    body.failure = Some(failure);
    body.phase = Phase::SyncRollBack;
    let note = format!("wave {}: failed verification; rolled back {} flow(s)", index + 1, moves.len());
    Next::Transition { body, status: StepStatus::Running, moves, note, finished: false }
}

#[cfg(test)]
#[path = "rollout_step_tests.rs"]
mod tests;
