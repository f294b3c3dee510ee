//! `flowgate status`: the flows × envs matrix of what runs where, and for envs
//! with a Prefect server whether each cell's revision has been synced there and
//! whether the server still has it (drift: a deployment edited by hand).

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Utc;
use flowgate_config::{SelectedEnv, PERSONAL_ENV};
use flowgate_core::{Build, BuildId, EnvName, FlowKey, Revision, StatusMatrix};
use flowgate_ledger::Ledger;
use flowgate_prefect::Action;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::deploy::{self, Target};
use crate::cli::StatusArgs;
use crate::client::ServerClient;
use crate::printer::{age, table, Printer};
use crate::project::Project;

/// What `status --json` prints, and a server answers for it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub envs: Vec<EnvName>,
    pub flows: Vec<FlowStatus>,
    /// What could not be read (a Prefect server): printed on stderr, never in `--json`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct FlowStatus {
    pub flow: String,
    /// One entry per env, in the order of `envs`; null where never released.
    pub cells: Vec<Option<Cell>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Cell {
    #[schema(value_type = String)]
    pub build: BuildId,
    pub revision: i64,
    pub commit: Option<String>,
    pub updated_at: chrono::DateTime<Utc>,
    /// Envs with a Prefect server only: `pending sync` when the pointer's
    /// revision is newer than the one last synced (`flowgate sync` converges);
    /// else what the server has: `synced`, `drift` (it differs from what the
    /// ledger wants, see `drift`), or `unknown` (the server could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    /// The fields that differ, when `sync` is `drift`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    drift: Vec<Drift>,
}

/// One field of a synced deployment the server has other than the ledger wants.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
struct Drift {
    field: String,
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
    // The personal env is every command's default even when flowgate.toml does
    // not declare it: once this user has released there, show it.
    let personal = project.named_env(PERSONAL_ENV)?;
    let with_personal = args.env.is_none() && !envs.contains(&personal);
    let mut status = match ServerClient::from_env().await? {
        Some(server) => {
            let mut asked = envs.clone();
            if with_personal {
                asked.push(personal.clone());
            }
            let names: Vec<&str> = asked.iter().map(EnvName::as_str).collect();
            let path = format!("/projects/{}/matrix?envs={}", project.config.project_name(), names.join(","));
            let answer: Status = server.get(&path).await?;
            in_config_order(answer, &project.all_flows(), with_personal.then_some(&personal))
        }
        None => {
            let ledger = project.ledger().await?;
            if with_personal && !ledger.pointers(Some(&personal)).await?.is_empty() {
                envs.push(personal);
            }
            let placed = |env: &EnvName| project.select_env(Some(env.as_str())).map(Some);
            matrix(project, ledger.as_ref(), &project.all_flows(), &envs, placed).await?
        }
    };
    for note in std::mem::take(&mut status.notes) {
        printer.note(note);
    }
    let now = Utc::now();
    printer.result(&status, |out| render(out, &status, now))
}

/// A server's matrix (rows of the flows with a pointer in the envs asked) as
/// direct mode shows it: the configured flows first, in the config's order,
/// then the rest; the personal env only when something was released there.
fn in_config_order(mut answer: Status, flows: &[FlowKey], personal: Option<&EnvName>) -> Status {
    if let Some(index) = personal.and_then(|p| answer.envs.iter().position(|e| e == p)) {
        if answer.flows.iter().all(|f| f.cells[index].is_none()) {
            answer.envs.remove(index);
            answer.flows.iter_mut().for_each(|f| {
                f.cells.remove(index);
            });
            answer.flows.retain(|f| f.cells.iter().any(Option::is_some));
        }
    }
    let width = answer.envs.len();
    let mut rows: Vec<FlowStatus> = Vec::new();
    for flow in flows {
        let row = match answer.flows.iter().position(|f| f.flow == flow.as_str()) {
            Some(at) => answer.flows.remove(at),
            None => FlowStatus { flow: flow.to_string(), cells: (0..width).map(|_| None).collect() },
        };
        rows.push(row);
    }
    rows.append(&mut answer.flows);
    Status { envs: answer.envs, flows: rows, notes: answer.notes }
}

