//! The deployment flowgate wants for one (flow, env): built from plain inputs,
//! with flowgate's pull steps, tags and pinned image, ready to send or compare.

use flowgate_core::{BuildId, ConcurrencyLimit, Digest, EnvName, ProjectName};
use serde_json::{json, Map, Value};

use crate::owner::project_tag;
use crate::schedule::Schedule;

/// The tag that marks a deployment as flowgate's (its project tag says whose).
pub const MANAGED_TAG: &str = "flowgate";
/// Prefix of the tag naming the build a deployment runs.
pub const BUILD_TAG_PREFIX: &str = "flowgate-build:";
/// Prefix of the tag naming the env a deployment belongs to (scopes pruning).
pub const ENV_TAG_PREFIX: &str = "flowgate-env:";
/// The id of flowgate's pull step; later steps may use `{{ pull-code.stdout }}`.
pub const PULL_STEP_ID: &str = "pull-code";

/// Pool types whose workers run a container image, so the image is pinned.
const IMAGE_POOL_TYPES: &[&str] = &["docker", "kubernetes", "ecs", "cloud-run", "cloud-run-v2"];

/// Everything needed to describe one deployment; config and ledger supply it.
#[derive(Debug, Clone)]
pub struct DeploymentInput {
    /// The project that owns the deployment (tagged `flowgate-project:<name>`).
    pub project: ProjectName,
    pub env: EnvName,
    /// The Prefect flow name (from the entrypoint parser or config).
    pub flow_name: String,
    /// The deployment name, usually `{name_prefix}{flow key}`.
    pub deployment_name: String,
    pub build: BuildId,
    pub digest: Digest,
    /// The absolute store URL the worker pulls from.
    pub store_url: String,
    pub entrypoint: String,
    pub work_pool: String,
    /// The pool's type (`process`, `docker`, ...) as the server reports it.
    pub pool_type: String,
    pub work_queue: Option<String>,
    pub parameters: Map<String, Value>,
    pub parameter_schema: Value,
    pub schedules: Vec<Schedule>,
    pub job_variables: Map<String, Value>,
    /// The image pinned for this build; set as `job_variables.image` on container pools.
    pub image: Option<String>,
    /// The user's tags (flowgate adds its own).
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// User pull steps, run after flowgate's own.
    pub extra_pull_steps: Vec<Value>,
    /// `Some` only when config manages the paused state; otherwise the UI's choice stands.
    pub paused: Option<bool>,
    /// `None`: no limit (sync removes one set by hand).
    pub concurrency_limit: Option<ConcurrencyLimit>,
    /// `None`: Prefect's default, `true`.
    pub enforce_parameter_schema: Option<bool>,
    /// Replaces `flowgate pull ...` in the pull step (tests, custom wrappers).
    pub pull_command: Option<String>,
}

/// The desired state of one deployment, as flowgate will send it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredDeployment {
    pub project: ProjectName,
    pub env: EnvName,
    pub flow_name: String,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub entrypoint: String,
    pub work_pool: String,
    pub work_queue: Option<String>,
    pub parameters: Map<String, Value>,
    pub parameter_schema: Value,
    pub schedules: Vec<Schedule>,
    pub job_variables: Map<String, Value>,
    /// Sorted and without duplicates, flowgate's tags included.
    pub tags: Vec<String>,
    pub pull_steps: Vec<Value>,
    pub paused: Option<bool>,
    pub concurrency_limit: Option<ConcurrencyLimit>,
    /// `None`: Prefect's default, `true`.
    pub enforce_parameter_schema: Option<bool>,
}

