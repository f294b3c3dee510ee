//! One prefect.yaml deployment as a `[flows.F]` table: every key carried,
//! translated or dropped with a note (see [`crate::import_report`]).

use serde_json::Value as Json;
use serde_yaml::{Mapping, Value as Yaml};

use crate::import_report::Report;
use crate::import_steps::{clean_pull, schedule_list, to_json, PullContext};
use crate::import_values::{as_flowgate_template, has_inner_null, listed, refs_in, refs_in_json, PrefectRef};
use crate::schema::JsonMap;

/// One deployment as a flow, before it is written out. Template fields hold
/// flowgate template text (braces escaped, `{$X}` for an environment variable).
#[derive(Debug, Default)]
pub(crate) struct Flow {
    pub key: String,
    /// The deployment's name in the prefect.yaml, as Prefect knows it.
    pub prefect_name: String,
    /// What makes two deployments one Prefect flow: its `flow_name`, else its entrypoint.
    pub identity: String,
    pub entrypoint: String,
    pub flow_name: Option<String>,
    pub deployment_name: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
    pub work_pool: Option<String>,
    pub work_queue: Option<String>,
    pub tags: Vec<String>,
    pub paused: Option<bool>,
    pub concurrency_limit: Option<Json>,
    pub enforce_parameter_schema: Option<bool>,
    pub parameters: JsonMap,
    pub job_variables: JsonMap,
    pub schedules: Vec<JsonMap>,
    pub pull: Option<Vec<JsonMap>>,
}

/// The keys read here; any other key of a deployment is dropped with a note.
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
    "concurrency_limit",
    "enforce_parameter_schema",
];

/// Why a key flowgate does not carry is left out, when there is more to say.
fn unhandled_reason(key: &str) -> &'static str {
    match key {
        "triggers" => "flowgate does not manage automations; create them in Prefect (the UI or `prefect automation`)",
        "build" | "push" => "`flowgate build` packs the code and pins the image (set `image`)",
        "version_type" => "flowgate sets the version to the build id",
        _ => "flowgate has no such setting; set it in Prefect by hand",
    }
}