/// The flows × envs matrix: `flows` first, then any other flow with a
/// pointer in `envs`. `placed` gives an env's placement (`None`: no Prefect
/// server known here, so its cells carry no sync state); for each env with a
/// server, each cell's sync state and drift, read from that server.
pub async fn matrix(
    project: &Project,
    ledger: &dyn Ledger,
    flows: &[FlowKey],
    envs: &[EnvName],
    placed: impl Fn(&EnvName) -> Result<Option<SelectedEnv>>,
) -> Result<Status> {
    let pointers: Vec<flowgate_core::Pointer> = match envs {
        [one] => ledger.pointers(Some(one)).await?,
        _ => ledger.pointers(None).await?,
    };
    let matrix = StatusMatrix::new(flows, envs, &pointers);
    let mut placements = BTreeMap::new();
    let mut synced: BTreeMap<EnvName, Vec<(FlowKey, Revision)>> = BTreeMap::new();
    for env in envs {
        if let Some(selected) = placed(env)?.filter(|s| !s.is_ledger_only()) {
            synced.insert(env.clone(), ledger.synced(env).await?);
            placements.insert(env.clone(), selected);
        }
    }
    let mut notes = Vec::new();
    let views = server_views(project, ledger, &pointers, &synced, &placements, &mut notes).await;
    notify_drift(ledger, &pointers, &synced, &views).await;
    // Gathered before the reads: a server's handler must not hold the borrowing iterator across them.
    let ids: Vec<BuildId> =
        matrix.rows.iter().flat_map(|r| r.cells.iter().flatten()).map(|p| p.build.clone()).collect();
    let builds = builds_of(ledger, &ids).await?;
    Ok(Status {
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
                                    (Some("pending sync".to_string()), Vec::new())
                                }
                                Some(_) => match views.get(&p.env) {
                                    Some(None) => (Some("unknown".to_string()), Vec::new()),
                                    Some(Some(drifts)) => match drifts.get(&p.flow) {
                                        Some(fields) if !fields.is_empty() => {
                                            (Some("drift".to_string()), fields.clone())
                                        }
                                        _ => (Some("synced".to_string()), Vec::new()),
                                    },
                                    None => (Some("synced".to_string()), Vec::new()),
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
        notes,
    })
}

fn render(out: &mut String, status: &Status, now: chrono::DateTime<Utc>) {
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
                    match c.sync.as_deref() {
                        Some("drift") => format!(
                            " (drift: {})",
                            c.drift.iter().map(|d| d.field.as_str()).collect::<Vec<_>>().join(", ")
                        ),
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
    placements: &BTreeMap<EnvName, SelectedEnv>,
    notes: &mut Vec<String>,
) -> ServerViews {
    let mut views = ServerViews::new();
    for (env, done) in synced {
        if !pointers.iter().any(|p| p.env == *env && is_synced(done, &p.flow, p.revision)) {
            continue;
        }
        let view = match Target::of(&placements[env]) {
            Ok(None) => continue,
            Ok(Some(target)) => drift_of(project, ledger, &target).await,
            Err(e) => Err(e),
        };
        views.insert(
            env.clone(),
            match view {
                Ok(drifts) => Some(drifts),
                Err(e) => {
                    notes.push(format!(
                        "Could not compare env `{env}` with its Prefect server, so its cells show `unknown`: {e:#}"
                    ));
                    None
                }
            },
        );
    }
    views
}

/// Writes a `drift.found` event per env where a synced cell drifted. Its id
/// is derived from the drift itself, so reading the same drift again writes
/// nothing and the env's webhooks hear of it once. Best effort: a status is a
/// read, and never fails for its notification.
async fn notify_drift(
    ledger: &dyn Ledger,
    pointers: &[flowgate_core::Pointer],
    synced: &BTreeMap<EnvName, Vec<(FlowKey, Revision)>>,
    views: &ServerViews,
) {
    let mut events = Vec::new();
    for (env, view) in views {
        let Some(drifts) = view else { continue };
        let drifted: Vec<_> = pointers
            .iter()
            .filter(|p| &p.env == env && synced.get(env).is_some_and(|done| is_synced(done, &p.flow, p.revision)))
            .filter_map(|p| {
                let fields = drifts.get(&p.flow).filter(|f| !f.is_empty())?;
                let fields = fields.iter().map(|d| d.field.clone()).collect();
                Some((p.flow.clone(), Some(p.build.clone()), p.revision, fields))
            })
            .collect();
        if !drifted.is_empty() {
            events.push(flowgate_core::events::drift_found(ledger.project(), env, chrono::Utc::now(), &drifted));
        }
    }
    if !events.is_empty() {
        if let Err(err) = ledger.record_events(&events).await {
            tracing::warn!(error = %err, "the drift's notification was not recorded");
        }
    }
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
            Action::Update { changes, .. } | Action::Adopt { changes, .. } => changes
                .into_iter()
                .map(|c| Drift { field: c.field.to_string(), server: c.old, ledger: c.new })
                .collect(),
            Action::Create => vec![Drift { field: "deployment".into(), server: Value::Null, ledger: json!(name) }],
            Action::Foreign { owner, .. } => {
                let server = json!(format!("owned by {owner}"));
                vec![Drift { field: "deployment".into(), server, ledger: json!(name) }]
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

/// The builds the matrix shows (for their commits): read together, without
/// their settings, whatever the number of flows and builds.
async fn builds_of(ledger: &dyn Ledger, ids: &[BuildId]) -> Result<BTreeMap<BuildId, Build>> {
    Ok(ledger.builds_by_id(ids, false).await?.into_iter().map(|b| (b.id.clone(), b)).collect())
}
