//! Reading the selected files for the archive: small files in batches, each batch
//! read in parallel straight into its place in one buffer already laid out as tar
//! (header, bytes, padding per file), so the writer hands zstd one slice per batch
//! and the buffer comes back to be reused: no byte is copied or page-faulted in
//! twice. Each large file is alone, streamed by the writer. When the plan did not
//! stat the files (a first build: nothing to vouch for), the reader stats them a
//! chunk at a time, so compression starts after the first chunk, not the last.

use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};

use rayon::prelude::*;

use crate::dirs::Dirs;
use crate::index::Index;
use crate::options::PackOptions;
use crate::scan::{check_file_size, stat_one, FileHasher, Outcome, Slot};
use crate::tarfmt::{file_header, padding, BLOCK};
use crate::BundleError;

/// Files up to this size are read whole, in parallel, in batches of this many bytes.
pub(crate) const SMALL_FILE: u64 = 4 << 20;
const BATCH_BYTES: u64 = 32 << 20;
const BATCH_FILES: usize = 512;

/// A run of small files read: `tar` holds their entries (header, bytes, padding)
/// back to back, in slot order.
#[derive(Debug)]
pub(crate) struct ReadBatch {
    pub tar: Vec<u8>,
    pub outcomes: Vec<Outcome>,
}

/// The next piece of the archive, in path order: small files read into a tar
/// buffer, or one large file for the writer to stream. Each carries its slots,
/// stat'ed.
#[derive(Debug)]
pub(crate) enum Piece {
    Small { slots: Vec<Slot>, batch: ReadBatch },
    Large(Slot),
}

/// The reader's work: the files to read (sorted by path), whether they still
/// need their stat, and what it needs to open and hash them.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    pub dirs: &'a Dirs,
    pub root: &'a Path,
    pub slots: &'a [Slot],
    pub stat_deferred: bool,
    pub started_ns: i64,
    pub opts: &'a PackOptions,
}

impl Reader<'_> {
    /// Sends every piece to the writer in path order, reusing the buffers it
    /// gives back; stops at the first error (sent too) or when the writer hangs up.
    pub fn run(&self, pieces: SyncSender<Result<Piece, BundleError>>, written: Receiver<Vec<u8>>) {
        let mut total_bytes = 0u64;
        for chunk in self.slots.chunks(BATCH_FILES) {
            let stated = match self.stated(chunk, &mut total_bytes) {
                Ok(stated) => stated,
                Err(e) => {
                    let _ = pieces.send(Err(e));
                    return;
                }
            };
            for range in batches(&stated) {
                let piece = if is_large(&stated, &range) {
                    Ok(Piece::Large(stated[range.start].clone()))
                } else {
                    let buffer = written.try_recv().unwrap_or_default();
                    read_batch(self, &stated[range.clone()], buffer)
                        .map(|batch| Piece::Small { slots: stated[range].to_vec(), batch })
                };
                let failed = piece.is_err();
                if pieces.send(piece).is_err() || failed {
                    return;
                }
            }
        }
    }

    /// The chunk's slots with their stat: as planned, or stat'ed now (missing
    /// files left out when the options say so), keeping the total under the limit.
    fn stated(&self, chunk: &[Slot], total_bytes: &mut u64) -> Result<Vec<Slot>, BundleError> {
        if !self.stat_deferred {
            return Ok(chunk.to_vec());
        }
        let nothing_known = Index::default();
        let stated: Vec<Option<Slot>> = chunk
            .par_iter()
            .map(|slot| stat_one(self.root, self.dirs, &slot.path, &nothing_known, self.opts))
            .collect::<Result<_, _>>()?;
        let stated: Vec<Slot> = stated.into_iter().flatten().collect();
        *total_bytes += stated.iter().map(|s| s.stat.size).sum::<u64>();
        let max = self.opts.limits.max_total_bytes;
        if *total_bytes > max {
            let detail = format!("the files add up to more than {max} bytes, the limit");
            return Err(BundleError::TooLarge { detail });
        }
        Ok(stated)
    }
}

