//! The API's handlers. Each checks the caller's right first, then reads the
//! ledger; what it answers is the JSON the CLI prints for the same question.
//! Their `#[utoipa::path]` annotations are the OpenAPI document (see
//! `openapi.rs`): a route is documented by being served.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use flowgate_core::{Grant, Role};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Caller, Identity};
use super::error::{ApiError, ErrorBody};
use super::ledger_routes::readable_project;
use super::{AppState, RequestId};
use crate::commands::status_all::{project_status, ProjectStatus};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the server answers.
    status: &'static str,
    /// The server's flowgate version.
    version: &'static str,
}

/// Whether the server answers. Needs no credential, so a load balancer can ask.
#[utoipa::path(get, path = "/api/v1/health", responses((status = OK, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// Who the server takes the caller for.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// The API token's name, or the ID token's `sub`.
    subject: String,
    /// `token` or `oidc`.
    kind: &'static str,
    /// The ID token's issuer (`oidc` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    /// The ID token's string claims, verified (`oidc` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<BTreeMap<String, String>>,
    /// What the caller may do: `ROLE` or `ROLE:ENV`.
    #[schema(value_type = Vec<String>)]
    grants: Vec<Grant>,
}

/// The verified caller and its grants. Needs a valid credential, no role.
#[utoipa::path(
    get, path = "/api/v1/whoami", security(("api_token" = [])),
    responses(
        (status = OK, body = WhoAmI),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token or ID token"),
    ),
)]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    let (kind, issuer, claims) = match caller.identity {
        Identity::Token => ("token", None, None),
        Identity::Oidc(id) => ("oidc", Some(id.issuer), Some(id.claims)),
        // Never for the API: single sign-on signs in pages only.
        Identity::Sso(claims) => ("sso", None, Some(claims)),
    };
    Json(WhoAmI { subject: caller.subject, kind, issuer, claims, grants: caller.grants })
}

/// A project of the ledger, as its first open registered it.
#[derive(Serialize, ToSchema)]
pub struct ProjectEntry {
    project: String,
    /// The repository's root commit, when it was known.
    root_commit: Option<String>,
    /// The repository's origin remote without credentials, when it had one.
    remote: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// Every project in the ledger. Any role may list them.
#[utoipa::path(
    get, path = "/api/v1/projects", security(("api_token" = [])),
    responses(
        (status = OK, body = Vec<ProjectEntry>),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
    ),
)]
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

/// One project's flows × envs matrix as the ledger records it: one entry of
/// `flowgate status --all-projects --json`. Any role may read it.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/status", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name, from its `[project] name`")),
    responses(
        (status = OK, body = ProjectStatus),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project in the ledger"),
    ),
)]
pub async fn status(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<ProjectStatus>, ApiError> {
    let ledger = readable_project(&caller, &state, &project).await?;
    let status =
        project_status(ledger.as_ref()).await.map_err(|e| ApiError::internal(caller.request_id.clone(), &e))?;
    Ok(Json(status))
}

/// Unknown paths: JSON like every other error, naming the path.
pub async fn no_such_route(uri: Uri, request_id: Option<axum::Extension<RequestId>>) -> ApiError {
    let id = request_id.map(|axum::Extension(id)| id).unwrap_or_default();
    ApiError::not_found(id, format!("no API route `{}`", uri.path()))
}
