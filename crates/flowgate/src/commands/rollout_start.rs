//! Starting a rollout, wherever it is asked for (the CLI in direct mode, or a
//! flowgate server for the caller it verified): plans the waves from the env's
//! `rollout` config, checks every flow's gates up front (exit 3 with every
//! failed gate, nothing recorded) and records the rollout.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use chrono::Utc;
use flowgate_config::SelectedEnv;
use flowgate_core::rollout::{Phase, RolloutBody, Source, VerifyPlan, Wave, WaveFlow};
use flowgate_core::{BuildId, FlowKey, Move, MoveKind, Pointer, Verified};
use flowgate_ledger::{Ledger, RolloutRecord, RolloutStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::gates::{self, FlowVerdict};
use super::rollout_view;
use super::unchanged::{keep_unchanged, render_unchanged, Unchanged};
use crate::exit::usage;
use crate::printer::Printer;
use crate::project::Project;

/// A rollout start as asked.
pub struct StartAsk {
    pub source: Source,
    /// The build each flow is to run.
    pub targets: BTreeMap<FlowKey, BuildId>,
    pub reason: Option<String>,
    pub override_gates: bool,
    pub dry_run: bool,
    /// Leave out the flows whose code, settings and image the env already runs
    /// (asked for every flow, without `--force`).
    pub changed_only: bool,
    /// Who starts it: recorded on the rollout and each of its moves.
    pub actor: String,
    /// The caller a flowgate server verified; None in direct mode.
    pub verified: Option<Verified>,
}

/// What `rollout start --json` prints, and a server answers to a start.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Planned {
    pub dry_run: bool,
    /// The rollout as recorded; absent on a dry run or when nothing changes.
    #[schema(value_type = Option<Object>)]
    pub rollout: Option<RolloutRecord>,
    /// Its waves, phase and verification plan.
    #[schema(value_type = Object)]
    pub body: RolloutBody,
    pub gates: Vec<FlowVerdict>,
    /// Flows of the source that no wave's globs match: not part of the rollout.
    pub left_out: Vec<FlowKey>,
    /// Flows whose code, settings and image the env already runs: not part of
    /// the rollout (they keep their revision, soak and deployment).
    #[serde(default)]
    pub unchanged: Vec<Unchanged>,
}

