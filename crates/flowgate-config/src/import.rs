//! `flowgate init --from-prefect-yaml`: the deployments of an existing
//! prefect.yaml as `[flows.F]` tables, with a note for everything not carried over.

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::emit::{inline, key, string, table_array, ENVS_SECTION};
use crate::error::ConfigError;
use crate::import_steps::{clean_pull, schedule_list, to_json, PullSteps};
use crate::schema::JsonMap;
use crate::template::Template;

/// The generated `flowgate.toml` text and human notes on what changed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub notes: Vec<String>,
}

/// One deployment as a flow, before it is written out.
#[derive(Debug, Default)]
struct Flow {
    key: String,
    entrypoint: String,
    flow_name: Option<String>,
    deployment_name: Option<String>,
    description: Option<String>,
    image: Option<String>,
    work_pool: Option<String>,
    work_queue: Option<String>,
    tags: Vec<String>,
    paused: Option<bool>,
    parameters: JsonMap,
    job_variables: JsonMap,
    schedules: Vec<JsonMap>,
    pull: Option<Vec<JsonMap>>,
}

const HANDLED: &[&str] = &[
    "name",
    "entrypoint",
    "flow_name",
    "description",
    "version",
    "tags",
    "parameters",
    "work_pool",
    "schedule",
    "schedules",
    "pull",
    "paused",
];

/// Reads a prefect.yaml (anchors, `<<:` merges and `definitions:` resolved, nulls
/// treated as absent) into a config for `project_name` that [`crate::parse`] accepts.
pub fn import_prefect_yaml(project_name: &str, text: &str) -> Result<Imported, ConfigError> {
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
    let mut notes = Vec::new();
    for section in ["build", "push"] {
        if top.get(section).is_some_and(|v| !v.is_null()) {
            notes.push(format!(
                "The top-level `{section}` steps are not carried over: `flowgate build` packs the code and pins the image (set `image` in `[project]`)."
            ));
        }
    }
    let project_pull = match top.get("pull") {
        Some(steps) if !steps.is_null() => clean_pull(steps, "the top-level `pull`", &mut notes),
        _ => PullSteps::default(),
    };
    let deployments = match top.get("deployments") {
        Some(Yaml::Sequence(items)) => items.as_slice(),
        Some(v) if !v.is_null() => return Err(fail("`deployments` is not a list".to_string())),
        _ => &[],
    };
    if deployments.is_empty() {
        notes.push("The file has no deployments; add `[flows.F]` tables by hand.".to_string());
    }
    let mut flows: Vec<Flow> = Vec::new();
    for (i, deployment) in deployments.iter().enumerate() {
        if let Some(flow) = import_deployment(deployment, i, &flows, &mut notes) {
            flows.push(flow);
        }
    }
    Ok(Imported { toml: render(project_name, &project_pull.kept, &flows), notes })
}

