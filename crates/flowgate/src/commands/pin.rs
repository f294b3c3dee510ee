//! `flowgate pin BUILD --reason TEXT`, `flowgate pin --remove BUILD` and
//! `flowgate pins`: builds `flowgate gc` must keep whatever its flags say
//! (an audit, a known-good baseline), with who pinned them and why.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::{BuildId, Verified};
use flowgate_ledger::{Ledger, Pin};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::cli::PinArgs;
use crate::client::{server_build_ref, ServerClient};
use crate::exit::usage;
use crate::git::Repo;
use crate::printer::{age, table, Printer};
use crate::project::{actor, Project};
use crate::refs::resolve_build;

/// What `flowgate pin --json` prints, and the server answers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Pinned {
    pub build: BuildId,
    /// Whether the build is pinned now.
    pub pinned: bool,
    /// False when nothing changed: already pinned (the first pin is kept), or not pinned to remove.
    pub changed: bool,
    /// The pin in force, when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
}

/// One entry of `flowgate pins --json`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Listed {
    #[serde(flatten)]
    pub pin: Pin,
    /// The build's commit, short; None when the ledger lost the build.
    pub commit: Option<String>,
}

/// What `flowgate pin` was asked: keep a build, saying why, or let gc have it again.
enum Asked {
    Pin { reason: String },
    Unpin,
}

async fn pin_directly(project: &Project, build: &str, asked: Asked) -> Result<Pinned> {
    let ledger = project.ledger().await?;
    let repo = Repo::discover(&project.root).ok();
    let build = resolve_build(ledger.as_ref(), repo.as_ref(), build).await?;
    Ok(match asked {
        Asked::Unpin => {
            let changed = ledger.unpin(&build.id).await?;
            Pinned { build: build.id, pinned: false, changed, pin: None }
        }
        Asked::Pin { reason } => {
            let asked = Pin {
                build: build.id.clone(),
                actor: actor(&project.root),
                reason,
                created_at: Utc::now(),
                verified: None,
            };
            let changed = ledger.pin(&asked).await?;
            let pin =
                if changed { Some(asked) } else { ledger.pins().await?.into_iter().find(|p| p.build == build.id) };
            Pinned { build: build.id, pinned: true, changed, pin }
        }
    })
}

async fn pin_through(server: &ServerClient, project: &Project, build: &str, asked: Asked) -> Result<Pinned> {
    let build = server_build_ref(project, build)?;
    let pins = format!("/projects/{}/pins", project.config.project_name());
    match asked {
        Asked::Unpin => server.delete(&format!("{pins}/{build}")).await,
        Asked::Pin { reason } => server.post(&pins, &json!({ "build": build, "reason": reason })).await,
    }
}

pub async fn pin(project: &Project, args: PinArgs, printer: Printer) -> Result<()> {
    let asked = match (args.remove, args.reason) {
        (true, _) => Asked::Unpin,
        (false, Some(reason)) => Asked::Pin { reason },
        (false, None) => return Err(usage(format!("Say why build `{}` must be kept: --reason TEXT", args.build))),
    };
    let result = match ServerClient::from_env().await? {
        Some(server) => pin_through(&server, project, &args.build, asked).await?,
        None => pin_directly(project, &args.build, asked).await?,
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

/// Every pin of the ledger's project, with its build's commit.
pub async fn listed(ledger: &dyn Ledger) -> Result<Vec<Listed>> {
    let mut listed = Vec::new();
    for pin in ledger.pins().await? {
        let commit = ledger.build(&pin.build).await?.map(|b| b.short_commit().to_string());
        listed.push(Listed { pin, commit });
    }
    Ok(listed)
}

pub async fn list(project: &Project, printer: Printer) -> Result<()> {
    let listed = match ServerClient::from_env().await? {
        Some(server) => server.get(&format!("/projects/{}/pins", project.config.project_name())).await?,
        None => listed(project.ledger().await?.as_ref()).await?,
    };
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
                    l.pin.verified.as_ref().map_or_else(|| l.pin.actor.clone(), Verified::label),
                    age(l.pin.created_at, now),
                    l.pin.reason.clone(),
                ]
            })
            .collect();
        table(out, &["BUILD", "COMMIT", "PINNED BY", "AGE", "REASON"], &rows);
    })
}
