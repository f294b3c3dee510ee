//! Bundles in and out of the store: uploads as frames (see [`crate::frames`]),
//! downloads to a path the caller chose, of frames or of a bundle stored whole
//! before frames.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flowgate_core::Digest;
use futures::StreamExt;
use object_store::path::Path as Key;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

use crate::frames::frame_list_key;
use crate::{bundle_key, ArtifactStore, StoreError, Upload};

const READ_SIZE: usize = 1024 * 1024;

impl ArtifactStore {
    /// Whether the store holds the bundle, as frames or (stored before frames) whole.
    pub async fn has_bundle(&self, digest: &Digest) -> Result<bool, StoreError> {
        let span = tracing::info_span!("store.has_bundle", bundle = %digest, store = %self.url);
        async { Ok(self.exists(&frame_list_key(digest)).await? || self.exists(&bundle_key(digest)).await?) }
            .instrument(span)
            .await
    }

    /// The stored bundle's size in bytes, or `None` when the store lacks it.
    pub async fn bundle_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let span = tracing::info_span!("store.bundle_size", bundle = %digest, store = %self.url);
        async {
            if let Some(frames) = self.bundle_frames(digest).await? {
                return Ok(Some(frames.iter().map(|f| f.size).sum()));
            }
            let key = bundle_key(digest);
            match crate::again(|| self.inner.head(&key)).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.io("look up", key.as_ref(), e)),
            }
        }
        .instrument(span)
        .await
    }

    /// Stores a local bundle file as its frames (see [`crate::frames`]),
    /// create-if-absent, splitting it first. The store does not hash the whole
    /// file: the caller vouches that `digest` addresses its bytes.
    pub async fn put_bundle(&self, digest: &Digest, file: &Path) -> Result<Upload, StoreError> {
        let span = tracing::info_span!("store.put_bundle", bundle = %digest, store = %self.url);
        async {
            if self.has_bundle(digest).await? {
                return Ok(Upload::AlreadyPresent);
            }
            let path = file.to_path_buf();
            let frames = blocking(move || {
                let reader = File::open(&path).map_err(StoreError::local("read", &path))?;
                flowgate_bundle::frames_of(std::io::BufReader::with_capacity(READ_SIZE, reader))
                    .map_err(|e| StoreError::local("read", &path)(std::io::Error::other(e.to_string())))
            })
            .await?;
            Ok(self.store_frames(digest, file, &frames).await?.0)
        }
        .instrument(span)
        .await
    }

    /// For a local store, the path of a bundle stored whole (before frames): it
    /// can be verified and unpacked in place. `None` for a bundle kept as frames.
    pub fn local_bundle_path(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.local_root.as_ref()?.join(bundle_key(digest).as_ref());
        path.is_file().then_some(path)
    }

    /// Download a bundle into `dest` (created or truncated). A partial file is
    /// removed on failure.
    pub async fn fetch_bundle(&self, digest: &Digest, dest: &Path) -> Result<(), StoreError> {
        self.fetch_bundle_cached(digest, dest, None).await
    }

    /// [`ArtifactStore::fetch_bundle`] reusing and filling the frame cache
    /// `frame_cache` (a directory of `<blake3>.zst` frames shared by every
    /// bundle pulled on this machine).
    pub async fn fetch_bundle_cached(
        &self,
        digest: &Digest,
        dest: &Path,
        frame_cache: Option<&Path>,
    ) -> Result<(), StoreError> {
        let span = tracing::info_span!("store.fetch_bundle", bundle = %digest, store = %self.url);
        async {
            let result = match self.bundle_frames(digest).await {
                Ok(Some(frames)) => self.fetch_frames_into(&frames, dest, frame_cache).await,
                // Neither a list nor a whole bundle: name the key a bundle has now.
                Ok(None) => match self.fetch_into(&bundle_key(digest), dest).await {
                    Err(StoreError::NotFound { .. }) => Err(self.not_found(&frame_list_key(digest))),
                    other => other,
                },
                Err(e) => Err(e),
            };
            if result.is_err() {
                let _ = tokio::fs::remove_file(dest).await;
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn fetch_into(&self, key: &Key, dest: &Path) -> Result<(), StoreError> {
        if let Some(root) = &self.local_root {
            let src = root.join(key.as_ref());
            if !src.is_file() {
                return Err(self.not_found(key));
            }
            let dest_buf = dest.to_path_buf();
            let copied = blocking(move || std::fs::copy(&src, &dest_buf)).await;
            return copied.map(drop).map_err(StoreError::local("copy the bundle to", dest));
        }
        let got = match self.inner.get(key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Err(self.not_found(key)),
            Err(e) => return Err(self.io("download", key.as_ref(), e)),
        };
        let mut out = tokio::fs::File::create(dest).await.map_err(StoreError::local("create", dest))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.io("download", key.as_ref(), e))?;
            out.write_all(&chunk).await.map_err(StoreError::local("write", dest))?;
        }
        out.flush().await.map_err(StoreError::local("write", dest))?;
        Ok(())
    }

    pub(crate) async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        match crate::again(|| self.inner.head(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.io("look up", key.as_ref(), e)),
        }
    }
}

/// A new file next to `dest` under a staging name the local backend's listing
/// ignores (`<name>#<digits>`).
pub(crate) fn create_staging(dest: &Path) -> Result<(File, PathBuf), StoreError> {
    loop {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{}", unique_suffix()));
        let path = PathBuf::from(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::local("create", path)(e)),
        }
    }
}

/// Digits only, unique within this process and very likely across processes.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}{}{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
