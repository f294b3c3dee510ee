//! The store suite against a real S3 protocol server (`moto_server` from PyPI, on a
//! free port of 127.0.0.1), so the store is known to send what an S3 server needs
//! for create-if-absent. Needs `moto_server` on PATH; on a machine
//! without it, `FLOWGATE_SKIP_S3=1` skips the suite (never under `CI=true`).

mod common;

use flowgate_store::ArtifactStore;
use flowgate_testkit::moto::Moto;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_against_moto_s3() {
    let Some(moto) = Moto::start_or_skip() else { return };
    std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint());
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    moto.create_bucket("flowgate-test");

    let mut run = 0;
    macro_rules! run {
        ($name:ident) => {{
            run += 1;
            let tmp = TempDir::new().unwrap();
            let url = format!("s3://flowgate-test/run-{run}");
            let store = ArtifactStore::open(&url, tmp.path()).unwrap();
            assert_eq!(store.url(), url);
            common::$name(store, tmp.path()).await;
        }};
    }
    run!(bundle_round_trip);
    run!(bundles_share_their_frames);
    run!(the_frame_cache_serves_shared_frames);
    run!(second_put_is_already_present_and_changes_nothing);
    run!(fetch_of_a_missing_bundle_names_the_key);
    // Not `concurrent_puts_of_one_digest`: moto checks `If-None-Match` and then
    // writes without a lock, so two racing creates can both succeed there. AWS
    // S3 evaluates the condition atomically; local and memory run that test.
    run!(objects_are_listed_and_deleted);
    run!(manifest_round_trip);
    run!(build_record_round_trip);
}
