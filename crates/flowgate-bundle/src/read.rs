//! Reading the selected files into the archive's frames, in path order. The
//! archive is the tar stream cut into independent zstd frames, and where it is
//! cut is part of the format (it changes the bytes, so the digest):
//!
//! - files up to [`FRAME_BYTES`] are grouped, whole entries in path order, each
//!   entry counted as one 512-byte header plus its bytes rounded up to 512 (its
//!   cost). A group closes after an entry that [`ends_group`] picks by its own
//!   path and cost (about one group per [`FRAME_TARGET`] bytes), and at the latest
//!   before the entry that would take it past [`FRAME_BYTES`]. So where groups end
//!   is chosen by content: editing one file changes the frame that holds it (and,
//!   when its new cost changes the pick, the next), never every frame after it,
//!   and the frames around it are the same bytes in both builds;
//! - a larger file starts a frame of its own and is cut every [`FRAME_BYTES`] of
//!   its bytes (its header leads the first piece, its padding ends the last);
//! - the two end-of-archive blocks are the last frame.
//!
//! So the cuts depend on the paths and sizes only, never on threads or timing.
//! Each group is read in parallel straight into its place in one buffer already
//! laid out as tar (header, bytes, padding per file), which goes to a compressor
//! as it is and comes back to be reused. When the plan did not stat the files (a
//! first build: nothing to vouch for), the reader stats them a chunk at a time,
//! so compression starts after the first chunk, not the last.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};

use rayon::prelude::*;

use crate::dirs::Dirs;
use crate::index::Index;
use crate::options::PackOptions;
use crate::scan::{check_file_size, stat_one, FileHasher, Outcome, Slot};
use crate::tarfmt::{file_header, padding, BLOCK};
use crate::BundleError;

/// Uncompressed bytes per frame at most (see the module docs); part of the format.
pub(crate) const FRAME_BYTES: u64 = 4 << 20;
/// The mean uncompressed size of a group of small files (see [`ends_group`]);
/// part of the format. Smaller groups share more between builds (an edit
/// rewrites less) and cost more objects to store and fetch: bench/README.md
/// has the measurements it was chosen from.
pub const FRAME_TARGET: u64 = 1 << 20;
/// Files are stat'ed (when the plan left that to the reader) this many at a time.
const STAT_CHUNK: usize = 512;

/// One frame of the archive, uncompressed: `tar` holds its bytes, and `slots`
/// with `outcomes` the files whose entries end in it (none for the leading
/// pieces of a large file).
#[derive(Debug)]
pub(crate) struct Frame {
    pub tar: Vec<u8>,
    pub slots: Vec<Slot>,
    pub outcomes: Vec<Outcome>,
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

/// Where the reader sends frames, and where their buffers come back to be reused.
pub(crate) struct FrameChannel {
    pub frames: SyncSender<Result<Frame, BundleError>>,
    pub returned: Receiver<Vec<u8>>,
}

impl FrameChannel {
    /// Sends a frame (or the error that ends the archive); false when reading should
    /// stop: it was an error, or the writer hung up.
    fn send(&self, frame: Result<Frame, BundleError>) -> bool {
        let failed = frame.is_err();
        self.frames.send(frame).is_ok() && !failed
    }

