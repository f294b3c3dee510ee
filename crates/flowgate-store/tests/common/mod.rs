//! The store behaviour suite, written once and run against every backend
//! (`suite.rs` for local and memory, `s3.rs` against moto's S3 server).
#![allow(dead_code)]

use std::path::Path;

use chrono::{TimeZone, Utc};
use flowgate_core::{Build, Digest, Images, Manifest, ManifestEntry};
use flowgate_store::{ArtifactStore, StoreError, Upload};

/// Frames of the test archives: a few, of incompressible bytes, so they are
/// large enough to count and small enough to be quick.
pub const FRAME: usize = 300 * 1024 + 17;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// An archive of independent zstd frames, one per seed: archives that share a
/// seed share that frame, as builds share the frames of unchanged files.
pub fn archive(seeds: &[u8]) -> Vec<u8> {
    seeds.iter().flat_map(|&seed| zstd::bulk::compress(&bytes(FRAME, seed), 1).unwrap()).collect()
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
    let content = archive(&[1, 2, 3]);
    let digest = Digest::of(&content);
    let file = write(tmp, "bundle.tar.zst", &content);
    assert!(!store.has_bundle(&digest).await.unwrap());
    assert_eq!(store.bundle_size(&digest).await.unwrap(), None);
    assert_eq!(store.put_bundle(&digest, &file).await.unwrap(), Upload::Created);
    assert!(store.has_bundle(&digest).await.unwrap());
    assert_eq!(store.bundle_size(&digest).await.unwrap(), Some(content.len() as u64));
    let dest = tmp.join("fetched.tar.zst");
    store.fetch_bundle(&digest, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == content, "fetched bytes differ from the uploaded ones");
    let keys: Vec<String> = store.listing().await.unwrap().into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys.len(), 4, "three frames and a list, no staging objects: {keys:?}");
    assert_eq!(keys[0], format!("bundles/{}.frames", digest.to_hex()));
    assert!(keys[1..].iter().all(|k| k.starts_with("frames/")), "{keys:?}");
}

/// A second bundle stores only the frames the first lacks, and each pulls back whole.
pub async fn bundles_share_their_frames(store: ArtifactStore, tmp: &Path) {
    let (first, second) = (archive(&[1, 2, 3]), archive(&[1, 9, 3]));
    let (d1, d2) = (Digest::of(&first), Digest::of(&second));
    let frames = |bytes: &[u8]| flowgate_bundle::frames_of(bytes).unwrap();
    let (upload, stored) = store.put_bundle_frames(&d1, &write(tmp, "1", &first), &frames(&first)).await.unwrap();
    assert_eq!((upload, stored.frames, stored.uploaded), (Upload::Created, 3, 3));
    let (upload, stored) = store.put_bundle_frames(&d2, &write(tmp, "2", &second), &frames(&second)).await.unwrap();
    assert_eq!((upload, stored.frames, stored.uploaded), (Upload::Created, 3, 1), "only the changed frame is sent");
    assert_eq!(stored.uploaded_bytes, frames(&second)[1].size);
    assert_eq!(store.listing().await.unwrap().len(), 4 + 2, "four distinct frames, two lists");
    for (digest, content) in [(d1, &first), (d2, &second)] {
        let dest = tmp.join(format!("pulled-{}", digest.short()));
        store.fetch_bundle(&digest, &dest).await.unwrap();
        assert!(std::fs::read(&dest).unwrap() == *content, "bundle {digest} pulled back different");
    }
}

/// Frames pulled once are read from the frame cache by the next bundle that
/// has them; a damaged cached frame is fetched again, never used.
pub async fn the_frame_cache_serves_shared_frames(store: ArtifactStore, tmp: &Path) {
    let (first, second) = (archive(&[4, 5]), archive(&[4, 6]));
    let (d1, d2) = (Digest::of(&first), Digest::of(&second));
    store.put_bundle(&d1, &write(tmp, "1", &first)).await.unwrap();
    store.put_bundle(&d2, &write(tmp, "2", &second)).await.unwrap();
    let cache = tmp.join("frame-cache");
    store.fetch_bundle_cached(&d1, &tmp.join("p1"), Some(&cache)).await.unwrap();
    let shared = flowgate_bundle::frames_of(&first[..]).unwrap()[0];
    let shared_key = format!("frames/{}.zst", shared.digest.to_hex());
    if store.local_root().is_none() {
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2, "both frames are kept");
        // The store loses the shared frame: the cache still has it for the second bundle.
        store.delete(&shared_key).await.unwrap();
        store.fetch_bundle_cached(&d2, &tmp.join("p2"), Some(&cache)).await.unwrap();
        assert!(std::fs::read(tmp.join("p2")).unwrap() == second);
        // A damaged cached frame is not used: with the store lacking it, the pull fails.
        let cached = cache.join(format!("{}.zst", shared.digest.to_hex()));
        std::fs::write(&cached, b"not the frame").unwrap();
        let err = store.fetch_bundle_cached(&d2, &tmp.join("p3"), Some(&cache)).await.unwrap_err();
        assert!(err.to_string().contains(&shared_key), "{err}");
        assert!(!cached.exists(), "the damaged cached frame was removed");
    } else {
        // A local store's frames are files already: nothing is copied into a cache.
        assert!(!cache.exists() || std::fs::read_dir(&cache).unwrap().count() == 0);
    }
}

pub async fn second_put_is_already_present_and_changes_nothing(store: ArtifactStore, tmp: &Path) {
    let first = archive(&[2, 3]);
    let digest = Digest::of(&first);
    assert_eq!(store.put_bundle(&digest, &write(tmp, "a", &first)).await.unwrap(), Upload::Created);
    let before = store.listing().await.unwrap();
    // A different file claimed under the same digest must not replace the stored one.
    let other = write(tmp, "b", &archive(&[7]));
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
    assert!(message.contains(&format!("`bundles/{}.frames`", digest.to_hex())), "{message}");
    assert!(message.contains(store.url()), "{message}");
    assert!(!dest.exists(), "a failed fetch leaves no file behind");
    // A file that is not an archive of zstd frames is refused before anything is stored.
    let err = store.put_bundle(&digest, &write(tmp, "junk", b"not zstd")).await.unwrap_err();
    assert!(err.to_string().contains("junk"), "{err}");
    assert!(store.listing().await.unwrap().is_empty());
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
    let content = archive(&[4, 8]);
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
    assert_eq!(store.listing().await.unwrap().len(), 3, "two frames and a list");
}

/// `list` names every object with its size, kind and a last-modified time from
/// the upload; `delete` removes one, and deleting what is gone is success.
pub async fn objects_are_listed_and_deleted(store: ArtifactStore, tmp: &Path) {
    use flowgate_store::ObjectKind;
    use std::time::{Duration, SystemTime};
    assert!(store.list().await.unwrap().is_empty());
    // Remote stores keep whole seconds; clocks of server and test may differ a little.
    let before = SystemTime::now() - Duration::from_secs(5);
    let content = archive(&[5]);
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
        vec![
            ObjectKind::BuildRecord(record.id.clone()),
            ObjectKind::FrameList(digest),
            ObjectKind::Frame(Digest::of(&content)),
            ObjectKind::Manifest(digest)
        ],
        "{listed:?}"
    );
    assert_eq!(listed[2].size, content.len() as u64);
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
    assert_eq!(left, vec![listed[0].key.clone(), listed[2].key.clone(), listed[3].key.clone()]);
    // The bundle can be stored again after it was deleted.
    assert_eq!(store.put_bundle(&digest, &write(tmp, "again", &content)).await.unwrap(), Upload::Created);
}
