//! Access rules: which roles a verified OpenID Connect identity (a CI job)
//! gets, from its issuer and claims. A rule names an issuer and, for some
//! claims, a glob the claim's value must match (`*` matches any text, `/`
//! included); an identity gets the grants of every rule it matches. Pure, so
//! the server and its tests read the same rule.

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};

use crate::access::Grant;

/// One rule, compiled.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub issuer: String,
    claims: Vec<(String, GlobMatcher)>,
    pub grants: Vec<Grant>,
}

/// A claim pattern that is not a glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim `{claim}`: `{pattern}` is not a glob pattern: {reason}")]
pub struct RuleError {
    pub claim: String,
    pub pattern: String,
    pub reason: String,
}

impl AccessRule {
    /// `claims` maps a claim name to the glob its value must match.
    pub fn new(issuer: &str, claims: &BTreeMap<String, String>, grants: Vec<Grant>) -> Result<Self, RuleError> {
        let claims = claims
            .iter()
            .map(|(claim, pattern)| {
                let glob = Glob::new(pattern).map_err(|e| RuleError {
                    claim: claim.clone(),
                    pattern: pattern.clone(),
                    reason: e.kind().to_string(),
                })?;
                Ok((claim.clone(), glob.compile_matcher()))
            })
            .collect::<Result<_, RuleError>>()?;
        Ok(Self { issuer: issuer.to_string(), claims, grants })
    }

    /// True when the identity comes from this rule's issuer and every claim the
    /// rule names is present, a string, and matches its pattern.
    pub fn matches(&self, issuer: &str, claims: &BTreeMap<String, String>) -> bool {
        issuer == self.issuer
            && self.claims.iter().all(|(name, glob)| claims.get(name).is_some_and(|value| glob.is_match(value)))
    }
}

/// The grants of every rule the identity matches, each once, in rule order.
pub fn grants_for(rules: &[AccessRule], issuer: &str, claims: &BTreeMap<String, String>) -> Vec<Grant> {
    let mut grants: Vec<Grant> = Vec::new();
    for rule in rules.iter().filter(|r| r.matches(issuer, claims)) {
        for grant in &rule.grants {
            if !grants.contains(grant) {
                grants.push(grant.clone());
            }
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    const GITHUB: &str = "https://token.actions.githubusercontent.com";

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn rule(pairs: &[(&str, &str)], grants: &[&str]) -> AccessRule {
        AccessRule::new(GITHUB, &map(pairs), grants.iter().map(|g| g.parse().unwrap()).collect()).unwrap()
    }

    #[test]
    fn an_identity_gets_the_grants_of_every_rule_it_matches() {
        let rules = [
            rule(&[("repository", "acme/flows")], &["viewer", "releaser:qa"]),
            rule(&[("repository", "acme/flows"), ("ref", "refs/heads/main")], &["releaser:prod", "viewer"]),
            rule(&[("repository", "acme/*")], &["viewer"]),
        ];
        let main = map(&[("repository", "acme/flows"), ("ref", "refs/heads/main")]);
        let feature = map(&[("repository", "acme/flows"), ("ref", "refs/heads/feature/x")]);
        let other = map(&[("repository", "acme/other"), ("ref", "refs/heads/main")]);
        let strings = |gs: Vec<Grant>| gs.iter().map(Grant::to_string).collect::<Vec<_>>();
        assert_eq!(strings(grants_for(&rules, GITHUB, &main)), ["viewer", "releaser:qa", "releaser:prod"]);
        assert_eq!(strings(grants_for(&rules, GITHUB, &feature)), ["viewer", "releaser:qa"]);
        assert_eq!(strings(grants_for(&rules, GITHUB, &other)), ["viewer"]);
        assert!(grants_for(&rules, "https://gitlab.example", &main).is_empty(), "another issuer");
        assert!(grants_for(&rules, GITHUB, &map(&[("ref", "refs/heads/main")])).is_empty(), "a missing claim");
    }

    #[test]
    fn a_star_matches_slashes_and_a_bad_pattern_is_named() {
        let r = rule(&[("ref", "refs/heads/release/*")], &["viewer"]);
        assert!(r.matches(GITHUB, &map(&[("ref", "refs/heads/release/2026/12")])));
        assert!(!r.matches(GITHUB, &map(&[("ref", "refs/heads/main")])));
        let err = AccessRule::new(GITHUB, &map(&[("ref", "refs/[heads")]), vec![]).unwrap_err();
        assert_eq!((err.claim.as_str(), err.pattern.as_str()), ("ref", "refs/[heads"));
    }
}
