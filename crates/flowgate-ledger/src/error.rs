//! The ledger's one error type, so callers match on what went wrong (a conflict
//! is exit 4) without ever seeing a database driver's error type.

use std::error::Error as StdError;

use flowgate_core::{BuildId, EnvName, FlowKey, Revision};

/// A boxed source error; the driver's type stays private to this crate.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A pointer was not at the revision the caller read: someone else moved it.
    /// Nothing was changed.
    #[error("flow `{flow}` in `{env}` moved concurrently: expected {}, found {}", show(*.expected), show(*.found))]
    Conflict { flow: FlowKey, env: EnvName, expected: Option<Revision>, found: Option<Revision> },
    /// A move named a build that was never recorded. Nothing was changed.
    #[error("build `{build}` is not recorded in the ledger")]
    UnknownBuild { build: BuildId },
    /// The database could not be opened or is not a ledger database.
    #[error("Failed to open the ledger at `{url}`")]
    Open { url: String, source: BoxError },
    /// The schema could not be brought up to date.
    #[error("Failed to migrate the ledger at `{url}`")]
    Migrate { url: String, source: BoxError },
    /// A stored value could not be read back as what it should be.
    #[error("The ledger holds an invalid value: {what}")]
    Corrupt { what: String },
    /// The database failed while doing `op`.
    #[error("Ledger operation `{op}` failed")]
    Backend { op: &'static str, source: BoxError },
    /// The URL names a database flowgate does not support.
    #[error("Unsupported ledger URL `{url}`: use `sqlite://PATH`, `sqlite::memory:` or `postgres://...`")]
    Unsupported { url: String },
    /// The URL could not be parsed.
    #[error("Invalid ledger URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl LedgerError {
    /// True for a compare-and-swap conflict with a concurrent change (exit code 4).
    pub fn is_conflict(&self) -> bool {
        matches!(self, LedgerError::Conflict { .. })
    }

    pub(crate) fn backend(op: &'static str) -> impl FnOnce(sqlx::Error) -> LedgerError {
        move |e| LedgerError::Backend { op, source: Box::new(e) }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> LedgerError {
        LedgerError::Corrupt { what: what.into() }
    }
}

fn show(revision: Option<Revision>) -> String {
    match revision {
        Some(r) => format!("revision {r}"),
        None => "no release".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_message_names_flow_env_and_revisions() {
        let err = LedgerError::Conflict {
            flow: "etl".parse().unwrap(),
            env: "prod".parse().unwrap(),
            expected: None,
            found: Some(2),
        };
        assert!(err.is_conflict());
        assert_eq!(err.to_string(), "flow `etl` in `prod` moved concurrently: expected no release, found revision 2");
    }
}
