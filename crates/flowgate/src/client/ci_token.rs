//! A CI job's own credential: its OpenID Connect ID token, which the server
//! verifies against the CI's published keys, so no secret is stored in the CI.
//! GitLab CI puts the token in a variable the job declares (`id_tokens:
//! FLOWGATE_ID_TOKEN: aud: flowgate`); GitHub Actions hands it out on request to
//! jobs with `permissions: id-token: write`.

use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use crate::exit::RefusedError;
use crate::project::vars;

/// The audience asked for when `FLOWGATE_OIDC_AUDIENCE` is unset; the server's
/// `[[oidc]] audience` must be the same.
pub const DEFAULT_AUDIENCE: &str = "flowgate";

/// Set by GitHub Actions in a job allowed to request ID tokens.
const ACTIONS_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
const ACTIONS_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// The job's ID token when the CLI runs in a CI job that has one: the
/// `FLOWGATE_ID_TOKEN` variable, else GitHub Actions' token for the audience.
/// None outside CI. A failed GitHub request is exit 3 naming what to check.
pub async fn ci_id_token() -> Result<Option<String>> {
    if let Some(token) = non_empty(vars::ID_TOKEN) {
        return Ok(Some(token));
    }
    let (Some(url), Some(request_token)) = (non_empty(ACTIONS_REQUEST_URL), non_empty(ACTIONS_REQUEST_TOKEN)) else {
        return Ok(None);
    };
    let audience = non_empty(vars::OIDC_AUDIENCE).unwrap_or_else(|| DEFAULT_AUDIENCE.to_string());
    github_actions_token(&url, &request_token, &audience).await.map(Some)
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
struct ActionsAnswer {
    value: String,
}

async fn github_actions_token(url: &str, request_token: &str, audience: &str) -> Result<String> {
    let refused = |why: String| -> anyhow::Error {
        RefusedError(format!(
            "GitHub Actions gave no ID token for audience `{audience}` ({why}); the job needs \
             `permissions: id-token: write`"
        ))
        .into()
    };
    let mut request_url =
        url::Url::parse(url).map_err(|e| refused(format!("{ACTIONS_REQUEST_URL} is not a URL: {e}")))?;
    request_url.query_pairs_mut().append_pair("audience", audience);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    let response = http
        .get(request_url)
        .bearer_auth(request_token)
        .send()
        .await
        .map_err(|e| refused(format!("the request failed: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(refused(format!("the request was answered {status}")));
    }
    let answer: ActionsAnswer =
        response.json().await.map_err(|e| refused(format!("the answer is not the JSON expected: {e}")))?;
    Ok(answer.value)
}
