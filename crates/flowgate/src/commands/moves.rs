//! `release`, `promote` and `rollback`: each plans pointer moves with the pure
//! rules of flowgate-core, checks the target env's gates (releases and
//! promotions only), then applies the moves in one ledger transaction, then
//! (unless `--no-sync`, or the env is ledger-only) syncs the env's Prefect server.
//! A failed sync leaves the move recorded: the ledger is the desired state.
//! With `FLOWGATE_SERVER` the server does all of it, as the verified caller,
//! with the envs, policies and Prefect credentials it holds.

use std::collections::BTreeMap;

use anyhow::Result;
use flowgate_config::SelectedEnv;
use flowgate_core::moves::Intent;
use flowgate_core::{plan_promote, plan_release, plan_rollback, EnvName, FlowKey, Move, Pointer, Release, Verified};
use flowgate_ledger::Ledger;
use flowgate_prefect::SyncOptions;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::deploy::{self, Target};
use super::gates::{self, FlowVerdict};

use super::unchanged::Unchanged;
use crate::cli::{MoveArgs, PromoteArgs, ReleaseArgs, RollbackArgs};
use crate::client::{server_build_ref, ServerClient};
use crate::git::Repo;
use crate::printer::{table, Printer};
use crate::project::{actor, Project};
use crate::refs::resolve_build;

/// What `release`, `promote` and `rollback` print with `--json`, and what a
/// server answers for them.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Moved {
    pub dry_run: bool,
    /// What was applied (or, with --dry-run, what would be).
    pub moves: Vec<MoveView>,
    /// The gates evaluated per move (empty when the env has no policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<FlowVerdict>,
    /// What the sync after the move did; absent when it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<super::sync::SyncView>,
    /// Set when the moves were recorded but the sync after them failed: the
    /// error, outermost first, one entry per cause (a server's answer; never
    /// in `--json`, which fails instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_error: Vec<String>,
    /// Flows left where they were: the env already runs their code, settings and image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<Unchanged>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct MoveView {
    pub flow: FlowKey,
    pub env: EnvName,
    pub revision: i64,
    pub build: String,
    pub previous_build: Option<String>,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
}

/// How moves are applied, wherever they were asked for.
#[derive(Debug, Clone, Default)]
pub struct Apply {
    pub dry_run: bool,
    pub no_sync: bool,
    pub create_work_pools: bool,
    /// `--override-gates --reason TEXT`: the reason.
    pub override_reason: Option<String>,
    /// The caller a flowgate server verified: recorded with each move, and
    /// `branches` then believes only verified CI refs. None in direct mode.
    pub verified: Option<Verified>,
    /// `release --all` and `promote` without flows named (and no `--force`):
    /// flows the move would not change stay where they are.
    pub changed_only: bool,
}

impl Apply {
    fn of(args: &MoveArgs) -> Self {
        Self {
            dry_run: args.dry_run,
            no_sync: args.no_sync,
            create_work_pools: args.create_work_pools,
            override_reason: args.override_reason().map(String::from),
            verified: None,
            changed_only: false,
        }
    }
}

pub async fn release(project: &Project, args: ReleaseArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let flows = if args.all { project.all_flows() } else { project.flows(&args.flows)? };
    if let Some(server) = ServerClient::from_env().await? {
        let named = if args.all { Vec::new() } else { flows };
        let body = json!({
            "build": server_build_ref(project, &args.build)?, "flows": named, "all": args.all, "force": args.force,
        });
        return through_server(&server, project, &env, "releases", body, &args.moves, printer).await;
    }
    let ledger = project.ledger().await?;
    let repo = Repo::discover(&project.root).ok();
    let build = resolve_build(ledger.as_ref(), repo.as_ref(), &args.build).await?;
    let current = pointers_by_flow(ledger.as_ref(), &env.ledger_name).await?;
    let moves = plan_release(&flows, &env.ledger_name, &build.id, &current, &intent(project, &args.moves));
    let how = Apply { changed_only: args.all && !args.force, ..Apply::of(&args.moves) };
    apply(project, ledger.as_ref(), &env, moves, &current, &how, printer).await
}

pub async fn promote(project: &Project, args: PromoteArgs, printer: Printer) -> Result<()> {
    let from = project.named_env(&args.from)?;
    let to_env = project.select_env(Some(&args.to))?;
    let flows = project.flows(&args.flows)?;
    if let Some(server) = ServerClient::from_env().await? {
        let body = json!({ "from": from, "flows": flows, "force": args.force });
        return through_server(&server, project, &to_env, "promotions", body, &args.moves, printer).await;
    }
    let ledger = project.ledger().await?;
    let source = pointers_by_flow(ledger.as_ref(), &from).await?;
    let target = pointers_by_flow(ledger.as_ref(), &to_env.ledger_name).await?;
    let moves = plan_promote(&flows, &from, &to_env.ledger_name, &source, &target, &intent(project, &args.moves))?;
    let how = Apply { changed_only: flows.is_empty() && !args.force, ..Apply::of(&args.moves) };
    apply(project, ledger.as_ref(), &to_env, moves, &target, &how, printer).await
}

