//! The CLI as a client of a flowgate server: which server, which credential,
//! and one GET that turns the server's answers into flowgate's exit codes. A
//! missing or refused credential and a missing right are exit 3, naming what
//! is missing; the server's other errors carry its message and request id.

pub mod credentials;

use std::time::Duration;

use anyhow::{Context as _, Result};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::exit::{usage, RefusedError};
use crate::project::vars;
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
    /// The credential is `FLOWGATE_TOKEN`, else what `flowgate login` stored
    /// for `server`; with neither, exit 3 naming both.
    pub fn connect(server: String) -> Result<Self> {
        let token = match std::env::var(vars::TOKEN).ok().filter(|t| !t.is_empty()) {
            Some(token) => token,
            None => Credentials::load(&credentials::path()?)?.token(&server).map(str::to_string).ok_or_else(|| {
                RefusedError(format!(
                    "No credential for server `{server}`: set {} or run `flowgate login --server {server}`",
                    vars::TOKEN
                ))
            })?,
        };
        Ok(Self::with_token(server, token))
    }

    /// The server the read commands go through when `FLOWGATE_SERVER` is set
    /// (with its credential), or None for direct mode.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(vars::SERVER).ok().filter(|s| !s.is_empty()) {
            Some(server) => Ok(Some(Self::connect(server_url(Some(server))?)?)),
            None => Ok(None),
        }
    }

    pub fn with_token(server: String, token: String) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Self { server, token, http }
    }

    /// GET `path` (under `/api/v1`) as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}/api/v1{path}", self.server);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
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
                "The flowgate server at `{}` refused the credential (from {} or `flowgate login`): it is unknown, expired or revoked",
                self.server,
                vars::TOKEN
            ))
            .into(),
            StatusCode::FORBIDDEN => RefusedError(format!("The flowgate server refused: {message}")).into(),
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => usage(format!("The flowgate server says: {message}")),
            _ => anyhow::anyhow!("The flowgate server failed ({status}): {message} (request id {request})"),
        })
    }
}
