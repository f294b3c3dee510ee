//! The record of what a flow run actually executed: `flowgate pull` writes it
//! onto the run it serves (labels plus a log line), and `flowgate which` reads
//! it back, because the run's `deployment_version` is fixed when the run is
//! created, not when its pull step fetches the code.

use std::fmt;

use flowgate_core::{BuildId, Digest};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::Instrument as _;

use crate::api::FlowRunState;
use crate::auth::PrefectAuth;
use crate::client::PrefectClient;
use crate::error::{PrefectError, Subject};

/// Flow run label holding the id of the build `flowgate pull` fetched.
pub const BUILD_LABEL: &str = "flowgate.build";
/// Flow run label holding the bundle digest `flowgate pull` fetched.
pub const BUNDLE_LABEL: &str = "flowgate.bundle";
/// Start of the log line `flowgate pull` writes on the run (the label's twin,
/// visible in the UI's run log and kept even if labels are edited later).
pub const PULL_LOG_PREFIX: &str = "flowgate pulled build";
/// Logger name of that log line.
const LOGGER: &str = "flowgate.pull";

/// What a worker's flow-run process exports (Prefect 3.9.1: the worker sets
/// `PREFECT__FLOW_RUN_ID` and its own settings as `PREFECT_*` variables on the
/// process, and `run_shell_script` passes `os.environ` on to the pull command).
pub mod vars {
    pub const FLOW_RUN_ID: &str = "PREFECT__FLOW_RUN_ID";
    pub const API_URL: &str = "PREFECT_API_URL";
    pub const API_KEY: &str = "PREFECT_API_KEY";
    pub const AUTH_STRING: &str = "PREFECT_API_AUTH_STRING";
}

/// Which build and bundle one pull fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRecord {
    pub build: BuildId,
    pub bundle: Digest,
}

impl PullRecord {
    /// The log message: `flowgate pulled build <id> bundle <digest>`.
    pub fn log_message(&self) -> String {
        format!("{PULL_LOG_PREFIX} {} bundle {}", self.build, self.bundle.to_hex())
    }

    /// Reads a record from the run's labels (both labels must parse).
    pub fn from_labels(labels: &Map<String, Value>) -> Option<Self> {
        let build = labels.get(BUILD_LABEL)?.as_str()?.parse().ok()?;
        let bundle = labels.get(BUNDLE_LABEL)?.as_str()?.parse().ok()?;
        Some(Self { build, bundle })
    }

    /// Reads a record from a log message written by [`Self::log_message`].
    pub fn from_log_message(message: &str) -> Option<Self> {
        let rest = message.strip_prefix(PULL_LOG_PREFIX)?;
        let mut words = rest.split_whitespace();
        let build = words.next()?.parse().ok()?;
        (words.next()? == "bundle").then_some(())?;
        let bundle = words.next()?.parse().ok()?;
        Some(Self { build, bundle })
    }
}

/// The flow run a process serves and how to reach its API, read from the
/// process's environment. Its `Debug` never shows the credentials.
#[derive(Clone)]
pub struct RunContext {
    pub flow_run_id: String,
    pub api_url: String,
    pub auth: Option<PrefectAuth>,
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("flow_run_id", &self.flow_run_id)
            .field("api_url", &self.api_url)
            .field("auth", &self.auth)
            .finish()
    }
}

impl RunContext {
    /// `None` unless both the flow run id and the API URL are set and non-empty.
    /// An API key wins over an auth string, as in Prefect's own client.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let flow_run_id = get(vars::FLOW_RUN_ID)?;
        let api_url = get(vars::API_URL)?;
        let auth =
            get(vars::API_KEY).map(PrefectAuth::Bearer).or_else(|| get(vars::AUTH_STRING).map(PrefectAuth::Basic));
        Some(Self { flow_run_id, api_url, auth })
    }

    /// [`Self::from_lookup`] over this process's environment.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// A flow run with what `which` needs: labels, versions, deployment, state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunDetail {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub deployment_id: Option<String>,
    pub deployment_version: Option<String>,
    /// Prefect's MD5 of the entrypoint file, computed when the run executed.
    pub flow_version: Option<String>,
    pub state: Option<FlowRunState>,
    #[serde(default)]
    pub labels: Option<Map<String, Value>>,
}

impl RunDetail {
    pub fn pull_record(&self) -> Option<PullRecord> {
        self.labels.as_ref().and_then(PullRecord::from_labels)
    }

    pub fn state_type(&self) -> &str {
        self.state.as_ref().map(|s| s.state_type.as_str()).unwrap_or("")
    }
}

