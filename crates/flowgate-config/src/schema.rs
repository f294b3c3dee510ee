//! The checked shape of `flowgate.toml`: what `parse` produces and every other
//! part of flowgate reads.

use std::fmt;

use flowgate_core::{EnvName, FlowKey, ProjectName};
use globset::GlobSet;
use serde_json::{Map, Value as Json};

use crate::policy::{Policy, Rollout};
use crate::template::Template;

/// A JSON object: parameters, job variables, one schedule, one pull step.
pub type JsonMap = Map<String, Json>;

/// The ledger used when `[project] ledger` is not set.
pub const DEFAULT_LEDGER: &str = "sqlite://.flowgate/ledger.db";
/// The artifact store used when `[project] artifacts` is not set.
pub const DEFAULT_ARTIFACTS: &str = "file://.flowgate/artifacts";
/// The env whose settings every developer's personal env uses.
pub const PERSONAL_ENV: &str = "dev";

/// Deployment settings, each layer optional; see [`crate::Config::deployment`]
/// for how the layers merge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub work_pool: Option<Template>,
    pub work_queue: Option<Template>,
    /// Only ever set on the project or a flow: the image is pinned per build.
    pub image: Option<Template>,
    pub parameters: Option<JsonMap>,
    pub job_variables: Option<JsonMap>,
    pub tags: Option<Vec<String>>,
    /// Each has exactly one of `cron`, `interval` (seconds) or `rrule`.
    pub schedules: Option<Vec<JsonMap>>,
    pub description: Option<Template>,
    pub deployment_name: Option<Template>,
    /// Extra Prefect pull steps (`{ "<step function>" = { … } }`), run after flowgate's own.
    pub pull: Option<Vec<JsonMap>>,
    pub paused: Option<bool>,
    /// The type of the work pool (`process`, `docker`, `kubernetes`, ...) used
    /// when flowgate creates a missing pool (`--create-work-pools`); an existing
    /// pool's type is read from the server. Default `process`.
    pub work_pool_type: Option<String>,
}

/// `[project]`.
#[derive(Clone, PartialEq)]
pub struct ProjectConfig {
    pub name: ProjectName,
    /// May hold a database password: shown redacted by `Debug`.
    pub ledger: String,
    pub artifacts: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub settings: Settings,
}

impl fmt::Debug for ProjectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectConfig")
            .field("name", &self.name)
            .field("ledger", &redact_url(&self.ledger))
            .field("artifacts", &redact_url(&self.artifacts))
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("settings", &self.settings)
            .finish()
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`; other strings unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// `[flows.F]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowConfig {
    /// `path/file.py:function`, relative to the project root.
    pub entrypoint: String,
    /// The Prefect flow name, when it differs from what the entrypoint declares.
    pub flow_name: Option<String>,
    /// `parameter_schema`: the deployment's `parameter_openapi_schema`, replacing
    /// the one derived from the entrypoint's signature.
    pub parameter_schema: Option<JsonMap>,
    pub settings: Settings,
}

impl FlowConfig {
    /// The file part of the entrypoint.
    pub fn entrypoint_path(&self) -> &str {
        self.entrypoint.rsplit_once(':').map_or(&self.entrypoint, |(p, _)| p)
    }

    /// The function part of the entrypoint.
    pub fn entrypoint_function(&self) -> &str {
        self.entrypoint.rsplit_once(':').map_or("", |(_, f)| f)
    }
}

/// How the secret named by `prefect_auth.env` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthScheme {
    /// `Authorization: Bearer <value>` (a Prefect Cloud API key). The default.
    #[default]
    Bearer,
    /// HTTP Basic from a `user:password` auth string (self-hosted server).
    Basic,
}

/// `prefect_auth`: the name of the variable holding the secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefectAuth {
    pub env: String,
    pub scheme: AuthScheme,
}

