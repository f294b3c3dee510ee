//! Deployment assembly, pure: a build's recorded settings for one flow in one
//! env, plus the env's placement, give the deployment flowgate wants. Nothing
//! here reads a config, a working tree or a server.

use flowgate_core::{Build, DeploymentSettings, EnvName, FlowKey, ProjectName};
use serde_json::{Map, Value};

use crate::schedule::{Schedule, ScheduleKind};
use crate::spec::{DeploymentInput, DesiredDeployment};

/// Keys flowgate can sync today; the others are refused by name rather than dropped.
const SYNCED_SCHEDULE_KEYS: &[&str] = &["cron", "interval", "rrule", "timezone", "day_or", "anchor_date", "active"];

/// Where an env's deployments go and what the env adds to every build's
/// settings: the parts of a deployment that belong to the env, not the build.
#[derive(Debug, Clone)]
pub struct Placement {
    pub project: ProjectName,
    /// The env's ledger name (`dev-<user>` for a personal env), tagged on each deployment.
    pub env: EnvName,
    /// Put before every deployment name of the env.
    pub name_prefix: String,
    /// The absolute store URL the worker pulls bundles from.
    pub store_url: String,
    /// A work pool the env imposes on every flow, over the build's own.
    pub work_pool: Option<String>,
}

/// Why a build's settings cannot become a deployment in an env.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    #[error("flow `{flow}` has no `work_pool` in env `{env}` at build `{build}`; set one in `flowgate.toml` and make a new build")]
    NoWorkPool { flow: FlowKey, env: EnvName, build: String },
    #[error("schedule {index} of flow `{flow}` at build `{build}`: {message}")]
    Schedule { flow: FlowKey, build: String, index: usize, message: String },
}

/// The work pool `settings` run on in this placement: the env's, else the build's.
pub fn work_pool_of<'a>(settings: &'a DeploymentSettings, placement: &'a Placement) -> Option<&'a str> {
    placement.work_pool.as_deref().or(settings.work_pool.as_deref())
}

