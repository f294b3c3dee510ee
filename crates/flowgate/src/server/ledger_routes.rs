//! A project's ledger over HTTP: history, builds, one build and the diff of
//! two envs, answered with the JSON `flowgate history`, `flowgate builds`, the
//! `build` of `flowgate show` and `flowgate diff` print. Every role may read every env: a scope on a role limits what
//! a token may change, not what it may see.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use flowgate_core::{Build, EnvName, FlowKey, ProjectName, Release, Role};
use flowgate_ledger::Ledger;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::build_routes::readable_store;
use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::commands::builds::{self, Shown};
use crate::commands::diff::{env_diff, EnvDiff};

/// Shorter build prefixes match too much to mean anything (as in the CLI).
const MIN_PREFIX: usize = 4;

/// The ledger of `project`, for a caller who may read it; 404 naming a
/// project the ledger does not hold.
pub async fn readable_project(caller: &Caller, state: &AppState, project: &str) -> Result<Box<dyn Ledger>, ApiError> {
    caller.require(Role::Viewer, None)?;
    let id = &caller.request_id;
    let not_found = || ApiError::not_found(id.clone(), format!("project `{project}` is not in this server's ledger"));
    let name: ProjectName = project.parse().map_err(|_| not_found())?;
    let ledger = state.database.project(&name).await.map_err(|e| ApiError::internal(id.clone(), &e.into()))?;
    ledger.ok_or_else(not_found)
}

/// A query string, or 400 naming what in it is wrong.
pub fn query<T>(caller: &Caller, query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::bad_request(caller.request_id.clone(), e.body_text()))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The flow's key in `flowgate.toml`.
    flow: String,
    /// The env's ledger name (`qa`, `prod`, `dev-alice`).
    env: String,
    /// At most this many revisions, newest first (default: all).
    limit: Option<u32>,
}

/// Every revision of one (flow, env) pointer, newest first: `flowgate history FLOW --env ENV --json`.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/history", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name"), HistoryQuery),
    responses(
        (status = OK, body = Vec<Release>, description = "Empty when the flow was never released in the env"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A missing, unknown or malformed parameter, named"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project in the ledger"),
    ),
)]
pub async fn history(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Vec<Release>>, ApiError> {
    let q = query(&caller, q)?;
    let ledger = readable_project(&caller, &state, &project).await?;
    let id = &caller.request_id;
    let flow: FlowKey = q.flow.parse().map_err(|e| ApiError::bad_request(id.clone(), format!("flow: {e}")))?;
    let env: EnvName = q.env.parse().map_err(|e| ApiError::bad_request(id.clone(), format!("env: {e}")))?;
    let history = ledger.history(&flow, &env, q.limit).await.map_err(|e| ApiError::internal(id.clone(), &e.into()))?;
    Ok(Json(history))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// One env's ledger name.
    from: String,
    /// The other's.
    to: String,
}

/// Which flows run different builds in two envs, with the builds' commits and
/// the files that changed (from the manifests of the bundles in the server's
/// store; null for a bundle it lacks): `flowgate diff FROM TO --json`, but for
/// the commit logs, which the CLI reads from its checkout.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/diff", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name"), DiffQuery),
    responses(
        (status = OK, body = EnvDiff),
        (status = BAD_REQUEST, body = ErrorBody, description = "A missing or malformed env name"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project in the ledger"),
    ),
)]
pub async fn diff(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<EnvDiff>, ApiError> {
    let q = query(&caller, q)?;
    let ledger = readable_project(&caller, &state, &project).await?;
    let id = &caller.request_id;
    let from: EnvName = q.from.parse().map_err(|e| ApiError::bad_request(id.clone(), format!("from: {e}")))?;
    let to: EnvName = q.to.parse().map_err(|e| ApiError::bad_request(id.clone(), format!("to: {e}")))?;
    let store = readable_store(&caller, &state, &project)?;
    let diff = env_diff(ledger.as_ref(), store.as_ref(), &from, &to, true)
        .await
        .map_err(|e| ApiError::internal(id.clone(), &e))?;
    Ok(Json(diff))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BuildsQuery {
    /// At most this many builds, newest first (default 20, as `flowgate builds`).
    limit: Option<u32>,
}

/// The project's builds, newest first: `flowgate builds --json`.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/builds", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name"), BuildsQuery),
    responses(
        (status = OK, body = Vec<Build>),
        (status = BAD_REQUEST, body = ErrorBody, description = "An unknown or malformed parameter, named"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project in the ledger"),
    ),
)]
pub async fn builds(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    q: Result<Query<BuildsQuery>, QueryRejection>,
) -> Result<Json<Vec<Build>>, ApiError> {
    let q = query(&caller, q)?;
    let ledger = readable_project(&caller, &state, &project).await?;
    let builds = ledger
        .builds(q.limit.unwrap_or(20))
        .await
        .map_err(|e| ApiError::internal(caller.request_id.clone(), &e.into()))?;
    Ok(Json(builds))
}

/// One build by its id or a unique prefix of it (at least 4 characters), with
/// the deployment settings it carries: the `build` of `flowgate show BUILD --json`.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/builds/{build}", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("build" = String, Path, description = "A build id or a unique prefix of it"),
    ),
    responses(
        (status = OK, body = Build),
        (status = BAD_REQUEST, body = ErrorBody, description = "A prefix that is too short or matches several builds"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project, or no such build in it"),
    ),
)]
pub async fn build(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, build)): Path<(String, String)>,
) -> Result<Json<Build>, ApiError> {
    let ledger = readable_project(&caller, &state, &project).await?;
    Ok(Json(one_build(&caller, ledger.as_ref(), &project, &build, BuildRef::IdOnly).await?))
}

