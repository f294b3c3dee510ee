//! The Prefect calls behind gates and rollout verification: find a deployment by
//! name, start a verification run that a crashed caller can start again without
//! a second run, and list the runs that really ran one build.

use std::collections::{HashMap, HashSet};

use flowgate_core::BuildId;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{segment, FlowRun, ServerDeployment};
use crate::client::PrefectClient;
use crate::error::{PrefectError, Subject};
use crate::runs::{PullRecord, PULL_LOG_PREFIX};
use crate::spec::BUILD_TAG_PREFIX;

/// Tag added to every run flowgate starts to verify a rollout.
pub const VERIFY_TAG: &str = "flowgate-verify";
/// [`PrefectClient::runs_of_build`] reads at most this many runs (the newest).
pub const MAX_BUILD_RUNS: usize = 1000;
/// Page size of the filter endpoints (the server's default maximum).
const PAGE: usize = 200;
/// Run ids per log query when looking for pull log lines.
const LOG_BATCH: usize = 50;

/// A flow run of a deployment that ran (or was created for, and has not
/// pulled other code than) one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRun {
    pub id: String,
    pub name: String,
    /// `COMPLETED`, `FAILED`, `CRASHED`, `SCHEDULED`, ... (empty when stateless).
    pub state_type: String,
    /// A pull record naming the build was seen (labels or log line); false for
    /// a run created for the build that has no record (crashed before or while
    /// pulling, or has not pulled yet).
    pub confirmed: bool,
    pub idempotency_key: Option<String>,
}

/// One line of `POST /logs/filter`, with the run it belongs to.
#[derive(Debug, Deserialize)]
struct RunLog {
    flow_run_id: Option<String>,
    message: String,
}

impl PrefectClient {
    /// `GET /deployments/name/{flow}/{deployment}`: the deployment, with its
    /// `flow_name` filled, or `None` when the server has no such deployment.
    pub async fn find_deployment(
        &self,
        flow_name: &str,
        deployment_name: &str,
    ) -> Result<Option<ServerDeployment>, PrefectError> {
        let path = format!("deployments/name/{}/{}", segment(flow_name), segment(deployment_name));
        let subject = Subject { flow: Some(flow_name.into()), deployment: Some(deployment_name.into()), env: None };
        let found: Option<ServerDeployment> = self.call_optional(Method::GET, &path, &subject).await?;
        Ok(found.map(|d| ServerDeployment { flow_name: flow_name.to_string(), ..d }))
    }

    /// The runs of deployment `deployment_id` that ran `build`, newest expected
    /// start first.
    ///
    /// Prefect cannot filter on `deployment_version`, so this reads the runs of
    /// the deployment tagged `flowgate-build:<build>` (copied from the
    /// deployment when each run was created) and then judges each one by the
    /// pull record `flowgate pull` left on it (labels, else its log line):
    /// - names `build`: kept, `confirmed`;
    /// - names another build: dropped, it ran other code;
    /// - none: kept unconfirmed when its `deployment_version` is `build` and it
    ///   did not complete (FAILED/CRASHED/CANCELLED: a failing pull step ends a
    ///   run CRASHED without a record; or not finished yet); dropped otherwise.
    ///
    /// Reads at most [`MAX_BUILD_RUNS`] runs, the newest by expected start time;
    /// older ones are not returned. A run created for another build that pulled
    /// this one (e.g. created before a rollback, executed after it) carries the
    /// other build's tag and is not found here.
    #[tracing::instrument(level = "debug", skip_all, fields(deployment = %deployment_id, build = %build))]
    pub async fn runs_of_build(&self, deployment_id: &str, build: &BuildId) -> Result<Vec<BuildRun>, PrefectError> {
        let filter = json!({
            "deployment_id": {"any_": [deployment_id]},
            "tags": {"all_": [format!("{BUILD_TAG_PREFIX}{build}")]},
        });
        let mut runs: Vec<FlowRun> = Vec::new();
        let mut seen = HashSet::new();
        let mut offset = 0;
        while let Some(limit) = page_limit(offset) {
            let body =
                json!({"flow_runs": filter, "sort": "EXPECTED_START_TIME_DESC", "limit": limit, "offset": offset});
            let page: Vec<FlowRun> =
                self.call(Method::POST, "flow_runs/filter", Some(&body), &Subject::default()).await?;
            let full = page.len() == limit;
            offset += page.len();
            // A run created while paging shifts later pages by one: skip repeats.
            runs.extend(page.into_iter().filter(|r| seen.insert(r.id.clone())));
            if !full {
                break;
            }
        }
        if page_limit(offset).is_none() {
            tracing::warn!(
                limit = MAX_BUILD_RUNS,
                "read the newest runs of the build only; older ones are not counted"
            );
        }
        let unlabelled: Vec<&str> = runs.iter().filter(|r| label_record(r).is_none()).map(|r| r.id.as_str()).collect();
        let logged = self.pull_records_from_logs(&unlabelled).await?;
        Ok(runs
            .into_iter()
            .filter_map(|run| {
                let record = label_record(&run).or_else(|| logged.get(&run.id).cloned());
                let confirmed = judge(&run, record.as_ref(), build)?;
                Some(BuildRun {
                    state_type: run.state_type().to_string(),
                    id: run.id,
                    name: run.name,
                    confirmed,
                    idempotency_key: run.idempotency_key,
                })
            })
            .collect())
    }