/// The deployment of `flow` at `build` in the placed env. `pool_type` is the
/// type of its work pool (as the server reports it, or as it would be created).
pub fn assemble(
    build: &Build,
    flow: &FlowKey,
    settings: &DeploymentSettings,
    placement: &Placement,
    pool_type: &str,
) -> Result<DesiredDeployment, AssembleError> {
    let work_pool = work_pool_of(settings, placement).ok_or_else(|| AssembleError::NoWorkPool {
        flow: flow.clone(),
        env: placement.env.clone(),
        build: build.id.to_string(),
    })?;
    let schedules = settings
        .schedules
        .iter()
        .enumerate()
        .map(|(index, table)| {
            schedule_of(table).map_err(|message| AssembleError::Schedule {
                flow: flow.clone(),
                build: build.id.to_string(),
                index: index + 1,
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DesiredDeployment::new(DeploymentInput {
        project: placement.project.clone(),
        env: placement.env.clone(),
        flow_name: settings.flow_name.clone(),
        deployment_name: format!("{}{}", placement.name_prefix, settings.deployment_name),
        build: build.id.clone(),
        digest: build.bundle,
        store_url: placement.store_url.clone(),
        entrypoint: settings.entrypoint.clone(),
        work_pool: work_pool.to_string(),
        pool_type: pool_type.to_string(),
        work_queue: settings.work_queue.clone(),
        parameters: settings.parameters.clone(),
        parameter_schema: settings.parameter_schema.clone(),
        schedules,
        job_variables: settings.job_variables.clone(),
        image: build.image_for(flow).map(str::to_string),
        tags: settings.tags.clone(),
        description: settings.description.clone(),
        extra_pull_steps: settings.pull.iter().cloned().map(Value::Object).collect(),
        paused: settings.paused,
        concurrency_limit: settings.concurrency_limit,
        enforce_parameter_schema: settings.enforce_parameter_schema,
        pull_command: None,
    }))
}

/// A configured schedule (a `flowgate.toml` table, already validated) as the
/// Prefect schedule flowgate sends and compares.
pub fn schedule_of(table: &Map<String, Value>) -> Result<Schedule, String> {
    if let Some(key) = table.keys().find(|k| !SYNCED_SCHEDULE_KEYS.contains(&k.as_str())) {
        return Err(format!("schedule key `{key}` is not synced by this version of flowgate; remove it"));
    }
    let text = |key: &str| table.get(key).and_then(Value::as_str).map(str::to_string);
    let kind = if let Some(cron) = text("cron") {
        ScheduleKind::Cron { cron, day_or: table.get("day_or").and_then(Value::as_bool).unwrap_or(true) }
    } else if let Some(seconds) = table.get("interval").and_then(Value::as_f64) {
        ScheduleKind::Interval { seconds, anchor_date: text("anchor_date") }
    } else if let Some(rrule) = text("rrule") {
        ScheduleKind::RRule { rrule }
    } else {
        return Err("a schedule needs one of `cron`, `interval` or `rrule`".to_string());
    };
    Ok(Schedule { kind, timezone: text("timezone"), active: table.get("active").and_then(Value::as_bool) })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn table(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn each_schedule_kind_converts_and_unknown_keys_are_named() {
        let cron = schedule_of(&table(json!({"cron": "0 3 * * *", "timezone": "UTC", "active": false}))).unwrap();
        assert_eq!(cron.kind, ScheduleKind::Cron { cron: "0 3 * * *".into(), day_or: true });
        assert_eq!((cron.timezone.as_deref(), cron.active), (Some("UTC"), Some(false)));
        let every = schedule_of(&table(json!({"interval": 60}))).unwrap();
        assert_eq!(every.kind, ScheduleKind::Interval { seconds: 60.0, anchor_date: None });
        assert_eq!(every.active, None);
        let rrule = schedule_of(&table(json!({"rrule": "FREQ=DAILY"}))).unwrap();
        assert_eq!(rrule.kind, ScheduleKind::RRule { rrule: "FREQ=DAILY".into() });
        let err = schedule_of(&table(json!({"cron": "* * * * *", "slug": "x"}))).unwrap_err();
        assert!(err.contains("`slug`"), "{err}");
    }

    fn settings() -> DeploymentSettings {
        serde_json::from_value(json!({
            "flow_name": "etl", "deployment_name": "nightly", "entrypoint": "flows/etl.py:etl",
            "parameter_schema": {"type": "object", "properties": {}}, "work_pool": "build-pool",
            "parameters": {"day": 3}, "tags": ["team-a"], "schedules": [{"cron": "0 3 * * *"}],
            "job_variables": {"env": {"A": "1"}}
        }))
        .unwrap()
    }

    fn build() -> Build {
        let images = [("etl".parse().unwrap(), "registry/etl@sha256:00".to_string())].into_iter().collect();
        Build {
            id: "0123456789abcdef0123".parse().unwrap(),
            bundle: flowgate_core::Digest::of(b"bundle"),
            bundle_size: 1,
            file_count: 1,
            images,
            commit: "c".repeat(40),
            branch: None,
            dirty: false,
            author: "a".into(),
            created_at: Utc::now(),
            settings: None,
        }
    }

    fn placement(work_pool: Option<&str>) -> Placement {
        Placement {
            project: "alpha".parse().unwrap(),
            env: "qa".parse().unwrap(),
            name_prefix: "qa-".into(),
            store_url: "file:///store".into(),
            work_pool: work_pool.map(str::to_string),
        }
    }

    #[test]
    fn the_build_gives_the_settings_and_the_env_gives_the_placement() {
        let flow = "etl".parse().unwrap();
        let d = assemble(&build(), &flow, &settings(), &placement(None), "docker").unwrap();
        assert_eq!((d.name.as_str(), d.flow_name.as_str(), d.work_pool.as_str()), ("qa-nightly", "etl", "build-pool"));
        assert_eq!(d.parameters["day"], 3);
        assert_eq!(d.job_variables["image"], "registry/etl@sha256:00", "a container pool pins the build's image");
        assert_eq!(d.job_variables["env"]["A"], "1");
        assert!(d.tags.contains(&"team-a".to_string()) && d.tags.contains(&"flowgate-project:alpha".to_string()));
        assert_eq!(d.version, "0123456789abcdef0123");
        let d = assemble(&build(), &flow, &settings(), &placement(Some("env-pool")), "process").unwrap();
        assert_eq!(d.work_pool, "env-pool", "the env's work pool wins");
        assert!(!d.job_variables.contains_key("image"), "a process pool runs no image");
    }

    #[test]
    fn missing_work_pool_and_bad_schedule_are_named() {
        let flow: FlowKey = "etl".parse().unwrap();
        let no_pool = DeploymentSettings { work_pool: None, ..settings() };
        let err = assemble(&build(), &flow, &no_pool, &placement(None), "process").unwrap_err();
        assert!(err.to_string().contains("`etl` has no `work_pool` in env `qa`"), "{err}");
        let bad =
            DeploymentSettings { schedules: vec![table(json!({"cron": "* * * * *", "slug": "x"}))], ..settings() };
        let err = assemble(&build(), &flow, &bad, &placement(None), "process").unwrap_err();
        assert!(err.to_string().contains("schedule 1 of flow `etl`"), "{err}");
    }
}
