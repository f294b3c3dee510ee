//! The ledger's one error type, so callers match on what went wrong (a conflict
//! is exit 4) without ever seeing a database driver's error type.

use std::error::Error as StdError;

use flowgate_core::{BuildId, EnvName, FlowKey, Revision};

use crate::lock::LockHolder;

/// A boxed source error; the driver's type stays private to this crate.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A pointer was not at the revision the caller read: someone else moved it.
    /// Nothing was changed.
    #[error("flow `{flow}` in `{env}` moved concurrently: expected {}, found {}", show(*.expected), show(*.found))]
    Conflict { flow: FlowKey, env: EnvName, expected: Option<Revision>, found: Option<Revision> },
    /// A rollout was started in an env that already has an active one. Nothing
    /// was changed.
    #[error("env `{env}` already has an active rollout `{id}`; see `flowgate rollout status --env {env}`")]
    RolloutActive { env: EnvName, id: String },
    /// A rollout was not at the version the caller read: another driver
    /// transitioned it (or it does not exist). Nothing was changed.
    #[error("rollout `{id}` moved concurrently: expected version {expected}, found {}", show_version(*.found))]
    RolloutMoved { id: String, expected: i64, found: Option<i64> },
    /// A rollout was started under an id an earlier rollout already has (ids are
    /// the caller's; a retry under a fresh id succeeds). Nothing was changed.
    #[error("rollout id `{id}` is already taken by an earlier rollout")]
    RolloutIdTaken { id: String },
    /// `gc` or `fsck` found the maintenance lock held by another run (None:
    /// a run that has just taken it and not yet said who it is). Nothing was changed.
    #[error("The ledger's maintenance lock is held by {}; try again when it ends", show_holder(.holder.as_ref()))]
    MaintenanceLocked { holder: Option<LockHolder> },
    /// Builds were to be deleted that a pointer, a pin, a running rollout or a
    /// synced deployment needs (it changed since the caller looked). Nothing
    /// was deleted.
    #[error("build `{build}` is still needed by {by}; nothing was deleted")]
    BuildInUse { build: BuildId, by: String },
    /// A move named a build that was never recorded. Nothing was changed.
    #[error("build `{build}` is not recorded in the ledger")]
    UnknownBuild { build: BuildId },
    /// The ledger records a project of this name from another repository
    /// (their root commits, or else their remotes, differ): two projects with
    /// one name pointed at one ledger are never merged. Nothing was written.
    #[error(
        "project `{name}` in this ledger belongs to another repository ({}); this checkout is {}. \
         Give this project another `[project] name`",
        show_repository(.recorded_root.as_deref(), .recorded_remote.as_deref()),
        show_repository(.claimed_root.as_deref(), .claimed_remote.as_deref())
    )]
    ProjectCollision {
        name: String,
        recorded_root: Option<String>,
        recorded_remote: Option<String>,
        claimed_root: Option<String>,
        claimed_remote: Option<String>,
    },
    /// An API token was to be created under a name another token has (revoked
    /// ones included: a name is never reused). Nothing was changed.
    #[error("a token named `{name}` exists already; choose another name (names are never reused)")]
    TokenNameTaken { name: String },
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
    /// True for a conflict with a concurrent change (exit code 4): a pointer or
    /// rollout compare-and-swap that lost, an env whose one rollout slot is
    /// taken, a rollout id another start got first, the maintenance lock held
    /// by another run, or a build to delete that something started to need.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            LedgerError::Conflict { .. }
                | LedgerError::RolloutActive { .. }
                | LedgerError::RolloutMoved { .. }
                | LedgerError::RolloutIdTaken { .. }
                | LedgerError::MaintenanceLocked { .. }
                | LedgerError::BuildInUse { .. }
        )
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

fn show_holder(holder: Option<&LockHolder>) -> String {
    match holder {
        Some(h) => h.to_string(),
        None => "another run that is just starting".to_string(),
    }
}

fn show_repository(root: Option<&str>, remote: Option<&str>) -> String {
    format!("root commit {}, remote {}", root.unwrap_or("unknown"), remote.unwrap_or("unknown"))
}

fn show_version(version: Option<i64>) -> String {
    match version {
        Some(v) => format!("version {v}"),
        None => "no such rollout".to_string(),
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

    #[test]
    fn rollout_conflicts_are_conflicts_and_name_the_rollout() {
        let active = LedgerError::RolloutActive { env: "prod".parse().unwrap(), id: "r-1".into() };
        assert!(active.is_conflict());
        assert_eq!(
            active.to_string(),
            "env `prod` already has an active rollout `r-1`; see `flowgate rollout status --env prod`"
        );
        let moved = LedgerError::RolloutMoved { id: "r-1".into(), expected: 2, found: Some(3) };
        assert!(moved.is_conflict());
        assert_eq!(moved.to_string(), "rollout `r-1` moved concurrently: expected version 2, found version 3");
        let gone = LedgerError::RolloutMoved { id: "r-9".into(), expected: 1, found: None };
        assert_eq!(gone.to_string(), "rollout `r-9` moved concurrently: expected version 1, found no such rollout");
        assert!(LedgerError::RolloutIdTaken { id: "r-1".into() }.is_conflict());
        let locked = LedgerError::MaintenanceLocked { holder: None };
        assert!(locked.is_conflict());
        assert_eq!(
            locked.to_string(),
            "The ledger's maintenance lock is held by another run that is just starting; try again when it ends"
        );
        let in_use = LedgerError::BuildInUse {
            build: "aaaa0000000000000001".parse().unwrap(),
            by: "the pointer of `etl` in `prod`".into(),
        };
        assert!(in_use.is_conflict());
        assert_eq!(
            in_use.to_string(),
            "build `aaaa0000000000000001` is still needed by the pointer of `etl` in `prod`; nothing was deleted"
        );
        let collision = LedgerError::ProjectCollision {
            name: "alpha".into(),
            recorded_root: Some("1a2b3c".into()),
            recorded_remote: Some("git@x:a.git".into()),
            claimed_root: Some("9f8e7d".into()),
            claimed_remote: None,
        };
        assert!(!collision.is_conflict());
        assert_eq!(
            collision.to_string(),
            "project `alpha` in this ledger belongs to another repository (root commit 1a2b3c, remote git@x:a.git); \
             this checkout is root commit 9f8e7d, remote unknown. Give this project another `[project] name`"
        );
        assert!(!LedgerError::UnknownBuild { build: "aaaa0000000000000001".parse().unwrap() }.is_conflict());
    }
}
