//! Reading `[envs.E] policy` and `rollout` into typed values: durations, freeze
//! windows, upstream envs and flow-glob waves, each checked against the config.

use chrono::{DateTime, Utc};
use flowgate_core::{EnvName, FlowKey};
use globset::Glob;

use crate::check::{key_in, Ctx};
use crate::decode_env::list;
use crate::error::ConfigError;
use crate::node::{Node, Val};
use crate::policy::{parse_duration, FreezeWindow, Policy, Rollout, Verify};
use crate::schema::PERSONAL_ENV;
use flowgate_core::ProvenanceRule;

const POLICY_KEYS: &[&str] = &[
    "branches",
    "after",
    "soak",
    "min_successful_runs",
    "max_failure_rate",
    "approval",
    "separate_approver",
    "allow_override",
    "freeze",
    "provenance",
    "compatible_parameters",
];
const PROVENANCE_KEYS: &[&str] = &["ref", "repository"];
/// Gates that count what happened upstream, so they mean nothing without `after`.
const UPSTREAM_KEYS: &[&str] = &["soak", "min_successful_runs", "max_failure_rate"];
const FREEZE_KEYS: &[&str] = &["from", "until", "reason"];
const ROLLOUT_KEYS: &[&str] = &["waves", "verify"];
const VERIFY_KEYS: &[&str] = &["runs", "timeout", "parameters", "trigger"];

fn duration(cx: Ctx<'_>, node: &Node, what: &str) -> Result<std::time::Duration, ConfigError> {
    let text = cx.string(node, what)?;
    parse_duration(&text).ok_or_else(|| {
        cx.error(
            &node.span,
            format!("{what} `{text}` is not a duration; write it like `90s`, `30m`, `2h`, `1d` or `1h30m`"),
        )
    })
}

pub(crate) fn policy(
    cx: Ctx<'_>,
    node: &Node,
    table: &str,
    me: &EnvName,
    envs: &[EnvName],
) -> Result<Policy, ConfigError> {
    let mut p = Policy::default();
    let entries = cx.table(node, &format!("`{table}`"))?;
    for e in entries {
        let what = key_in(&e.key, table);
        match e.key.as_str() {
            "branches" => {
                for (branch, span) in cx.strings(&e.node, &what)? {
                    Glob::new(&branch).map_err(|err| {
                        cx.error(
                            span,
                            format!("branch pattern `{branch}` of {what} is not a valid glob: {}", err.kind()),
                        )
                    })?;
                    p.branches.push(branch);
                }
            }
            "after" => {
                let names = match &e.node.val {
                    Val::Str(s) => vec![(s.clone(), &e.node.span)],
                    _ => cx.strings(&e.node, &what)?,
                };
                for (after, span) in names {
                    let Some(env) = envs.iter().find(|n| n.as_str() == after) else {
                        let known: Vec<&str> = envs.iter().map(EnvName::as_str).collect();
                        return Err(
                            cx.error(span, format!("{what} names unknown env `{after}`; envs: {}", list(&known)))
                        );
                    };
                    if env == me || env.as_str() == PERSONAL_ENV {
                        return Err(cx.error(
                            span,
                            format!("{what} cannot name `{after}`: a gate needs a shared env upstream of this one"),
                        ));
                    }
                    p.after.push(env.clone());
                }
            }
            "soak" => p.soak = Some(duration(cx, &e.node, &what)?),
            "min_successful_runs" => p.min_successful_runs = cx.count(&e.node, &what)?,
            "max_failure_rate" => {
                let rate = match e.node.val {
                    Val::Float(f) => f,
                    Val::Int(i) => i as f64,
                    _ => return Err(cx.wrong_type(&e.node, &what, "a number from 0 to 1")),
                };
                if !(0.0..=1.0).contains(&rate) {
                    return Err(cx.error(&e.node.span, format!("{what} must be from 0 to 1, found `{rate}`")));
                }
                p.max_failure_rate = Some(rate);
            }
            "approval" => {
                p.approvals = match e.node.val {
                    Val::Bool(b) => u32::from(b),
                    _ => cx
                        .count(&e.node, &what)
                        .map_err(|_| cx.wrong_type(&e.node, &what, "`true`, `false` or a number of approvals"))?,
                }
            }
            "separate_approver" => p.separate_approver = cx.bool(&e.node, &what)?,
            "allow_override" => p.allow_override = cx.bool(&e.node, &what)?,
            "freeze" => {
                for item in cx.array(&e.node, &what)? {
                    p.freeze.push(freeze(cx, item, &what)?);
                }
            }
            "provenance" => p.provenance = Some(provenance(cx, &e.node, &what)?),
            "compatible_parameters" => p.compatible_parameters = cx.bool(&e.node, &what)?,
            _ => return Err(cx.unknown_key(e, table, POLICY_KEYS)),
        }
    }
    // Checked after the loop: `after` may come after `soak` in the table.
    if p.after.is_empty() {
        if let Some(e) = entries.iter().find(|e| UPSTREAM_KEYS.contains(&e.key.as_str())) {
            return Err(cx.error(
                &e.key_span,
                format!("{} needs `after`: the env whose runs/soak are counted", key_in(&e.key, table)),
            ));
        }
    }
    Ok(p)
}

