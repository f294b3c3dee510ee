//! `release`, `promote` and `rollback`: each plans pointer moves with the pure
//! rules of flowgate-core, checks the target env's gates (releases and
//! promotions only), then applies the moves in one ledger transaction, then
//! (unless `--no-sync`, or the env is ledger-only) syncs the env's Prefect server.
//! A failed sync leaves the move recorded: the ledger is the desired state.

use std::collections::BTreeMap;

use anyhow::Result;
use flowgate_config::SelectedEnv;
use flowgate_core::moves::Intent;
use flowgate_core::{plan_promote, plan_release, plan_rollback, EnvName, FlowKey, Move, Pointer, Release};
use flowgate_ledger::Ledger;
use flowgate_prefect::SyncOptions;
use serde::Serialize;

use super::deploy::{self, Target};
use super::gates::{self, FlowVerdict};

use crate::cli::{MoveArgs, PromoteArgs, ReleaseArgs, RollbackArgs};
use crate::git::Repo;
use crate::printer::{table, Printer};
use crate::project::{actor, Project};
use crate::refs::resolve_build;

#[derive(Serialize)]
struct Moved {
    dry_run: bool,
    /// What was applied (or, with --dry-run, what would be).
    moves: Vec<MoveView>,
    /// The gates evaluated per move (empty when the env has no policy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gates: Vec<FlowVerdict>,
    /// What the sync after the move did; absent when it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<super::sync::SyncView>,
}

#[derive(Serialize)]
struct MoveView {
    flow: FlowKey,
    env: EnvName,
    revision: i64,
    build: String,
    previous_build: Option<String>,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    override_reason: Option<String>,
}

pub async fn release(project: &Project, args: ReleaseArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let flows = if args.all { project.all_flows() } else { project.flows(&args.flows)? };
    let ledger = project.ledger().await?;
    let repo = Repo::discover(&project.root).ok();
    let build = resolve_build(ledger.as_ref(), repo.as_ref(), &args.build).await?;
    let current = pointers_by_flow(ledger.as_ref(), &env.ledger_name).await?;
    let moves = plan_release(&flows, &env.ledger_name, &build.id, &current, &intent(project, &args.moves));
    apply(project, ledger.as_ref(), &env, moves, &current, &args.moves, printer).await
}

pub async fn promote(project: &Project, args: PromoteArgs, printer: Printer) -> Result<()> {
    let from = project.named_env(&args.from)?;
    let to_env = project.select_env(Some(&args.to))?;
    let flows = project.flows(&args.flows)?;
    let ledger = project.ledger().await?;
    let source = pointers_by_flow(ledger.as_ref(), &from).await?;
    let target = pointers_by_flow(ledger.as_ref(), &to_env.ledger_name).await?;
    let moves = plan_promote(&flows, &from, &to_env.ledger_name, &source, &target, &intent(project, &args.moves))?;
    apply(project, ledger.as_ref(), &to_env, moves, &target, &args.moves, printer).await
}

pub async fn rollback(project: &Project, args: RollbackArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let flows = project.flows(&args.flows)?;
    let ledger = project.ledger().await?;
    let intent = intent(project, &args.moves);
    let mut moves = Vec::new();
    for flow in &flows {
        let history = ledger.history(flow, &env.ledger_name, None).await?;
        moves.push(plan_rollback(flow, &env.ledger_name, &history, args.to, &intent)?);
    }
    let current = pointers_by_flow(ledger.as_ref(), &env.ledger_name).await?;
    apply(project, ledger.as_ref(), &env, moves, &current, &args.moves, printer).await
}

fn intent(project: &Project, args: &MoveArgs) -> Intent {
    Intent { actor: actor(&project.root), reason: args.reason.clone() }
}

async fn pointers_by_flow(ledger: &dyn Ledger, env: &EnvName) -> Result<BTreeMap<FlowKey, Pointer>> {
    Ok(ledger.pointers(Some(env)).await?.into_iter().map(|p| (p.flow.clone(), p)).collect())
}

async fn apply(
    project: &Project,
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    mut moves: Vec<Move>,
    current: &BTreeMap<FlowKey, Pointer>,
    args: &MoveArgs,
    printer: Printer,
) -> Result<()> {
    let verdicts = gates::evaluate_moves(project, ledger, env, &mut moves, chrono::Utc::now()).await?;
    if !args.dry_run {
        let policy = gates::policy_of(project, env);
        gates::enforce(env, &policy, &verdicts, args.override_reason(), &mut moves)?;
    }
    deploy::refuse_uncarried(ledger, env, &moves).await?;
    // Resolve the server (and its credentials) before moving, so a missing
    // variable is a usage error with nothing changed.
    let target = if args.dry_run || args.no_sync { None } else { Target::of(env)? };
    if let Some(target) = &target {
        deploy::refuse_foreign(project, ledger, target, &moves).await?;
    }
    let views: Vec<MoveView> = if args.dry_run {
        moves.iter().map(|m| planned_view(m, current)).collect()
    } else if moves.is_empty() {
        Vec::new()
    } else {
        ledger.apply(&moves).await?.iter().map(applied_view).collect()
    };
    let mut result = Moved { dry_run: args.dry_run, moves: views, gates: verdicts, sync: None };
    if let Some(target) = &target {
        let options = SyncOptions { prune: false, create_work_pools: args.create_work_pools };
        match deploy::sync(project, ledger, target, &options).await {
            Ok((_, report)) => {
                result.sync = Some(super::sync::view(&env.config_name, report, target.client.write_count()));
            }
            Err(err) => {
                if !printer.json {
                    print_moves(&result, printer)?;
                }
                let recorded =
                    if result.moves.is_empty() { "Nothing moved" } else { "The move is recorded in the ledger" };
                return Err(err.context(format!(
                    "{recorded}, but syncing env `{0}` to Prefect failed; `flowgate sync --env {0}` will converge",
                    env.config_name
                )));
            }
        }
    }
    print_moves(&result, printer)
}

fn print_moves(result: &Moved, printer: Printer) -> Result<()> {
    printer.result(result, |out| {
        render_moves(out, result);
        if let Some(sync) = &result.sync {
            super::sync::render(out, sync);
        }
    })
}

fn render_moves(out: &mut String, result: &Moved) {
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
    {
        if result.moves.is_empty() {
            out.push_str("Nothing to move: every selected flow already runs that build.\n");
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
        kind: m.kind.label(),
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
        kind: r.kind.label(),
        override_reason: r.audit.override_reason.clone(),
    }
}
