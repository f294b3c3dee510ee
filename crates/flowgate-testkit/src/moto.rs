//! A real S3 protocol server: `moto_server` (from PyPI, pinned in scripts/lib.sh)
//! on a free port of 127.0.0.1, killed however the test ends.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started `moto_server` may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `moto_server`; dropping it kills the process.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts `moto_server` from PATH and waits until it listens; panics saying
    /// that scripts/test installs it when it is missing.
    pub fn start() -> Self {
        Self::start_with_hint("scripts/test installs it")
    }

    /// Like [`Moto::start`], with `hint` (how to install it, or skip the test)
    /// in the message when `moto_server` is not on PATH.
    pub fn start_with_hint(hint: &str) -> Self {
        let port = crate::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("`moto_server` must be on PATH ({hint}): {e}"));
        let moto = Self { child, port };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "`moto_server` did not listen on port {port} within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:5000` (what `AWS_ENDPOINT_URL` takes).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` with one unsigned request (moto accepts them).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = crate::http::request(self.port, "PUT", &format!("/{bucket}"), &[], "");
        assert_eq!(status, 200, "creating bucket `{bucket}` failed: {body}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
