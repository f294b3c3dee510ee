//! The one error type of this crate: every message is a sentence naming the file,
//! entry or bundle it is about, so a caller can print it as is.

use std::io;
use std::path::PathBuf;

use flowgate_core::Digest;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file-system operation on a local path failed.
    #[error("Failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Compressing into, or reading from, the archive stream failed.
    #[error("Failed to {action} the bundle archive")]
    Archive {
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// A path handed to `scan` (or found in a manifest) cannot be a bundle path.
    #[error("Invalid bundle path `{path}`: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    /// A selected file is not something a bundle can hold (directory, symlink, device).
    #[error("Cannot bundle `{path}`: {reason}")]
    Unsupported { path: String, reason: String },

    /// A file differs from its manifest entry while the archive is written.
    #[error("File `{path}` changed while the bundle was being built; build again")]
    Changed { path: String },

    /// The selection is larger than the limits allow.
    #[error("The bundle is too large: {detail}")]
    TooLarge { detail: String },

    /// The archive's bytes do not hash to the digest it was asked for under.
    #[error("Bundle `{}` is damaged or not the one asked for: its digest is `{actual}`", expected.short())]
    DigestMismatch { expected: Digest, actual: Digest },

    /// An entry of a bundle was refused by the safety rules or is malformed.
    #[error("Refused entry `{entry}` in bundle {bundle}: {reason}")]
    Refused { entry: String, bundle: String, reason: String },

    /// The archive is malformed outside any entry (before the first, after the last).
    #[error("Bundle {bundle} is malformed: {reason}")]
    Malformed { bundle: String, reason: String },

    /// The caller cancelled packing ([`crate::PackOptions::cancel`]).
    #[error("Packing was cancelled")]
    Cancelled,

    /// A manifest document could not be read.
    #[error("Failed to parse a bundle manifest: {reason}")]
    Manifest {
        reason: String,
        #[source]
        source: Option<serde_json::Error>,
    },
}

impl BundleError {
    pub(crate) fn archive(action: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Archive { action, source }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}