pub async fn rollback(project: &Project, args: RollbackArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let flows = project.flows(&args.flows)?;
    if let Some(server) = ServerClient::from_env().await? {
        let body = json!({ "flows": flows, "to": args.to });
        return through_server(&server, project, &env, "rollbacks", body, &args.moves, printer).await;
    }
    let ledger = project.ledger().await?;
    let intent = intent(project, &args.moves);
    let moves = plan_rollbacks(ledger.as_ref(), &env.ledger_name, &flows, args.to, &intent).await?;
    let current = pointers_by_flow(ledger.as_ref(), &env.ledger_name).await?;
    apply(project, ledger.as_ref(), &env, moves, &current, &Apply::of(&args.moves), printer).await
}

/// One rollback per flow, each to `to` or to the build before the current one.
pub async fn plan_rollbacks(
    ledger: &dyn Ledger,
    env: &EnvName,
    flows: &[FlowKey],
    to: Option<i64>,
    intent: &Intent,
) -> Result<Vec<Move>> {
    let mut moves = Vec::new();
    for flow in flows {
        let history = ledger.history(flow, env, None).await?;
        moves.push(plan_rollback(flow, env, &history, to, intent)?);
    }
    Ok(moves)
}

fn intent(project: &Project, args: &MoveArgs) -> Intent {
    Intent { actor: actor(&project.root), reason: args.reason.clone() }
}

pub async fn pointers_by_flow(ledger: &dyn Ledger, env: &EnvName) -> Result<BTreeMap<FlowKey, Pointer>> {
    Ok(ledger.pointers(Some(env)).await?.into_iter().map(|p| (p.flow.clone(), p)).collect())
}

/// Asks the server to make the moves (`POST .../envs/ENV/KIND`); prints its
/// answer as direct mode prints its own, and fails as direct mode would when
/// the sync after a recorded move failed.
async fn through_server(
    server: &ServerClient,
    project: &Project,
    env: &SelectedEnv,
    kind: &str,
    mut body: Value,
    args: &MoveArgs,
    printer: Printer,
) -> Result<()> {
    body["reason"] = json!(args.reason);
    body["dry_run"] = json!(args.dry_run);
    body["no_sync"] = json!(args.no_sync);
    body["create_work_pools"] = json!(args.create_work_pools);
    body["override_gates"] = json!(args.override_gates);
    let path = format!("/projects/{}/envs/{}/{kind}", project.config.project_name(), env.ledger_name);
    let mut moved: Moved = server.post(&path, &body).await?;
    let failure = std::mem::take(&mut moved.sync_error);
    if let Some(error) = chained(failure) {
        if !printer.json {
            print_moves(&moved, printer)?;
        }
        return Err(error);
    }
    print_moves(&moved, printer)
}

/// An error rebuilt from its messages, outermost first, so it prints as it did where it happened.
fn chained(messages: Vec<String>) -> Option<anyhow::Error> {
    let mut messages = messages.into_iter().rev();
    let innermost = anyhow::anyhow!(messages.next()?);
    Some(messages.fold(innermost, |error, outer| error.context(outer)))
}

/// Direct mode: applies and prints, and fails when the sync after the moves did.
async fn apply(
    project: &Project,
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    moves: Vec<Move>,
    current: &BTreeMap<FlowKey, Pointer>,
    how: &Apply,
    printer: Printer,
) -> Result<()> {
    let (result, sync_failure) = apply_moves(project, ledger, env, moves, current, how).await?;
    if let Some(err) = sync_failure {
        if !printer.json {
            print_moves(&result, printer)?;
        }
        return Err(err);
    }
    print_moves(&result, printer)
}

