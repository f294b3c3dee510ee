//! An env's rollout, live: its waves, moves and verification runs (each a link
//! to the run in the Prefect UI), updated without reload. The page renders the
//! rollout once; a few lines of script open a server-sent event stream that
//! sends the rollout again, rendered the same way, whenever it changes (or a
//! new one starts). Without script the page is still whole, as of its loading.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use flowgate_core::rollout::{Phase, WaveOutcome};
use flowgate_core::Role;
use flowgate_ledger::Ledger;

use super::actions::{may_move, rollout_forms};
use super::html::{self, escape};
use super::matrix::refused;
use super::PageCaller;
use crate::commands::rollout_view::{phase_word, RolloutView};
use crate::printer::age;
use crate::server::auth::Caller;
use crate::server::error::ApiError;
use crate::server::move_routes::protected;
use crate::server::rollout_routes::{find, view};
use crate::server::AppState;

/// How often the event stream reads the rollout: the long poll's pace.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Replaces the rollout with each one the stream sends.
const LIVE: &str = "<script>new EventSource(location.pathname + \"/events\").addEventListener(\"rollout\", \
(e) => { document.getElementById(\"rollout\").outerHTML = e.data; });</script>\n";

pub async fn rollout(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
) -> Response {
    let watched = match Watched::open(&caller, &state, &project, &env).await {
        Ok(watched) => watched,
        Err(error) => return refused(error),
    };
    let (_, fragment) = watched.render(&caller).await;
    let p = escape(&project);
    let mut body =
        format!("<p><a href=\"/projects/{p}\">{p}</a></p>\n<h1>Rollout into {}</h1>\n{fragment}\n{LIVE}", escape(&env));
    if may_move(&caller, &state, &project, &env) {
        let pointers = watched.ledger.pointers(None).await.unwrap_or_default();
        let sources: BTreeSet<String> = pointers.into_iter().map(|p| p.env.to_string()).filter(|e| e != &env).collect();
        body.push_str(&rollout_forms(&form, &project, &env, &sources.into_iter().collect::<Vec<_>>()));
    }
    html::page(&format!("{project}: rollout into {env}"), Some(&caller.subject), &body).into_response()
}