/// `[envs.E]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvConfig {
    /// The name in the config (`dev` for the personal env).
    pub name: EnvName,
    /// Absent: the env is ledger-only (moves are recorded, nothing is synced).
    pub prefect_api_url: Option<String>,
    pub prefect_auth: Option<PrefectAuth>,
    /// Prefix of every deployment name; defaults applied (`dev-{user}-` for `dev`).
    pub name_prefix: Template,
    pub policy: Policy,
    pub rollout: Option<Rollout>,
    pub settings: Settings,
    /// `[envs.E.flows.F]`, each naming a configured flow.
    pub flows: Vec<(FlowKey, Settings)>,
    /// Set only for an env a flowgate server protects: the work pool it imposes
    /// on every flow, over the one each build carries (placement, not a setting).
    pub placed_work_pool: Option<String>,
}

impl EnvConfig {
    /// The `dev` env used when the config declares none: ledger-only, no overrides.
    pub fn implicit_dev() -> Self {
        Self {
            name: PERSONAL_ENV.parse().expect("`dev` is a valid env name"),
            prefect_api_url: None,
            prefect_auth: None,
            name_prefix: default_name_prefix(PERSONAL_ENV),
            policy: Policy::default(),
            rollout: None,
            settings: Settings::default(),
            flows: Vec::new(),
            placed_work_pool: None,
        }
    }

    pub fn flow(&self, key: &FlowKey) -> Option<&Settings> {
        self.flows.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }

    pub fn is_personal(&self) -> bool {
        self.name.as_str() == PERSONAL_ENV
    }
}

/// `""`, except `dev-{user}-` for the personal env.
pub(crate) fn default_name_prefix(env: &str) -> Template {
    let text = if env == PERSONAL_ENV { "dev-{user}-" } else { "" };
    Template::parse(text).expect("default prefixes are valid templates")
}

/// A whole, valid `flowgate.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    pub project: ProjectConfig,
    pub(crate) flows: Vec<(FlowKey, FlowConfig)>,
    pub(crate) envs: Vec<EnvConfig>,
    pub(crate) include: Option<GlobSet>,
    pub(crate) exclude: GlobSet,
}

impl Config {
    /// A project as a flowgate server sees it: no checkout, so no flows of its
    /// own (each build carries its flows' settings), and only the envs the
    /// server protects; `artifacts` is the project's store on the server.
    pub fn for_server(name: ProjectName, artifacts: String, envs: Vec<EnvConfig>) -> Self {
        let project = ProjectConfig {
            name,
            ledger: String::new(),
            artifacts,
            include: Vec::new(),
            exclude: Vec::new(),
            settings: Settings::default(),
        };
        Self { project, flows: Vec::new(), envs, include: None, exclude: GlobSet::empty() }
    }

    pub fn project_name(&self) -> &ProjectName {
        &self.project.name
    }

    /// Flows in the order the file lists them.
    pub fn flows(&self) -> impl Iterator<Item = (&FlowKey, &FlowConfig)> {
        self.flows.iter().map(|(k, f)| (k, f))
    }

    pub fn flow(&self, key: &FlowKey) -> Option<&FlowConfig> {
        self.flows.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    /// Configured envs in the order the file lists them.
    pub fn envs(&self) -> impl Iterator<Item = &EnvConfig> {
        self.envs.iter()
    }

    pub fn env(&self, name: &str) -> Option<&EnvConfig> {
        self.envs.iter().find(|e| e.name.as_str() == name)
    }

    /// The configured env names, in file order. Each is also the ledger name of
    /// that env, except `dev`, whose ledger name is per user (`dev-<user>`; see
    /// [`crate::select_env`]).
    pub fn env_names(&self) -> Vec<EnvName> {
        self.envs.iter().map(|e| e.name.clone()).collect()
    }

    /// The shared (non-personal) env names: the ledger names every user sees.
    pub fn shared_env_names(&self) -> Vec<EnvName> {
        self.envs.iter().filter(|e| !e.is_personal()).map(|e| e.name.clone()).collect()
    }
}
