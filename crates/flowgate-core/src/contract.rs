//! A flow's parameter contract: what changed between two of its parameter
//! schemas (Prefect's `parameter_schema`: an object schema whose `properties`
//! are the flow function's parameters, `required` those without a default,
//! `definitions` the models and enums they refer to), and which changes break
//! callers that worked with the old one.
//!
//! Types are compared as sets of "atoms" (a JSON type, one enum value, a
//! model's canonical form): a new type whose atoms are a subset of the old
//! one's is narrowed, a superset widened, anything else changed. That is exact
//! for the shapes Prefect derives (scalars, `Optional`, unions, `Literal`,
//! enums, models, lists of those) and conservative elsewhere: a change it
//! cannot order is reported as changed, and counts as breaking.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One change to one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParameterChange {
    pub parameter: String,
    pub kind: ChangeKind,
    /// True when a caller that worked with the old schema can fail with the new.
    pub breaking: bool,
    /// One line a person reads: `` `limit` looks renamed to `max_rows` ``.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChangeKind {
    Added,
    Removed,
    /// Removed, and an added parameter has its type and position.
    Renamed,
    TypeNarrowed,
    TypeWidened,
    TypeChanged,
    DefaultChanged,
    NewlyRequired,
    NoLongerRequired,
}

/// Every change from `old` to `new`, in parameter order (removed and renamed
/// ones at their old position, the rest at their new one).
pub fn compare(old: &Value, new: &Value) -> Vec<ParameterChange> {
    let (before, after) = (Params::of(old), Params::of(new));
    let mut changes = Vec::new();
    let removed: Vec<&Param> = before.list.iter().filter(|p| !after.has(&p.name)).collect();
    let added: Vec<&Param> = after.list.iter().filter(|p| !before.has(&p.name)).collect();
    // The added parameter each renamed-looking one became, and what it was.
    let mut renamed_to: BTreeMap<&str, &Param> = BTreeMap::new();
    for gone in &removed {
        let twin = added.iter().find(|a| {
            !renamed_to.contains_key(a.name.as_str()) && a.position == gone.position && a.atoms == gone.atoms
        });
        match twin {
            Some(twin) => {
                renamed_to.insert(&twin.name, gone);
                changes.push(change(
                    &gone.name,
                    ChangeKind::Renamed,
                    true,
                    format!(
                        "`{}` looks renamed to `{}` (same type and position): a caller passing `{}` fails",
                        gone.name, twin.name, gone.name
                    ),
                ));
            }
            None => changes.push(change(
                &gone.name,
                ChangeKind::Removed,
                true,
                format!("`{}` removed: a caller passing it fails", gone.name),
            )),
        }
    }
    for new_param in &added {
        if let Some(was) = renamed_to.get(new_param.name.as_str()) {
            if new_param.required && !was.required {
                changes.push(newly_required(new_param, &format!("`{}` had default {}", was.name, was.default_text())));
            }
            continue;
        }
        let (breaking, how) = if new_param.required {
            (true, "required: a caller not passing it fails".to_string())
        } else {
            (false, format!("default {}", new_param.default_text()))
        };
        let detail = format!("`{}` added ({}, {how})", new_param.name, new_param.type_text);
        changes.push(change(&new_param.name, ChangeKind::Added, breaking, detail));
    }
    for now in &after.list {
        let Some(was) = before.get(&now.name) else { continue };
        changes.extend(type_change(was, now));
        if now.required && !was.required {
            changes.push(newly_required(now, &format!("it had default {}", was.default_text())));
        } else if was.required && !now.required {
            let detail = format!("`{}` is no longer required (default {})", now.name, now.default_text());
            changes.push(change(&now.name, ChangeKind::NoLongerRequired, false, detail));
        } else if !now.required && was.default != now.default {
            let detail = format!("`{}` default {} → {}", now.name, was.default_text(), now.default_text());
            changes.push(change(&now.name, ChangeKind::DefaultChanged, false, detail));
        }
    }
    changes
}

fn change(parameter: &str, kind: ChangeKind, breaking: bool, detail: String) -> ParameterChange {
    ParameterChange { parameter: parameter.to_string(), kind, breaking, detail }
}

fn newly_required(param: &Param, why: &str) -> ParameterChange {
    let detail = format!("`{}` is now required ({why}): a caller not passing it fails", param.name);
    change(&param.name, ChangeKind::NewlyRequired, true, detail)
}

fn type_change(was: &Param, now: &Param) -> Option<ParameterChange> {
    if was.atoms == now.atoms {
        return None;
    }
    let from_to = format!("from {} to {}", was.type_text, now.type_text);
    let (kind, breaking, detail) = if covers(&was.atoms, &now.atoms) {
        (
            ChangeKind::TypeNarrowed,
            true,
            format!("`{}` narrowed {from_to}: a value the old type took may be refused", now.name),
        )
    } else if covers(&now.atoms, &was.atoms) {
        (ChangeKind::TypeWidened, false, format!("`{}` widened {from_to}", now.name))
    } else {
        (ChangeKind::TypeChanged, true, format!("`{}` changed type {from_to}", now.name))
    };
    Some(change(&now.name, kind, breaking, detail))
}

