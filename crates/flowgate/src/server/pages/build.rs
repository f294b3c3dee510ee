//! One build: what `flowgate show` prints, the envs that run it, the files
//! changed against the build it replaced there, its approvals, the parameter
//! schema of each flow, and for an approver a form to approve it for an env.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use flowgate_core::{Build, BuildId, EnvName, ManifestDiff, Role, Verified};
use flowgate_ledger::Ledger;
use flowgate_store::ArtifactStore;
use serde::Deserialize;

use super::html::{self, escape};
use super::matrix::refused;
use super::{problem, FormToken, PageCaller};
use crate::commands::approve::{record_approvals, Who};
use crate::commands::builds::{render_build, render_shown, shown};
use crate::printer::age;
use crate::server::auth::Caller;
use crate::server::build_routes::readable_store;
use crate::server::error::ApiError;
use crate::server::ledger_routes::{one_build, readable_project, BuildRef};
use crate::server::AppState;

/// At most this many changed files are listed per replaced build.
const FILES_SHOWN: usize = 200;

pub async fn build(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, reference)): Path<(String, String)>,
) -> Response {
    match render(&caller, &form, &state, &project, &reference).await {
        Ok(body) => html::page(&format!("Build {}", short(&reference)), Some(&caller.subject), &body).into_response(),
        Err(error) => refused(error),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

async fn render(
    caller: &Caller,
    form: &FormToken,
    state: &AppState,
    project: &str,
    reference: &str,
) -> Result<String, ApiError> {
    let internal = |e: anyhow::Error| ApiError::internal(caller.request_id.clone(), &e);
    let ledger = readable_project(caller, state, project).await?;
    let build = one_build(caller, ledger.as_ref(), project, reference, BuildRef::IdOrCommit).await?;
    let store = readable_store(caller, state, project)?;
    let stored = match &store {
        Some(store) => store.has_bundle(&build.bundle).await.map_err(|e| internal(e.into()))?,
        None => false,
    };
    let mut text = String::new();
    match (&store, stored) {
        (Some(store), true) => {
            render_shown(&mut text, &shown(ledger.as_ref(), store, build.clone()).await.map_err(internal)?)
        }
        _ => {
            let provenance = ledger.provenance(&build.id).await.map_err(|e| internal(e.into()))?;
            render_build(&mut text, &build, None, &provenance);
        }
    }
    let p = escape(project);
    let mut out = format!(
        "<p><a href=\"/projects/{p}\">{p}</a></p>\n<h1>Build <code>{}</code></h1>\n<pre class=\"shown\">{}</pre>\n",
        escape(short(build.id.as_str())),
        escape(&text)
    );

    let pointers = ledger.pointers(None).await.map_err(|e| internal(e.into()))?;
    let running: Vec<_> = pointers.iter().filter(|p| p.build == build.id).collect();
    let mut runs_in: BTreeMap<&EnvName, Vec<&str>> = BTreeMap::new();
    for pointer in &running {
        runs_in.entry(&pointer.env).or_default().push(pointer.flow.as_str());
    }
    out.push_str("<h2>Runs in</h2>\n");
    if runs_in.is_empty() {
        out.push_str("<p class=\"muted\">No env runs this build.</p>\n");
    } else {
        out.push_str("<table class=\"runs-in\"><thead><tr><th>env</th><th>flows</th></tr></thead><tbody>\n");
        for (env, flows) in &runs_in {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape(env.as_str()),
                escape(&flows.join(", "))
            ));
        }
        out.push_str("</tbody></table>\n");
    }

    // The build each (flow, env) ran before this one, and what changed since.
    let mut replaced: BTreeMap<BuildId, BTreeSet<&EnvName>> = BTreeMap::new();
    for pointer in &running {
        let history = ledger.history(&pointer.flow, &pointer.env, Some(2)).await.map_err(|e| internal(e.into()))?;
        if let Some(before) = history.get(1).filter(|r| r.build != build.id) {
            replaced.entry(before.build.clone()).or_default().insert(&pointer.env);
        }
    }
    if !replaced.is_empty() {
        out.push_str("<h2>Files changed against the build it replaced</h2>\n");
    }
    for (old, envs) in &replaced {
        let envs: Vec<&str> = envs.iter().map(|e| e.as_str()).collect();
        out.push_str(&format!(
            "<h3>against <a href=\"/projects/{p}/builds/{id}\"><code>{}</code></a> (in {})</h3>\n",
            escape(short(old.as_str())),
            escape(&envs.join(", ")),
            id = escape(old.as_str()),
        ));
        let files = match (&store, ledger.build(old).await.map_err(|e| internal(e.into()))?) {
            (Some(store), Some(old)) => changed_files(store, &old, &build).await,
            _ => None,
        };
        out.push_str(&match files {
            Some(files) => files_list(&files),
            None => "<p class=\"muted\">One of the two bundles is not in this server's store.</p>\n".into(),
        });
    }

    out.push_str(&approvals(caller, form, ledger.as_ref(), state, project, &build, &pointers).await?);
    out.push_str(&schemas(&build));
    Ok(out)
}

async fn changed_files(store: &ArtifactStore, old: &Build, new: &Build) -> Option<ManifestDiff> {
    if old.bundle == new.bundle {
        return Some(ManifestDiff::default());
    }
    let (a, b) = (store.manifest(&old.bundle).await.ok()?, store.manifest(&new.bundle).await.ok()?);
    Some(ManifestDiff::between(&a, &b))
}

