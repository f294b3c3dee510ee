//! The deployment settings a build carries: for every env and every flow its
//! commit's `flowgate.toml` defines, the deployment that flow becomes there,
//! resolved once when the build is made. Moves and syncs use these, never the
//! working tree, so prod gets field for field what qa ran; only the env's
//! placement (its Prefect server, credentials and name prefix) is added later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{Digest, FlowKey};

/// One flow's deployment in one env, as the build's commit configured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentSettings {
    /// The Prefect flow name (configured, or read from the entrypoint).
    pub flow_name: String,
    /// The deployment's name without the env's `name_prefix`, which is placement.
    pub deployment_name: String,
    pub entrypoint: String,
    /// The flow's parameter schema (configured, or derived from the entrypoint).
    pub parameter_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_pool: Option<String>,
    /// The type a missing work pool is created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_pool_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_queue: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub job_variables: Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// As configured (`{ cron = "0 3 * * *" }` tables), already validated.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub schedules: Vec<Map<String, Value>>,
    /// User pull steps, run after flowgate's own.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub pull: Vec<Map<String, Value>>,
    /// `None`: the config does not manage the paused state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// `None`: no limit (a limit set on the server by hand is removed by sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<ConcurrencyLimit>,
    /// Whether Prefect rejects flow runs whose parameters break the schema;
    /// `None`: Prefect's default, `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_parameter_schema: Option<bool>,
    /// The code this flow can load, as the build read it; `None` for builds
    /// made before flowgate recorded it (they count as changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<FlowCode>,
}

/// The bundle files one flow can load (its entrypoint, the project modules it
/// imports transitively, the project's dependency files and the globs it
/// declares in `depends`), summed up as one digest: two builds whose digests
/// are equal give the flow the same code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowCode {
    /// BLAKE3 over the closure's paths and file digests (the bundle's whole
    /// manifest when `whole_bundle` says why).
    pub digest: String,
    /// How many bundle files the flow can load.
    pub files: u64,
    /// Why static reading could not bound the flow's code (`flows/x.py:12:
    /// importlib.import_module(name)`): it then depends on the whole bundle,
    /// unless the flow declares `depends`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_bundle: Option<String>,
    /// The closure's bundle paths, sorted, so `diff` can name the files that
    /// changed for this flow; empty when the flow depends on the whole bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// At most `limit` runs of a deployment at once (Prefect's `concurrency_limit`
/// and `concurrency_options`); what happens to one more is `collision_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConcurrencyLimit {
    /// At least 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub limit: u32,
    /// `None`: Prefect's default, `ENQUEUE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_strategy: Option<CollisionStrategy>,
    /// How long a run's infrastructure may take to start before its slot is
    /// revoked, 60 to 86400; `None`: the server's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86400))]
    pub grace_period_seconds: Option<u32>,
}

impl ConcurrencyLimit {
    /// The strategy in force: the configured one, else Prefect's default.
    pub fn strategy(&self) -> CollisionStrategy {
        self.collision_strategy.unwrap_or_default()
    }
}

/// What Prefect does with a run that would exceed a deployment's limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CollisionStrategy {
    /// The run waits for a free slot.
    #[default]
    Enqueue,
    /// The run is cancelled.
    CancelNew,
}

impl CollisionStrategy {
    /// The name Prefect and `flowgate.toml` use: `ENQUEUE` or `CANCEL_NEW`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enqueue => "ENQUEUE",
            Self::CancelNew => "CANCEL_NEW",
        }
    }
}

/// Every configured env's deployments of every configured flow, by env name (as
/// written in `flowgate.toml`; `dev` for every personal env), then by flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildSettings(BTreeMap<String, BTreeMap<FlowKey, DeploymentSettings>>);

impl BuildSettings {
    pub fn insert(&mut self, env: &str, flow: FlowKey, settings: DeploymentSettings) {
        self.0.entry(env.to_string()).or_default().insert(flow, settings);
    }

    /// The deployment of `flow` in env `env` (its name in `flowgate.toml`).
    pub fn get(&self, env: &str, flow: &FlowKey) -> Option<&DeploymentSettings> {
        self.0.get(env).and_then(|flows| flows.get(flow))
    }

    /// Records `flow`'s code closure in every env's deployment of it.
    pub fn set_code(&mut self, flow: &FlowKey, code: FlowCode) {
        // Moved into the last env that has the flow, cloned for the others: a
        // large project's closures hold thousands of paths.
        let mut holders: Vec<&mut DeploymentSettings> =
            self.0.values_mut().filter_map(|flows| flows.get_mut(flow)).collect();
        let Some(last) = holders.pop() else { return };
        for settings in holders {
            settings.code = Some(code.clone());
        }
        last.code = Some(code);
    }

