//! Folding gate results into one answer: the verdict of a whole policy, and the
//! one result of a gate that looks at several upstream envs.

use chrono::{DateTime, Utc};

use super::{Gate, GateResult, GateStatus};

/// Every gate's result for one move, in policy-key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    pub results: Vec<GateResult>,
}

/// What a move may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// A person must act. `reasons` holds the detail of every gate that did not
    /// pass, waiting ones included, so one look shows all that is missing.
    Refuse {
        reasons: Vec<String>,
    },
    /// Passes by itself later: `until` is the latest time any waiting gate
    /// names, or `None` when one of them cannot say when.
    Wait {
        until: Option<DateTime<Utc>>,
        reasons: Vec<String>,
    },
}

impl Verdict {
    /// Any refusal refuses (listing every gate that did not pass); else any wait
    /// waits; else the move passes. No results (no policy) passes.
    pub fn outcome(&self) -> Outcome {
        let reasons =
            || self.results.iter().filter(|r| r.status != GateStatus::Pass).map(|r| r.detail.clone()).collect();
        match fold(self.results.iter().map(|r| &r.status)) {
            GateStatus::Pass => Outcome::Pass,
            GateStatus::Refuse => Outcome::Refuse { reasons: reasons() },
            GateStatus::Wait { until } => Outcome::Wait { until, reasons: reasons() },
        }
    }

    /// True when every gate passed.
    pub fn passed(&self) -> bool {
        self.outcome() == Outcome::Pass
    }
}

/// The strongest of several statuses: refuse over wait over pass; waits keep
/// the latest `until`, or `None` if any wait has no known time.
pub(super) fn fold<'a>(statuses: impl IntoIterator<Item = &'a GateStatus>) -> GateStatus {
    let mut refused = false;
    let mut wait: Option<Option<DateTime<Utc>>> = None;
    for status in statuses {
        match status {
            GateStatus::Pass => {}
            GateStatus::Refuse => refused = true,
            GateStatus::Wait { until } => {
                wait = Some(match (wait, until) {
                    (None, until) => *until,
                    (Some(Some(a)), Some(b)) => Some(a.max(*b)),
                    (Some(_), _) => None,
                })
            }
        }
    }
    match (refused, wait) {
        (true, _) => GateStatus::Refuse,
        (false, Some(until)) => GateStatus::Wait { until },
        (false, None) => GateStatus::Pass,
    }
}

/// What one gate found in one upstream env (or about one aspect of the move).
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub status: GateStatus,
    pub text: String,
}

impl Part {
    pub fn pass(text: String) -> Self {
        Self { status: GateStatus::Pass, text }
    }
    pub fn refuse(text: String) -> Self {
        Self { status: GateStatus::Refuse, text }
    }
    pub fn wait(until: Option<DateTime<Utc>>, text: String) -> Self {
        Self { status: GateStatus::Wait { until }, text }
    }
}

/// One gate's result from its parts: the folded status; the detail names every
/// part when the gate passes, else only the parts that did not pass.
pub(super) fn combine(gate: Gate, parts: Vec<Part>) -> GateResult {
    let status = fold(parts.iter().map(|p| &p.status));
    let shown: Vec<String> = if status == GateStatus::Pass {
        parts.into_iter().map(|p| p.text).collect()
    } else {
        parts.into_iter().filter(|p| p.status != GateStatus::Pass).map(|p| p.text).collect()
    };
    GateResult { gate, status, detail: shown.join("; ") }
}

/// A gate decided in one piece.
pub(super) fn single(gate: Gate, part: Part) -> GateResult {
    GateResult { gate, status: part.status, detail: part.text }
}
