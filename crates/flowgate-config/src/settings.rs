//! The deployment settings allowed on every layer (project, flow, env, env.flow):
//! reading and checking them, including the per-field template rules.

use flowgate_core::{CollisionStrategy, ConcurrencyLimit};

use crate::check::{key_in, Ctx};
use crate::error::ConfigError;
use crate::node::{Entry, Node, Val};
use crate::schema::{JsonMap, Settings};
use crate::template::{Placeholder, Template};

pub(crate) const SETTING_KEYS: &[&str] = &[
    "work_pool",
    "work_queue",
    "image",
    "parameters",
    "job_variables",
    "tags",
    "schedules",
    "description",
    "deployment_name",
    "pull",
    "paused",
    "work_pool_type",
    "concurrency_limit",
    "enforce_parameter_schema",
];

pub(crate) const CONCURRENCY_KEYS: &[&str] = &["limit", "collision_strategy", "grace_period_seconds"];

pub(crate) const SCHEDULE_KEYS: &[&str] = &[
    "cron",
    "interval",
    "rrule",
    "timezone",
    "day_or",
    "anchor_date",
    "active",
    "parameters",
    "slug",
    "max_scheduled_runs",
    "replaces",
];

/// Which layer a table is; the image may only be set before an env is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Project,
    Flow,
    Env,
    EnvFlow,
}

use Placeholder::{Branch, Commit, Env, Flow, Short, User};

/// Reads `e` into `settings` if it is a deployment setting; `Ok(false)` if it is not one.
pub(crate) fn decode_setting(
    cx: Ctx<'_>,
    settings: &mut Settings,
    e: &Entry,
    table: &str,
    level: Level,
) -> Result<bool, ConfigError> {
    let what = key_in(&e.key, table);
    let node = &e.node;
    match e.key.as_str() {
        "work_pool" => settings.work_pool = Some(template(cx, node, &what, &Placeholder::ALL, "")?),
        "work_queue" => settings.work_queue = Some(template(cx, node, &what, &Placeholder::ALL, "")?),
        "description" => settings.description = Some(template(cx, node, &what, &Placeholder::ALL, "")?),
        "deployment_name" => {
            let why =
                "a deployment keeps its name from build to build, so it may only use `{flow}`, `{env}` and `{user}`";
            settings.deployment_name = Some(template(cx, node, &what, &[Flow, Env, User], why)?);
        }
        "image" => {
            if matches!(level, Level::Env | Level::EnvFlow) {
                return Err(cx.error(
                    &e.key_span,
                    format!("{what} is not allowed: the image is pinned when the build is made, so every env runs the image of its build; set `image` in `[project]` or `[flows.F]`"),
                ));
            }
            let why = "the image is pinned when the build is made, before any env or user is known";
            settings.image = Some(template(cx, node, &what, &[Commit, Short, Branch, Flow], why)?);
        }
        "parameters" => settings.parameters = Some(cx.object(node, &what)?),
        "job_variables" => settings.job_variables = Some(cx.object(node, &what)?),
        "tags" => {
            let mut tags = Vec::new();
            for (tag, span) in cx.strings(node, &what)? {
                if tag.trim().is_empty() {
                    return Err(cx.error(span, format!("{what} holds an empty tag")));
                }
                tags.push(tag);
            }
            settings.tags = Some(tags);
        }
        "schedules" => {
            let items = cx.array(node, &what)?;
            settings.schedules = Some(items.iter().map(|s| schedule(cx, s, &what)).collect::<Result<_, _>>()?);
        }
        "pull" => {
            let items = cx.array(node, &what)?;
            settings.pull = Some(items.iter().map(|s| pull_step(cx, s, &what)).collect::<Result<_, _>>()?);
        }
        "paused" => settings.paused = Some(cx.bool(node, &what)?),
        "work_pool_type" => settings.work_pool_type = Some(cx.non_empty(node, &what)?),
        "concurrency_limit" => settings.concurrency_limit = Some(concurrency_limit(cx, node, &what)?),
        "enforce_parameter_schema" => settings.enforce_parameter_schema = Some(cx.bool(node, &what)?),
        _ => return Ok(false),
    }
    Ok(true)
}

/// A template field: parsed, and only `allowed` placeholders accepted (`why` says why).
pub(crate) fn template(
    cx: Ctx<'_>,
    node: &Node,
    what: &str,
    allowed: &[Placeholder],
    why: &str,
) -> Result<Template, ConfigError> {
    let text = cx.string(node, what)?;
    let template = Template::parse(&text).map_err(|e| cx.error(&node.span, format!("{what}: {e}")))?;
    if let Some(p) = template.placeholders().find(|p| !allowed.contains(p)) {
        return Err(cx.error(&node.span, format!("{what} `{text}` cannot use `{{{}}}`: {why}", p.name())));
    }
    Ok(template)
}

