//! Gate checks for moves into an env with a `policy`. The verdict itself is the
//! pure `flowgate_core::gates::evaluate`; this module gathers what it reads (the
//! flow's history upstream, the upstream runs that executed the build, the
//! approvals), attaches each verdict to its move for the history, and refuses
//! (exit 3, nothing changed) unless the env allows `--override-gates`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use flowgate_config::{Policy, SelectedEnv, TemplateVars};
use flowgate_core::gates::{evaluate, GateInput, RunOutcome, RunState, Verdict};
use flowgate_core::{Build, EnvName, FlowKey, GateStatus, Move, MoveKind};
use flowgate_ledger::Ledger;
use flowgate_prefect::Owner;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::deploy::Target;
use super::gate_parameters::{self, ParameterFacts};
use crate::exit::{usage, RefusedError};
use crate::project::{user_name, Project};

/// The verdict for one move, as printed and as put in `--json`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FlowVerdict {
    pub flow: FlowKey,
    pub env: EnvName,
    pub build: String,
    pub passed: bool,
    pub gates: Vec<flowgate_core::GateResult>,
}

/// The policy of the env a move goes into (the default, with no gates, when the
/// env is not in the config, and for a preview env: it is a branch's scratch
/// space, not the env it is placed like).
pub fn policy_of(project: &Project, env: &SelectedEnv) -> Policy {
    if env.preview.is_some() {
        return Policy::default();
    }
    project.config.env(&env.config_name).map(|e| e.policy.clone()).unwrap_or_default()
}

/// Evaluates the env's gates for every release and promotion among `moves` and
/// records each result in its move's audit. Rollbacks are not gated: they return
/// a pointer to a build the env already ran, the way out of an incident.
/// `verified_branches`: on a server, `branches` believes only the refs of the
/// CI jobs that registered the build.
pub async fn evaluate_moves(
    project: &Project,
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    moves: &mut [Move],
    now: DateTime<Utc>,
    verified_branches: bool,
) -> Result<Vec<FlowVerdict>> {
    let policy = policy_of(project, env);
    if !policy.has_gates() {
        return Ok(Vec::new());
    }
    // The upstream servers (and their credentials) are resolved once, not per move,
    // and only when a gate counts runs.
    let counts_runs = policy.min_successful_runs > 0 || policy.max_failure_rate.is_some();
    let upstream_targets = if counts_runs { targets_of(project, &policy.after)? } else { Vec::new() };
    // `compatible_parameters` reads the env's own server and the builds it runs now.
    let (own_target, running) = if policy.compatible_parameters {
        let pointers = ledger.pointers(Some(&env.ledger_name)).await?;
        (Target::of(env)?, pointers.into_iter().map(|p| (p.flow, p.build)).collect())
    } else {
        (None, BTreeMap::new())
    };
    let mut running_builds: BTreeMap<flowgate_core::BuildId, Option<Build>> = BTreeMap::new();
    let mut verdicts = Vec::new();
    let mut provenance = BTreeMap::new();
    // What every gated move reads from the ledger is read for all of them at
    // once: their builds, their flows' histories upstream and the approvals
    // of their builds, a statement each, however many flows move.
    let gated: Vec<&Move> = moves.iter().filter(|m| !matches!(m.kind, MoveKind::Rollback { .. })).collect();
    let build_ids: Vec<flowgate_core::BuildId> = gated.iter().map(|m| m.build.clone()).collect();
    let flows: Vec<FlowKey> = gated.iter().map(|m| m.flow.clone()).collect();
    let moved_builds: BTreeMap<flowgate_core::BuildId, Build> =
        ledger.builds_by_id(&build_ids, true).await?.into_iter().map(|b| (b.id.clone(), b)).collect();
    let mut upstream_histories = BTreeMap::new();
    for after in &policy.after {
        upstream_histories.insert(after.clone(), ledger.histories(&flows, after).await?);
    }
    let approvals = ledger.approvals_of(&env.ledger_name, &build_ids).await?;
    let no_approvals = Vec::new();
    for mv in moves.iter_mut().filter(|m| !matches!(m.kind, MoveKind::Rollback { .. })) {
        let build = moved_builds.get(&mv.build).with_context(|| format!("build `{}` is not recorded", mv.build))?;
        let upstream: BTreeMap<EnvName, Vec<flowgate_core::Release>> = upstream_histories
            .iter()
            .map(|(after, histories)| (after.clone(), histories.get(&mv.flow).cloned().unwrap_or_default()))
            .collect();
        let runs = upstream_runs(project, &upstream_targets, &mv.flow, build).await?;
        let reads_provenance = policy.provenance.is_some() || (verified_branches && !policy.branches.is_empty());
        if reads_provenance && !provenance.contains_key(&mv.build) {
            provenance.insert(mv.build.clone(), ledger.provenance(&mv.build).await?);
        }
        let mut parameters = ParameterFacts::default();
        if policy.compatible_parameters {
            if let Some(id) = running.get(&mv.flow) {
                if !running_builds.contains_key(id) {
                    running_builds.insert(id.clone(), ledger.build(id).await?);
                }
            }
            let was = running.get(&mv.flow).and_then(|id| running_builds[id].as_ref());
            parameters = gate_parameters::gather(project, env, own_target.as_ref(), &mv.flow, build, was).await?;
        }
        let verdict = evaluate(&GateInput {
            policy: &policy,
            flow: &mv.flow,
            env: &env.ledger_name,
            build,
            releaser: &mv.actor,
            upstream: &upstream,
            runs: &runs,
            approvals: approvals.get(&mv.build).unwrap_or(&no_approvals),
            provenance: provenance.get(&mv.build).map_or(&[], Vec::as_slice),
            verified_branches,
            parameters: parameters.evidence(),
            now,
        });
        mv.audit.gates = verdict.results.clone();
        verdicts.push(view(mv, &verdict));
    }
    Ok(verdicts)
}

