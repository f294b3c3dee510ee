//! Prefect's `{{ … }}` templates inside prefect.yaml values, and what each kind
//! becomes in flowgate: an environment variable read when the build is made
//! (`{{ $X }}` → `{$X}`, where flowgate renders templates), a block or variable
//! the worker resolves at run time (kept in job variables), or a note.

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::template::Template;

/// One `{{ … }}` reference of a Prefect template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrefectRef {
    /// `{{ $NAME }}`: read from the environment when `prefect deploy` runs.
    EnvVar(String),
    /// `{{ prefect.variables.NAME }}`.
    Variable(String),
    /// `{{ prefect.blocks.TYPE.NAME }}`, optionally with a field.
    Block(String),
    /// `{{ step-id.output }}`: the output of a build, push or pull step.
    StepOutput(String),
}

impl PrefectRef {
    pub fn text(&self) -> String {
        match self {
            Self::EnvVar(name) => format!("{{{{ ${name} }}}}"),
            Self::Variable(inner) | Self::Block(inner) | Self::StepOutput(inner) => format!("{{{{ {inner} }}}}"),
        }
    }
}

/// The `{{ … }}` references in `text`, in order.
pub(crate) fn refs_in(text: &str) -> Vec<PrefectRef> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        let inner = rest[start + 2..start + len].trim();
        out.push(classify(inner));
        rest = &rest[start + len + 2..];
    }
    out
}

fn classify(inner: &str) -> PrefectRef {
    if let Some(name) = inner.strip_prefix('$') {
        PrefectRef::EnvVar(name.trim().to_string())
    } else if inner.starts_with("prefect.variables.") {
        PrefectRef::Variable(inner.to_string())
    } else if inner.starts_with("prefect.blocks.") {
        PrefectRef::Block(inner.to_string())
    } else {
        PrefectRef::StepOutput(inner.to_string())
    }
}

/// Every reference in every string of a JSON value.
pub(crate) fn refs_in_json(value: &Json) -> Vec<PrefectRef> {
    match value {
        Json::String(s) => refs_in(s),
        Json::Array(items) => items.iter().flat_map(refs_in_json).collect(),
        Json::Object(map) => map.values().flat_map(refs_in_json).collect(),
        _ => Vec::new(),
    }
}

/// `text` as a flowgate template field: literal text escaped, `{{ $X }}` as
/// `{$X}`. `None` when it holds a reference flowgate cannot render (a block, a
/// variable, a step output) or an environment variable name flowgate refuses.
pub(crate) fn as_flowgate_template(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        out.push_str(&Template::escape(&rest[..start]));
        match classify(rest[start + 2..start + len].trim()) {
            PrefectRef::EnvVar(name) => out.push_str(&format!("{{${name}}}")),
            _ => return None,
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(&Template::escape(rest));
    Template::parse(&out).ok().map(|_| out)
}

/// The references as a list for a note: `` `{{ $A }}`, `{{ b.c }}` ``.
pub(crate) fn listed(refs: &[PrefectRef]) -> String {
    let mut texts: Vec<String> = refs.iter().map(|r| format!("`{}`", r.text())).collect();
    texts.dedup();
    texts.join(", ")
}

/// Whether a YAML value holds a null below its top (a mapping entry or list
/// item), which TOML cannot hold and the import leaves out.
pub(crate) fn has_inner_null(value: &Yaml) -> bool {
    match value {
        Yaml::Sequence(items) => items.iter().any(|v| v.is_null() || has_inner_null(v)),
        Yaml::Mapping(map) => map.values().any(|v| v.is_null() || has_inner_null(v)),
        Yaml::Tagged(tagged) => has_inner_null(&tagged.value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_classified_by_their_prefix() {
        let refs = refs_in("{{ $TEAM }}-{{prefect.variables.pool}} {{ prefect.blocks.secret.x }} {{ build.image }}");
        assert_eq!(
            refs,
            [
                PrefectRef::EnvVar("TEAM".into()),
                PrefectRef::Variable("prefect.variables.pool".into()),
                PrefectRef::Block("prefect.blocks.secret.x".into()),
                PrefectRef::StepOutput("build.image".into()),
            ]
        );
    }

    #[test]
    fn environment_variables_become_flowgate_placeholders_and_braces_are_escaped() {
        assert_eq!(as_flowgate_template("etl-{{ $ENV }} {x}").as_deref(), Some("etl-{$ENV} {{x}}"));
        assert_eq!(as_flowgate_template("plain").as_deref(), Some("plain"));
        assert_eq!(as_flowgate_template("{{ prefect.variables.pool }}"), None);
        assert_eq!(as_flowgate_template("{{ $not a name }}"), None);
    }
}
