//! A build's bundle unpacked in the local cache, verified: what `flowgate pull`
//! installs, and what sync reads entrypoint files from (as they are in the build,
//! not as they are in the working tree).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use flowgate_bundle::{Cache, FrameRef, Limits};
use flowgate_core::Digest;
use flowgate_store::{ArtifactStore, FRAMES_IN_FLIGHT};
use futures::StreamExt as _;

use crate::project::vars;

/// The unpacked directory of `digest`, fetched from `store` and installed into
/// `cache` first if the cache does not have it; `true` when it was cached already.
/// A bundle kept as frames is unpacked while its frames download; one stored
/// whole (before frames) is verified first, then unpacked.
#[tracing::instrument(level = "debug", skip_all, fields(digest = %digest))]
pub async fn ensure(cache: &Cache, store: &ArtifactStore, digest: &Digest) -> Result<(PathBuf, bool)> {
    if let Some(path) = cache.lookup(digest) {
        return Ok((path, true));
    }
    let fetching = || format!("Failed to fetch bundle `{}`", digest.short());
    if let Some(frames) = store.bundle_frames(digest).await.with_context(fetching)? {
        return Ok((install_streaming(cache, store, digest, &frames).await.with_context(fetching)?, false));
    }
    let limits = Limits::default();
    let digest = *digest;
    let archive_dir;
    let archive = match store.local_bundle_path(&digest) {
        Some(local) => local,
        None => {
            archive_dir = tempfile::Builder::new().prefix(".download-").tempdir_in(cache.root())?;
            let archive = archive_dir.path().join("bundle.tar.zst");
            store.fetch_bundle(&digest, &archive).await.with_context(fetching)?;
            archive
        }
    };
    let cache = cache.clone();
    let path = tokio::task::spawn_blocking(move || cache.install(&digest, &archive, &limits)).await??;
    Ok((path, false))
}

/// Feeds the frames, as they arrive (each checked against its address), to an
/// install on a blocking thread that unpacks them and publishes the directory
/// only if the whole hashes to `digest`. A failed fetch ends the stream early;
/// its error is the one reported.
async fn install_streaming(
    cache: &Cache,
    store: &ArtifactStore,
    digest: &Digest,
    frames: &[FrameRef],
) -> Result<PathBuf> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(FRAMES_IN_FLIGHT);
    let (installer, digest_copy, limits) = (cache.clone(), *digest, Limits::default());
    let installing = tokio::task::spawn_blocking(move || {
        installer.install_from_reader(&digest_copy, FrameReader { receiver, current: Bytes::new() }, &limits)
    });
    let frame_dir = frame_cache(cache);
    let mut fetched = std::pin::pin!(store.frame_stream(frames, Some(&frame_dir)));
    let mut failed = None;
    while let Some(frame) = fetched.next().await {
        match frame {
            Ok(bytes) => {
                // A closed channel means the install stopped: its error says why.
                if sender.send(bytes).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(sender);
    let installed = installing.await?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(installed?),
    }
}

/// The bytes of the frames a channel delivers, as one reader; the end of the
/// channel is the end of the archive.
struct FrameReader {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for FrameReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Frames pulled from a remote store, kept for the next bundle that shares them
/// (a build one file away from a cached one fetches a frame or two). The dot
/// keeps it apart from the `<digest>/` directories of unpacked bundles.
pub fn frame_cache(cache: &Cache) -> PathBuf {
    cache.root().join(".frames")
}

/// The MD5 (hex) of `path` in the bundle `digest`, read from the bundle unpacked
/// in the default cache; `None` when the bundle has no such file.
pub async fn file_md5(store: &ArtifactStore, digest: &Digest, path: &str) -> Result<Option<String>> {
    let cache = Cache::new(cache_dir(None)?);
    let (dir, _) = ensure(&cache, store, digest).await?;
    let file = dir.join(path);
    if !file.is_file() {
        return Ok(None);
    }
    Ok(Some(tokio::task::spawn_blocking(move || flowgate_bundle::md5_hex_of(&file)).await??))
}

/// `--cache DIR`, else FLOWGATE_CACHE_DIR, else `$XDG_CACHE_HOME/flowgate/bundles`
/// (or `~/.cache/flowgate/bundles`); created if missing.
pub fn cache_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let dir = match flag {
        Some(dir) => dir.to_path_buf(),
        None => match std::env::var_os(vars::CACHE_DIR).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .context("Neither XDG_CACHE_HOME nor HOME is set; pass --cache DIR")?;
                base.join("flowgate").join("bundles")
            }
        },
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("Failed to create the cache `{}`", dir.display()))?;
    Ok(dir)
}
