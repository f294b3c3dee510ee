//! `flowgate history FLOW --env ENV`: every revision of one pointer, newest first.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::{MoveKind, Release};

use crate::cli::HistoryArgs;
use crate::printer::{age, table, Printer};
use crate::project::Project;

pub async fn run(project: &Project, args: HistoryArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let flow = project.flows(std::slice::from_ref(&args.flow))?.remove(0);
    let ledger = project.ledger().await?;
    let history: Vec<Release> = ledger.history(&flow, &env.ledger_name, args.limit).await?;
    let now = Utc::now();
    printer.result(&history, |out| {
        if history.is_empty() {
            out.push_str(&format!("`{flow}` has never been released in `{}`.\n", env.ledger_name));
            return;
        }
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|r| {
                let what = match &r.kind {
                    MoveKind::Release => "release".to_string(),
                    MoveKind::Promote { from } => format!("promote from {from}"),
                    MoveKind::Rollback { to_revision } => format!("rollback to r{to_revision}"),
                };
                vec![
                    format!("r{}", r.revision),
                    r.build.to_string(),
                    what,
                    r.actor.clone(),
                    age(r.created_at, now),
                    r.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(out, &["REVISION", "BUILD", "MOVE", "ACTOR", "AGE", "REASON"], &rows);
    })
}
