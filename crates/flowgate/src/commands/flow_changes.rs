//! How one flow differs between two builds, as `diff` and `show --against`
//! print it: the files of its code closure that changed, the deployment
//! settings that changed and its parameter contract.

use flowgate_config::PERSONAL_ENV;
use flowgate_core::contract::{compare, ParameterChange};
use flowgate_core::{Build, DeploymentSettings, FlowKey, ManifestDiff};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One flow's changes from an old build to a new one.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct FlowChanges {
    /// Whether the flow's code differs (its closure digests); null when a
    /// build records no closure for it.
    pub code_changed: Option<bool>,
    /// The changed files (from the two manifests) that either build's closure
    /// of the flow holds; null when that is unknown (no closure recorded, a
    /// flow depending on the whole bundle, or no manifests).
    pub code_files: Option<Vec<String>>,
    /// The deployment fields that differ (placement excluded), by name.
    pub settings: Vec<String>,
    /// The parameter contract: every change to the flow's parameter schema.
    #[schema(value_type = Vec<Object>)]
    pub parameters: Vec<ParameterChange>,
}

/// The settings a build records for `flow` in the env the ledger calls `env`
/// (a personal `dev-<user>` env's settings are recorded under `dev`).
pub fn settings_in<'a>(build: &'a Build, env: &str, flow: &FlowKey) -> Option<&'a DeploymentSettings> {
    let settings = build.settings.as_ref()?;
    settings.get(env, flow).or_else(|| env.starts_with("dev-").then(|| settings.get(PERSONAL_ENV, flow)).flatten())
}

/// How `flow` changes from `old` (as env `old_env` runs it) to `new` (in
/// `new_env`); `files` is the two bundles' manifest diff when it was read.
pub fn flow_changes(
    flow: &FlowKey,
    (old, old_env): (&Build, &str),
    (new, new_env): (&Build, &str),
    files: Option<&ManifestDiff>,
) -> FlowChanges {
    let (Some(was), Some(will)) = (settings_in(old, old_env, flow), settings_in(new, new_env, flow)) else {
        return FlowChanges::default();
    };
    let codes = was.code.as_ref().zip(will.code.as_ref());
    let code_changed = codes.map(|(a, b)| a.digest != b.digest);
    let code_files = match (codes, files) {
        (Some((a, b)), Some(files)) if a.whole_bundle.is_none() && b.whole_bundle.is_none() => {
            let in_closure = |path: &String| a.paths.binary_search(path).is_ok() || b.paths.binary_search(path).is_ok();
            let changed = files.added.iter().chain(&files.removed).chain(&files.modified);
            let mut list: Vec<String> = changed.filter(|p| in_closure(p)).cloned().collect();
            list.sort();
            Some(list)
        }
        _ => None,
    };
    FlowChanges {
        code_changed,
        code_files,
        settings: changed_fields(was, will),
        parameters: compare(&was.parameter_schema, &will.parameter_schema),
    }
}

/// The names of the deployment fields that differ, in the order the settings
/// declare them; the code and the parameter schema have their own lines.
fn changed_fields(was: &DeploymentSettings, will: &DeploymentSettings) -> Vec<String> {
    let as_map = |s: &DeploymentSettings| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (as_map(was), as_map(will));
    let mut names: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
    names.retain(|k| !matches!(k.as_str(), "code" | "parameter_schema") && a.get(*k) != b.get(*k));
    names.into_iter().cloned().collect()
}

/// The lines `diff` and `show --against` print under a flow.
pub fn render(out: &mut String, changes: &FlowChanges) {
    match (&changes.code_files, changes.code_changed) {
        (Some(files), Some(true)) => {
            let shown: Vec<&str> = files.iter().map(String::as_str).collect();
            out.push_str(&format!("    code: {} closure file(s) changed: {}\n", files.len(), shown.join(", ")));
        }
        (_, Some(true)) => out.push_str("    code: changed\n"),
        (_, Some(false)) => out.push_str("    code: unchanged (same closure digest)\n"),
        (_, None) => {}
    }
    if !changes.settings.is_empty() {
        out.push_str(&format!("    settings: {} changed\n", changes.settings.join(", ")));
    }
    for change in &changes.parameters {
        let mark = if change.breaking { "BREAKING" } else { "ok" };
        out.push_str(&format!("    parameters ({mark}): {}\n", change.detail));
    }
}
