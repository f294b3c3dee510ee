//! The gates the target env decides alone: `freeze`, `branches`, `provenance`, `approval`.

use std::collections::BTreeMap;

use super::text::{at, ticked};
use super::verdict::{single, Part};
use super::{Gate, GateInput, GateResult};
use crate::policy::{FreezeWindow, ProvenanceRule};
use crate::{AuthMethod, Provenance};

/// `freeze`: a move made while `now` is inside a window (from inclusive, until
/// exclusive) waits until that window ends, or, when later windows overlap or
/// touch it, until the last of them ends, since the env stays frozen all along.
/// The reasons of the windows `now` is in are named.
pub(super) fn freeze(input: &GateInput<'_>) -> GateResult {
    const GATE: Gate = Gate::Freeze;
    let (env, now) = (input.env, input.now);
    let windows = &input.policy.freeze;
    let inside: Vec<&FreezeWindow> = windows.iter().filter(|w| w.contains(now)).collect();
    let Some(mut until) = inside.iter().map(|w| w.until).max() else {
        let next = windows.iter().filter(|w| w.from > now).map(|w| w.from).min();
        let then = next.map_or_else(String::new, |t| format!("; the next freeze starts at {}", at(t)));
        return single(GATE, Part::pass(format!("`{env}` is not frozen at {}{then}", at(now))));
    };
    // Follow the chain: each pass takes any window starting at or before the
    // current end and ending after it; windows are few, so this stays cheap.
    while let Some(later) = windows.iter().filter(|w| w.from <= until && w.until > until).map(|w| w.until).max() {
        until = later;
    }
    let since = inside.iter().map(|w| w.from).min().unwrap_or(now);
    let reasons: Vec<&str> = inside.iter().filter_map(|w| w.reason.as_deref()).collect();
    let why = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join("; ")) };
    single(GATE, Part::wait(Some(until), format!("`{env}` is frozen from {} until {}{why}", at(since), at(until))))
}

/// `branches`: the build must come from a branch matching one of the globs; a
/// build made on a detached HEAD (no branch) matches none.
pub(super) fn branches(input: &GateInput<'_>) -> GateResult {
    if input.verified_branches {
        return verified_branches(input);
    }
    const GATE: Gate = Gate::Branches;
    let (build, env) = (&input.build.id, input.env);
    let allowed = ticked(&input.policy.branches);
    let branch = input.build.branch.as_deref();
    let part = match branch {
        Some(b) if input.policy.branch_allowed(branch) => {
            Part::pass(format!("build `{build}` comes from branch `{b}`, which `{env}` accepts ({allowed})"))
        }
        Some(b) => {
            Part::refuse(format!("build `{build}` comes from branch `{b}`; `{env}` accepts only builds from {allowed}"))
        }
        None => Part::refuse(format!(
            "build `{build}` was made on a detached HEAD (no branch); `{env}` accepts only builds from {allowed}"
        )),
    };
    single(GATE, part)
}

/// `branches` as a server decides it: the branches are those of the CI jobs
/// that registered the build (`refs/heads/B` of a job token whose `sha` the
/// server matched to the build's commit), whatever the build record says.
fn verified_branches(input: &GateInput<'_>) -> GateResult {
    const GATE: Gate = Gate::Branches;
    let (build, env) = (&input.build.id, input.env);
    let allowed = ticked(&input.policy.branches);
    let verified: Vec<&str> =
        by_ci(input.provenance).filter_map(|p| p.registrar.claims.get("ref")?.strip_prefix("refs/heads/")).collect();
    let part = match verified.iter().find(|b| input.policy.branch_allowed(Some(b))) {
        Some(b) => Part::pass(format!(
            "build `{build}` was registered by a CI job on branch `{b}` (verified), which `{env}` accepts ({allowed})"
        )),
        None if verified.is_empty() => Part::refuse(format!(
            "no CI job registered build `{build}` through the server, so its branch is not verified (the record \
             says {}); `{env}` accepts only builds from {allowed}",
            input.build.branch.as_deref().map_or("no branch".to_string(), |b| format!("`{b}`"))
        )),
        None => Part::refuse(format!(
            "build `{build}` was registered by CI jobs on {} (verified); `{env}` accepts only builds from {allowed}",
            ticked(&verified)
        )),
    };
    single(GATE, part)
}

