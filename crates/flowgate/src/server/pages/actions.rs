//! What the dashboard lets those with the right do in the envs the server
//! protects, each through the same code as the API route and as the verified
//! caller: roll a flow back, promote one env's builds into another (after a
//! preview of the moves and the gate verdicts), start and abort a rollout.
//! Each form asks for a reason and carries the session's form token; the page
//! that shows a form shows it only to a caller who holds the right, and the
//! handler checks the right again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use flowgate_core::{EnvName, Role};
use serde::Deserialize;

use super::html::{self, escape};
use super::matrix::refused;
use super::{problem, FormToken, PageCaller};
use crate::commands::moves::render_moves;
use crate::server::auth::Caller;
use crate::server::move_routes::{move_in, Kind, MoveRequest};
use crate::server::rollout_routes::{aborted, started, AbortRequest, RolloutRequest};
use crate::server::AppState;

/// Whether `caller` may move `env` of `project` from a page: the server
/// protects it and the caller is a releaser there.
pub fn may_move(caller: &Caller, state: &AppState, project: &str, env: &str) -> bool {
    let protected = state.protected.get(project).is_some_and(|envs| envs.iter().any(|e| e.name.as_str() == env));
    let env: Option<EnvName> = env.parse().ok();
    protected && env.is_some_and(|env| caller.require(Role::Releaser, Some(&env)).is_ok())
}

/// The reason field every action's form has.
pub const REASON_FIELD: &str = "<label>Reason <input name=\"reason\" required size=\"48\"></label>";

#[derive(Deserialize)]
pub struct Reasoned {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    form_token: String,
}

/// The form's reason, if it gave one.
fn reason_of(reason: &str) -> Option<String> {
    Some(reason.trim().to_string()).filter(|r| !r.is_empty())
}

/// The page a form without a reason gets (400).
fn no_reason() -> Response {
    problem(StatusCode::BAD_REQUEST, "Bad request", "Say why: every action records a reason.")
}

/// Rolls one flow of an env back to the build it ran before, then shows its history.
pub async fn rollback(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, flow, env)): Path<(String, String, String)>,
    Form(posted): Form<Reasoned>,
) -> Response {
    if let Some(forged) = form.refuse_forged(&posted.form_token) {
        return forged;
    }
    let Some(reason) = reason_of(&posted.reason) else { return no_reason() };
    let asked = MoveRequest { flows: vec![flow.clone()], reason: Some(reason), ..Default::default() };
    match move_in(caller, state, &project, &env, Kind::Rollback, asked).await {
        Ok(_) => Redirect::to(&format!("/projects/{project}/flows/{flow}/envs/{env}")).into_response(),
        Err(error) => refused(error),
    }
}

#[derive(Deserialize)]
pub struct PromoteForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    reason: String,
    /// Absent: preview only.
    #[serde(default)]
    confirm: Option<String>,
    #[serde(default)]
    form_token: String,
}

/// Promotes every flow of `from` into the env: first a preview of the moves
/// and the gate verdicts (a dry run) with a button that confirms, then the promotion.
pub async fn promote(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    Form(posted): Form<PromoteForm>,
) -> Response {
    if let Some(forged) = form.refuse_forged(&posted.form_token) {
        return forged;
    }
    let Some(reason) = reason_of(&posted.reason) else { return no_reason() };
    let confirmed = posted.confirm.is_some();
    let asked = MoveRequest {
        from: Some(posted.from.clone()),
        reason: Some(reason.clone()),
        dry_run: !confirmed,
        ..Default::default()
    };
    let subject = caller.subject.clone();
    let moved = match move_in(caller, state, &project, &env, Kind::Promote, asked).await {
        Ok(moved) => moved,
        Err(error) => return refused(error),
    };
    let mut text = String::new();
    render_moves(&mut text, &moved);
    for line in &moved.sync_error {
        text.push_str(&format!("sync failed: {line}\n"));
    }
    let (p, from, to) = (escape(&project), escape(&posted.from), escape(&env));
    let title = format!("Promote {} to {env}", posted.from);
    let mut body = format!("<p><a href=\"/projects/{p}\">{p}</a></p>\n<h1>{}</h1>\n", escape(&title));
    body.push_str(&format!("<pre class=\"moves\">{}</pre>\n", escape(&text)));
    let refused_by_gates = moved.gates.iter().any(|v| !v.passed);
    if !confirmed && refused_by_gates {
        body.push_str("<p class=\"problem\">The gates refuse this promotion (above); it cannot be confirmed.</p>\n");
    }
    if !confirmed && !refused_by_gates && !moved.moves.is_empty() {
        body.push_str(&format!(
            "<form class=\"confirm-promote\" method=\"post\" action=\"/projects/{p}/envs/{to}/promote\">{}\
             <input type=\"hidden\" name=\"from\" value=\"{from}\"><input type=\"hidden\" name=\"reason\" \
             value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\"><button>Promote {from} to {to}</button>\
             </form>\n",
            form.field(),
            escape(&reason)
        ));
    }
    html::page(&title, Some(&subject), &body).into_response()
}

