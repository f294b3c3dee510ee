//! Fixtures shared by flowgate's end-to-end tests: a temporary git repository
//! holding a project, a way to run the real binary in it with a controlled
//! environment, and the filters that make its output stable for snapshots. The
//! modules hold the servers and walks some tests need: a fault-injecting proxy,
//! Prefect, moto's S3, a container registry, PostgreSQL databases, the CLI's help, a raw HTTP client,
//! secrets audits, and the one rule by which a test may skip.

pub mod cli_help;
pub mod faults;
pub mod http;
pub mod moto;
pub mod oidc;
pub mod postgres;
pub mod prefect;
pub mod receiver;
pub mod registry;
pub mod registry_token;
pub mod secrets;
pub mod skip;
pub mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// A temporary git repository with a committed project in it.
#[derive(Debug)]
pub struct GitProject {
    dir: tempfile::TempDir,
    /// A cache directory outside the project, so `pull` never writes into it.
    cache: tempfile::TempDir,
    /// Copies of every run once [`GitProject::record_runs`] was called.
    recorded: Mutex<Option<Vec<RecordedRun>>>,
}

/// One run of the binary as an audit sees it: the command line and both streams.
/// The environment is left out on purpose: it is where tests put secrets.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    pub cwd: PathBuf,
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// A finished process's exit code and streams.
    pub fn from_output(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn success(self) -> Self {
        self.expect_code(0)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl GitProject {
    /// An empty repository on branch `main` with a fixed identity.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("flowgate-test-").tempdir().expect("temp dir");
        let cache = tempfile::Builder::new().prefix("flowgate-cache-").tempdir().expect("temp dir");
        let project = Self { dir, cache, recorded: Mutex::new(None) };
        project.git(&["init", "-q", "-b", "main"]);
        project.git(&["config", "user.name", "Test Author"]);
        project.git(&["config", "user.email", "author@example.com"]);
        project.git(&["config", "commit.gpgsign", "false"]);
        project
    }

    /// The example project of the quickstart: three flows, qa and prod, committed.
    pub fn example() -> Self {
        let project = Self::new();
        project.write_example();
        project.commit("Three flows");
        project
    }

    /// Writes (without committing) the example project's files, `flowgate.toml`
    /// and `.gitignore` included, over whatever is there.
    pub fn write_example(&self) {
        for (path, text) in EXAMPLE_FILES {
            self.write(path, text);
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, contents).expect("write file");
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path().join(relative)).expect("read file")
    }

    /// Stages everything and commits; returns the new commit's sha.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git").current_dir(self.path()).args(args).output().expect("run git");
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `bin` with `args` in the project, with a controlled environment:
    /// fixed actor and user, no inherited FLOWGATE_ENV, a private pull cache.
    pub fn run(&self, bin: &Path, args: &[&str]) -> Run {
        self.run_with_env(bin, args, &[])
    }

    pub fn run_with_env(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_in(bin, self.path(), args, env)
    }

    /// Like [`GitProject::run_with_env`], but started in `cwd` (another
    /// directory, to test `-C` and worker-style pulls outside any project).
    pub fn run_in(&self, bin: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(bin);
        command
            .current_dir(cwd)
            .args(args)
            .env_remove("FLOWGATE_ENV")
            .env_remove("FLOWGATE_SERVER")
            .env_remove("FLOWGATE_TOKEN")
            .env_remove("RUST_LOG")
            .env("FLOWGATE_ACTOR", "tester@example.com")
            .env("FLOWGATE_USER", "tester")
            .env("FLOWGATE_CACHE_DIR", self.cache_dir())
            .env("NO_COLOR", "1");
        for (key, value) in env {
            command.env(key, value);
        }
        let run = Run::from_output(command.output().expect("run flowgate"));
        if let Some(recorded) = self.recorded.lock().expect("recorded runs").as_mut() {
            recorded.push(RecordedRun {
                cwd: cwd.to_path_buf(),
                args: args.iter().map(|a| a.to_string()).collect(),
                code: run.code,
                stdout: run.stdout.clone(),
                stderr: run.stderr.clone(),
            });
        }
        run
    }

    /// From now on, keeps a copy of every run made through this project (by
    /// `run`, `run_with_env` and `run_in`), for audits over all of a test's
    /// output, such as searching it for secrets. Off by default.
    pub fn record_runs(&self) {
        let mut recorded = self.recorded.lock().expect("recorded runs");
        if recorded.is_none() {
            *recorded = Some(Vec::new());
        }
    }

    /// The runs kept since [`GitProject::record_runs`], oldest first.
    pub fn recorded_runs(&self) -> Vec<RecordedRun> {
        self.recorded.lock().expect("recorded runs").clone().unwrap_or_default()
    }

    /// Every file under `relative` with its size, sorted: proves a directory unchanged.
    pub fn tree_listing(&self, relative: &str) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        walk(&self.path().join(relative), &mut out);
        out.sort();
        out
    }

    /// Every file under `relative` with its bytes, sorted: proves a directory
    /// byte-for-byte unchanged (a rewrite of the same size shows too).
    pub fn tree_contents(&self, relative: &str) -> Vec<(PathBuf, Vec<u8>)> {
        self.tree_listing(relative)
            .into_iter()
            .map(|(path, _)| {
                let bytes = std::fs::read(&path).expect("read file");
                (path, bytes)
            })
            .collect()
    }

    /// A clone of this repository in a new temporary directory, with the same
    /// identity. With `checkout: false` the clone has HEAD but an empty index
    /// and work tree, so a test can check files out its own way (order, umask).
    pub fn clone_repo(&self, checkout: bool) -> GitProject {
        let dir = tempfile::Builder::new().prefix("flowgate-clone-").tempdir().expect("temp dir");
        let cache = tempfile::Builder::new().prefix("flowgate-cache-").tempdir().expect("temp dir");
        let mut args = vec!["clone", "-q"];
        if !checkout {
            args.push("--no-checkout");
        }
        let source = self.path().display().to_string();
        let target = dir.path().display().to_string();
        args.extend([source.as_str(), target.as_str()]);
        let output = Command::new("git").args(&args).output().expect("run git clone");
        assert!(output.status.success(), "git clone: {}", String::from_utf8_lossy(&output.stderr));
        let clone = Self { dir, cache, recorded: Mutex::new(None) };
        clone.git(&["config", "user.name", "Test Author"]);
        clone.git(&["config", "user.email", "author@example.com"]);
        clone.git(&["config", "commit.gpgsign", "false"]);
        clone
    }
}

