//! Reading `[envs.E]`: connection, auth (a variable name, never a secret), name
//! prefix, policy, rollout and per-flow overrides.

use chrono::{DateTime, Utc};
use flowgate_core::{EnvName, FlowKey};
use globset::Glob;

use crate::check::{key_in, Ctx};
use crate::decode::{expected, flow_key};
use crate::error::ConfigError;
use crate::node::{Entry, Node, Val};
use crate::policy::{parse_duration, FreezeWindow, Policy, Rollout, Verify};
use crate::schema::{default_name_prefix, AuthScheme, EnvConfig, PrefectAuth, Settings, PERSONAL_ENV};
use crate::settings::{decode_setting, template, Level};
use crate::template::Placeholder;

const ENV_KEYS: &[&str] = &["prefect_api_url", "prefect_auth", "name_prefix", "policy", "rollout", "flows"];
const AUTH_KEYS: &[&str] = &["env", "scheme"];
const SECRET_KEYS: &[&str] = &["value", "key", "token", "secret", "password", "api_key", "auth_string"];
const POLICY_KEYS: &[&str] =
    &["branches", "after", "soak", "min_successful_runs", "max_failure_rate", "approval", "allow_override", "freeze"];
const FREEZE_KEYS: &[&str] = &["from", "until", "reason"];
const ROLLOUT_KEYS: &[&str] = &["waves", "verify"];
const VERIFY_KEYS: &[&str] = &["runs", "timeout", "parameters"];

pub(crate) fn decode_envs(cx: Ctx<'_>, entry: &Entry, flows: &[FlowKey]) -> Result<Vec<EnvConfig>, ConfigError> {
    let entries = cx.table(&entry.node, "`envs`")?;
    // All names first: `policy.after` may name an env declared further down.
    let mut names = Vec::new();
    for e in entries {
        let name: EnvName = e.key.parse().map_err(|err| cx.error(&e.key_span, format!("{err}")))?;
        if e.key.starts_with("dev-") {
            return Err(cx.error(
                &e.key_span,
                format!(
                    "env name `{}` is reserved: `dev-<user>` is the ledger name of each developer's personal env",
                    e.key
                ),
            ));
        }
        names.push(name);
    }
    entries.iter().zip(&names).map(|(e, name)| decode_env(cx, e, name.clone(), &names, flows)).collect()
}

fn decode_env(
    cx: Ctx<'_>,
    entry: &Entry,
    name: EnvName,
    envs: &[EnvName],
    flows: &[FlowKey],
) -> Result<EnvConfig, ConfigError> {
    let table = format!("[envs.{name}]");
    let mut env = EnvConfig {
        name_prefix: default_name_prefix(name.as_str()),
        name,
        prefect_api_url: None,
        prefect_auth: None,
        policy: Policy::default(),
        rollout: None,
        settings: Settings::default(),
        flows: Vec::new(),
    };
    for e in cx.table(&entry.node, &format!("`{table}`"))? {
        let what = key_in(&e.key, &table);
        match e.key.as_str() {
            "prefect_api_url" => env.prefect_api_url = Some(api_url(cx, &e.node, &what)?),
            "prefect_auth" => env.prefect_auth = Some(auth(cx, &e.node, &what)?),
            "name_prefix" => {
                let why =
                    "a deployment keeps its name from build to build, so the prefix may only use `{env}` and `{user}`";
                env.name_prefix = template(cx, &e.node, &what, &[Placeholder::Env, Placeholder::User], why)?;
            }
            "policy" => env.policy = policy(cx, &e.node, &format!("{table}.policy"), &env.name, envs)?,
            "rollout" => env.rollout = Some(rollout(cx, &e.node, &format!("{table}.rollout"), flows)?),
            "flows" => {
                for f in cx.table(&e.node, &what)? {
                    let key = flow_key(cx, f)?;
                    if !flows.contains(&key) {
                        let known: Vec<&str> = flows.iter().map(FlowKey::as_str).collect();
                        return Err(cx.error(
                            &f.key_span,
                            format!(
                                "`[envs.{}.flows.{key}]` names unknown flow `{key}`; flows: {}",
                                env.name,
                                list(&known)
                            ),
                        ));
                    }
                    let ft = format!("[envs.{}.flows.{key}]", env.name);
                    let mut settings = Settings::default();
                    for s in cx.table(&f.node, &format!("`{ft}`"))? {
                        if !decode_setting(cx, &mut settings, s, &ft, Level::EnvFlow)? {
                            return Err(cx.unknown_key(s, &ft, &expected(&[])));
                        }
                    }
                    env.flows.push((key, settings));
                }
            }
            _ => {
                if !decode_setting(cx, &mut env.settings, e, &table, Level::Env)? {
                    return Err(cx.unknown_key(e, &table, &expected(ENV_KEYS)));
                }
            }
        }
    }
    Ok(env)
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

fn api_url(cx: Ctx<'_>, node: &Node, what: &str) -> Result<String, ConfigError> {
    let url = cx.non_empty(node, what)?;
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return Err(cx.error(&node.span, format!("{what} `{url}` must start with `http://` or `https://`")));
    };
    if rest.split('/').next().is_some_and(|authority| authority.contains('@')) {
        return Err(cx.error(
            &node.span,
            format!("{what} must not hold credentials; name the variable holding them in `prefect_auth` instead"),
        ));
    }
    Ok(url)
}

