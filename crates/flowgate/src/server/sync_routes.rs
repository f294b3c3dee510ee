//! The Prefect server of an env the flowgate server protects, seen and synced
//! with the credentials only the flowgate server holds: what `flowgate plan`
//! and `flowgate sync` print, for that env.

use axum::extract::{Path, State};
use axum::Json;
use flowgate_core::Role;
use flowgate_prefect::SyncOptions;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::ApiJson;
use super::error::{ApiError, ErrorBody};
use super::move_routes::{answer, protected};
use super::AppState;
use crate::commands::deploy;
use crate::commands::plan::{self, server_target, PlanView};
use crate::commands::sync::{self, SyncView};

/// `flowgate sync --env ENV [--prune] [--create-work-pools]`, as a body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Delete this project's deployments of the env that nothing in the ledger wants.
    #[serde(default)]
    prune: bool,
    /// Create missing work pools.
    #[serde(default)]
    create_work_pools: bool,
}

/// What a sync of a protected env would do: `flowgate plan --env ENV --json`.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/envs/{env}/plan", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project, with a Prefect server"),
    ),
    responses(
        (status = OK, body = PlanView),
        (status = BAD_REQUEST, body = ErrorBody, description = "An env this server does not protect, or a ledger-only one"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project"),
        (status = BAD_GATEWAY, body = ErrorBody, description = "The env's Prefect server failed"),
    ),
)]
pub async fn plan(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
) -> Result<Json<PlanView>, ApiError> {
    let (server_project, env, ledger) = protected(&caller, &state, &project, &env, Role::Viewer).await?;
    let target = server_target(&env).map_err(|e| answer(&caller, e))?;
    let (planned, desired) =
        deploy::plan(&server_project, ledger.as_ref(), &target).await.map_err(|e| answer(&caller, e))?;
    Ok(Json(plan::view(&planned, desired.missing_pools.into_iter().collect())))
}

/// Makes a protected env's Prefect server match the ledger: `flowgate sync --env ENV --json`.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/envs/{env}/sync", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project, with a Prefect server"),
    ),
    request_body = SyncRequest,
    responses(
        (status = OK, body = SyncView),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body, an env this server does not protect, or a ledger-only one"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on the env, or a deployment another project owns (`refused`)"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project"),
        (status = BAD_GATEWAY, body = ErrorBody, description = "The env's Prefect server failed"),
    ),
)]
pub async fn sync(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    ApiJson(asked): ApiJson<SyncRequest>,
) -> Result<Json<SyncView>, ApiError> {
    let (server_project, env, ledger) = protected(&caller, &state, &project, &env, Role::Releaser).await?;
    let target = server_target(&env).map_err(|e| answer(&caller, e))?;
    let options = SyncOptions { prune: asked.prune, create_work_pools: asked.create_work_pools };
    let (_, report) =
        deploy::sync(&server_project, ledger.as_ref(), &target, &options).await.map_err(|e| answer(&caller, e))?;
    Ok(Json(sync::view(&env.config_name, report, target.client.write_count())))
}
