//! The deployment settings of one flow in one env, resolved from a config: at
//! build time from the commit's `flowgate.toml` (and recorded with the build),
//! and for builds made before builds carried settings, from the working tree.

use std::path::Path;

use anyhow::{Context as _, Result};
use flowgate_config::{Config, SelectedEnv, TemplateVars};
use flowgate_core::{BuildSettings, DeploymentSettings, FlowKey};
use flowgate_entrypoint::{EntrypointError, FlowReader, FlowSignature};
use serde_json::Value;

use crate::project::user_name;

/// Every flow's deployment in every env of `config` that has a Prefect server
/// (a ledger-only env is never synced, so it needs none). `flows` reads the
/// bundle's entrypoints, only for flows whose Prefect name, schema or
/// description the config does not set; `read_source` says why one is missing.
pub fn resolve_all(
    config: &Config,
    commit: &str,
    branch: Option<&str>,
    root: &Path,
    flows: &FlowReader<'_>,
    read_source: impl Fn(&str) -> Result<String>,
) -> Result<BuildSettings> {
    let user = user_name();
    let short = format!("commit {}", &commit[..commit.len().min(12)]);
    let mut all = BuildSettings::default();
    let mut signatures: Vec<(FlowKey, FlowSignature)> = Vec::new();
    for env_config in config.envs().filter(|e| e.prefect_api_url.is_some()) {
        let env = flowgate_config::select_env(Some(env_config.name.as_str()), None, config, &user)?;
        for (flow, _) in config.flows() {
            let settings = resolve(config, flow, &env, commit, branch, || {
                if let Some((_, sig)) = signatures.iter().find(|(k, _)| k == flow) {
                    return Ok(sig.clone());
                }
                let sig = signature_from(config, flow, &short, root, flows, &read_source)?;
                signatures.push((flow.clone(), sig.clone()));
                Ok(sig)
            })?;
            all.insert(&env.config_name, flow.clone(), settings);
        }
    }
    Ok(all)
}

/// The deployment of `flow` in `env` as `config` says. `signature` is called
/// only when the config leaves the flow's Prefect
/// name, parameter schema or description to the entrypoint.
pub fn resolve(
    config: &Config,
    flow: &FlowKey,
    env: &SelectedEnv,
    commit: &str,
    branch: Option<&str>,
    mut signature: impl FnMut() -> Result<FlowSignature>,
) -> Result<DeploymentSettings> {
    let mut vars = TemplateVars::for_build(commit, branch, flow);
    vars.user = Some(flowgate_config::sanitize_user(&user_name()));
    let resolved = config.deployment(flow, env, &vars)?;
    let read = if resolved.flow_name.is_none() || resolved.parameter_schema.is_none() || resolved.description.is_none()
    {
        Some(signature().with_context(|| {
            format!("Failed to derive the Prefect flow of `{flow}`; set `flow_name` and `parameter_schema` in `[flows.{flow}]` to skip")
        })?)
    } else {
        None
    };
    let flow_name = match (resolved.flow_name, &read) {
        (Some(name), _) => name,
        (None, Some(sig)) => sig.flow_name.clone(),
        (None, None) => unreachable!("the entrypoint is read when flow_name is not configured"),
    };
    let parameter_schema = match (resolved.parameter_schema, &read) {
        (Some(schema), _) => Value::Object(schema),
        (None, Some(sig)) => sig.parameter_schema.clone(),
        (None, None) => unreachable!("the entrypoint is read when parameter_schema is not configured"),
    };
    let description = resolved.description.or_else(|| read.and_then(|s| s.description));
    // The env's prefix is placement, added when the deployment is assembled.
    let deployment_name = resolved
        .deployment_name
        .strip_prefix(env.name_prefix.as_str())
        .unwrap_or(&resolved.deployment_name)
        .to_string();
    Ok(DeploymentSettings {
        flow_name,
        deployment_name,
        entrypoint: resolved.entrypoint,
        parameter_schema,
        description,
        work_pool: resolved.work_pool,
        work_pool_type: resolved.work_pool_type,
        work_queue: resolved.work_queue,
        parameters: resolved.parameters,
        job_variables: resolved.job_variables,
        tags: resolved.tags,
        schedules: resolved.schedules,
        pull: python_path_steps(config, flow).into_iter().chain(resolved.pull).collect(),
        paused: resolved.paused,
        concurrency_limit: resolved.concurrency_limit,
        enforce_parameter_schema: resolved.enforce_parameter_schema,
        code: None,
    })
}

/// Pull steps that put the flow's `python_path` directories on `sys.path` in
/// the flow run, after flowgate's download and before the user's own steps.
/// Prefect runs pull steps in the process that then imports the flow, so
/// `site.addsitedir` (called with keyword arguments, as Prefect calls steps)
/// makes `src/` importable; a module entrypoint also needs the bundle root,
/// which `python -m` does not put on the path once the step changed directory.
fn python_path_steps(config: &Config, flow: &FlowKey) -> Vec<serde_json::Map<String, Value>> {
    let Some(flow_config) = config.flow(flow) else { return Vec::new() };
    let mut roots: Vec<&str> = config.python_path(flow_config).iter().map(String::as_str).collect();
    if flow_config.entrypoint_is_module() && !roots.contains(&".") {
        roots.insert(0, ".");
    }
    let download = format!("{{{{ {}.stdout }}}}", flowgate_prefect::PULL_STEP_ID);
    roots
        .into_iter()
        .map(|root| {
            let dir = if root == "." { download.clone() } else { format!("{download}/{root}") };
            serde_json::Map::from_iter([("site.addsitedir".to_string(), serde_json::json!({ "sitedir": dir }))])
        })
        .collect()
}

/// Reads the flow signature of `flow`'s entrypoint through `read_source`;
/// `origin` (`build …`, `commit …`) says in messages where the file came from.
pub fn read_signature(
    config: &Config,
    flow: &FlowKey,
    origin: &str,
    root: &Path,
    read_source: impl Fn(&str) -> Result<String>,
) -> Result<FlowSignature> {
    let read = |file: &str| read_source(file).ok();
    signature_from(config, flow, origin, root, &FlowReader::new(&read), &read_source)
}

/// [`read_signature`] through `flows`, which may have read the flow already.
fn signature_from(
    config: &Config,
    flow: &FlowKey,
    origin: &str,
    root: &Path,
    flows: &FlowReader<'_>,
    read_source: impl Fn(&str) -> Result<String>,
) -> Result<FlowSignature> {
    let flow_config = config.flow(flow).with_context(|| format!("Flow `{flow}` is not configured"))?;
    // The entrypoint must be there; other files are optional (imports of modules
    // outside the bundle are third-party code, which the reader refuses by name).
    let path = match super::build_check::entrypoint_file(config, flow_config, |file| flows.has(file)) {
        Some(path) => path,
        None => {
            read_source(flow_config.entrypoint_path())?;
            flow_config.entrypoint_path().to_string()
        }
    };
    let python_path = config.python_path(flow_config);
    let derived = flows.read_flow(&path, flow_config.entrypoint_function(), python_path);
    match (derived, &config.project.python) {
        (Err(EntrypointError::Unsupported { .. }), Some(python)) => {
            super::schema_fallback::derive(python, root, &flow_config.entrypoint, python_path)
                .with_context(|| format!("Failed to derive the flow of `{path}` ({origin}) with the project's Python"))
        }
        (derived, _) => derived.with_context(|| format!("Failed to read the flow of `{path}` ({origin})")),
    }
}