fn auth(cx: Ctx<'_>, node: &Node, what: &str) -> Result<PrefectAuth, ConfigError> {
    let never = "it names the environment variable that holds the secret, like `{ env = \"PREFECT_API_KEY\" }`; the secret itself must never be written in the file";
    let Val::Table(entries) = &node.val else {
        return Err(cx.error(&node.span, format!("{what} must be a table: {never}")));
    };
    let mut var = None;
    let mut scheme = AuthScheme::default();
    for e in entries {
        let w = format!("`{}` of {what}", e.key);
        match e.key.as_str() {
            "env" => {
                let name = cx.non_empty(&e.node, &w)?;
                let mut chars = name.chars();
                let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(
                        cx.error(&e.node.span, format!("`env` of {what} `{name}` is not an environment variable name"))
                    );
                }
                var = Some(name);
            }
            "scheme" => {
                scheme = match cx.string(&e.node, &w)?.as_str() {
                    "bearer" => AuthScheme::Bearer,
                    "basic" => AuthScheme::Basic,
                    other => {
                        return Err(cx.error(
                            &e.node.span,
                            format!("`scheme` of {what} is `{other}`; expected `bearer` or `basic`"),
                        ))
                    }
                }
            }
            k if SECRET_KEYS.contains(&k) => {
                return Err(cx.error(&e.key_span, format!("`{k}` is not allowed in {what}: {never}")));
            }
            _ => {
                return Err(cx.error(
                    &e.key_span,
                    format!("unknown key `{}` in {what}; expected one of: {}", e.key, AUTH_KEYS.join(", ")),
                ))
            }
        }
    }
    let env = var.ok_or_else(|| cx.error(&node.span, format!("{what} needs `env`: {never}")))?;
    Ok(PrefectAuth { env, scheme })
}

fn duration(cx: Ctx<'_>, node: &Node, what: &str) -> Result<std::time::Duration, ConfigError> {
    let text = cx.string(node, what)?;
    parse_duration(&text).ok_or_else(|| {
        cx.error(
            &node.span,
            format!("{what} `{text}` is not a duration; write it like `90s`, `30m`, `2h`, `1d` or `1h30m`"),
        )
    })
}

fn policy(cx: Ctx<'_>, node: &Node, table: &str, me: &EnvName, envs: &[EnvName]) -> Result<Policy, ConfigError> {
    let mut p = Policy::default();
    for e in cx.table(node, &format!("`{table}`"))? {
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
            "allow_override" => p.allow_override = cx.bool(&e.node, &what)?,
            "freeze" => {
                for item in cx.array(&e.node, &what)? {
                    p.freeze.push(freeze(cx, item, &what)?);
                }
            }
            _ => return Err(cx.unknown_key(e, table, POLICY_KEYS)),
        }
    }
    Ok(p)
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

fn rollout(cx: Ctx<'_>, node: &Node, table: &str, flows: &[FlowKey]) -> Result<Rollout, ConfigError> {
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
                        if !flows.iter().any(|f| m.is_match(f.as_str())) {
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
    let mut v = Verify { runs: 1, timeout: None, parameters: Default::default() };
    for e in cx.table(node, &format!("`{table}`"))? {
        let what = key_in(&e.key, table);
        match e.key.as_str() {
            "runs" => v.runs = cx.count(&e.node, &what)?,
            "timeout" => v.timeout = Some(duration(cx, &e.node, &what)?),
            "parameters" => v.parameters = cx.object(&e.node, &what)?,
            _ => return Err(cx.unknown_key(e, table, VERIFY_KEYS)),
        }
    }
    Ok(v)
}
