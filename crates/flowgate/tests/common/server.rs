//! A running `flowgate serve` and the admin commands that make its tokens.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use flowgate_testkit::http::{request, request_bytes};
use flowgate_testkit::{GitProject, Run};
use serde_json::Value;

use super::{bin, run};

/// A running `flowgate serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Where its stderr (its log, at `-vvv`) goes.
    log: tempfile::NamedTempFile,
}

impl Server {
    /// `flowgate serve -vvv --listen 127.0.0.1:0 ARGS...`, once it listens.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// As [`Server::start`], with `env` in the server's environment (a Prefect credential).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = Command::new(bin())
            .args(["serve", "-vvv", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("spawn flowgate serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read the address");
        let port =
            line.trim().strip_prefix("listening on http://127.0.0.1:").and_then(|p| p.parse().ok()).unwrap_or_else(
                || {
                    let said = std::fs::read_to_string(log.path()).unwrap_or_default();
                    panic!("serve printed `{line}` and logged:\n{said}")
                },
            );
        Self { child, port, log }
    }

    /// Kills it with SIGKILL, as a machine that dies would: no clean stop.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// GET `path` with `token` (if any): the status and the body as JSON.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send("GET", path, token, "")
    }

    /// `method path` with `token` (if any) and a body of any bytes: the status and the answer as JSON.
    pub fn send_bytes(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        headers.push(("Content-Type", "application/octet-stream"));
        let (status, answer) = request_bytes(self.port, method, path, &headers, body);
        (status, serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method} {path}: {e}: {answer}")))
    }

    /// `method path` with `token` (if any) and a JSON `body`: the status and the answer as JSON.
    pub fn send(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let (status, answer) = request(self.port, method, path, &headers, body);
        (status, serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method} {path}: {e}: {answer}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `flowgate ARGS` in `dir`, where no project is needed.
pub fn admin(dir: &Path, args: &[&str]) -> Run {
    Run::from_output(Command::new(bin()).current_dir(dir).args(args).output().expect("run flowgate admin"))
}

/// Project `alpha` (envs `qa` and `prod`), writing the ledger at `ledger`
/// through the CLI: its one flow `ingest` built and released to `qa`.
pub fn released_project(ledger: &str) -> GitProject {
    let alpha = GitProject::new();
    alpha.write(".gitignore", ".flowgate/\n");
    alpha.write("flows/ingest.py", "from prefect import flow\n\n\n@flow\ndef main():\n    pass\n");
    alpha.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"alpha\"\nledger = \"{ledger}\"\n\n[envs.qa]\n\n[envs.prod]\n\n\
             [flows.ingest]\nentrypoint = \"flows/ingest.py:main\"\n"
        ),
    );
    alpha.commit("first");
    run(&alpha, &["build"]).success();
    run(&alpha, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    alpha
}

/// A new token's secret, made by `flowgate admin token create`.
pub fn create_token(dir: &Path, ledger: &str, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["admin", "token", "create", "--name", name, "--ledger", ledger, "--json"];
    args.extend(extra);
    let created = admin(dir, &args).success().json();
    let secret = created["token"].as_str().expect("token").to_string();
    assert!(secret.starts_with("fgt_") && secret.len() == 68, "{secret}");
    secret
}

/// Every project's rows in the ledger at `url` as text (not a file's bytes:
/// SQLite's write-ahead log changes those and not the ledger).
pub fn ledger_dump_at(url: &str, base: &Path) -> String {
    let parsed: flowgate_ledger::LedgerUrl = url.parse().expect("ledger url");
    // The dump is of every project; opening needs one, and a claim without a
    // repository on a project the ledger holds registers nothing.
    let claim = flowgate_ledger::ProjectClaim { name: "alpha".parse().unwrap(), root_commit: None, remote: None };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let opened = flowgate_ledger::testing::open(&parsed, base, &claim).await.expect("open the ledger");
        opened.dump().await.expect("dump the ledger")
    })
}

/// Every file under `dir` with its size, sorted: what a store holds.
pub fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                found.push((path.strip_prefix(dir).unwrap().display().to_string(), size));
            }
        }
    }
    found.sort();
    found
}

/// The bundle of `project`'s build `build` (its frames in its local store,
/// concatenated) and its digest.
pub fn local_bundle(project: &GitProject, build: &Value) -> (Vec<u8>, String) {
    let digest = build["bundle"].as_str().expect("the build's bundle digest").to_string();
    let store = project.path().join(".flowgate/artifacts");
    let list = store.join(format!("bundles/{digest}.frames"));
    let list = std::fs::read_to_string(&list).unwrap_or_else(|e| panic!("{}: {e}", list.display()));
    let mut bytes = Vec::new();
    for line in list.lines().skip(1) {
        let frame = store.join(format!("frames/{}.zst", line.split(' ').next().unwrap()));
        bytes.extend(std::fs::read(&frame).unwrap_or_else(|e| panic!("{}: {e}", frame.display())));
    }
    (bytes, digest)
}

/// Whether a store directory holds the bundle `digest` (as its frame list).
pub fn holds_bundle(store: &std::path::Path, digest: &str) -> bool {
    store.join(format!("bundles/{digest}.frames")).is_file()
}
