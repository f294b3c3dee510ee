//! The parts of a prefect.yaml deployment that need care on import: YAML values
//! as JSON (nulls dropped), pull steps (code-fetching ones replaced by
//! flowgate's) and schedules (the old singular `schedule:` included).

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::import_report::Report;
use crate::schema::JsonMap;
use crate::settings::SCHEDULE_KEYS;

/// Pull steps that fetch the flow code: flowgate's own pull step does that.
const CODE_STEPS: &[&str] = &[
    "git_clone",
    "pull_from_s3",
    "pull_from_gcs",
    "pull_from_azure_blob_storage",
    "pull_with_block",
    "set_working_directory",
];

/// A YAML value as JSON: nulls are absent, tags are dropped, non-string keys
/// become strings. `None` for a null (or a float JSON cannot hold).
pub(crate) fn to_json(v: &Yaml) -> Option<Json> {
    Some(match v {
        Yaml::Null => return None,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Json::from(i),
            (_, Some(u)) => Json::from(u),
            _ => Json::Number(serde_json::Number::from_f64(n.as_f64()?)?),
        },
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(items.iter().filter_map(to_json).collect()),
        Yaml::Mapping(map) => Json::Object(
            map.iter()
                .filter_map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        other => match to_json(other)? {
                            Json::String(s) => s,
                            j => j.to_string(),
                        },
                    };
                    Some((key, to_json(v)?))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => return to_json(&tagged.value),
    })
}

/// The user pull steps kept from one `pull:` list.
#[derive(Debug, Default)]
pub(crate) struct PullSteps {
    pub kept: Vec<JsonMap>,
}

/// Where a `pull:` list sits, for notes and item paths.
pub(crate) struct PullContext<'a> {
    /// `the top-level `pull`` or `the `pull` of deployment `x``.
    pub what: &'a str,
    /// The project's own repository (its git remote), to tell the code checkout
    /// from a clone of another repository; `None` when unknown.
    pub own_repository: Option<&'a str>,
}

/// Prefect 2's step module, renamed in Prefect 3 (the old names fail there).
const PREFECT2_STEPS: &str = "prefect.projects.steps.";
const PREFECT3_STEPS: &str = "prefect.deployments.steps.";

/// Keeps the user's pull steps and drops the ones that fetch the project's code
/// (flowgate's pull step does), with a note for each; a `git_clone` of another
/// repository (a shared library, a dbt project) stays, after flowgate's download.
/// References to a dropped step's `directory` now point at flowgate's download.
pub(crate) fn clean_pull(steps: &Yaml, cx: &PullContext<'_>, report: &mut Report) -> PullSteps {
    let what = cx.what;
    let Some(items) = steps.as_sequence() else {
        report.dropped("pull", format!("{} is not a list; not carried over.", capitalize(what)));
        return PullSteps::default();
    };
    let mut kept = Vec::new();
    let mut dropped_ids = Vec::new();
    let mut code_checkout_seen = false;
    for (index, item) in items.iter().enumerate() {
        let path = format!("pull[{index}]");
        let Some(Json::Object(step)) = to_json(item) else {
            report.dropped(path, format!("Step #{} of {what} is not a mapping; not carried over.", index + 1));
            continue;
        };
        let Some((written, args)) = step.iter().next().filter(|_| step.len() == 1) else {
            report.dropped(path, format!("Step #{} of {what} is not a one-key mapping; not carried over.", index + 1));
            continue;
        };
        let function = prefect3_name(written);
        let short = function.rsplit('.').next().unwrap_or(&function).to_string();
        let renamed = (function != *written)
            .then(|| format!("The Prefect 2 step `{written}` of {what} is `{function}` in Prefect 3."));
        let is_code_checkout = short == "git_clone" && {
            let checkout = clones_own_code(args, cx.own_repository, code_checkout_seen);
            code_checkout_seen |= checkout;
            checkout
        };
        if is_code_checkout || (short != "git_clone" && CODE_STEPS.contains(&short.as_str())) {
            report.dropped(
                path,
                format!("The `{short}` step of {what} is not carried over: flowgate's pull step downloads the build's code."),
            );
            if let Some(id) = args.get("id").and_then(Json::as_str) {
                dropped_ids.push(id.to_string());
            }
            continue;
        }
        if short == "git_clone" {
            let repository = args.get("repository").and_then(Json::as_str).unwrap_or("another repository");
            report.advise(format!(
                "The `git_clone` of `{repository}` in {what} is not the project's code: kept as a pull step after flowgate's download, its outputs wired as before."
            ));
        }
        match renamed {
            Some(note) => report.translated(path, note),
            None => report.carried(path),
        }
        let args = if args.is_object() { args.clone() } else { Json::Object(JsonMap::new()) };
        kept.push(JsonMap::from_iter([(function, args)]));
    }
    for (index, step) in kept.iter_mut().enumerate() {
        for value in step.values_mut() {
            for id in &dropped_ids {
                if rewrite_directory(value, id) {
                    report.translated(
                        format!("pull[{index}]"),
                        format!(
                            "In {what}, `{{{{ {id}.directory }}}}` now reads `{{{{ pull-code.stdout }}}}`, the directory of flowgate's download."
                        ),
                    );
                }
            }
        }
    }
    PullSteps { kept }
}

