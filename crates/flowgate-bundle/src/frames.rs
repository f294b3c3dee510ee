//! The frames of an archive: where each zstd frame lies, its size and its
//! BLAKE3, found from the bytes alone (a bundle packed by any version, or
//! uploaded through a server, is split the same way). What a store needs to
//! keep frames as objects shared across builds: a bundle is then the ordered
//! list of its frames, and their concatenation is the archive its digest
//! names.

use std::io::{self, Read};

use flowgate_core::Digest;
use zstd::zstd_safe;

use crate::read::FRAME_BYTES;
use crate::BundleError;

/// One frame of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef {
    /// BLAKE3 of the frame's compressed bytes: its address.
    pub digest: Digest,
    /// Where it starts in the archive.
    pub offset: u64,
    /// Its compressed size.
    pub size: u64,
}

/// Every frame of the archive `reader` yields, in order, reading it once.
/// A frame is at most the bound of one [`FRAME_BYTES`] input, so a window of
/// two such bounds always holds the next whole frame.
pub fn frames_of(mut reader: impl Read) -> Result<Vec<FrameRef>, BundleError> {
    let bound = zstd_safe::compress_bound(FRAME_BYTES as usize) + 1024;
    let mut window: Vec<u8> = Vec::with_capacity(2 * bound);
    let mut start = 0usize;
    let mut offset = 0u64;
    let mut ended = false;
    let mut frames = Vec::new();
    loop {
        if !ended && window.len() - start < bound {
            window.drain(..start);
            start = 0;
            ended = fill(&mut reader, &mut window, 2 * bound).map_err(BundleError::archive("read"))?;
        }
        let rest = &window[start..];
        if rest.is_empty() {
            return Ok(frames);
        }
        let size = zstd_safe::find_frame_compressed_size(rest).map_err(|code| BundleError::Malformed {
            bundle: "archive".into(),
            reason: format!("at byte {offset}, not a whole zstd frame ({})", zstd_safe::get_error_name(code)),
        })?;
        frames.push(FrameRef { digest: Digest::of(&rest[..size]), offset, size: size as u64 });
        start += size;
        offset += size as u64;
    }
}

/// Reads into `window` until it holds `want` bytes or the reader ends; true at the end.
fn fill(reader: &mut impl Read, window: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let mut filled = window.len();
    window.resize(want, 0);
    while filled < want {
        match reader.read(&mut window[filled..]) {
            Ok(0) => {
                window.truncate(filled);
                return Ok(true);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                window.truncate(filled);
                return Err(e);
            }
        }
    }
    Ok(false)
}