fn schedule(cx: Ctx<'_>, node: &Node, what: &str) -> Result<JsonMap, ConfigError> {
    let item = format!("each schedule of {what}");
    let entries = match &node.val {
        Val::Table(entries) => entries,
        _ => return Err(cx.wrong_type(node, &item, "a table like `{ cron = \"0 3 * * *\" }`")),
    };
    let mut kinds = Vec::new();
    for e in entries {
        let w = format!("`{}` of a schedule in {what}", e.key);
        match e.key.as_str() {
            "cron" => {
                let cron = cx.non_empty(&e.node, &w)?;
                let fields = cron.split_whitespace().count();
                if !(cron.starts_with('@') || (5..=6).contains(&fields)) {
                    return Err(cx.error(
                        &e.node.span,
                        format!("{w} `{cron}` is not a cron expression (5 fields like `0 3 * * *`)"),
                    ));
                }
            }
            "interval" => {
                let ok = match e.node.val {
                    Val::Int(i) => i > 0,
                    Val::Float(f) => f > 0.0 && f.is_finite(),
                    _ => return Err(cx.wrong_type(&e.node, &w, "a number of seconds")),
                };
                if !ok {
                    return Err(cx.error(
                        &e.node.span,
                        format!("{w} must be a positive number of seconds, found `{}`", e.node.display()),
                    ));
                }
            }
            "rrule" | "timezone" | "slug" => {
                cx.non_empty(&e.node, &w)?;
            }
            "anchor_date" => {
                if !matches!(e.node.val, Val::Str(_) | Val::Datetime(_)) {
                    return Err(cx.wrong_type(&e.node, &w, "a datetime"));
                }
            }
            "day_or" | "active" => {
                cx.bool(&e.node, &w)?;
            }
            "max_scheduled_runs" => {
                cx.count(&e.node, &w)?;
            }
            "parameters" => {
                cx.object(&e.node, &w)?;
            }
            "replaces" => {
                cx.string(&e.node, &w)?;
            }
            _ => {
                return Err(cx.error(
                    &e.key_span,
                    format!(
                        "unknown key `{}` in a schedule of {what}; expected one of: {}",
                        e.key,
                        SCHEDULE_KEYS.join(", ")
                    ),
                ))
            }
        }
        if matches!(e.key.as_str(), "cron" | "interval" | "rrule") {
            kinds.push(e.key.as_str());
        }
    }
    if kinds.len() != 1 {
        let found = if kinds.is_empty() { "none".to_string() } else { kinds.join(" and ") };
        return Err(cx.error(
            &node.span,
            format!("a schedule of {what} needs exactly one of `cron`, `interval` or `rrule`; found {found}"),
        ));
    }
    cx.object(node, &item)
}

/// `concurrency_limit = 2` or `{ limit = 2, collision_strategy = "CANCEL_NEW",
/// grace_period_seconds = 300 }`, as a prefect.yaml deployment writes it.
fn concurrency_limit(cx: Ctx<'_>, node: &Node, what: &str) -> Result<ConcurrencyLimit, ConfigError> {
    let shape = "a whole number from 1 up, or a table like `{ limit = 2, collision_strategy = \"CANCEL_NEW\" }`";
    let entries = match &node.val {
        Val::Int(_) => {
            return Ok(ConcurrencyLimit {
                limit: limit(cx, node, what)?,
                collision_strategy: None,
                grace_period_seconds: None,
            })
        }
        Val::Table(entries) => entries,
        _ => return Err(cx.wrong_type(node, what, shape)),
    };
    let mut found = ConcurrencyLimit { limit: 0, collision_strategy: None, grace_period_seconds: None };
    let mut has_limit = false;
    for e in entries {
        let w = format!("`{}` of {what}", e.key);
        match e.key.as_str() {
            "limit" => {
                found.limit = limit(cx, &e.node, &w)?;
                has_limit = true;
            }
            "collision_strategy" => {
                found.collision_strategy = Some(match cx.string(&e.node, &w)?.as_str() {
                    "ENQUEUE" => CollisionStrategy::Enqueue,
                    "CANCEL_NEW" => CollisionStrategy::CancelNew,
                    other => {
                        return Err(
                            cx.error(&e.node.span, format!("{w} is `{other}`; expected `ENQUEUE` or `CANCEL_NEW`"))
                        )
                    }
                });
            }
            "grace_period_seconds" => {
                let seconds = match e.node.val {
                    Val::Int(i) => i,
                    _ => return Err(cx.wrong_type(&e.node, &w, "a whole number of seconds")),
                };
                found.grace_period_seconds =
                    Some(u32::try_from(seconds).ok().filter(|s| (60..=86_400).contains(s)).ok_or_else(|| {
                        cx.error(&e.node.span, format!("{w} must be from 60 to 86400 seconds, found `{seconds}`"))
                    })?);
            }
            _ => {
                return Err(cx.error(
                    &e.key_span,
                    format!("unknown key `{}` in {what}; expected one of: {}", e.key, CONCURRENCY_KEYS.join(", ")),
                ))
            }
        }
    }
    if !has_limit {
        return Err(cx.error(&node.span, format!("{what} needs `limit`, like `{{ limit = 2 }}`")));
    }
    Ok(found)
}

/// A number of concurrent runs: a whole number from 1 up.
fn limit(cx: Ctx<'_>, node: &Node, what: &str) -> Result<u32, ConfigError> {
    let Val::Int(i) = node.val else { return Err(cx.wrong_type(node, what, "a whole number from 1 up")) };
    u32::try_from(i)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| cx.error(&node.span, format!("{what} must be a whole number from 1 up, found `{i}`")))
}

fn pull_step(cx: Ctx<'_>, node: &Node, what: &str) -> Result<JsonMap, ConfigError> {
    let shape = "a table with one key, the step function, like `{ \"prefect.deployments.steps.pip_install_requirements\" = { requirements_file = \"requirements.txt\" } }`";
    let entries = match &node.val {
        Val::Table(entries) if entries.len() == 1 => entries,
        _ => {
            return Err(cx.error(&node.span, format!("each step of {what} must be {shape}; found `{}`", node.display())))
        }
    };
    cx.table(&entries[0].node, &format!("the arguments of pull step `{}` in {what}", entries[0].key))?;
    cx.object(node, what)
}
