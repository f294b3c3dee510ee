//! `flowgate.toml`: its schema and validation (every error has file:line:column),
//! the layered merge of deployment settings, flowgate's templates, the choice of
//! env, and the text `flowgate init` writes. Loading reads one file and hands it
//! to the pure [`parse`]; everything else is pure.

mod check;
mod decode;
mod decode_env;
mod decode_policy;
mod emit;
mod error;
mod files;
mod import;
mod import_deployment;
mod import_report;
mod import_steps;
mod import_values;
mod init;
mod merge;
mod node;
mod policy;
mod schema;
mod select;
mod server_envs;
mod settings;
mod template;

use std::path::Path;

pub use error::{ConfigError, ErrorKind, Location};
pub use import::{import_prefect_yaml, import_prefect_yaml_with, ImportContext, Imported};
pub use import_report::{ImportCounts, ImportItem, Outcome};
pub use init::starter_toml;
pub use merge::{merge_settings, ResolvedDeployment};
pub use policy::{parse_duration, FreezeWindow, Policy, Rollout, Verify};
pub use schema::{
    redact_url, AuthScheme, Config, EnvConfig, FlowConfig, JsonMap, PrefectAuth, ProjectConfig, Settings,
    DEFAULT_ARTIFACTS, DEFAULT_LEDGER, PERSONAL_ENV,
};
pub use select::{sanitize_user, select_env, EnvSource, PreviewPlacement, SelectedEnv};
pub use server_envs::{parse_protected_envs, ProtectedProject};
pub use template::{Placeholder, Template, TemplateError, TemplateVars};

/// Reads and parses the config at `path`; errors are labelled with the path as given.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let _span = tracing::debug_span!("config.load", path = %path.display()).entered();
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&path.display().to_string(), &text)
}

/// Parses and checks the text of a config; `file_label` prefixes error locations.
pub fn parse(file_label: &str, text: &str) -> Result<Config, ConfigError> {
    let src = error::Source { file: file_label, text };
    let root = node::parse_document(src)?;
    decode::decode(check::Ctx { src }, &root)
}