    /// The envs the build's config defined, sorted.
    pub fn envs(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The flows configured in `env`, sorted.
    pub fn flows(&self, env: &str) -> impl Iterator<Item = (&FlowKey, &DeploymentSettings)> {
        self.0.get(env).into_iter().flat_map(|flows| flows.iter())
    }

    /// BLAKE3 of the JSON encoding: maps are sorted by env and flow, and each
    /// value keeps the order its config wrote, so the same config gives the same digest.
    pub fn digest(&self) -> Digest {
        let bytes = serde_json::to_vec(self).expect("settings are plain JSON values");
        Digest::of(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(name: &str, parameters: Value) -> DeploymentSettings {
        DeploymentSettings {
            flow_name: "etl".into(),
            deployment_name: name.into(),
            entrypoint: "flows/etl.py:etl".into(),
            parameter_schema: json!({"type": "object", "properties": {}}),
            description: None,
            work_pool: Some("pool".into()),
            work_pool_type: None,
            work_queue: None,
            parameters: parameters.as_object().unwrap().clone(),
            job_variables: Map::new(),
            tags: vec![],
            schedules: vec![],
            pull: vec![],
            paused: None,
            concurrency_limit: None,
            enforce_parameter_schema: None,
            code: None,
        }
    }

    #[test]
    fn settings_are_found_by_env_and_flow() {
        let etl: FlowKey = "etl".parse().unwrap();
        let mut all = BuildSettings::default();
        all.insert("qa", etl.clone(), settings("etl", json!({"day": 1})));
        all.insert("prod", etl.clone(), settings("etl", json!({"day": 2})));
        assert_eq!(all.get("prod", &etl).unwrap().parameters["day"], 2);
        assert_eq!(all.get("dev", &etl), None);
        assert_eq!(all.envs().collect::<Vec<_>>(), ["prod", "qa"]);
    }

    #[test]
    fn the_digest_follows_every_value_and_survives_a_round_trip() {
        let etl: FlowKey = "etl".parse().unwrap();
        let mut a = BuildSettings::default();
        a.insert("qa", etl.clone(), settings("etl", json!({"day": 1})));
        let mut b = BuildSettings::default();
        b.insert("qa", etl.clone(), settings("etl", json!({"day": 2})));
        assert_ne!(a.digest(), b.digest());
        let back: BuildSettings = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back.digest(), a.digest());
        assert_eq!(back, a);
    }

    /// Builds recorded before `concurrency_limit` and `enforce_parameter_schema`
    /// existed keep their ids: settings without them encode byte for byte as
    /// before, and that encoding decodes to them unset.
    #[test]
    fn settings_without_the_new_fields_encode_as_before() {
        let etl: FlowKey = "etl".parse().unwrap();
        let mut all = BuildSettings::default();
        all.insert("qa", etl.clone(), settings("etl", json!({"day": 1})));
        let before = concat!(
            r#"{"qa":{"etl":{"flow_name":"etl","deployment_name":"etl","entrypoint":"flows/etl.py:etl","#,
            r#""parameter_schema":{"type":"object","properties":{}},"work_pool":"pool","parameters":{"day":1},"#,
            r#""job_variables":{},"tags":[],"schedules":[],"pull":[]}}}"#
        );
        assert_eq!(serde_json::to_string(&all).unwrap(), before);
        assert_eq!(all.digest(), Digest::of(before.as_bytes()));
        let back: BuildSettings = serde_json::from_str(before).unwrap();
        assert_eq!(back.get("qa", &etl).unwrap().concurrency_limit, None);
        assert_eq!(back, all);
    }

    #[test]
    fn the_new_fields_are_recorded_and_change_the_digest() {
        let etl: FlowKey = "etl".parse().unwrap();
        let mut plain = BuildSettings::default();
        plain.insert("qa", etl.clone(), settings("etl", json!({})));
        let limited = DeploymentSettings {
            concurrency_limit: Some(ConcurrencyLimit {
                limit: 2,
                collision_strategy: Some(CollisionStrategy::CancelNew),
                grace_period_seconds: None,
            }),
            enforce_parameter_schema: Some(true),
            ..settings("etl", json!({}))
        };
        let mut with = BuildSettings::default();
        with.insert("qa", etl.clone(), limited);
        let text = serde_json::to_string(&with).unwrap();
        assert!(
            text.contains(
                r#""concurrency_limit":{"limit":2,"collision_strategy":"CANCEL_NEW"},"enforce_parameter_schema":true"#
            ),
            "{text}"
        );
        assert_ne!(with.digest(), plain.digest());
        let back: BuildSettings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, with);
    }
}
