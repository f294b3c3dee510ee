//! Stat'ing the selected files into a [`Plan`] (trusting the stat index for files
//! whose stat is unchanged), then either hashing what the index could not vouch
//! for ([`scan`]) or writing the archive in the same pass that hashes it ([`Plan::write`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flowgate_core::{Digest, Manifest, ManifestEntry};
use md5::Digest as _;
use rayon::prelude::*;

use rustix::fs::{FileType, RawMode};

use crate::compress::Packed;
use crate::dirs::Dirs;
use crate::index::{FileStat, Hashed, Index};
use crate::options::{PackOptions, PackProgress};
use crate::pack::write_slots;
use crate::read::Reader;
use crate::{paths, BundleError};

/// A file whose stat changed this recently before the scan began is hashed again
/// next time: its timestamp could still be shared with a later edit (git's "racy
/// clean" problem; 2 s covers the coarsest common timestamp granularity).
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// Bumped whenever the archive layout changes, so remembered digests are forgotten.
const FORMAT_KEY: &[u8] = b"flowgate-bundle-tar-zstd3-frames1m-by-path-v3\0";

#[derive(Debug, Clone)]
pub struct Scan {
    pub manifest: Manifest,
    /// Digest of the archive last written for exactly this manifest, remembered in the index.
    pub known_digest: Option<Digest>,
    /// How many files had their content read (the rest were vouched for by the index).
    pub hashed: u64,
}

/// One selected file as stat'ed: what the index knows of it, if it still applies.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub path: String,
    pub stat: FileStat,
    pub executable: bool,
    pub known: Option<Hashed>,
}

/// What one file turned out to be once read: its hashes, and whether the index may keep them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub size: u64,
    pub hashed: Hashed,
    pub cacheable: bool,
    pub read: bool,
}

/// The selected files stat'ed, sorted by path. When the index vouches for every
/// one, the manifest (and maybe the archive digest) is known without reading anything.
#[derive(Debug)]
pub struct Plan {
    root: PathBuf,
    dirs: Dirs,
    slots: Vec<Slot>,
    /// The slots hold paths only: with nothing in the index to vouch for, the
    /// files are stat'ed as they are written (see [`crate::read`]).
    stat_deferred: bool,
    index: Index,
    started_ns: i64,
    opts: PackOptions,
}

/// Stats every selected file (relative `/`-separated paths under `root`) and looks
/// it up in the index. With an empty index (a first build) nothing could be
/// vouched for, so the stat is left to [`Plan::write`], which then starts at once.
pub fn plan(root: &Path, files: &[String], opts: &PackOptions) -> Result<Plan, BundleError> {
    plan_with(root, files, opts, true)
}

fn plan_with(root: &Path, files: &[String], opts: &PackOptions, may_defer: bool) -> Result<Plan, BundleError> {
    let _span = tracing::info_span!("plan", root = %root.display(), files = files.len()).entered();
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
    let dirs = Dirs::open(root, &selected, opts.skip_missing)?;
    let started_ns = now_ns();
    let index = opts.index_path.as_deref().map(Index::load).unwrap_or_default();
    if may_defer && index.files.is_empty() {
        let slots = selected
            .iter()
            .map(|path| Slot { path: path.to_string(), stat: FileStat::default(), executable: false, known: None })
            .collect();
        tracing::debug!(files = files.len(), "planned without stats: the index knows no file");
        let opts = opts.clone();
        return Ok(Plan { root: root.to_path_buf(), dirs, slots, stat_deferred: true, index, started_ns, opts });
    }
    let done = AtomicU64::new(0);
    let total = selected.len() as u64;
    let slots: Vec<Option<Slot>> = selected
        .par_iter()
        .map(|path| {
            let slot = stat_one(root, &dirs, path, &index, opts);
            opts.report(PackProgress::Scanned { done: done.fetch_add(1, Ordering::Relaxed) + 1, total });
            slot
        })
        .collect::<Result<_, _>>()?;
    let slots: Vec<Slot> = slots.into_iter().flatten().collect();
    let total_bytes: u64 = slots.iter().map(|s| s.stat.size).sum();
    if total_bytes > limits.max_total_bytes {
        let detail =
            format!("the files add up to {total_bytes} bytes, more than the limit of {}", limits.max_total_bytes);
        return Err(BundleError::TooLarge { detail });
    }
    let opts = opts.clone();
    let plan = Plan { root: root.to_path_buf(), dirs, slots, stat_deferred: false, index, started_ns, opts };
    tracing::debug!(files = plan.slots.len(), unknown = plan.unknown(), "planned");
    Ok(plan)
}

