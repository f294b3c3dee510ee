//! The parts of a prefect.yaml deployment that need care on import: YAML values
//! as JSON (nulls dropped), pull steps (code-fetching ones replaced by
//! flowgate's) and schedules (the old singular `schedule:` included).

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

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

/// Keeps the user's pull steps and drops the code-fetching ones (with a note);
/// references to a dropped step's `directory` now point at flowgate's download.
pub(crate) fn clean_pull(steps: &Yaml, what: &str, notes: &mut Vec<String>) -> PullSteps {
    let Some(items) = steps.as_sequence() else {
        notes.push(format!("{} is not a list; not carried over.", capitalize(what)));
        return PullSteps::default();
    };
    let mut kept = Vec::new();
    let mut dropped_ids = Vec::new();
    for item in items {
        let Some(Json::Object(step)) = to_json(item) else { continue };
        let Some((function, args)) = step.iter().next().filter(|_| step.len() == 1) else {
            notes.push(format!("A step of {what} is not a one-key mapping; not carried over."));
            continue;
        };
        let short = function.rsplit('.').next().unwrap_or(function);
        if CODE_STEPS.contains(&short) {
            notes.push(format!(
                "The `{short}` step of {what} is not carried over: flowgate's pull step downloads the build's code."
            ));
            if let Some(id) = args.get("id").and_then(Json::as_str) {
                dropped_ids.push(id.to_string());
            }
            continue;
        }
        let args = if args.is_object() { args.clone() } else { Json::Object(JsonMap::new()) };
        kept.push(JsonMap::from_iter([(function.clone(), args)]));
    }
    for step in &mut kept {
        for value in step.values_mut() {
            for id in &dropped_ids {
                if rewrite_directory(value, id) {
                    notes.push(format!(
                        "In {what}, `{{{{ {id}.directory }}}}` now reads `{{{{ pull-code.stdout }}}}`, the directory of flowgate's download."
                    ));
                }
            }
        }
    }
    PullSteps { kept }
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
    notes: &mut Vec<String>,
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
        let Json::Object(mut map) = schedule else {
            notes.push(format!("Schedule #{} of deployment `{deployment}` is not a mapping; not carried over.", i + 1));
            continue;
        };
        map.retain(|k, v| {
            let ok = SCHEDULE_KEYS.contains(&k.as_str()) && value_fits(k, v);
            if !ok {
                notes.push(format!(
                    "The `{k}` of schedule #{} of deployment `{deployment}` is not carried over.",
                    i + 1
                ));
            }
            ok
        });
        let kinds = ["cron", "interval", "rrule"].iter().filter(|k| map.contains_key(**k)).count();
        if kinds != 1 {
            notes.push(format!(
                "Schedule #{} of deployment `{deployment}` needs exactly one of `cron`, `interval` or `rrule`; not carried over.",
                i + 1
            ));
            continue;
        }
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