/// One build as `flowgate show BUILD --json` prints it: the record, what its
/// bundle holds (from the manifest in the server's store) and who registered it.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/builds/{build}/shown", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("build" = String, Path, description = "A build id or commit, or a unique prefix of either"),
    ),
    responses(
        (status = OK, body = Shown),
        (status = BAD_REQUEST, body = ErrorBody, description = "A prefix that is too short or matches several builds"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project or build, or its bundle is not in the server's store"),
    ),
)]
pub async fn shown(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, build)): Path<(String, String)>,
) -> Result<Json<Shown>, ApiError> {
    let ledger = readable_project(&caller, &state, &project).await?;
    let build = one_build(&caller, ledger.as_ref(), &project, &build, BuildRef::IdOrCommit).await?;
    let id = &caller.request_id;
    let unstored = || {
        ApiError::not_found(
            id.clone(),
            format!(
                "build `{}` was not registered through this server: its bundle `{}` is not in the server's store",
                build.id, build.bundle
            ),
        )
    };
    let Some(store) = readable_store(&caller, &state, &project)? else { return Err(unstored()) };
    if !store.has_bundle(&build.bundle).await.map_err(|e| ApiError::internal(id.clone(), &e.into()))? {
        return Err(unstored());
    }
    let shown = builds::shown(ledger.as_ref(), &store, build).await.map_err(|e| ApiError::internal(id.clone(), &e))?;
    Ok(Json(shown))
}

/// What a build reference may be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BuildRef {
    /// A build id or a prefix of one.
    IdOnly,
    /// That, or a commit sha or a prefix of one (git refs are resolved by the client).
    IdOrCommit,
}

/// The one build `reference` names in `project`: 400 when it is not hex, too
/// short or ambiguous, 404 when nothing matches.
pub async fn one_build(
    caller: &Caller,
    ledger: &dyn Ledger,
    project: &str,
    reference: &str,
    kind: BuildRef,
) -> Result<Build, ApiError> {
    let id = &caller.request_id;
    let is_hex = !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex || reference.len() < MIN_PREFIX {
        let what = if kind == BuildRef::IdOnly { "a build id" } else { "a build id or commit" };
        let why = format!("build `{reference}` is not {what} or a prefix of one ({MIN_PREFIX} hex characters or more)");
        return Err(ApiError::bad_request(id.clone(), why));
    }
    let prefix = reference.to_ascii_lowercase();
    let mut found = ledger.find_builds(&prefix).await.map_err(|e| ApiError::internal(id.clone(), &e.into()))?;
    if kind == BuildRef::IdOnly {
        // find_builds also matches commit prefixes.
        found.retain(|b| b.id.as_str().starts_with(&prefix));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ApiError::not_found(id.clone(), format!("no build `{reference}` in project `{project}`"))),
        n => Err(ApiError::bad_request(
            id.clone(),
            format!("build `{reference}` is ambiguous: {n} builds match; give more characters"),
        )),
    }
}
