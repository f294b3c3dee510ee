//! A rollout: a durable promotion of builds into one env, wave by wave. Each
//! wave is released, synced, then verified by flow runs; a failed wave is rolled
//! back to the builds it replaced and the rollout stops.
//!
//! The ledger stores a [`RolloutBody`] per rollout and changes it one
//! transition at a time; this module holds the body and the pure decisions on
//! it (what a wave's runs say, which moves undo a wave), so a driver that is
//! killed and restarted picks up exactly where the stored body says it was.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::gates::GateResult;
use crate::ids::{BuildId, EnvName, FlowKey, Revision};
use crate::release::{Audit, Move, MoveKind, Pointer};
use crate::Verified;

/// Where a rollout's builds come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The builds current in this env when the rollout started.
    Env(EnvName),
    /// One build for every flow.
    Build(BuildId),
}

/// How each wave is verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyPlan {
    /// Runs triggered per flow; all must complete.
    pub runs: u32,
    /// How long a wave's runs may take, counted from the wave's sync.
    pub timeout_secs: Option<u64>,
    pub parameters: Map<String, Value>,
    /// False: wait for the deployments' own (scheduled) runs of the build
    /// instead of triggering runs.
    #[serde(default = "triggered")]
    pub trigger: bool,
}

fn triggered() -> bool {
    true
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Move the current wave's pointers (one ledger transaction).
    Release,
    /// Push the env to Prefect after the wave's release.
    Sync,
    /// Trigger and watch the wave's verification runs.
    Verify,
    /// The wave failed and was rolled back in the ledger; push that to Prefect.
    SyncRollBack,
    /// Nothing left to do: the rollout's status says how it ended.
    Done,
}

/// The stored state of one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutBody {
    pub source: Source,
    pub reason: Option<String>,
    /// Set when the gates were overridden at start: the reason given.
    pub override_reason: Option<String>,
    pub verify: Option<VerifyPlan>,
    pub waves: Vec<Wave>,
    /// Index of the wave in progress (== waves.len() once every wave passed).
    pub wave: usize,
    pub phase: Phase,
    /// Why the rollout failed or was aborted.
    pub failure: Option<String>,
    /// Who started it, as a flowgate server verified them; recorded with every
    /// move the rollout makes. None for a rollout started in direct mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<Verified>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub flows: Vec<WaveFlow>,
    pub released_at: Option<DateTime<Utc>>,
    /// When the wave's sync finished and its verification started.
    pub verify_started_at: Option<DateTime<Utc>>,
    pub outcome: Option<WaveOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveOutcome {
    Passed,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveFlow {
    pub flow: FlowKey,
    pub build: BuildId,
    /// The gates evaluated for this flow when the rollout started.
    #[serde(default)]
    pub gates: Vec<GateResult>,
    /// The pointer this wave's release replaced (None: the flow was new in the env).
    pub replaced: Option<Replaced>,
    /// The revision the wave's release created.
    pub released_revision: Option<Revision>,
    #[serde(default)]
    pub runs: Vec<VerifyRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    pub revision: Revision,
    pub build: BuildId,
}

/// One verification run: created with an idempotency key, so creating it again
/// after a crash returns the same run instead of a second one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRun {
    pub key: String,
    pub flow_run_id: String,
    pub name: String,
    /// The Prefect state type last seen (`SCHEDULED`, `RUNNING`, `COMPLETED`, ...).
    pub state: String,
}

/// What a wave's verification runs say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Pass,
    /// Every reason names the runs or the timeout.
    Fail(Vec<String>),
    Pending,
}

/// The idempotency key of verification run `n` of `flow` in wave `wave`: the
/// same rollout step always asks Prefect for the same run.
pub fn verification_key(rollout_id: &str, wave: usize, flow: &FlowKey, n: u32) -> String {
    format!("flowgate-rollout:{rollout_id}:wave-{}:{flow}:{n}", wave + 1)
}

