//! Which env a command acts on: `--env`, else `FLOWGATE_ENV`, else the personal
//! env of the current user, so a laptop never touches a shared env by default.

use flowgate_core::EnvName;

use crate::error::ConfigError;
use crate::schema::{Config, EnvConfig, PERSONAL_ENV};
use crate::template::TemplateVars;

/// Where the choice of env came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvSource {
    Flag,
    Variable,
    Personal,
}

/// The env a command acts on, resolved for the current user.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedEnv {
    /// The name in `flowgate.toml` (`dev` for every personal env).
    pub config_name: String,
    /// The name pointers are kept under: the config name, or `dev-<user>`.
    pub ledger_name: EnvName,
    /// The rendered prefix of every deployment name in this env.
    pub name_prefix: String,
    /// True for `dev`: one env per developer.
    pub personal: bool,
    pub source: EnvSource,
    /// The env's settings (an implicit ledger-only `dev` when none is configured).
    pub config: EnvConfig,
    /// Set for a preview env (`flowgate preview up`), which is placed like the
    /// env `config_name` names but is not that env.
    pub preview: Option<PreviewPlacement>,
}

/// How a preview env differs from the env it is placed like: no gates, and
/// its deployments paused unless its schedules were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewPlacement {
    /// True when the preview's deployments run their schedules.
    pub schedules: bool,
}

impl SelectedEnv {
    /// An env without `prefect_api_url`: moves are recorded, nothing is synced.
    pub fn is_ledger_only(&self) -> bool {
        self.config.prefect_api_url.is_none()
    }
}

/// `--env` wins, else `FLOWGATE_ENV`, else the personal env. `dev`, however
/// chosen, is the personal env of `user` (ledger name `dev-<user>`).
pub fn select_env(
    flag: Option<&str>,
    variable: Option<&str>,
    config: &Config,
    user: &str,
) -> Result<SelectedEnv, ConfigError> {
    let (name, source) = match (flag, variable) {
        (Some(flag), _) => (flag, EnvSource::Flag),
        (None, Some(variable)) if !variable.is_empty() => (variable, EnvSource::Variable),
        _ => (PERSONAL_ENV, EnvSource::Personal),
    };
    // `dev-<user>` is what `status` shows for the personal env: accept it as a name
    // for that env too, but only for the current user's own.
    let own_ledger_name = format!("{PERSONAL_ENV}-{}", sanitize_user(user));
    let name = if name == own_ledger_name { PERSONAL_ENV } else { name };
    let personal = name == PERSONAL_ENV;
    let env_config = match config.env(name) {
        Some(env) => env.clone(),
        None if personal => EnvConfig::implicit_dev(),
        None => {
            let mut known: Vec<String> = config.env_names().iter().map(|n| n.to_string()).collect();
            if config.env(PERSONAL_ENV).is_none() {
                known.push(PERSONAL_ENV.to_string());
            }
            return Err(ConfigError::UnknownEnv { name: name.to_string(), known });
        }
    };
    let user = sanitize_user(user);
    let ledger_name = if personal { format!("{PERSONAL_ENV}-{user}") } else { name.to_string() };
    let ledger_name: EnvName = ledger_name.parse().map_err(|e| ConfigError::Invalid {
        location: crate::error::Location { file: "--env".to_string(), line: 1, column: 1 },
        message: format!("{e}"),
    })?;
    let vars = TemplateVars { env: Some(name.to_string()), user: Some(user), ..TemplateVars::default() };
    let name_prefix = env_config.name_prefix.render(&vars).map_err(|source| ConfigError::Render {
        field: "name_prefix",
        context: format!("env `{name}`"),
        source,
    })?;
    Ok(SelectedEnv {
        config_name: name.to_string(),
        ledger_name,
        name_prefix,
        personal,
        source,
        config: env_config,
        preview: None,
    })
}

/// A login name as a piece of an env name: lowercase letters and digits, every
/// run of other characters one `-`, at most 59 characters (`dev-` + 59 = 63).
pub fn sanitize_user(user: &str) -> String {
    let mut out = String::new();
    for c in user.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.chars().take(59).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "unknown".to_string()
    } else {
        out
    }
}