/// Hashes every selected file, reusing the stat index so unchanged files are not read again.
pub fn scan(root: &Path, files: &[String], opts: &PackOptions) -> Result<Scan, BundleError> {
    let _span = tracing::info_span!("scan", root = %root.display(), files = files.len()).entered();
    let plan = plan_with(root, files, opts, false)?;
    let outcomes: Vec<Outcome> = plan
        .slots
        .par_iter()
        .map(|slot| match slot.known {
            Some(known) => Ok(Outcome { size: slot.stat.size, hashed: known, cacheable: true, read: false }),
            None => hash_file(&plan.dirs, &plan.root, slot, plan.started_ns, &plan.opts),
        })
        .collect::<Result<_, _>>()?;
    let (manifest, hashed) = plan.finish(&plan.slots, &outcomes, None);
    let known_digest = plan.known_digest(&manifest);
    tracing::debug!(hashed, known = known_digest.is_some(), "scanned");
    Ok(Scan { manifest, known_digest, hashed })
}

impl Plan {
    /// How many files the index could not vouch for (they will be read and hashed).
    pub fn unknown(&self) -> u64 {
        self.slots.iter().filter(|s| s.known.is_none()).count() as u64
    }

    /// The manifest, when the index vouched for every file.
    pub fn known_manifest(&self) -> Option<Manifest> {
        let files =
            self.slots.iter().map(|s| Some(entry(&s.path, s.stat.size, s.known.as_ref()?, s.executable, &self.opts)));
        files.collect::<Option<Vec<_>>>().map(|files| Manifest { files })
    }

    /// How many files the plan holds: the selected files that exist, once stat'ed
    /// (a plan that left the stat to [`Plan::write`] counts every selected file).
    pub fn file_count(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The digest of the archive last written for these files, when the index
    /// vouched for every one; the same as [`Plan::known_digest`] of
    /// [`Plan::known_manifest`], without building the manifest.
    pub fn known_archive(&self) -> Option<Digest> {
        if self.opts.frame_target.is_some() {
            return None;
        }
        let mut key = KeyHasher::new();
        for slot in &self.slots {
            key.add(&slot.path, slot.stat.size, &slot.known.as_ref()?.blake3, slot.executable);
        }
        self.index.known_archive(&key.finish())
    }

    /// The digest of the archive last written for `manifest` (see [`Plan::known_manifest`]).
    pub fn known_digest(&self, manifest: &Manifest) -> Option<Digest> {
        if self.opts.frame_target.is_some() {
            return None;
        }
        self.index.known_archive(&manifest_key(manifest))
    }

    /// Writes the archive into `out` (an empty temp file), reading each file once:
    /// files the index vouched for are checked against it, the others are hashed on
    /// the way into the archive. Returns the manifest, how many files were hashed,
    /// and the archive; the index learns both.
    pub fn write(self, out: &mut File) -> Result<(Scan, Packed), BundleError> {
        let reader = Reader {
            dirs: &self.dirs,
            root: &self.root,
            slots: &self.slots,
            stat_deferred: self.stat_deferred,
            started_ns: self.started_ns,
            opts: &self.opts,
        };
        let (slots, outcomes, packed) = write_slots(&reader, out)?;
        let (manifest, hashed) = self.finish(&slots, &outcomes, Some(packed.digest));
        Ok((Scan { manifest, known_digest: Some(packed.digest), hashed }, packed))
    }

    /// The manifest of the outcomes; saves the index when it learned something.
    fn finish(&self, slots: &[Slot], outcomes: &[Outcome], archive: Option<Digest>) -> (Manifest, u64) {
        let files: Vec<ManifestEntry> = slots
            .iter()
            .zip(outcomes)
            .map(|(slot, o)| entry(&slot.path, o.size, &o.hashed, slot.executable, &self.opts))
            .collect();
        let manifest = Manifest { files };
        let hashed = outcomes.iter().filter(|o| o.read).count() as u64;
        let Some(path) = &self.opts.index_path else { return (manifest, hashed) };
        let kept = slots.iter().zip(outcomes).filter(|(_, o)| o.cacheable);
        let learned = kept.clone().any(|(slot, _)| slot.known.is_none());
        let mut next = Index { files: Default::default(), archives: self.index.archives.clone() };
        next.files.reserve(outcomes.len());
        for (slot, o) in kept {
            // Slots are sorted by path, so the index stays sorted.
            next.files.push((slot.path.clone(), o.hashed));
        }
        if let Some(digest) = archive.filter(|_| self.opts.frame_target.is_none()) {
            next.remember_archive(manifest_key(&manifest), digest);
        }
        if learned || archive.is_some() || next.files.len() != self.index.files.len() {
            next.save(path);
        }
        (manifest, hashed)
    }
}

/// One file's stat and what the index knows of it; `None` for a missing file when
/// the options say to leave those out.
pub(crate) fn stat_one(
    root: &Path,
    dirs: &Dirs,
    path: &str,
    index: &Index,
    opts: &PackOptions,
) -> Result<Option<Slot>, BundleError> {
    let meta = match dirs.stat(path) {
        Ok(meta) => meta,
        Err(e) if opts.skip_missing && is_missing(&e) => return Ok(None),
        Err(e) => return Err(BundleError::io("read the metadata of", &root.join(path))(e)),
    };
    let kind = FileType::from_raw_mode(meta.st_mode as RawMode);
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
    let stat = FileStat::of_raw(&meta);
    // An entry hashed when its MD5 was not wanted cannot vouch for one that is.
    let known = index.get(path).filter(|h| h.stat == stat && (h.md5 != NO_MD5 || !opts.keeps_md5(path))).copied();
    if known.is_none() {
        check_file_size(path, stat.size, opts)?;
    }
    Ok(Some(Slot { path: path.to_string(), stat, executable: meta.st_mode & 0o100 != 0, known }))
}

/// Reads and hashes one file the index did not vouch for.
fn hash_file(
    dirs: &Dirs,
    root: &Path,
    slot: &Slot,
    started_ns: i64,
    opts: &PackOptions,
) -> Result<Outcome, BundleError> {
    let full = root.join(&slot.path);
    let mut file = dirs.open_file(&slot.path).map_err(BundleError::io("open", &full))?;
    let mut hasher = FileHasher::new(opts.keeps_md5(&slot.path));
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BundleError::io("read", &full)(e)),
        };
        hasher.update(&buf[..n]);
    }
    check_file_size(&slot.path, hasher.size, opts)?;
    hasher.finish(slot, &file, started_ns)
}

