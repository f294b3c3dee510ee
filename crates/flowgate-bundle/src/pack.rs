//! Writing the deterministic archive: files read (and verified or hashed) in
//! parallel on a reader thread and cut into frames ([`crate::read`]), each frame
//! compressed on rayon's pool and written in order ([`crate::compress`]).

use std::fs::File;
use std::path::Path;

use flowgate_core::Manifest;

use crate::compress::{FrameWriter, Packed};
use crate::dirs::Dirs;
use crate::index::{FileStat, Hashed, Index};
use crate::options::{PackOptions, PackProgress};
use crate::read::{FrameChannel, Reader};
use crate::scan::{manifest_key, Outcome, Slot, NO_MD5};
use crate::tarfmt::BLOCK;
use crate::{paths, BundleError};

/// Writes the deterministic archive of `manifest` into `out` (an empty temp file the
/// caller made), checking that each file still has the hash in the manifest. Returns
/// the digest and size and remembers (manifest -> digest) in the index.
pub fn write_archive(
    root: &Path,
    manifest: &Manifest,
    out: &mut File,
    opts: &PackOptions,
) -> Result<Packed, BundleError> {
    let _span = tracing::info_span!("write_archive", root = %root.display(), files = manifest.files.len()).entered();
    check_manifest(manifest, opts)?;
    let slots: Vec<Slot> = manifest
        .files
        .iter()
        .map(|f| {
            let stat = FileStat { size: f.size, mtime_ns: 0, ctime_ns: 0, ino: 0, dev: 0 };
            let known = Hashed { stat, blake3: f.blake3, md5: NO_MD5 };
            Slot { path: f.path.clone(), stat, executable: f.executable, known: Some(known) }
        })
        .collect();
    let paths: Vec<&str> = slots.iter().map(|s| s.path.as_str()).collect();
    let dirs = Dirs::open(root, &paths, false)?;
    let reader = Reader { dirs: &dirs, root, slots: &slots, stat_deferred: false, started_ns: 0, opts };
    let (_, _, packed) = write_slots(&reader, out)?;
    if let Some(path) = opts.index_path.as_ref().filter(|_| opts.frame_target.is_none()) {
        let mut index = Index::load(path);
        index.remember_archive(manifest_key(manifest), packed.digest);
        index.save(path);
    }
    Ok(packed)
}

/// Writes the archive of the reader's slots (sorted by path), reading each file
/// once: a thread reads and hashes the files frame by frame (small files in
/// parallel) while this one hands each frame to a compressor and writes them in
/// order. Vouched files are checked against their known hash; the others are
/// hashed on the way. Returns the slots as stat'ed, with what each file turned out to be.
pub(crate) fn write_slots(
    reader: &Reader<'_>,
    out: &mut File,
) -> Result<(Vec<Slot>, Vec<Outcome>, Packed), BundleError> {
    let _span = tracing::info_span!("write_slots", root = %reader.root.display(), files = reader.slots.len()).entered();
    let total = reader.slots.len() as u64;
    let mut slots = Vec::with_capacity(reader.slots.len());
    let mut outcomes = Vec::with_capacity(reader.slots.len());
    let packed = std::thread::scope(|scope| -> Result<Packed, BundleError> {
        let (frames, received) = std::sync::mpsc::sync_channel(2);
        let (give_back, returned) = std::sync::mpsc::channel();
        let readers = reading_pool()?;
        scope.spawn(move || readers.install(|| reader.run(FrameChannel { frames, returned })));
        let mut writer = FrameWriter::new(out, give_back);
        for frame in received {
            if reader.opts.cancelled() {
                return Err(BundleError::Cancelled);
            }
            let frame = frame?;
            writer.push(frame.tar)?;
            outcomes.extend(frame.outcomes);
            slots.extend(frame.slots);
            reader.opts.report(PackProgress::Written { done: slots.len() as u64, total });
        }
        writer.finish(&[0; 2 * BLOCK as usize])
    })?;
    tracing::info!(digest = %packed.digest, size = packed.size, "archive written");
    Ok((slots, outcomes, packed))
}

/// The threads that stat, read and hash files: their own pool, with more threads
/// than cores, so a read that waits for the disk leaves the cores to the
/// compressors on rayon's global pool instead of idling one of them.
fn reading_pool() -> Result<rayon::ThreadPool, BundleError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads((2 * cores).clamp(2, 16))
        .thread_name(|i| format!("flowgate-read-{i}"))
        .build()
        .map_err(|e| BundleError::archive("start reading")(std::io::Error::other(e)))
}

fn check_manifest(manifest: &Manifest, opts: &PackOptions) -> Result<(), BundleError> {
    let limits = opts.limits;
    let too_large = |detail: String| Err(BundleError::TooLarge { detail });
    if manifest.files.len() as u64 > limits.max_entries {
        return too_large(format!("{} files, more than the limit of {}", manifest.files.len(), limits.max_entries));
    }
    if manifest.total_size() > limits.max_total_bytes {
        return too_large(format!(
            "{} bytes, more than the limit of {}",
            manifest.total_size(),
            limits.max_total_bytes
        ));
    }
    for (i, f) in manifest.files.iter().enumerate() {
        paths::check(&f.path, limits.max_path_len)
            .map_err(|reason| BundleError::InvalidPath { path: f.path.clone(), reason })?;
        if i > 0 && manifest.files[i - 1].path.as_bytes() >= f.path.as_bytes() {
            return Err(BundleError::InvalidPath {
                path: f.path.clone(),
                reason: "the manifest is not sorted or repeats it",
            });
        }
        if f.size > limits.max_file_bytes {
            return too_large(format!(
                "`{}` is {} bytes, more than the limit of {}",
                f.path, f.size, limits.max_file_bytes
            ));
        }
    }
    Ok(())
}
