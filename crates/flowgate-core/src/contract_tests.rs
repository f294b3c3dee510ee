use serde_json::{json, Value};

use super::{compare, ChangeKind};

/// A Prefect-shaped parameter schema from `(name, property)` pairs in
/// position order; `required` names those without a default.
fn schema(params: &[(&str, Value)], required: &[&str]) -> Value {
    let mut properties = serde_json::Map::new();
    for (position, (name, property)) in params.iter().enumerate() {
        let mut property = property.clone();
        property["title"] = json!(name);
        property["position"] = json!(position);
        properties.insert(name.to_string(), property);
    }
    json!({"title": "Parameters", "type": "object", "properties": properties, "required": required,
           "definitions": {"Mode": {"enum": ["fast", "slow", "safe"], "title": "Mode", "type": "string"},
                           "Window": {"title": "Window", "type": "object",
                                      "properties": {"days": {"type": "integer"}}, "required": ["days"]}}})
}

fn kinds(old: &Value, new: &Value) -> Vec<(String, ChangeKind, bool)> {
    compare(old, new).into_iter().map(|c| (c.parameter, c.kind, c.breaking)).collect()
}

#[test]
fn equal_schemas_have_no_changes_whatever_their_titles_and_descriptions() {
    let old = schema(&[("limit", json!({"type": "integer", "default": 10}))], &[]);
    let new = schema(&[("limit", json!({"type": "integer", "default": 10, "description": "rows"}))], &[]);
    assert!(compare(&old, &new).is_empty());
}

#[test]
fn a_parameter_with_a_new_name_at_the_same_position_and_type_looks_renamed() {
    let old = schema(
        &[("day", json!({"type": "string", "format": "date"})), ("limit", json!({"type": "integer"}))],
        &["day", "limit"],
    );
    let new = schema(
        &[("day", json!({"type": "string", "format": "date"})), ("max_rows", json!({"type": "integer"}))],
        &["day", "max_rows"],
    );
    let changes = compare(&old, &new);
    assert_eq!(kinds(&old, &new), [("limit".to_string(), ChangeKind::Renamed, true)]);
    assert!(changes[0].detail.contains("`limit` looks renamed to `max_rows`"), "{}", changes[0].detail);
}

#[test]
fn removed_and_added_of_other_types_are_not_a_rename() {
    let old = schema(&[("limit", json!({"type": "integer", "default": 1}))], &[]);
    let new = schema(&[("label", json!({"type": "string", "default": "x"}))], &[]);
    assert_eq!(
        kinds(&old, &new),
        [("limit".to_string(), ChangeKind::Removed, true), ("label".to_string(), ChangeKind::Added, false)]
    );
}

#[test]
fn an_added_parameter_breaks_callers_only_when_it_is_required() {
    let old = schema(&[("a", json!({"type": "integer"}))], &["a"]);
    let optional =
        schema(&[("a", json!({"type": "integer"})), ("b", json!({"type": "boolean", "default": false}))], &["a"]);
    let required = schema(&[("a", json!({"type": "integer"})), ("b", json!({"type": "boolean"}))], &["a", "b"]);
    assert_eq!(kinds(&old, &optional), [("b".to_string(), ChangeKind::Added, false)]);
    assert_eq!(kinds(&old, &required), [("b".to_string(), ChangeKind::Added, true)]);
}

#[test]
fn a_literal_losing_a_value_is_narrowed_and_gaining_one_is_widened() {
    let three = schema(&[("mode", json!({"enum": ["fast", "slow", "safe"]}))], &["mode"]);
    let two = schema(&[("mode", json!({"enum": ["fast", "slow"]}))], &["mode"]);
    assert_eq!(kinds(&three, &two), [("mode".to_string(), ChangeKind::TypeNarrowed, true)]);
    assert_eq!(kinds(&two, &three), [("mode".to_string(), ChangeKind::TypeWidened, false)]);
    let by_ref = schema(&[("mode", json!({"$ref": "#/definitions/Mode"}))], &["mode"]);
    assert!(compare(&three, &by_ref).is_empty(), "an enum behind a $ref is the same type");
}