    /// A buffer of `len` bytes, reusing one the writer gave back when there is
    /// one; only bytes past its old length are zeroed (everything is overwritten).
    fn buffer(&self, len: usize) -> Vec<u8> {
        let mut buffer = self.returned.try_recv().unwrap_or_default();
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        buffer.truncate(len);
        buffer
    }
}

impl Reader<'_> {
    /// Sends every frame but the end-of-archive one to the writer, in order;
    /// stops at the first error (sent too) or when the writer hangs up.
    pub fn run(&self, channel: FrameChannel) {
        let target = self.opts.frame_target.unwrap_or(FRAME_TARGET);
        let mut total_bytes = 0u64;
        let mut group: Vec<Slot> = Vec::new();
        let mut group_bytes = 0u64;
        for chunk in self.slots.chunks(STAT_CHUNK) {
            let stated = match self.stated(chunk, &mut total_bytes) {
                Ok(stated) => stated,
                Err(e) => {
                    channel.send(Err(e));
                    return;
                }
            };
            for slot in stated {
                let large = slot.stat.size > FRAME_BYTES;
                let cost = BLOCK + slot.stat.size + padding(slot.stat.size) as u64;
                if !group.is_empty() && (large || group_bytes + cost > FRAME_BYTES) {
                    let frame = read_group(self, std::mem::take(&mut group), &channel);
                    if !channel.send(frame) {
                        return;
                    }
                    group_bytes = 0;
                }
                if large {
                    match read_large(self, slot, &channel) {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => {
                            channel.send(Err(e));
                            return;
                        }
                    }
                } else {
                    group_bytes += cost;
                    let ends = ends_group(&slot.path, cost, target);
                    group.push(slot);
                    if ends {
                        let frame = read_group(self, std::mem::take(&mut group), &channel);
                        if !channel.send(frame) {
                            return;
                        }
                        group_bytes = 0;
                    }
                }
            }
        }
        if !group.is_empty() {
            channel.send(read_group(self, group, &channel));
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

/// Whether a group of small files ends after the entry of `path`, which costs
/// `cost` bytes: with probability `cost / target`, drawn from the BLAKE3 of the
/// path, so a group holds about `target` bytes, and whether it ends here depends
/// on this entry alone, never on the entries before it.
pub(crate) fn ends_group(path: &str, cost: u64, target: u64) -> bool {
    let hash = blake3::hash(path.as_bytes());
    let draw = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("BLAKE3 has 32 bytes"));
    u128::from(draw) * u128::from(target) < u128::from(cost) << 64
}

/// Reads a group of small files in parallel into one frame, each file's bytes
/// between its header and its padding. Each file must still have the size it was
/// stat'ed with (the header says so), and is checked against its known hash or hashed.
fn read_group(reader: &Reader<'_>, slots: Vec<Slot>, channel: &FrameChannel) -> Result<Frame, BundleError> {
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
    let mut tar = channel.buffer(total);
    let mut bodies = Vec::with_capacity(slots.len());
    let mut rest = &mut tar[..];
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
    Ok(Frame { tar, slots, outcomes })
}

/// Reads a file larger than a frame into frames of [`FRAME_BYTES`] of its bytes,
/// sending each as it is read, hashing as it goes. The file must still have the
/// size it was stat'ed with, and its known hash if it has one. False when the
/// writer hung up.
fn read_large(reader: &Reader<'_>, slot: Slot, channel: &FrameChannel) -> Result<bool, BundleError> {
    let (opts, size) = (reader.opts, slot.stat.size);
    let full = || reader.root.join(&slot.path);
    let changed = || BundleError::Changed { path: slot.path.clone() };
    check_file_size(&slot.path, size, opts)?;
    let mut file = reader.dirs.open_file(&slot.path).map_err(|e| BundleError::io("open", &full())(e))?;
    let mut hasher = FileHasher::new(opts.keeps_md5(&slot.path));
    let mut header = Vec::with_capacity(BLOCK as usize);
    file_header(&slot.path, size, slot.executable, &mut header);
    let mut done = 0u64;
    let last_frame = loop {
        let len = FRAME_BYTES.min(size - done) as usize;
        let lead = if done == 0 { header.len() } else { 0 };
        let pad = if done + len as u64 == size { padding(size) } else { 0 };
        let mut tar = channel.buffer(lead + len + pad);
        tar[..lead].copy_from_slice(&header[..lead]);
        let body = &mut tar[lead..lead + len];
        match file.read_exact(body) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(changed()),
            Err(e) => return Err(BundleError::io("read", &full())(e)),
        }
        hasher.update(body);
        tar[lead + len..].fill(0);
        done += len as u64;
        if done == size {
            break tar;
        }
        if !channel.send(Ok(Frame { tar, slots: Vec::new(), outcomes: Vec::new() })) {
            return Ok(false);
        }
    };
    if !at_end(&mut file).map_err(|e| BundleError::io("read", &full())(e))? {
        return Err(changed());
    }
    let outcome = hasher.finish(&slot, &file, reader.started_ns)?;
    let outcome = match slot.known {
        Some(known) if known.blake3 != outcome.hashed.blake3 => return Err(changed()),
        Some(known) => Outcome { size, hashed: known, cacheable: true, read: false },
        None => outcome,
    };
    Ok(channel.send(Ok(Frame { tar: last_frame, slots: vec![slot], outcomes: vec![outcome] })))
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
fn at_end(file: &mut File) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    loop {
        match file.read(&mut probe) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
