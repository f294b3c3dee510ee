//! `flowgate status`: the flows × envs matrix of what runs where, and for envs
//! with a Prefect server whether each cell's revision has been synced there.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Utc;
use flowgate_config::PERSONAL_ENV;
use flowgate_core::{Build, BuildId, EnvName, FlowKey, Revision, StatusMatrix};
use flowgate_ledger::Ledger;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::printer::{age, table, Printer};
use crate::project::Project;

#[derive(Serialize)]
struct Status {
    envs: Vec<EnvName>,
    flows: Vec<FlowStatus>,
}

#[derive(Serialize)]
struct FlowStatus {
    flow: String,
    /// One entry per env, in the order of `envs`; null where never released.
    cells: Vec<Option<Cell>>,
}

#[derive(Serialize)]
struct Cell {
    build: BuildId,
    revision: i64,
    commit: Option<String>,
    updated_at: chrono::DateTime<Utc>,
    /// Envs with a Prefect server only: `synced`, or `pending sync` when the
    /// pointer's revision is newer than the one last synced (`flowgate sync` converges).
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<&'static str>,
}

pub async fn run(project: &Project, args: StatusArgs, printer: Printer) -> Result<()> {
    let mut envs = match &args.env {
        Some(name) => vec![project.named_env(name)?],
        None => configured_envs(project)?,
    };
    let ledger = project.ledger().await?;
    let pointers = match &args.env {
        Some(_) => ledger.pointers(Some(&envs[0])).await?,
        None => ledger.pointers(None).await?,
    };
    // The personal env is every command's default even when flowgate.toml does
    // not declare it: once this user has released there, show it.
    let personal = project.named_env(PERSONAL_ENV)?;
    if args.env.is_none() && !envs.contains(&personal) && pointers.iter().any(|p| p.env == personal) {
        envs.push(personal);
    }
    let matrix = StatusMatrix::new(&project.all_flows(), &envs, &pointers);
    let mut synced: BTreeMap<EnvName, Vec<(FlowKey, Revision)>> = BTreeMap::new();
    for env in &envs {
        if !project.select_env(Some(env.as_str()))?.is_ledger_only() {
            synced.insert(env.clone(), ledger.synced(env).await?);
        }
    }
    let builds =
        builds_of(ledger.as_ref(), matrix.rows.iter().flat_map(|r| r.cells.iter().flatten().map(|p| &p.build))).await?;
    let status = Status {
        envs: matrix.envs.clone(),
        flows: matrix
            .rows
            .iter()
            .map(|row| FlowStatus {
                flow: row.flow.to_string(),
                cells: row
                    .cells
                    .iter()
                    .map(|cell| {
                        cell.as_ref().map(|p| Cell {
                            build: p.build.clone(),
                            revision: p.revision,
                            commit: builds.get(&p.build).map(|b| b.short_commit().to_string()),
                            updated_at: p.updated_at,
                            sync: synced.get(&p.env).map(|done| {
                                if done.iter().any(|(f, r)| *f == p.flow && *r >= p.revision) {
                                    "synced"
                                } else {
                                    "pending sync"
                                }
                            }),
                        })
                    })
                    .collect(),
            })
            .collect(),
    };
    let now = Utc::now();
    printer.result(&status, |out| {
        let mut header = vec!["FLOW".to_string()];
        header.extend(status.envs.iter().map(|e| e.to_string().to_uppercase()));
        let rows: Vec<Vec<String>> = status
            .flows
            .iter()
            .map(|f| {
                let mut row = vec![f.flow.clone()];
                row.extend(f.cells.iter().map(|c| match c {
                    None => "-".to_string(),
                    Some(c) => format!(
                        "{} r{} {} {}{}",
                        &c.build.as_str()[..8],
                        c.revision,
                        c.commit.as_deref().unwrap_or("?"),
                        age(c.updated_at, now),
                        if c.sync == Some("pending sync") { " (pending sync)" } else { "" }
                    ),
                }));
                row
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        table(out, &header, &rows);
    })
}

/// The envs a status shows: every configured env, the personal one as this
/// user's `dev-<user>`.
fn configured_envs(project: &Project) -> Result<Vec<EnvName>> {
    let mut envs = Vec::new();
    for config in project.config.envs() {
        let env = project.named_env(config.name.as_str())?;
        if !envs.contains(&env) {
            envs.push(env);
        }
    }
    if envs.is_empty() {
        envs.push(project.select_env(None)?.ledger_name);
    }
    Ok(envs)
}

async fn builds_of<'a>(
    ledger: &dyn Ledger,
    ids: impl Iterator<Item = &'a BuildId>,
) -> Result<BTreeMap<BuildId, Build>> {
    let mut builds = BTreeMap::new();
    for id in ids {
        if !builds.contains_key(id) {
            if let Some(build) = ledger.build(id).await? {
                builds.insert(id.clone(), build);
            }
        }
    }
    Ok(builds)
}