/// Checks the env's gates, refuses moves that cannot be deployed or would
/// write another project's deployment, records the moves, then syncs. A sync
/// that fails after the moves were recorded is returned beside the result.
pub async fn apply_moves(
    project: &Project,
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    moves: Vec<Move>,
    current: &BTreeMap<FlowKey, Pointer>,
    apply: &Apply,
) -> Result<(Moved, Option<anyhow::Error>)> {
    let (mut moves, unchanged) = if apply.changed_only {
        super::unchanged::keep_unchanged(ledger, env, moves, current).await?
    } else {
        (moves, Vec::new())
    };
    let now = chrono::Utc::now();
    let verdicts = gates::evaluate_moves(project, ledger, env, &mut moves, now, apply.verified.is_some()).await?;
    if !apply.dry_run {
        let policy = gates::policy_of(project, env);
        gates::enforce_and_notify(ledger, env, &policy, &verdicts, apply.override_reason.as_deref(), &mut moves)
            .await?;
    }
    for mv in &mut moves {
        mv.audit.verified = apply.verified.clone();
    }
    deploy::refuse_uncarried(ledger, env, &moves).await?;
    // Resolve the server (and its credentials) before moving, so a missing
    // variable is a usage error with nothing changed.
    let target = if apply.dry_run || apply.no_sync { None } else { Target::of(env)? };
    if let Some(target) = &target {
        deploy::refuse_foreign(project, ledger, target, &moves).await?;
    }
    let views: Vec<MoveView> = if apply.dry_run {
        moves.iter().map(|m| planned_view(m, current)).collect()
    } else if moves.is_empty() {
        Vec::new()
    } else {
        ledger.apply(&moves).await?.iter().map(applied_view).collect()
    };
    let mut result =
        Moved { dry_run: apply.dry_run, moves: views, gates: verdicts, sync: None, sync_error: Vec::new(), unchanged };
    let Some(target) = &target else { return Ok((result, None)) };
    let options = SyncOptions { prune: false, create_work_pools: apply.create_work_pools };
    match deploy::sync(project, ledger, target, &options).await {
        Ok((_, report)) => {
            result.sync = Some(super::sync::view(&env.config_name, report, target.client.write_count()));
            Ok((result, None))
        }
        Err(err) => {
            let recorded = if result.moves.is_empty() { "Nothing moved" } else { "The move is recorded in the ledger" };
            let err = err.context(format!(
                "{recorded}, but syncing env `{0}` to Prefect failed; `flowgate sync --env {0}` will converge",
                env.config_name
            ));
            Ok((result, Some(err)))
        }
    }
}

fn print_moves(result: &Moved, printer: Printer) -> Result<()> {
    printer.result(result, |out| {
        render_moves(out, result);
        if let Some(sync) = &result.sync {
            super::sync::render(out, sync);
        }
    })
}

/// The moves' text, as `release`, `promote` and `rollback` print it (the dashboard shows the same).
pub fn render_moves(out: &mut String, result: &Moved) {
    if result.dry_run && !result.gates.is_empty() {
        gates::render(out, &result.gates);
    }
    for m in result.moves.iter().filter(|m| m.override_reason.is_some()) {
        out.push_str(&format!(
            "GATES OVERRIDDEN for {} in {}: {}\n",
            m.flow,
            m.env,
            m.override_reason.as_deref().unwrap_or_default()
        ));
    }
    super::unchanged::render_unchanged(out, &result.unchanged);
    {
        if result.moves.is_empty() {
            let why = if result.unchanged.is_empty() {
                "every selected flow already runs that build"
            } else {
                "every selected flow already runs that build, or its code, settings and image"
            };
            out.push_str(&format!("Nothing to move: {why}.\n"));
            return;
        }
        if result.dry_run {
            out.push_str("Dry run; nothing changed. Would move:\n");
        }
        let rows: Vec<Vec<String>> = result
            .moves
            .iter()
            .map(|m| {
                vec![
                    m.flow.to_string(),
                    m.env.to_string(),
                    format!("r{}", m.revision),
                    m.previous_build.clone().unwrap_or_else(|| "-".into()),
                    m.build.clone(),
                    m.kind.to_string(),
                ]
            })
            .collect();
        table(out, &["FLOW", "ENV", "REVISION", "FROM", "TO", "KIND"], &rows);
    }
}

fn planned_view(m: &Move, current: &BTreeMap<FlowKey, Pointer>) -> MoveView {
    MoveView {
        flow: m.flow.clone(),
        env: m.env.clone(),
        revision: m.next_revision(),
        build: m.build.to_string(),
        previous_build: current.get(&m.flow).map(|p| p.build.to_string()),
        kind: m.kind.label().to_string(),
        override_reason: m.audit.override_reason.clone(),
    }
}

fn applied_view(r: &Release) -> MoveView {
    MoveView {
        flow: r.flow.clone(),
        env: r.env.clone(),
        revision: r.revision,
        build: r.build.to_string(),
        previous_build: r.previous_build.as_ref().map(ToString::to_string),
        kind: r.kind.label().to_string(),
        override_reason: r.audit.override_reason.clone(),
    }
}
