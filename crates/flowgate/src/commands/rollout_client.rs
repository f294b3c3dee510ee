//! `flowgate rollout` with `FLOWGATE_SERVER`: the server plans, records and
//! drives the rollout (its replicas take turns through a lease); the CLI asks
//! it to start or abort one and follows it by long polling. `advance` is the
//! server's job there, and is refused.

use anyhow::Result;
use serde_json::json;

use super::rollout_drive::{self, Step};
use super::rollout_start::{announce, Planned};
use super::rollout_view::{self, RolloutView};
use crate::cli::{RolloutCommand, RolloutStartArgs};
use crate::client::{server_build_ref, ServerClient};
use crate::exit::usage;
use crate::printer::Printer;
use crate::project::Project;

/// How long one poll may wait on the server for the rollout to change.
const POLL_WAIT_SECS: u64 = 20;

pub async fn run(server: &ServerClient, project: &Project, command: RolloutCommand, printer: Printer) -> Result<()> {
    let at = |env: Option<&str>| -> Result<String> {
        let env = project.select_env(env)?;
        Ok(format!("/projects/{}/envs/{}", project.config.project_name(), env.ledger_name))
    };
    match command {
        RolloutCommand::Start(args) => start(server, project, args, printer).await,
        RolloutCommand::Status(args) => {
            let view: RolloutView = server.get(&format!("{}/rollout", at(args.env.env.as_deref())?)).await?;
            print_view(&view, printer)
        }
        RolloutCommand::Abort(args) => {
            let path = format!("{}/rollout/abort", at(args.env.env.as_deref())?);
            let view: RolloutView = server.post(&path, &json!({ "reason": args.reason })).await?;
            print_view(&view, printer)
        }
        RolloutCommand::Advance(args) => Err(usage(format!(
            "The flowgate server at `{}` drives the rollouts of `{}`; follow one with `flowgate rollout watch`",
            server.server,
            project.select_env(args.env.env.as_deref())?.config_name
        ))),
        RolloutCommand::Watch(args) => watch(server, &at(args.env.env.as_deref())?, None, printer).await,
    }
}

async fn start(server: &ServerClient, project: &Project, args: RolloutStartArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(Some(&args.to))?;
    let flows = project.flows(&args.flows)?;
    let build = args.build.as_deref().map(|b| server_build_ref(project, b)).transpose()?;
    let from = args.from.as_deref().map(|f| project.named_env(f)).transpose()?;
    let body = json!({
        "build": build,
        "from": from,
        "flows": flows,
        "reason": args.reason,
        "override_gates": args.override_gates,
        "dry_run": args.dry_run,
        "force": args.force,
    });
    let at = format!("/projects/{}/envs/{}", project.config.project_name(), env.ledger_name);
    let planned: Planned = server.post(&format!("{at}/rollouts"), &body).await?;
    let hint = format!("the server drives it; follow it with `flowgate rollout watch --env {}`", env.config_name);
    let Some(record) = announce(printer, &env, &planned, args.detach.then_some(hint.as_str()))? else {
        return Ok(());
    };
    watch(server, &at, Some(&record.id), printer).await
}

/// Follows the env's rollout (`id`, else the active or latest one) until it
/// ends, printing each change of where it stands; ends as direct mode's
/// `watch` does (a failed or aborted rollout is exit 1).
async fn watch(server: &ServerClient, at: &str, id: Option<&str>, printer: Printer) -> Result<()> {
    let mut view: RolloutView = server.get(&format!("{at}/rollout")).await?;
    if let Some(id) = id.filter(|id| *id != view.rollout.id) {
        return Err(usage(format!("rollout `{id}` is no longer the env's latest: `{}` is", view.rollout.id)));
    }
    let mut said = String::new();
    loop {
        let now = format!("Rollout {}: {}", view.rollout.id, rollout_view::phase_word(&view.body));
        if now != said {
            printer.note(&now);
            said = now;
        }
        if !view.rollout.status.is_active() {
            let step = Step::Finished(view.rollout.status);
            return rollout_drive::finish_step(&view.rollout, &step, printer);
        }
        let path = format!("{at}/rollout?id={}&after={}&wait={POLL_WAIT_SECS}", view.rollout.id, view.rollout.version);
        view = server.get(&path).await?;
    }
}

fn print_view(view: &RolloutView, printer: Printer) -> Result<()> {
    printer.result(view, |out| {
        rollout_view::render_status(out, &view.rollout, &view.body);
        if let Some(lease) = view.driver.as_ref().filter(|_| view.rollout.status.is_active()) {
            out.push_str(&format!(
                "Driven by server replica `{}` (lease until {})\n",
                lease.holder,
                lease.expires_at.format("%H:%M:%S UTC")
            ));
        }
    })
}
