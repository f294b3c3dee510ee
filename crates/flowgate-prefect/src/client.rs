//! The HTTP core of the Prefect client: one connection pool, auth, bounded
//! retries with jittered backoff and a write counter.
//!
//! Writes may be sent concurrently (sync sends a plan's writes side by side);
//! how many are in flight at once is limited by an adaptive [`WriteLimit`]
//! that every write of the client shares. Reads are not limited: callers send
//! them one at a time. A busy answer (503, 429) is retried after `Retry-After`
//! or a backoff, and also cuts the limit.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument as _;

use crate::auth::PrefectAuth;
use crate::error::{describe_detail, PrefectError, Subject};
use crate::limit::{Outcome, WriteLimit, WriteStats};

/// Attempts per request (the first try plus retries): with [`backoff`], about
/// 6 to 11 s of waiting before a request is given up.
const MAX_ATTEMPTS: u32 = 8;
/// Idle connections are dropped before the server's ~5 s keep-alive ends.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for one Prefect API (one env's server or workspace).
pub struct PrefectClient {
    http: reqwest::Client,
    base: url::Url,
    auth: Option<PrefectAuth>,
    writes: AtomicU64,
    write_limit: WriteLimit,
}

impl fmt::Debug for PrefectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefectClient")
            .field("api_url", &self.base.as_str())
            .field("auth", &self.auth)
            .field("writes", &self.write_count())
            .finish()
    }
}

impl PrefectClient {
    /// A client for `api_url` (e.g. `http://127.0.0.1:4200/api`).
    pub fn new(api_url: &str, auth: Option<PrefectAuth>) -> Result<Self, PrefectError> {
        let mut base =
            url::Url::parse(api_url).map_err(|source| PrefectError::InvalidUrl { url: api_url.to_string(), source })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| PrefectError::Client { url: api_url.to_string(), source })?;
        Ok(Self { http, base, auth, writes: AtomicU64::new(0), write_limit: WriteLimit::default() })
    }

    /// The API root this client talks to.
    pub fn api_url(&self) -> &str {
        self.base.as_str()
    }

    /// How many writing requests (anything but GET and `*/filter` reads) were sent.
    pub fn write_count(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// What the adaptive limit on concurrent writes did so far.
    pub fn write_stats(&self) -> WriteStats {
        self.write_limit.stats()
    }

    /// Sends `method path` with an optional JSON body and decodes the answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        subject: &Subject,
    ) -> Result<T, PrefectError> {
        let bytes = self.send(method.clone(), path, body, subject).await?;
        let bytes = if bytes.is_empty() { b"null".to_vec() } else { bytes };
        serde_json::from_slice(&bytes).map_err(|source| PrefectError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            source,
        })
    }

    /// Like [`Self::call`], but a 404 is `None` rather than an error.
    pub(crate) async fn call_optional<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        subject: &Subject,
    ) -> Result<Option<T>, PrefectError> {
        match self.call(method, path, None, subject).await {
            Ok(value) => Ok(Some(value)),
            Err(PrefectError::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        subject: &Subject,
    ) -> Result<Vec<u8>, PrefectError> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|source| PrefectError::InvalidUrl { url: format!("{}{path}", self.base), source })?;
        let write = writes(&method, path);
        if write {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        let span =
            tracing::debug_span!("prefect_request", method = %method, path = %path, status = tracing::field::Empty);
        async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut request = self.http.request(method.clone(), url.clone());
                if let Some(auth) = &self.auth {
                    let mut value = HeaderValue::from_str(&auth.header_value()).unwrap_or(HeaderValue::from_static(""));
                    value.set_sensitive(true);
                    request = request.header(AUTHORIZATION, value);
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                // A write holds its place among the writes in flight until
                // its answer is in, not while it sleeps before a retry.
                let permit = if write { Some(self.write_limit.acquire().await) } else { None };
                let started = Instant::now();
                let sent = request.send().await;
                let busy = match &sent {
                    Ok(response) => {
                        let status = response.status();
                        status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
                    }
                    Err(source) => source.is_timeout(),
                };
                if permit.is_some() && (busy || sent.is_ok()) {
                    self.write_limit.record(if busy { Outcome::Busy } else { Outcome::Answered(started.elapsed()) });
                }
                drop(permit);
                let response = match sent {
                    Ok(response) => response,
                    Err(source) => {
                        let retryable = source.is_connect() || source.is_timeout() || source.is_request();
                        if retryable && attempt < MAX_ATTEMPTS {
                            tracing::debug!(attempt, error = %source, "retrying after a connection error");
                            tokio::time::sleep(backoff(attempt)).await;
                            continue;
                        }
                        return Err(PrefectError::Transport {
                            url: self.base.to_string(),
                            method: method.to_string(),
                            path: path.to_string(),
                            attempts: attempt,
                            source,
                        });
                    }
                };
                let status = response.status();
                tracing::Span::current().record("status", status.as_u16());
                tracing::debug!(attempt, "Prefect answered");
                if busy && attempt < MAX_ATTEMPTS {
                    let wait = retry_after(response.headers().get(RETRY_AFTER)).unwrap_or_else(|| backoff(attempt));
                    tracing::debug!(attempt, status = status.as_u16(), ?wait, "server busy, retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let bytes = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                if status.is_success() {
                    return Ok(bytes);
                }
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    return Err(PrefectError::Unauthorized {
                        url: self.base.to_string(),
                        method: method.to_string(),
                        path: path.to_string(),
                        status: status.as_u16(),
                    });
                }
                return Err(PrefectError::Rejected {
                    method: method.to_string(),
                    path: path.to_string(),
                    status: status.as_u16(),
                    subject: Box::new(subject.clone()),
                    detail: describe_detail(&String::from_utf8_lossy(&bytes)),
                });
            }
        }
        .instrument(span)
        .await
    }
}

