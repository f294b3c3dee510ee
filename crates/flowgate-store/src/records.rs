//! Manifests and build records as JSON objects, written create-if-absent and read
//! back with their integrity checked, so a worker with only a store URL and a build
//! id can find the bundle it must run.

use bytes::Bytes;
use flowgate_core::{Build, BuildId, Digest, Manifest};
use object_store::{path::Path as Key, PutMode, PutOptions, PutPayload};
use tracing::Instrument;

use crate::{build_key, manifest_key, ArtifactStore, StoreError, Upload};

const JSON_TYPE: &str = "application/json";

impl ArtifactStore {
    pub async fn put_manifest(&self, digest: &Digest, manifest: &Manifest) -> Result<Upload, StoreError> {
        let key = manifest_key(digest);
        let span = tracing::info_span!("store.put_manifest", key = %key, store = %self.url);
        let json = serde_json::to_vec(manifest).expect("a manifest always serializes to JSON");
        self.put_create(&key, json.into(), JSON_TYPE).instrument(span).await
    }

    /// The manifest of a bundle; a missing one is [`StoreError::NotFound`].
    pub async fn manifest(&self, digest: &Digest) -> Result<Manifest, StoreError> {
        let key = manifest_key(digest);
        let span = tracing::info_span!("store.manifest", key = %key, store = %self.url);
        async {
            let bytes = self.get_optional(&key).await?.ok_or_else(|| self.not_found(&key))?;
            serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&key, e.to_string()))
        }
        .instrument(span)
        .await
    }

    pub async fn put_build(&self, build: &Build) -> Result<Upload, StoreError> {
        let key = build_key(&build.id);
        let span = tracing::info_span!("store.put_build", key = %key, store = %self.url);
        async {
            // Create-if-absent keeps the first record of an id whatever comes
            // later, so when one is there (an unchanged rebuild) this one,
            // with every flow's settings, is not even encoded.
            if self.exists(&key).await? {
                return Ok(Upload::AlreadyPresent);
            }
            let json = serde_json::to_vec(build).expect("a build always serializes to JSON");
            self.put_create(&key, json.into(), JSON_TYPE).await
        }
        .instrument(span)
        .await
    }

    /// The build record with this id, or `None` when the store has none. A record
    /// that does not parse or names another id is [`StoreError::Corrupt`].
    pub async fn build(&self, id: &BuildId) -> Result<Option<Build>, StoreError> {
        let key = build_key(id);
        let span = tracing::info_span!("store.build", key = %key, store = %self.url);
        async {
            let Some(bytes) = self.get_optional(&key).await? else {
                return Ok(None);
            };
            let build: Build = serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&key, e.to_string()))?;
            if build.id != *id {
                return Err(self.corrupt(&key, format!("it records the build `{}`", build.id)));
            }
            Ok(Some(build))
        }
        .instrument(span)
        .await
    }

    /// One put that fails if the key exists; "already exists" is success.
    pub(crate) async fn put_create(
        &self,
        key: &Key,
        payload: PutPayload,
        content_type: &'static str,
    ) -> Result<Upload, StoreError> {
        let opts =
            PutOptions { mode: PutMode::Create, attributes: self.attributes(content_type), ..Default::default() };
        match crate::again(|| self.inner.put_opts(key, payload.clone(), opts.clone())).await {
            Ok(_) => Ok(Upload::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Upload::AlreadyPresent),
            Err(e) => Err(self.io("upload", key.as_ref(), e)),
        }
    }

    pub(crate) async fn get_optional(&self, key: &Key) -> Result<Option<Bytes>, StoreError> {
        match crate::again(|| async { self.inner.get(key).await?.bytes().await }).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.io("download", key.as_ref(), e)),
        }
    }
}
