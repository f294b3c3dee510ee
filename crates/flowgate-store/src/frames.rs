//! Bundles kept as their frames: each zstd frame of an archive is an object
//! `frames/<blake3>.zst` shared by every build whose archive holds it, and a
//! bundle is `bundles/<digest>.frames`, the ordered list of its frames, written
//! after all of them. Their concatenation is the archive `<digest>` names, so a
//! build that changes one file stores the frames around that file and a list.
//!
//! The list is text, one frame a line after a header:
//!
//! ```text
//! flowgate-frames 1
//! <frame blake3 hex> <compressed size>
//! ```
//!
//! Uploads ask for each frame (HEAD; a stat on a local store) and send only the
//! missing ones; downloads
//! fetch frames in parallel, in order, each checked against its address before a
//! byte of it is used, and reuse frames a local frame cache holds from other
//! builds.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use flowgate_bundle::FrameRef;
use flowgate_core::Digest;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use tokio::io::AsyncWriteExt;

use crate::{ArtifactStore, StoreError, Upload};

const LIST_HEADER: &str = "flowgate-frames 1";
const FRAME_TYPE: &str = "application/zstd";
const LIST_TYPE: &str = "text/plain";
/// Frames asked for or sent at once: enough to hide a round trip of tens of
/// milliseconds behind the others, few enough for one small server.
pub const FRAMES_IN_FLIGHT: usize = 32;

pub(crate) fn frame_key(digest: &Digest) -> Key {
    Key::from(format!("frames/{}.zst", digest.to_hex()))
}

pub(crate) fn frame_list_key(digest: &Digest) -> Key {
    Key::from(format!("bundles/{}.frames", digest.to_hex()))
}

/// What an upload of a bundle's frames did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramesStored {
    /// Frames the bundle has.
    pub frames: usize,
    /// Frames the store lacked and got.
    pub uploaded: usize,
    /// Their compressed bytes.
    pub uploaded_bytes: u64,
}

/// The text of a frame list.
pub fn frame_list_text(frames: &[FrameRef]) -> String {
    let mut text = String::with_capacity(LIST_HEADER.len() + 1 + frames.len() * 80);
    text.push_str(LIST_HEADER);
    text.push('\n');
    for frame in frames {
        text.push_str(&format!("{} {}\n", frame.digest.to_hex(), frame.size));
    }
    text
}

/// Parses a frame list; offsets follow from the sizes.
pub fn parse_frame_list(text: &str) -> Result<Vec<FrameRef>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(LIST_HEADER) {
        return Err(format!("the first line is not `{LIST_HEADER}`"));
    }
    let mut frames = Vec::new();
    let mut offset = 0u64;
    for (n, line) in lines.enumerate() {
        let bad = || format!("line {} `{line}` is not `<blake3 hex> <size>`", n + 2);
        let (hex, size) = line.split_once(' ').ok_or_else(bad)?;
        let digest: Digest = hex.parse().map_err(|_| bad())?;
        let size: u64 = size.parse().map_err(|_| bad())?;
        if size == 0 {
            return Err(bad());
        }
        frames.push(FrameRef { digest, offset, size });
        offset += size;
    }
    if frames.is_empty() {
        return Err("it lists no frame".into());
    }
    Ok(frames)
}

impl ArtifactStore {
    /// The frames of a bundle stored as frames, or `None` when the store has no
    /// frame list for `digest` (it may hold the bundle whole, as before frames).
    pub async fn bundle_frames(&self, digest: &Digest) -> Result<Option<Vec<FrameRef>>, StoreError> {
        let key = frame_list_key(digest);
        let Some(bytes) = self.get_optional(&key).await? else { return Ok(None) };
        let text = std::str::from_utf8(&bytes).map_err(|e| self.corrupt(&key, e.to_string()))?;
        parse_frame_list(text).map(Some).map_err(|reason| self.corrupt(&key, reason))
    }

    /// Stores the frames of the archive `file` the store lacks, then the list
    /// naming them. `frames` must be the archive's frames in order (what the
    /// packer returned, or [`flowgate_bundle::frames_of`]); the store checks
    /// each frame's address as it reads it.
    pub async fn put_bundle_frames(
        &self,
        digest: &Digest,
        file: &Path,
        frames: &[FrameRef],
    ) -> Result<(Upload, FramesStored), StoreError> {
        if self.exists(&frame_list_key(digest)).await? {
            return Ok((Upload::AlreadyPresent, FramesStored { frames: frames.len(), ..Default::default() }));
        }
        self.store_frames(digest, file, frames).await
    }

