//! `flowgate pin BUILD --reason TEXT`, `flowgate pin --remove BUILD` and
//! `flowgate pins`: builds `flowgate gc` must keep whatever its flags say
//! (an audit, a known-good baseline), with who pinned them and why.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::BuildId;
use flowgate_ledger::Pin;
use serde::Serialize;

use crate::cli::PinArgs;
use crate::exit::usage;
use crate::git::Repo;
use crate::printer::{age, table, Printer};
use crate::project::{actor, Project};
use crate::refs::resolve_build;

#[derive(Serialize)]
struct Pinned {
    build: BuildId,
    /// Whether the build is pinned now.
    pinned: bool,
    /// False when nothing changed: already pinned (the first pin is kept), or not pinned to remove.
    changed: bool,
    /// The pin in force, when pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pin: Option<Pin>,
}

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    pin: Pin,
    commit: Option<String>,
}

pub async fn pin(project: &Project, args: PinArgs, printer: Printer) -> Result<()> {
    let ledger = project.ledger().await?;
    let repo = Repo::discover(&project.root).ok();
    let build = resolve_build(ledger.as_ref(), repo.as_ref(), &args.build).await?;
    let result = match (args.remove, args.reason) {
        (true, _) => {
            let changed = ledger.unpin(&build.id).await?;
            Pinned { build: build.id, pinned: false, changed, pin: None }
        }
        (false, None) => return Err(usage(format!("Say why build `{}` must be kept: --reason TEXT", build.id))),
        (false, Some(reason)) => {
            let asked = Pin { build: build.id.clone(), actor: actor(&project.root), reason, created_at: Utc::now() };
            let changed = ledger.pin(&asked).await?;
            let pin =
                if changed { Some(asked) } else { ledger.pins().await?.into_iter().find(|p| p.build == build.id) };
            Pinned { build: build.id, pinned: true, changed, pin }
        }
    };
    printer.result(&result, |out| {
        let line = match (&result.pin, result.changed) {
            (Some(p), true) => format!("Pinned build {}: {}", result.build, p.reason),
            (Some(p), false) => {
                format!("Build {} is already pinned by {}: {}; nothing changed", result.build, p.actor, p.reason)
            }
            (None, true) => format!("Unpinned build {}", result.build),
            (None, false) => format!("Build {} was not pinned; nothing changed", result.build),
        };
        out.push_str(&line);
        out.push('\n');
    })
}

pub async fn list(project: &Project, printer: Printer) -> Result<()> {
    let ledger = project.ledger().await?;
    let mut listed = Vec::new();
    for pin in ledger.pins().await? {
        let commit = ledger.build(&pin.build).await?.map(|b| b.short_commit().to_string());
        listed.push(Listed { pin, commit });
    }
    let now = Utc::now();
    printer.result(&listed, |out| {
        if listed.is_empty() {
            out.push_str("No build is pinned.\n");
            return;
        }
        let rows: Vec<Vec<String>> = listed
            .iter()
            .map(|l| {
                vec![
                    l.pin.build.to_string(),
                    l.commit.clone().unwrap_or_else(|| "-".into()),
                    l.pin.actor.clone(),
                    age(l.pin.created_at, now),
                    l.pin.reason.clone(),
                ]
            })
            .collect();
        table(out, &["BUILD", "COMMIT", "PINNED BY", "AGE", "REASON"], &rows);
    })
}
