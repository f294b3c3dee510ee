//! The Prefect REST calls flowgate makes, typed by what flowgate reads back.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::PrefectClient;
use crate::error::{PrefectError, Subject};

/// Page size for filter endpoints (the server's default maximum).
const PAGE: usize = 200;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorkPool {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub pool_type: String,
    #[serde(default)]
    pub is_paused: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flow {
    pub id: String,
    pub name: String,
}

/// One page of `POST /deployments/paginate`.
#[derive(Debug, Deserialize)]
struct DeploymentPage {
    results: Vec<ServerDeployment>,
    pages: u64,
}

/// A deployment as the server has it: only the fields flowgate manages or reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerDeployment {
    pub id: String,
    pub name: String,
    pub flow_id: String,
    /// Filled by [`PrefectClient::read_deployments`] from the flow id.
    #[serde(default)]
    pub flow_name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub schedules: Vec<Value>,
    #[serde(default)]
    pub job_variables: Map<String, Value>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub parameter_openapi_schema: Option<Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub work_queue_name: Option<String>,
    pub work_pool_name: Option<String>,
    #[serde(default)]
    pub pull_steps: Option<Vec<Value>>,
    pub entrypoint: Option<String>,
    /// Deprecated by Prefect and `null` from a 3.x server, which answers the
    /// limit in `global_concurrency_limit`; read in case a server fills it.
    #[serde(default)]
    pub concurrency_limit: Option<u64>,
    /// The limit the server made for the deployment's `concurrency_limit`.
    #[serde(default)]
    pub global_concurrency_limit: Option<GlobalConcurrencyLimit>,
    #[serde(default)]
    pub concurrency_options: Option<ConcurrencyOptions>,
    /// Absent from older servers: Prefect's default, `true`.
    #[serde(default)]
    pub enforce_parameter_schema: Option<bool>,
}

/// The part of a `GlobalConcurrencyLimitResponse` flowgate reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GlobalConcurrencyLimit {
    pub limit: u64,
}

/// A deployment's `concurrency_options`, as the server answers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyOptions {
    /// `ENQUEUE` or `CANCEL_NEW`.
    pub collision_strategy: String,
    #[serde(default)]
    pub grace_period_seconds: Option<u64>,
}

impl ServerDeployment {
    /// flowgate manages exactly the deployments carrying its tag.
    pub fn is_managed(&self) -> bool {
        self.tags.iter().any(|t| t == crate::spec::MANAGED_TAG)
    }

    /// The deployment's concurrency limit, wherever the server answers it.
    pub fn limit(&self) -> Option<u64> {
        self.global_concurrency_limit.as_ref().map(|g| g.limit).or(self.concurrency_limit)
    }