    /// The frames the store lacks, then the list; the caller found no list.
    pub(crate) async fn store_frames(
        &self,
        digest: &Digest,
        file: &Path,
        frames: &[FrameRef],
    ) -> Result<(Upload, FramesStored), StoreError> {
        let list_key = frame_list_key(digest);
        let archive = Arc::new(File::open(file).map_err(StoreError::local("read", file))?);
        let stored: Vec<Option<u64>> = futures::stream::iter(frames.iter().copied())
            .map(|frame| self.put_frame(Arc::clone(&archive), file, frame))
            .buffer_unordered(FRAMES_IN_FLIGHT)
            .try_collect()
            .await?;
        let sent: Vec<u64> = stored.into_iter().flatten().collect();
        let upload = self.put_create(&list_key, frame_list_text(frames).into(), LIST_TYPE).await?;
        let report = FramesStored { frames: frames.len(), uploaded: sent.len(), uploaded_bytes: sent.iter().sum() };
        Ok((upload, report))
    }

    /// Uploads one frame unless the store has it; its size when it was sent.
    /// A local store gets a kernel-side copy of the frame's range of the archive.
    async fn put_frame(&self, archive: Arc<File>, file: &Path, frame: FrameRef) -> Result<Option<u64>, StoreError> {
        let key = frame_key(&frame.digest);
        let path = file.to_path_buf();
        let upload = match &self.local_root {
            Some(root) => {
                let dest = root.join(key.as_ref());
                crate::bundles::blocking(move || put_local_range(&dest, &archive, &path, &frame)).await?
            }
            None => {
                if self.exists(&key).await? {
                    return Ok(None);
                }
                let bytes = crate::bundles::blocking(move || read_frame(&archive, &path, &frame)).await?;
                self.put_create(&key, bytes.into(), FRAME_TYPE).await?
            }
        };
        Ok(upload.is_created().then_some(frame.size))
    }

    /// The bytes of `frames`, in order, fetching up to [`FRAMES_IN_FLIGHT`] at
    /// once. Frames found in `frame_cache` are read from there; fetched ones are
    /// added to it. Every frame is checked against its address before it is
    /// yielded, so a consumer may unpack while the rest downloads.
    pub fn frame_stream<'a>(
        &'a self,
        frames: &'a [FrameRef],
        frame_cache: Option<&'a Path>,
    ) -> impl futures::Stream<Item = Result<Bytes, StoreError>> + 'a {
        futures::stream::iter(frames.iter().copied())
            .map(move |frame| self.frame_bytes(frame, frame_cache))
            .buffered(FRAMES_IN_FLIGHT)
    }

    /// Writes the frames of `frames` in order into `dest` (created or truncated).
    pub(crate) async fn fetch_frames_into(
        &self,
        frames: &[FrameRef],
        dest: &Path,
        frame_cache: Option<&Path>,
    ) -> Result<(), StoreError> {
        let mut out = tokio::fs::File::create(dest).await.map_err(StoreError::local("create", dest))?;
        let mut fetched = std::pin::pin!(self.frame_stream(frames, frame_cache));
        while let Some(bytes) = fetched.next().await {
            out.write_all(&bytes?).await.map_err(StoreError::local("write", dest))?;
        }
        out.flush().await.map_err(StoreError::local("write", dest))
    }

    /// One frame's bytes, verified: from the frame cache, the local store's
    /// file, or a GET (then added to the cache).
    async fn frame_bytes(&self, frame: FrameRef, frame_cache: Option<&Path>) -> Result<Bytes, StoreError> {
        let key = frame_key(&frame.digest);
        let cached = frame_cache.map(|dir| dir.join(format!("{}.zst", frame.digest.to_hex())));
        if let Some(path) = &cached {
            if let Ok(bytes) = tokio::fs::read(path).await {
                if verifies(&bytes, &frame) {
                    return Ok(bytes.into());
                }
                // A damaged cached frame is fetched again, never used.
                let _ = tokio::fs::remove_file(path).await;
            }
        }
        let bytes = self.get_optional(&key).await?.ok_or_else(|| self.not_found(&key))?;
        if !verifies(&bytes, &frame) {
            return Err(self.corrupt(
                &key,
                format!("its {} bytes do not hash to its address (expected {} bytes)", bytes.len(), frame.size),
            ));
        }
        if let (Some(path), None) = (cached, &self.local_root) {
            let copy = bytes.clone();
            // Awaited, so a pull that returns has filled the cache (the other
            // frames in flight go on meanwhile). The cache is only a shortcut: a
            // frame that cannot be kept is fetched next time.
            let _ = crate::bundles::blocking(move || keep_in_cache(&path, &copy)).await;
        }
        Ok(bytes)
    }
}

