//! A real Prefect server from the pinned virtual environment (the one the tests
//! use), with its `PREFECT_HOME` and SQLite database under the benchmark's work
//! directory, and the `prefect` CLI pointed at it.
//!
//! As in the test kit, the server runs under a small shell guard in its own
//! process group; the guard holds a pipe from this process and stops the whole
//! group (SIGTERM, then SIGKILL) when the pipe closes: when the server is
//! dropped, or when the benchmark ends in any other way.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// The variable naming the virtual environment with the pinned Prefect release.
const PREFECT_VENV_VAR: &str = "FLOWGATE_PREFECT_VENV";

/// How long a started server may take to answer `/api/health`.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Stops the process group once stdin closes: SIGTERM, a grace period, SIGKILL.
const GUARD: &str = r#"
"$@" &
trap '' TERM
cat >/dev/null
kill -TERM 0 2>/dev/null
i=0
while [ $i -lt 10 ] && kill -0 $! 2>/dev/null; do sleep 1; i=$((i+1)); done
kill -KILL 0
"#;

/// The `prefect` executable of the pinned venv (`FLOWGATE_PREFECT_VENV`, else
/// `~/.cache/flowgate/prefect-3.9.1`).
pub fn prefect_bin() -> Result<PathBuf> {
    let venv = match std::env::var_os(PREFECT_VENV_VAR) {
        Some(venv) => PathBuf::from(venv),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/flowgate/prefect-3.9.1")
        }
    };
    let bin = venv.join("bin/prefect");
    if !bin.is_file() {
        bail!(
            "Prefect is not installed at `{}`: run `source scripts/lib.sh && ensure_prefect` (or set {PREFECT_VENV_VAR})",
            bin.display()
        );
    }
    Ok(bin)
}

/// The variables every Prefect process of the benchmark gets: its own home, no
/// telemetry, nothing inherited that could point it at another server.
fn isolate(cmd: &mut Command, home: &Path) {
    cmd.env("PREFECT_HOME", home)
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env("DO_NOT_TRACK", "1")
        .env_remove("PREFECT_API_URL")
        .env_remove("PREFECT_API_KEY")
        .env_remove("PREFECT_API_AUTH_STRING")
        .env_remove("PREFECT_PROFILE");
}

/// A Prefect server on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct PrefectServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl PrefectServer {
    /// `prefect server start` on a free port with `PREFECT_HOME` = `home`
    /// (created empty: a new SQLite database), waiting until it is healthy.
    pub fn start(bin: &Path, home: &Path) -> Result<Self> {
        Self::start_on(bin, home, None)
    }

    /// Like [`Self::start`], with `database` (`postgresql+asyncpg://…`, an
    /// empty database) as the server's database instead of SQLite.
    pub fn start_on(bin: &Path, home: &Path, database: Option<&str>) -> Result<Self> {
        if home.exists() {
            std::fs::remove_dir_all(home).with_context(|| format!("Failed to remove `{}`", home.display()))?;
        }
        std::fs::create_dir_all(home).with_context(|| format!("Failed to create `{}`", home.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = home.join("server.log");
        let out = std::fs::File::create(&log).with_context(|| format!("Failed to create `{}`", log.display()))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(GUARD)
            .arg("flowgate-bench-prefect-guard")
            .arg(bin)
            .args(["server", "start", "--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        isolate(&mut cmd, home);
        if let Some(url) = database {
            cmd.env("PREFECT_API_DATABASE_CONNECTION_URL", url);
        }
        let child = cmd.spawn().context("Failed to start `prefect server start`")?;
        let mut server = Self { child, port, log };
        server.wait_healthy()?;
        Ok(server)
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The API root, e.g. `http://127.0.0.1:4200/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.address())
    }

    /// `POST /api{path}` with a JSON body, straight to the server; its JSON answer.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let body = body.to_string();
        let request = format!(
            "POST /api{path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(request.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, text) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        if !head.starts_with("HTTP/1.1 2") && !head.starts_with("HTTP/1.0 2") {
            bail!("`POST /api{path}` answered `{}`: {text}", head.lines().next().unwrap_or(""));
        }
        serde_json::from_str(text).with_context(|| format!("`POST /api{path}` answered no JSON: {text}"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("The Prefect server exited ({status}) before it became healthy:\n{}", self.log_tail());
            }
            if health_ok(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!("The Prefect server on port {} was not healthy after {START_TIMEOUT:?}:\n{}", self.port, self.log_tail())
    }
}

impl Drop for PrefectServer {
    fn drop(&mut self) {
        // Closing stdin tells the guard to stop the group; wait for it to finish.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `prefect ARGS` in `dir`, with its own `PREFECT_HOME` (`home`) and
/// `PREFECT_API_URL` = `api_url`.
pub fn cli(bin: &Path, home: &Path, api_url: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir).args(args);
    isolate(&mut cmd, home);
    cmd.env("PREFECT_API_URL", api_url);
    cmd
}

/// A plain HTTP/1.0 `GET /api/health`.
fn health_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}