fn view(mv: &Move, verdict: &Verdict) -> FlowVerdict {
    FlowVerdict {
        flow: mv.flow.clone(),
        env: mv.env.clone(),
        build: mv.build.to_string(),
        passed: verdict.passed(),
        gates: verdict.results.clone(),
    }
}

/// Lets the moves through, marks them overridden, or refuses with every failed
/// gate of every flow. An override needs `allow_override = true` in the env's
/// policy and a reason; it is recorded on each move whose gates did not pass.
pub fn enforce(
    env: &SelectedEnv,
    policy: &Policy,
    verdicts: &[FlowVerdict],
    override_reason: Option<&str>,
    moves: &mut [Move],
) -> Result<()> {
    let failing: Vec<&FlowVerdict> = verdicts.iter().filter(|v| !v.passed).collect();
    if failing.is_empty() {
        return Ok(());
    }
    if let Some(reason) = override_reason {
        if !policy.allow_override {
            return Err(usage(format!(
                "Env `{}` does not allow --override-gates; set `allow_override = true` in its policy to permit it",
                env.config_name
            )));
        }
        for mv in moves.iter_mut().filter(|m| failing.iter().any(|v| v.flow == m.flow)) {
            mv.audit.override_reason = Some(reason.to_string());
        }
        return Ok(());
    }
    let mut message = format!("Refused by the gates of env `{}`; nothing changed.\n", env.config_name);
    for v in &failing {
        message.push_str(&format!("  {} (build {}):\n", v.flow, v.build));
        for gate in v.gates.iter().filter(|g| g.status != GateStatus::Pass) {
            message.push_str(&format!("    {} ({}): {}\n", gate.gate, status_word(&gate.status), gate.detail));
        }
    }
    if policy.allow_override {
        message.push_str("This env allows `--override-gates --reason TEXT`; the override is recorded in the history.");
    }
    Err(RefusedError(message.trim_end().to_string()).into())
}

/// [`enforce`], and when the gates refuse, the refusal's events (`gate.refused`,
/// and `approval.requested` when the approval gate holds a flow back) written to
/// the ledger's outbox for the env's webhooks. Writing them is best effort: a
/// ledger that fails to take them is logged and the refusal stands as it is.
pub async fn enforce_and_notify(
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    policy: &Policy,
    verdicts: &[FlowVerdict],
    override_reason: Option<&str>,
    moves: &mut [Move],
) -> Result<()> {
    let refused = enforce(env, policy, verdicts, override_reason, moves);
    if refused.as_ref().is_err_and(|e| e.is::<RefusedError>()) {
        let actor = moves.first().map(|m| m.actor.as_str()).unwrap_or_default();
        let failing: Vec<flowgate_core::events::Refused<'_>> = verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| flowgate_core::events::Refused { flow: &v.flow, build: &v.build, gates: &v.gates })
            .collect();
        let events =
            flowgate_core::events::gate_refused(ledger.project(), &env.ledger_name, actor, Utc::now(), &failing);
        if let Err(err) = ledger.record_events(&events).await {
            tracing::warn!(error = %err, env = %env.ledger_name, "the refusal's notification was not recorded");
        }
    }
    refused
}

