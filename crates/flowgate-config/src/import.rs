//! `flowgate init --from-prefect-yaml`: the deployments of an existing
//! prefect.yaml as `[flows.F]` tables, with a note for everything not carried over.

use flowgate_core::ProjectName;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::emit::{inline, key, string, table_array, ENVS_SECTION};
use crate::error::ConfigError;
use crate::import_deployment::{import_deployment, str_of, Flow};
use crate::import_report::{ImportCounts, ImportItem, Report};
use crate::import_steps::{clean_pull, PullContext, PullSteps};
use crate::schema::JsonMap;

/// The generated `flowgate.toml` text and what became of every value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    /// Every translation, drop and piece of advice, each once.
    pub notes: Vec<String>,
    /// Each value of the prefect.yaml and its outcome.
    pub items: Vec<ImportItem>,
    pub counts: ImportCounts,
}

/// What the import knows besides the file.
#[derive(Debug, Clone, Default)]
pub struct ImportContext {
    /// The project's own git remote: a `git_clone` of it is the code checkout
    /// flowgate's pull step replaces; a clone of any other repository is kept.
    pub own_repository: Option<String>,
    /// Name the project after the prefect.yaml's `name` when it is a valid
    /// project name (the caller was given no name of its own).
    pub name_from_file: bool,
}

/// Top-level keys and why they are not carried over.
fn top_level_reason(key: &str) -> Option<&'static str> {
    Some(match key {
        "build" | "push" => "`flowgate build` packs the code and pins the image (set `image` in `[project]`)",
        "prefect-version" => {
            "flowgate deploys through the Prefect server's API; pin `prefect` in the project's requirements"
        }
        "name" | "pull" | "deployments" | "definitions" => return None,
        _ => "flowgate has no such setting",
    })
}

/// Reads a prefect.yaml (anchors, `<<:` merges and `definitions:` resolved) into
/// a config for `project_name` that [`crate::parse`] accepts.
pub fn import_prefect_yaml(project_name: &str, text: &str) -> Result<Imported, ConfigError> {
    import_prefect_yaml_with(project_name, text, &ImportContext::default())
}

/// [`import_prefect_yaml`] knowing the project's repository. Fails when the file
/// has deployments and none of them can become a flow.
pub fn import_prefect_yaml_with(project_name: &str, text: &str, cx: &ImportContext) -> Result<Imported, ConfigError> {
    let fail = |message: String| ConfigError::Import { message };
    let mut doc: Yaml = serde_yaml::from_str(text).map_err(|e| fail(e.to_string()))?;
    // A merged-in mapping may itself hold `<<`: merge until none is left.
    for _ in 0..16 {
        doc.apply_merge().map_err(|e| fail(e.to_string()))?;
        if !has_merge_key(&doc) {
            break;
        }
    }
    let Some(top) = doc.as_mapping() else {
        return Err(fail("the document is not a mapping with a `deployments:` list".to_string()));
    };
    let mut report = Report::default();
    for (k, v) in top {
        let (Some(k), false) = (k.as_str(), v.is_null()) else { continue };
        if let Some(reason) = top_level_reason(k) {
            report.dropped(k, format!("The top-level `{k}` is not carried over: {reason}."));
        }
    }
    let written_name = str_of(top.get("name"));
    let from_file = written_name
        .as_deref()
        .map(crate::sanitize_user)
        .filter(|n| cx.name_from_file && n.parse::<ProjectName>().is_ok());
    let project_name = from_file.as_deref().unwrap_or(project_name);
    match written_name {
        Some(name) if name == project_name => report.carried("name"),
        Some(name) if from_file.is_some() => report.translated(
            "name",
            format!("The prefect.yaml `name` `{name}` became the project name `{project_name}`."),
        ),
        Some(name) => report.translated(
            "name",
            format!("The prefect.yaml `name` `{name}` is not the project name: the project is `{project_name}` (pass `--name` to choose)."),
        ),
        None => {}
    }
    let own_repository = cx.own_repository.as_deref();
    let project_pull = match top.get("pull") {
        Some(steps) if !steps.is_null() => {
            clean_pull(steps, &PullContext { what: "the top-level `pull`", own_repository }, &mut report)
        }
        _ => PullSteps::default(),
    };
    let deployments = match top.get("deployments") {
        Some(Yaml::Sequence(items)) => items.as_slice(),
        Some(v) if !v.is_null() => return Err(fail("`deployments` is not a list".to_string())),
        _ => &[],
    };
    if deployments.is_empty() {
        report.advise("The file has no deployments; add `[flows.F]` tables by hand.");
    }
    let mut flows: Vec<Flow> = Vec::new();
    for (i, deployment) in deployments.iter().enumerate() {
        if let Some(flow) = import_deployment(deployment, i, &flows, own_repository, &mut report) {
            flows.push(flow);
        }
    }
    if !deployments.is_empty() && flows.is_empty() {
        return Err(fail(format!(
            "none of its {} deployment(s) can become a flow: {}",
            deployments.len(),
            report.notes().join(" ")
        )));
    }
    let counts = report.counts(deployments.len(), flows.len());
    Ok(Imported {
        toml: render(project_name, &project_pull.kept, &flows),
        notes: report.notes(),
        items: report.items,
        counts,
    })
}

