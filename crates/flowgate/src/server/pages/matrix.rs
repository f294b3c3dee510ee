//! What runs where: the ledger's projects, and one project's flows × envs
//! matrix (build, commit, age, sync state), filterable by flow name.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use flowgate_core::{EnvName, Role};
use serde::Deserialize;

use super::html::{self, escape};
use super::{problem, PageCaller};
use crate::commands::status::{self, Status};
use crate::printer::age;
use crate::project::Project;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::server::ledger_routes::readable_project;
use crate::server::move_routes::{answer, server_project};
use crate::server::AppState;

/// An API refusal as a page: the same status, the same message.
pub(super) fn refused(error: ApiError) -> Response {
    let title = match error.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::BAD_REQUEST => "Bad request",
        _ => "Failed",
    };
    problem(error.status, title, &error.message)
}

/// The projects of the ledger, each a link to its matrix; with `?q=`, the
/// rows of every project's matrix whose flow name contains it.
pub async fn projects(
    PageCaller(caller, _): PageCaller,
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
) -> Response {
    if let Err(error) = caller.require(Role::Viewer, None) {
        return refused(error);
    }
    let records = match state.database.projects().await {
        Ok(records) => records,
        Err(e) => return refused(ApiError::internal(caller.request_id.clone(), &e.into())),
    };
    let q = filter.q.trim();
    let mut body = format!(
        "<h1>Projects</h1>\n<form method=\"get\"><input name=\"q\" value=\"{}\" placeholder=\"flow name\"> \
         <button>Find flows in every project</button></form>\n<ul class=\"projects\">\n",
        escape(q)
    );
    for record in &records {
        let name = escape(record.name.as_str());
        body.push_str(&format!("<li><a href=\"/projects/{name}\">{name}</a></li>\n"));
    }
    body.push_str("</ul>\n");
    if records.is_empty() {
        body.push_str("<p class=\"muted\">The ledger holds no project yet.</p>\n");
    }
    if !q.is_empty() {
        let mut found = false;
        for record in &records {
            let project = record.name.as_str();
            let table = match project_status(&caller, &state, project).await {
                Ok((_, status, _)) => table(project, &status, q),
                Err(error) => Some(format!("<p class=\"problem\">{}</p>\n", escape(&error.message))),
            };
            if let Some(table) = table {
                let p = escape(project);
                body.push_str(&format!("<h2><a href=\"/projects/{p}\">{p}</a></h2>\n{table}"));
                found = true;
            }
        }
        if !found {
            body.push_str(&format!("<p class=\"muted\">No project has a flow matching “{}”.</p>\n", escape(q)));
        }
    }
    html::page("Projects", Some(&caller.subject), &body).into_response()
}

#[derive(Deserialize)]
pub struct Filter {
    /// Only the flows whose name contains this.
    #[serde(default)]
    q: String,
}

/// One project's matrix: a row per flow, a column per env (the envs this
/// server protects first, in its config's order, then the others by name).
pub async fn matrix(
    PageCaller(caller, _): PageCaller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(filter): Query<Filter>,
) -> Response {
    let (seen, status, active) = match project_status(&caller, &state, &project).await {
        Ok(found) => found,
        Err(error) => return refused(error),
    };
    let q = filter.q.trim();
    let mut body = heading(&project, q);
    body.push_str(&table(&project, &status, q).unwrap_or_else(|| {
        let why = if q.is_empty() { String::new() } else { format!(" matching “{}”", escape(q)) };
        format!("<p class=\"muted\">No flow released{why}.</p>\n")
    }));
    // The rollouts of the envs this server drives them in, an active one marked.
    let rollouts: Vec<String> = seen
        .config
        .envs()
        .map(|e| {
            let live =
                if active.contains(&e.name) { " <strong class=\"rollout-active\">in progress</strong>" } else { "" };
            format!(
                "<a href=\"/projects/{}/envs/{e}/rollout\">{e}</a>{live}",
                escape(&project),
                e = escape(e.name.as_str())
            )
        })
        .collect();
    if !rollouts.is_empty() {
        body.push_str(&format!("<p class=\"rollouts\">Rollouts: {}</p>\n", rollouts.join(" · ")));
    }
    html::page(&project, Some(&caller.subject), &body).into_response()
}