    /// `POST /deployments/{id}/create_flow_run` with `parameters` (merged over
    /// the deployment's by the server), tags `tags` plus [`VERIFY_TAG`] (the
    /// server adds the deployment's tags) and an idempotency key.
    ///
    /// Safe to call again after a crash: the same `(deployment_id,
    /// idempotency_key)` returns the run the first call created, as it is now,
    /// and never creates a second one (a repeat's `parameters` and `tags` are
    /// ignored). Prefect 3.9.1 scopes idempotency keys per *flow*, not per
    /// deployment, so the key sent is `<deployment_id>:<idempotency_key>`:
    /// otherwise the qa and prod deployments of one flow on a shared server
    /// would hand each other's runs back.
    #[tracing::instrument(level = "debug", skip_all, fields(deployment = %deployment_id, key = %idempotency_key))]
    pub async fn create_verification_run(
        &self,
        deployment_id: &str,
        parameters: &Map<String, Value>,
        idempotency_key: &str,
        tags: &[String],
    ) -> Result<FlowRun, PrefectError> {
        let mut all_tags: Vec<&str> = tags.iter().map(String::as_str).chain([VERIFY_TAG]).collect();
        all_tags.sort_unstable();
        all_tags.dedup();
        let body = json!({
            "parameters": parameters,
            "idempotency_key": scoped_key(deployment_id, idempotency_key),
            "tags": all_tags,
        });
        let path = format!("deployments/{}/create_flow_run", segment(deployment_id));
        self.call(Method::POST, &path, Some(&body), &Subject::default()).await
    }

    /// The newest pull record in the log lines of each of `run_ids`.
    async fn pull_records_from_logs(&self, run_ids: &[&str]) -> Result<HashMap<String, PullRecord>, PrefectError> {
        let mut found = HashMap::new();
        for chunk in run_ids.chunks(LOG_BATCH) {
            let filter = json!({
                "flow_run_id": {"any_": chunk},
                "text": {"query": format!("\"{PULL_LOG_PREFIX}\"")},
            });
            let mut offset = 0;
            loop {
                let body = json!({"logs": filter, "sort": "TIMESTAMP_DESC", "limit": PAGE, "offset": offset});
                let page: Vec<RunLog> =
                    self.call(Method::POST, "logs/filter", Some(&body), &Subject::default()).await?;
                offset += page.len();
                let done = page.len() < PAGE;
                for line in page {
                    let (Some(run), Some(record)) = (line.flow_run_id, PullRecord::from_log_message(&line.message))
                    else {
                        continue;
                    };
                    // Newest first: the first record seen for a run wins.
                    found.entry(run).or_insert(record);
                }
                if done {
                    break;
                }
            }
        }
        Ok(found)
    }
}

