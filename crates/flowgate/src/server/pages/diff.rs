//! Two envs side by side: which flows run different builds and the files that
//! changed between them, as `flowgate diff FROM TO` prints it.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use flowgate_core::EnvName;
use serde::Deserialize;

use super::actions::{may_move, promote_form};
use super::html::{self, escape};
use super::matrix::refused;
use super::PageCaller;
use crate::commands::diff::{env_diff, render};
use crate::server::build_routes::readable_store;
use crate::server::error::ApiError;
use crate::server::ledger_routes::readable_project;
use crate::server::AppState;

#[derive(Deserialize)]
pub struct Envs {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

pub async fn diff(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(envs): Query<Envs>,
) -> Response {
    let result = async {
        let ledger = readable_project(&caller, &state, &project).await?;
        let internal = |e: anyhow::Error| ApiError::internal(caller.request_id.clone(), &e);
        let pointers = ledger.pointers(None).await.map_err(|e| internal(e.into()))?;
        let known: BTreeSet<String> = state
            .protected
            .get(&project)
            .into_iter()
            .flatten()
            .map(|e| e.name.to_string())
            .chain(pointers.iter().map(|p| p.env.to_string()))
            .collect();
        let p = escape(&project);
        let mut out = format!("<p><a href=\"/projects/{p}\">{p}</a></p>\n<h1>Diff</h1>\n");
        out.push_str(&format!(
            "<form method=\"get\"><label>from {}</label> <label>to {}</label> <button>Compare</button></form>\n",
            select("from", &known, &envs.from),
            select("to", &known, &envs.to)
        ));
        if envs.from.is_empty() || envs.to.is_empty() {
            return Ok(out);
        }
        let bad = |what: &str, e: String| ApiError::bad_request(caller.request_id.clone(), format!("{what}: {e}"));
        let from: EnvName = envs.from.parse().map_err(|e| bad("from", format!("{e}")))?;
        let to: EnvName = envs.to.parse().map_err(|e| bad("to", format!("{e}")))?;
        let store = readable_store(&caller, &state, &project)?;
        let diff = env_diff(ledger.as_ref(), store.as_ref(), &from, &to, true).await.map_err(internal)?;
        let mut text = String::new();
        render(&mut text, &diff);
        out.push_str(&format!("<pre class=\"diff\">{}</pre>\n", escape(&text)));
        if may_move(&caller, &state, &project, to.as_str()) {
            out.push_str(&promote_form(&form, &project, from.as_str(), to.as_str()));
        }
        Ok::<_, ApiError>(out)
    }
    .await;
    match result {
        Ok(body) => html::page(&format!("{project}: diff"), Some(&caller.subject), &body).into_response(),
        Err(error) => refused(error),
    }
}

/// A drop-down of the envs, `chosen` selected (kept even when unknown, so the
/// page says what was asked).
fn select(name: &str, envs: &BTreeSet<String>, chosen: &str) -> String {
    let mut out = format!("<select name=\"{name}\"><option value=\"\"></option>");
    let extra = (!chosen.is_empty() && !envs.contains(chosen)).then_some(chosen);
    for env in envs.iter().map(String::as_str).chain(extra) {
        let selected = if env == chosen { " selected" } else { "" };
        out.push_str(&format!("<option{selected}>{}</option>", escape(env)));
    }
    out.push_str("</select>");
    out
}
