//! Reading `[envs.E]`: connection, auth (a variable name, never a secret), name
//! prefix, policy, rollout and per-flow overrides.

use flowgate_core::{EnvName, FlowKey};

use crate::check::{key_in, Ctx};
use crate::decode::{expected, flow_key};
use crate::decode_policy::{policy, rollout};
use crate::error::ConfigError;
use crate::node::{Entry, Node, Val};
use crate::policy::Policy;
use crate::schema::{default_name_prefix, AuthScheme, EnvConfig, PrefectAuth, Settings};
use crate::settings::{decode_setting, template, Level};
use crate::template::Placeholder;

const ENV_KEYS: &[&str] = &["prefect_api_url", "prefect_auth", "name_prefix", "policy", "rollout", "flows"];
const AUTH_KEYS: &[&str] = &["env", "scheme"];
const SECRET_KEYS: &[&str] = &["value", "key", "token", "secret", "password", "api_key", "auth_string"];

/// `flows`: the project's flows (`None` on a server, which does not know them).
pub(crate) fn decode_envs(
    cx: Ctx<'_>,
    entry: &Entry,
    flows: Option<&[FlowKey]>,
) -> Result<Vec<EnvConfig>, ConfigError> {
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

pub(crate) fn decode_env(
    cx: Ctx<'_>,
    entry: &Entry,
    name: EnvName,
    envs: &[EnvName],
    flows: Option<&[FlowKey]>,
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
        placed_work_pool: None,
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
                    if let Some(flows) = flows.filter(|flows| !flows.contains(&key)) {
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

pub(crate) fn list(items: &[&str]) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

fn api_url(cx: Ctx<'_>, node: &Node, what: &str) -> Result<String, ConfigError> {
    let url = cx.non_empty(node, what)?;
    // Errors here never quote the whole URL: a user may have put a token in it.
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        let found = match url.split_once("://") {
            Some((scheme, _)) => format!("its scheme is `{}`", scheme.chars().take(16).collect::<String>()),
            None => "it has no `scheme://`".to_string(),
        };
        return Err(cx.error(&node.span, format!("{what} must start with `http://` or `https://` ({found})")));
    };
    if url.contains(['?', '#']) {
        return Err(cx.error(
            &node.span,
            format!("{what} must not have a query or fragment; put tokens in the variable `prefect_auth` names"),
        ));
    }
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
