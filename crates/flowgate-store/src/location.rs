//! Turns a store URL (from `flowgate.toml` or `--store`) into an object_store
//! backend plus the absolute, secret-free URL that a worker on another machine can
//! be given, and redacts secrets from any URL shown to a human.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3CopyIfNotExists};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use url::Url;

use crate::StoreError;

/// An opened backend and what the store needs to know about it.
pub(crate) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    /// Absolute and free of credentials.
    pub url: String,
    /// The root directory of a `file://` store.
    pub local_root: Option<PathBuf>,
}

/// Retries for cloud stores: 8 attempts with exponential backoff from 100 ms,
/// doubling up to 10 s per wait, and never retrying past 2 minutes after the first
/// attempt (object_store retries 5xx, 429 and connection errors; credentials
/// stay valid well within that window).
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(120),
    }
}

pub(crate) fn memory() -> Opened {
    Opened { store: Arc::new(InMemory::new()), url: "memory://".into(), local_root: None }
}

pub(crate) fn open(raw: &str, base_dir: &Path) -> Result<Opened, StoreError> {
    let shown = redact(raw);
    let invalid = |reason: &str| StoreError::InvalidUrl { url: shown.clone(), reason: reason.to_string() };
    if let Some(rest) = raw.strip_prefix("file://") {
        return open_local(raw, rest, base_dir, &shown);
    }
    if raw.starts_with("memory://") {
        return Ok(memory());
    }
    let url = Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    let opened = |store: Result<Arc<dyn ObjectStore>, object_store::Error>, clean: Url| {
        let store = store.map_err(|source| StoreError::Open { url: shown.clone(), source })?;
        let prefix = object_store::path::Path::from_url_path(clean.path()).map_err(|e| invalid(&e.to_string()))?;
        let store: Arc<dyn ObjectStore> =
            if prefix.as_ref().is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) };
        Ok(Opened { store, url: clean.to_string(), local_root: None })
    };
    let mut clean = url.clone();
    clean.set_query(None);
    clean.set_fragment(None);
    match url.scheme() {
        "s3" | "s3a" => {
            if url.query().is_some() {
                return Err(invalid("s3:// URLs take no query; set credentials in the AWS_* environment"));
            }
            let _ = clean.set_username("");
            let _ = clean.set_password(None);
            let mut builder = AmazonS3Builder::from_env().with_url(clean.as_str()).with_retry(retry_config());
            if !url.username().is_empty() {
                let Some(secret) = url.password() else {
                    return Err(invalid("credentials in the URL need both a key id and a secret"));
                };
                builder = builder.with_access_key_id(decode(url.username())).with_secret_access_key(decode(secret));
            }
            // Large bundles are uploaded under a staging key and published with a
            // copy that fails if the target exists; native S3 supports that through
            // a conditional multipart copy. AWS_COPY_IF_NOT_EXISTS overrides it.
            if std::env::var_os("AWS_COPY_IF_NOT_EXISTS").is_none() {
                builder = builder.with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
            }
            opened(builder.build().map(|s| Arc::new(s) as _), clean)
        }
        "gs" => {
            if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
                return Err(invalid(
                    "gs:// URLs take no credentials; use GOOGLE_SERVICE_ACCOUNT or the machine's identity",
                ));
            }
            let builder = GoogleCloudStorageBuilder::from_env().with_url(clean.as_str()).with_retry(retry_config());
            opened(builder.build().map(|s| Arc::new(s) as _), clean)
        }
        "az" => {
            if url.password().is_some() {
                return Err(invalid("az:// URLs take no password; use AZURE_STORAGE_* variables"));
            }
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(clean.as_str()).with_retry(retry_config());
            if let Some(sas) = url.query() {
                builder = builder.with_config(AzureConfigKey::SasKey, sas);
            }
            opened(builder.build().map(|s| Arc::new(s) as _), clean)
        }
        other => Err(invalid(&format!(
            "the scheme `{other}` is not supported; use file://, s3://, gs://, az:// or memory://"
        ))),
    }
}

/// `file://.flowgate/artifacts` is relative to `base_dir` and created on demand;
/// `file:///abs/dir` is absolute and must already exist.
fn open_local(raw: &str, rest: &str, base_dir: &Path, shown: &str) -> Result<Opened, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl { url: shown.to_string(), reason: reason.to_string() };
    let root = if rest.starts_with('/') {
        let url = Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
        let path = url.to_file_path().map_err(|()| invalid("it does not name a local directory"))?;
        if !path.is_dir() {
            return Err(StoreError::Missing { url: shown.to_string() });
        }
        path
    } else if rest.is_empty() {
        return Err(invalid("it names no directory"));
    } else {
        let path = base_dir.join(rest);
        std::fs::create_dir_all(&path).map_err(StoreError::local("create the artifact store directory", &path))?;
        path
    };
    let root = root.canonicalize().map_err(StoreError::local("resolve the artifact store directory", &root))?;
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|source| StoreError::Open { url: shown.to_string(), source })?;
    let url = Url::from_file_path(&root).map_err(|()| invalid("its directory has no absolute file URL"))?;
    Ok(Opened { store: Arc::new(store), url: url.to_string(), local_root: Some(root) })
}

/// Percent-decoding for credentials embedded in a URL's userinfo.
fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL fit for messages and logs: any userinfo (where keys and passwords live)
/// becomes `***` and any query (where SAS and similar tokens live) becomes `?***`.
pub(crate) fn redact(raw: &str) -> String {
    let (head, had_query) = match raw.split_once('?') {
        Some((head, _)) => (head, true),
        None => (raw, false),
    };
    // Everything before the last `@` is treated as userinfo, even an unencoded `/`
    // in a password: hiding too much is safe, showing a secret is not.
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, after)) => format!("{scheme}://***@{after}"),
            None => head.to_string(),
        },
        None => head.to_string(),
    };
    if had_query {
        out.push_str("?***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_userinfo_passwords_and_queries() {
        assert_eq!(redact("s3://AKIA:s3cr3t@bucket/p"), "s3://***@bucket/p");
        assert_eq!(redact("az://c/p?sv=1&sig=abc"), "az://c/p?***");
        assert_eq!(redact("file:///tmp/x"), "file:///tmp/x");
        assert_eq!(redact("s3://AKIA@bucket"), "s3://***@bucket");
        assert_eq!(redact("s3://key:se/cr@t@bucket/p"), "s3://***@bucket/p");
    }

    #[test]
    fn percent_decoding_of_credentials() {
        assert_eq!(decode("a%2Fb%2b"), "a/b+");
        assert_eq!(decode("plain%"), "plain%");
        assert_eq!(decode("x%zz"), "x%zz");
    }
}
