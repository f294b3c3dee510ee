//! Compressing the archive's frames (see [`crate::read`] for where they are cut):
//! each frame is one independent zstd frame, compressed on rayon's pool while the
//! next ones are read, then written in order, hashed as the bytes leave, so the
//! digest is known the moment writing ends. A frame's bytes depend only on its
//! input, the level and zstd's version, never on which thread compressed it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, Sender};

use flowgate_core::Digest;
use zstd::zstd_safe::{self, CCtx, CParameter};

use crate::{BundleError, FrameRef};

/// zstd level of every bundle; part of the format (changing it changes digests).
pub const ZSTD_LEVEL: i32 = 3;

/// The archive just written: its address, size in bytes and frames (each hashed
/// on the pool thread that compressed it, so a store can keep them as objects
/// without reading the archive again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub digest: Digest,
    pub size: u64,
    pub frames: Vec<FrameRef>,
}

/// A frame compressed and its BLAKE3, and the buffer it came from (to be reused).
struct Compressed {
    frame: io::Result<(Vec<u8>, Digest)>,
    input: Vec<u8>,
}

/// Writes frames to the archive file in the order they are pushed, compressing up
/// to a few at a time on rayon's pool.
pub(crate) struct FrameWriter<'f> {
    out: HashingWriter<'f>,
    compressing: VecDeque<Receiver<Compressed>>,
    /// Output buffers written and free for the next frames.
    spare: Vec<Vec<u8>>,
    /// Input buffers go back to the reader, which reuses them.
    give_back: Sender<Vec<u8>>,
    max_compressing: usize,
    frames: Vec<FrameRef>,
}

impl<'f> FrameWriter<'f> {
    pub fn new(file: &'f mut File, give_back: Sender<Vec<u8>>) -> Self {
        let out =
            HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new(), written: 0 };
        // One more than the pool has threads, so a thread that finishes finds the next frame waiting.
        let max_compressing = rayon::current_num_threads() + 1;
        Self { out, compressing: VecDeque::new(), spare: Vec::new(), give_back, max_compressing, frames: Vec::new() }
    }

    /// Starts compressing `tar` as the next frame; writes the oldest ones while
    /// too many are under way.
    pub fn push(&mut self, tar: Vec<u8>) -> Result<(), BundleError> {
        let out = self.spare.pop().unwrap_or_default();
        let (done, compressed) = std::sync::mpsc::sync_channel(1);
        rayon::spawn(move || {
            let frame = compress_frame(&tar, out).map(|frame| {
                let digest = Digest::of(&frame);
                (frame, digest)
            });
            let _ = done.send(Compressed { frame, input: tar });
        });
        self.compressing.push_back(compressed);
        while self.compressing.len() > self.max_compressing {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Writes every frame under way, then the end-of-archive one holding `trailer`;
    /// returns the archive's digest and size.
    pub fn finish(mut self, trailer: &[u8]) -> Result<Packed, BundleError> {
        while !self.compressing.is_empty() {
            self.write_oldest()?;
        }
        let last = compress_frame(trailer, Vec::new()).map_err(BundleError::archive("compress"))?;
        let last_digest = Digest::of(&last);
        self.write_frame(&last, last_digest)?;
        self.out.inner.flush().map_err(BundleError::archive("write"))?;
        let digest = Digest::from_bytes(*self.out.hasher.finalize().as_bytes());
        Ok(Packed { digest, size: self.out.written, frames: self.frames })
    }

    fn write_oldest(&mut self) -> Result<(), BundleError> {
        let Some(oldest) = self.compressing.pop_front() else { return Ok(()) };
        let Compressed { frame, input } =
            oldest.recv().map_err(|_| BundleError::archive("compress")(io::Error::other("a compression task died")))?;
        let (frame, digest) = frame.map_err(BundleError::archive("compress"))?;
        self.write_frame(&frame, digest)?;
        self.spare.push(frame);
        let _ = self.give_back.send(input);
        Ok(())
    }

    fn write_frame(&mut self, frame: &[u8], digest: Digest) -> Result<(), BundleError> {
        let offset = self.out.written;
        self.out.write_all(frame).map_err(BundleError::archive("write"))?;
        self.frames.push(FrameRef { digest, offset, size: frame.len() as u64 });
        Ok(())
    }
}

thread_local! {
    /// Each pool thread keeps its compression context: its tables are allocated once.
    static CONTEXT: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
}

/// One zstd frame of `src` at [`ZSTD_LEVEL`], with its content size and without
/// zstd's own checksum: the frame's BLAKE3 address (or, for an archive stored
/// whole, the archive's) is checked before a byte of it is decompressed. Reuses
/// `out`'s allocation.
fn compress_frame(src: &[u8], mut out: Vec<u8>) -> io::Result<Vec<u8>> {
    CONTEXT.with(|cell| {
        let mut cell = cell.borrow_mut();
        let cctx = match &mut *cell {
            Some(cctx) => cctx,
            None => cell.insert(new_context()?),
        };
        out.clear();
        out.reserve(zstd_safe::compress_bound(src.len()));
        cctx.compress2(&mut out, src).map_err(zstd_error)?;
        Ok(out)
    })
}

fn new_context() -> io::Result<CCtx<'static>> {
    let mut cctx = CCtx::try_create().ok_or_else(|| io::Error::other("zstd could not allocate a context"))?;
    for param in [
        CParameter::CompressionLevel(ZSTD_LEVEL),
        CParameter::ChecksumFlag(false),
        CParameter::ContentSizeFlag(true),
        CParameter::NbWorkers(0),
    ] {
        cctx.set_parameter(param).map_err(zstd_error)?;
    }
    Ok(cctx)
}

fn zstd_error(code: zstd_safe::ErrorCode) -> io::Error {
    io::Error::other(zstd_safe::get_error_name(code))
}

/// Hashes and counts the compressed bytes on their way to the file.
struct HashingWriter<'f> {
    inner: BufWriter<&'f mut File>,
    hasher: blake3::Hasher,
    written: u64,
}

impl Write for HashingWriter<'_> {
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
