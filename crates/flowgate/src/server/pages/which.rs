//! `which`: paste a Prefect flow-run id, get the build, commit and image it
//! ran, as `flowgate which RUN --env ENV` prints it. Only the envs this server
//! protects have a Prefect server it can ask.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use flowgate_core::Role;
use serde::Deserialize;

use super::html::{self, escape};
use super::matrix::refused;
use super::PageCaller;
use crate::commands::which::{self, render, Undetermined};
use crate::server::error::ApiError;
use crate::server::ledger_routes::readable_project;
use crate::server::move_routes::{answer, protected};
use crate::server::AppState;

#[derive(Deserialize)]
pub struct Asked {
    #[serde(default)]
    env: String,
    #[serde(default)]
    run: String,
}

pub async fn which(
    PageCaller(caller, _): PageCaller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(asked): Query<Asked>,
) -> Response {
    let result = async {
        readable_project(&caller, &state, &project).await?;
        let envs: Vec<String> =
            state.protected.get(&project).into_iter().flatten().map(|e| e.name.to_string()).collect();
        let p = escape(&project);
        let mut out = format!("<p><a href=\"/projects/{p}\">{p}</a></p>\n<h1>Which build ran this flow run?</h1>\n");
        if envs.is_empty() {
            out.push_str(&format!(
                "<p class=\"muted\">This server protects no env of `{p}`, so it knows no Prefect server to ask.</p>\n"
            ));
            return Ok(out);
        }
        let options: String = envs
            .iter()
            .map(|e| {
                let selected = if *e == asked.env { " selected" } else { "" };
                format!("<option{selected}>{}</option>", escape(e))
            })
            .collect();
        out.push_str(&format!(
            "<form method=\"get\"><label>env <select name=\"env\">{options}</select></label> \
             <label>flow run id <input name=\"run\" value=\"{}\" size=\"40\" placeholder=\"a Prefect flow run id\"></label> \
             <button>Look up</button></form>\n",
            escape(&asked.run)
        ));
        let run = asked.run.trim();
        if run.is_empty() {
            return Ok(out);
        }
        let (server_project, env, ledger) = protected(&caller, &state, &project, &asked.env, Role::Viewer).await?;
        let found = which::which(&server_project, ledger.as_ref(), &env, run).await.map_err(|e| {
            match e.downcast_ref::<Undetermined>() {
                Some(undetermined) => ApiError::unprocessable(caller.request_id.clone(), undetermined.0.clone()),
                None => answer(&caller, e),
            }
        })?;
        let mut text = String::new();
        render(&found, &mut text);
        out.push_str(&format!("<pre class=\"which\">{}</pre>\n", escape(&text)));
        Ok::<_, ApiError>(out)
    }
    .await;
    match result {
        Ok(body) => html::page(&format!("{project}: which"), Some(&caller.subject), &body).into_response(),
        Err(error) => refused(error),
    }
}