/// `provenance = { ref = "refs/heads/main", repository = "acme/flows" }`: globs
/// over a CI job's verified `ref` and `repository` claims; `ref` is required.
fn provenance(cx: Ctx<'_>, node: &Node, what: &str) -> Result<ProvenanceRule, ConfigError> {
    let Val::Table(entries) = &node.val else {
        return Err(cx.wrong_type(node, what, "a table like `{ ref = \"refs/heads/main\" }`"));
    };
    let mut rule = ProvenanceRule::default();
    let mut has_ref = false;
    for e in entries {
        let key = format!("`{}` of {what}", e.key);
        let value = cx.non_empty(&e.node, &key)?;
        Glob::new(&value)
            .map_err(|err| cx.error(&e.node.span, format!("{key} `{value}` is not a valid glob: {}", err.kind())))?;
        match e.key.as_str() {
            "ref" => {
                rule.git_ref = value;
                has_ref = true;
            }
            "repository" => rule.repository = Some(value),
            _ => return Err(cx.unknown_key(e, "provenance", PROVENANCE_KEYS)),
        }
    }
    if !has_ref {
        return Err(cx.error(&node.span, format!("{what} needs `ref`, e.g. `{{ ref = \"refs/heads/main\" }}`")));
    }
    Ok(rule)
}

fn freeze(cx: Ctx<'_>, node: &Node, what: &str) -> Result<FreezeWindow, ConfigError> {
    let item = format!("each window of {what}");
    let entries = match &node.val {
        Val::Table(entries) => entries,
        _ => {
            return Err(cx.wrong_type(
                node,
                &item,
                "a table like `{ from = 2024-12-20T00:00:00Z, until = 2025-01-02T00:00:00Z }`",
            ))
        }
    };
    let (mut from, mut until, mut reason) = (None, None, None);
    for e in entries {
        let w = format!("`{}` of a window in {what}", e.key);
        match e.key.as_str() {
            "from" => from = Some(instant(cx, &e.node, &w)?),
            "until" => until = Some(instant(cx, &e.node, &w)?),
            "reason" => reason = Some(cx.string(&e.node, &w)?),
            _ => {
                return Err(cx.error(
                    &e.key_span,
                    format!(
                        "unknown key `{}` in a window of {what}; expected one of: {}",
                        e.key,
                        FREEZE_KEYS.join(", ")
                    ),
                ))
            }
        }
    }
    match (from, until) {
        (Some(from), Some(until)) if from < until => Ok(FreezeWindow { from, until, reason }),
        (Some(_), Some(_)) => Err(cx.error(&node.span, format!("a window of {what} ends before it starts"))),
        _ => Err(cx.error(&node.span, format!("a window of {what} needs both `from` and `until`"))),
    }
}

fn instant(cx: Ctx<'_>, node: &Node, what: &str) -> Result<DateTime<Utc>, ConfigError> {
    let text = match &node.val {
        Val::Str(s) | Val::Datetime(s) => s.clone(),
        _ => return Err(cx.wrong_type(node, what, "a datetime with offset like `2024-12-20T00:00:00Z`")),
    };
    DateTime::parse_from_rfc3339(&text).map(|d| d.with_timezone(&Utc)).map_err(|_| {
        cx.error(&node.span, format!("{what} `{text}` must be a datetime with offset like `2024-12-20T00:00:00Z`"))
    })
}

/// `flows`: the project's flows, each wave pattern must match one; `None` on a
/// server, which has no `flowgate.toml` to know them from.
pub(crate) fn rollout(
    cx: Ctx<'_>,
    node: &Node,
    table: &str,
    flows: Option<&[FlowKey]>,
) -> Result<Rollout, ConfigError> {
    let mut r = Rollout { waves: Vec::new(), verify: None };
    for e in cx.table(node, &format!("`{table}`"))? {
        let what = key_in(&e.key, table);
        match e.key.as_str() {
            "waves" => {
                for wave in cx.array(&e.node, &what)? {
                    let mut globs = Vec::new();
                    for (pattern, span) in cx.strings(wave, &format!("each wave of {what}"))? {
                        let glob = Glob::new(&pattern).map_err(|err| {
                            cx.error(span, format!("pattern `{pattern}` of {what} is not a valid glob: {}", err.kind()))
                        })?;
                        let m = glob.compile_matcher();
                        if let Some(flows) = flows.filter(|flows| !flows.iter().any(|f| m.is_match(f.as_str()))) {
                            let known: Vec<&str> = flows.iter().map(FlowKey::as_str).collect();
                            return Err(cx.error(
                                span,
                                format!("pattern `{pattern}` of {what} matches no flow; flows: {}", list(&known)),
                            ));
                        }
                        globs.push(pattern);
                    }
                    r.waves.push(globs);
                }
            }
            "verify" => r.verify = Some(verify(cx, &e.node, &format!("{table}.verify"))?),
            _ => return Err(cx.unknown_key(e, table, ROLLOUT_KEYS)),
        }
    }
    Ok(r)
}

fn verify(cx: Ctx<'_>, node: &Node, table: &str) -> Result<Verify, ConfigError> {
    let mut v = Verify { runs: 1, timeout: None, parameters: Default::default(), trigger: true };
    for e in cx.table(node, &format!("`{table}`"))? {
        let what = key_in(&e.key, table);
        match e.key.as_str() {
            "runs" => v.runs = cx.count(&e.node, &what)?,
            "timeout" => v.timeout = Some(duration(cx, &e.node, &what)?),
            "parameters" => v.parameters = cx.object(&e.node, &what)?,
            "trigger" => v.trigger = cx.bool(&e.node, &what)?,
            _ => return Err(cx.unknown_key(e, table, VERIFY_KEYS)),
        }
    }
    Ok(v)
}