/// `passed`, `refused`, or `waiting until ...`.
pub fn status_word(status: &GateStatus) -> String {
    match status {
        GateStatus::Pass => "passed".into(),
        GateStatus::Refuse => "refused".into(),
        GateStatus::Wait { until: Some(t) } => format!("waiting until {}", t.format("%Y-%m-%dT%H:%M:%SZ")),
        GateStatus::Wait { until: None } => "waiting".into(),
    }
}

/// One line per flow for `--dry-run` and for start of a rollout.
pub fn render(out: &mut String, verdicts: &[FlowVerdict]) {
    for v in verdicts {
        let outcome = if v.passed { "gates passed" } else { "gates NOT passed" };
        out.push_str(&format!("{} → {} (build {}): {outcome}\n", v.flow, v.env, v.build));
        for g in &v.gates {
            out.push_str(&format!("  {:<8} {:<20} {}\n", status_word(&g.status), g.gate, g.detail));
        }
    }
}

/// The flow runs in the upstream envs that executed `build` for `flow`: found by
/// the flow's deployment there and the build's tag, confirmed per run by what
/// its pull step fetched. A ledger-only upstream env has no runs to count.
async fn upstream_runs(
    project: &Project,
    targets: &[(EnvName, Target)],
    flow: &FlowKey,
    build: &Build,
) -> Result<Vec<RunOutcome>> {
    let mut outcomes = Vec::new();
    for (env_name, target) in targets {
        let Some(deployment) = deployment_of(project, target, flow, build).await? else { continue };
        let runs = target
            .client
            .runs_of_build(&deployment, &build.id)
            .await
            .with_context(|| format!("Failed to read the flow runs of `{flow}` in env `{env_name}`"))?;
        outcomes.extend(runs.into_iter().map(|r| RunOutcome {
            env: env_name.clone(),
            flow_run_id: r.id,
            name: r.name,
            state: RunState::from_prefect(&r.state_type),
        }));
    }
    Ok(outcomes)
}

/// The servers of the upstream envs; a ledger-only env has none (no runs to count).
fn targets_of(project: &Project, after: &[EnvName]) -> Result<Vec<(EnvName, Target)>> {
    let mut out = Vec::new();
    for env_name in after {
        if let Some(target) = Target::of(&project.select_env(Some(env_name.as_str()))?)? {
            out.push((env_name.clone(), target));
        }
    }
    Ok(out)
}

/// The id of the deployment `flow` has on the env's server, if any: found by the
/// deployment name the build's settings give it in that env, among this project's own
/// deployments (a deployment of that name owned by another project is not it,
/// so its runs never count for this project's gates or verification). One synced
/// before projects existed counts when sync would adopt it (same name, this env).
pub async fn deployment_of(
    project: &Project,
    target: &Target,
    flow: &FlowKey,
    build: &Build,
) -> Result<Option<String>> {
    let name = match &build.settings {
        Some(recorded) => match recorded.get(&target.env.config_name, flow) {
            Some(settings) => format!("{}{}", target.env.name_prefix, settings.deployment_name),
            None => return Ok(None),
        },
        // A build made before builds carried their settings: the working tree's name.
        None => {
            let mut vars = TemplateVars::for_build(&build.commit, build.branch.as_deref(), flow);
            vars.user = Some(flowgate_config::sanitize_user(&user_name()));
            project.config.deployment(flow, &target.env, &vars)?.deployment_name
        }
    };
    let found = target
        .client
        .read_deployments(std::slice::from_ref(&name))
        .await
        .with_context(|| format!("Failed to read deployment `{name}` in env `{}`", target.env.config_name))?;
    let project_name = project.config.project_name();
    let ours = |owner: Owner| owner.is(project_name) || owner.adoptable_in(&target.env.ledger_name);
    Ok(found.into_iter().find(|d| d.name == name && ours(Owner::of(d))).map(|d| d.id))
}
