//! Bundles: the flow code of a build as a deterministic `tar` + zstd archive
//! addressed by the BLAKE3 of its bytes. Packing hashes files (reusing a stat
//! index) and writes the archive; installing a file verifies the digest before
//! anything is parsed, installing from a stream verifies it before the directory
//! is published, and both refuse unsafe entries by name and rename a complete
//! directory into the pull cache. No storage I/O here: callers move archives and
//! pass local paths or readers.
//!
//! ```no_run
//! # fn main() -> Result<(), flowgate_bundle::BundleError> {
//! use flowgate_bundle::{scan, write_archive, Cache, Limits, PackOptions};
//! let root = std::path::Path::new("project");
//! let opts = PackOptions::default();
//! let scan = scan(root, &["flows/etl.py".to_string()], &opts)?;
//! let mut out = tempfile::tempfile().unwrap();
//! let packed = write_archive(root, &scan.manifest, &mut out, &opts)?;
//! # let archive = std::path::Path::new("bundle.tar.zst");
//! let dir = Cache::new("cache".into()).install(&packed.digest, archive, &Limits::default())?;
//! # Ok(()) }
//! ```

mod cache;
mod compress;
mod dirs;
mod error;
mod frames;
mod index;
mod inspect;
mod json;
mod options;
mod pack;
mod paths;
mod read;
mod scan;
mod tarfmt;
mod walk;

pub use cache::Cache;
pub use compress::{Packed, ZSTD_LEVEL};
pub use error::BundleError;
pub use frames::{frames_of, FrameRef};
pub use inspect::{md5_hex_of, read_manifest};
pub use json::{manifest_from_json, manifest_to_json};
pub use options::{Limits, PackOptions, PackProgress, ProgressFn};
pub use pack::write_archive;
pub use read::FRAME_TARGET;
pub use scan::{plan, scan, Plan, Scan};