fn has_merge_key(v: &Yaml) -> bool {
    match v {
        Yaml::Mapping(m) => m.iter().any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Yaml::Sequence(s) => s.iter().any(has_merge_key),
        Yaml::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

fn render(project_name: &str, project_pull: &[JsonMap], flows: &[Flow]) -> String {
    let mut out = String::from("# Imported from prefect.yaml by `flowgate init`.\n\n[project]\n");
    out.push_str(&format!("name = {}\n", string(project_name)));
    out.push_str("# ledger = \"sqlite://.flowgate/ledger.db\"\n# artifacts = \"file://.flowgate/artifacts\"\n");
    if !project_pull.is_empty() {
        table_array(&mut out, "pull", project_pull);
    }
    for flow in flows {
        out.push_str(&format!("\n[flows.{}]\n", key(&flow.key)));
        out.push_str(&format!("entrypoint = {}\n", string(&flow.entrypoint)));
        if let Some(name) = &flow.flow_name {
            out.push_str(&format!("flow_name = {}\n", string(name)));
        }
        let templates = [
            ("deployment_name", &flow.deployment_name),
            ("description", &flow.description),
            ("image", &flow.image),
            ("work_pool", &flow.work_pool),
            ("work_queue", &flow.work_queue),
        ];
        for (field, value) in templates {
            if let Some(value) = value {
                // Already template text: literal braces escaped, `{$X}` placeholders kept.
                out.push_str(&format!("{field} = {}\n", string(value)));
            }
        }
        if !flow.tags.is_empty() {
            out.push_str(&format!("tags = {}\n", inline(&Json::from(flow.tags.clone()))));
        }
        if let Some(paused) = flow.paused {
            out.push_str(&format!("paused = {paused}\n"));
        }
        if let Some(limit) = &flow.concurrency_limit {
            out.push_str(&format!("concurrency_limit = {}\n", inline(limit)));
        }
        if let Some(enforce) = flow.enforce_parameter_schema {
            out.push_str(&format!("enforce_parameter_schema = {enforce}\n"));
        }
        for (field, map) in [("parameters", &flow.parameters), ("job_variables", &flow.job_variables)] {
            if !map.is_empty() {
                out.push_str(&format!("{field} = {}\n", inline(&Json::Object(map.clone()))));
            }
        }
        if !flow.schedules.is_empty() {
            table_array(&mut out, "schedules", &flow.schedules);
        }
        match &flow.pull {
            Some(steps) if !steps.is_empty() || !project_pull.is_empty() => table_array(&mut out, "pull", steps),
            _ => {}
        }
    }
    out.push_str(ENVS_SECTION);
    out
}