impl Default for GitProject {
    fn default() -> Self {
        Self::new()
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(&path, out);
        } else {
            out.push((path, meta.len()));
        }
    }
}

/// Regex filters for insta snapshots: ids, hashes, ages and paths vary per run.
pub fn snapshot_filters(project: &GitProject) -> Vec<(String, String)> {
    vec![
        (regex_escape(&project.path().display().to_string()), "[PROJECT]".into()),
        (regex_escape(&project.cache_dir().display().to_string()), "[CACHE]".into()),
        (r"\b[0-9a-f]{64}\b".into(), "[DIGEST]".into()),
        (r"\b[0-9a-f]{40}\b".into(), "[COMMIT]".into()),
        (r"\b[0-9a-f]{20}\b".into(), "[BUILD]".into()),
        (r"\b[0-9a-f]{12}\b".into(), "[SHORT]".into()),
        (r"\b[0-9a-f]{8}\b".into(), "[ID8]".into()),
        (r"\b[0-9a-f]{7}\b".into(), "[ABBREV]".into()),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})".into(), "[TIME]".into()),
        (r"\b\d+[smhd]\b".into(), "[AGE]".into()),
        (r"\d+ bytes".into(), "[N] bytes".into()),
    ]
}

/// A port of 127.0.0.1 nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Every byte of `text` but the unreserved ones (RFC 3986) as `%XX`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn regex_escape(text: &str) -> String {
    text.chars().flat_map(|c| if "\\.+*?()|[]{}^$#&-~".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

const EXAMPLE_FILES: &[(&str, &str)] = &[
    (".gitignore", ".flowgate/\n"),
    ("lib/common.py", "MARKER = \"v1\"\n"),
    (
        "flows/etl.py",
        "from prefect import flow\nfrom lib.common import MARKER\n\n@flow(name=\"etl-daily\")\ndef etl(days: int = 1):\n    print(f\"etl {MARKER} for {days} day(s)\")\n",
    ),
    (
        "flows/report.py",
        "from prefect import flow\nfrom lib.common import MARKER\n\n@flow\ndef report(recipients: list[str] | None = None):\n    print(f\"report {MARKER}\")\n",
    ),
    ("flows/cleanup.py", "from prefect import flow\n\n@flow\ndef cleanup(older_than_days: int = 30):\n    print(\"cleanup\")\n"),
    ("flows/tests/test_etl.py", "def test_nothing():\n    pass\n"),
    (
        "flowgate.toml",
        r#"[project]
name = "acme-flows"
image = "ghcr.io/acme/flows:{short}"
exclude = ["**/tests/**"]

[flows.etl-daily]
entrypoint = "flows/etl.py:etl"
parameters = { days = 1 }
tags = ["etl"]

[flows.report]
entrypoint = "flows/report.py:report"

[flows.cleanup]
entrypoint = "flows/cleanup.py:cleanup"

[envs.qa]
work_pool = "qa-pool"

[envs.prod]
work_pool = "prod-pool"
"#,
    ),
];
