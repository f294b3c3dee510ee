//! `compatible_parameters`: the new schema, validated by a real JSON Schema
//! validator against every parameter set the env sends the flow.

use flowgate_core::contract::compare;
use flowgate_core::gates::ParameterUse;
use flowgate_core::Policy;
use serde_json::{json, Value};

use super::builder::*;

fn gated() -> Policy {
    Policy { compatible_parameters: true, ..Policy::default() }
}

/// `def etl(day: date, limit: int = 10)` and its rename to `max_rows`.
fn schema(second: &str) -> Value {
    json!({"title": "Parameters", "type": "object", "required": ["day"], "properties": {
        "day": {"title": "day", "position": 0, "type": "string", "format": "date"},
        second: {"title": second, "position": 1, "type": "integer", "default": 10}}})
}

fn used(source: &str, parameters: Value, complete: bool) -> ParameterUse {
    ParameterUse { source: source.into(), parameters: parameters.as_object().unwrap().clone(), complete }
}

fn with(new: Value, uses: Vec<ParameterUse>) -> Case {
    let changes = compare(&schema("limit"), &new);
    Case { schema: Some(new), changes, uses, ..case(gated()) }
}

#[test]
fn compatible_parameters_table() {
    let old_run = || used("flow run `clever-fox`", json!({"day": "2026-01-01", "limit": 5}), true);
    check(vec![
        ("nothing used", with(schema("max_rows"), vec![]), "compatible_parameters", PASS, "all 0 parameter sets"),
        (
            "the same schema takes an old run",
            with(schema("limit"), vec![old_run()]),
            "compatible_parameters",
            PASS,
            "accepts all 1 parameter sets",
        ),
        (
            "a rename refuses a run that passed the old name, naming both",
            with(schema("max_rows"), vec![old_run()]),
            "compatible_parameters",
            REFUSE,
            "flow run `clever-fox`: parameter `limit` is not in the new schema",
        ),
        (
            "the refusal says which change broke it",
            with(schema("max_rows"), vec![old_run()]),
            "compatible_parameters",
            REFUSE,
            "(`limit` looks renamed to `max_rows`",
        ),
        (
            "the deployment's own parameters need not be complete",
            with(schema("limit"), vec![used("the deployment's parameters", json!({"limit": 3}), false)]),
            "compatible_parameters",
            PASS,
            "accepts all 1",
        ),
        (
            "a schedule's parameters must be complete",
            with(schema("limit"), vec![used("schedule `0 3 * * *`", json!({"limit": 3}), true)]),
            "compatible_parameters",
            REFUSE,
            "schedule `0 3 * * *`: parameter `day`: ",
        ),
        (
            "a value of the wrong type is refused",
            with(schema("limit"), vec![used("flow run `x`", json!({"day": "2026-01-01", "limit": "ten"}), true)]),
            "compatible_parameters",
            REFUSE,
            "parameter `limit`: \"ten\" is not of type \"integer\"",
        ),
        (
            "no recorded schema passes",
            Case { uses: vec![old_run()], ..case(gated()) },
            "compatible_parameters",
            PASS,
            "no parameter schema",
        ),
    ]);
}

#[test]
fn a_refusal_names_three_uses_and_counts_the_rest() {
    let runs = (0..5).map(|i| used(&format!("flow run `r{i}`"), json!({"day": "2026-01-01", "limit": 1}), true));
    let verdict = with(schema("max_rows"), runs.collect()).verdict();
    let detail = &verdict.results[0].detail;
    assert!(detail.contains("`r2`") && !detail.contains("`r3`") && detail.ends_with("and 2 more"), "{detail}");
}
