//! Writing the deterministic archive of a manifest: files read and verified in
//! parallel, framed as tar in path order, compressed by zstd's worker threads,
//! hashed as the bytes leave, so the digest is known the moment writing ends.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use flowgate_core::{Digest, Manifest, ManifestEntry};
use rayon::prelude::*;

use crate::index::Index;
use crate::options::{PackOptions, PackProgress};
use crate::scan::manifest_key;
use crate::tarfmt::{file_header, padding, BLOCK};
use crate::{paths, BundleError};

/// zstd level of every bundle; part of the format (changing it changes digests).
pub const ZSTD_LEVEL: i32 = 3;
/// Files up to this size are read whole, in parallel, in batches of this many bytes.
const SMALL_FILE: u64 = 4 << 20;
const BATCH_BYTES: u64 = 32 << 20;
const BATCH_FILES: usize = 512;

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
    let sink =
        HashingWriter { inner: BufWriter::with_capacity(1 << 20, out), hasher: blake3::Hasher::new(), written: 0 };
    let mut encoder = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL).map_err(BundleError::archive("start"))?;
    // zstd's streaming multithreaded output does not depend on the worker count
    // (as long as it is at least 1); the `zstd_workers_do_not_change_the_bytes` test pins that.
    encoder.multithread(zstd_workers()).map_err(BundleError::archive("configure"))?;
    encoder.include_checksum(true).map_err(BundleError::archive("configure"))?;

    let files = &manifest.files;
    let total = files.len() as u64;
    let mut header = Vec::with_capacity(3 * BLOCK as usize);
    let mut start = 0;
    while start < files.len() {
        let end = batch_end(files, start);
        if end == start {
            write_large(&mut encoder, root, &files[start], &mut header)?;
            start += 1;
        } else {
            let contents: Vec<Result<Vec<u8>, BundleError>> =
                files[start..end].par_iter().map(|f| read_verified(root, f)).collect();
            for (entry, data) in files[start..end].iter().zip(contents) {
                let data = data?;
                header.clear();
                file_header(&entry.path, entry.size, entry.executable, &mut header);
                header.extend_from_slice(&data);
                header.resize(header.len() + padding(entry.size), 0);
                encoder.write_all(&header).map_err(BundleError::archive("compress"))?;
            }
            start = end;
        }
        opts.report(PackProgress::Written { done: start as u64, total });
    }
    encoder.write_all(&[0; 2 * BLOCK as usize]).map_err(BundleError::archive("compress"))?;
    let mut sink = encoder.finish().map_err(BundleError::archive("finish"))?;
    sink.inner.flush().map_err(BundleError::archive("write"))?;
    let packed = Packed { digest: Digest::from_bytes(*sink.hasher.finalize().as_bytes()), size: sink.written };
    if let Some(path) = &opts.index_path {
        let mut index = Index::load(path);
        index.remember_archive(manifest_key(manifest), packed.digest);
        index.save(path);
    }
    tracing::info!(digest = %packed.digest, size = packed.size, "archive written");
    Ok(packed)
}

/// How many zstd workers: every core, capped (more rarely helps at level 3).
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8) as u32
}

/// Index one past the last small file of the batch starting at `start` (== `start` for a large file).
fn batch_end(files: &[ManifestEntry], start: usize) -> usize {
    let mut end = start;
    let mut bytes = 0;
    while end < files.len() && end - start < BATCH_FILES && files[end].size <= SMALL_FILE {
        if end > start && bytes + files[end].size > BATCH_BYTES {
            break;
        }
        bytes += files[end].size;
        end += 1;
    }
    end
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

fn read_verified(root: &Path, entry: &ManifestEntry) -> Result<Vec<u8>, BundleError> {
    let full = root.join(&entry.path);
    let data = fs::read(&full).map_err(BundleError::io("read", &full))?;
    if data.len() as u64 != entry.size || Digest::of(&data) != entry.blake3 {
        return Err(BundleError::Changed { path: entry.path.clone() });
    }
    Ok(data)
}

/// Streams one large file into the archive, hashing as it goes.
fn write_large(
    out: &mut impl Write,
    root: &Path,
    entry: &ManifestEntry,
    header: &mut Vec<u8>,
) -> Result<(), BundleError> {
    let full = root.join(&entry.path);
    let file = File::open(&full).map_err(BundleError::io("open", &full))?;
    header.clear();
    file_header(&entry.path, entry.size, entry.executable, header);
    out.write_all(header).map_err(BundleError::archive("compress"))?;
    let mut reader = file.take(entry.size + 1);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BundleError::io("read", &full)(e)),
        };
        copied += n as u64;
        if copied > entry.size {
            return Err(BundleError::Changed { path: entry.path.clone() });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(BundleError::archive("compress"))?;
    }
    if copied != entry.size || hasher.finalize().as_bytes() != entry.blake3.as_bytes() {
        return Err(BundleError::Changed { path: entry.path.clone() });
    }
    out.write_all(&vec![0; padding(entry.size)]).map_err(BundleError::archive("compress"))
}

/// Hashes and counts the compressed bytes on their way to the file.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
