//! Table tests of gate evaluation: each gate's pass, refuse and wait, their
//! combination into one outcome, and the clock edges (exact soak, window ends).

#[path = "gates/builder.rs"]
mod builder;
#[path = "gates/local.rs"]
mod local;
#[path = "gates/parameters.rs"]
mod parameters;
#[path = "gates/upstream.rs"]
mod upstream;

use builder::*;
use flowgate_core::{Outcome, Policy, ProvenanceRule, RunOutcome, RunState};

#[test]
fn no_policy_passes_with_no_results() {
    let verdict = case(Policy::default()).verdict();
    assert!(verdict.results.is_empty());
    assert_eq!(verdict.outcome(), Outcome::Pass);
    assert!(verdict.passed());
}

/// Every gate set, all passing: one result each, in policy-key order.
fn all_passing() -> Case {
    let policy = Policy {
        freeze: vec![window(t(0), t(60), None)],
        branches: vec!["main".into()],
        after: vec![env("qa")],
        soak: hours(2),
        min_successful_runs: 1,
        max_failure_rate: Some(0.5),
        approvals: 1,
        separate_approver: true,
        allow_override: true,
        provenance: Some(ProvenanceRule { git_ref: "refs/heads/main".into(), repository: None }),
        compatible_parameters: true,
    };
    case(policy)
        .rel("qa", 1, 1, RELEASE, t(0))
        .run("qa", "r", RunState::Completed)
        .approve("bob", "prod", 1, None)
        .registered(Some(("acme/flows", "refs/heads/main")))
}

#[test]
fn every_set_gate_yields_one_result_in_policy_key_order() {
    let verdict = all_passing().verdict();
    let gates: Vec<&str> = verdict.results.iter().map(|r| r.gate.as_str()).collect();
    let order = [
        "freeze",
        "branches",
        "provenance",
        "after",
        "soak",
        "min_successful_runs",
        "max_failure_rate",
        "approval",
        "compatible_parameters",
    ];
    assert_eq!(gates, order);
    assert_eq!(flowgate_core::Gate::ALL.map(|g| g.as_str()), order, "Gate::ALL is the reporting order");
    // The JSON name (stored in the ledger's audit column) is the policy key.
    let json = serde_json::to_value(flowgate_core::Gate::MinSuccessfulRuns).unwrap();
    assert_eq!(json, "min_successful_runs");
    assert!(verdict.passed(), "{verdict:?}");
}

#[test]
fn a_refusal_dominates_waits_and_lists_every_gate_that_did_not_pass() {
    // Frozen (wait), feature branch (refuse), soaking (wait), no approval (refuse).
    let c = all_passing().now(t(30)).branch(Some("feature/x"));
    let c = Case { approvals: Vec::new(), ..c };
    let Outcome::Refuse { reasons } = c.verdict().outcome() else { panic!("{:?}", c.verdict()) };
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    for (reason, fragment) in reasons.iter().zip(["is frozen", "feature/x", "of the 2h soak", "0 of the 1 approvals"]) {
        assert!(reason.contains(fragment), "{reason} lacks {fragment}");
    }
    assert!(!c.verdict().passed());
}

#[test]
fn waits_keep_the_latest_known_time_or_none() {
    // Frozen until 1:00 and soaking until 2:30: the later time wins.
    let c = all_passing().rel("qa", 2, 2, RELEASE, t(5)).rel("qa", 3, 1, RELEASE, t(30)).now(t(45));
    let Outcome::Wait { until, reasons } = c.verdict().outcome() else { panic!("{:?}", c.verdict()) };
    assert_eq!(until, Some(t(150)));
    assert_eq!(reasons.len(), 2, "{reasons:#?}");
    // Add a wait with no known time (too few runs while current): the time is unknown.
    let c = Case { runs: Vec::new(), ..c };
    let Outcome::Wait { until, reasons } = c.verdict().outcome() else { panic!("{:?}", c.verdict()) };
    assert_eq!((until, reasons.len()), (None, 3), "{reasons:#?}");
}

#[test]
fn run_states_map_from_prefect_and_serialize_in_snake_case() {
    let cases = [
        ("COMPLETED", RunState::Completed),
        ("FAILED", RunState::Failed),
        ("CRASHED", RunState::Crashed),
        ("CANCELLED", RunState::Cancelled),
        ("CANCELLING", RunState::Cancelled),
        ("RUNNING", RunState::Unfinished),
        ("SCHEDULED", RunState::Unfinished),
        ("PAUSED", RunState::Unfinished),
        ("", RunState::Unfinished),
    ];
    for (state_type, want) in cases {
        assert_eq!(RunState::from_prefect(state_type), want, "{state_type}");
    }
    let run = RunOutcome { env: env("qa"), flow_run_id: "id".into(), name: "n".into(), state: RunState::Crashed };
    let json = serde_json::to_value(&run).unwrap();
    assert_eq!(json, serde_json::json!({ "env": "qa", "flow_run_id": "id", "name": "n", "state": "crashed" }));
    assert_eq!(serde_json::from_value::<RunOutcome>(json).unwrap(), run);
}