impl DesiredDeployment {
    pub fn new(input: DeploymentInput) -> Self {
        let mut tags = input.tags;
        tags.push(MANAGED_TAG.to_string());
        tags.push(format!("{BUILD_TAG_PREFIX}{}", input.build));
        tags.push(format!("{ENV_TAG_PREFIX}{}", input.env));
        tags.push(project_tag(&input.project));
        tags.sort();
        tags.dedup();
        let mut job_variables = input.job_variables;
        if let Some(image) = input.image {
            if pins_image(&input.pool_type) {
                job_variables.insert("image".to_string(), Value::String(image));
            }
        }
        let command = input.pull_command.unwrap_or_else(|| pull_command(&input.build, &input.store_url, &input.digest));
        let mut pull_steps = flowgate_pull_steps(&command);
        pull_steps.extend(input.extra_pull_steps);
        Self {
            project: input.project,
            env: input.env,
            flow_name: input.flow_name,
            name: input.deployment_name,
            version: input.build.to_string(),
            description: input.description,
            entrypoint: input.entrypoint,
            work_pool: input.work_pool,
            work_queue: input.work_queue,
            parameters: input.parameters,
            parameter_schema: input.parameter_schema,
            schedules: input.schedules,
            job_variables,
            tags,
            pull_steps,
            paused: input.paused,
            concurrency_limit: input.concurrency_limit,
            enforce_parameter_schema: input.enforce_parameter_schema,
        }
    }

    /// Whether Prefect is to reject runs whose parameters break the schema.
    pub fn enforces_parameter_schema(&self) -> bool {
        self.enforce_parameter_schema.unwrap_or(true)
    }

    /// `concurrency_options` as sent: `null` unless a strategy or grace
    /// period is configured (Prefect then enqueues, with the server's grace).
    pub fn concurrency_options(&self) -> Value {
        match self.concurrency_limit {
            Some(limit) if limit.collision_strategy.is_some() || limit.grace_period_seconds.is_some() => {
                let mut options = json!({"collision_strategy": limit.strategy().as_str()});
                if let Some(seconds) = limit.grace_period_seconds {
                    options["grace_period_seconds"] = json!(seconds);
                }
                options
            }
            _ => Value::Null,
        }
    }

    /// A `DeploymentCreate` body for the flow with id `flow_id`.
    pub fn create_body(&self, flow_id: &str) -> Value {
        let mut body = json!({
            "name": self.name,
            "flow_id": flow_id,
            "version": self.version,
            "description": self.description,
            "entrypoint": self.entrypoint,
            "work_pool_name": self.work_pool,
            "parameters": self.parameters,
            "parameter_openapi_schema": self.parameter_schema,
            "schedules": self.schedules.iter().map(Schedule::create_body).collect::<Vec<_>>(),
            "job_variables": self.job_variables,
            "tags": self.tags,
            "pull_steps": self.pull_steps,
        });
        if let Some(queue) = &self.work_queue {
            body["work_queue_name"] = json!(queue);
        }
        if let Some(paused) = self.paused {
            body["paused"] = json!(paused);
        }
        if let Some(limit) = self.concurrency_limit {
            body["concurrency_limit"] = json!(limit.limit);
            let options = self.concurrency_options();
            if !options.is_null() {
                body["concurrency_options"] = options;
            }
        }
        if let Some(enforce) = self.enforce_parameter_schema {
            body["enforce_parameter_schema"] = json!(enforce);
        }
        body
    }
}

/// Whether a pool of this type runs containers (`ecs:push` counts as `ecs`).
pub fn pins_image(pool_type: &str) -> bool {
    let base = pool_type.split(':').next().unwrap_or(pool_type);
    IMAGE_POOL_TYPES.contains(&base)
}

/// `flowgate pull <build> --store <url> --digest <digest>`, shell-quoted where needed.
pub fn pull_command(build: &BuildId, store_url: &str, digest: &Digest) -> String {
    format!("flowgate pull {} --store {} --digest {}", build, shell_quote(store_url), digest.to_hex())
}

/// flowgate's two steps: run the pull command, then enter the directory it prints.
pub fn flowgate_pull_steps(command: &str) -> Vec<Value> {
    vec![
        json!({"prefect.deployments.steps.run_shell_script": {
            "id": PULL_STEP_ID,
            "script": command,
            "stream_output": false,
        }}),
        json!({"prefect.deployments.steps.set_working_directory": {
            "directory": format!("{{{{ {PULL_STEP_ID}.stdout }}}}"),
        }}),
    ]
}

fn shell_quote(text: &str) -> String {
    let plain = text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain && !text.is_empty() {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