/// The idempotency key sent for `key` on one deployment (see
/// [`PrefectClient::create_verification_run`]); runs carry it back.
pub fn scoped_key(deployment_id: &str, key: &str) -> String {
    format!("{deployment_id}:{key}")
}

/// The `limit` of the page at `offset`, or `None` once [`MAX_BUILD_RUNS`] are read.
fn page_limit(offset: usize) -> Option<usize> {
    (offset < MAX_BUILD_RUNS).then(|| PAGE.min(MAX_BUILD_RUNS - offset))
}

fn label_record(run: &FlowRun) -> Option<PullRecord> {
    run.labels.as_ref().and_then(PullRecord::from_labels)
}

/// Whether a run tagged with `build` counts for it: `Some(confirmed)` keeps it.
fn judge(run: &FlowRun, record: Option<&PullRecord>, build: &BuildId) -> Option<bool> {
    match record {
        Some(record) => (record.build == *build).then_some(true),
        None => {
            let created_for_build = run.deployment_version.as_deref() == Some(build.as_str());
            (created_for_build && run.state_type() != "COMPLETED").then_some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use flowgate_core::Digest;

    use super::*;
    use crate::api::FlowRunState;

    fn build(seed: &str) -> BuildId {
        Digest::of(seed.as_bytes()).to_hex()[..20].parse().unwrap()
    }

    fn run(version: &str, state: &str) -> FlowRun {
        FlowRun {
            id: "r".into(),
            name: "n".into(),
            deployment_id: Some("d".into()),
            deployment_version: Some(version.into()),
            flow_version: None,
            state: (!state.is_empty()).then(|| FlowRunState {
                state_type: state.into(),
                name: state.into(),
                message: None,
            }),
            tags: vec![],
            idempotency_key: None,
            labels: None,
            parameters: Default::default(),
        }
    }

    #[test]
    fn a_run_counts_for_the_build_its_pull_record_names() {
        let (a, b) = (build("a"), build("b"));
        let pulled = |id: &BuildId| PullRecord { build: id.clone(), bundle: Digest::of(b"x") };
        // The record wins over deployment_version, whatever the state.
        assert_eq!(judge(&run(a.as_str(), "COMPLETED"), Some(&pulled(&a)), &a), Some(true));
        assert_eq!(judge(&run(b.as_str(), "FAILED"), Some(&pulled(&a)), &a), Some(true));
        assert_eq!(judge(&run(a.as_str(), "COMPLETED"), Some(&pulled(&b)), &a), None);
        assert_eq!(judge(&run(a.as_str(), "CRASHED"), Some(&pulled(&b)), &a), None);
    }

    #[test]
    fn a_run_without_record_counts_only_if_created_for_the_build_and_not_completed() {
        let (a, b) = (build("a"), build("b"));
        for state in ["FAILED", "CRASHED", "CANCELLED", "SCHEDULED", "PENDING", "RUNNING", "CANCELLING", ""] {
            assert_eq!(judge(&run(a.as_str(), state), None, &a), Some(false), "{state}");
            assert_eq!(judge(&run(b.as_str(), state), None, &a), None, "{state}");
        }
        assert_eq!(judge(&run(a.as_str(), "COMPLETED"), None, &a), None);
        let mut unversioned = run(a.as_str(), "CRASHED");
        unversioned.deployment_version = None;
        assert_eq!(judge(&unversioned, None, &a), None);
    }

    #[test]
    fn pages_stop_at_the_cap() {
        let mut offset = 0;
        let mut limits = vec![];
        while let Some(limit) = page_limit(offset) {
            limits.push(limit);
            offset += limit;
        }
        assert_eq!(limits, [200; 5]);
        assert_eq!(page_limit(950), Some(50));
        assert_eq!(page_limit(MAX_BUILD_RUNS), None);
    }

    #[test]
    fn keys_are_scoped_to_the_deployment() {
        assert_eq!(scoped_key("d1", "k"), "d1:k");
        assert_ne!(scoped_key("d1", "k"), scoped_key("d2", "k"));
    }
}
