//! What `flowgate build` checks before it stores anything: every configured
//! flow's entrypoint is a file of the bundle that defines the flow function,
//! and its parameter schema derives from the code or is configured. A build
//! that fails here would deploy flows the worker cannot load.

use std::collections::BTreeSet;

use anyhow::Result;
use flowgate_config::{Config, FlowConfig};
use flowgate_entrypoint::{EntrypointError, FlowReader};

use crate::exit::usage;

/// The bundle file `flow`'s entrypoint names: the file itself, or for a module
/// entrypoint the first of its candidate files that `exists`.
pub fn entrypoint_file(config: &Config, flow: &FlowConfig, exists: impl Fn(&str) -> bool) -> Option<String> {
    flow.entrypoint_candidates(config.python_path(flow)).into_iter().find(|file| exists(file))
}

/// Checks every configured flow against the bundle's files (`bundle`, paths
/// relative to the project root); `flows` reads them from the bundle. Exit 2 naming
/// the first flow that fails.
pub fn check_entrypoints(config: &Config, bundle: &BTreeSet<String>, flows: &FlowReader<'_>) -> Result<()> {
    for (key, flow) in config.flows() {
        let Some(file) = entrypoint_file(config, flow, |f| bundle.contains(f)) else {
            let looked: Vec<String> =
                flow.entrypoint_candidates(config.python_path(flow)).iter().map(|c| format!("`{c}`")).collect();
            return Err(usage(format!(
                "Flow `{key}`: its entrypoint `{}` names no file of the build (looked for {}); commit the file, or check `include`, `exclude` and `python_path`",
                flow.entrypoint,
                looked.join(", ")
            )));
        };
        let derived = flows.read_flow(&file, flow.entrypoint_function(), config.python_path(flow));
        // With `[project] python`, a schema the reader refuses is derived by Python later.
        let needs_schema =
            (flow.parameter_schema.is_none() || flow.flow_name.is_none()) && config.project.python.is_none();
        match derived {
            Ok(_) => {}
            Err(error @ (EntrypointError::Unsupported { .. } | EntrypointError::Decorator { .. })) if !needs_schema => {
                tracing::debug!(flow = %key, %error, "the configured flow_name and parameter_schema stand");
            }
            Err(error) => return Err(usage(format!("Flow `{key}`: {error}"))),
        }
    }
    Ok(())
}
