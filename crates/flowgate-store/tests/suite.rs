//! One behaviour suite for the artifact store, run against every backend we can
//! start without a network: a local directory, memory, and memory forced through
//! the multipart-plus-conditional-copy path that remote stores use for big bundles.

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

            suite!(@tests bundle_round_trip, second_put_is_already_present_and_changes_nothing,
                fetch_of_a_missing_bundle_names_the_key, manifest_round_trip, build_record_round_trip,
                concurrent_puts_of_one_digest);
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
suite!(memory_multipart, |_: &Path| ArtifactStore::memory().with_multipart_threshold(1024));