/// A project as this server sees it, its matrix, and the envs with a rollout in progress.
async fn project_status(
    caller: &Caller,
    state: &AppState,
    project: &str,
) -> Result<(Project, Status, BTreeSet<EnvName>), ApiError> {
    let ledger = readable_project(caller, state, project).await?;
    let seen = server_project(state, project).map_err(|m| ApiError::bad_request(caller.request_id.clone(), m))?;
    let pointers = ledger.pointers(None).await.map_err(|e| answer(caller, e.into()))?;
    let protected: Vec<EnvName> = seen.config.envs().map(|e| e.name.clone()).collect();
    let others: BTreeSet<EnvName> = pointers.iter().map(|p| p.env.clone()).filter(|e| !protected.contains(e)).collect();
    let envs: Vec<EnvName> = protected.into_iter().chain(others).collect();
    // Only a protected env's Prefect server is known here.
    let placed =
        |env: &EnvName| Ok(seen.config.env(env.as_str()).and_then(|_| seen.select_env(Some(env.as_str())).ok()));
    let status = status::matrix(&seen, ledger.as_ref(), &[], &envs, placed).await.map_err(|e| answer(caller, e))?;
    let active = ledger.active_rollouts().await.map_err(|e| answer(caller, e.into()))?;
    Ok((seen, status, active.into_iter().map(|r| r.env).collect()))
}

fn heading(project: &str, filter: &str) -> String {
    format!(
        "<h1>{p}</h1>\n<nav><a href=\"/projects/{p}/diff\">Compare envs</a> · \
         <a href=\"/projects/{p}/which\">Which build ran a flow run?</a></nav>\n\
         <form method=\"get\"><input name=\"q\" value=\"{}\" placeholder=\"flow name\"> \
         <button>Filter</button></form>\n",
        escape(filter),
        p = escape(project),
    )
}

/// The matrix's rows whose flow name contains `filter`; None when no row does.
fn table(project: &str, status: &Status, filter: &str) -> Option<String> {
    let now = Utc::now();
    let flows: Vec<_> = status.flows.iter().filter(|f| f.flow.contains(filter)).collect();
    if flows.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(200 * flows.len() * (status.envs.len() + 1));
    out.push_str("<table class=\"matrix\">\n<thead><tr><th>flow</th>");
    for env in &status.envs {
        out.push_str(&format!("<th>{}</th>", escape(env.as_str())));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for flow in flows {
        out.push_str(&format!("<tr><th class=\"flow\">{}</th>", escape(&flow.flow)));
        for (env, cell) in status.envs.iter().zip(&flow.cells) {
            let Some(cell) = cell else {
                out.push_str("<td class=\"cell muted\">–</td>");
                continue;
            };
            let build = cell.build.as_str();
            let commit = cell.commit.as_deref().map(|c| &c[..c.len().min(7)]).unwrap_or("-");
            let sync = cell.sync.as_deref().map_or(String::new(), |s| {
                let class = s.split_whitespace().next().unwrap_or(s);
                format!(" <span class=\"sync-{}\">{}</span>", escape(class), escape(s))
            });
            let history =
                format!("/projects/{}/flows/{}/envs/{}", escape(project), escape(&flow.flow), escape(env.as_str()));
            out.push_str(&format!(
                "<td class=\"cell\"><a href=\"{history}\"><code title=\"{}\">{}</code> r{}</a> \
                 <span class=\"muted\">{} · {}</span>{sync}</td>",
                escape(build),
                escape(&build[..build.len().min(8)]),
                cell.revision,
                escape(commit),
                age(cell.updated_at, now)
            ));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    Some(out)
}
