//! The artifact store of flowgate: bundles, manifests and build records kept
//! content-addressed and immutable in any object_store backend (local directory,
//! S3, GCS, Azure, or memory for tests), so every machine that can read the store
//! can find and fetch exactly the code a build recorded.
//!
//! Layout under the store root:
//! - `frames/<blake3-hex>.zst`: one zstd frame of a bundle, shared by every bundle
//!   that holds it;
//! - `bundles/<digest-hex>.frames`: a bundle, as the ordered list of its frames
//!   (see [`frames`]); a bundle stored before frames is `bundles/<digest-hex>.tar.zst`,
//!   still read;
//! - `manifests/<digest-hex>.json`: the bundle's [`flowgate_core::Manifest`] as JSON;
//! - `builds/<build-id>.json`: the [`flowgate_core::Build`] record, so a worker holding only the
//!   store URL and a build id can find the bundle digest.
//!
//! Every write is create-if-absent: an object already present is success
//! ([`Upload::AlreadyPresent`]) and nothing is ever overwritten. A bundle's list is
//! written after its frames, so a list in the store means its frames are there.
//! Local frame writes stage in `<key>#<digits>` files hard-linked into place (and
//! an older version's multipart uploads staged under `staging/`). A write
//! killed half-way can leave either behind, never a partial object at its key;
//! [`ArtifactStore::list`] shows them ([`ObjectKind::Staging`]) so fsck can
//! report and remove them.

mod bundles;
mod error;
pub mod frames;
mod location;
mod objects;
mod records;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowgate_core::{BuildId, Digest};
use futures::TryStreamExt;
use object_store::{path::Path as Key, Attribute, Attributes, ObjectStore};
use tracing::Instrument;

pub use error::{StoreError, Upload};
pub use frames::{FramesStored, FRAMES_IN_FLIGHT};
pub use objects::{ObjectKind, StoredObject};

/// The artifact store. Cheap to clone; `Debug` and `Display` show only the
/// secret-free URL.
#[derive(Clone)]
pub struct ArtifactStore {
    inner: Arc<dyn ObjectStore>,
    url: Arc<str>,
    local_root: Option<PathBuf>,
}

impl ArtifactStore {
    /// Parse and open a store URL. `base_dir` resolves relative `file://` paths
    /// (`file://.flowgate/artifacts` is relative to the project root and created on
    /// demand; `file:///abs` is absolute and must exist, else [`StoreError::Missing`]).
    /// `s3://bucket/prefix`, `gs://bucket/prefix` and `az://container/prefix` read
    /// their settings and credentials from the environment (`AWS_*` including
    /// `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP`, `GOOGLE_*`, `AZURE_*`); an
    /// `s3://key:secret@bucket` URL supplies S3 credentials and an `az://` query a
    /// SAS token, neither of which appears in [`ArtifactStore::url`]. Opening a
    /// cloud store makes no network request.
    pub fn open(url: &str, base_dir: &Path) -> Result<Self, StoreError> {
        Ok(Self::from_opened(location::open(url, base_dir)?))
    }

    /// An empty store in memory, for tests.
    pub fn memory() -> Self {
        Self::from_opened(location::memory())
    }

    fn from_opened(opened: location::Opened) -> Self {
        Self { inner: opened.store, url: opened.url.into(), local_root: opened.local_root }
    }

    /// The absolute URL of the store, fit for a Prefect pull step on another
    /// machine: `file://` made absolute, credentials and query tokens removed (the
    /// worker uses its own credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The root directory of a local (`file://`) store.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Every object key with its size, sorted by key: lets tests prove that a
    /// command left the store unchanged.
    pub async fn listing(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let span = tracing::info_span!("store.listing", store = %self.url);
        async {
            let mut items: Vec<(String, u64)> = self
                .inner
                .list(None)
                .map_ok(|meta| (meta.location.to_string(), meta.size))
                .try_collect()
                .await
                .map_err(|e| self.io("list", "", e))?;
            items.sort();
            Ok(items)
        }
        .instrument(span)
        .await
    }

    fn io(&self, op: &'static str, key: &str, source: object_store::Error) -> StoreError {
        StoreError::Io { op, key: key.to_string(), url: self.url.to_string(), source: Box::new(source) }
    }

    fn not_found(&self, key: &Key) -> StoreError {
        StoreError::NotFound { key: key.to_string(), url: self.url.to_string() }
    }

    fn corrupt(&self, key: &Key, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt { key: key.to_string(), url: self.url.to_string(), reason: reason.into() }
    }

    /// Content-Type for a write; the local filesystem backend stores no attributes.
    fn attributes(&self, content_type: &'static str) -> Attributes {
        let mut attributes = Attributes::new();
        if self.local_root.is_none() {
            attributes.insert(Attribute::ContentType, content_type.into());
        }
        attributes
    }
}

/// Waits before the extra attempts of [`again`].
const EXTRA_ATTEMPTS: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(400),
    std::time::Duration::from_millis(1600),
];

/// Runs a request that is safe to repeat (HEAD, GET, a create-if-absent PUT,
/// whose repeat answers "already exists") again when it fails in a way
/// object_store's own retries pass through: a response cut short in its
/// headers surfaces as a generic error ("invalid HTTP version parsed"), not as
/// a connection error. Bundles are many frames, so many requests, and one such
/// failure must not fail a build.
pub(crate) async fn again<T, Fut>(mut attempt: impl FnMut() -> Fut) -> object_store::Result<T>
where
    Fut: std::future::Future<Output = object_store::Result<T>>,
{
    let mut waits = EXTRA_ATTEMPTS.into_iter();
    loop {
        match attempt().await {
            Err(object_store::Error::Generic { store, source }) => match waits.next() {
                Some(wait) => {
                    tracing::debug!(store, error = %source, "repeating a request");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(object_store::Error::Generic { store, source }),
            },
            other => return other,
        }
    }
}

pub(crate) fn bundle_key(digest: &Digest) -> Key {
    Key::from(format!("bundles/{}.tar.zst", digest.to_hex()))
}

pub(crate) fn manifest_key(digest: &Digest) -> Key {
    Key::from(format!("manifests/{}.json", digest.to_hex()))
}

pub(crate) fn build_key(id: &BuildId) -> Key {
    Key::from(format!("builds/{id}.json"))
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactStore").field("url", &&*self.url).finish_non_exhaustive()
    }
}

impl fmt::Display for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}
