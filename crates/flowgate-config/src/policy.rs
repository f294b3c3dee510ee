//! The typed `policy` and `rollout` of an env: read and checked here, enforced by
//! the gate and rollout logic elsewhere.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flowgate_core::{EnvName, FlowKey};
use globset::{Glob, GlobMatcher};
use serde_json::Map;

/// The gates a release into one env must pass. The default has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Branch globs a build must come from (`main`, `release/*`); empty = any.
    pub branches: Vec<String>,
    /// Envs the build must already be current in (the upstream envs).
    pub after: Vec<EnvName>,
    /// How long the build must have been current upstream.
    pub soak: Option<Duration>,
    /// Successful upstream runs of the build required; 0 = no requirement.
    pub min_successful_runs: u32,
    /// Highest share (0.0–1.0) of failed or crashed upstream runs allowed.
    pub max_failure_rate: Option<f64>,
    /// Approvals required (`approval = true` is 1, `false` is 0).
    pub approvals: u32,
    /// Whether a refused move may be forced with a reason.
    pub allow_override: bool,
    /// Windows in which no release into this env is made.
    pub freeze: Vec<FreezeWindow>,
}

impl Policy {
    /// True when any gate is set; `allow_override` alone is not a gate.
    pub fn has_gates(&self) -> bool {
        !self.branches.is_empty()
            || !self.after.is_empty()
            || self.soak.is_some()
            || self.min_successful_runs > 0
            || self.max_failure_rate.is_some()
            || self.approvals > 0
            || !self.freeze.is_empty()
    }

    /// True when `branch` satisfies `branches` (always true when none are listed).
    pub fn branch_allowed(&self, branch: Option<&str>) -> bool {
        if self.branches.is_empty() {
            return true;
        }
        let Some(branch) = branch else { return false };
        self.branches.iter().any(|g| Glob::new(g).is_ok_and(|g| g.compile_matcher().is_match(branch)))
    }
}

/// A period during which releases are refused: `from` inclusive, `until` exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeWindow {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
}

impl FreezeWindow {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.until
    }
}

/// The plan of a gradual promotion into one env.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Flow-key globs per wave, in order; each glob matches at least one flow.
    pub waves: Vec<Vec<String>>,
    pub verify: Option<Verify>,
}

impl Rollout {
    /// The flows of each wave: every flow goes to the first wave with a glob
    /// matching it; flows matched by no wave are not part of the rollout, and
    /// waves left empty are dropped.
    pub fn expand<'a>(&self, flows: impl IntoIterator<Item = &'a FlowKey>) -> Vec<Vec<FlowKey>> {
        let matchers: Vec<Vec<GlobMatcher>> = self
            .waves
            .iter()
            .map(|wave| wave.iter().filter_map(|g| Glob::new(g).ok()).map(|g| g.compile_matcher()).collect())
            .collect();
        let mut out = vec![Vec::new(); self.waves.len()];
        for flow in flows {
            if let Some(i) = matchers.iter().position(|wave| wave.iter().any(|m| m.is_match(flow.as_str()))) {
                out[i].push(flow.clone());
            }
        }
        out.retain(|wave| !wave.is_empty());
        out
    }
}

/// How each wave is verified before the next starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Verify {
    /// Runs per flow that must succeed (default 1).
    pub runs: u32,
    /// How long to wait for them; `None` = until they finish.
    pub timeout: Option<Duration>,
    /// Parameters of the verification runs (Prefect templates kept as is).
    pub parameters: Map<String, serde_json::Value>,
}

/// Parses `90s`, `30m`, `2h`, `1d`, `1w` and sums like `1h30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = std::mem::take(&mut digits).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    (any && digits.is_empty()).then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_units_people_write() {
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        for bad in ["", "2", "h", "2x", "1.5h", "-1h", "2h 30m"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn allow_override_alone_is_not_a_gate() {
        let mut p = Policy { allow_override: true, ..Policy::default() };
        assert!(!p.has_gates());
        p.approvals = 1;
        assert!(p.has_gates());
    }

    #[test]
    fn branches_are_globs_and_empty_allows_all() {
        let mut p = Policy::default();
        assert!(p.branch_allowed(None));
        p.branches = vec!["main".into(), "release/*".into()];
        assert!(p.branch_allowed(Some("main")));
        assert!(p.branch_allowed(Some("release/1.2")));
        assert!(!p.branch_allowed(Some("feature/x")));
        assert!(!p.branch_allowed(None));
    }

    #[test]
    fn waves_take_each_flow_once_in_the_first_matching_wave() {
        let flows: Vec<FlowKey> = ["etl-daily", "etl-hourly", "report"].iter().map(|f| f.parse().unwrap()).collect();
        let r = Rollout { waves: vec![vec!["etl-daily".into()], vec!["*".into()]], verify: None };
        let waves = r.expand(&flows);
        let names: Vec<Vec<&str>> = waves.iter().map(|w| w.iter().map(FlowKey::as_str).collect()).collect();
        assert_eq!(names, vec![vec!["etl-daily"], vec!["etl-hourly", "report"]]);
        let r = Rollout { waves: vec![vec!["report".into()], vec!["report".into()]], verify: None };
        assert_eq!(r.expand(&flows).len(), 1);
    }
}
