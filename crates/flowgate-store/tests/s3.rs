//! The store suite against a real S3 protocol server (`moto_server` from PyPI, on a
//! free port of 127.0.0.1), both with single puts and with the multipart upload and
//! conditional copy that big bundles take (so both are known to send what an S3
//! server needs for create-if-absent). Needs `moto_server` on PATH; set
//! `FLOWGATE_SKIP_S3=1` to skip it on a machine without it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowgate_store::ArtifactStore;
use tempfile::TempDir;

/// Kills the server however the test ends.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Moto, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("`moto_server` must be on PATH (pip install 'moto[server]'), or set FLOWGATE_SKIP_S3=1");
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "`moto_server` did not listen on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    (moto, port)
}

/// Create a bucket with one unsigned request (moto accepts them).
fn create_bucket(port: u16, bucket: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request =
        format!("PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "creating bucket `{bucket}` failed: {response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_against_moto_s3() {
    if std::env::var_os("FLOWGATE_SKIP_S3").is_some() {
        eprintln!("FLOWGATE_SKIP_S3 is set: the S3 suite did not run");
        return;
    }
    let (_moto, port) = start_moto();
    std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    create_bucket(port, "flowgate-test");

    let mut run = 0;
    macro_rules! run {
        ($name:ident, $threshold:expr) => {{
            run += 1;
            let tmp = TempDir::new().unwrap();
            let url = format!("s3://flowgate-test/run-{run}");
            let store = ArtifactStore::open(&url, tmp.path()).unwrap().with_multipart_threshold($threshold);
            assert_eq!(store.url(), url);
            common::$name(store, tmp.path()).await;
        }};
    }
    for threshold in [u64::MAX, 1024] {
        run!(bundle_round_trip, threshold);
        run!(second_put_is_already_present_and_changes_nothing, threshold);
        run!(fetch_of_a_missing_bundle_names_the_key, threshold);
        // Not `concurrent_puts_of_one_digest`: moto checks `If-None-Match` and then
        // writes without a lock, so two racing creates can both succeed there. AWS
        // S3 evaluates the condition atomically; local and memory run that test.
    }
    run!(objects_are_listed_and_deleted, u64::MAX);
    run!(manifest_round_trip, 0);
    run!(build_record_round_trip, 0);
}
