//! One behaviour suite for the artifact store, run against every backend we can
//! start without a network: a local directory and memory.

mod common;

use std::path::Path;

use flowgate_store::ArtifactStore;
use tempfile::TempDir;

macro_rules! suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            fn store(tmp: &TempDir) -> ArtifactStore {
                #[allow(clippy::redundant_closure_call)]
                ($make)(tmp.path())
            }

            suite!(@tests bundle_round_trip, bundles_share_their_frames, the_frame_cache_serves_shared_frames,
                second_put_is_already_present_and_changes_nothing,
                fetch_of_a_missing_bundle_names_the_key, manifest_round_trip, build_record_round_trip,
                concurrent_puts_of_one_digest, objects_are_listed_and_deleted);
        }
    };
    (@tests $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let tmp = TempDir::new().unwrap();
                common::$name(store(&tmp), tmp.path()).await;
            }
        )*
    };
}

suite!(local, |dir: &Path| ArtifactStore::open("file://store/artifacts", dir).unwrap());
suite!(memory, |_: &Path| ArtifactStore::memory());

/// What only a local store has: staging files an interrupted write leaves,
/// which object_store hides from readers, are listed (with their age) and can
/// be deleted; keys that would leave the store are refused.
#[tokio::test]
async fn local_staging_files_are_listed_and_deletable() {
    use flowgate_store::{ObjectKind, StoreError};
    let tmp = TempDir::new().unwrap();
    let store = ArtifactStore::open("file://store", tmp.path()).unwrap();
    let root = store.local_root().unwrap().to_path_buf();
    std::fs::create_dir_all(root.join("bundles")).unwrap();
    let staged = root.join("bundles/0000.tar.zst#4242");
    std::fs::write(&staged, b"half a bundle").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options().write(true).open(&staged).unwrap().set_modified(old).unwrap();
    assert!(store.listing().await.unwrap().is_empty(), "object_store itself does not show it");

    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].size), ("bundles/0000.tar.zst#4242", 13));
    assert_eq!(listed[0].kind(), ObjectKind::Staging);
    assert_eq!(listed[0].last_modified, old);
    store.delete(&listed[0].key).await.unwrap();
    assert!(!staged.exists());

    for bad in ["../outside", "/etc/passwd", ""] {
        let err = store.delete(bad).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{bad}: {err:?}");
    }
}
