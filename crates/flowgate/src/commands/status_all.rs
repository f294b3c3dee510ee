//! `flowgate status --all-projects`: the flows × envs matrix of every project
//! the ledger holds, as the ledger records it. Other projects' configs and
//! Prefect servers are not at hand, so no server is read: `status` in a
//! project's own checkout adds the sync state and drift.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::{BuildId, EnvName, FlowKey, StatusMatrix};
use flowgate_ledger::{Ledger, ProjectClaim};
use serde::Serialize;
use utoipa::ToSchema;

use crate::printer::{age, table, Printer};
use crate::project::Project;

#[derive(Serialize)]
struct AllProjects {
    projects: Vec<ProjectStatus>,
}

/// One project's matrix as the ledger records it: what `status
/// --all-projects` prints per project and the server answers for one.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProjectStatus {
    project: String,
    /// Every env any flow was ever released into, sorted.
    envs: Vec<EnvName>,
    flows: Vec<FlowRow>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct FlowRow {
    flow: FlowKey,
    /// One entry per env, in the order of `envs`; null where never released.
    cells: Vec<Option<Cell>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Cell {
    build: BuildId,
    revision: i64,
    updated_at: chrono::DateTime<Utc>,
}

pub async fn run(project: &Project, printer: Printer) -> Result<()> {
    // Opening the current project first registers it (and claims a ledger from
    // before projects), so it is listed like every other.
    let own = project.ledger().await?;
    let mut projects = Vec::new();
    for record in own.projects().await? {
        let claim = ProjectClaim { name: record.name.clone(), root_commit: None, remote: None };
        let ledger = project.ledger_of(&claim).await?;
        projects.push(project_status(ledger.as_ref()).await?);
    }
    let all = AllProjects { projects };
    let now = Utc::now();
    printer.result(&all, |out| {
        for (i, p) in all.projects.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("project {}\n", p.project));
            if p.flows.is_empty() {
                out.push_str("  nothing released yet\n");
                continue;
            }
            let mut header = vec!["FLOW".to_string()];
            header.extend(p.envs.iter().map(|e| e.to_string().to_uppercase()));
            let rows: Vec<Vec<String>> = p
                .flows
                .iter()
                .map(|f| {
                    let mut row = vec![f.flow.to_string()];
                    row.extend(f.cells.iter().map(|c| match c {
                        None => "-".to_string(),
                        Some(c) => format!("{} r{} {}", &c.build.as_str()[..8], c.revision, age(c.updated_at, now)),
                    }));
                    row
                })
                .collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            table(out, &header, &rows);
        }
    })
}

/// The matrix of `ledger`'s project from its pointers alone: every env and
/// flow that was ever released.
pub(crate) async fn project_status(ledger: &dyn Ledger) -> Result<ProjectStatus> {
    let pointers = ledger.pointers(None).await?;
    let mut envs: Vec<EnvName> = pointers.iter().map(|p| p.env.clone()).collect();
    envs.sort();
    envs.dedup();
    let mut flows: Vec<FlowKey> = pointers.iter().map(|p| p.flow.clone()).collect();
    flows.sort();
    flows.dedup();
    let matrix = StatusMatrix::new(&flows, &envs, &pointers);
    let cell =
        |p: &flowgate_core::Pointer| Cell { build: p.build.clone(), revision: p.revision, updated_at: p.updated_at };
    Ok(ProjectStatus {
        project: ledger.project().to_string(),
        envs: matrix.envs.clone(),
        flows: matrix
            .rows
            .iter()
            .map(|row| FlowRow {
                flow: row.flow.clone(),
                cells: row.cells.iter().map(|c| c.as_ref().map(cell)).collect(),
            })
            .collect(),
    })
}
