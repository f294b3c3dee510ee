//! Knobs of packing and unpacking: the stat index location, progress reporting and
//! the size limits both sides enforce, so no bundle is packed that cannot be installed.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flowgate_core::manifest::keeps_md5;

/// Ceilings on a bundle; packing and installing enforce the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: u64,
    pub max_total_bytes: u64,
    pub max_file_bytes: u64,
    pub max_path_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_entries: 200_000, max_total_bytes: 8 << 30, max_file_bytes: 4 << 30, max_path_len: 4096 }
    }
}

/// Where packing is, reported to an optional callback (called from worker threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackProgress {
    /// `done` of `total` files stat'ed (and hashed when the index could not vouch for them).
    Scanned { done: u64, total: u64 },
    /// `done` of `total` files written into the archive.
    Written { done: u64, total: u64 },
}

pub type ProgressFn = Arc<dyn Fn(PackProgress) + Send + Sync>;

#[derive(Clone, Default)]
pub struct PackOptions {
    /// The stat index (path -> stat -> hashes, manifest -> archive digest); `None` hashes everything.
    pub index_path: Option<PathBuf>,
    pub progress: Option<ProgressFn>,
    pub limits: Limits,
    /// Leave out selected files that do not exist (deleted in a dirty tree) instead
    /// of failing on them; the caller then need not stat every file first.
    pub skip_missing: bool,
    /// The files whose MD5 the manifest keeps (the flows' entrypoints, for `which`);
    /// `None` keeps one for every `*.py` file. MD5 is a second pass over every byte
    /// it covers, so a build hashes only the files that need one.
    pub md5_only_for: Option<Arc<BTreeSet<String>>>,
    /// Set to stop packing early: a caller that packs while it still checks
    /// whether it may build at all sets it when the answer is no.
    pub cancel: Option<Arc<AtomicBool>>,
    /// The mean size of a frame of small files, for measuring others than the
    /// format's ([`crate::FRAME_TARGET`]); anything else packs archives no
    /// build records (the stat index remembers none of them).
    pub frame_target: Option<u64>,
}

impl PackOptions {
    /// Whether the manifest entry of `path` carries an MD5.
    pub(crate) fn keeps_md5(&self, path: &str) -> bool {
        match &self.md5_only_for {
            Some(paths) => paths.contains(path),
            None => keeps_md5(path),
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    pub(crate) fn report(&self, progress: PackProgress) {
        if let Some(callback) = &self.progress {
            callback(progress);
        }
    }
}

impl fmt::Debug for PackOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackOptions")
            .field("index_path", &self.index_path)
            .field("progress", &self.progress.as_ref().map(|_| "<callback>"))
            .field("limits", &self.limits)
            .field("skip_missing", &self.skip_missing)
            .field("md5_only_for", &self.md5_only_for)
            .field("cancel", &self.cancel)
            .field("frame_target", &self.frame_target)
            .finish()
    }
}