#[test]
fn optional_to_plain_is_narrowed_string_to_literal_narrowed_integer_to_number_widened() {
    let optional = schema(&[("n", json!({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null}))], &[]);
    let plain = schema(&[("n", json!({"type": "integer", "default": null}))], &[]);
    assert_eq!(kinds(&optional, &plain), [("n".to_string(), ChangeKind::TypeNarrowed, true)]);
    let string = schema(&[("s", json!({"type": "string"}))], &["s"]);
    let literal = schema(&[("s", json!({"enum": ["a"]}))], &["s"]);
    assert_eq!(kinds(&string, &literal), [("s".to_string(), ChangeKind::TypeNarrowed, true)]);
    let integer = schema(&[("x", json!({"type": "integer"}))], &["x"]);
    let number = schema(&[("x", json!({"type": "number"}))], &["x"]);
    assert_eq!(kinds(&integer, &number), [("x".to_string(), ChangeKind::TypeWidened, false)]);
    assert_eq!(kinds(&number, &integer), [("x".to_string(), ChangeKind::TypeNarrowed, true)]);
    assert_eq!(
        kinds(&string, &integer),
        [("s".to_string(), ChangeKind::Removed, true), ("x".to_string(), ChangeKind::Added, true)]
    );
}

#[test]
fn unrelated_types_are_changed_and_models_compare_by_their_fields() {
    let int = schema(&[("x", json!({"type": "integer"}))], &["x"]);
    let text = schema(&[("x", json!({"type": "string"}))], &["x"]);
    assert_eq!(kinds(&int, &text), [("x".to_string(), ChangeKind::TypeChanged, true)]);
    let model = schema(&[("w", json!({"$ref": "#/definitions/Window"}))], &["w"]);
    let inline = schema(
        &[("w", json!({"type": "object", "properties": {"days": {"type": "integer"}}, "required": ["days"]}))],
        &["w"],
    );
    assert!(compare(&model, &inline).is_empty());
    let other = schema(&[("w", json!({"type": "object", "properties": {"hours": {"type": "integer"}}}))], &["w"]);
    assert_eq!(kinds(&model, &other), [("w".to_string(), ChangeKind::TypeChanged, true)]);
}

#[test]
fn defaults_and_requiredness_changes_are_named() {
    let old =
        schema(&[("limit", json!({"type": "integer", "default": 10})), ("day", json!({"type": "string"}))], &["day"]);
    let new = schema(
        &[("limit", json!({"type": "integer"})), ("day", json!({"type": "string", "default": "today"}))],
        &["limit"],
    );
    let changes = compare(&old, &new);
    assert_eq!(
        kinds(&old, &new),
        [
            ("limit".to_string(), ChangeKind::NewlyRequired, true),
            ("day".to_string(), ChangeKind::NoLongerRequired, false)
        ]
    );
    assert!(changes[0].detail.contains("it had default 10"), "{}", changes[0].detail);
    let moved =
        schema(&[("limit", json!({"type": "integer", "default": 20})), ("day", json!({"type": "string"}))], &["day"]);
    let changes = compare(&old, &moved);
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].kind, changes[0].breaking), (ChangeKind::DefaultChanged, false));
    assert_eq!(changes[0].detail, "`limit` default 10 → 20");
}

#[test]
fn a_schema_that_is_not_an_object_schema_has_no_parameters() {
    let old = json!({});
    let new = schema(&[("a", json!({"type": "integer", "default": 0}))], &[]);
    assert_eq!(kinds(&old, &new), [("a".to_string(), ChangeKind::Added, false)]);
    assert!(compare(&json!(null), &json!("x")).is_empty());
}
