//! `flowgate rollout start|status|advance|abort|watch`. `start` plans and
//! records the rollout (`rollout_start.rs`); in direct mode the driver in
//! `rollout_drive.rs` then moves it one ledger transition at a time, and with
//! `FLOWGATE_SERVER` the server drives it and the CLI follows
//! (`rollout_client.rs`).

use std::collections::BTreeMap;

use anyhow::Result;
use flowgate_core::rollout::Source;
use flowgate_core::{BuildId, FlowKey};
use flowgate_ledger::Ledger;

use super::rollout_client;
use super::rollout_drive::{self, Driver};
use super::rollout_start::{announce, plan_start, StartAsk};
use super::rollout_view;
use crate::cli::{RolloutAbortArgs, RolloutArgs, RolloutCommand, RolloutStartArgs};
use crate::client::ServerClient;
use crate::exit::usage;
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::{actor, Project};
use crate::refs::resolve_build;

pub async fn run(project: &Project, command: RolloutCommand, printer: Printer) -> Result<()> {
    if let Some(server) = ServerClient::from_env().await? {
        return rollout_client::run(&server, project, command, printer).await;
    }
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

async fn start(project: &Project, args: RolloutStartArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(Some(&args.to))?;
    let ledger = project.ledger().await?;
    let (source, targets) = targets(project, ledger.as_ref(), &args).await?;
    let ask = StartAsk {
        source,
        targets,
        reason: args.reason.clone(),
        override_gates: args.override_gates,
        dry_run: args.dry_run,
        changed_only: args.flows.is_empty() && !args.force,
        actor: actor(&project.root),
        verified: None,
    };
    let planned = plan_start(project, ledger.as_ref(), &env, ask).await?;
    let hint = format!("drive it with `flowgate rollout watch --env {}`", env.config_name);
    let Some(record) = announce(printer, &env, &planned, args.detach.then_some(hint.as_str()))? else {
        return Ok(());
    };
    drop(ledger);
    let driver = Driver::open(project, Some(&args.to), printer).await?;
    driver.watch(record, args.interval).await
}

/// The build each flow is to run, from `--from ENV` or `--build`.
pub(super) async fn targets(
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