fn has_merge_key(v: &Yaml) -> bool {
    match v {
        Yaml::Mapping(m) => m.iter().any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Yaml::Sequence(s) => s.iter().any(has_merge_key),
        Yaml::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

fn str_of(v: Option<&Yaml>) -> Option<String> {
    match to_json(v?)? {
        Json::String(s) => Some(s),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn map_of(v: Option<&Yaml>) -> JsonMap {
    match v.and_then(to_json) {
        Some(Json::Object(map)) => map,
        _ => JsonMap::new(),
    }
}

fn import_deployment(d: &Yaml, index: usize, taken: &[Flow], notes: &mut Vec<String>) -> Option<Flow> {
    let Some(map) = d.as_mapping() else {
        notes.push(format!("Deployment #{} is not a mapping; skipped.", index + 1));
        return None;
    };
    let name = str_of(map.get("name")).unwrap_or_else(|| format!("deployment-{}", index + 1));
    let Some(entrypoint) = str_of(map.get("entrypoint")) else {
        notes.push(format!("Deployment `{name}` has no `entrypoint`; skipped."));
        return None;
    };
    if let Some(why) = crate::decode::entrypoint_problem(&entrypoint) {
        notes.push(format!("Deployment `{name}` has entrypoint `{entrypoint}`, which {why}; skipped."));
        return None;
    }
    let sanitized = sanitize_key(&name);
    let key = unique_key(&sanitized, taken);
    let mut flow = Flow { entrypoint, ..Flow::default() };
    if key != sanitized {
        // Keeping the name would make both flows one Prefect deployment.
        notes.push(format!("A second deployment `{name}` became flow `{key}`, deployed under that name."));
    } else if key != name {
        flow.deployment_name = Some(name.clone());
        notes.push(format!("Deployment `{name}` became flow `{key}`; its Prefect name is kept as `deployment_name`."));
    }
    flow.key = key;
    flow.flow_name = str_of(map.get("flow_name"));
    flow.description = str_of(map.get("description"));
    flow.paused = map.get("paused").and_then(Yaml::as_bool);
    if map.get("version").is_some_and(|v| !v.is_null()) {
        notes.push(format!(
            "The `version` of deployment `{name}` is not carried over: flowgate sets it to the build id."
        ));
    }
    if let Some(Yaml::Sequence(tags)) = map.get("tags") {
        flow.tags = tags.iter().filter_map(|t| str_of(Some(t))).collect();
    }
    flow.parameters = map_of(map.get("parameters"));
    match map.get("work_pool") {
        Some(Yaml::String(pool)) => flow.work_pool = Some(pool.clone()),
        Some(Yaml::Mapping(pool)) => {
            flow.work_pool = str_of(pool.get("name"));
            flow.work_queue = str_of(pool.get("work_queue_name"));
            flow.job_variables = map_of(pool.get("job_variables"));
        }
        _ => {}
    }
    match flow.job_variables.remove("image") {
        Some(Json::String(image)) if !image.contains("{{") => {
            notes.push(format!("The image `{image}` of deployment `{name}` became the flow's `image`, pinned by each build."));
            flow.image = Some(image);
        }
        Some(image) => notes.push(format!(
            "The `job_variables.image` `{}` of deployment `{name}` is not carried over: each build pins the image (set `image`).",
            image.as_str().map_or_else(|| image.to_string(), str::to_string)
        )),
        None => {}
    }
    flow.schedules = schedule_list(map.get("schedule"), map.get("schedules"), &name, notes);
    if let Some(steps) = map.get("pull").filter(|v| !v.is_null()) {
        flow.pull = Some(clean_pull(steps, &format!("the `pull` of deployment `{name}`"), notes).kept);
    }
    for field in ["work_pool", "work_queue", "description"] {
        let value = match field {
            "work_pool" => &flow.work_pool,
            "work_queue" => &flow.work_queue,
            _ => &flow.description,
        };
        if value.as_deref().is_some_and(|v| v.contains("{{")) {
            notes.push(format!(
                "The `{field}` of deployment `{name}` holds a Prefect template, which flowgate does not resolve there; it is kept as literal text."
            ));
        }
    }
    for (k, v) in map {
        let Some(k) = k.as_str() else { continue };
        if !HANDLED.contains(&k) && !v.is_null() {
            notes.push(format!("The `{k}` of deployment `{name}` is not carried over; set it in Prefect or by hand."));
        }
    }
    Some(flow)
}

/// A deployment name as a flow key: lowercase, other characters `-`.
fn sanitize_key(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_start_matches(['_', '.']).chars().take(56).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "flow".to_string()
    } else {
        out
    }
}

fn unique_key(base: &str, taken: &[Flow]) -> String {
    let used = |k: &str| taken.iter().any(|f| f.key == k);
    if !used(base) {
        return base.to_string();
    }
    (2..).map(|n| format!("{base}-{n}")).find(|k| !used(k)).expect("some suffix is free")
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
                out.push_str(&format!("{field} = {}\n", string(&Template::escape(value))));
            }
        }
        if !flow.tags.is_empty() {
            out.push_str(&format!("tags = {}\n", inline(&Json::from(flow.tags.clone()))));
        }
        if let Some(paused) = flow.paused {
            out.push_str(&format!("paused = {paused}\n"));
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
