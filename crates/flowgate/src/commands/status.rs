//! `flowgate status`: the flows × envs matrix of what runs where, and for envs
//! with a Prefect server whether each cell's revision has been synced there and
//! whether the server still has it (drift: a deployment edited by hand).

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Utc;
use flowgate_config::PERSONAL_ENV;
use flowgate_core::{Build, BuildId, EnvName, FlowKey, Revision, StatusMatrix};
use flowgate_ledger::Ledger;
use flowgate_prefect::Action;
use serde::Serialize;
use serde_json::{json, Value};

use super::deploy::{self, Target};
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
    /// Envs with a Prefect server only: `pending sync` when the pointer's
    /// revision is newer than the one last synced (`flowgate sync` converges);
    /// else what the server has: `synced`, `drift` (it differs from what the
    /// ledger wants, see `drift`), or `unknown` (the server could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<&'static str>,
    /// The fields that differ, when `sync` is `drift`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    drift: Vec<Drift>,
}

/// One field of a synced deployment the server has other than the ledger wants.
#[derive(Serialize, Clone)]
struct Drift {
    field: &'static str,
    /// What the server has.
    server: Value,
    /// What the ledger wants (what `flowgate sync` would set).
    ledger: Value,
}

/// Per env with a server: the drift of each flow, or `None` when unreadable.
type ServerViews = BTreeMap<EnvName, Option<BTreeMap<FlowKey, Vec<Drift>>>>;

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
    let views = server_views(project, ledger.as_ref(), &pointers, &synced, printer).await?;
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
                        cell.as_ref().map(|p| {
                            let (sync, drift) = match synced.get(&p.env) {
                                None => (None, Vec::new()),
                                Some(done) if !is_synced(done, &p.flow, p.revision) => {
                                    (Some("pending sync"), Vec::new())
                                }
                                Some(_) => match views.get(&p.env) {
                                    Some(None) => (Some("unknown"), Vec::new()),
                                    Some(Some(drifts)) => match drifts.get(&p.flow) {
                                        Some(fields) if !fields.is_empty() => (Some("drift"), fields.clone()),
                                        _ => (Some("synced"), Vec::new()),
                                    },
                                    None => (Some("synced"), Vec::new()),
                                },
                            };
                            Cell {
                                build: p.build.clone(),
                                revision: p.revision,
                                commit: builds.get(&p.build).map(|b| b.short_commit().to_string()),
                                updated_at: p.updated_at,
                                sync,
                                drift,
                            }
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
                        match c.sync {
                            Some("drift") =>
                                format!(" (drift: {})", c.drift.iter().map(|d| d.field).collect::<Vec<_>>().join(", ")),
                            Some(state @ ("pending sync" | "unknown")) => format!(" ({state})"),
                            _ => String::new(),
                        }
                    ),
                }));
                row
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        table(out, &header, &rows);
    })
}

fn is_synced(done: &[(FlowKey, Revision)], flow: &FlowKey, revision: Revision) -> bool {
    done.iter().any(|(f, r)| f == flow && *r >= revision)
}

/// For each env with a server and at least one synced cell (ledger-only envs and
/// envs with only pending cells cost no server call): the plan `flowgate sync`
/// would make, read as drift. A server that cannot be read is a note on stderr
/// and `unknown` cells, never a failed status.
async fn server_views(
    project: &Project,
    ledger: &dyn Ledger,
    pointers: &[flowgate_core::Pointer],
    synced: &BTreeMap<EnvName, Vec<(FlowKey, Revision)>>,
    printer: Printer,
) -> Result<ServerViews> {
    let mut views = ServerViews::new();
    for (env, done) in synced {
        if !pointers.iter().any(|p| p.env == *env && is_synced(done, &p.flow, p.revision)) {
            continue;
        }
        let selected = project.select_env(Some(env.as_str()))?;
        let view = match Target::of(&selected) {
            Ok(None) => continue,
            Ok(Some(target)) => drift_of(project, ledger, &target).await,
            Err(e) => Err(e),
        };
        views.insert(
            env.clone(),
            match view {
                Ok(drifts) => Some(drifts),
                Err(e) => {
                    printer.note(format!(
                        "Could not compare env `{env}` with its Prefect server, so its cells show `unknown`: {e:#}"
                    ));
                    None
                }
            },
        );
    }
    Ok(views)
}

/// What sync would change on each flow's deployment, as drift. Whether a cell
/// drifted or is merely pending is decided by the ledger's sync state.
async fn drift_of(project: &Project, ledger: &dyn Ledger, target: &Target) -> Result<BTreeMap<FlowKey, Vec<Drift>>> {
    let (plan, desired) = deploy::plan(project, ledger, target).await?;
    let mut out = BTreeMap::new();
    for ((flow, _), planned) in desired.revisions.into_iter().zip(plan.deployments) {
        let name = planned.desired.name.clone();
        let drift = match planned.action {
            Action::Unchanged { .. } => Vec::new(),
            Action::Update { changes, .. } | Action::Adopt { changes, .. } => {
                changes.into_iter().map(|c| Drift { field: c.field, server: c.old, ledger: c.new }).collect()
            }
            Action::Create => vec![Drift { field: "deployment", server: Value::Null, ledger: json!(name) }],
            Action::Foreign { owner, .. } => {
                vec![Drift { field: "deployment", server: json!(format!("owned by {owner}")), ledger: json!(name) }]
            }
        };
        out.insert(flow, drift);
    }
    Ok(out)
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
