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
    let content = zstd::bulk::compress(b"bundle bytes", 3).unwrap();
    let digest = Digest::of(&content);
    let file = project.path().join("b.tar.zst");
    std::fs::write(&file, &content).unwrap();
    assert_eq!(store.put_bundle(&digest, &file).await.unwrap(), Upload::Created);

    let worker = ArtifactStore::open(store.url(), elsewhere.path()).unwrap();
    assert_eq!(worker.url(), store.url());
    assert!(worker.has_bundle(&digest).await.unwrap());
    let pulled = elsewhere.path().join("pulled");
    worker.fetch_bundle(&digest, &pulled).await.unwrap();
    assert_eq!(std::fs::read(pulled).unwrap(), content);
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

/// Bundles stored whole, before frames, are still found, sized, pulled and
/// unpacked in place.
#[tokio::test]
async fn a_bundle_stored_whole_before_frames_is_still_read() {
    let project = TempDir::new().unwrap();
    let store = ArtifactStore::open("file://artifacts", project.path()).unwrap();
    let content = zstd::bulk::compress(b"stored by an older flowgate", 3).unwrap();
    let digest = Digest::of(&content);
    let whole = store.local_root().unwrap().join(format!("bundles/{}.tar.zst", digest.to_hex()));
    std::fs::create_dir_all(whole.parent().unwrap()).unwrap();
    std::fs::write(&whole, &content).unwrap();
    assert!(store.has_bundle(&digest).await.unwrap());
    assert_eq!(store.bundle_size(&digest).await.unwrap(), Some(content.len() as u64));
    assert_eq!(store.local_bundle_path(&digest), Some(whole));
    let pulled = project.path().join("pulled");
    store.fetch_bundle(&digest, &pulled).await.unwrap();
    assert_eq!(std::fs::read(&pulled).unwrap(), content);
    assert_eq!(store.put_bundle(&digest, &pulled).await.unwrap(), Upload::AlreadyPresent, "not stored twice");
    assert_eq!(ArtifactStore::memory().local_bundle_path(&digest), None);
}

/// A frame whose bytes no longer hash to its address is refused by name, and
/// the half-written pull is removed.
#[tokio::test]
async fn a_damaged_frame_is_refused_by_its_key() {
    let project = TempDir::new().unwrap();
    let store = ArtifactStore::open("file://artifacts", project.path()).unwrap();
    let content: Vec<u8> =
        [&b"first frame"[..], b"second frame"].iter().flat_map(|part| zstd::bulk::compress(part, 3).unwrap()).collect();
    let digest = Digest::of(&content);
    let file = project.path().join("b.tar.zst");
    std::fs::write(&file, &content).unwrap();
    store.put_bundle(&digest, &file).await.unwrap();
    let frames = store.bundle_frames(&digest).await.unwrap().unwrap();
    assert_eq!(frames.len(), 2);
    let key = format!("frames/{}.zst", frames[1].digest.to_hex());
    let path = store.local_root().unwrap().join(&key);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, zstd::bulk::compress(b"other frame!", 3).unwrap()).unwrap();
    let pulled = project.path().join("pulled");
    let err = store.fetch_bundle(&digest, &pulled).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&key) && err.to_string().contains("address"), "{err}");
    assert!(!pulled.exists());
}
