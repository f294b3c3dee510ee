//! Exit codes (the contract in the README's table) and the error kinds that choose them.

use flowgate_config::ConfigError;
use flowgate_core::{IdError, MoveError};
use flowgate_ledger::LedgerError;
use flowgate_prefect::PrefectError;
use flowgate_store::StoreError;

/// The documented exit codes: 0 success, 1 failure, 2 bad usage or configuration,
/// 3 refused by a gate (or by ownership: a deployment another project owns), 4 conflict with a concurrent change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    Failure = 1,
    Usage = 2,
    Refused = 3,
    Conflict = 4,
}

/// An error the user caused and can fix by changing the command or the config.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A gate refused the move; nothing changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RefusedError(pub String);

/// Someone else changed what this command read; nothing changed (a server's `conflict`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConflictError(pub String);

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The exit status an error maps to: the first error in the chain with a known
/// kind decides, anything else is a plain failure.
pub fn status_of(error: &anyhow::Error) -> Status {
    for cause in error.chain() {
        if cause.is::<UsageError>() || cause.is::<ConfigError>() || cause.is::<IdError>() || cause.is::<MoveError>() {
            return Status::Usage;
        }
        if cause.is::<ConflictError>() {
            return Status::Conflict;
        }
        if cause.is::<RefusedError>() || matches!(cause.downcast_ref(), Some(PrefectError::NotOwned { .. })) {
            return Status::Refused;
        }
        if let Some(ledger) = cause.downcast_ref::<LedgerError>() {
            return match ledger {
                e if e.is_conflict() => Status::Conflict,
                LedgerError::InvalidUrl { .. }
                | LedgerError::Unsupported { .. }
                | LedgerError::TokenNameTaken { .. }
                | LedgerError::UnknownBuild { .. }
                | LedgerError::ProjectCollision { .. } => Status::Usage,
                _ => Status::Failure,
            };
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            // A store URL that is malformed or names no directory is a configuration error.
            return match store {
                StoreError::InvalidUrl { .. } | StoreError::Missing { .. } => Status::Usage,
                _ => Status::Failure,
            };
        }
    }
    Status::Failure
}

/// True when the error is only stdout's reader going away (`flowgate status | head`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
