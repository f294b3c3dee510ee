//! Maintenance of a project's ledger and of the server's store for it, by an
//! admin (a role on every env): what `flowgate gc` and `flowgate fsck` do in
//! direct mode, under the same maintenance lock, held as the verified caller.
//! The store is the server's (`ARTIFACTS/PROJECT`): builds registered in
//! direct mode keep their bundles elsewhere, so `fsck` here reports them missing.

use axum::extract::{Path, State};
use axum::Json;
use flowgate_core::Role;
use flowgate_store::ArtifactStore;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::ApiJson;
use super::build_routes::readable_store;
use super::error::{ApiError, ErrorBody};
use super::ledger_routes::readable_project;
use super::move_routes::answer;
use super::AppState;
use crate::commands::fsck::{self, FsckReport};
use crate::commands::gc::{self, GcReport, Retain};

fn default_grace() -> String {
    "1h".into()
}

/// `flowgate gc --keep-last N --keep-days D [--grace G] [--dry-run]`, as a body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Keep the builds of the last N revisions of every flow in every env.
    keep_last: u32,
    /// Keep builds made in the last D days.
    keep_days: u32,
    /// Objects and builds younger than this are never deleted (90s, 30m, 1h, 1d; default 1h).
    #[serde(default = "default_grace")]
    grace: String,
    /// Report what would be deleted and change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// `flowgate fsck [--repair] [--grace G]`, as a body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FsckRequest {
    /// Delete leftovers of killed uploads and unreferenced objects older than `grace`.
    #[serde(default)]
    repair: bool,
    /// (90s, 30m, 1h, 1d; default 1h).
    #[serde(default = "default_grace")]
    grace: String,
}

/// Deletes the builds nothing keeps, then the server's store objects no build
/// references: `flowgate gc --json`.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/gc", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = GcRequest,
    responses(
        (status = OK, body = GcReport),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body or grace period, named"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `admin` role on every env"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project, or the server has no artifact store"),
        (status = CONFLICT, body = ErrorBody, description = "Another gc or fsck holds the maintenance lock (named)"),
    ),
)]
pub async fn gc(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(asked): ApiJson<GcRequest>,
) -> Result<Json<GcReport>, ApiError> {
    let (ledger, store) = maintained(&caller, &state, &project).await?;
    let grace = gc::grace(&asked.grace).map_err(|e| answer(&caller, e))?;
    let retain = Retain { keep_last: asked.keep_last, keep_days: asked.keep_days, grace, dry_run: asked.dry_run };
    let holder = gc::holder_as("gc", caller.subject.clone());
    let report = gc::collect(ledger.as_ref(), &store, &holder, &retain).await.map_err(|e| answer(&caller, e))?;
    Ok(Json(report))
}

/// Checks that the ledger and the server's store agree: `flowgate fsck --json`
/// (`consistent` false is exit 1 in the CLI).
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/fsck", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = FsckRequest,
    responses(
        (status = OK, body = FsckReport, description = "The report, consistent or not"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body or grace period, named"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `admin` role on every env"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project, or the server has no artifact store"),
        (status = CONFLICT, body = ErrorBody, description = "Another gc or fsck holds the maintenance lock (named)"),
    ),
)]
pub async fn fsck(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(asked): ApiJson<FsckRequest>,
) -> Result<Json<FsckReport>, ApiError> {
    let (ledger, store) = maintained(&caller, &state, &project).await?;
    let grace = gc::grace(&asked.grace).map_err(|e| answer(&caller, e))?;
    let holder = gc::holder_as("fsck", caller.subject.clone());
    let report =
        fsck::checked(ledger.as_ref(), &store, &holder, grace, asked.repair).await.map_err(|e| answer(&caller, e))?;
    Ok(Json(report))
}

/// The project's ledger and the server's store for it, for an admin.
async fn maintained(
    caller: &Caller,
    state: &AppState,
    project: &str,
) -> Result<(Box<dyn flowgate_ledger::Ledger>, ArtifactStore), ApiError> {
    let ledger = readable_project(caller, state, project).await?;
    caller.require(Role::Admin, None)?;
    let store = readable_store(caller, state, project)?.ok_or_else(|| {
        ApiError::not_found(
            caller.request_id.clone(),
            "this server has no artifact store (`--artifacts URL` or `artifacts =`): gc and fsck run in direct mode"
                .into(),
        )
    })?;
    Ok((ledger, store))
}