/// The registrations by a CI job whose `sha` the server checked against the build's commit.
fn by_ci(provenance: &[Provenance]) -> impl Iterator<Item = &Provenance> + Clone {
    provenance.iter().filter(|p| p.registrar.method == AuthMethod::Oidc && p.registrar.claims.contains_key("sha"))
}

/// `provenance`: a CI job whose verified claims match the rule registered the
/// build through a flowgate server. The server takes a job's registration only
/// of the commit its token's `sha` names, so a match proves which ref built
/// the code, whatever branch name the build record carries.
pub(super) fn provenance(input: &GateInput<'_>, rule: &ProvenanceRule) -> GateResult {
    const GATE: Gate = Gate::Provenance;
    let (build, env) = (&input.build.id, input.env);
    // Only a job token's registration with a `sha` was checked against the
    // build's commit by the server.
    let by_ci = by_ci(input.provenance);
    let claim = |p: &Provenance, key: &str| p.registrar.claims.get(key).cloned().unwrap_or_else(|| "-".into());
    if let Some(p) = by_ci.clone().find(|p| rule.matches(&p.registrar.claims)) {
        return single(
            GATE,
            Part::pass(format!(
                "build `{build}` was registered by a CI job of `{}` on `{}` at sha `{}` (run {}); `{env}` requires {}",
                claim(p, "repository"),
                claim(p, "ref"),
                claim(p, "sha"),
                claim(p, "run_id"),
                rule.describe()
            )),
        );
    }
    let seen: Vec<String> = by_ci.map(|p| format!("`{}` of `{}`", claim(p, "ref"), claim(p, "repository"))).collect();
    let found = if seen.is_empty() {
        "no CI job registered it through a flowgate server".to_string()
    } else {
        format!("CI jobs registered it only on {}", seen.join(", "))
    };
    single(
        GATE,
        Part::refuse(format!("`{env}` requires build `{build}` registered by CI on {}; {found}", rule.describe())),
    )
}

/// `approval`: at least `need` distinct people approved this build for this env,
/// for this flow or for every flow. Actors are compared trimmed and without
/// case, so `Alice` and `alice` are one person. With `separate_approver`, the
/// releaser's own approvals do not count.
pub(super) fn approval(input: &GateInput<'_>, need: u32) -> GateResult {
    const GATE: Gate = Gate::Approval;
    let (build, env) = (&input.build.id, input.env);
    let person = |actor: &str| actor.trim().to_lowercase();
    let releaser = person(input.releaser);
    let separate = input.policy.separate_approver;
    // Keyed by the compared form, showing the first spelling seen.
    let mut approvers: BTreeMap<String, &str> = BTreeMap::new();
    let mut own_skipped = false;
    let relevant = input
        .approvals
        .iter()
        .filter(|a| &a.env == env && &a.build == build && a.flow.as_ref().is_none_or(|f| f == input.flow));
    for a in relevant {
        if separate && person(&a.actor) == releaser {
            own_skipped = true;
        } else {
            approvers.entry(person(&a.actor)).or_insert(a.actor.as_str());
        }
    }
    let who = if approvers.is_empty() { "none".to_string() } else { ticked(approvers.values()) };
    let passed = approvers.len() >= need as usize;
    let mut text =
        format!("build `{build}` has {} of the {need} approvals needed for `{env}` ({who})", approvers.len());
    if separate && (own_skipped || !passed) {
        text.push_str(&format!(
            "; approvals by `{}`, who makes this move, do not count (`separate_approver`)",
            input.releaser
        ));
    }
    if passed {
        return single(GATE, Part::pass(text));
    }
    text.push_str(&format!("; approve it with `flowgate approve {build} --env {env}`"));
    single(GATE, Part::refuse(text))
}
