//! Hashing the selected files into a manifest, trusting the stat index for files
//! whose stat is unchanged so that rescanning an unchanged tree reads no content.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flowgate_core::{Digest, Manifest, ManifestEntry};
use md5::Digest as _;
use rayon::prelude::*;

use crate::index::{FileStat, Hashed, Index};
use crate::options::{PackOptions, PackProgress};
use crate::{paths, BundleError};

/// A file whose stat changed this recently before the scan began is hashed again
/// next time: its timestamp could still be shared with a later edit (git's "racy
/// clean" problem; 2 s covers the coarsest common timestamp granularity).
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// Bumped whenever the archive layout changes, so remembered digests are forgotten.
const FORMAT_KEY: &[u8] = b"flowgate-bundle-tar-zstd3-v1\0";

#[derive(Debug, Clone)]
pub struct Scan {
    pub manifest: Manifest,
    /// Digest of the archive last written for exactly this manifest, remembered in the index.
    pub known_digest: Option<Digest>,
    /// How many files had their content read (the rest were vouched for by the index).
    pub hashed: u64,
}

/// Hashes every selected file (relative `/`-separated paths under `root`), reusing the
/// stat index so unchanged files are not read again.
pub fn scan(root: &Path, files: &[String], opts: &PackOptions) -> Result<Scan, BundleError> {
    let _span = tracing::info_span!("scan", root = %root.display(), files = files.len()).entered();
    let limits = opts.limits;
    if files.len() as u64 > limits.max_entries {
        let detail = format!("{} files are selected, more than the limit of {}", files.len(), limits.max_entries);
        return Err(BundleError::TooLarge { detail });
    }
    let mut selected: Vec<&str> = files.iter().map(String::as_str).collect();
    selected.sort_unstable();
    if let Some(pair) = selected.windows(2).find(|w| w[0] == w[1]) {
        return Err(BundleError::InvalidPath { path: pair[0].to_string(), reason: "the path is selected twice" });
    }
    for path in &selected {
        paths::check(path, limits.max_path_len)
            .map_err(|reason| BundleError::InvalidPath { path: path.to_string(), reason })?;
    }

    check_ancestors(root, &selected)?;
    let started_ns = now_ns();
    let index = opts.index_path.as_deref().map(Index::load).unwrap_or_default();
    let done = AtomicU64::new(0);
    let total = selected.len() as u64;
    let scanned: Vec<(ManifestEntry, Option<Hashed>, bool)> = selected
        .par_iter()
        .map(|path| {
            let result = scan_one(root, path, &index, opts, started_ns);
            opts.report(PackProgress::Scanned { done: done.fetch_add(1, Ordering::Relaxed) + 1, total });
            result
        })
        .collect::<Result<_, _>>()?;

    let total_bytes: u64 = scanned.iter().map(|(e, _, _)| e.size).sum();
    if total_bytes > limits.max_total_bytes {
        let detail =
            format!("the files add up to {total_bytes} bytes, more than the limit of {}", limits.max_total_bytes);
        return Err(BundleError::TooLarge { detail });
    }
    let hashed = scanned.iter().filter(|(_, _, hashed)| *hashed).count() as u64;
    let mut next = Index { files: Default::default(), archives: index.archives.clone() };
    let mut entries = Vec::with_capacity(scanned.len());
    for (entry, cacheable, _) in scanned {
        if let Some(h) = cacheable {
            next.files.insert(entry.path.clone(), h);
        }
        entries.push(entry);
    }
    let manifest = Manifest { files: entries };
    if let Some(path) = &opts.index_path {
        if next.files != index.files {
            next.save(path);
        }
    }
    let known_digest = index.known_archive(&manifest_key(&manifest));
    tracing::debug!(hashed, known = known_digest.is_some(), "scanned");
    Ok(Scan { manifest, known_digest, hashed })
}