    /// Whether the server rejects runs whose parameters break the schema.
    pub fn enforces_parameter_schema(&self) -> bool {
        self.enforce_parameter_schema.unwrap_or(true)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlowRunState {
    #[serde(rename = "type")]
    pub state_type: String,
    pub name: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlowRun {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub deployment_id: Option<String>,
    pub deployment_version: Option<String>,
    pub flow_version: Option<String>,
    pub state: Option<FlowRunState>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The key the run was created with; Prefect returns this run for a second
    /// create with the same key (scoped per flow, see `verify.rs`).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Where `flowgate pull` records what it fetched (see [`crate::runs::PullRecord`]).
    #[serde(default)]
    pub labels: Option<Map<String, Value>>,
    /// The parameters the run was created with (the deployment's merged with the caller's).
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

impl FlowRun {
    /// `COMPLETED`, `FAILED`, `CRASHED`, `SCHEDULED`, ... (empty when stateless).
    pub fn state_type(&self) -> &str {
        self.state.as_ref().map(|s| s.state_type.as_str()).unwrap_or("")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogLine {
    pub message: String,
    pub level: i64,
}

impl PrefectClient {
    /// `GET /health`: true when the server answers.
    pub async fn health(&self) -> Result<bool, PrefectError> {
        self.call(Method::GET, "health", None, &Subject::default()).await
    }

    /// Reads a work pool; a 404 is [`PrefectError::WorkPoolMissing`].
    pub async fn read_work_pool(&self, name: &str) -> Result<WorkPool, PrefectError> {
        let path = format!("work_pools/{}", segment(name));
        self.call_optional(Method::GET, &path, &Subject::default())
            .await?
            .ok_or_else(|| PrefectError::WorkPoolMissing { pool: name.to_string() })
    }

    /// Creates a work pool of `pool_type` with that type's default base job
    /// template, as `prefect work-pool create` does.
    pub async fn create_work_pool(&self, name: &str, pool_type: &str) -> Result<WorkPool, PrefectError> {
        let template = self.default_base_job_template(pool_type).await?.ok_or_else(|| {
            PrefectError::UnknownPoolType { pool: name.to_string(), pool_type: pool_type.to_string() }
        })?;
        let body = json!({"name": name, "type": pool_type, "base_job_template": template});
        self.call(Method::POST, "work_pools/", Some(&body), &Subject::default()).await
    }

    /// The default job template of a worker type, from the server's worker
    /// metadata view (which falls back to the copy shipped with the server).
    pub async fn default_base_job_template(&self, pool_type: &str) -> Result<Option<Value>, PrefectError> {
        let view: Map<String, Value> =
            self.call(Method::GET, "collections/views/aggregate-worker-metadata", None, &Subject::default()).await?;
        let found = view
            .values()
            .filter_map(Value::as_object)
            .flat_map(|workers| workers.values())
            .find(|worker| worker.get("type").and_then(Value::as_str) == Some(pool_type))
            .and_then(|worker| worker.get("default_base_job_configuration").cloned());
        Ok(found)
    }

    /// `POST /flows/` is idempotent on the name: returns the existing flow or a new one.
    pub async fn get_or_create_flow(&self, name: &str) -> Result<Flow, PrefectError> {
        let subject = Subject { flow: Some(name.to_string()), ..Subject::default() };
        self.call(Method::POST, "flows/", Some(&json!({ "name": name })), &subject).await
    }

    /// The flows among `names` that the server already has, by name: one
    /// `POST /flows/filter` per [`PAGE`] names (reads are cheap; each create is
    /// a write under the write limit, and a release of N new deployments of
    /// existing flows should not cost N flow writes).
    pub async fn read_flows_named(&self, names: &[&str]) -> Result<HashMap<String, String>, PrefectError> {
        let mut found = HashMap::new();
        for chunk in names.chunks(PAGE) {
            let body = json!({"flows": {"name": {"any_": chunk}}, "limit": PAGE});
            let page: Vec<Flow> = self.call(Method::POST, "flows/filter", Some(&body), &Subject::default()).await?;
            found.extend(page.into_iter().map(|flow| (flow.name, flow.id)));
        }
        Ok(found)
    }

    /// Every deployment carrying tag `flowgate`, plus any deployment (managed or
    /// not) named in `names` (to see collisions), each with its flow's name.
    pub async fn read_deployments(&self, names: &[String]) -> Result<Vec<ServerDeployment>, PrefectError> {
        self.read_deployments_tagged(&[crate::spec::MANAGED_TAG.to_string()], names).await
    }

    /// Every deployment carrying all of `tags`, plus any deployment named in
    /// `names`, each with its flow's name. Both are asked in one filter (`or_`)
    /// read a page at a time (`/deployments/paginate`, whose answer says how
    /// many pages there are): with up to 200 names and 200 matches, one
    /// request, and one more for the flows' names.
    pub async fn read_deployments_tagged(
        &self,
        tags: &[String],
        names: &[String],
    ) -> Result<Vec<ServerDeployment>, PrefectError> {
        let tagged = json!({"tags": {"all_": tags}});
        let mut chunks = names.chunks(PAGE);
        let first = match chunks.next() {
            Some(chunk) => json!({"operator": "or_", "tags": {"all_": tags}, "name": {"any_": chunk}}),
            None => tagged,
        };
        let mut found = self.paginate_deployments(first).await?;
        let mut seen: HashSet<String> = found.iter().map(|d| d.id.clone()).collect();
        for chunk in chunks {
            for deployment in self.paginate_deployments(json!({"name": {"any_": chunk}})).await? {
                if seen.insert(deployment.id.clone()) {
                    found.push(deployment);
                }
            }
        }
        let mut flow_ids: Vec<String> = found.iter().map(|d| d.flow_id.clone()).collect();
        flow_ids.sort();
        flow_ids.dedup();
        let mut flows: HashMap<String, String> = HashMap::new();
        for chunk in flow_ids.chunks(PAGE) {
            let body = json!({"flows": {"id": {"any_": chunk}}, "limit": PAGE});
            let page: Vec<Flow> = self.call(Method::POST, "flows/filter", Some(&body), &Subject::default()).await?;
            flows.extend(page.into_iter().map(|flow| (flow.id, flow.name)));
        }
        for deployment in &mut found {
            if let Some(name) = flows.get(&deployment.flow_id) {
                deployment.flow_name = name.clone();
            }
        }
        Ok(found)
    }

    async fn paginate_deployments(&self, filter: Value) -> Result<Vec<ServerDeployment>, PrefectError> {
        let mut all = Vec::new();
        for page in 1.. {
            let body = json!({"deployments": filter, "limit": PAGE, "page": page, "sort": "NAME_ASC"});
            let answer: DeploymentPage =
                self.call(Method::POST, "deployments/paginate", Some(&body), &Subject::default()).await?;
            // An empty page ends the read whatever `pages` says.
            let empty = answer.results.is_empty();
            all.extend(answer.results);
            if empty || page >= answer.pages {
                break;
            }
        }
        Ok(all)
    }

    pub async fn read_deployment(&self, id: &str) -> Result<ServerDeployment, PrefectError> {
        self.call(Method::GET, &format!("deployments/{}", segment(id)), None, &Subject::default()).await
    }

    /// `POST /deployments/` with a full `DeploymentCreate` body.
    pub async fn create_deployment(&self, body: &Value, subject: &Subject) -> Result<ServerDeployment, PrefectError> {
        self.call(Method::POST, "deployments/", Some(body), subject).await
    }

    /// `PATCH /deployments/{id}` with only the given `DeploymentUpdate` fields.
    pub async fn update_deployment(&self, id: &str, fields: &Value, subject: &Subject) -> Result<(), PrefectError> {
        self.send(Method::PATCH, &format!("deployments/{}", segment(id)), Some(fields), subject).await.map(drop)
    }

    pub async fn delete_deployment(&self, id: &str, subject: &Subject) -> Result<(), PrefectError> {
        self.send(Method::DELETE, &format!("deployments/{}", segment(id)), None, subject).await.map(drop)
    }

    /// `POST /deployments/{id}/schedule`: lets the server schedule the
    /// deployment's upcoming runs now instead of at its scheduler's next loop.
    pub async fn schedule_runs(&self, deployment_id: &str) -> Result<(), PrefectError> {
        let path = format!("deployments/{}/schedule", segment(deployment_id));
        self.send(Method::POST, &path, Some(&json!({})), &Subject::default()).await.map(drop)
    }

    /// `POST /deployments/{id}/create_flow_run` with the deployment's defaults.
    pub async fn create_flow_run(&self, deployment_id: &str) -> Result<FlowRun, PrefectError> {
        let path = format!("deployments/{}/create_flow_run", segment(deployment_id));
        self.call(Method::POST, &path, Some(&json!({})), &Subject::default()).await
    }

    pub async fn read_flow_run(&self, id: &str) -> Result<FlowRun, PrefectError> {
        self.call(Method::GET, &format!("flow_runs/{}", segment(id)), None, &Subject::default()).await
    }

    /// Flow runs of one deployment, optionally only those in `state_types`.
    pub async fn read_flow_runs(
        &self,
        deployment_id: &str,
        state_types: &[&str],
    ) -> Result<Vec<FlowRun>, PrefectError> {
        let mut flow_runs = json!({});
        if !state_types.is_empty() {
            flow_runs = json!({"state": {"type": {"any_": state_types}}});
        }
        let body = json!({
            "deployments": {"id": {"any_": [deployment_id]}},
            "flow_runs": flow_runs,
            "limit": PAGE,
        });
        self.call(Method::POST, "flow_runs/filter", Some(&body), &Subject::default()).await
    }

    /// The newest `limit` flow runs of one deployment (by expected start time,
    /// so scheduled runs not yet started come first), in any state.
    pub async fn recent_flow_runs(&self, deployment_id: &str, limit: usize) -> Result<Vec<FlowRun>, PrefectError> {
        let body = json!({
            "deployments": {"id": {"any_": [deployment_id]}},
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": limit.min(PAGE),
        });
        self.call(Method::POST, "flow_runs/filter", Some(&body), &Subject::default()).await
    }

    /// The log lines of one flow run, oldest first.
    pub async fn read_logs(&self, flow_run_id: &str) -> Result<Vec<LogLine>, PrefectError> {
        let body = json!({"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": PAGE});
        self.call(Method::POST, "logs/filter", Some(&body), &Subject::default()).await
    }
}

/// One URL path segment, percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}
