//! Pointer moves into the envs a server protects: release, promote and
//! rollback, each as the verified caller (who needs `releaser` on the env),
//! with the env's placement, policy and Prefect credentials as the server's
//! config defines them. The gates run here, on what the server verified: the
//! releaser is the caller, `separate_approver` compares verified subjects, and
//! `branches` believes only the refs of the CI jobs that registered the build.
//! Each answers with the JSON `flowgate release|promote|rollback --json` prints.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::Json;
use flowgate_config::{Config, SelectedEnv};
use flowgate_core::moves::Intent;
use flowgate_core::{plan_promote, plan_release, Build, EnvName, FlowKey, Move, ProjectName, Role};
use flowgate_ledger::Ledger;
use flowgate_prefect::PrefectError;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::ApiJson;
use super::build_routes::project_store_url;
use super::error::{ApiError, ErrorBody};
use super::ledger_routes::{one_build, readable_project, BuildRef};
use super::AppState;
use crate::commands::moves::{apply_moves, plan_rollbacks, pointers_by_flow, Apply, Moved};
use crate::exit::{status_of, Status};
use crate::project::Project;

/// A release, promotion or rollback, as a body. Fields that belong to one kind
/// only are refused on the others.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Releases: a build id or commit, or a unique prefix of either.
    #[serde(default)]
    pub(super) build: Option<String>,
    /// Releases: every flow the build carries.
    #[serde(default)]
    pub(super) all: bool,
    /// Releases of `all`, and promotions of every flow: also move the flows
    /// whose code, settings and image the env already runs.
    #[serde(default)]
    pub(super) force: bool,
    /// Promotions: the env whose builds are promoted (its ledger name).
    #[serde(default)]
    pub(super) from: Option<String>,
    /// Rollbacks: the revision to return to (default: the one before the current).
    #[serde(default)]
    pub(super) to: Option<i64>,
    /// The flows moved. Releases: these or `all`; promotions: empty is every
    /// flow of `from`; rollbacks: at least one.
    #[serde(default)]
    pub(super) flows: Vec<String>,
    /// Why: recorded with each move (and the reason of an override).
    #[serde(default)]
    pub(super) reason: Option<String>,
    /// Evaluate and plan only; nothing changes.
    #[serde(default)]
    pub(super) dry_run: bool,
    /// Record the moves without syncing the env's Prefect server.
    #[serde(default)]
    pub(super) no_sync: bool,
    /// Create missing work pools while syncing.
    #[serde(default)]
    pub(super) create_work_pools: bool,
    /// Move despite failed gates, where the env's policy allows it; needs `reason`.
    #[serde(default)]
    pub(super) override_gates: bool,
}

/// Which of the three moves a route makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Release,
    Promote,
    Rollback,
}

/// Points flows of a protected env at a build: `flowgate release`.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/envs/{env}/releases", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project"),
    ),
    request_body = MoveRequest,
    responses(
        (status = OK, body = Moved, description = "Applied (or planned); `sync_error` set when the sync after recorded moves failed"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body, an unknown flow or build, an env this server does not protect"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on the env, or refused by its gates or by ownership (`refused`)"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project or build"),
        (status = CONFLICT, body = ErrorBody, description = "A pointer moved concurrently; nothing changed"),
        (status = BAD_GATEWAY, body = ErrorBody, description = "A Prefect server the gates read failed"),
    ),
)]
pub async fn release(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    ApiJson(asked): ApiJson<MoveRequest>,
) -> Result<Json<Moved>, ApiError> {
    move_in(caller, state, &project, &env, Kind::Release, asked).await.map(Json)
}

/// Points flows of a protected env at the builds another env runs: `flowgate promote`.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/envs/{env}/promotions", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project: where the builds go"),
    ),
    request_body = MoveRequest,
    responses(
        (status = OK, body = Moved, description = "Applied (or planned); `sync_error` set when the sync after recorded moves failed"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body, nothing to promote, an env this server does not protect"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on the env, or refused by its gates or by ownership (`refused`)"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project"),
        (status = CONFLICT, body = ErrorBody, description = "A pointer moved concurrently; nothing changed"),
        (status = BAD_GATEWAY, body = ErrorBody, description = "A Prefect server the gates read failed"),
    ),
)]
pub async fn promote(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    ApiJson(asked): ApiJson<MoveRequest>,
) -> Result<Json<Moved>, ApiError> {
    move_in(caller, state, &project, &env, Kind::Promote, asked).await.map(Json)
}

/// Returns flows of a protected env to a build it ran before: `flowgate rollback`.
/// Not gated: the way out of an incident.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/envs/{env}/rollbacks", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project"),
    ),
    request_body = MoveRequest,
    responses(
        (status = OK, body = Moved, description = "Applied (or planned); `sync_error` set when the sync after recorded moves failed"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body, no revision to return to, an env this server does not protect"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on the env, or refused by ownership (`refused`)"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project"),
        (status = CONFLICT, body = ErrorBody, description = "A pointer moved concurrently; nothing changed"),
    ),
)]
pub async fn rollback(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    ApiJson(asked): ApiJson<MoveRequest>,
) -> Result<Json<Moved>, ApiError> {
    move_in(caller, state, &project, &env, Kind::Rollback, asked).await.map(Json)
}

