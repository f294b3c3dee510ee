//! The store behaviour suite, written once and run against every backend
//! (`suite.rs` for local and memory, `s3.rs` against moto's S3 server).
#![allow(dead_code)]

use std::path::Path;

use chrono::{TimeZone, Utc};
use flowgate_core::{Build, Digest, Images, Manifest, ManifestEntry};
use flowgate_store::{ArtifactStore, StoreError, Upload};

/// Bigger than one multipart part (8 MiB), so the multipart path uploads two parts.
pub const BIG: usize = 9 * 1024 * 1024 + 17;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8).collect()
}

fn write(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn manifest() -> Manifest {
    let entry = |path: &str, content: &[u8]| ManifestEntry {
        path: path.into(),
        size: content.len() as u64,
        blake3: Digest::of(content),
        md5: Some("0cc175b9c0f1b6a831c399e269772661".into()),
        executable: path.ends_with(".sh"),
    };
    Manifest { files: vec![entry("flows/etl.py", b"print(1)"), entry("run.sh", b"#!/bin/sh")] }
}

fn build(bundle: Digest) -> Build {
    let images: Images = [("etl-daily".parse().unwrap(), "ghcr.io/acme/flows@sha256:abc".to_string())].into();
    Build {
        id: Build::derive_id(&bundle, &images, &Default::default()),
        bundle,
        bundle_size: 1234,
        file_count: 2,
        images,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: Some("main".into()),
        dirty: false,
        author: "Alice <alice@example.com>".into(),
        created_at: Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
        settings: None,
    }
}

pub async fn bundle_round_trip(store: ArtifactStore, tmp: &Path) {
    let content = bytes(BIG, 1);
    let digest = Digest::of(&content);
    let file = write(tmp, "bundle.tar.zst", &content);
    assert!(!store.has_bundle(&digest).await.unwrap());
    assert_eq!(store.put_bundle(&digest, &file).await.unwrap(), Upload::Created);
    assert!(store.has_bundle(&digest).await.unwrap());
    let dest = tmp.join("fetched.tar.zst");
    store.fetch_bundle(&digest, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == content, "fetched bytes differ from the uploaded ones");
    let key = format!("bundles/{}.tar.zst", digest.to_hex());
    assert_eq!(store.listing().await.unwrap(), vec![(key, BIG as u64)], "no staging objects are left behind");
}

pub async fn second_put_is_already_present_and_changes_nothing(store: ArtifactStore, tmp: &Path) {
    let first = bytes(BIG, 2);
    let digest = Digest::of(&first);
    assert_eq!(store.put_bundle(&digest, &write(tmp, "a", &first)).await.unwrap(), Upload::Created);
    let before = store.listing().await.unwrap();
    // A different file claimed under the same digest must not replace the stored one.
    let other = write(tmp, "b", &bytes(BIG - 5, 3));
    assert_eq!(store.put_bundle(&digest, &other).await.unwrap(), Upload::AlreadyPresent);
    assert_eq!(store.listing().await.unwrap(), before);
    let dest = tmp.join("fetched");
    store.fetch_bundle(&digest, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == first, "the stored bundle was overwritten");
}

pub async fn fetch_of_a_missing_bundle_names_the_key(store: ArtifactStore, tmp: &Path) {
    let digest = Digest::of(b"never stored");
    let dest = tmp.join("missing.tar.zst");
    let err = store.fetch_bundle(&digest, &dest).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("`bundles/{}.tar.zst`", digest.to_hex())), "{message}");
    assert!(message.contains(store.url()), "{message}");
    assert!(!dest.exists(), "a failed fetch leaves no file behind");
}

pub async fn manifest_round_trip(store: ArtifactStore, _tmp: &Path) {
    let digest = Digest::of(b"bundle");
    let err = store.manifest(&digest).await.unwrap_err();
    assert!(err.to_string().contains(&format!("`manifests/{}.json`", digest.to_hex())), "{err}");
    assert_eq!(store.put_manifest(&digest, &manifest()).await.unwrap(), Upload::Created);
    assert_eq!(store.manifest(&digest).await.unwrap(), manifest());
    let other = Manifest { files: vec![] };
    assert_eq!(store.put_manifest(&digest, &other).await.unwrap(), Upload::AlreadyPresent);
    assert_eq!(store.manifest(&digest).await.unwrap(), manifest());
}