impl PrefectClient {
    /// Records `record` on flow run `flow_run_id`: merges the two labels
    /// (`PATCH /flow_runs/{id}/labels` merges server-side) and writes one INFO
    /// log line. Both are attempted; the first failure is returned.
    pub async fn record_pull(&self, flow_run_id: &str, record: &PullRecord) -> Result<(), PrefectError> {
        let span = tracing::debug_span!("record_pull", flow_run = %flow_run_id, build = %record.build);
        let path = format!("flow_runs/{flow_run_id}/labels");
        let labels = json!({BUILD_LABEL: record.build.to_string(), BUNDLE_LABEL: record.bundle.to_hex()});
        let labelled = self
            .send(Method::PATCH, &path, Some(&labels), &Subject::default())
            .instrument(span.clone())
            .await
            .map(drop);
        let log = json!([{
            "name": LOGGER,
            "level": 20,
            "message": record.log_message(),
            "timestamp": rfc3339(std::time::SystemTime::now()),
            "flow_run_id": flow_run_id,
        }]);
        let logged = self.send(Method::POST, "logs/", Some(&log), &Subject::default()).instrument(span).await.map(drop);
        labelled.and(logged)
    }

    /// The flow run, or `None` when the server has no run with that id (404,
    /// or 422 for an id that is not a UUID).
    pub async fn read_run_detail(&self, id: &str) -> Result<Option<RunDetail>, PrefectError> {
        let path = format!("flow_runs/{}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
        match self.call(Method::GET, &path, None, &Subject::default()).await {
            Ok(run) => Ok(Some(run)),
            Err(PrefectError::Rejected { status: 404 | 422, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The pull record from the run's log lines (the newest wins), for runs whose
    /// labels were lost or edited.
    pub async fn pull_record_from_logs(&self, flow_run_id: &str) -> Result<Option<PullRecord>, PrefectError> {
        let body = json!({
            "logs": {"flow_run_id": {"any_": [flow_run_id]}, "text": {"query": format!("\"{PULL_LOG_PREFIX}\"")}},
            "sort": "TIMESTAMP_DESC",
            "limit": 50,
        });
        let lines: Vec<crate::api::LogLine> =
            self.call(Method::POST, "logs/filter", Some(&body), &Subject::default()).await?;
        Ok(lines.iter().find_map(|l| PullRecord::from_log_message(&l.message)))
    }
}

/// `2024-05-01T12:00:00.123Z` (UTC, milliseconds): the log's timestamp, without
/// a date crate (days to civil date after H. Hinnant's `civil_from_days`).
fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PullRecord {
        PullRecord { build: "0123456789abcdef0123".parse().unwrap(), bundle: Digest::of(b"bundle") }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.789
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(951_827_696_789)), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_735_689_599)), "2024-12-31T23:59:59.000Z");
    }

    #[test]
    fn labels_and_log_lines_round_trip() {
        let r = record();
        let labels = Map::from_iter([
            (BUILD_LABEL.to_string(), json!(r.build.to_string())),
            (BUNDLE_LABEL.to_string(), json!(r.bundle.to_hex())),
            ("other".to_string(), json!(1)),
        ]);
        assert_eq!(PullRecord::from_labels(&labels), Some(r.clone()));
        assert_eq!(PullRecord::from_log_message(&r.log_message()), Some(r.clone()));
        assert_eq!(PullRecord::from_log_message("flowgate pulled build nonsense bundle x"), None);
        let mut partial = labels.clone();
        partial.remove(BUNDLE_LABEL);
        assert_eq!(PullRecord::from_labels(&partial), None);
    }

    #[test]
    fn run_context_needs_run_id_and_url_and_prefers_the_key() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(RunContext::from_lookup(env(&[(vars::API_URL, "http://x/api")])).is_none());
        assert!(RunContext::from_lookup(env(&[(vars::FLOW_RUN_ID, "abc"), (vars::API_URL, " ")])).is_none());
        let both = RunContext::from_lookup(env(&[
            (vars::FLOW_RUN_ID, "abc"),
            (vars::API_URL, "http://x/api"),
            (vars::API_KEY, "pnu_secret"),
            (vars::AUTH_STRING, "u:secret2"),
        ]))
        .unwrap();
        assert_eq!(both.auth, Some(PrefectAuth::Bearer("pnu_secret".into())));
        assert!(!format!("{both:?}").contains("secret"), "{both:?}");
        let basic = RunContext::from_lookup(env(&[
            (vars::FLOW_RUN_ID, "abc"),
            (vars::API_URL, "http://x/api"),
            (vars::AUTH_STRING, "u:pw"),
        ]))
        .unwrap();
        assert_eq!(basic.auth, Some(PrefectAuth::Basic("u:pw".into())));
    }
}