/// One file: its manifest entry, what the index may keep about it, and whether it was read.
fn scan_one(
    root: &Path,
    path: &str,
    index: &Index,
    opts: &PackOptions,
    started_ns: i64,
) -> Result<(ManifestEntry, Option<Hashed>, bool), BundleError> {
    let full = root.join(path);
    let meta = fs::symlink_metadata(&full).map_err(BundleError::io("read the metadata of", &full))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let reason = if kind.is_symlink() {
            "it is a symbolic link; bundles hold regular files only"
        } else if kind.is_dir() {
            "it is a directory; select the files inside it"
        } else {
            "it is not a regular file"
        };
        return Err(BundleError::Unsupported { path: path.to_string(), reason: reason.to_string() });
    }
    let executable = meta.mode() & 0o100 != 0;
    let stat = FileStat::of(&meta);
    if let Some(known) = index.files.get(path).filter(|h| h.stat == stat) {
        return Ok((entry(path, stat.size, known, executable), Some(*known), false));
    }
    check_file_size(path, stat.size, opts)?;
    let mut file = File::open(&full).map_err(BundleError::io("open", &full))?;
    let (size, blake3, md5) = hash_reader(&mut file).map_err(BundleError::io("read", &full))?;
    check_file_size(path, size, opts)?;
    let after = file.metadata().map_err(BundleError::io("read the metadata of", &full))?;
    let hashed = Hashed { stat, blake3, md5 };
    let steady = FileStat::of(&after) == stat && size == stat.size;
    let settled = stat.mtime_ns.max(stat.ctime_ns).saturating_add(RACY_WINDOW_NS) < started_ns;
    let cacheable = (steady && settled).then_some(hashed);
    Ok((entry(path, size, &hashed, executable), cacheable, true))
}

/// Every directory on the way to a selected file must be a real directory: a
/// symlinked directory could lead outside `root`. Each is stat'ed once.
fn check_ancestors(root: &Path, selected: &[&str]) -> Result<(), BundleError> {
    let mut dirs: Vec<&str> = selected.iter().flat_map(|p| p.match_indices('/').map(move |(i, _)| &p[..i])).collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs.par_iter().try_for_each(|dir| {
        let full = root.join(dir);
        let meta = fs::symlink_metadata(&full).map_err(BundleError::io("read the metadata of", &full))?;
        if meta.file_type().is_dir() {
            return Ok(());
        }
        let reason = "it is on the way to a selected file but is not a directory (a symbolic link?)";
        Err(BundleError::Unsupported { path: dir.to_string(), reason: reason.to_string() })
    })
}

fn check_file_size(path: &str, size: u64, opts: &PackOptions) -> Result<(), BundleError> {
    let max = opts.limits.max_file_bytes;
    if size > max {
        return Err(BundleError::TooLarge {
            detail: format!("`{path}` is {size} bytes, more than the limit of {max}"),
        });
    }
    Ok(())
}

fn entry(path: &str, size: u64, h: &Hashed, executable: bool) -> ManifestEntry {
    ManifestEntry { path: path.to_string(), size, blake3: h.blake3, md5: hex::encode(h.md5), executable }
}

/// Size, BLAKE3 and MD5 of everything `reader` yields.
pub(crate) fn hash_reader(reader: &mut impl Read) -> std::io::Result<(u64, Digest, [u8; 16])> {
    let mut blake = blake3::Hasher::new();
    let mut md5 = md5::Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        blake.update(&buf[..n]);
        md5.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, Digest::from_bytes(*blake.finalize().as_bytes()), md5.finalize().into()))
}

/// What identifies a manifest for the "archive already written" memory: paths,
/// sizes, hashes and exec bits under the archive format version.
pub(crate) fn manifest_key(manifest: &Manifest) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(FORMAT_KEY);
    for f in &manifest.files {
        h.update(&(f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update(&f.size.to_le_bytes());
        h.update(f.blake3.as_bytes());
        h.update(&[f.executable as u8]);
    }
    *h.finalize().as_bytes()
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
