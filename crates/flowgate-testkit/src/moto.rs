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
        Self::spawn().unwrap_or_else(|e| panic!("`moto_server` must be on PATH (scripts/test installs it): {e}"))
    }

    /// Like [`Moto::start`], but when `moto_server` is not on PATH the test
    /// may skip: `None` when [`crate::skip::S3`] is `1` outside CI, a panic
    /// otherwise (see [`crate::skip`]).
    pub fn start_or_skip() -> Option<Self> {
        crate::skip::check_value(crate::skip::S3);
        match Self::spawn() {
            Ok(moto) => Some(moto),
            Err(e) => {
                let missing = format!("`moto_server` is not on PATH ({e})");
                let hint = "Run `source scripts/lib.sh && ensure_python_tools` (it installs moto into ~/.cache/flowgate/venv and puts it on PATH)";
                crate::skip::or_fail(crate::skip::S3, &missing, hint);
                None
            }
        }
    }

    fn spawn() -> std::io::Result<Self> {
        let port = crate::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let moto = Self { child, port };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "`moto_server` did not listen on port {port} within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
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
