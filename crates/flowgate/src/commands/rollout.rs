//! `flowgate rollout start|status|advance|abort|watch`. `start` plans the waves
//! from the env's `rollout` config, checks every flow's gates up front (exit 3
//! with every failed gate, nothing recorded) and records the rollout; the
//! driver in `rollout_drive.rs` then moves it one ledger transition at a time.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use chrono::Utc;
use flowgate_config::SelectedEnv;
use flowgate_core::rollout::{Phase, RolloutBody, Source, VerifyPlan, Wave, WaveFlow};
use flowgate_core::{BuildId, FlowKey, Move, MoveKind, Pointer};
use flowgate_ledger::{Ledger, RolloutRecord, RolloutStatus};
use serde::Serialize;

use super::gates::{self, FlowVerdict};
use super::rollout_drive::{self, Driver};
use super::rollout_view;
use crate::cli::{RolloutAbortArgs, RolloutArgs, RolloutCommand, RolloutStartArgs};
use crate::exit::usage;
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::{actor, Project};
use crate::refs::resolve_build;

pub async fn run(project: &Project, command: RolloutCommand, printer: Printer) -> Result<()> {
    match command {
        RolloutCommand::Start(args) => start(project, args, printer).await,
        RolloutCommand::Status(args) => status(project, args, printer).await,
        RolloutCommand::Advance(args) => {
            let driver = Driver::open(project, args.env.env.as_deref(), printer).await?;
            let record = driver.active().await?;
            let (record, step) = driver.step(record).await?;
            rollout_drive::finish_step(&record, &step, printer)
        }
        RolloutCommand::Abort(args) => abort(project, args, printer).await,
        RolloutCommand::Watch(args) => {
            let driver = Driver::open(project, args.env.env.as_deref(), printer).await?;
            let record = driver.active_or_latest().await?;
            driver.watch(record, args.interval).await
        }
    }
}

#[derive(Serialize)]
struct Planned<'a> {
    dry_run: bool,
    rollout: Option<&'a RolloutRecord>,
    body: &'a RolloutBody,
    gates: &'a [FlowVerdict],
    /// Flows of the source that no wave's globs match: not part of the rollout.
    left_out: &'a [FlowKey],
}