/// Plans the rollout of `ask` into `env`, checks its gates and, unless it is a
/// dry run or moves nothing, records it (running, version 1).
pub async fn plan_start(project: &Project, ledger: &dyn Ledger, env: &SelectedEnv, ask: StartAsk) -> Result<Planned> {
    let env_config = project.config.env(&env.config_name).cloned().unwrap_or_else(|| env.config.clone());
    let verify = env_config.rollout.as_ref().and_then(|r| r.verify.as_ref()).map(|v| VerifyPlan {
        runs: v.runs,
        timeout_secs: v.timeout.map(|t| t.as_secs()),
        parameters: v.parameters.clone(),
        trigger: v.trigger,
    });
    if verify.is_some() && env.config.prefect_api_url.is_none() {
        return Err(usage(format!(
            "Env `{}` verifies rollouts by flow runs but has no `prefect_api_url`; set one or remove `rollout.verify`",
            env.config_name
        )));
    }
    let targets = &ask.targets;
    let current: BTreeMap<FlowKey, Pointer> =
        ledger.pointers(Some(&env.ledger_name)).await?.into_iter().map(|p| (p.flow.clone(), p)).collect();
    let mut changing: Vec<FlowKey> =
        targets.keys().filter(|f| current.get(*f).is_none_or(|p| p.build != targets[*f])).cloned().collect();
    let kind = match &ask.source {
        Source::Env(from) => MoveKind::Promote { from: from.clone() },
        Source::Build(_) => MoveKind::Release,
    };
    let new_move = |flow: &FlowKey| {
        let expected = current.get(flow).map(|p| p.revision);
        Move::new(flow, &env.ledger_name, expected, &targets[flow], kind.clone(), &ask.actor, ask.reason.as_deref())
    };
    let mut unchanged = Vec::new();
    if ask.changed_only {
        let asked = changing.iter().map(new_move).collect();
        let (kept, same) = keep_unchanged(ledger, env, asked, &current).await?;
        changing = kept.into_iter().map(|m| m.flow).collect();
        unchanged = same;
    }
    let waves = match &env_config.rollout {
        Some(plan) => plan.expand(&changing),
        None if changing.is_empty() => Vec::new(),
        None => vec![changing.clone()],
    };
    let left_out: Vec<FlowKey> =
        changing.iter().filter(|f| !waves.iter().flatten().any(|w| w == *f)).cloned().collect();
    // The moves the waves will make, to evaluate their gates now.
    let mut moves: Vec<Move> = waves.iter().flatten().map(new_move).collect();
    let on_server = ask.verified.is_some();
    let verdicts = gates::evaluate_moves(project, ledger, env, &mut moves, Utc::now(), on_server).await?;
    let override_reason = ask.override_gates.then(|| ask.reason.clone()).flatten();
    if !ask.dry_run {
        let policy = gates::policy_of(project, env);
        gates::enforce_and_notify(ledger, env, &policy, &verdicts, override_reason.as_deref(), &mut moves).await?;
    }
    let gates_of = |flow: &FlowKey| moves.iter().find(|m| &m.flow == flow).map(|m| m.audit.gates.clone());
    let body = RolloutBody {
        source: ask.source.clone(),
        reason: ask.reason.clone(),
        override_reason: moves.iter().find_map(|m| m.audit.override_reason.clone()),
        verify,
        waves: waves
            .iter()
            .map(|flows| Wave {
                flows: flows
                    .iter()
                    .map(|flow| WaveFlow {
                        flow: flow.clone(),
                        build: targets[flow].clone(),
                        gates: gates_of(flow).unwrap_or_default(),
                        replaced: None,
                        released_revision: None,
                        runs: Vec::new(),
                    })
                    .collect(),
                released_at: None,
                verify_started_at: None,
                outcome: None,
            })
            .collect(),
        wave: 0,
        phase: Phase::Release,
        failure: None,
        started_by: ask.verified.clone(),
    };
    if ask.dry_run || body.waves.is_empty() {
        return Ok(Planned { dry_run: ask.dry_run, rollout: None, body, gates: verdicts, left_out, unchanged });
    }
    let record = RolloutRecord {
        id: new_id(env),
        env: env.ledger_name.clone(),
        status: RolloutStatus::Running,
        version: 1,
        actor: ask.actor.clone(),
        body: serde_json::to_value(&body).context("encode the rollout")?,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let record = ledger.start_rollout(&record).await?;
    Ok(Planned { dry_run: false, rollout: Some(record), body, gates: verdicts, left_out, unchanged })
}

/// Prints what a start did. Returns the recorded rollout when it is still to
/// be followed (recorded, and not `--detach`); `detached` is the hint printed
/// with `--detach`.
pub fn announce(
    printer: Printer,
    env: &SelectedEnv,
    planned: &Planned,
    detach: Option<&str>,
) -> Result<Option<RolloutRecord>> {
    let Some(record) = planned.rollout.clone() else {
        printer.result(planned, |out| render_unrecorded(out, env, planned))?;
        return Ok(None);
    };
    if !printer.json {
        printer.note(started_note(env, &record, planned));
    }
    match detach {
        Some(hint) => {
            printer.result(planned, |out| out.push_str(&format!("Detached; {hint}.\n")))?;
            Ok(None)
        }
        None => Ok(Some(record)),
    }
}

/// The text of a plan that recorded nothing: a dry run, or nothing to roll out.
fn render_unrecorded(out: &mut String, env: &SelectedEnv, planned: &Planned) {
    if planned.body.waves.is_empty() {
        out.push_str(&format!("Nothing to roll out: `{}` already runs those builds.\n", env.config_name));
        render_unchanged(out, &planned.unchanged);
        return;
    }
    out.push_str("Dry run; nothing changed.\n");
    gates::render(out, &planned.gates);
    rollout_view::render_waves(out, &planned.body);
    rollout_view::render_left_out(out, &planned.left_out);
    render_unchanged(out, &planned.unchanged);
}

/// The note printed when a rollout was recorded.
fn started_note(env: &SelectedEnv, record: &RolloutRecord, planned: &Planned) -> String {
    let mut out = format!("Started rollout {} into `{}`:\n", record.id, env.config_name);
    rollout_view::render_waves(&mut out, &planned.body);
    rollout_view::render_left_out(&mut out, &planned.left_out);
    render_unchanged(&mut out, &planned.unchanged);
    out.trim_end().to_string()
}

/// `prod-20261126T150102-3fa9`: the env, the start time and four random hex
/// digits (from the std hasher's random keys), so two starts in the same second
/// still differ.
fn new_id(env: &SelectedEnv) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let noise = hasher.finish() & 0xffff;
    format!("{}-{}-{noise:04x}", env.ledger_name, Utc::now().format("%Y%m%dT%H%M%S"))
}
