//! The ledger writes that touch no Prefect server: approvals (for the
//! `approval` gate) and pins (builds gc keeps). The actor recorded is the
//! verified caller, never a name the client sends. Each answers with the JSON
//! `flowgate approve`, `flowgate pin` and `flowgate pins` print.

use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;
use flowgate_core::{Build, EnvName, FlowKey, Role};
use flowgate_ledger::{Ledger, Pin};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::ApiJson;
use super::error::{ApiError, ErrorBody};
use super::ledger_routes::{one_build, readable_project, BuildRef};
use super::AppState;
use crate::commands::approve::{record_approvals, Approved, Who};
use crate::commands::pin::{Listed, Pinned};

/// `flowgate approve BUILD --env ENV [FLOW...] --reason TEXT`, as a body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// A build id or commit, or a unique prefix of either (4 characters or more).
    build: String,
    /// The env's ledger name.
    env: String,
    /// The flows approved; empty or absent: every flow.
    #[serde(default)]
    flows: Vec<String>,
    /// Why: recorded with the approval.
    reason: String,
}

/// Approves a build for an env (and, if named, only some flows). Needs
/// `approver` on that env. The first approval by one identity is kept. Env and
/// flow names must be well formed; the server has no `flowgate.toml` to check
/// them against (the CLI does, before it asks), and an approval for a flow or
/// env that is not deployed enables nothing.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/approvals", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = ApproveRequest,
    responses(
        (status = OK, body = Approved),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body or build reference, named"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `approver` right on the env"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project or build"),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody, description = "A body over 64 KiB"),
    ),
)]
pub async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(asked): ApiJson<ApproveRequest>,
) -> Result<Json<Approved>, ApiError> {
    let id = &caller.request_id;
    let env: EnvName = asked.env.parse().map_err(|e| ApiError::bad_request(id.clone(), format!("env: {e}")))?;
    let flows = asked
        .flows
        .iter()
        .map(|f| f.parse::<FlowKey>().map_err(|e| ApiError::bad_request(id.clone(), format!("flows: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if asked.reason.trim().is_empty() {
        return Err(ApiError::bad_request(id.clone(), "reason: say why the build is approved".into()));
    }
    let ledger = readable_project(&caller, &state, &project).await?;
    caller.require(Role::Approver, Some(&env))?;
    let build = one_build(&caller, ledger.as_ref(), &project, &asked.build, BuildRef::IdOrCommit).await?;
    let verified = caller.verified();
    let recorded =
        record_approvals(ledger.as_ref(), &env, &build, &flows, &asked.reason, Who::Verified(verified.clone()))
            .await
            .map_err(|e| ApiError::internal(id.clone(), &e))?;
    Ok(Json(Approved {
        build: build.id.to_string(),
        env: env.to_string(),
        flows,
        actor: caller.subject.clone(),
        reason: asked.reason,
        recorded,
        verified: Some(verified),
    }))
}

/// `flowgate pin BUILD --reason TEXT`, as a body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// A build id or commit, or a unique prefix of either.
    build: String,
    /// Why gc must keep it.
    reason: String,
}

/// Pins a build so gc keeps it. Needs `releaser` on every env (pins are not
/// one env's) or `admin`. The first pin is kept.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/pins", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = PinRequest,
    responses(
        (status = OK, body = Pinned),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body or build reference, named"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No unscoped `releaser` right"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project or build"),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody, description = "A body over 64 KiB"),
    ),
)]
pub async fn pin(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(asked): ApiJson<PinRequest>,
) -> Result<Json<Pinned>, ApiError> {
    let id = &caller.request_id;
    if asked.reason.trim().is_empty() {
        return Err(ApiError::bad_request(id.clone(), "reason: say why gc must keep the build".into()));
    }
    let ledger = readable_project(&caller, &state, &project).await?;
    caller.require(Role::Releaser, None)?;
    let build = one_build(&caller, ledger.as_ref(), &project, &asked.build, BuildRef::IdOrCommit).await?;
    let wanted = Pin {
        build: build.id.clone(),
        actor: caller.subject.clone(),
        reason: asked.reason,
        created_at: Utc::now(),
        verified: Some(caller.verified()),
    };
    let changed = ledger.pin(&wanted).await.map_err(|e| ApiError::internal(id.clone(), &e.into()))?;
    let pin = if changed { Some(wanted) } else { pin_of(&caller, ledger.as_ref(), &build).await? };
    Ok(Json(Pinned { build: build.id, pinned: true, changed, pin }))
}

/// Unpins a build: `flowgate pin --remove BUILD`. Needs what pinning needs.
#[utoipa::path(
    delete, path = "/api/v1/projects/{project}/pins/{build}", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("build" = String, Path, description = "A build id or commit, or a unique prefix of either"),
    ),
    responses(
        (status = OK, body = Pinned, description = "`changed` is false when the build was not pinned"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed build reference"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No unscoped `releaser` right"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project or build"),
    ),
)]
pub async fn unpin(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, build)): Path<(String, String)>,
) -> Result<Json<Pinned>, ApiError> {
    let ledger = readable_project(&caller, &state, &project).await?;
    caller.require(Role::Releaser, None)?;
    let build = one_build(&caller, ledger.as_ref(), &project, &build, BuildRef::IdOrCommit).await?;
    let changed =
        ledger.unpin(&build.id).await.map_err(|e| ApiError::internal(caller.request_id.clone(), &e.into()))?;
    Ok(Json(Pinned { build: build.id, pinned: false, changed, pin: None }))
}

/// Every pinned build with who pinned it and why: `flowgate pins --json`.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/pins", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name")),
    responses(
        (status = OK, body = Vec<Listed>),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project"),
    ),
)]
pub async fn pins(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Vec<Listed>>, ApiError> {
    let ledger = readable_project(&caller, &state, &project).await?;
    let listed = crate::commands::pin::listed(ledger.as_ref())
        .await
        .map_err(|e| ApiError::internal(caller.request_id.clone(), &e))?;
    Ok(Json(listed))
}

async fn pin_of(caller: &Caller, ledger: &dyn Ledger, build: &Build) -> Result<Option<Pin>, ApiError> {
    let pins = ledger.pins().await.map_err(|e| ApiError::internal(caller.request_id.clone(), &e.into()))?;
    Ok(pins.into_iter().find(|p| p.build == build.id))
}
