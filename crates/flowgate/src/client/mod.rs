//! The CLI as a client of a flowgate server: which server, which credential,
//! and the requests that turn the server's answers into flowgate's exit codes. A
//! missing or refused credential and a missing right are exit 3, naming what
//! is missing; the server's other errors carry its message and request id.

mod ci_token;
pub mod credentials;

use std::time::Duration;

use anyhow::{Context as _, Result};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::exit::{usage, ConflictError, RefusedError};
use crate::git::Repo;
use crate::project::{vars, Project};
use credentials::Credentials;

/// A server URL as given: trailing slashes dropped, so one server is one key.
pub fn server_url(given: Option<String>) -> Result<String> {
    let given = given.ok_or_else(|| usage(format!("No flowgate server: give --server URL or set {}", vars::SERVER)))?;
    let url = url::Url::parse(&given).map_err(|e| usage(format!("Server URL `{given}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(usage(format!("Server URL `{given}` is not http:// or https://")));
    }
    Ok(given.trim_end_matches('/').to_string())
}

/// An authenticated connection to one server.
#[derive(Debug)]
pub struct ServerClient {
    pub server: String,
    token: String,
    http: reqwest::Client,
}

impl ServerClient {
    /// The credential is `FLOWGATE_TOKEN`; else, in a CI job, the job's ID
    /// token (`FLOWGATE_ID_TOKEN`, or GitHub Actions' on request); else what
    /// `flowgate login` stored for `server`. With none, exit 3 naming them.
    pub async fn connect(server: String) -> Result<Self> {
        if let Some(token) = std::env::var(vars::TOKEN).ok().filter(|t| !t.is_empty()) {
            return Ok(Self::with_token(server, token));
        }
        if let Some(token) = ci_token::ci_id_token().await? {
            return Ok(Self::with_token(server, token));
        }
        let stored = Credentials::load(&credentials::path()?)?.token(&server).map(str::to_string);
        let token = stored.ok_or_else(|| {
            RefusedError(format!(
                "No credential for server `{server}`: set {} (or, in CI, {} or GitHub Actions' \
                 `id-token: write`) or run `flowgate login --server {server}`",
                vars::TOKEN,
                vars::ID_TOKEN
            ))
        })?;
        Ok(Self::with_token(server, token))
    }

    /// The server the commands go through when `FLOWGATE_SERVER` is set
    /// (with its credential), or None for direct mode.
    pub async fn from_env() -> Result<Option<Self>> {
        match std::env::var(vars::SERVER).ok().filter(|s| !s.is_empty()) {
            Some(server) => Ok(Some(Self::connect(server_url(Some(server))?).await?)),
            None => Ok(None),
        }
    }

    pub fn with_token(server: String, token: String) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Self { server, token, http }
    }

    /// GET `path` (under `/api/v1`) as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::GET, path, None).await
    }

    /// POST `body` as JSON to `path`; the answer as `T`.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.send(Method::POST, path, Some(Payload::Json(body))).await
    }

    /// PUT the bytes of `file` to `path`; the answer as `T`. The file is read
    /// whole: bundles are bounded by the server's `bundle_limit`.
    pub async fn put_file<T: DeserializeOwned>(&self, path: &str, file: &std::path::Path) -> Result<T> {
        let bytes = tokio::fs::read(file).await.with_context(|| format!("Failed to read `{}`", file.display()))?;
        self.send(Method::PUT, path, Some(Payload::Bytes(bytes))).await
    }

    /// DELETE `path`; the answer as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::DELETE, path, None).await
    }

    async fn send<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<Payload<'_>>) -> Result<T> {
        let url = format!("{}/api/v1{path}", self.server);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        request = match body {
            Some(Payload::Json(value)) => request.json(value),
            // A bundle may take longer than an answer: ten minutes.
            Some(Payload::Bytes(bytes)) => {
                request.header("content-type", "application/octet-stream").timeout(Duration::from_secs(600)).body(bytes)
            }
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("Failed to reach the flowgate server at `{}`", self.server))?;
        let status = response.status();
        let body = response.bytes().await.with_context(|| format!("Failed to read the answer of `{url}`"))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .with_context(|| format!("The server's answer to `{url}` is not the JSON expected"));
        }
        let error: Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or("no message").to_string();
        let request = error["error"]["request_id"].as_str().unwrap_or("none").to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED => RefusedError(format!(
                "The flowgate server at `{}` refused the credential (from {}, the CI job's ID token or \
                 `flowgate login`): it is unknown, expired or revoked, or the server does not trust its issuer \
                 and audience",
                self.server,
                vars::TOKEN
            ))
            .into(),
            StatusCode::FORBIDDEN => RefusedError(format!("The flowgate server refused: {message}")).into(),
            StatusCode::CONFLICT => ConflictError(format!("The flowgate server says: {message}")).into(),
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::PAYLOAD_TOO_LARGE => {
                usage(format!("The flowgate server says: {message}"))
            }
            // An answer that cannot be told (exit 1, as in direct mode), not a failure of the server.
            StatusCode::UNPROCESSABLE_ENTITY => anyhow::anyhow!("The flowgate server says: {message}"),
            _ => anyhow::anyhow!("The flowgate server failed ({status}): {message} (request id {request})"),
        })
    }
}

/// A request's body.
enum Payload<'a> {
    Json(&'a Value),
    Bytes(Vec<u8>),
}

/// A BUILD argument as the server takes it: a build id or commit (or a prefix
/// of either) as given, or a git ref (`HEAD`, a branch, a tag) resolved here
/// to its commit, since the server has no checkout.
pub fn server_build_ref(project: &Project, given: &str) -> Result<String> {
    let is_hex = given.len() >= 4 && given.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        return Ok(given.to_ascii_lowercase());
    }
    Repo::discover(&project.root)
        .ok()
        .and_then(|repo| repo.resolve_commit(given))
        .ok_or_else(|| usage(format!("Unknown build `{given}`: no build id, commit or git ref matches it")))
}
