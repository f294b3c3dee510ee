//! The policy of one env: the gates a move into it must pass. It lives in the
//! core because gate evaluation ([`crate::gates::evaluate`]) reads it; the config
//! crate reads `[envs.E] policy` into it and re-exports it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::Glob;

use crate::ids::EnvName;

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
    /// Approvals given by the person making the move do not count, so nobody
    /// approves their own release (four-eyes rule).
    pub separate_approver: bool,
    /// Whether a refused move may be forced with a reason.
    pub allow_override: bool,
    /// Windows in which no release into this env is made.
    pub freeze: Vec<FreezeWindow>,
    /// The build must have been registered through a flowgate server by a CI
    /// job whose verified claims match (`provenance = { ref = "refs/heads/main" }`).
    pub provenance: Option<ProvenanceRule>,
    /// The new build's parameter schema must accept what the env sends the
    /// flow: its deployment's and schedules' parameters and its recent runs'.
    pub compatible_parameters: bool,
}

/// What a build's verified registration must show: the CI job's git ref, and
/// optionally its repository, as globs over the ID token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvenanceRule {
    /// The `ref` claim, e.g. `refs/heads/main` or `refs/tags/v*`.
    pub git_ref: String,
    /// The `repository` claim, e.g. `acme/flows`; None: any.
    pub repository: Option<String>,
}

impl ProvenanceRule {
    /// True when the claims of one registration satisfy the rule.
    pub fn matches(&self, claims: &std::collections::BTreeMap<String, String>) -> bool {
        let glob = |pattern: &str, value: Option<&String>| {
            value.is_some_and(|v| Glob::new(pattern).is_ok_and(|g| g.compile_matcher().is_match(v)))
        };
        glob(&self.git_ref, claims.get("ref"))
            && self.repository.as_deref().is_none_or(|r| glob(r, claims.get("repository")))
    }

    /// `ref refs/heads/main`, `ref refs/heads/main of acme/flows`: for details.
    pub fn describe(&self) -> String {
        match &self.repository {
            Some(repository) => format!("ref `{}` of `{repository}`", self.git_ref),
            None => format!("ref `{}`", self.git_ref),
        }
    }
}

impl Policy {
    /// True when any gate is set; `allow_override` and `separate_approver`
    /// alone are not gates (they only change how gates are applied).
    pub fn has_gates(&self) -> bool {
        !self.branches.is_empty()
            || !self.after.is_empty()
            || self.soak.is_some()
            || self.min_successful_runs > 0
            || self.max_failure_rate.is_some()
            || self.approvals > 0
            || !self.freeze.is_empty()
            || self.provenance.is_some()
            || self.compatible_parameters
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
    fn allow_override_and_separate_approver_alone_are_not_gates() {
        let mut p = Policy { allow_override: true, separate_approver: true, ..Policy::default() };
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
    fn freeze_window_includes_its_start_and_excludes_its_end() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let w = FreezeWindow { from: at("2025-01-01T00:00:00Z"), until: at("2025-01-02T00:00:00Z"), reason: None };
        assert!(!w.contains(at("2024-12-31T23:59:59.999Z")));
        assert!(w.contains(at("2025-01-01T00:00:00Z")));
        assert!(w.contains(at("2025-01-01T23:59:59.999Z")));
        assert!(!w.contains(at("2025-01-02T00:00:00Z")));
    }
}