/// A step's Prefect 3 name: `prefect.projects.steps.git_clone_project` is
/// `prefect.deployments.steps.git_clone`.
fn prefect3_name(function: &str) -> String {
    let Some(short) = function.strip_prefix(PREFECT2_STEPS) else { return function.to_string() };
    let short = match short {
        "git_clone_project" => "git_clone",
        other => other,
    };
    format!("{PREFECT3_STEPS}{short}")
}

/// Whether a `git_clone` step fetches the project's own code: its repository is
/// the project's remote; with no remote known, the first clone of the list is
/// taken for the checkout and later ones for other repositories.
fn clones_own_code(args: &Json, own: Option<&str>, checkout_seen: bool) -> bool {
    match (args.get("repository").and_then(Json::as_str), own) {
        (Some(repository), Some(own)) if !repository.contains("{{") => same_repository(repository, own),
        _ => !checkout_seen,
    }
}

/// Two git URLs name the same repository: scheme, credentials, `.git` and the
/// `git@host:path` form aside.
pub(crate) fn same_repository(a: &str, b: &str) -> bool {
    normalize_repository(a) == normalize_repository(b)
}

fn normalize_repository(url: &str) -> String {
    let mut rest = url.trim();
    for scheme in ["https://", "http://", "ssh://", "git://", "git+ssh://"] {
        if let Some(stripped) = rest.strip_prefix(scheme) {
            rest = stripped;
            break;
        }
    }
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host_path)| host_path);
    // `host:path` (scp form) and `host:port/path` both become `host/path`.
    let rest = match rest.split_once(':') {
        Some((host, path)) => {
            let path = path.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{host}/{}", path.trim_start_matches('/'))
        }
        None => rest.to_string(),
    };
    rest.trim_end_matches('/').trim_end_matches(".git").to_ascii_lowercase()
}

/// Replaces `{{ <id>.directory }}` with `{{ pull-code.stdout }}` in every string.
fn rewrite_directory(value: &mut Json, id: &str) -> bool {
    match value {
        Json::String(s) => {
            let mut changed = false;
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let Some(len) = rest[start..].find("}}") else { break };
                let inner = rest[start + 2..start + len].trim();
                out.push_str(&rest[..start]);
                if inner == format!("{id}.directory") {
                    out.push_str("{{ pull-code.stdout }}");
                    changed = true;
                } else {
                    out.push_str(&rest[start..start + len + 2]);
                }
                rest = &rest[start + len + 2..];
            }
            out.push_str(rest);
            if changed {
                *s = out;
            }
            changed
        }
        Json::Array(items) => items.iter_mut().fold(false, |acc, v| rewrite_directory(v, id) | acc),
        Json::Object(map) => map.values_mut().fold(false, |acc, v| rewrite_directory(v, id) | acc),
        _ => false,
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The schedules of one deployment: the old `schedule:` first, then `schedules:`.
pub(crate) fn schedule_list(
    single: Option<&Yaml>,
    many: Option<&Yaml>,
    deployment: &str,
    report: &mut Report,
) -> Vec<JsonMap> {
    let mut raw: Vec<Json> = Vec::new();
    if let Some(one) = single.and_then(to_json) {
        raw.push(one);
    }
    match many.and_then(to_json) {
        Some(Json::Array(items)) => raw.extend(items),
        Some(other) => raw.push(other),
        None => {}
    }
    let mut out = Vec::new();
    for (i, schedule) in raw.into_iter().enumerate() {
        // `schedule: {}` is what Prefect 2's `prefect init` writes for "none".
        if schedule.as_object().is_some_and(JsonMap::is_empty) {
            continue;
        }
        let Json::Object(mut map) = schedule else {
            report.dropped(
                format!("schedules[{i}]"),
                format!("Schedule #{} of deployment `{deployment}` is not a mapping; not carried over.", i + 1),
            );
            continue;
        };
        map.retain(|k, v| {
            let ok = SCHEDULE_KEYS.contains(&k.as_str()) && value_fits(k, v);
            if !ok {
                report.dropped(
                    format!("schedules[{i}].{k}"),
                    format!(
                        "The `{k}` of schedule #{} of deployment `{deployment}` is not carried over: flowgate takes {} there.",
                        i + 1,
                        SCHEDULE_KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            ok
        });
        let kinds = ["cron", "interval", "rrule"].iter().filter(|k| map.contains_key(**k)).count();
        if kinds != 1 {
            report.dropped(
                format!("schedules[{i}]"),
                format!(
                    "Schedule #{} of deployment `{deployment}` needs exactly one of `cron`, `interval` or `rrule`; not carried over.",
                    i + 1
                ),
            );
            continue;
        }
        report.carried(format!("schedules[{i}]"));
        out.push(map);
    }
    out
}

/// Whether a schedule value has the type flowgate's validation accepts.
fn value_fits(key: &str, v: &Json) -> bool {
    match key {
        "cron" => v.as_str().is_some_and(|c| c.starts_with('@') || (5..=6).contains(&c.split_whitespace().count())),
        "interval" => v.as_f64().is_some_and(|n| n > 0.0),
        "rrule" | "timezone" | "slug" => v.as_str().is_some_and(|s| !s.trim().is_empty()),
        "anchor_date" | "replaces" => v.is_string(),
        "day_or" | "active" => v.is_boolean(),
        "max_scheduled_runs" => v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
        "parameters" => v.is_object(),
        _ => false,
    }
}
