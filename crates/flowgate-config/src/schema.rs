//! The checked shape of `flowgate.toml`: what `parse` produces and every other
//! part of flowgate reads.

use std::fmt;

use flowgate_core::{ConcurrencyLimit, EnvName, FlowKey, ProjectName};
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
    /// `concurrency_limit = N` or `{ limit = N, collision_strategy = "ENQUEUE" |
    /// "CANCEL_NEW", grace_period_seconds = S }`; replaced whole by a later layer.
    pub concurrency_limit: Option<ConcurrencyLimit>,
    pub enforce_parameter_schema: Option<bool>,
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
    /// `pin_images`: `flowgate build` resolves each flow's image tag to its
    /// manifest digest in the registry and records `name@sha256:…`. Default false.
    pub pin_images: bool,
    /// `python_path`: bundle directories the flow run imports from (`["src"]`).
    pub python_path: Vec<String>,
    /// `python`: the project's Python (a path, or a command found on PATH) that
    /// `build` runs Prefect's own schema function with, for a flow whose
    /// parameter schema cannot be read statically.
    pub python: Option<String>,
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
            .field("pin_images", &self.pin_images)
            .field("python_path", &self.python_path)
            .field("python", &self.python)
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
    /// `path/file.py:function`, relative to the project root, or
    /// `package.module:function`, imported through `python_path`.
    pub entrypoint: String,
    /// The Prefect flow name, when it differs from what the entrypoint declares.
    pub flow_name: Option<String>,
    /// `parameter_schema`: the deployment's `parameter_openapi_schema`, replacing
    /// the one derived from the entrypoint's signature.
    pub parameter_schema: Option<JsonMap>,
    /// `python_path` of this flow, replacing the project's.
    pub python_path: Option<Vec<String>>,
    /// `depends`: globs of bundle files the flow reads (SQL, YAML, data) or
    /// loads in ways static reading cannot follow; part of its code closure.
    /// When set, a dynamic import no longer makes it depend on the whole bundle.
    pub depends: Option<Vec<String>>,
    pub settings: Settings,
}

impl FlowConfig {
    /// The file part of the entrypoint.
    pub fn entrypoint_path(&self) -> &str {
        self.entrypoint.rsplit_once(':').map_or(&self.entrypoint, |(p, _)| p)
    }

    /// Whether the entrypoint names a module (`package.module:function`), not a file.
    pub fn entrypoint_is_module(&self) -> bool {
        !self.entrypoint_path().ends_with(".py")
    }

    /// The bundle files the entrypoint may be, in the order Python would look:
    /// the file itself; for a module `a.b`, `a/b.py` or `a/b/__init__.py` at the
    /// project root, then under each of `python_path`.
    pub fn entrypoint_candidates(&self, python_path: &[String]) -> Vec<String> {
        let path = self.entrypoint_path();
        if !self.entrypoint_is_module() {
            return vec![path.trim_start_matches("./").to_string()];
        }
        let relative = path.replace('.', "/");
        let roots = std::iter::once("").chain(python_path.iter().map(String::as_str).filter(|r| *r != "."));
        roots
            .flat_map(|root| {
                let prefix = if root.is_empty() { String::new() } else { format!("{root}/") };
                [format!("{prefix}{relative}.py"), format!("{prefix}{relative}/__init__.py")]
            })
            .collect()
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
            pin_images: false,
            python_path: Vec::new(),
            python: None,
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

    /// The bundle directories `flow` imports from: its own `python_path`, else the project's.
    pub fn python_path<'a>(&'a self, flow: &'a FlowConfig) -> &'a [String] {
        flow.python_path.as_deref().unwrap_or(&self.project.python_path)
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
