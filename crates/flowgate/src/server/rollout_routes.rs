//! Rollouts into the envs a server protects: started as the verified caller
//! (who needs `releaser` on the env, and whose gates are judged as a move's
//! are), then driven by the server's replicas (`rollout_driver.rs`), read by
//! anyone with a role, followed by long polling, and aborted by a releaser.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use flowgate_core::rollout::Source;
use flowgate_core::rollout_step;
use flowgate_core::{BuildId, EnvName, FlowKey, Role};
use flowgate_ledger::{Ledger, RolloutRecord, RolloutStatus};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::ApiJson;
use super::error::{ApiError, ErrorBody};
use super::ledger_routes::{one_build, query, BuildRef};
use super::move_routes::{answer, protected, released_flows};
use super::AppState;
use crate::commands::moves::pointers_by_flow;
use crate::commands::rollout_drive::body_of;
use crate::commands::rollout_start::{plan_start, Planned, StartAsk};
use crate::commands::rollout_view::RolloutView;

/// `flowgate rollout start`, as a body: `build` or `from`, not both.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// Roll out this build: a build id or commit, or a unique prefix of either.
    #[serde(default)]
    pub(super) build: Option<String>,
    /// Roll out the builds current in this env (its ledger name).
    #[serde(default)]
    pub(super) from: Option<String>,
    /// The flows rolled out (empty: every flow of the build or of `from`).
    #[serde(default)]
    pub(super) flows: Vec<String>,
    /// Why: recorded on every move of the rollout (and the reason of an override).
    #[serde(default)]
    pub(super) reason: Option<String>,
    /// Start despite failed gates, where the env's policy allows it; needs `reason`.
    #[serde(default)]
    pub(super) override_gates: bool,
    /// Plan and evaluate the gates only; nothing is recorded.
    #[serde(default)]
    pub(super) dry_run: bool,
    /// With no flows named, also roll out flows whose code, settings and image
    /// the env already runs (otherwise they stay where they are).
    #[serde(default)]
    pub(super) force: bool,
}

/// `flowgate rollout abort --reason`, as a body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    #[serde(default)]
    pub(super) reason: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RolloutQuery {
    /// Answer for this rollout of the env (default: the active one, else the latest).
    id: Option<String>,
    /// Long polling: wait until the rollout's version is past this one (or it ended).
    after: Option<i64>,
    /// The longest wait, in seconds (at most 30; default 20).
    wait: Option<u64>,
}

/// The longest a long poll waits, and how often it looks meanwhile.
const MAX_WAIT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Plans a rollout into a protected env, checks every flow's gates as the
/// caller and records it; the server then drives it: `flowgate rollout start --detach --json`.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/envs/{env}/rollouts", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project: where the builds go"),
    ),
    request_body = RolloutRequest,
    responses(
        (status = OK, body = Planned, description = "Recorded (or, on a dry run or when nothing changes, only planned)"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body, nothing to roll out, an env this server does not protect"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on the env, or refused by its gates (`refused`)"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project or build"),
        (status = CONFLICT, body = ErrorBody, description = "The env already has a rollout running"),
        (status = BAD_GATEWAY, body = ErrorBody, description = "A Prefect server the gates read failed"),
    ),
)]
pub async fn start(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    ApiJson(asked): ApiJson<RolloutRequest>,
) -> Result<Json<Planned>, ApiError> {
    started(&caller, &state, &project, &env, asked).await.map(Json)
}

/// A rollout started as `caller`: what the route, and the dashboard's form, do.
pub(super) async fn started(
    caller: &Caller,
    state: &AppState,
    project: &str,
    env: &str,
    asked: RolloutRequest,
) -> Result<Planned, ApiError> {
    let (caller, project) = (caller.clone(), project.to_string());
    let bad = |message: String| ApiError::bad_request(caller.request_id.clone(), message);
    if asked.build.is_some() == asked.from.is_some() {
        return Err(bad("build: name the build to roll out, or `from` the env whose builds go (one of them)".into()));
    }
    if asked.override_gates && asked.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(bad("reason: an override of the gates needs one".into()));
    }
    let (server_project, env, ledger) = protected(&caller, state, &project, env, Role::Releaser).await?;
    let flows = asked.flows.iter().map(|f| f.parse::<FlowKey>()).collect::<Result<Vec<_>, _>>();
    let flows = flows.map_err(|e| bad(format!("flows: {e}")))?;
    let (source, targets) = match (&asked.build, &asked.from) {
        (Some(reference), _) => {
            let build = one_build(&caller, ledger.as_ref(), &project, reference, BuildRef::IdOrCommit).await?;
            let flows = released_flows(&build, &env, flows.clone(), flows.is_empty()).map_err(bad)?;
            (Source::Build(build.id.clone()), flows.into_iter().map(|f| (f, build.id.clone())).collect())
        }
        (None, Some(from)) => {
            let from: EnvName = from.parse().map_err(|e| bad(format!("from: {e}")))?;
            (Source::Env(from.clone()), from_env(&caller, ledger.as_ref(), &from, &flows).await?)
        }
        (None, None) => unreachable!("checked above"),
    };
    let ask = StartAsk {
        source,
        targets,
        reason: asked.reason.clone(),
        override_gates: asked.override_gates,
        dry_run: asked.dry_run,
        changed_only: asked.flows.is_empty() && !asked.force,
        actor: caller.subject.clone(),
        verified: Some(caller.verified()),
    };
    let planned = plan_start(&server_project, ledger.as_ref(), &env, ask).await.map_err(|e| answer(&caller, e))?;
    if let Some(record) = &planned.rollout {
        tracing::info!(request_id = %caller.request_id.0, rollout = %record.id, "rollout started; the server drives it");
        state.rollouts_changed.notify_waiters();
    }
    Ok(planned)
}