pub(crate) fn str_of(v: Option<&Yaml>) -> Option<String> {
    match to_json(v?)? {
        Json::String(s) => Some(s),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads deployment #`index`; `None` (with a note) when it cannot become a flow.
pub(crate) fn import_deployment(
    d: &Yaml,
    index: usize,
    taken: &[Flow],
    own_repository: Option<&str>,
    report: &mut Report,
) -> Option<Flow> {
    let Some(map) = d.as_mapping() else {
        report.enter(None);
        report
            .dropped(format!("deployments[{index}]"), format!("Deployment #{} is not a mapping; skipped.", index + 1));
        return None;
    };
    let name = str_of(map.get("name")).filter(|n| !n.trim().is_empty());
    let label = name.clone().unwrap_or_else(|| format!("#{}", index + 1));
    report.enter(Some(&label));
    let entrypoint = entrypoint(map, &label, report)?;
    let name = name.unwrap_or_else(|| {
        report.advise(format!("Deployment {label} has no `name`; it became flow `deployment-{}`.", index + 1));
        format!("deployment-{}", index + 1)
    });
    // An empty `flow_name` is absent to Prefect too: the entrypoint's flow is used.
    let flow_name = str_of(map.get("flow_name")).filter(|n| !n.trim().is_empty());
    if flow_name.is_some() {
        report.carried("flow_name");
    }
    let mut flow = Flow {
        identity: flow_name.clone().unwrap_or_else(|| entrypoint.clone()),
        prefect_name: name.clone(),
        entrypoint,
        flow_name,
        ..Flow::default()
    };
    name_and_key(&mut flow, taken, report);
    flow.description = template_field(map.get("description"), "description", &label, report);
    read_tags(map.get("tags"), &label, &mut flow, report);
    read_parameters(map.get("parameters"), &label, &mut flow, report);
    read_work_pool(map.get("work_pool"), &label, &mut flow, report);
    flow.schedules = schedule_list(map.get("schedule"), map.get("schedules"), &label, report);
    if let Some(steps) = map.get("pull").filter(|v| !v.is_null()) {
        let what = format!("the `pull` of deployment `{label}`");
        let cx = PullContext { what: &what, own_repository };
        flow.pull = Some(clean_pull(steps, &cx, report).kept);
    }
    read_scalars(map, &label, &mut flow, report);
    for (k, v) in map {
        let Some(k) = k.as_str() else { continue };
        if !HANDLED.contains(&k) && !v.is_null() {
            report
                .dropped(k, format!("The `{k}` of deployment `{label}` is not carried over: {}.", unhandled_reason(k)));
        }
    }
    Some(flow)
}

/// The entrypoint as flowgate takes it: `path/file.py:function` or
/// `package.module:function` (Prefect's `package.module.function` translated).
fn entrypoint(map: &Mapping, label: &str, report: &mut Report) -> Option<String> {
    let Some(written) = str_of(map.get("entrypoint")).filter(|e| !e.trim().is_empty()) else {
        report.dropped(
            "entrypoint",
            format!("Deployment `{label}` has no `entrypoint`; skipped (Prefect could not deploy it either)."),
        );
        return None;
    };
    let mut entrypoint = written.clone();
    if !written.contains(':') {
        if let Some((module, function)) = written.rsplit_once('.') {
            entrypoint = format!("{module}:{function}");
        }
    }
    if let Some(why) = crate::decode::entrypoint_problem(&entrypoint) {
        report.dropped("entrypoint", format!("Deployment `{label}` has entrypoint `{written}`, which {why}; skipped."));
        return None;
    }
    if entrypoint == written {
        report.carried("entrypoint");
    } else {
        report.translated(
            "entrypoint",
            format!("The entrypoint `{written}` of deployment `{label}` is written `{entrypoint}`."),
        );
    }
    Some(entrypoint)
}

/// The flow key from the deployment name, and the Prefect name kept where the
/// key differs. Prefect names a deployment within its flow: two deployments of
/// different flows keep their shared name; a second one of the same flow (which
/// Prefect would deploy over the first) is renamed.
fn name_and_key(flow: &mut Flow, taken: &[Flow], report: &mut Report) {
    let name = flow.prefect_name.clone();
    let template = as_flowgate_template(&name);
    let base = sanitize_key(&strip_templates(&name));
    let key = unique_key(&base, taken);
    flow.key = key.clone();
    if taken.iter().any(|f| f.prefect_name == name && f.identity == flow.identity) {
        report.translated(
            "name",
            format!("A second deployment `{name}` of the same flow became flow `{key}`, deployed under that name (Prefect would have deployed it over the first)."),
        );
        return;
    }
    let Some(template) = template else {
        report.dropped(
            "name",
            format!("The name `{name}` of a deployment holds {}, which Prefect resolves when it deploys and flowgate does not; it is deployed as `{key}`.", listed(&refs_in(&name))),
        );
        return;
    };
    if template != name {
        report.translated(
            "name",
            format!("The name `{name}` of a deployment reads environment variables: it became `deployment_name = \"{template}\"`, read when the build is made."),
        );
    } else {
        report.carried("name");
    }
    if key == name && template == name {
        return;
    }
    flow.deployment_name = Some(template);
    if key != base {
        report.advise(format!(
            "Deployment `{name}` of `{}` became flow `{key}`; its Prefect name stays `{name}` (Prefect names a deployment within its flow).",
            flow.identity
        ));
    } else {
        report
            .advise(format!("Deployment `{name}` became flow `{key}`; its Prefect name is kept as `deployment_name`."));
    }
}

fn strip_templates(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A deployment name as a flow key: lowercase, other characters `-`.
pub(crate) fn sanitize_key(name: &str) -> String {
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

/// A field flowgate renders as a template (description, work pool, work queue).
fn template_field(v: Option<&Yaml>, field: &str, label: &str, report: &mut Report) -> Option<String> {
    let text = str_of(v).filter(|t| !t.is_empty())?;
    match as_flowgate_template(&text) {
        Some(t) if refs_in(&text).is_empty() => {
            report.carried(field);
            Some(t)
        }
        Some(t) => {
            report.translated(
                field,
                format!(
                    "The `{field}` of deployment `{label}` reads {}: written `{t}`, read when the build is made.",
                    listed(&refs_in(&text))
                ),
            );
            Some(t)
        }
        None => {
            report.dropped(
                field,
                format!(
                    "The `{field}` `{text}` of deployment `{label}` holds {}, which Prefect resolves when it deploys and flowgate does not; not carried over: set `{field}` per env (`[envs.E]` or `[envs.E.flows.F]`).",
                    listed(&refs_in(&text))
                ),
            );
            None
        }
    }
}

fn read_tags(v: Option<&Yaml>, label: &str, flow: &mut Flow, report: &mut Report) {
    let items: Vec<Yaml> = match v {
        None | Some(Yaml::Null) => return,
        Some(Yaml::Sequence(items)) => items.clone(),
        Some(Yaml::String(one)) => {
            report.translated(
                "tags",
                format!("The `tags` of deployment `{label}` is one string, taken as the one tag `{one}`."),
            );
            vec![Yaml::String(one.clone())]
        }
        Some(_) => {
            report.dropped(
                "tags",
                format!("The `tags` of deployment `{label}` is not a list of strings; not carried over."),
            );
            return;
        }
    };
    for (i, tag) in items.iter().enumerate() {
        let path = format!("tags[{i}]");
        let Some(text) = str_of(Some(tag)) else {
            if !tag.is_null() {
                report.dropped(
                    path,
                    format!("Tag #{} of deployment `{label}` is not a string; not carried over.", i + 1),
                );
            }
            continue;
        };
        let refs = refs_in(&text);
        if refs.is_empty() {
            report.carried(path);
            flow.tags.push(text);
        } else {
            report.dropped(
                path,
                format!(
                    "The tag `{text}` of deployment `{label}` holds {}, which Prefect resolves when it deploys; flowgate sends tags as written, so it is not carried over: add the tag per env (`[envs.E.flows.F] tags`).",
                    listed(&refs)
                ),
            );
        }
    }
}

fn read_parameters(v: Option<&Yaml>, label: &str, flow: &mut Flow, report: &mut Report) {
    let Some(map) = mapping_of(v, "parameters", label, report) else { return };
    for (k, value) in map {
        let Some(k) = str_of(Some(k)) else { continue };
        let path = format!("parameters.{k}");
        let Some(json) = to_json(value) else {
            report.dropped(
                path,
                format!(
                    "The parameter `{k}` of deployment `{label}` is null, which TOML cannot hold: not carried over, so the flow's default applies where Prefect passed None."
                ),
            );
            continue;
        };
        let refs = refs_in_json(&json);
        if let Some(note) = unresolvable_in_parameters(&refs, &k, label) {
            report.dropped(path, note);
            continue;
        }
        carried_but_nulls(report, path, value, &format!("parameter `{k}` of deployment `{label}`"));
        flow.parameters.insert(k, json);
    }
}

/// Parameters are sent as written: any Prefect template in one would reach the
/// flow unresolved.
fn unresolvable_in_parameters(refs: &[PrefectRef], key: &str, label: &str) -> Option<String> {
    let first = refs.first()?;
    let instead = match first {
        PrefectRef::EnvVar(_) => "set the value per env in `[envs.E.flows.F] parameters`",
        PrefectRef::Block(_) | PrefectRef::Variable(_) => {
            "load it in the flow (`Secret.load(...)`, `Variable.get(...)`) or set the value per env in `[envs.E.flows.F] parameters`"
        }
        PrefectRef::StepOutput(_) => "set the value in `parameters`",
    };
    Some(format!(
        "The parameter `{key}` of deployment `{label}` holds {}, which Prefect resolves when it deploys; flowgate sends parameters as written, so it is not carried over: {instead}.",
        listed(refs)
    ))
}

fn read_work_pool(v: Option<&Yaml>, label: &str, flow: &mut Flow, report: &mut Report) {
    let pool = match v {
        None | Some(Yaml::Null) => {
            report.advise(format!(
                "Deployment `{label}` names no work pool: set `work_pool` in `[project]`, `[flows.{}]` or `[envs.E]` before releasing.",
                flow.key
            ));
            return;
        }
        Some(Yaml::String(name)) => {
            flow.work_pool = template_field(Some(&Yaml::String(name.clone())), "work_pool", label, report);
            return;
        }
        Some(Yaml::Mapping(pool)) => pool,
        Some(_) => {
            report.dropped(
                "work_pool",
                format!("The `work_pool` of deployment `{label}` is not a mapping; not carried over."),
            );
            return;
        }
    };
    flow.work_pool = template_field(pool.get("name"), "work_pool", label, report);
    flow.work_queue = template_field(pool.get("work_queue_name"), "work_queue", label, report);
    if flow.work_pool.is_none() && pool.get("name").is_none_or(Yaml::is_null) {
        report.advise(format!(
            "Deployment `{label}` names no work pool: set `work_pool` in `[project]`, `[flows.{}]` or `[envs.E]` before releasing.",
            flow.key
        ));
    }
    for (k, v) in pool {
        let Some(k) = k.as_str() else { continue };
        if !matches!(k, "name" | "work_queue_name" | "job_variables") && !v.is_null() {
            report.dropped(
                format!("work_pool.{k}"),
                format!("The `work_pool.{k}` of deployment `{label}` is not carried over: flowgate reads only `name`, `work_queue_name` and `job_variables` there."),
            );
        }
    }
    read_job_variables(pool.get("job_variables"), label, flow, report);
}

fn read_job_variables(v: Option<&Yaml>, label: &str, flow: &mut Flow, report: &mut Report) {
    let Some(map) = mapping_of(v, "work_pool.job_variables", label, report) else { return };
    for (k, value) in map {
        let Some(k) = str_of(Some(k)) else { continue };
        let path = format!("work_pool.job_variables.{k}");
        let Some(json) = to_json(value) else {
            report.dropped(path, format!("The job variable `{k}` of deployment `{label}` is null, which TOML cannot hold: not carried over, so the work pool's default applies."));
            continue;
        };
        if k == "image" {
            read_image(&json, label, flow, report);
            continue;
        }
        // Blocks and variables in job variables are resolved by the worker when
        // the flow runs, so they are kept; the rest Prefect resolves only when it deploys.
        let unresolvable: Vec<PrefectRef> = refs_in_json(&json)
            .into_iter()
            .filter(|r| matches!(r, PrefectRef::EnvVar(_) | PrefectRef::StepOutput(_)))
            .collect();
        if !unresolvable.is_empty() {
            report.dropped(
                path,
                format!(
                    "The job variable `{k}` of deployment `{label}` holds {}, which Prefect resolves when it deploys; flowgate sends job variables as written, so it is not carried over: set it per env in `[envs.E.flows.F] job_variables`, or use `{{{{ prefect.variables.NAME }}}}`, which the worker resolves when the flow runs.",
                    listed(&unresolvable)
                ),
            );
            continue;
        }
        carried_but_nulls(report, path, value, &format!("job variable `{k}` of deployment `{label}`"));
        flow.job_variables.insert(k, json);
    }
}

/// A value carried, or translated when TOML had to leave out nulls inside it.
fn carried_but_nulls(report: &mut Report, path: String, value: &Yaml, what: &str) {
    if has_inner_null(value) {
        report.translated(path, format!("The nulls inside {what} are left out: TOML cannot hold them."));
    } else {
        report.carried(path);
    }
}

fn read_image(image: &Json, label: &str, flow: &mut Flow, report: &mut Report) {
    let path = "work_pool.job_variables.image";
    let text = image.as_str().map_or_else(|| image.to_string(), str::to_string);
    match image.as_str().and_then(as_flowgate_template) {
        Some(template) => {
            report.translated(path, format!("The image `{text}` of deployment `{label}` became the flow's `image`, pinned by each build."));
            flow.image = Some(template);
        }
        None => report.dropped(
            path,
            format!("The `job_variables.image` `{text}` of deployment `{label}` is not carried over: each build pins the image (set `image`)."),
        ),
    }
}

/// A mapping value, or `None` (with a note when it is something else).
fn mapping_of<'y>(v: Option<&'y Yaml>, field: &str, label: &str, report: &mut Report) -> Option<&'y Mapping> {
    match v {
        None | Some(Yaml::Null) => None,
        Some(Yaml::Mapping(map)) => Some(map),
        Some(_) => {
            report.dropped(field, format!("The `{field}` of deployment `{label}` is not a mapping; not carried over."));
            None
        }
    }
}

/// `paused`, `version`, `concurrency_limit` and `enforce_parameter_schema`.
fn read_scalars(map: &Mapping, label: &str, flow: &mut Flow, report: &mut Report) {
    match map.get("paused") {
        None | Some(Yaml::Null) => {}
        Some(Yaml::Bool(b)) => {
            flow.paused = Some(*b);
            report.carried("paused");
        }
        Some(_) => report
            .dropped("paused", format!("The `paused` of deployment `{label}` is not true or false; not carried over.")),
    }
    if map.get("version").is_some_and(|v| !v.is_null()) {
        report.dropped(
            "version",
            format!("The `version` of deployment `{label}` is not carried over: flowgate sets it to the build id."),
        );
    }
    match map.get("enforce_parameter_schema") {
        None | Some(Yaml::Null) => {}
        Some(Yaml::Bool(b)) => {
            flow.enforce_parameter_schema = Some(*b);
            report.carried("enforce_parameter_schema");
        }
        Some(_) => report.dropped(
            "enforce_parameter_schema",
            format!("The `enforce_parameter_schema` of deployment `{label}` is not true or false; not carried over."),
        ),
    }
    let limit = map.get("concurrency_limit").and_then(to_json);
    match limit {
        None => {}
        Some(Json::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
            flow.concurrency_limit = Some(Json::Number(n));
            report.carried("concurrency_limit");
        }
        Some(Json::Object(table)) if concurrency_table_fits(&table) => {
            flow.concurrency_limit = Some(Json::Object(table));
            report.carried("concurrency_limit");
        }
        Some(other) => report.dropped(
            "concurrency_limit",
            format!("The `concurrency_limit` `{other}` of deployment `{label}` is neither a positive number nor `{{ limit, collision_strategy, grace_period_seconds }}` as Prefect takes them; not carried over."),
        ),
    }
}

fn concurrency_table_fits(table: &JsonMap) -> bool {
    let limit_ok = table.get("limit").and_then(Json::as_u64).is_some_and(|n| n > 0);
    let strategy_ok =
        table.get("collision_strategy").is_none_or(|s| matches!(s.as_str(), Some("ENQUEUE" | "CANCEL_NEW")));
    let grace_ok =
        table.get("grace_period_seconds").is_none_or(|g| g.as_u64().is_some_and(|g| (60..=86_400).contains(&g)));
    let known = |k: &String| matches!(k.as_str(), "limit" | "collision_strategy" | "grace_period_seconds");
    limit_ok && strategy_ok && grace_ok && table.keys().all(known)
}
