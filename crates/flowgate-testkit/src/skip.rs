//! The one way a test skips because something it needs is missing: only when
//! asked with `FLOWGATE_SKIP_<WHAT>=1`, and never under CI (`CI=true`), where
//! a skip would let a run pass that tested nothing, so it fails instead.
//!
//! Each variable takes `1` and nothing else: `0`, `true` or `yes` are a panic
//! naming the variable and its value, so a typo never decides what runs.

/// Skip the PostgreSQL tests when no server answers at `FLOWGATE_TEST_POSTGRES_URL`.
pub const POSTGRES: &str = "FLOWGATE_SKIP_POSTGRES";
/// Skip the S3 store suite when `moto_server` is not on PATH.
pub const S3: &str = "FLOWGATE_SKIP_S3";
/// Skip the image-pinning tests when `docker-registry` (or `htpasswd`) is not on PATH.
pub const REGISTRY: &str = "FLOWGATE_SKIP_REGISTRY";
/// The variable CI systems (GitHub Actions, GitLab CI) set to `true`.
pub const CI: &str = "CI";

/// What a test does when something it needs is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Skipping was asked for and this is not CI: the test passes without running.
    Skip,
    /// The test fails, for this reason.
    Fail(Refusal),
}

/// Why a missing service fails the test rather than skipping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The skip variable is unset or empty.
    NotAsked,
    /// The skip variable holds something other than `1`.
    BadValue(String),
    /// Skipping was asked for, but `CI=true`.
    UnderCi,
}

/// The decision from the skip variable's value and `CI`'s, read by the caller.
pub fn decide(skip: Option<&str>, ci: Option<&str>) -> Decision {
    match skip {
        None | Some("") => Decision::Fail(Refusal::NotAsked),
        Some("1") if ci == Some("true") => Decision::Fail(Refusal::UnderCi),
        Some("1") => Decision::Skip,
        Some(other) => Decision::Fail(Refusal::BadValue(other.to_string())),
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Panics when `var` holds anything but `1` (or nothing). Fixtures call it
/// before they look for their service, so a bad value fails even on a machine
/// that has the service.
#[track_caller]
pub fn check_value(var_name: &str) {
    if let Some(value) = var(var_name).filter(|v| !v.is_empty() && v != "1") {
        panic!("{var_name}=`{value}`: {var_name} takes `1` (skip) or nothing");
    }
}

/// Called when `missing` (e.g. "PostgreSQL at `…` is unreachable: …") stops a
/// test. Returns, after saying so on stderr, when the test may skip; panics
/// naming `missing` otherwise, with `hint` (how to provide it) when skipping
/// was not asked for.
#[track_caller]
pub fn or_fail(var_name: &str, missing: &str, hint: &str) {
    let skip = var(var_name);
    match decide(skip.as_deref(), var(CI).as_deref()) {
        Decision::Skip => eprintln!("skipping: {missing}, and {var_name}=1"),
        Decision::Fail(Refusal::NotAsked) => panic!("{missing}. {hint}, or set {var_name}=1 to skip."),
        Decision::Fail(Refusal::BadValue(value)) => {
            panic!("{missing}, and {var_name}=`{value}`: {var_name} takes `1` (skip) or nothing")
        }
        Decision::Fail(Refusal::UnderCi) => {
            panic!("{missing}: {var_name}=1 asks to skip, but CI=true, where a skipped test fails the run")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_1_skips_and_never_under_ci() {
        assert_eq!(decide(Some("1"), None), Decision::Skip);
        assert_eq!(decide(Some("1"), Some("false")), Decision::Skip);
        assert_eq!(decide(Some("1"), Some("")), Decision::Skip);
        assert_eq!(decide(Some("1"), Some("true")), Decision::Fail(Refusal::UnderCi));
        assert_eq!(decide(None, None), Decision::Fail(Refusal::NotAsked));
        assert_eq!(decide(Some(""), None), Decision::Fail(Refusal::NotAsked));
        assert_eq!(decide(None, Some("true")), Decision::Fail(Refusal::NotAsked));
        for bad in ["0", "true", "yes", " 1", "1 "] {
            let want = Decision::Fail(Refusal::BadValue(bad.to_string()));
            assert_eq!(decide(Some(bad), None), want, "{bad:?}");
            assert_eq!(decide(Some(bad), Some("true")), want, "{bad:?} under CI");
        }
    }

    #[test]
    #[should_panic(expected = "FLOWGATE_SKIP_TESTKIT_UNSET=1 to skip")]
    fn a_missing_service_without_a_skip_asked_fails_with_the_hint() {
        or_fail("FLOWGATE_SKIP_TESTKIT_UNSET", "a service is missing", "Start it");
    }
}
