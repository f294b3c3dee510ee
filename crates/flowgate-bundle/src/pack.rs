//! Writing the deterministic archive: files read (and verified or hashed) in
//! parallel on a reader thread ([`crate::read`]), framed as tar in path order,
//! compressed by zstd's worker threads, hashed as the bytes leave, so the digest is
//! known the moment writing ends.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use flowgate_core::{Digest, Manifest};

use crate::dirs::Dirs;
use crate::index::{FileStat, Hashed, Index};
use crate::options::{PackOptions, PackProgress};
use crate::read::{Piece, Reader};
use crate::scan::{check_file_size, manifest_key, FileHasher, Outcome, Slot, NO_MD5};
use crate::tarfmt::{file_header, padding, BLOCK};
use crate::{paths, BundleError};

/// zstd level of every bundle; part of the format (changing it changes digests).
pub const ZSTD_LEVEL: i32 = 3;
/// Padding source: at most a block's worth is ever needed.
const ZEROS: [u8; BLOCK as usize] = [0; BLOCK as usize];
/// The finished part of the archive is handed to the kernel for writeback every
/// this many bytes, so the store's final sync waits for the tail only.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// The archive just written: its address and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub digest: Digest,
    pub size: u64,
}

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
    if let Some(path) = &opts.index_path {
        let mut index = Index::load(path);
        index.remember_archive(manifest_key(manifest), packed.digest);
        index.save(path);
    }
    Ok(packed)
}

/// Writes the archive of the reader's slots (sorted by path), reading each file
/// once: a thread reads and hashes batches of small files (in parallel) while this
/// one feeds them to zstd, whose own workers compress, and streams large files.
/// Vouched files are checked against their known hash; the others are hashed on
/// the way. Returns the slots as stat'ed, with what each file turned out to be.
pub(crate) fn write_slots(
    reader: &Reader<'_>,
    out: &mut File,
) -> Result<(Vec<Slot>, Vec<Outcome>, Packed), BundleError> {
    let _span = tracing::info_span!("write_slots", root = %reader.root.display(), files = reader.slots.len()).entered();
    let sink = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, out),
        hasher: blake3::Hasher::new(),
        written: 0,
        kicked: 0,
    };
    let mut encoder = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL).map_err(BundleError::archive("start"))?;
    // zstd's streaming multithreaded output does not depend on the worker count
    // (as long as it is at least 1); the `zstd_workers_do_not_change_the_bytes` test pins that.
    encoder.multithread(zstd_workers()).map_err(BundleError::archive("configure"))?;
    encoder.include_checksum(true).map_err(BundleError::archive("configure"))?;

    let total = reader.slots.len() as u64;
    let mut slots = Vec::with_capacity(reader.slots.len());
    let mut outcomes = Vec::with_capacity(reader.slots.len());
    let mut header = Vec::with_capacity(3 * BLOCK as usize);
    std::thread::scope(|scope| -> Result<(), BundleError> {
        let (tx, pieces) = std::sync::mpsc::sync_channel::<Result<Piece, BundleError>>(2);
        // Written buffers go back to the reader, which reuses them.
        let (give_back, written) = std::sync::mpsc::channel::<Vec<u8>>();
        scope.spawn(move || reader.run(tx, written));
        for piece in pieces {
            if reader.opts.cancelled() {
                return Err(BundleError::Cancelled);
            }
            match piece? {
                Piece::Small { slots: read, batch } => {
                    encoder.write_all(&batch.tar).map_err(BundleError::archive("compress"))?;
                    outcomes.extend(batch.outcomes);
                    slots.extend(read);
                    let _ = give_back.send(batch.tar);
                }
                Piece::Large(slot) => {
                    outcomes.push(write_large(&mut encoder, reader, &slot, &mut header)?);
                    slots.push(slot);
                }
            }
            reader.opts.report(PackProgress::Written { done: slots.len() as u64, total });
        }
        Ok(())
    })?;
    encoder.write_all(&[0; 2 * BLOCK as usize]).map_err(BundleError::archive("compress"))?;
    let mut sink = encoder.finish().map_err(BundleError::archive("finish"))?;
    sink.inner.flush().map_err(BundleError::archive("write"))?;
    let packed = Packed { digest: Digest::from_bytes(*sink.hasher.finalize().as_bytes()), size: sink.written };
    tracing::info!(digest = %packed.digest, size = packed.size, "archive written");
    Ok((slots, outcomes, packed))
}

/// How many zstd workers: every core, capped (more rarely helps at level 3).
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8) as u32
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

/// Streams one large file into the archive, hashing as it goes.
fn write_large(
    out: &mut impl Write,
    reader: &Reader<'_>,
    slot: &Slot,
    header: &mut Vec<u8>,
) -> Result<Outcome, BundleError> {
    let (opts, started_ns) = (reader.opts, reader.started_ns);
    let full = reader.root.join(&slot.path);
    let file = reader.dirs.open_file(&slot.path).map_err(BundleError::io("open", &full))?;
    let size = slot.stat.size;
    check_file_size(&slot.path, size, opts)?;
    header.clear();
    file_header(&slot.path, size, slot.executable, header);
    out.write_all(header).map_err(BundleError::archive("compress"))?;
    let mut reader = (&file).take(size + 1);
    let mut hasher = FileHasher::new(opts.keeps_md5(&slot.path));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BundleError::io("read", &full)(e)),
        };
        if hasher.size + n as u64 > size {
            return Err(BundleError::Changed { path: slot.path.clone() });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(BundleError::archive("compress"))?;
    }
    if hasher.size != size {
        return Err(BundleError::Changed { path: slot.path.clone() });
    }
    let outcome = hasher.finish(slot, &file, started_ns)?;
    out.write_all(&ZEROS[..padding(size)]).map_err(BundleError::archive("compress"))?;
    match slot.known {
        Some(known) if known.blake3 != outcome.hashed.blake3 => Err(BundleError::Changed { path: slot.path.clone() }),
        Some(known) => Ok(Outcome { size, hashed: known, cacheable: true, read: false }),
        None => Ok(outcome),
    }
}

/// Hashes and counts the compressed bytes on their way to the file, and starts
/// their writeback as they accumulate.
struct HashingWriter<'f> {
    inner: BufWriter<&'f mut File>,
    hasher: blake3::Hasher,
    written: u64,
    /// Bytes before this offset have been handed to the kernel for writeback.
    kicked: u64,
}

impl HashingWriter<'_> {
    /// Starts writeback (without waiting for it) of what reached the file since
    /// the last kick. `POSIX_FADV_DONTNEED` on Linux writes dirty pages back
    /// asynchronously and keeps the pages still under writeback cached; it is
    /// advice, so a failure changes nothing but the time of the final sync.
    fn kick_writeback(&mut self) {
        let in_file = self.written - self.inner.buffer().len() as u64;
        if in_file - self.kicked < WRITEBACK_EVERY {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let len = std::num::NonZeroU64::new(in_file - self.kicked);
            let _ = rustix::fs::fadvise(&**self.inner.get_ref(), self.kicked, len, rustix::fs::Advice::DontNeed);
        }
        self.kicked = in_file;
    }
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        self.kick_writeback();
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