fn verifies(bytes: &[u8], frame: &FrameRef) -> bool {
    bytes.len() as u64 == frame.size && Digest::of(bytes) == frame.digest
}

/// The bytes of `frame` in the archive. Not hashed again: the frames come from
/// the packer or from splitting this very file.
fn read_frame(archive: &File, path: &Path, frame: &FrameRef) -> Result<Vec<u8>, StoreError> {
    let size = usize::try_from(frame.size).map_err(|_| too_large(path, frame))?;
    let mut bytes = vec![0u8; size];
    archive.read_exact_at(&mut bytes, frame.offset).map_err(StoreError::local("read", path))?;
    Ok(bytes)
}

/// Copies `frame`'s range of `archive` next to `dest` under a staging name
/// (in the kernel: `copy_file_range`), syncs it, and hard-links it into place,
/// which fails rather than replace an existing object. Frames are copied many
/// at a time, so their syncs share the filesystem's journal commits.
fn put_local_range(dest: &Path, archive: &File, path: &Path, frame: &FrameRef) -> Result<Upload, StoreError> {
    if dest.is_file() {
        return Ok(Upload::AlreadyPresent);
    }
    let dir = dest.parent().expect("store keys have a directory");
    std::fs::create_dir_all(dir).map_err(StoreError::local("create", dir))?;
    let (staged, staged_path) = crate::bundles::create_staging(dest)?;
    let copied = copy_range(archive, &staged, frame.offset, frame.size)
        .map_err(StoreError::local("read", path))
        .and_then(|()| staged.sync_data().map_err(StoreError::local("write", &staged_path)));
    let result = copied.and_then(|()| match std::fs::hard_link(&staged_path, dest) {
        Ok(()) => Ok(Upload::Created),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Upload::AlreadyPresent),
        Err(e) => Err(StoreError::local("store", dest)(e)),
    });
    let _ = std::fs::remove_file(&staged_path);
    result
}

fn copy_range(from: &File, to: &File, offset: u64, size: u64) -> std::io::Result<()> {
    let (mut at, mut left) = (offset, size);
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX);
        match rustix::fs::copy_file_range(from, Some(&mut at), to, None, chunk) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => left -= n as u64,
            Err(rustix::io::Errno::INTR) => {}
            // No kernel copy between these files: an ordinary one.
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => {
                let mut bytes = vec![0u8; usize::try_from(left).map_err(|_| ErrorKind::InvalidInput)?];
                from.read_exact_at(&mut bytes, at)?;
                return std::io::Write::write_all(&mut &*to, &bytes);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn too_large(path: &Path, frame: &FrameRef) -> StoreError {
    StoreError::local("read", path)(std::io::Error::other(format!("a frame of {} bytes", frame.size)))
}

/// Adds a verified frame to the local frame cache: a temp file renamed into
/// place, so a reader never sees half a frame.
fn keep_in_cache(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().expect("cached frames have a directory");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_list_reads_back_with_offsets_and_bad_lists_name_the_line() {
        let frames = [
            FrameRef { digest: Digest::of(b"a"), offset: 0, size: 10 },
            FrameRef { digest: Digest::of(b"b"), offset: 10, size: 7 },
        ];
        assert_eq!(parse_frame_list(&frame_list_text(&frames)).unwrap(), frames);
        assert!(parse_frame_list("").unwrap_err().contains("first line"));
        assert!(parse_frame_list("flowgate-frames 1\n").unwrap_err().contains("no frame"));
        let bad = format!("flowgate-frames 1\n{} ten\n", Digest::of(b"a").to_hex());
        assert!(parse_frame_list(&bad).unwrap_err().contains("line 2"), "{bad}");
        let zero = format!("flowgate-frames 1\n{} 0\n", Digest::of(b"a").to_hex());
        assert!(parse_frame_list(&zero).is_err());
    }
}