/// The rollout rendered again each time it changes, as `rollout` events.
pub async fn events(
    PageCaller(caller, _): PageCaller,
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
) -> Response {
    let watched = match Watched::open(&caller, &state, &project, &env).await {
        Ok(watched) => watched,
        Err(error) => return refused(error),
    };
    let stream = futures::stream::unfold((watched, caller, None), |(watched, caller, last)| async move {
        loop {
            let (key, fragment) = watched.render(&caller).await;
            if last.as_ref() != Some(&key) {
                // A carriage return cannot travel in an event (a newline starts another `data:` line).
                let event = Event::default().event("rollout").data(fragment.replace('\r', ""));
                return Some((Ok::<_, Infallible>(event), (watched, caller, Some(key))));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// What a rollout page follows: one protected env of a project.
struct Watched {
    ledger: Box<dyn Ledger>,
    env: flowgate_core::EnvName,
    /// The env's Prefect server, for links to its runs.
    prefect_api_url: Option<String>,
}

impl Watched {
    async fn open(caller: &Caller, state: &AppState, project: &str, env: &str) -> Result<Self, ApiError> {
        let (_, env, ledger) = protected(caller, state, project, env, Role::Viewer).await?;
        Ok(Self { ledger, prefect_api_url: env.config.prefect_api_url.clone(), env: env.ledger_name })
    }

    /// The rollout as HTML, with a key that changes whenever it does.
    async fn render(&self, caller: &Caller) -> (String, String) {
        let found = match find(caller, self.ledger.as_ref(), &self.env, None).await {
            Ok(record) => view(caller, self.ledger.as_ref(), record).await,
            Err(error) => Err(error),
        };
        match found {
            Ok(view) => {
                let key = format!("{}@{}", view.rollout.id, view.rollout.version);
                (key, fragment(&view, self.prefect_api_url.as_deref()))
            }
            Err(error) if error.status == axum::http::StatusCode::NOT_FOUND => (
                "none".into(),
                format!(
                    "<div id=\"rollout\" data-status=\"none\"><p class=\"muted\">`{}` has had no rollout yet; \
                     this page shows one as soon as it starts.</p></div>",
                    escape(self.env.as_str())
                ),
            ),
            Err(error) => (
                format!("error {}", error.message),
                format!(
                    "<div id=\"rollout\" data-status=\"error\"><p class=\"problem\">{}</p></div>",
                    escape(&error.message)
                ),
            ),
        }
    }
}

/// One rollout: its state, then a row per flow of each wave with the wave's
/// outcome and the verification runs.
fn fragment(view: &RolloutView, prefect_api_url: Option<&str>) -> String {
    let (record, body) = (&view.rollout, &view.body);
    let mut out = format!(
        "<div id=\"rollout\" data-id=\"{}\" data-status=\"{}\" data-phase=\"{}\">\n<p class=\"rollout-state\">\
         <strong>{}</strong> ({}), started by {} {} ago{}</p>\n",
        escape(&record.id),
        record.status.as_str(),
        escape(&phase_word(body)),
        record.status.as_str(),
        escape(&phase_word(body)),
        escape(&record.actor),
        age(record.created_at, Utc::now()),
        body.reason.as_deref().map(|r| format!(": {}", escape(r))).unwrap_or_default(),
    );
    if let Some(reason) = &body.override_reason {
        out.push_str(&format!(
            "<p class=\"problem override\"><strong>GATES OVERRIDDEN</strong>: {}</p>\n",
            escape(reason)
        ));
    }
    out.push_str(
        "<table class=\"waves\"><thead><tr><th>wave</th><th>flow</th><th>from</th><th>to</th><th>revision</th>\
         <th>wave state</th><th>verification runs</th></tr></thead><tbody>\n",
    );
    for (i, wave) in body.waves.iter().enumerate() {
        let outcome = match wave.outcome {
            Some(WaveOutcome::Passed) => "passed",
            Some(WaveOutcome::Failed) => "failed",
            Some(WaveOutcome::RolledBack) => "rolled-back",
            None if i == body.wave && body.phase != Phase::Done => "in-progress",
            None => "pending",
        };
        for flow in &wave.flows {
            let runs: Vec<String> = flow
                .runs
                .iter()
                .map(|r| {
                    let name = escape(&r.name);
                    let link = prefect_api_url.map(|api| run_link(api, &r.flow_run_id));
                    let name = link.map_or(name.clone(), |href| format!("<a href=\"{}\">{name}</a>", escape(&href)));
                    format!(
                        "<span class=\"run run-{}\">{name} {}</span>",
                        escape(&r.state.to_lowercase()),
                        escape(&r.state)
                    )
                })
                .collect();
            let short = |b: &str| escape(&b[..b.len().min(8)]);
            out.push_str(&format!(
                "<tr data-wave=\"{}\" data-outcome=\"{outcome}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"outcome\">{}</td><td>{}</td></tr>\n",
                i + 1,
                i + 1,
                escape(flow.flow.as_str()),
                flow.replaced.as_ref().map_or_else(|| "-".into(), |r| short(r.build.as_str())),
                short(flow.build.as_str()),
                flow.released_revision.map_or_else(|| "-".into(), |r| format!("r{r}")),
                outcome.replace('-', " "),
                if runs.is_empty() { "-".into() } else { runs.join(", ") },
            ));
        }
    }
    out.push_str("</tbody></table>\n");
    if let Some(failure) = &body.failure {
        out.push_str(&format!("<p class=\"problem failure\">{}</p>\n", escape(failure)));
    }
    if let Some(driver) = &view.driver {
        out.push_str(&format!("<p class=\"muted\">driven by replica {}</p>\n", escape(&driver.holder)));
    }
    out.push_str("</div>");
    out
}

/// The run's page in the Prefect UI: the API URL without its `/api` (a
/// self-hosted server serves both), or Prefect Cloud's app for its API.
fn run_link(api_url: &str, flow_run_id: &str) -> String {
    let api = api_url.trim_end_matches('/');
    if let Some(rest) = api.strip_prefix("https://api.prefect.cloud/api/accounts/") {
        if let Some((account, workspace)) = rest.split_once("/workspaces/") {
            return format!(
                "https://app.prefect.cloud/account/{account}/workspace/{workspace}/runs/flow-run/{flow_run_id}"
            );
        }
    }
    format!("{}/runs/flow-run/{flow_run_id}", api.strip_suffix("/api").unwrap_or(api))
}

#[cfg(test)]
mod tests {
    use super::run_link;

    #[test]
    fn a_run_links_to_its_page_in_the_prefect_ui() {
        assert_eq!(run_link("http://127.0.0.1:4200/api", "r1"), "http://127.0.0.1:4200/runs/flow-run/r1");
        assert_eq!(run_link("https://prefect.internal/api/", "r1"), "https://prefect.internal/runs/flow-run/r1");
        assert_eq!(
            run_link("https://api.prefect.cloud/api/accounts/a1/workspaces/w1", "r1"),
            "https://app.prefect.cloud/account/a1/workspace/w1/runs/flow-run/r1"
        );
    }
}