/// The MD5 of a file hashed without one (in the index; never the MD5 of real bytes in practice).
pub(crate) const NO_MD5: [u8; 16] = [0; 16];

/// BLAKE3 (and MD5 for the files that keep one) of a file's bytes as they go by.
pub(crate) struct FileHasher {
    blake: blake3::Hasher,
    md5: Option<md5::Md5>,
    pub size: u64,
}

impl FileHasher {
    pub fn new(with_md5: bool) -> Self {
        Self { blake: blake3::Hasher::new(), md5: with_md5.then(md5::Md5::new), size: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.blake.update(data);
        if let Some(md5) = &mut self.md5 {
            md5.update(data);
        }
        self.size += data.len() as u64;
    }

    /// The outcome for `slot`, cacheable when the file held still while it was read
    /// and its stat is older than the racy window.
    pub fn finish(self, slot: &Slot, file: &File, started_ns: i64) -> Result<Outcome, BundleError> {
        let after = file.metadata().map_err(BundleError::io("read the metadata of", &slot.path))?;
        let stat = slot.stat;
        let steady = FileStat::of(&after) == stat && self.size == stat.size;
        let settled = stat.mtime_ns.max(stat.ctime_ns).saturating_add(RACY_WINDOW_NS) < started_ns;
        let md5 = self.md5.map(|m| m.finalize().into()).unwrap_or_default();
        let hashed = Hashed { stat, blake3: Digest::from_bytes(*self.blake.finalize().as_bytes()), md5 };
        Ok(Outcome { size: self.size, hashed, cacheable: steady && settled, read: true })
    }
}

pub(crate) fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

pub(crate) fn check_file_size(path: &str, size: u64, opts: &PackOptions) -> Result<(), BundleError> {
    let max = opts.limits.max_file_bytes;
    if size > max {
        return Err(BundleError::TooLarge {
            detail: format!("`{path}` is {size} bytes, more than the limit of {max}"),
        });
    }
    Ok(())
}

fn entry(path: &str, size: u64, h: &Hashed, executable: bool, opts: &PackOptions) -> ManifestEntry {
    let md5 = (opts.keeps_md5(path) && h.md5 != NO_MD5).then(|| hex::encode(h.md5));
    ManifestEntry { path: path.to_string(), size, blake3: h.blake3, md5, executable }
}

/// What identifies a manifest for the "archive already written" memory: paths,
/// sizes, hashes and exec bits under the archive format version.
pub(crate) fn manifest_key(manifest: &Manifest) -> [u8; 32] {
    let mut key = KeyHasher::new();
    for f in &manifest.files {
        key.add(&f.path, f.size, &f.blake3, f.executable);
    }
    key.finish()
}

/// Builds a [`manifest_key`] one file at a time, so a plan can compute it without a manifest.
struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    fn new() -> Self {
        let mut h = blake3::Hasher::new();
        h.update(FORMAT_KEY);
        Self(h)
    }

    fn add(&mut self, path: &str, size: u64, blake3: &Digest, executable: bool) {
        let h = &mut self.0;
        h.update(&(path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update(&size.to_le_bytes());
        h.update(blake3.as_bytes());
        h.update(&[executable as u8]);
    }

    fn finish(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
