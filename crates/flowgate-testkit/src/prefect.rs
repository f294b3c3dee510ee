//! A real Prefect server and process worker from the pinned virtual environment,
//! for tests that must prove flowgate against the server it will meet in use.
//!
//! Each process runs under a small shell guard in its own process group. The guard
//! holds a pipe from the test process: when the fixture is dropped, or the test
//! process ends without dropping it (a shared `static` server), the pipe closes
//! and the guard stops the whole group with SIGTERM, then SIGKILL after a grace
//! period. So no test leaves a server or worker behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The variable naming the virtual environment with the pinned Prefect release.
pub const PREFECT_VENV_VAR: &str = "FLOWGATE_PREFECT_VENV";

/// How long a started server may take to answer `/api/health`.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Stops the process group once stdin closes: SIGTERM, a grace period, SIGKILL.
const GUARD: &str = r#"
"$@" &
trap '' TERM
cat >/dev/null
kill -TERM 0 2>/dev/null
i=0
while [ $i -lt "$FLOWGATE_GRACE" ] && kill -0 $! 2>/dev/null; do sleep 1; i=$((i+1)); done
kill -KILL 0
"#;

/// The `prefect` executable of the pinned venv; panics with a clear message when missing.
pub fn prefect_bin() -> PathBuf {
    let venv = std::env::var_os(PREFECT_VENV_VAR).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        PathBuf::from(home).join(".cache/flowgate/prefect-3.9.1")
    });
    let bin = venv.join("bin/prefect");
    assert!(
        bin.is_file(),
        "Prefect is not installed at `{}`: run `source scripts/lib.sh && ensure_prefect` (or set {PREFECT_VENV_VAR})",
        bin.display()
    );
    bin
}

/// One guarded child process with its log file.
#[derive(Debug)]
struct Guarded {
    child: Child,
    log: PathBuf,
}

impl Guarded {
    fn spawn(args: &[&str], home: &Path, env: &[(&str, &str)], grace_secs: u32) -> Self {
        let log = home.join("process.log");
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(GUARD)
            .arg("flowgate-prefect-guard")
            .args(args)
            .env("PREFECT_HOME", home)
            .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            .env("DO_NOT_TRACK", "1")
            .env("PREFECT_LOGGING_LEVEL", "INFO")
            .env("FLOWGATE_GRACE", grace_secs.to_string())
            .env_remove("PREFECT_API_URL")
            .env_remove("PREFECT_API_KEY")
            .env_remove("PREFECT_API_AUTH_STRING")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn guarded prefect process");
        Self { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Closing stdin tells the guard to stop the group; wait for it to finish.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prefect server on 127.0.0.1 with its own `PREFECT_HOME`.
#[derive(Debug)]
pub struct PrefectServer {
    process: Guarded,
    port: u16,
    auth_string: Option<String>,
    home: tempfile::TempDir,
}

impl PrefectServer {
    /// Starts a server without authentication and waits until it is healthy.
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// Starts a server that requires `auth_string` (`user:password`) when given.
    pub fn start_with_auth(auth_string: Option<&str>) -> Self {
        let bin = prefect_bin();
        let home = tempfile::Builder::new().prefix("flowgate-prefect-").tempdir().expect("temp dir");
        let port = free_port();
        let port_text = port.to_string();
        let mut env = vec![];
        if let Some(auth) = auth_string {
            env.push(("PREFECT_SERVER_API_AUTH_STRING", auth));
        }
        let bin_text = bin.display().to_string();
        let args = [bin_text.as_str(), "server", "start", "--host", "127.0.0.1", "--port", &port_text];
        let process = Guarded::spawn(&args, home.path(), &env, 10);
        let mut server = Self { process, port, auth_string: auth_string.map(str::to_string), home };
        server.wait_healthy();
        server
    }

    /// Stops the server abruptly, as a crash or power loss would: SIGKILL to its
    /// whole process group, then waits until it is gone. Its `PREFECT_HOME`
    /// (the database) and port stay, for [`PrefectServer::restart`].
    pub fn kill(&mut self) {
        let group = format!("-{}", self.process.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.process.child.wait();
    }

    /// Starts a new server on the same port with the same `PREFECT_HOME` (so the
    /// same database) and waits until it is healthy. Kills the old one first if
    /// it still runs.
    pub fn restart(&mut self) {
        if !self.process.exited() {
            self.kill();
        }
        let bin_text = prefect_bin().display().to_string();
        let port_text = self.port.to_string();
        let mut env = vec![];
        if let Some(auth) = &self.auth_string {
            env.push(("PREFECT_SERVER_API_AUTH_STRING", auth.as_str()));
        }
        let args = [bin_text.as_str(), "server", "start", "--host", "127.0.0.1", "--port", &port_text];
        self.process = Guarded::spawn(&args, self.home.path(), &env, 10);
        self.wait_healthy();
    }

    /// The API root, e.g. `http://127.0.0.1:4200/api`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }

    /// The server's output so far (for failure messages).
    pub fn log(&self) -> String {
        self.process.log_text()
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.process.exited() {
                panic!("Prefect server exited before it became healthy:\n{}", self.log());
            }
            if health_ok(self.port, self.auth_string.as_deref()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prefect server on port {} was not healthy after {START_TIMEOUT:?}:\n{}", self.port, self.log());
    }
}

/// A `process` worker polling one work pool of a server.
#[derive(Debug)]
pub struct PrefectWorker {
    process: Guarded,
    _home: tempfile::TempDir,
}

impl PrefectWorker {
    /// Starts `prefect worker start --pool <pool> --type process` against `api_url`.
    /// `path_prefix` is put first on the worker's PATH (where a test's scripts live).
    pub fn start(api_url: &str, pool: &str, path_prefix: Option<&Path>) -> Self {
        Self::start_with_auth(api_url, pool, path_prefix, None)
    }

    /// As [`PrefectWorker::start`], against a server that requires `auth_string` (`user:password`).
    pub fn start_with_auth(api_url: &str, pool: &str, path_prefix: Option<&Path>, auth_string: Option<&str>) -> Self {
        let bin = prefect_bin();
        let home = tempfile::Builder::new().prefix("flowgate-worker-").tempdir().expect("temp dir");
        let venv_bin = bin.parent().expect("venv bin dir").to_path_buf();
        let mut path = std::env::var("PATH").unwrap_or_default();
        path = format!("{}:{path}", venv_bin.display());
        if let Some(prefix) = path_prefix {
            path = format!("{}:{path}", prefix.display());
        }
        let bin_text = bin.display().to_string();
        let args =
            [bin_text.as_str(), "worker", "start", "--pool", pool, "--type", "process", "--prefetch-seconds", "5"];
        let mut env =
            vec![("PREFECT_API_URL", api_url), ("PATH", path.as_str()), ("PREFECT_WORKER_QUERY_SECONDS", "2")];
        if let Some(auth) = auth_string {
            env.push(("PREFECT_API_AUTH_STRING", auth));
        }
        let process = Guarded::spawn(&args, home.path(), &env, 3);
        Self { process, _home: home }
    }

    /// The worker's output so far (for failure messages).
    pub fn log(&self) -> String {
        self.process.log_text()
    }
}

/// A plain HTTP/1.0 `GET /api/health`, so the fixture needs no HTTP client.
fn health_ok(port: u16, auth_string: Option<&str>) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let auth = auth_string
        .map(|a| {
            use base64::Engine as _;
            format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(a))
        })
        .unwrap_or_default();
    let request = format!("GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}