fn is_failure(state: &str) -> bool {
    matches!(state, "FAILED" | "CRASHED" | "CANCELLED" | "CANCELLING")
}

/// Judges a wave from the last seen states of its runs: any failed, crashed or
/// cancelled run fails it; all `runs` per flow completed passes it; otherwise it
/// fails once `now` is past the timeout, and is pending before.
pub fn judge(wave: &Wave, verify: &VerifyPlan, now: DateTime<Utc>) -> Judgement {
    let mut failures = Vec::new();
    let mut complete = true;
    // Flows the wave did not move (already on the build) have nothing to verify.
    for flow in wave.flows.iter().filter(|f| f.released_revision.is_some()) {
        for run in &flow.runs {
            if is_failure(&run.state) {
                failures.push(format!(
                    "flow `{}`: run `{}` ({}) ended {}",
                    flow.flow, run.name, run.flow_run_id, run.state
                ));
            }
        }
        let completed = flow.runs.iter().filter(|r| r.state == "COMPLETED").count();
        complete &= completed >= verify.runs as usize;
    }
    if !failures.is_empty() {
        return Judgement::Fail(failures);
    }
    if complete {
        return Judgement::Pass;
    }
    let started = wave.verify_started_at.unwrap_or(now);
    match verify.timeout_secs {
        Some(secs) if (now - started).num_seconds() >= secs as i64 => {
            let waiting: Vec<String> = wave
                .flows
                .iter()
                .flat_map(|f| f.runs.iter().filter(|r| r.state != "COMPLETED").map(move |r| (f, r)))
                .map(|(f, r)| format!("flow `{}`: run `{}` ({}) still {}", f.flow, r.name, r.flow_run_id, r.state))
                .collect();
            let mut reasons = vec![format!("verification timed out after {secs} s")];
            reasons.extend(waiting);
            Judgement::Fail(reasons)
        }
        _ => Judgement::Pending,
    }
}

