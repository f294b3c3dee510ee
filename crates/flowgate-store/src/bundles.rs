//! Bundle bytes in and out of the store: create-if-absent uploads that never hold
//! a large bundle in memory, and streaming downloads to a path the caller chose.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flowgate_core::Digest;
use futures::StreamExt;
use object_store::{path::Path as Key, PutMultipartOptions, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use crate::{bundle_key, ArtifactStore, StoreError, Upload};

const BUNDLE_TYPE: &str = "application/zstd";
/// Part size of multipart uploads (S3 needs at least 5 MiB per part).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once: bounds memory to about `PART_SIZE * PARTS_IN_FLIGHT`.
const PARTS_IN_FLIGHT: usize = 4;
const READ_SIZE: usize = 1024 * 1024;

impl ArtifactStore {
    pub async fn has_bundle(&self, digest: &Digest) -> Result<bool, StoreError> {
        let key = bundle_key(digest);
        let span = tracing::info_span!("store.has_bundle", key = %key, store = %self.url);
        self.exists(&key).instrument(span).await
    }

    /// The stored bundle's size in bytes, or `None` when the store lacks it.
    pub async fn bundle_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let key = bundle_key(digest);
        let span = tracing::info_span!("store.bundle_size", key = %key, store = %self.url);
        async {
            match self.inner.head(&key).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.io("look up", key.as_ref(), e)),
            }
        }
        .instrument(span)
        .await
    }

    /// Upload a local bundle file create-if-absent. The store does not hash the
    /// file: the caller vouches that `digest` addresses its bytes. A local store
    /// on the file's filesystem links the file itself into place (made 0644), so
    /// the caller must not write to it afterwards (removing it is fine).
    pub async fn put_bundle(&self, digest: &Digest, file: &Path) -> Result<Upload, StoreError> {
        let key = bundle_key(digest);
        let span = tracing::info_span!("store.put_bundle", key = %key, store = %self.url);
        async {
            if let Some(root) = &self.local_root {
                let (dest, file) = (root.join(key.as_ref()), file.to_path_buf());
                return blocking(move || put_local(&dest, &file)).await;
            }
            let size = tokio::fs::metadata(file).await.map_err(StoreError::local("read", file))?.len();
            if size <= self.multipart_threshold {
                let bytes = tokio::fs::read(file).await.map_err(StoreError::local("read", file))?;
                return self.put_create(&key, bytes.into(), BUNDLE_TYPE).await;
            }
            if self.exists(&key).await? {
                return Ok(Upload::AlreadyPresent);
            }
            self.put_large(&key, file).await
        }
        .instrument(span)
        .await
    }

    /// For a local store, the path of the stored bundle if it is present: it can be
    /// verified and unpacked in place.
    pub fn local_bundle_path(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.local_root.as_ref()?.join(bundle_key(digest).as_ref());
        path.is_file().then_some(path)
    }

    /// Download a bundle into `dest` (created or truncated), streaming. A partial
    /// file is removed on failure.
    pub async fn fetch_bundle(&self, digest: &Digest, dest: &Path) -> Result<(), StoreError> {
        let key = bundle_key(digest);
        let span = tracing::info_span!("store.fetch_bundle", key = %key, store = %self.url);
        async {
            let result = self.fetch_into(&key, dest).await;
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
        match self.inner.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.io("look up", key.as_ref(), e)),
        }
    }

    /// Multipart upload to a unique staging key, then a copy that fails if the
    /// target exists. Stores without such a copy fall back to one buffered put.
    async fn put_large(&self, key: &Key, file: &Path) -> Result<Upload, StoreError> {
        let staging = Key::from(format!("staging/{}.{}", key.filename().unwrap_or("bundle"), unique_suffix()));
        let opts = PutMultipartOptions { attributes: self.attributes(BUNDLE_TYPE), ..Default::default() };
        let upload =
            self.inner.put_multipart_opts(&staging, opts).await.map_err(|e| self.io("upload", key.as_ref(), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let streamed = async {
            let mut src = tokio::fs::File::open(file).await.map_err(StoreError::local("read", file))?;
            let mut buf = vec![0u8; READ_SIZE];
            loop {
                let n = src.read(&mut buf).await.map_err(StoreError::local("read", file))?;
                if n == 0 {
                    return Ok(());
                }
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| self.io("upload", key.as_ref(), e))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = streamed {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(|e| self.io("upload", key.as_ref(), e))?;
        let outcome = match self.inner.copy_if_not_exists(&staging, key).await {
            Ok(()) => Ok(Upload::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Upload::AlreadyPresent),
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented) => {
                tracing::debug!("store has no copy-if-not-exists; falling back to one buffered put");
                match tokio::fs::read(file).await {
                    Ok(bytes) => self.put_create(key, bytes.into(), BUNDLE_TYPE).await,
                    Err(e) => Err(StoreError::local("read", file)(e)),
                }
            }
            Err(e) => Err(self.io("publish", key.as_ref(), e)),
        };
        if let Err(e) = self.inner.delete(&staging).await {
            tracing::warn!(staging = %staging, error = %e, "failed to delete a staging object");
        }
        outcome
    }
}

/// Copy `file` next to `dest` under a staging name the local backend's listing
/// ignores (`<name>#<digits>`), then hard-link it into place, which fails rather
/// than replace an existing bundle. Never holds the file in memory.
fn put_local(dest: &Path, file: &Path) -> Result<Upload, StoreError> {
    if dest.is_file() {
        return Ok(Upload::AlreadyPresent);
    }
    let mut src = File::open(file).map_err(StoreError::local("read", file))?;
    let dir = dest.parent().expect("bundle keys have a directory");
    std::fs::create_dir_all(dir).map_err(StoreError::local("create", dir))?;
    // On the same filesystem (a store under `.flowgate/`, where `build` packs), the
    // finished file itself is linked into place: no 2nd write of the bundle. It is
    // synced first, as a copy would be, and made readable like one. Any failure
    // (another filesystem, a read-only source) falls back to the copy.
    if let Some(upload) = link_local(&src, file, dest) {
        return upload;
    }
    let (mut staged, staged_path) = loop {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{}", unique_suffix()));
        let path = PathBuf::from(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => break (f, path),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::local("create", path)(e)),
        }
    };
    let result = std::io::copy(&mut src, &mut staged)
        .and_then(|_| staged.sync_all())
        .map_err(StoreError::local("write", &staged_path))
        .and_then(|()| match std::fs::hard_link(&staged_path, dest) {
            Ok(()) => Ok(Upload::Created),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Upload::AlreadyPresent),
            Err(e) => Err(StoreError::local("store", dest)(e)),
        });
    let _ = std::fs::remove_file(&staged_path);
    result
}

/// `Some` when `file` could be linked into place at `dest` (or `dest` already
/// exists), `None` when the caller should copy instead.
fn link_local(src: &File, file: &Path, dest: &Path) -> Option<Result<Upload, StoreError>> {
    use std::os::unix::fs::PermissionsExt as _;
    src.sync_all().ok()?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).ok()?;
    match std::fs::hard_link(file, dest) {
        Ok(()) => Some(Ok(Upload::Created)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Some(Ok(Upload::AlreadyPresent)),
        Err(_) => None,
    }
}

/// Digits only, unique within this process and very likely across processes.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}{}{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