/// A move into a protected env as `caller`: what the three routes, and the
/// dashboard's forms, do.
pub(super) async fn move_in(
    caller: Caller,
    state: AppState,
    project: &str,
    env: &str,
    kind: Kind,
    asked: MoveRequest,
) -> Result<Moved, ApiError> {
    let id = caller.request_id.clone();
    let bad = |message: String| ApiError::bad_request(id.clone(), message);
    check_fields(&asked, kind).map_err(bad)?;
    let (server_project, env, ledger) = protected(&caller, &state, project, env, Role::Releaser).await?;
    let flows = asked.flows.iter().map(|f| f.parse::<FlowKey>()).collect::<Result<Vec<_>, _>>();
    let flows = flows.map_err(|e| bad(format!("flows: {e}")))?;
    let intent = Intent { actor: caller.subject.clone(), reason: asked.reason.clone() };
    let current = pointers_by_flow(ledger.as_ref(), &env.ledger_name).await.map_err(|e| answer(&caller, e))?;
    let moves = match kind {
        Kind::Release => {
            let reference = asked.build.as_deref().unwrap_or_default();
            let build = one_build(&caller, ledger.as_ref(), project, reference, BuildRef::IdOrCommit).await?;
            let flows = released_flows(&build, &env, flows, asked.all).map_err(bad)?;
            plan_release(&flows, &env.ledger_name, &build.id, &current, &intent)
        }
        Kind::Promote => {
            let from: EnvName =
                asked.from.as_deref().unwrap_or_default().parse().map_err(|e| bad(format!("from: {e}")))?;
            let source = pointers_by_flow(ledger.as_ref(), &from).await.map_err(|e| answer(&caller, e))?;
            plan_promote(&flows, &from, &env.ledger_name, &source, &current, &intent).map_err(|e| bad(e.to_string()))?
        }
        Kind::Rollback => plan_rollbacks(ledger.as_ref(), &env.ledger_name, &flows, asked.to, &intent)
            .await
            .map_err(|e| answer(&caller, e))?,
    };
    if !env.is_ledger_only() {
        refuse_unstored(&caller, &server_project, ledger.as_ref(), &moves).await?;
    }
    let apply = Apply {
        dry_run: asked.dry_run,
        no_sync: asked.no_sync,
        create_work_pools: asked.create_work_pools,
        override_reason: if asked.override_gates { asked.reason.clone() } else { None },
        verified: Some(caller.verified()),
        changed_only: !asked.force
            && match kind {
                Kind::Release => asked.all,
                Kind::Promote => asked.flows.is_empty(),
                Kind::Rollback => false,
            },
    };
    let (mut moved, sync_failure) = apply_moves(&server_project, ledger.as_ref(), &env, moves, &current, &apply)
        .await
        .map_err(|e| answer(&caller, e))?;
    if let Some(failure) = sync_failure {
        tracing::warn!(request_id = %id.0, "moves recorded, sync failed: {failure:#}");
        moved.sync_error = failure.chain().map(ToString::to_string).collect();
    }
    Ok(moved)
}

/// The fields of another kind of move, and an override without a reason, are named.
fn check_fields(asked: &MoveRequest, kind: Kind) -> Result<(), String> {
    let misplaced = [
        ("build", asked.build.is_some(), Kind::Release),
        ("all", asked.all, Kind::Release),
        ("from", asked.from.is_some(), Kind::Promote),
        ("to", asked.to.is_some(), Kind::Rollback),
    ];
    if let Some((field, _, owner)) = misplaced.iter().find(|(_, given, owner)| *given && *owner != kind) {
        let owner = match owner {
            Kind::Release => "releases",
            Kind::Promote => "promotions",
            Kind::Rollback => "rollbacks",
        };
        return Err(format!("{field}: only {owner} take it"));
    }
    let needs = |given: bool, what: &str| if given { Ok(()) } else { Err(what.to_string()) };
    match kind {
        Kind::Release => {
            needs(asked.build.is_some(), "build: name the build to release")?;
            needs(asked.all == asked.flows.is_empty(), "flows: name the flows to release, or set `all` (not both)")?;
        }
        Kind::Promote => needs(asked.from.is_some(), "from: name the env to promote from")?,
        Kind::Rollback => needs(!asked.flows.is_empty(), "flows: name the flows to roll back")?,
    }
    let has_reason = asked.reason.as_deref().is_some_and(|r| !r.trim().is_empty());
    needs(!asked.override_gates || has_reason, "reason: an override of the gates needs one")
}

