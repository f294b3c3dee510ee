//! Every object of the store with its size and age, and deleting one: what
//! `flowgate gc` and `flowgate fsck` need. The listing of a local store walks
//! the directory itself, because object_store hides the `<name>#<digits>`
//! staging files an interrupted write leaves there (readers never see them,
//! but they take space and fsck reports them).

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use flowgate_core::{BuildId, Digest};
use futures::TryStreamExt;
use object_store::path::Path as Key;
use tracing::Instrument;

use crate::{ArtifactStore, StoreError};

/// One object of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The key under the store root, `/`-separated (`bundles/<hex>.tar.zst`).
    pub key: String,
    pub size: u64,
    pub last_modified: SystemTime,
}

impl StoredObject {
    pub fn kind(&self) -> ObjectKind {
        ObjectKind::of(&self.key)
    }
}

/// What a key is in the store's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// `bundles/<digest>.tar.zst`: a bundle stored whole (before frames)
    Bundle(Digest),
    /// `bundles/<digest>.frames`: a bundle as the list of its frames
    FrameList(Digest),
    /// `frames/<blake3>.zst`: one frame, shared by the bundles that list it
    Frame(Digest),
    /// `manifests/<digest>.json`
    Manifest(Digest),
    /// `builds/<build-id>.json`
    BuildRecord(BuildId),
    /// What a write leaves behind if it is killed: a local `<key>#<digits>`
    /// staging file, or a remote `staging/` object of a multipart upload.
    Staging,
    /// Not flowgate's.
    Other,
}

impl ObjectKind {
    pub fn of(key: &str) -> Self {
        let file = key.rsplit('/').next().unwrap_or(key);
        if key.starts_with("staging/") || file.split_once('#').is_some_and(|(_, n)| is_digits(n)) {
            return ObjectKind::Staging;
        }
        let named = |dir: &str, ext: &str| key.strip_prefix(dir).and_then(|rest| rest.strip_suffix(ext));
        if let Some(digest) = named("bundles/", ".tar.zst").and_then(|hex| hex.parse().ok()) {
            return ObjectKind::Bundle(digest);
        }
        if let Some(digest) = named("bundles/", ".frames").and_then(|hex| hex.parse().ok()) {
            return ObjectKind::FrameList(digest);
        }
        if let Some(digest) = named("frames/", ".zst").and_then(|hex| hex.parse().ok()) {
            return ObjectKind::Frame(digest);
        }
        if let Some(digest) = named("manifests/", ".json").and_then(|hex| hex.parse().ok()) {
            return ObjectKind::Manifest(digest);
        }
        if let Some(id) = named("builds/", ".json").and_then(|id| id.parse().ok()) {
            return ObjectKind::BuildRecord(id);
        }
        ObjectKind::Other
    }

    /// The key of a bundle, frame list, frame, manifest or build record.
    pub fn key(&self) -> Option<String> {
        match self {
            ObjectKind::Bundle(digest) => Some(crate::bundle_key(digest).to_string()),
            ObjectKind::FrameList(digest) => Some(crate::frames::frame_list_key(digest).to_string()),
            ObjectKind::Frame(digest) => Some(crate::frames::frame_key(digest).to_string()),
            ObjectKind::Manifest(digest) => Some(crate::manifest_key(digest).to_string()),
            ObjectKind::BuildRecord(id) => Some(crate::build_key(id).to_string()),
            ObjectKind::Staging | ObjectKind::Other => None,
        }
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl ArtifactStore {
    /// Every object, sorted by key, with its size and last-modified time;
    /// on a local store this includes staging files readers never see.
    pub async fn list(&self) -> Result<Vec<StoredObject>, StoreError> {
        let span = tracing::info_span!("store.list", store = %self.url);
        async {
            let mut objects = match &self.local_root {
                Some(root) => {
                    let root = root.clone();
                    tokio::task::spawn_blocking(move || walk_local(&root))
                        .await
                        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?
                }
                None => self
                    .inner
                    .list(None)
                    .map_ok(|meta| StoredObject {
                        key: meta.location.to_string(),
                        size: meta.size,
                        last_modified: meta.last_modified.into(),
                    })
                    .try_collect()
                    .await
                    .map_err(|e| self.io("list", "", e))?,
            };
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(objects)
        }
        .instrument(span)
        .await
    }

    /// Deletes the object at `key` (as [`ArtifactStore::list`] names it); one
    /// that is already gone is success. A key that leaves the store, or is not
    /// a valid key, is [`StoreError::InvalidKey`].
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let span = tracing::info_span!("store.delete", key = %key, store = %self.url);
        async {
            let invalid = || StoreError::InvalidKey { key: key.to_string(), url: self.url.to_string() };
            if let Some(root) = &self.local_root {
                let path = local_path(root, key).ok_or_else(invalid)?;
                return match tokio::fs::remove_file(&path).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(StoreError::local("delete", path)(e)),
                };
            }
            let parsed = Key::parse(key).map_err(|_| invalid())?;
            if parsed.as_ref().is_empty() {
                return Err(invalid());
            }
            match self.inner.delete(&parsed).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.io("delete", key, e)),
            }
        }
        .instrument(span)
        .await
    }
}