/// The slots in write order: runs of small files, and each large file alone.
fn batches(slots: &[Slot]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < slots.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < slots.len() && end - start < BATCH_FILES && slots[end].stat.size <= SMALL_FILE {
            if end > start && bytes + slots[end].stat.size > BATCH_BYTES {
                break;
            }
            bytes += slots[end].stat.size;
            end += 1;
        }
        let end = end.max(start + 1);
        out.push(start..end);
        start = end;
    }
    out
}

fn is_large(slots: &[Slot], range: &Range<usize>) -> bool {
    range.len() == 1 && slots[range.start].stat.size > SMALL_FILE
}

/// Reads `slots` (small files) in parallel into `tar`, reusing its allocation,
/// each file's bytes between its header and its padding. Each file must still
/// have the size it was stat'ed with (the header says so), and is checked
/// against its known hash or hashed.
fn read_batch(reader: &Reader<'_>, slots: &[Slot], mut tar: Vec<u8>) -> Result<ReadBatch, BundleError> {
    let headers: Vec<Vec<u8>> = slots
        .iter()
        .map(|slot| {
            let mut header = Vec::with_capacity(BLOCK as usize);
            file_header(&slot.path, slot.stat.size, slot.executable, &mut header);
            header
        })
        .collect();
    let total: usize =
        slots.iter().zip(&headers).map(|(s, h)| h.len() + s.stat.size as usize + padding(s.stat.size)).sum();
    // Grown (zero-filled) only past what earlier batches already used.
    if tar.len() < total {
        tar.resize(total, 0);
    }
    let mut bodies = Vec::with_capacity(slots.len());
    let mut rest = &mut tar[..total];
    for (slot, header) in slots.iter().zip(&headers) {
        let (head, tail) = rest.split_at_mut(header.len());
        head.copy_from_slice(header);
        let (body, tail) = tail.split_at_mut(slot.stat.size as usize);
        let (pad, tail) = tail.split_at_mut(padding(slot.stat.size));
        pad.fill(0);
        bodies.push(body);
        rest = tail;
    }
    let outcomes = slots
        .par_iter()
        .zip(bodies)
        .map(|(slot, body)| read_small(reader, slot, body))
        .collect::<Result<Vec<_>, _>>()?;
    tar.truncate(total);
    Ok(ReadBatch { tar, outcomes })
}

/// Reads one small file into `buf`, which has exactly its stat'ed size.
fn read_small(reader: &Reader<'_>, slot: &Slot, buf: &mut [u8]) -> Result<Outcome, BundleError> {
    let (dirs, root, opts) = (reader.dirs, reader.root, reader.opts);
    let full = || root.join(&slot.path);
    let mut file = dirs.open_file(&slot.path).map_err(|e| BundleError::io("open", &full())(e))?;
    let changed = || BundleError::Changed { path: slot.path.clone() };
    match file.read_exact(buf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(changed()),
        Err(e) => return Err(BundleError::io("read", &full())(e)),
    }
    if !at_end(&mut file).map_err(|e| BundleError::io("read", &full())(e))? {
        return Err(changed());
    }
    let size = buf.len() as u64;
    match slot.known {
        Some(known) => {
            if flowgate_core::Digest::of(buf) != known.blake3 {
                return Err(changed());
            }
            Ok(Outcome { size, hashed: known, cacheable: true, read: false })
        }
        None => {
            check_file_size(&slot.path, size, opts)?;
            let mut hasher = FileHasher::new(opts.keeps_md5(&slot.path));
            hasher.update(buf);
            hasher.finish(slot, &file, reader.started_ns)
        }
    }
}

/// Whether `file` has no byte left (it did not grow since it was stat'ed).
fn at_end(file: &mut std::fs::File) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    loop {
        match file.read(&mut probe) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