/// The project as the server sees it, the protected env and the ledger, for
/// a caller holding `role` on that env (a viewer anywhere may read every env:
/// a scope limits what a token may change, not what it may see).
pub(super) async fn protected(
    caller: &Caller,
    state: &AppState,
    project: &str,
    env: &str,
    role: Role,
) -> Result<(Project, SelectedEnv, Box<dyn Ledger>), ApiError> {
    let bad = |message: String| ApiError::bad_request(caller.request_id.clone(), message);
    let env_name: EnvName = env.parse().map_err(|e| bad(format!("env: {e}")))?;
    let ledger = readable_project(caller, state, project).await?;
    // Before the right: an env moved elsewhere is a wrong address, whoever asks.
    let server_project = protected_project(state, project, &env_name).map_err(bad)?;
    caller.require(role, (role != Role::Viewer).then_some(&env_name))?;
    let selected = server_project.select_env(Some(env)).map_err(|e| bad(format!("{e:#}")))?;
    Ok((server_project, selected, ledger))
}

/// The project as this server sees it, when it protects `env`.
fn protected_project(state: &AppState, project: &str, env: &EnvName) -> Result<Project, String> {
    let seen = server_project(state, project)?;
    if seen.config.env(env.as_str()).is_none() {
        let envs: Vec<_> = seen.config.envs().collect();
        let names: Vec<String> = envs.iter().map(|e| format!("`{}`", e.name)).collect();
        let protected = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        return Err(format!(
            "env `{env}` is not protected by this server for project `{project}` (protected: {protected}); \
             an env the server does not protect is moved in direct mode"
        ));
    }
    Ok(seen)
}

/// The project as this server sees it: its protected envs (perhaps none), and
/// its objects under `ARTIFACTS/PROJECT`.
pub(super) fn server_project(state: &AppState, project: &str) -> Result<Project, String> {
    let envs = state.protected.get(project).cloned().unwrap_or_default();
    // The server's config was checked at start: protected envs need a store.
    let artifacts = state.artifacts.as_deref().map(|base| project_store_url(base, project)).unwrap_or_default();
    let name: ProjectName = project.parse().map_err(|e| format!("project: {e}"))?;
    Ok(Project { root: state.base_dir.clone(), config: Config::for_server(name, artifacts, envs) })
}

/// The flows a release moves: those named, each one the build carries for the
/// env, or with `all` every one it carries. A build made before builds carried
/// their settings has none a server could deploy.
pub(super) fn released_flows(
    build: &Build,
    env: &SelectedEnv,
    named: Vec<FlowKey>,
    all: bool,
) -> Result<Vec<FlowKey>, String> {
    let Some(settings) = &build.settings else {
        return Err(format!(
            "build `{}` was made before builds carried their deployment settings; a server deploys only builds that \
             carry them (make a new build)",
            build.id
        ));
    };
    let carried: BTreeSet<&FlowKey> = settings.envs().flat_map(|e| settings.flows(e).map(|(f, _)| f)).collect();
    if all {
        return Ok(carried.into_iter().cloned().collect());
    }
    if let Some(unknown) = named.iter().find(|f| !carried.contains(f)) {
        let known: Vec<&str> = carried.iter().map(|f| f.as_str()).collect();
        return Err(format!(
            "build `{}` carries no flow `{unknown}` for env `{}`; it carries: {}",
            build.id,
            env.config_name,
            known.join(", ")
        ));
    }
    Ok(named)
}

/// Refuses moves to a build whose bundle is not in this server's store: the
/// deployment's pull step would fetch nothing (a ledger-only env deploys
/// nothing, so any build may go there). Such a build was registered in
/// direct mode, into the project's own store.
async fn refuse_unstored(
    caller: &Caller,
    project: &Project,
    ledger: &dyn Ledger,
    moves: &[Move],
) -> Result<(), ApiError> {
    let store = project.store().map_err(|e| answer(caller, e))?;
    let mut checked = BTreeSet::new();
    for mv in moves {
        if !checked.insert(mv.build.clone()) {
            continue;
        }
        let build = ledger.build(&mv.build).await.map_err(|e| answer(caller, e.into()))?;
        let Some(build) = build else { continue };
        if !store.has_bundle(&build.bundle).await.map_err(|e| answer(caller, e.into()))? {
            return Err(ApiError::bad_request(
                caller.request_id.clone(),
                format!(
                    "build `{}` was not registered through this server (its bundle `{}` is not in the server's store); \
                     register it with `flowgate build` and FLOWGATE_SERVER set, from its commit",
                    build.id, build.bundle
                ),
            ));
        }
    }
    Ok(())
}

/// The answer for an error of the move: what the CLI would exit with, as HTTP.
pub(super) fn answer(caller: &Caller, error: anyhow::Error) -> ApiError {
    let id = caller.request_id.clone();
    let message = error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
    match status_of(&error) {
        Status::Usage => ApiError::bad_request(id, message),
        Status::Refused => ApiError::refused(id, message),
        Status::Conflict => ApiError::conflict(id, message),
        _ if error.chain().any(|c| c.is::<PrefectError>()) => ApiError::bad_gateway(id, message),
        _ => ApiError::internal(id, &error),
    }
}
