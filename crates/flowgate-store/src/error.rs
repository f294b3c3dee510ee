//! What can go wrong talking to the artifact store, as sentences that name the key
//! and the (secret-free) store URL, so a failed upload says exactly where it failed.

use std::path::PathBuf;

/// The outcome of a create-if-absent write. Both are success: the store is
/// content-addressed, so an object already present is the object we meant to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    Created,
    AlreadyPresent,
}

impl Upload {
    pub fn is_created(self) -> bool {
        self == Self::Created
    }
}

/// Errors of the artifact store. URLs in messages are always redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("`{url}` is not a usable artifact store URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("The artifact store directory `{url}` does not exist")]
    Missing { url: String },
    #[error("Failed to open the artifact store `{url}`")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("`{key}` is not in the artifact store `{url}`")]
    NotFound { key: String, url: String },
    #[error("Failed to {op} `{key}` in the artifact store `{url}`")]
    Io {
        op: &'static str,
        key: String,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("Failed to {op} `{}`", path.display())]
    Local {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{key}` is not a key of an object in the artifact store `{url}`")]
    InvalidKey { key: String, url: String },
    #[error("`{key}` in the artifact store `{url}` is corrupt: {reason}")]
    Corrupt { key: String, url: String, reason: String },
}

impl StoreError {
    pub(crate) fn local(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Local { op, path, source }
    }
}
