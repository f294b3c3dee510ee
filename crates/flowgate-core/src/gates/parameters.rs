//! `compatible_parameters`: the new build's parameter schema must accept what
//! the env relies on (the deployment's parameters, each schedule's, and those
//! the env's recent flow runs passed), validated by a real JSON Schema
//! validator (draft 7, the dialect of Prefect's `definitions`).

use serde_json::{Map, Value};

use super::verdict::{single, Part};
use super::{Gate, GateInput, GateResult};
use crate::contract::{ChangeKind, ParameterChange};

/// Most refused uses a refusal names; the rest are counted.
const NAMED_REFUSALS: usize = 3;

/// Parameters the env sends to a flow's deployment, one place they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterUse {
    /// Where they come from, for a person: `` flow run `clever-fox` ``.
    pub source: String,
    pub parameters: Map<String, Value>,
    /// True when these are all a run gets (a schedule's merged with the
    /// deployment's, a past run's); false for the deployment's own, which a
    /// caller may complete, so the schema's `required` is not applied to them.
    pub complete: bool,
}

/// The gate: every use validates against the new schema, and passes no
/// parameter the new schema removed or renamed (Prefect fails a run passing a
/// parameter the function does not take before the flow starts; one the old
/// schema did not have either is left alone, as a `**kwargs` flow takes it).
pub(super) fn compatible_parameters(input: &GateInput<'_>) -> GateResult {
    const GATE: Gate = Gate::CompatibleParameters;
    let Some(schema) = input.parameters.schema else {
        return single(GATE, Part::pass("the build records no parameter schema for this flow".to_string()));
    };
    let uses = input.parameters.uses;
    let mut refused = Vec::new();
    for used in uses {
        match rejection(schema, used, input.parameters.changes) {
            Ok(None) => {}
            Ok(Some(why)) => refused.push(why),
            Err(bad_schema) => {
                return single(
                    GATE,
                    Part::refuse(format!("the build's parameter schema is not valid JSON Schema: {bad_schema}")),
                )
            }
        }
    }
    if refused.is_empty() {
        let found = format!("the new parameter schema accepts all {} parameter sets the env uses", uses.len());
        return single(GATE, Part::pass(found));
    }
    let more = refused.len().saturating_sub(NAMED_REFUSALS);
    let mut detail = refused.iter().take(NAMED_REFUSALS).cloned().collect::<Vec<_>>().join("; ");
    if more > 0 {
        detail.push_str(&format!("; and {more} more"));
    }
    single(GATE, Part::refuse(format!("the new parameter schema refuses what the env uses: {detail}")))
}

/// Why the schema refuses `used` (the first error, with the contract change
/// that explains it when there is one), or None when it accepts it.
fn rejection(schema: &Value, used: &ParameterUse, changes: &[ParameterChange]) -> Result<Option<String>, String> {
    let gone = |c: &&ParameterChange| matches!(c.kind, ChangeKind::Removed | ChangeKind::Renamed);
    for change in changes.iter().filter(gone) {
        if used.parameters.contains_key(&change.parameter) {
            let (source, parameter) = (&used.source, &change.parameter);
            return Ok(Some(format!("{source}: parameter `{parameter}` is not in the new schema ({})", change.detail)));
        }
    }
    let mut strict = schema.clone();
    if let (Some(object), false) = (strict.as_object_mut(), used.complete) {
        object.remove("required");
    }
    let validator = jsonschema::draft7::new(&strict).map_err(|e| e.to_string())?;
    let instance = Value::Object(used.parameters.clone());
    let Some(error) = validator.iter_errors(&instance).next() else { return Ok(None) };
    let parameter = match error.kind() {
        jsonschema::error::ValidationErrorKind::Required { property } => property.as_str().map(str::to_string),
        _ => error.instance_path().as_str().trim_start_matches('/').split('/').next().map(str::to_string),
    }
    .unwrap_or_default();
    let because = changes
        .iter()
        .find(|c| c.breaking && (c.parameter == parameter || c.detail.contains(&format!("`{parameter}`"))))
        .map(|c| format!(" ({})", c.detail))
        .unwrap_or_default();
    Ok(Some(format!("{}: parameter `{parameter}`: {error}{because}", used.source)))
}