/// The moves that put a failed wave's flows back on the builds it replaced.
/// A flow whose pointer is no longer at the revision the wave created (someone
/// moved it since) is left alone, as is a flow that was new in the env (there is
/// no earlier build to return to); each such flow gets a note instead.
pub fn rollback_moves(
    rollout_id: &str,
    env: &EnvName,
    wave: &Wave,
    current: &BTreeMap<FlowKey, Pointer>,
    actor: &str,
) -> (Vec<Move>, Vec<String>) {
    let mut moves = Vec::new();
    let mut notes = Vec::new();
    for flow in &wave.flows {
        let Some(released) = flow.released_revision else { continue };
        let Some(replaced) = &flow.replaced else {
            notes.push(format!("flow `{}` was new in `{env}`: it stays on build {}", flow.flow, flow.build));
            continue;
        };
        match current.get(&flow.flow) {
            Some(p) if p.revision == released => {
                let kind = MoveKind::Rollback { to_revision: replaced.revision };
                let reason = format!("rollout {rollout_id}: wave failed verification");
                let undo = Move::new(&flow.flow, env, Some(released), &replaced.build, kind, actor, Some(&reason));
                moves.push(undo.with_audit(Audit { rollout: Some(rollout_id.to_string()), ..Audit::default() }));
            }
            _ => notes
                .push(format!("flow `{}` moved in `{env}` after the wave released it: left where it is", flow.flow)),
        }
    }
    (moves, notes)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn flow(s: &str) -> FlowKey {
        s.parse().unwrap()
    }
    fn build(n: u8) -> BuildId {
        format!("{n:020x}").parse().unwrap()
    }
    fn run(state: &str) -> VerifyRun {
        VerifyRun { key: "k".into(), flow_run_id: "id".into(), name: "brave-fox".into(), state: state.into() }
    }
    fn wave(runs: &[&[&str]], started: DateTime<Utc>) -> Wave {
        Wave {
            flows: runs
                .iter()
                .enumerate()
                .map(|(i, states)| WaveFlow {
                    flow: flow(&format!("f{i}")),
                    build: build(2),
                    gates: Vec::new(),
                    replaced: Some(Replaced { revision: 1, build: build(1) }),
                    released_revision: Some(2),
                    runs: states.iter().map(|s| run(s)).collect(),
                })
                .collect(),
            released_at: Some(started),
            verify_started_at: Some(started),
            outcome: None,
        }
    }
    fn plan(runs: u32, timeout: Option<u64>) -> VerifyPlan {
        VerifyPlan { runs, timeout_secs: timeout, parameters: Map::new(), trigger: true }
    }

    #[test]
    fn all_runs_completed_passes() {
        let now = Utc::now();
        assert_eq!(judge(&wave(&[&["COMPLETED"], &["COMPLETED"]], now), &plan(1, Some(60)), now), Judgement::Pass);
    }

    #[test]
    fn one_crashed_run_fails_even_while_others_run() {
        let now = Utc::now();
        let j = judge(&wave(&[&["RUNNING"], &["CRASHED"]], now), &plan(1, None), now);
        assert!(matches!(&j, Judgement::Fail(r) if r.len() == 1 && r[0].contains("f1") && r[0].contains("CRASHED")));
    }

    #[test]
    fn too_few_completed_runs_wait_until_the_timeout_then_fail() {
        let start = Utc::now();
        let w = wave(&[&["COMPLETED", "RUNNING"]], start);
        assert_eq!(judge(&w, &plan(2, Some(60)), start + Duration::seconds(59)), Judgement::Pending);
        let j = judge(&w, &plan(2, Some(60)), start + Duration::seconds(60));
        assert!(matches!(&j, Judgement::Fail(r) if r[0].contains("timed out") && r[1].contains("RUNNING")));
        assert_eq!(judge(&w, &plan(2, None), start + Duration::days(9)), Judgement::Pending);
    }

    #[test]
    fn flows_the_wave_did_not_move_are_not_waited_for() {
        let now = Utc::now();
        let mut w = wave(&[&["COMPLETED"], &[]], now);
        w.flows[1].released_revision = None;
        assert_eq!(judge(&w, &plan(1, Some(60)), now), Judgement::Pass);
        w.flows[0].released_revision = None;
        assert_eq!(judge(&w, &plan(1, Some(60)), now), Judgement::Pass, "a wave that moved nothing passes");
    }

    #[test]
    fn keys_name_the_rollout_wave_flow_and_run() {
        assert_eq!(verification_key("prod-1", 0, &flow("etl"), 2), "flowgate-rollout:prod-1:wave-1:etl:2");
    }

    #[test]
    fn rollback_returns_released_flows_and_leaves_moved_or_new_ones() {
        let env: EnvName = "prod".parse().unwrap();
        let mut w = wave(&[&[], &[], &[]], Utc::now());
        w.flows[2].replaced = None;
        let pointer = |f: &str, revision| Pointer {
            flow: flow(f),
            env: env.clone(),
            revision,
            build: build(2),
            updated_at: Utc::now(),
        };
        let current: BTreeMap<FlowKey, Pointer> =
            [("f0", 2), ("f1", 3), ("f2", 1)].into_iter().map(|(f, r)| (flow(f), pointer(f, r))).collect();
        let (moves, notes) = rollback_moves("prod-1", &env, &w, &current, "ci");
        assert_eq!(moves.len(), 1);
        assert_eq!((moves[0].flow.as_str(), moves[0].expected, &moves[0].build), ("f0", Some(2), &build(1)));
        assert_eq!(moves[0].kind, MoveKind::Rollback { to_revision: 1 });
        assert_eq!(moves[0].audit.rollout.as_deref(), Some("prod-1"));
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("f1") && notes[1].contains("f2"));
    }
}