fn files_list(files: &ManifestDiff) -> String {
    let lines: Vec<String> = [("+", &files.added), ("-", &files.removed), ("M", &files.modified)]
        .into_iter()
        .flat_map(|(mark, list)| list.iter().map(move |f| format!("{mark} {f}")))
        .collect();
    if lines.is_empty() {
        return "<p class=\"muted\">No file changed.</p>\n".into();
    }
    let more = lines.len().saturating_sub(FILES_SHOWN);
    let mut out = format!("<pre class=\"files\">{}</pre>\n", escape(&lines[..lines.len().min(FILES_SHOWN)].join("\n")));
    if more > 0 {
        out.push_str(&format!("<p class=\"muted\">and {more} more.</p>\n"));
    }
    out
}

/// The approvals of the build in every env it could go to, and a form for
/// each env the caller may approve it for (none for anyone else).
async fn approvals(
    caller: &Caller,
    form: &FormToken,
    ledger: &dyn Ledger,
    state: &AppState,
    project: &str,
    build: &Build,
    pointers: &[flowgate_core::Pointer],
) -> Result<String, ApiError> {
    let protected = state.protected.get(project).into_iter().flatten().map(|e| e.name.clone());
    let mut envs: Vec<EnvName> = protected.collect();
    let others: BTreeSet<EnvName> = pointers.iter().map(|p| p.env.clone()).collect();
    envs.extend(
        others.into_iter().filter(|e| !state.protected.get(project).is_some_and(|p| p.iter().any(|c| &c.name == e))),
    );
    let mut rows = String::new();
    for env in &envs {
        let approvals = ledger
            .approvals(env, &build.id)
            .await
            .map_err(|e| ApiError::internal(caller.request_id.clone(), &e.into()))?;
        for a in approvals {
            let by = a.verified.as_ref().map_or_else(|| a.actor.clone(), Verified::label);
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"actor\">{}</td><td>{}</td><td class=\"reason\">{}</td></tr>\n",
                escape(env.as_str()),
                escape(a.flow.as_ref().map_or("every flow", |f| f.as_str())),
                escape(&by),
                age(a.created_at, Utc::now()),
                escape(&a.reason)
            ));
        }
    }
    let mut out = String::from("<h2>Approvals</h2>\n");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No approval recorded.</p>\n");
    } else {
        out.push_str(
            "<table class=\"approvals\"><thead><tr><th>env</th><th>flows</th><th>by</th><th>age</th><th>reason</th>\
             </tr></thead><tbody>\n",
        );
        out.push_str(&rows);
        out.push_str("</tbody></table>\n");
    }
    let action = format!("/projects/{}/builds/{}/approve", escape(project), escape(build.id.as_str()));
    for env in envs.iter().filter(|env| caller.require(Role::Approver, Some(env)).is_ok()) {
        out.push_str(&format!(
            "<form class=\"approve\" method=\"post\" action=\"{action}\">{}<input type=\"hidden\" name=\"env\" \
             value=\"{e}\"><label>Reason <input name=\"reason\" required size=\"48\"></label> \
             <button>Approve for {e}</button></form>\n",
            form.field(),
            e = escape(env.as_str()),
        ));
    }
    Ok(out)
}

/// Each flow's parameter schema, as the build carries it (the same in every env).
fn schemas(build: &Build) -> String {
    let Some(settings) = &build.settings else {
        return "<h2>Parameter schemas</h2>\n<p class=\"muted\">Not recorded: the build was made before builds carried \
                their settings.</p>\n"
            .into();
    };
    let mut seen = BTreeMap::new();
    for env in settings.envs() {
        for (flow, d) in settings.flows(env) {
            seen.entry(flow.as_str()).or_insert(&d.parameter_schema);
        }
    }
    let mut out = String::from("<h2>Parameter schemas</h2>\n");
    if seen.is_empty() {
        out.push_str("<p class=\"muted\">None: the build carries no deployment (no env had a Prefect server).</p>\n");
    }
    for (flow, schema) in seen {
        let pretty = serde_json::to_string_pretty(schema).unwrap_or_default();
        out.push_str(&format!(
            "<details class=\"schema\"><summary>{}</summary><pre>{}</pre></details>\n",
            escape(flow),
            escape(&pretty)
        ));
    }
    out
}

#[derive(Deserialize)]
pub struct ApproveForm {
    env: String,
    reason: String,
    #[serde(default)]
    form_token: String,
}

/// Approves the build for the env as the signed-in caller, who needs
/// `approver` there, as through the API; then shows the build again.
pub async fn approve(
    PageCaller(caller, form): PageCaller,
    State(state): State<AppState>,
    Path((project, reference)): Path<(String, String)>,
    Form(posted): Form<ApproveForm>,
) -> Response {
    if let Some(forged) = form.refuse_forged(&posted.form_token) {
        return forged;
    }
    let id = caller.request_id.clone();
    let env: EnvName = match posted.env.parse() {
        Ok(env) => env,
        Err(e) => return refused(ApiError::bad_request(id, format!("env: {e}"))),
    };
    if posted.reason.trim().is_empty() {
        return problem(StatusCode::BAD_REQUEST, "Bad request", "Say why the build is approved.");
    }
    let result = async {
        let ledger = readable_project(&caller, &state, &project).await?;
        caller.require(Role::Approver, Some(&env))?;
        let build = one_build(&caller, ledger.as_ref(), &project, &reference, BuildRef::IdOnly).await?;
        let who = Who::Verified(caller.verified());
        record_approvals(ledger.as_ref(), &env, &build, &[], posted.reason.trim(), who)
            .await
            .map_err(|e| ApiError::internal(id.clone(), &e))?;
        Ok::<_, ApiError>(build)
    }
    .await;
    match result {
        Ok(build) => Redirect::to(&format!("/projects/{project}/builds/{}", build.id)).into_response(),
        Err(error) => refused(error),
    }
}
