//! `flowgate approve BUILD --env ENV [FLOW...] --reason TEXT`: records who
//! approved which build for which env (and flows), for the `approval` gate.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::{Approval, FlowKey};
use serde::Serialize;

use crate::cli::ApproveArgs;
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::{actor, Project};
use crate::refs::resolve_build;

#[derive(Serialize)]
struct Approved {
    build: String,
    env: String,
    /// Empty: every flow.
    flows: Vec<FlowKey>,
    actor: String,
    reason: String,
    /// False when this actor had already approved it (the first approval is kept).
    recorded: bool,
}

pub async fn run(project: &Project, args: ApproveArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let flows = if args.flows.is_empty() { Vec::new() } else { project.flows(&args.flows)? };
    let ledger = project.ledger().await?;
    let repo = Repo::discover(&project.root).ok();
    let build = resolve_build(ledger.as_ref(), repo.as_ref(), &args.build).await?;
    let who = actor(&project.root);
    let scopes: Vec<Option<FlowKey>> =
        if flows.is_empty() { vec![None] } else { flows.iter().cloned().map(Some).collect() };
    let mut recorded = false;
    for flow in scopes {
        let approval = Approval {
            env: env.ledger_name.clone(),
            build: build.id.clone(),
            flow,
            actor: who.clone(),
            reason: args.reason.clone(),
            created_at: Utc::now(),
        };
        recorded |= ledger.record_approval(&approval).await?;
    }
    let result = Approved {
        build: build.id.to_string(),
        env: env.ledger_name.to_string(),
        flows,
        actor: who,
        reason: args.reason,
        recorded,
    };
    printer.result(&result, |out| {
        let scope = if result.flows.is_empty() {
            "every flow".to_string()
        } else {
            result.flows.iter().map(FlowKey::as_str).collect::<Vec<_>>().join(", ")
        };
        let verb = if result.recorded { "approved" } else { "had already approved" };
        out.push_str(&format!(
            "{} {verb} build {} for `{}` ({scope}): {}\n",
            result.actor, result.build, result.env, result.reason
        ));
    })
}
