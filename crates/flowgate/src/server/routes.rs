//! The API's handlers. Each checks the caller's right first, then reads the
//! ledger; what it answers is the JSON the CLI prints for the same question.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use flowgate_core::{ProjectName, Role};
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, RequestId};
use crate::commands::status_all::{project_status, ProjectStatus};

/// Answers without a credential, so a load balancer can ask.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[derive(Serialize)]
pub struct ProjectEntry {
    project: String,
    root_commit: Option<String>,
    remote: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Every project in the ledger: any role may list them.
pub async fn projects(caller: Caller, State(state): State<AppState>) -> Result<Json<Vec<ProjectEntry>>, ApiError> {
    caller.require(Role::Viewer, None)?;
    let records = state
        .database
        .projects()
        .await
        .map_err(|e| ApiError::internal(caller.request_id.clone(), &anyhow::Error::from(e)))?;
    Ok(Json(
        records
            .into_iter()
            .map(|p| ProjectEntry {
                project: p.name.to_string(),
                root_commit: p.root_commit,
                remote: p.remote,
                created_at: p.created_at,
            })
            .collect(),
    ))
}

/// One project's matrix, as one entry of `flowgate status --all-projects --json`.
pub async fn status(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<ProjectStatus>, ApiError> {
    caller.require(Role::Viewer, None)?;
    let id = caller.request_id.clone();
    let not_found = || ApiError::not_found(id.clone(), format!("project `{project}` is not in this server's ledger"));
    let name: ProjectName = project.parse().map_err(|_| not_found())?;
    let ledger =
        state.database.project(&name).await.map_err(|e| ApiError::internal(id.clone(), &anyhow::Error::from(e)))?;
    let ledger = ledger.ok_or_else(not_found)?;
    let status = project_status(ledger.as_ref()).await.map_err(|e| ApiError::internal(id.clone(), &e))?;
    Ok(Json(status))
}

/// Unknown paths: JSON like every other error, naming the path.
pub async fn no_such_route(uri: Uri, request_id: Option<axum::Extension<RequestId>>) -> ApiError {
    let id = request_id.map(|axum::Extension(id)| id).unwrap_or_default();
    ApiError::not_found(id, format!("no API route `{}`", uri.path()))
}