async fn start(project: &Project, args: RolloutStartArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(Some(&args.to))?;
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
    let ledger = project.ledger().await?;
    let (source, targets) = targets(project, ledger.as_ref(), &args).await?;
    let current: BTreeMap<FlowKey, Pointer> =
        ledger.pointers(Some(&env.ledger_name)).await?.into_iter().map(|p| (p.flow.clone(), p)).collect();
    let changing: Vec<FlowKey> =
        targets.keys().filter(|f| current.get(*f).is_none_or(|p| p.build != targets[*f])).cloned().collect();
    let waves = match &env_config.rollout {
        Some(plan) => plan.expand(&changing),
        None if changing.is_empty() => Vec::new(),
        None => vec![changing.clone()],
    };
    let left_out: Vec<FlowKey> =
        changing.iter().filter(|f| !waves.iter().flatten().any(|w| w == *f)).cloned().collect();
    let who = actor(&project.root);
    let kind = match &source {
        Source::Env(from) => MoveKind::Promote { from: from.clone() },
        Source::Build(_) => MoveKind::Release,
    };
    // The moves the waves will make, to evaluate their gates now.
    let mut moves: Vec<Move> = waves
        .iter()
        .flatten()
        .map(|flow| {
            let expected = current.get(flow).map(|p| p.revision);
            Move::new(flow, &env.ledger_name, expected, &targets[flow], kind.clone(), &who, args.reason.as_deref())
        })
        .collect();
    let verdicts = gates::evaluate_moves(project, ledger.as_ref(), &env, &mut moves, Utc::now(), false).await?;
    let override_reason = args.override_gates.then(|| args.reason.clone()).flatten();
    if !args.dry_run {
        let policy = gates::policy_of(project, &env);
        gates::enforce(&env, &policy, &verdicts, override_reason.as_deref(), &mut moves)?;
    }
    let gates_of = |flow: &FlowKey| moves.iter().find(|m| &m.flow == flow).map(|m| m.audit.gates.clone());
    let body = RolloutBody {
        source,
        reason: args.reason.clone(),
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
    };
    if args.dry_run || body.waves.is_empty() {
        let planned =
            Planned { dry_run: args.dry_run, rollout: None, body: &body, gates: &verdicts, left_out: &left_out };
        return printer.result(&planned, |out| {
            if body.waves.is_empty() {
                out.push_str(&format!("Nothing to roll out: `{}` already runs those builds.\n", env.config_name));
                return;
            }
            out.push_str("Dry run; nothing changed.\n");
            gates::render(out, &verdicts);
            rollout_view::render_waves(out, &body);
            rollout_view::render_left_out(out, &left_out);
        });
    }
    let record = RolloutRecord {
        id: new_id(&env),
        env: env.ledger_name.clone(),
        status: RolloutStatus::Running,
        version: 1,
        actor: who,
        body: serde_json::to_value(&body).context("encode the rollout")?,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let record = ledger.start_rollout(&record).await?;
    if !printer.json {
        let mut out = format!("Started rollout {} into `{}`:\n", record.id, env.config_name);
        rollout_view::render_waves(&mut out, &body);
        rollout_view::render_left_out(&mut out, &left_out);
        printer.note(out.trim_end());
    }
    if args.detach {
        let planned =
            Planned { dry_run: false, rollout: Some(&record), body: &body, gates: &verdicts, left_out: &left_out };
        return printer.result(&planned, |out| {
            out.push_str(&format!("Detached; drive it with `flowgate rollout watch --env {}`.\n", env.config_name));
        });
    }
    drop(ledger);
    let driver = Driver::open(project, Some(&args.to), printer).await?;
    driver.watch(record, args.interval).await
}

/// The build each flow is to run, from `--from ENV` or `--build`.
async fn targets(
    project: &Project,
    ledger: &dyn Ledger,
    args: &RolloutStartArgs,
) -> Result<(Source, BTreeMap<FlowKey, BuildId>)> {
    let named = if args.flows.is_empty() { None } else { Some(project.flows(&args.flows)?) };
    if let Some(from) = &args.from {
        let from = project.named_env(from)?;
        let pointers = ledger.pointers(Some(&from)).await?;
        if pointers.is_empty() {
            return Err(usage(format!("`{from}` has no releases to roll out")));
        }
        let mut out = BTreeMap::new();
        for p in pointers {
            if named.as_ref().is_none_or(|n| n.contains(&p.flow)) {
                out.insert(p.flow, p.build);
            }
        }
        if let Some(missing) = named.iter().flatten().find(|f| !out.contains_key(*f)) {
            return Err(usage(format!("flow `{missing}` has no release in `{from}` to roll out")));
        }
        return Ok((Source::Env(from), out));
    }
    let input = args.build.as_deref().expect("clap requires --from or --build");
    let repo = Repo::discover(&project.root).ok();
    let build = resolve_build(ledger, repo.as_ref(), input).await?;
    let flows = named.unwrap_or_else(|| project.all_flows());
    Ok((Source::Build(build.id.clone()), flows.into_iter().map(|f| (f, build.id.clone())).collect()))
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

async fn status(project: &Project, args: RolloutArgs, printer: Printer) -> Result<()> {
    let driver = Driver::open(project, args.env.env.as_deref(), printer).await?;
    let record = driver.active_or_latest().await?;
    let body = rollout_drive::body_of(&record)?;
    printer.result(&rollout_view::StatusView { rollout: &record, body: &body }, |out| {
        rollout_view::render_status(out, &record, &body);
    })
}

async fn abort(project: &Project, args: RolloutAbortArgs, printer: Printer) -> Result<()> {
    let driver = Driver::open(project, args.env.env.as_deref(), printer).await?;
    let record = driver.active().await?;
    let record = driver.abort(record, args.reason.as_deref()).await?;
    let body = rollout_drive::body_of(&record)?;
    printer.result(&rollout_view::StatusView { rollout: &record, body: &body }, |out| {
        rollout_view::render_status(out, &record, &body);
    })
}