/// Exponential backoff from 100 ms, capped at 5 s, with full jitter on the
/// upper half. The first waits are short because the usual busy answer is
/// Prefect on SQLite finding its database locked for a few milliseconds (by
/// another write or its own background services); the adaptive write limit,
/// not the wait, is what takes load off a server that stays busy.
fn backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    Duration::from_millis(base / 2 + jitter(base / 2 + 1))
}

/// A cheap pseudo-random number below `bound` (jitter needs no cryptography).
fn jitter(bound: u64) -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mixed = u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    (mixed >> 17) % bound.max(1)
}

/// `Retry-After` in seconds (HTTP dates are treated as absent), capped at 30 s.
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let seconds: f64 = value?.to_str().ok()?.trim().parse().ok()?;
    (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(30.0)))
}

/// Whether a request changes the server: anything but `GET` and the `POST`
/// reads (`…/filter`, `…/paginate`, `…/count`).
fn writes(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    *method != Method::GET && !["/filter", "/paginate", "/count"].iter().any(|read| path.ends_with(read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..10 {
            let wait = backoff(attempt);
            assert!(wait <= Duration::from_millis(5_000), "{wait:?}");
            assert!(wait >= Duration::from_millis(50), "{wait:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(100));
        assert!(backoff(5) >= Duration::from_millis(800));
        let waited: Duration = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(waited >= Duration::from_secs(5) && waited <= Duration::from_secs(12), "{waited:?} in all");
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(retry_after(Some(&HeaderValue::from_static("2"))), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(&HeaderValue::from_static("3600"))), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(Some(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"))), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn posts_that_read_are_not_writes() {
        assert!(!writes(&Method::GET, "work_pools/p"));
        assert!(!writes(&Method::POST, "deployments/filter"));
        assert!(!writes(&Method::POST, "deployments/paginate"));
        assert!(!writes(&Method::POST, "flows/filter/"));
        assert!(writes(&Method::POST, "flows/"));
        assert!(writes(&Method::PATCH, "deployments/1"));
        assert!(writes(&Method::DELETE, "deployments/1"));
    }

    #[test]
    fn debug_shows_url_but_not_the_secret() {
        let client =
            PrefectClient::new("http://127.0.0.1:1/api", Some(PrefectAuth::Basic("user:hunter2".into()))).unwrap();
        let shown = format!("{client:?}");
        assert!(shown.contains("127.0.0.1:1/api"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