/// The form that previews a promotion from `from` into `to`.
pub fn promote_form(form: &FormToken, project: &str, from: &str, to: &str) -> String {
    format!(
        "<form class=\"promote\" method=\"post\" action=\"/projects/{p}/envs/{to}/promote\">{}\
         <input type=\"hidden\" name=\"from\" value=\"{from}\">{REASON_FIELD} <button>Preview promotion from {from} to \
         {to}</button></form>\n",
        form.field(),
        p = escape(project),
        from = escape(from),
        to = escape(to),
    )
}

#[derive(Deserialize)]
pub struct StartForm {
    /// A build id or commit (prefix), or empty.
    #[serde(default)]
    build: String,
    /// An env whose builds go, or empty.
    #[serde(default)]
    from: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    form_token: String,
}

/// Starts a rollout of a build, or of another env's builds; the server drives it.
pub async fn start_rollout(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    Form(posted): Form<StartForm>,
) -> Response {
    if let Some(forged) = form.refuse_forged(&posted.form_token) {
        return forged;
    }
    let Some(reason) = reason_of(&posted.reason) else { return no_reason() };
    let given = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let asked = RolloutRequest {
        build: given(&posted.build),
        from: given(&posted.from),
        reason: Some(reason),
        ..Default::default()
    };
    match started(&caller, &state, &project, &env, asked).await {
        Ok(_) => Redirect::to(&format!("/projects/{project}/envs/{env}/rollout")).into_response(),
        Err(error) => refused(error),
    }
}

/// Aborts the env's active rollout.
pub async fn abort_rollout(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    Form(posted): Form<Reasoned>,
) -> Response {
    if let Some(forged) = form.refuse_forged(&posted.form_token) {
        return forged;
    }
    let Some(reason) = reason_of(&posted.reason) else { return no_reason() };
    match aborted(&caller, &state, &project, &env, AbortRequest { reason: Some(reason) }).await {
        Ok(_) => Redirect::to(&format!("/projects/{project}/envs/{env}/rollout")).into_response(),
        Err(error) => refused(error),
    }
}

/// The rollout page's controls for a releaser: start one (a build, or the
/// builds of another env) and abort the active one.
pub fn rollout_forms(form: &FormToken, project: &str, env: &str, sources: &[String]) -> String {
    let (p, e) = (escape(project), escape(env));
    let options: String = sources.iter().map(|s| format!("<option>{}</option>", escape(s))).collect();
    format!(
        "<h2>Act</h2>\n<form class=\"start-rollout\" method=\"post\" action=\"/projects/{p}/envs/{e}/rollout/start\">{f}\
         <label>Build <input name=\"build\" size=\"12\" placeholder=\"id or commit\"></label> or \
         <label>the builds of <select name=\"from\"><option value=\"\"></option>{options}</select></label> \
         {REASON_FIELD} <button>Start a rollout into {e}</button></form>\n\
         <form class=\"abort-rollout\" method=\"post\" action=\"/projects/{p}/envs/{e}/rollout/abort\">{f}{REASON_FIELD} \
         <button>Abort the active rollout</button></form>\n",
        f = form.field(),
    )
}
