//! How store URLs are read: relative and absolute `file://` roots, a missing root,
//! unsupported schemes, and the absolute URL handed to workers.

use flowgate_core::Digest;
use flowgate_store::{ArtifactStore, StoreError, Upload};
use tempfile::TempDir;

#[test]
fn relative_file_url_resolves_against_base_dir_and_is_created() {
    let project = TempDir::new().unwrap();
    let store = ArtifactStore::open("file://.flowgate/artifacts", project.path()).unwrap();
    let root = project.path().join(".flowgate/artifacts").canonicalize().unwrap();
    assert!(root.is_dir());
    assert_eq!(store.local_root(), Some(root.as_path()));
    assert_eq!(store.url(), format!("file://{}", root.display()));
    assert_eq!(store.to_string(), store.url());
}

#[tokio::test]
async fn absolute_url_reopens_the_same_store_from_anywhere() {
    let project = TempDir::new().unwrap();
    let elsewhere = TempDir::new().unwrap();
    let store = ArtifactStore::open("file://artifacts", project.path()).unwrap();
    let content = b"bundle bytes".to_vec();
    let digest = Digest::of(&content);
    let file = project.path().join("b.tar.zst");
    std::fs::write(&file, &content).unwrap();
    assert_eq!(store.put_bundle(&digest, &file).await.unwrap(), Upload::Created);

    let worker = ArtifactStore::open(store.url(), elsewhere.path()).unwrap();
    assert_eq!(worker.url(), store.url());
    assert!(worker.has_bundle(&digest).await.unwrap());
    let path = worker.local_bundle_path(&digest).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), content);
    assert_eq!(worker.local_bundle_path(&Digest::of(b"absent")), None);
    assert_eq!(ArtifactStore::memory().local_bundle_path(&digest), None);
}

#[test]
fn absolute_url_with_spaces_round_trips() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("my store");
    std::fs::create_dir(&dir).unwrap();
    let store = ArtifactStore::open("file://my store", tmp.path()).unwrap();
    assert!(store.url().contains("my%20store"), "{}", store.url());
    let again = ArtifactStore::open(store.url(), std::path::Path::new("/")).unwrap();
    assert_eq!(again.local_root(), Some(dir.canonicalize().unwrap().as_path()));
}

#[test]
fn missing_absolute_root_is_an_error_naming_it() {
    let tmp = TempDir::new().unwrap();
    let missing = tmp.path().join("nope");
    let url = format!("file://{}", missing.display());
    let err = ArtifactStore::open(&url, tmp.path()).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("`{url}`")), "{err}");
    assert!(!missing.exists(), "an absolute root is never created");
}

#[test]
fn unusable_urls_are_refused_with_the_url_redacted() {
    let tmp = TempDir::new().unwrap();
    for url in ["ftp://user:hunter2@host/x?token=t0k3n", "file://", "not a url", "gs://bucket/p?token=t0k3n"] {
        let err = ArtifactStore::open(url, tmp.path()).unwrap_err();
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{url}: {err:?}");
        let message = format!("{err} {err:?}");
        assert!(!message.contains("hunter2") && !message.contains("t0k3n"), "{message}");
        assert!(message.contains('`'), "{message}");
    }
    let err = ArtifactStore::open("ftp://host/x", tmp.path()).unwrap_err();
    assert!(err.to_string().contains("`ftp://host/x`") && err.to_string().contains("`ftp`"), "{err}");
}

#[tokio::test]
async fn memory_urls_open_an_empty_store() {
    let store = ArtifactStore::open("memory://", std::path::Path::new(".")).unwrap();
    assert_eq!(store.url(), "memory://");
    assert_eq!(store.listing().await.unwrap(), vec![]);
    assert_eq!(format!("{store:?}"), "ArtifactStore { url: \"memory://\", .. }");
}

#[tokio::test]
async fn unreadable_records_are_corrupt_and_name_the_key() {
    let tmp = TempDir::new().unwrap();
    let store = ArtifactStore::open("file://s", tmp.path()).unwrap();
    let root = store.local_root().unwrap().to_path_buf();
    let digest = Digest::of(b"bundle");
    std::fs::create_dir_all(root.join("manifests")).unwrap();
    std::fs::write(root.join(format!("manifests/{}.json", digest.to_hex())), b"{not json").unwrap();
    let err = store.manifest(&digest).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("`manifests/{}.json`", digest.to_hex())), "{err}");

    // A record stored under another build's id is refused, not trusted.
    let id: flowgate_core::BuildId = "0123456789abcdef0123".parse().unwrap();
    let other = "fedcba9876543210fedc";
    let record = serde_json::json!({
        "id": other, "bundle": digest, "bundle_size": 1, "file_count": 1, "images": {},
        "commit": "abc", "branch": null, "dirty": false, "author": "a", "created_at": "2025-01-01T00:00:00Z"
    });
    std::fs::create_dir_all(root.join("builds")).unwrap();
    std::fs::write(root.join(format!("builds/{id}.json")), record.to_string()).unwrap();
    let err = store.build(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(other) && err.to_string().contains(&format!("`builds/{id}.json`")), "{err}");
}

#[tokio::test]
async fn a_local_store_links_a_bundle_on_its_filesystem_instead_of_copying_it() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let project = TempDir::new().unwrap();
    let store = ArtifactStore::open("file://artifacts", project.path()).unwrap();
    let content = b"packed once, written once".to_vec();
    let digest = Digest::of(&content);
    let file = project.path().join("packed.tmp");
    std::fs::write(&file, &content).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(store.put_bundle(&digest, &file).await.unwrap(), Upload::Created);
    let stored = store.local_bundle_path(&digest).unwrap();
    let (a, b) = (std::fs::metadata(&file).unwrap(), std::fs::metadata(&stored).unwrap());
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "the same file, linked");
    assert_eq!(b.mode() & 0o777, 0o644, "readable like a copied bundle");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(std::fs::read(&stored).unwrap(), content, "removing the packed file keeps the bundle");
}