/// True when every atom of `inner` is one of `outer`'s, or an enum value of a
/// JSON type `outer` has, or an integer where `outer` takes numbers.
fn covers(outer: &BTreeSet<String>, inner: &BTreeSet<String>) -> bool {
    if outer.contains("any") {
        return true;
    }
    inner.iter().all(|atom| {
        outer.contains(atom)
            || (atom == "integer" && outer.contains("number"))
            || atom.strip_prefix('=').and_then(|v| serde_json::from_str::<Value>(v).ok()).is_some_and(|v| {
                let kind = json_type(&v);
                outer.contains(kind) || (kind == "integer" && outer.contains("number"))
            })
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One parameter of a schema.
struct Param {
    name: String,
    position: Option<u64>,
    required: bool,
    default: Option<Value>,
    atoms: BTreeSet<String>,
    type_text: String,
}

impl Param {
    fn default_text(&self) -> String {
        self.default.as_ref().map_or_else(|| "none".to_string(), Value::to_string)
    }
}

struct Params {
    list: Vec<Param>,
}

impl Params {
    fn of(schema: &Value) -> Self {
        let empty = Map::new();
        let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let required: BTreeSet<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let definitions = Definitions::of(schema);
        let mut list: Vec<Param> = properties
            .iter()
            .map(|(name, property)| {
                let atoms = definitions.atoms(property, 0);
                Param {
                    name: name.clone(),
                    position: property.get("position").and_then(Value::as_u64),
                    required: required.contains(name.as_str()),
                    default: property.get("default").cloned(),
                    type_text: atoms
                        .iter()
                        .map(|a| a.trim_start_matches('=').to_string())
                        .collect::<Vec<_>>()
                        .join(" | "),
                    atoms,
                }
            })
            .collect();
        list.sort_by_key(|p| p.position.unwrap_or(u64::MAX));
        Params { list }
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&Param> {
        self.list.iter().find(|p| p.name == name)
    }
}

/// The schema's `definitions` (and `$defs`), for `$ref`s.
struct Definitions<'a> {
    by_ref: BTreeMap<String, &'a Value>,
}

/// How deep `$ref`s are followed: deeper (recursive models) compares by name.
const MAX_DEPTH: usize = 8;

impl<'a> Definitions<'a> {
    fn of(schema: &'a Value) -> Self {
        let mut by_ref = BTreeMap::new();
        for key in ["definitions", "$defs"] {
            for (name, def) in schema.get(key).and_then(Value::as_object).into_iter().flatten() {
                by_ref.insert(format!("#/{key}/{name}"), def);
            }
        }
        Definitions { by_ref }
    }

    /// The atoms of one property schema.
    fn atoms(&self, schema: &Value, depth: usize) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(object) = schema.as_object() else {
            out.insert("any".to_string());
            return out;
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            match self.by_ref.get(reference) {
                Some(def) if depth < MAX_DEPTH => return self.atoms(def, depth + 1),
                _ => {
                    out.insert(format!("ref {reference}"));
                    return out;
                }
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alternatives) = object.get(key).and_then(Value::as_array) {
                alternatives.iter().for_each(|a| out.extend(self.atoms(a, depth)));
                return out;
            }
        }
        if let Some([single]) = object.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            return self.atoms(single, depth);
        }
        if let Some(values) = object.get("enum").and_then(Value::as_array) {
            out.extend(values.iter().map(|v| format!("={v}")));
            return out;
        }
        if let Some(value) = object.get("const") {
            out.insert(format!("={value}"));
            return out;
        }
        let types: Vec<&str> = match object.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if types.is_empty() {
            out.insert("any".to_string());
        }
        for kind in types {
            out.insert(self.typed_atom(kind, object, depth));
        }
        out
    }

    /// `string`, `string:date-time`, `array[integer]`, `object{a: integer, b?: string}`.
    fn typed_atom(&self, kind: &str, object: &Map<String, Value>, depth: usize) -> String {
        let joined = |atoms: BTreeSet<String>| atoms.into_iter().collect::<Vec<_>>().join(" | ");
        match kind {
            "string" => match object.get("format").and_then(Value::as_str) {
                Some(format) => format!("string:{format}"),
                None => "string".to_string(),
            },
            "array" => match object.get("items") {
                Some(items) => format!("array[{}]", joined(self.atoms(items, depth))),
                None => "array".to_string(),
            },
            "object" => match object.get("properties").and_then(Value::as_object) {
                Some(fields) => {
                    let required: BTreeSet<&str> = object
                        .get("required")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let fields: Vec<String> = fields
                        .iter()
                        .map(|(name, field)| {
                            let mark = if required.contains(name.as_str()) { "" } else { "?" };
                            format!("{name}{mark}: {}", joined(self.atoms(field, depth)))
                        })
                        .collect();
                    format!("object{{{}}}", fields.join(", "))
                }
                None => "object".to_string(),
            },
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
#[path = "contract_tests.rs"]
mod tests;
