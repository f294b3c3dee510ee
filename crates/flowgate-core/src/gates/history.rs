//! The gates that read the ledger history of the upstream envs (`after`,
//! `soak`): when the build was current there, and how each such time ended.

use chrono::{DateTime, TimeDelta, Utc};

use super::text::{at, delta, duration};
use super::verdict::{combine, single, Part};
use super::{Gate, GateInput, GateResult};
use crate::ids::EnvName;
use crate::release::{MoveKind, Release};

/// A time during which the build was current in one env: from the release that
/// made it current to the release that replaced it (`None`: still current).
#[derive(Debug, Clone, Copy)]
pub(super) struct Span<'a> {
    pub start: &'a Release,
    pub end: Option<&'a Release>,
}

impl Span<'_> {
    /// A span ended by `flowgate rollback`: someone backed the build out.
    pub fn ended_by_rollback(&self) -> bool {
        self.end.is_some_and(|r| matches!(r.kind, MoveKind::Rollback { .. }))
    }

    /// How long the build was current (until `now` if it still is); never negative.
    pub fn length(&self, now: DateTime<Utc>) -> TimeDelta {
        let end = self.end.map_or(now, |r| r.created_at);
        (end - self.start.created_at).max(TimeDelta::zero())
    }
}

/// The spans of the move's build in `env`, oldest first, read from the releases
/// of the move's flow in revision order. Consecutive releases of the same build
/// are one span: the build never stopped being current.
pub(super) fn spans<'a>(input: &GateInput<'a>, env: &EnvName) -> Vec<Span<'a>> {
    let mut releases: Vec<&'a Release> =
        input.upstream.get(env).into_iter().flatten().filter(|r| &r.flow == input.flow).collect();
    releases.sort_by_key(|r| r.revision);
    let mut spans = Vec::new();
    let mut open: Option<&Release> = None;
    for release in releases {
        if release.build == input.build.id {
            open = open.or(Some(release));
        } else if let Some(start) = open.take() {
            spans.push(Span { start, end: Some(release) });
        }
    }
    spans.extend(open.map(|start| Span { start, end: None }));
    spans
}

/// True when the move's build is current in `env` now.
pub(super) fn is_current(input: &GateInput<'_>, env: &EnvName) -> bool {
    spans(input, env).last().is_some_and(|s| s.end.is_none())
}

fn never_released(input: &GateInput<'_>, env: &EnvName) -> String {
    format!("build `{}` was never released to `{env}` for flow `{}`", input.build.id, input.flow)
}

/// `after`: in every upstream env, the build must be current now, or have been
/// current and been replaced by a move that was not a rollback. The latest time
/// it was current decides: refused if it was never current there, or if that
/// time ended in a rollback (the env backed it out).
pub(super) fn after(input: &GateInput<'_>) -> GateResult {
    let parts = input.policy.after.iter().map(|env| after_in(input, env)).collect();
    combine(Gate::After, parts)
}

fn after_in(input: &GateInput<'_>, env: &EnvName) -> Part {
    let (build, flow) = (&input.build.id, input.flow);
    let spans = spans(input, env);
    let Some(last) = spans.last() else { return Part::refuse(never_released(input, env)) };
    let start = last.start;
    match last.end {
        None => Part::pass(format!(
            "build `{build}` is current in `{env}` for flow `{flow}` (r{} since {})",
            start.revision,
            at(start.created_at)
        )),
        Some(end) if last.ended_by_rollback() => Part::refuse(format!(
            "build `{build}` was rolled back in `{env}` at r{} ({} by `{}`) for flow `{flow}`",
            end.revision,
            at(end.created_at),
            end.actor
        )),
        Some(end) => Part::pass(format!(
            "build `{build}` was current in `{env}` for flow `{flow}` from r{} until r{} replaced it at {}",
            start.revision,
            end.revision,
            at(end.created_at)
        )),
    }
}

/// `soak`: in every upstream env, the build must have been current for at
/// least `soak` in one stretch (exactly `soak` passes). A stretch runs from the
/// release that made the build current to the next release, or to `now` while
/// it is still current; stretches ended by a rollback do not count. Short of
/// it, a build still current waits until its current stretch reaches `soak`;
/// one no longer current is refused, since waiting will not help.
pub(super) fn soak(input: &GateInput<'_>, soak: std::time::Duration) -> GateResult {
    if input.policy.after.is_empty() {
        return single(Gate::Soak, Part::refuse(no_upstream(Gate::Soak)));
    }
    let need = delta(soak);
    let parts = input.policy.after.iter().map(|env| soak_in(input, env, need)).collect();
    combine(Gate::Soak, parts)
}

fn soak_in(input: &GateInput<'_>, env: &EnvName, need: TimeDelta) -> Part {
    let (build, now) = (&input.build.id, input.now);
    let spans = spans(input, env);
    if spans.is_empty() {
        return Part::refuse(format!(
            "{}, so it has not soaked there ({} needed)",
            never_released(input, env),
            duration(need)
        ));
    }
    let longest = spans.iter().filter(|s| !s.ended_by_rollback()).map(|s| s.length(now)).max();
    if let Some(longest) = longest.filter(|l| *l >= need) {
        return Part::pass(format!(
            "build `{build}` soaked in `{env}` for {} ({} needed)",
            duration(longest),
            duration(need)
        ));
    }
    if let Some(current) = spans.last().filter(|s| s.end.is_none()) {
        let until = current.start.created_at.checked_add_signed(need);
        let when = until.map_or_else(|| "no sooner than the end of time".to_string(), |t| format!("at {}", at(t)));
        return Part::wait(
            until,
            format!(
                "build `{build}` has been current in `{env}` for {} of the {} soak (since r{}); it passes {when}",
                duration(current.length(now)),
                duration(need),
                current.start.revision
            ),
        );
    }
    match longest {
        Some(longest) => Part::refuse(format!(
            "build `{build}` was current in `{env}` for at most {} of the {} soak and is no longer current there; \
             release it to `{env}` again to soak it",
            duration(longest),
            duration(need)
        )),
        None => {
            let last = spans.last().and_then(|s| s.end).map_or(0, |r| r.revision);
            Part::refuse(format!(
                "build `{build}` was rolled back in `{env}` at r{last}; time before a rollback does not count toward \
                 the {} soak",
                duration(need)
            ))
        }
    }
}

/// A gate that counts upstream but has no upstream env to count in (the config
/// refuses this; a policy built in code may still hold it).
pub(super) fn no_upstream(gate: Gate) -> String {
    format!("`{gate}` needs `after`: the policy names no upstream env to count in")
}