pub async fn build_record_round_trip(store: ArtifactStore, _tmp: &Path) {
    let record = build(Digest::of(b"bundle"));
    assert_eq!(store.build(&record.id).await.unwrap(), None);
    assert_eq!(store.put_build(&record).await.unwrap(), Upload::Created);
    assert_eq!(store.build(&record.id).await.unwrap(), Some(record.clone()));
    let mut changed = record.clone();
    changed.author = "Mallory".into();
    assert_eq!(store.put_build(&changed).await.unwrap(), Upload::AlreadyPresent);
    assert_eq!(store.build(&record.id).await.unwrap(), Some(record.clone()));
    let key = format!("builds/{}.json", record.id);
    assert!(store.listing().await.unwrap().iter().any(|(k, _)| *k == key));
}

pub async fn concurrent_puts_of_one_digest(store: ArtifactStore, tmp: &Path) {
    let content = bytes(BIG, 4);
    let digest = Digest::of(&content);
    let (a, b) = (write(tmp, "one", &content), write(tmp, "two", &content));
    let (s1, s2) = (store.clone(), store.clone());
    let t1 = tokio::spawn(async move { s1.put_bundle(&digest, &a).await });
    let t2 = tokio::spawn(async move { s2.put_bundle(&digest, &b).await });
    let mut outcomes = vec![t1.await.unwrap().unwrap(), t2.await.unwrap().unwrap()];
    outcomes.sort_by_key(|u| u.is_created());
    assert_eq!(outcomes, vec![Upload::AlreadyPresent, Upload::Created]);
    let dest = tmp.join("fetched");
    store.fetch_bundle(&digest, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == content, "object damaged by concurrent uploads");
    assert_eq!(store.listing().await.unwrap().len(), 1);
}

/// `list` names every object with its size, kind and a last-modified time from
/// the upload; `delete` removes one, and deleting what is gone is success.
pub async fn objects_are_listed_and_deleted(store: ArtifactStore, tmp: &Path) {
    use flowgate_store::ObjectKind;
    use std::time::{Duration, SystemTime};
    assert!(store.list().await.unwrap().is_empty());
    // Remote stores keep whole seconds; clocks of server and test may differ a little.
    let before = SystemTime::now() - Duration::from_secs(5);
    let content = bytes(4096, 5);
    let digest = Digest::of(&content);
    store.put_bundle(&digest, &write(tmp, "bundle", &content)).await.unwrap();
    store.put_manifest(&digest, &manifest()).await.unwrap();
    let record = build(digest);
    store.put_build(&record).await.unwrap();
    let after = SystemTime::now() + Duration::from_secs(5);

    let listed = store.list().await.unwrap();
    let kinds: Vec<ObjectKind> = listed.iter().map(|o| o.kind()).collect();
    assert_eq!(
        kinds,
        vec![ObjectKind::BuildRecord(record.id.clone()), ObjectKind::Bundle(digest), ObjectKind::Manifest(digest)],
        "{listed:?}"
    );
    assert_eq!(listed[1].size, 4096);
    assert_eq!(
        listed.iter().map(|o| (o.key.clone(), o.size)).collect::<Vec<_>>(),
        store.listing().await.unwrap(),
        "list and listing agree"
    );
    for object in &listed {
        assert!(before <= object.last_modified && object.last_modified <= after, "{object:?}");
    }

    store.delete(&listed[1].key).await.unwrap();
    assert!(!store.has_bundle(&digest).await.unwrap());
    store.delete(&listed[1].key).await.unwrap();
    let left: Vec<String> = store.list().await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(left, vec![listed[0].key.clone(), listed[2].key.clone()]);
    // The bundle can be stored again after it was deleted.
    assert_eq!(store.put_bundle(&digest, &write(tmp, "again", &content)).await.unwrap(), Upload::Created);
}
