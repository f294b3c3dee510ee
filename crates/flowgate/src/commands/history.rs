//! `flowgate history FLOW --env ENV`: every revision of one pointer, newest
//! first, with the gates each move passed, overrides (shown loudly, below the
//! table) and the rollout it belonged to.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::{GateStatus, MoveKind, Release, Verified};

use crate::cli::HistoryArgs;
use crate::client::ServerClient;
use crate::printer::{age, table, Printer};
use crate::project::Project;

pub async fn run(project: &Project, args: HistoryArgs, printer: Printer) -> Result<()> {
    let env = project.history_env(args.env.env.as_deref())?;
    let flow = project.flows(std::slice::from_ref(&args.flow))?.remove(0);
    let history: Vec<Release> = match ServerClient::from_env().await? {
        Some(server) => {
            let limit = args.limit.map(|n| format!("&limit={n}")).unwrap_or_default();
            let name = project.config.project_name();
            server.get(&format!("/projects/{name}/history?flow={flow}&env={}{limit}", env)).await?
        }
        None => project.ledger().await?.history(&flow, &env, args.limit).await?,
    };
    let now = Utc::now();
    printer.result(&history, |out| {
        if history.is_empty() {
            out.push_str(&format!("`{flow}` has never been released in `{}`.\n", env));
            return;
        }
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|r| {
                vec![
                    format!("r{}", r.revision),
                    r.build.to_string(),
                    move_label(&r.kind),
                    // As a server verified the caller (`ci (token)`), else the name given.
                    r.audit.verified.as_ref().map_or_else(|| r.actor.clone(), Verified::label),
                    age(r.created_at, now),
                    gates_summary(r),
                    r.audit.rollout.clone().unwrap_or_else(|| "-".into()),
                    r.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(out, &["REVISION", "BUILD", "MOVE", "ACTOR", "AGE", "GATES", "ROLLOUT", "REASON"], &rows);
        for r in history.iter().filter(|r| !r.audit.gates.is_empty()) {
            out.push_str(&format!("\nr{} gates:\n", r.revision));
            if let Some(reason) = &r.audit.override_reason {
                out.push_str(&format!("  !! GATES OVERRIDDEN by {}: {reason}\n", r.actor));
            }
            for g in &r.audit.gates {
                out.push_str(&format!("  {:<8} {:<20} {}\n", super::gates::status_word(&g.status), g.gate, g.detail));
            }
        }
    })
}

/// `release`, `promote from qa` or `rollback to r3`.
pub(crate) fn move_label(kind: &MoveKind) -> String {
    match kind {
        MoveKind::Release => "release".to_string(),
        MoveKind::Promote { from } => format!("promote from {from}"),
        MoveKind::Rollback { to_revision } => format!("rollback to r{to_revision}"),
    }
}

/// `-` (no policy), `4 passed`, or `OVERRIDDEN (2 of 4 failed)`.
pub(crate) fn gates_summary(r: &Release) -> String {
    let total = r.audit.gates.len();
    if total == 0 {
        return "-".into();
    }
    let failed = r.audit.gates.iter().filter(|g| g.status != GateStatus::Pass).count();
    match (&r.audit.override_reason, failed) {
        (Some(_), _) => format!("OVERRIDDEN ({failed} of {total} failed)"),
        (None, 0) => format!("{total} passed"),
        (None, _) => format!("{} of {total} passed", total - failed),
    }
}
