//! Turns the span-carrying tree into a [`Config`], checking every key and value
//! and failing at the first problem with its file, line and column.

use flowgate_core::{FlowKey, ProjectName};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::check::{key_in, Ctx};
use crate::error::ConfigError;
use crate::node::{Entry, Node};
use crate::schema::{Config, FlowConfig, ProjectConfig, Settings, DEFAULT_ARTIFACTS, DEFAULT_LEDGER};
use crate::settings::{Level, SETTING_KEYS};

const TOP_KEYS: &[&str] = &["project", "flows", "envs"];
const PROJECT_KEYS: &[&str] =
    &["name", "ledger", "artifacts", "include", "exclude", "pin_images", "python_path", "python"];
const FLOW_KEYS: &[&str] = &["entrypoint", "flow_name", "parameter_schema", "python_path", "depends"];

/// The expected keys of a table: its own, then every deployment setting.
pub(crate) fn expected(own: &[&'static str]) -> Vec<&'static str> {
    own.iter().chain(SETTING_KEYS).copied().collect()
}

pub(crate) fn decode(cx: Ctx<'_>, root: &Node) -> Result<Config, ConfigError> {
    let mut project = None;
    let mut flows_node = None;
    let mut envs_node = None;
    for entry in cx.table(root, "the file")? {
        match entry.key.as_str() {
            "project" => project = Some(entry),
            "flows" => flows_node = Some(entry),
            "envs" => envs_node = Some(entry),
            _ => return Err(cx.unknown_key(entry, "the top level", TOP_KEYS)),
        }
    }
    let Some(project) = project else {
        return Err(cx.error(&(0..0), "missing the `[project]` table; it needs at least `name = \"…\"`"));
    };
    let (project, include, exclude) = decode_project(cx, project)?;
    let flows = match flows_node {
        Some(entry) => decode_flows(cx, entry)?,
        None => Vec::new(),
    };
    let keys: Vec<FlowKey> = flows.iter().map(|(k, _)| k.clone()).collect();
    let envs = match envs_node {
        Some(entry) => crate::decode_env::decode_envs(cx, entry, Some(&keys))?,
        None => Vec::new(),
    };
    Ok(Config { project, flows, envs, include, exclude })
}

fn decode_project(cx: Ctx<'_>, entry: &Entry) -> Result<(ProjectConfig, Option<GlobSet>, GlobSet), ConfigError> {
    const T: &str = "[project]";
    let mut name = None;
    let mut ledger = DEFAULT_LEDGER.to_string();
    let mut artifacts = DEFAULT_ARTIFACTS.to_string();
    let mut include = (Vec::new(), None);
    let mut exclude = (Vec::new(), GlobSet::empty());
    let mut pin_images = false;
    let mut python_path = Vec::new();
    let mut python = None;
    let mut settings = Settings::default();
    for e in cx.table(&entry.node, "`project`")? {
        let what = key_in(&e.key, T);
        match e.key.as_str() {
            "name" => {
                let text = cx.non_empty(&e.node, &what)?;
                let parsed: ProjectName =
                    text.parse().map_err(|err| cx.error(&e.node.span, format!("{what}: {err}")))?;
                name = Some(parsed);
            }
            "ledger" => ledger = url_like(cx, &e.node, &what)?,
            "artifacts" => artifacts = url_like(cx, &e.node, &what)?,
            "include" => {
                let (patterns, set) = globs(cx, &e.node, &what)?;
                include = (patterns, Some(set));
            }
            "exclude" => exclude = globs(cx, &e.node, &what)?,
            "pin_images" => pin_images = cx.bool(&e.node, &what)?,
            "python_path" => python_path = python_path_of(cx, &e.node, &what)?,
            "python" => python = Some(cx.non_empty(&e.node, &what)?),
            _ => {
                if !crate::settings::decode_setting(cx, &mut settings, e, T, Level::Project)? {
                    return Err(cx.unknown_key(e, T, &expected(PROJECT_KEYS)));
                }
            }
        }
    }
    let Some(name) = name else {
        return Err(cx.error(&entry.key_span, "`[project]` needs `name`, the name of the project"));
    };
    // An empty include list would select nothing; treat it as "everything", like no list.
    let include_set = include.1.filter(|_| !include.0.is_empty());
    let project = ProjectConfig {
        name,
        ledger,
        artifacts,
        include: include.0,
        exclude: exclude.0,
        pin_images,
        python_path,
        python,
        settings,
    };
    Ok((project, include_set, exclude.1))
}

fn url_like(cx: Ctx<'_>, node: &Node, what: &str) -> Result<String, ConfigError> {
    let s = cx.non_empty(node, what)?;
    if !s.contains("://") {
        return Err(cx.error(&node.span, format!("{what} must be a URL like `scheme://…`, found `{s}`")));
    }
    Ok(s)
}

fn globs(cx: Ctx<'_>, node: &Node, what: &str) -> Result<(Vec<String>, GlobSet), ConfigError> {
    let mut builder = GlobSetBuilder::new();
    let mut patterns = Vec::new();
    for (pattern, span) in cx.strings(node, what)? {
        let glob = GlobBuilder::new(pattern.trim_end_matches('/'))
            .literal_separator(true)
            .build()
            .map_err(|e| cx.error(span, format!("pattern `{pattern}` of {what} is not a valid glob: {}", e.kind())))?;
        builder.add(glob);
        patterns.push(pattern);
    }
    let set = builder.build().map_err(|e| cx.error(&node.span, format!("{what} is not a valid glob set: {e}")))?;
    Ok((patterns, set))
}

fn decode_flows(cx: Ctx<'_>, entry: &Entry) -> Result<Vec<(FlowKey, FlowConfig)>, ConfigError> {
    let mut flows = Vec::new();
    for e in cx.table(&entry.node, "`flows`")? {
        let key = flow_key(cx, e)?;
        let table = format!("[flows.{}]", e.key);
        let mut entrypoint = None;
        let mut flow_name = None;
        let mut parameter_schema = None;
        let mut python_path = None;
        let mut depends = None;
        let mut settings = Settings::default();
        for f in cx.table(&e.node, &format!("`{table}`"))? {
            let what = key_in(&f.key, &table);
            match f.key.as_str() {
                "entrypoint" => entrypoint = Some(check_entrypoint(cx, &f.node, &what)?),
                "flow_name" => flow_name = Some(cx.non_empty(&f.node, &what)?),
                "parameter_schema" => parameter_schema = Some(cx.object(&f.node, &what)?),
                "python_path" => python_path = Some(python_path_of(cx, &f.node, &what)?),
                "depends" => depends = Some(globs(cx, &f.node, &what)?.0),
                _ => {
                    if !crate::settings::decode_setting(cx, &mut settings, f, &table, Level::Flow)? {
                        return Err(cx.unknown_key(f, &table, &expected(FLOW_KEYS)));
                    }
                }
            }
        }
        let Some(entrypoint) = entrypoint else {
            return Err(cx.error(
                &e.key_span,
                format!("`{table}` needs `entrypoint`, the flow function as `path/file.py:function`"),
            ));
        };
        flows.push((key, FlowConfig { entrypoint, flow_name, parameter_schema, python_path, depends, settings }));
    }
    Ok(flows)
}

/// The key of a `[flows.F]` or `[envs.E.flows.F]` table as a [`FlowKey`].
pub(crate) fn flow_key(cx: Ctx<'_>, e: &Entry) -> Result<FlowKey, ConfigError> {
    e.key.parse().map_err(|err| cx.error(&e.key_span, format!("{err}")))
}

/// `python_path`: bundle directories, relative to the project root, that the
/// flow run puts on `sys.path`.
fn python_path_of(cx: Ctx<'_>, node: &Node, what: &str) -> Result<Vec<String>, ConfigError> {
    let mut dirs = Vec::new();
    for (dir, span) in cx.strings(node, what)? {
        let trimmed = dir.trim_end_matches('/');
        let inside = !trimmed.is_empty()
            && !trimmed.starts_with('/')
            && !trimmed.contains('\\')
            && !trimmed.contains("{{")
            && trimmed.split('/').all(|c| !c.is_empty() && c != "..");
        if !inside {
            return Err(cx.error(
                span,
                format!("{what} holds `{dir}`, which is not a directory inside the project (relative, `/` separators, no `..`)"),
            ));
        }
        dirs.push(trimmed.to_string());
    }
    Ok(dirs)
}

fn check_entrypoint(cx: Ctx<'_>, node: &Node, what: &str) -> Result<String, ConfigError> {
    let s = cx.non_empty(node, what)?;
    match entrypoint_problem(&s) {
        Some(why) => Err(cx.error(&node.span, format!("{what} `{s}` {why}; write it as `path/file.py:function`"))),
        None => Ok(s),
    }
}

/// What is wrong with an entrypoint, if anything.
pub(crate) fn entrypoint_problem(s: &str) -> Option<&'static str> {
    let Some((path, function)) = s.rsplit_once(':') else {
        return Some("has no `:` between the file (or module) and the flow function");
    };
    if !is_identifier(function) {
        return Some("does not end in a Python function name");
    }
    // `package.module:function`: Prefect imports the module (through `sys.path`,
    // which `python_path` extends) instead of loading a file.
    if !path.ends_with(".py") && path.split('.').all(is_identifier) {
        return None;
    }
    if !path.ends_with(".py") || path.len() <= 3 {
        return Some("names neither a `.py` file nor a dotted module");
    }
    if path.starts_with('/') || path.contains('\\') || path.split('/').any(|c| c == ".." || c.is_empty()) {
        return Some("must be a relative path inside the project, with `/` separators");
    }
    None
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}
