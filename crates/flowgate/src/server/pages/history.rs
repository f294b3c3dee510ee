//! One flow's history in one env, newest first: each move with its build,
//! the verified identity that made it, its gates (an override shown loudly)
//! and its reason, as `flowgate history FLOW --env ENV` prints them.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use flowgate_core::{EnvName, FlowKey, Verified};

use super::actions::{may_move, REASON_FIELD};
use super::html::{self, escape};
use super::matrix::refused;
use super::PageCaller;
use crate::commands::gates::status_word;
use crate::commands::history::{gates_summary, move_label};
use crate::printer::age;
use crate::server::error::ApiError;
use crate::server::ledger_routes::readable_project;
use crate::server::AppState;

pub async fn history(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, flow, env)): Path<(String, String, String)>,
) -> Response {
    let ledger = match readable_project(&caller, &state, &project).await {
        Ok(ledger) => ledger,
        Err(error) => return refused(error),
    };
    let bad = |what: &str, e: String| refused(ApiError::bad_request(caller.request_id.clone(), format!("{what}: {e}")));
    let flow: FlowKey = match flow.parse() {
        Ok(flow) => flow,
        Err(e) => return bad("flow", format!("{e}")),
    };
    let env: EnvName = match env.parse() {
        Ok(env) => env,
        Err(e) => return bad("env", format!("{e}")),
    };
    let history = match ledger.history(&flow, &env, None).await {
        Ok(history) => history,
        Err(e) => return refused(ApiError::internal(caller.request_id.clone(), &e.into())),
    };
    let title = format!("{flow} in {env}");
    let mut out =
        format!("<p><a href=\"/projects/{p}\">{p}</a></p>\n<h1>{}</h1>\n", escape(&title), p = escape(&project));
    if history.len() > 1 && may_move(&caller, &state, &project, env.as_str()) {
        out.push_str(&format!(
            "<form class=\"rollback\" method=\"post\" action=\"/projects/{}/flows/{}/envs/{}/rollback\">{}{REASON_FIELD} \
             <button>Roll {} back in {}</button></form>\n",
            escape(&project),
            escape(flow.as_str()),
            escape(env.as_str()),
            form.field(),
            escape(flow.as_str()),
            escape(env.as_str()),
        ));
    }
    if history.is_empty() {
        let message = format!("`{flow}` has never been released in `{env}` of project `{project}`");
        return refused(ApiError::not_found(caller.request_id.clone(), message));
    }
    let now = Utc::now();
    out.push_str(
        "<table class=\"history\">\n<thead><tr><th>revision</th><th>build</th><th>move</th><th>by</th><th>age</th>\
         <th>gates</th><th>rollout</th><th>reason</th></tr></thead>\n<tbody>\n",
    );
    for r in &history {
        let what = move_label(&r.kind);
        let by = r.audit.verified.as_ref().map_or_else(|| r.actor.clone(), Verified::label);
        out.push_str(&format!(
            "<tr><td>r{}</td><td><a href=\"/projects/{p}/builds/{b}\"><code>{}</code></a></td><td>{}</td><td class=\"actor\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td class=\"reason\">{}</td></tr>\n",
            r.revision,
            escape(&r.build.as_str()[..r.build.as_str().len().min(8)]),
            escape(&what),
            escape(&by),
            age(r.created_at, now),
            escape(&gates_summary(r)),
            escape(r.audit.rollout.as_deref().unwrap_or("-")),
            escape(r.reason.as_deref().unwrap_or("")),
            b = escape(r.build.as_str()),
            p = escape(&project),
        ));
    }
    out.push_str("</tbody></table>\n");
    for r in history.iter().filter(|r| !r.audit.gates.is_empty()) {
        out.push_str(&format!("<h2>r{} gates</h2>\n", r.revision));
        if let Some(reason) = &r.audit.override_reason {
            out.push_str(&format!(
                "<p class=\"problem override\"><strong>GATES OVERRIDDEN</strong> by {}: {}</p>\n",
                escape(&r.actor),
                escape(reason)
            ));
        }
        out.push_str("<ul class=\"gates\">\n");
        for g in &r.audit.gates {
            out.push_str(&format!(
                "<li><strong>{}</strong> {}: {}</li>\n",
                escape(&status_word(&g.status)),
                escape(&g.gate.to_string()),
                escape(&g.detail)
            ));
        }
        out.push_str("</ul>\n");
    }
    html::page(&title, Some(&caller.subject), &out).into_response()
}
