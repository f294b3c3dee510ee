//! The envs a flowgate server protects, read from the server's own config:
//! `[projects.P.envs.E]` tables with the keys of `flowgate.toml`'s `[envs.E]`
//! that place and guard an env (its Prefect server and credentials, name
//! prefix, work pool, policy and rollout). Deployment settings are not among
//! them: they travel with each build from the commit's `flowgate.toml`. Every
//! error points into the server's config file.

use flowgate_core::{EnvName, ProjectName};

use crate::check::{key_in, Ctx};
use crate::decode_env::{decode_env, list};
use crate::error::{ConfigError, Source};
use crate::node::{parse_document, Entry, Node, Val};
use crate::schema::{EnvConfig, PERSONAL_ENV};
use crate::settings::template;
use crate::template::TemplateVars;

/// The keys a protected env takes.
const PROTECTED_ENV_KEYS: &[&str] =
    &["prefect_api_url", "prefect_auth", "name_prefix", "work_pool", "policy", "rollout"];

/// One project's protected envs, in the order the file lists them.
#[derive(Debug, Clone)]
pub struct ProtectedProject {
    pub name: ProjectName,
    pub envs: Vec<EnvConfig>,
}

/// The `[projects.P.envs.E]` tables of a server config's `text`; every other
/// key is the caller's to check. A project without `envs` protects none.
pub fn parse_protected_envs(file_label: &str, text: &str) -> Result<Vec<ProtectedProject>, ConfigError> {
    let src = Source { file: file_label, text };
    let cx = Ctx { src };
    let root = parse_document(src)?;
    let Some(projects) = cx.table(&root, "the file")?.iter().find(|e| e.key == "projects") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for project in cx.table(&projects.node, "`projects`")? {
        let name: ProjectName = project
            .key
            .parse()
            .map_err(|err| cx.error(&project.key_span, format!("[projects.{}]: {err}", project.key)))?;
        let table = format!("[projects.{name}]");
        let envs = match cx.table(&project.node, &format!("`{table}`"))?.iter().find(|e| e.key == "envs") {
            Some(envs) => protected_envs(cx, &name, envs)?,
            None => Vec::new(),
        };
        out.push(ProtectedProject { name, envs });
    }
    Ok(out)
}

fn protected_envs(cx: Ctx<'_>, project: &ProjectName, envs: &Entry) -> Result<Vec<EnvConfig>, ConfigError> {
    let entries = cx.table(&envs.node, &format!("`[projects.{project}.envs]`"))?;
    let mut names = Vec::new();
    for e in entries {
        let name: EnvName = e.key.parse().map_err(|err| cx.error(&e.key_span, format!("{err}")))?;
        if name.as_str() == PERSONAL_ENV || name.as_str().starts_with("dev-") {
            return Err(cx.error(
                &e.key_span,
                format!("env `{name}` cannot be protected: `dev` is each developer's own env, kept in `flowgate.toml`"),
            ));
        }
        names.push(name);
    }
    let mut out = Vec::new();
    for (e, name) in entries.iter().zip(&names) {
        let table = format!("[projects.{project}.envs.{name}]");
        let mut work_pool = None;
        let mut rest = Vec::new();
        for key in cx.table(&e.node, &format!("`{table}`"))? {
            match key.key.as_str() {
                "work_pool" => work_pool = Some(placed_work_pool(cx, &key.node, &key_in(&key.key, &table))?),
                k if PROTECTED_ENV_KEYS.contains(&k) => rest.push(key.clone()),
                _ => {
                    return Err(cx.error(
                        &key.key_span,
                        format!(
                            "unknown key `{}` in `{table}`; a protected env takes {} (deployment settings come with \
                             each build, from the commit's `flowgate.toml`)",
                            key.key,
                            list(PROTECTED_ENV_KEYS)
                        ),
                    ))
                }
            }
        }
        let stripped = Entry { node: Node { span: e.node.span.clone(), val: Val::Table(rest) }, ..e.clone() };
        let mut env = decode_env(cx, &stripped, name.clone(), &names, None)?;
        env.placed_work_pool = work_pool;
        out.push(env);
    }
    Ok(out)
}

fn placed_work_pool(cx: Ctx<'_>, node: &Node, what: &str) -> Result<String, ConfigError> {
    let why = "a protected env's work pool is one name for every flow";
    let pool = template(cx, node, what, &[], why)?;
    let name = pool.render(&TemplateVars::default()).map_err(|e| cx.error(&node.span, format!("{what}: {e}")))?;
    if name.trim().is_empty() {
        return Err(cx.error(&node.span, format!("{what} must not be empty")));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
ledger = "postgres://db/flowgate"

[projects.alpha.envs.qa]
prefect_api_url = "http://127.0.0.1:4200/api"

[projects.alpha.envs.prod]
prefect_api_url = "https://prefect.example/api"
prefect_auth = { env = "PREFECT_PROD_KEY", scheme = "basic" }
name_prefix = "prod-"
work_pool = "prod-k8s"
policy = { after = ["qa"], branches = ["main"], separate_approver = true }

[projects.beta]
"#;

    #[test]
    fn protected_envs_are_read_with_their_placement_and_policy() {
        let projects = parse_protected_envs("server.toml", GOOD).unwrap();
        assert_eq!(projects.len(), 2);
        let prod = projects[0].envs.iter().find(|e| e.name.as_str() == "prod").unwrap();
        assert_eq!(prod.placed_work_pool.as_deref(), Some("prod-k8s"));
        assert_eq!(prod.prefect_auth.as_ref().unwrap().env, "PREFECT_PROD_KEY");
        assert_eq!(prod.policy.after[0].as_str(), "qa");
        assert!(prod.policy.separate_approver);
        assert!(projects[1].envs.is_empty());
    }

    #[test]
    fn every_mistake_is_named_with_its_line() {
        let cases = [
            ("[projects.alpha.envs.prod]\ntags = [\"x\"]\n", "deployment settings come with each build"),
            ("[projects.alpha.envs.dev]\n", "cannot be protected"),
            ("[projects.alpha.envs.prod]\npolicy = { after = [\"qa\"] }\n", "qa"),
            ("[projects.alpha.envs.prod]\nwork_pool = \"pool-{env}\"\n", "one name for every flow"),
            ("[projects.alpha.envs.prod]\nprefect_auth = { value = \"secret\" }\n", "value"),
            ("[projects.\"Not A Name\".envs.prod]\n", "Not A Name"),
        ];
        for (text, needle) in cases {
            let err = parse_protected_envs("server.toml", text).err().unwrap_or_else(|| panic!("accepted:\n{text}"));
            let message = err.to_string();
            assert!(message.contains(needle), "missing {needle}: {message}");
            assert!(message.contains("server.toml:"), "no location: {message}");
        }
    }
}