/// The builds `from` runs, for the flows named (every flow when none are).
async fn from_env(
    caller: &Caller,
    ledger: &dyn Ledger,
    from: &EnvName,
    named: &[FlowKey],
) -> Result<BTreeMap<FlowKey, BuildId>, ApiError> {
    let bad = |message: String| ApiError::bad_request(caller.request_id.clone(), message);
    let pointers = pointers_by_flow(ledger, from).await.map_err(|e| answer(caller, e))?;
    if pointers.is_empty() {
        return Err(bad(format!("`{from}` has no releases to roll out")));
    }
    if let Some(missing) = named.iter().find(|f| !pointers.contains_key(*f)) {
        return Err(bad(format!("flow `{missing}` has no release in `{from}` to roll out")));
    }
    let wanted = |flow: &FlowKey| named.is_empty() || named.contains(flow);
    Ok(pointers.into_iter().filter(|(flow, _)| wanted(flow)).map(|(flow, p)| (flow, p.build)).collect())
}

/// The env's rollout (active, else latest, or the one named), with the replica
/// driving it; with `after`, answers once its version is past that or it
/// ended (long polling): `flowgate rollout status --json` and `watch`.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/envs/{env}/rollout", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project"),
        RolloutQuery,
    ),
    responses(
        (status = OK, body = RolloutView),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed query, an env this server does not protect"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project, or the env has no rollout"),
    ),
)]
pub async fn current(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    q: Result<Query<RolloutQuery>, QueryRejection>,
) -> Result<Json<RolloutView>, ApiError> {
    let q = query(&caller, q)?;
    let (_, env, ledger) = protected(&caller, &state, &project, &env, Role::Viewer).await?;
    let wait = q.wait.map_or(Duration::from_secs(20), Duration::from_secs).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let record = find(&caller, ledger.as_ref(), &env.ledger_name, q.id.as_deref()).await?;
        let changed = q.after.is_none_or(|after| record.version > after || !record.status.is_active());
        if changed || tokio::time::Instant::now() >= deadline {
            return view(&caller, ledger.as_ref(), record).await.map(Json);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Stops the env's active rollout: `flowgate rollout abort --json`. The replica
/// driving it sees the rollout ended at its next step.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/envs/{env}/rollout/abort", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("env" = String, Path, description = "A protected env of the project"),
    ),
    request_body = AbortRequest,
    responses(
        (status = OK, body = RolloutView),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed body, no active rollout, an env this server does not protect"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on the env"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project"),
        (status = CONFLICT, body = ErrorBody, description = "The rollout moved on meanwhile; ask again"),
    ),
)]
pub async fn abort(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    ApiJson(asked): ApiJson<AbortRequest>,
) -> Result<Json<RolloutView>, ApiError> {
    aborted(&caller, &state, &project, &env, asked).await.map(Json)
}

/// The env's active rollout stopped by `caller`: what the route, and the dashboard's form, do.
pub(super) async fn aborted(
    caller: &Caller,
    state: &AppState,
    project: &str,
    env: &str,
    asked: AbortRequest,
) -> Result<RolloutView, ApiError> {
    let caller = caller.clone();
    let (_, env, ledger) = protected(&caller, state, project, env, Role::Releaser).await?;
    let active = ledger.active_rollout(&env.ledger_name).await.map_err(|e| answer(&caller, e.into()))?;
    let record = active.ok_or_else(|| {
        ApiError::bad_request(caller.request_id.clone(), format!("`{}` has no active rollout", env.ledger_name))
    })?;
    let body = body_of(&record).map_err(|e| answer(&caller, e))?;
    let body = rollout_step::abort(&body, &caller.subject, asked.reason.as_deref());
    let next = RolloutRecord {
        status: RolloutStatus::Aborted,
        version: record.version + 1,
        body: serde_json::to_value(&body).map_err(|e| answer(&caller, e.into()))?,
        updated_at: chrono::Utc::now(),
        ..record
    };
    // A stale version (the driver stepped meanwhile) is a conflict: 409.
    // An abort settles no wave: it tells no event beyond what `rollout status` shows.
    ledger.transition_rollout(&next, &[], &[]).await.map_err(|e| answer(&caller, e.into()))?;
    view(&caller, ledger.as_ref(), next).await
}

pub(super) async fn find(
    caller: &Caller,
    ledger: &dyn Ledger,
    env: &EnvName,
    id: Option<&str>,
) -> Result<RolloutRecord, ApiError> {
    let not_found = |what: String| ApiError::not_found(caller.request_id.clone(), what);
    let fail = |e: flowgate_ledger::LedgerError| answer(caller, e.into());
    if let Some(id) = id {
        let record = ledger.rollout(id).await.map_err(fail)?.filter(|r| &r.env == env);
        return record.ok_or_else(|| not_found(format!("`{env}` has no rollout `{id}`")));
    }
    if let Some(active) = ledger.active_rollout(env).await.map_err(fail)? {
        return Ok(active);
    }
    let latest = ledger.rollouts(Some(env), 1).await.map_err(fail)?.into_iter().next();
    latest.ok_or_else(|| not_found(format!("`{env}` has no rollouts")))
}

pub(super) async fn view(caller: &Caller, ledger: &dyn Ledger, record: RolloutRecord) -> Result<RolloutView, ApiError> {
    let body = body_of(&record).map_err(|e| answer(caller, e))?;
    let driver = ledger.rollout_lease(&record.id).await.map_err(|e| answer(caller, e.into()))?;
    Ok(RolloutView { rollout: record, body, driver })
}
