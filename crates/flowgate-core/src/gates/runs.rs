//! The gates that read the build's flow runs in the upstream envs
//! (`min_successful_runs`, `max_failure_rate`).

use std::collections::BTreeSet;

use super::history::{is_current, no_upstream};
use super::text::{percent, ticked};
use super::verdict::{single, Part};
use super::{Gate, GateInput, GateResult, RunOutcome, RunState};

/// Most failed runs a refusal names; the rest are counted.
const NAMED_FAILURES: usize = 5;

/// The runs that count: those in an env of `policy.after`, each (env, run id) once.
fn upstream_runs<'a>(input: &GateInput<'a>) -> Vec<&'a RunOutcome> {
    let mut seen = BTreeSet::new();
    input
        .runs
        .iter()
        .filter(|r| input.policy.after.contains(&r.env))
        .filter(|r| seen.insert((&r.env, r.flow_run_id.as_str())))
        .collect()
}

/// `min_successful_runs`: at least `need` completed runs across the upstream
/// envs pass. Fewer wait (with no known time) while the build is current in an
/// upstream env, where more runs may come; otherwise they are refused.
pub(super) fn min_successful_runs(input: &GateInput<'_>, need: u32) -> GateResult {
    const GATE: Gate = Gate::MinSuccessfulRuns;
    let after = &input.policy.after;
    if after.is_empty() {
        return single(GATE, Part::refuse(no_upstream(GATE)));
    }
    let build = &input.build.id;
    let completed = upstream_runs(input).iter().filter(|r| r.state == RunState::Completed).count();
    let found = format!("build `{build}` completed {completed} of the {need} runs needed in {}", ticked(after));
    if completed >= need as usize {
        return single(GATE, Part::pass(found));
    }
    let current: Vec<_> = after.iter().filter(|env| is_current(input, env)).collect();
    let part = if current.is_empty() {
        Part::refuse(format!("{found}, and it is no longer current there, so no more runs will come"))
    } else {
        Part::wait(None, format!("{found}; waiting for more runs in {}", ticked(current)))
    };
    single(GATE, part)
}

/// `max_failure_rate`: of the finished upstream runs (completed, failed,
/// crashed; cancelled and unfinished ones are left out), the share that failed
/// or crashed must not exceed `max` (equal passes; `0.0` means none may fail).
/// No finished runs pass: there is nothing to hold against the build.
pub(super) fn max_failure_rate(input: &GateInput<'_>, max: f64) -> GateResult {
    const GATE: Gate = Gate::MaxFailureRate;
    let after = &input.policy.after;
    if after.is_empty() {
        return single(GATE, Part::refuse(no_upstream(GATE)));
    }
    let build = &input.build.id;
    let runs = upstream_runs(input);
    let finished = runs.iter().filter(|r| r.state == RunState::Completed || r.state.is_failure()).count();
    if finished == 0 {
        return single(GATE, Part::pass(format!("build `{build}` has no finished runs in {}", ticked(after))));
    }
    let failed: Vec<&RunOutcome> = runs.into_iter().filter(|r| r.state.is_failure()).collect();
    // Division, not `max * finished`: both sides are then the correctly rounded
    // value of the same fraction, so a rate exactly at the limit passes.
    let rate = failed.len() as f64 / finished as f64;
    let found = format!(
        "{} of {finished} finished runs of build `{build}` in {} failed or crashed ({})",
        failed.len(),
        ticked(after),
        percent(rate)
    );
    if rate <= max {
        return single(GATE, Part::pass(format!("{found}, within the {} allowed", percent(max))));
    }
    let mut named: Vec<String> = failed
        .iter()
        .take(NAMED_FAILURES)
        .map(|r| format!("`{}` ({}, {} in `{}`)", r.name, r.flow_run_id, failure_word(r.state), r.env))
        .collect();
    if failed.len() > NAMED_FAILURES {
        named.push(format!("and {} more", failed.len() - NAMED_FAILURES));
    }
    single(GATE, Part::refuse(format!("{found}, above the {} allowed: {}", percent(max), named.join(", "))))
}

fn failure_word(state: RunState) -> &'static str {
    if state == RunState::Crashed {
        "crashed"
    } else {
        "failed"
    }
}
