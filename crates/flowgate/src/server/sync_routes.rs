//! The Prefect server of an env the flowgate server protects, seen and synced
//! with the credentials only the flowgate server holds: what `flowgate plan`,
//! `flowgate sync`, `flowgate status` and `flowgate which` print.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use flowgate_core::{EnvName, Role};
use flowgate_prefect::SyncOptions;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::ApiJson;
use super::error::{ApiError, ErrorBody};
use super::ledger_routes::{query, readable_project};
use super::move_routes::{answer, protected, server_project};
use super::AppState;
use crate::commands::deploy;
use crate::commands::plan::{self, server_target, PlanView};
use crate::commands::status::{self, Status};
use crate::commands::sync::{self, SyncView};
use crate::commands::which::{self, Which};

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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MatrixQuery {
    /// The envs' ledger names, comma-separated, in the order of the columns.
    envs: String,
}

/// The flows × envs matrix `flowgate status --json` prints, for the flows with
/// a pointer in the envs asked: each cell's build, revision and commit, and in
/// the envs this server protects its sync state and drift, read from their
/// Prefect servers with the server's credentials. Any role may read it.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/matrix", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name"), MatrixQuery),
    responses(
        (status = OK, body = Status, description = "`notes` names a Prefect server that could not be read (its cells say `unknown`)"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A missing or malformed env name"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project in the ledger"),
    ),
)]
pub async fn matrix(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    q: Result<Query<MatrixQuery>, QueryRejection>,
) -> Result<Json<Status>, ApiError> {
    let q = query(&caller, q)?;
    let ledger = readable_project(&caller, &state, &project).await?;
    let bad = |message: String| ApiError::bad_request(caller.request_id.clone(), message);
    let envs = q.envs.split(',').map(|e| e.parse::<EnvName>().map_err(|err| bad(format!("envs: {err}"))));
    let envs = envs.collect::<Result<Vec<_>, _>>()?;
    let seen = server_project(&state, &project).map_err(bad)?;
    // Only a protected env's Prefect server is known here.
    let placed =
        |env: &EnvName| Ok(seen.config.env(env.as_str()).and_then(|_| seen.select_env(Some(env.as_str())).ok()));
    let status = status::matrix(&seen, ledger.as_ref(), &[], &envs, placed).await.map_err(|e| answer(&caller, e))?;
    Ok(Json(status))
}

/// The build a flow run of a protected env executed, read from the env's
/// Prefect server with the server's credentials: `flowgate which RUN --env ENV --json`.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/envs/{env}/flow-runs/{flow_run}", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project, with a Prefect server"),
        ("flow_run" = String, Path, description = "The flow run's id on the env's Prefect server"),
    ),
    responses(
        (status = OK, body = Which),
        (status = BAD_REQUEST, body = ErrorBody, description = "An env this server does not protect, a ledger-only one, or no such flow run"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project"),
        (status = BAD_GATEWAY, body = ErrorBody, description = "The env's Prefect server failed"),
        (status = UNPROCESSABLE_ENTITY, body = ErrorBody, description = "`undetermined`: the run's build cannot be told (no pull record, no matching build)"),
    ),
)]
pub async fn which(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env, flow_run)): Path<(String, String, String)>,
) -> Result<Json<Which>, ApiError> {
    let (server_project, env, ledger) = protected(&caller, &state, &project, &env, Role::Viewer).await?;
    let found =
        which::which(&server_project, ledger.as_ref(), &env, &flow_run).await.map_err(|e| match e
            .downcast_ref::<which::Undetermined>()
        {
            Some(undetermined) => ApiError::unprocessable(caller.request_id.clone(), undetermined.0.clone()),
            None => answer(&caller, e),
        })?;
    Ok(Json(found))
}