/// `root/key` when every part of `key` is a plain name (no `..`, no root).
fn local_path(root: &Path, key: &str) -> Option<PathBuf> {
    let relative = Path::new(key);
    let plain = !key.is_empty()
        && !key.split('/').any(str::is_empty)
        && relative.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| root.join(relative))
}

/// Every regular file under `root`, keyed by its `/`-joined relative path.
fn walk_local(root: &Path) -> Result<Vec<StoredObject>, StoreError> {
    let mut objects = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(StoreError::local("list", &dir))?;
        for entry in entries {
            let entry = entry.map_err(StoreError::local("list", &dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(StoreError::local("list", &path))?;
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Deleted between listing and stat (a concurrent staging file cleaned up).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::local("stat", &path)(e)),
            };
            let relative = path.strip_prefix(root).expect("walked below the root");
            let key: Vec<String> =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let last_modified = meta.modified().map_err(StoreError::local("stat", &path))?;
            objects.push(StoredObject { key: key.join("/"), size: meta.len(), last_modified });
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_the_layout() {
        let digest = Digest::of(b"x");
        let hex = digest.to_hex();
        let id: BuildId = "0123456789abcdef0123".parse().unwrap();
        let cases = [
            (format!("bundles/{hex}.tar.zst"), ObjectKind::Bundle(digest)),
            (format!("manifests/{hex}.json"), ObjectKind::Manifest(digest)),
            (format!("bundles/{hex}.frames"), ObjectKind::FrameList(digest)),
            (format!("frames/{hex}.zst"), ObjectKind::Frame(digest)),
            (format!("frames/{hex}.zst#12"), ObjectKind::Staging),
            ("frames/short.zst".to_string(), ObjectKind::Other),
            (format!("builds/{id}.json"), ObjectKind::BuildRecord(id.clone())),
            (format!("bundles/{hex}.tar.zst#17"), ObjectKind::Staging),
            (format!("builds/{id}.json#1"), ObjectKind::Staging),
            (format!("staging/{hex}.tar.zst.123"), ObjectKind::Staging),
            (format!("bundles/{hex}.tar.zst#x1"), ObjectKind::Other),
            ("bundles/short.tar.zst".to_string(), ObjectKind::Other),
            ("builds/0123456789ABCDEF0123.json".to_string(), ObjectKind::Other),
            ("notes.txt".to_string(), ObjectKind::Other),
        ];
        for (key, kind) in cases {
            assert_eq!(ObjectKind::of(&key), kind, "{key}");
            if let Some(back) = kind.key() {
                assert_eq!(back, key);
            }
        }
    }

    #[test]
    fn local_keys_stay_below_the_root() {
        let root = Path::new("/store");
        assert_eq!(local_path(root, "bundles/a#1"), Some(PathBuf::from("/store/bundles/a#1")));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/"] {
            assert_eq!(local_path(root, bad), None, "{bad}");
        }
    }
}
