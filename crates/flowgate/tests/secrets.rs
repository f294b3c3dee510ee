//! Issue 5 (6): secrets never show. Real secrets sit in every place a user puts
//! one: a PostgreSQL ledger URL with a password (a role made for the test), an
//! S3 store URL with an access key (moto), a Prefect auth string (a real server
//! started with it), a bearer token variable, and a worker's AWS_* variables; a
//! second test puts a token in a Prefect API URL. Every command, its error paths included, runs at
//! `-vvv` (trace, every crate's logs) as text and as JSON; every byte of output,
//! the ledger dump and the deployments on the server are searched for each secret
//! in raw, percent-encoded and Basic-header (base64) form. Any hit fails, naming
//! the command and the line.

mod common;

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bin;
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::{GitProject, RecordedRun, Run};

/// 32 random hex digits, from std's per-process random hasher keys.
fn random_hex() -> String {
    let word = || RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", word(), word())
}

/// The secrets of one test and every form each may take in output.
struct Secrets {
    /// (what it is, the text that must never show)
    forms: Vec<(String, String)>,
}

impl Secrets {
    fn new() -> Self {
        Self { forms: Vec::new() }
    }

    /// `secret` itself and its percent-encoding.
    fn add(&mut self, what: &str, secret: &str) {
        self.forms.push((what.to_string(), secret.to_string()));
        let encoded = percent_encode(secret);
        if encoded != secret {
            self.forms.push((format!("{what} (percent-encoded)"), encoded));
        }
    }

    /// An auth string sent as HTTP Basic: the string and its base64.
    fn add_basic(&mut self, what: &str, auth: &str) {
        self.add(what, auth.split_once(':').map_or(auth, |(_, secret)| secret));
        self.forms.push((format!("{what} (Basic header)"), base64(auth)));
    }

    /// Every line of every run's output that shows a secret, described.
    fn in_runs(&self, runs: &[RecordedRun]) -> Vec<String> {
        let mut out = Vec::new();
        for run in runs {
            let command = format!("`flowgate {}` (exit {})", run.args.join(" "), run.code);
            out.extend(self.hits(&format!("{command} stdout"), &run.stdout));
            out.extend(self.hits(&format!("{command} stderr"), &run.stderr));
        }
        out
    }

    /// Every line of `text` that shows a secret, described.
    fn hits(&self, source: &str, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (number, line) in text.lines().enumerate() {
            for (what, form) in &self.forms {
                if line.contains(form.as_str()) {
                    out.push(format!("{source}, line {}: {what} in `{}`", number + 1, line.trim()));
                }
            }
        }
        out
    }
}

const AUTH_VAR: &str = "PREFECT_TEST_AUTH";
const TOKEN_VAR: &str = "PREFECT_TEST_TOKEN";
const BUCKET: &str = "flowgate-secrets";
const FLOW: &str = "from prefect import flow\n\n@flow(name=\"guarded\")\ndef guarded(n: int = 1):\n    print(n)\n";

/// The project's configuration: qa and prod on the authenticated server (prod
/// gated by approval and rolled out in one wave), `cloud` sending the bearer
/// token to it (refused), `down` an unreachable server; `extra` is appended.
fn config(ledger: &str, store: &str, api: &str, down_api: &str, extra: &str) -> String {
    format!(
        "[project]\nname = \"secretive\"\nledger = \"{ledger}\"\nartifacts = \"{store}\"\n\n\
         [flows.guarded]\nentrypoint = \"flows/guarded.py:guarded\"\nwork_pool = \"secret-pool\"\n\n\
         [envs.qa]\nprefect_api_url = \"{api}\"\nname_prefix = \"qa-\"\n\
         prefect_auth = {{ env = \"{AUTH_VAR}\", scheme = \"basic\" }}\n\n\
         [envs.prod]\nprefect_api_url = \"{api}\"\nname_prefix = \"prod-\"\n\
         prefect_auth = {{ env = \"{AUTH_VAR}\", scheme = \"basic\" }}\n\
         policy = {{ approval = true }}\nrollout = {{ waves = [[\"*\"]] }}\n\n\
         [envs.cloud]\nprefect_api_url = \"{api}\"\nname_prefix = \"cloud-\"\n\
         prefect_auth = {{ env = \"{TOKEN_VAR}\", scheme = \"bearer\" }}\n\n\
         [envs.down]\nprefect_api_url = \"{down_api}\"\nname_prefix = \"down-\"\n\
         prefect_auth = {{ env = \"{AUTH_VAR}\", scheme = \"basic\" }}\n\n{extra}"
    )
}

/// Runs one command twice, at `-vvv` as text and as JSON, with `env`; checks the
/// exit code of both, and that the JSON run printed one JSON document.
struct Runner<'a> {
    p: &'a GitProject,
    env: Vec<(String, String)>,
    /// How many runs were made, to check the recording kept every one.
    runs: Cell<usize>,
}

impl Runner<'_> {
    fn run_in(&self, cwd: &Path, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        self.runs.set(self.runs.get() + 1);
        self.p.run_in(bin(), cwd, args, &env)
    }

    /// Both modes; returns the JSON run's document.
    #[track_caller]
    fn both(&self, args: &[&str], code: i32) -> serde_json::Value {
        self.both_with(args, code, &[])
    }

    #[track_caller]
    fn both_with(&self, args: &[&str], code: i32, extra: &[(&str, &str)]) -> serde_json::Value {
        self.both_in(self.p.path(), args, code, extra)
    }

    #[track_caller]
    fn both_in(&self, cwd: &Path, args: &[&str], code: i32, extra: &[(&str, &str)]) -> serde_json::Value {
        self.each_in(cwd, args, (code, code), extra)
    }

    /// Both modes, whatever they exit with (for a test of output only).
    fn any(&self, args: &[&str]) {
        for mode in [&["-vvv"][..], &["-vvv", "--json"]] {
            let mut all = mode.to_vec();
            all.extend_from_slice(args);
            self.run_in(self.p.path(), &all, &[]);
        }
    }

    /// For a command that changes state, the JSON run (second) may meet the
    /// state the text run left: its exit code is given apart.
    #[track_caller]
    fn each(&self, args: &[&str], codes: (i32, i32)) -> serde_json::Value {
        self.each_in(self.p.path(), args, codes, &[])
    }

    #[track_caller]
    fn each_in(&self, cwd: &Path, args: &[&str], codes: (i32, i32), extra: &[(&str, &str)]) -> serde_json::Value {
        let mut text_args = vec!["-vvv"];
        text_args.extend_from_slice(args);
        let text = self.run_in(cwd, &text_args, extra);
        assert!(!text.stderr.is_empty(), "`{text_args:?}` logged nothing at -vvv");
        assert_eq!(text.code, codes.0, "`{text_args:?}`\n--- stdout\n{}\n--- stderr\n{}", text.stdout, text.stderr);
        let mut json_args = vec!["-vvv", "--json"];
        json_args.extend_from_slice(args);
        let json = self.run_in(cwd, &json_args, extra);
        assert_eq!(json.code, codes.1, "`{json_args:?}`\n--- stdout\n{}\n--- stderr\n{}", json.stdout, json.stderr);
        json.json()
    }
}

#[test]
fn no_secret_shows_in_any_output_log_error_ledger_row_or_deployment() {
    let mut secrets = Secrets::new();

    // PostgreSQL: a role with a password that needs percent-encoding in a URL.
    let pg_core = random_hex();
    let pg_password = format!("pw/{pg_core}+@:x");
    secrets.add("the database password", &pg_password);
    // Any other escaping of the password still holds its random part.
    secrets.add("the database password's random part", &pg_core);
    let Some(role) = PgRole::create("flowgate_secrets", &pg_password) else { return };
    let ledger = role.url();

    // S3 on moto: credentials in the store URL; the worker gets them as variables.
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (key_id, key_secret) = (format!("AKID{}", &random_hex()[..16].to_uppercase()), random_hex());
    secrets.add("the S3 access key id", &key_id);
    secrets.add("the S3 secret key", &key_secret);
    let store_clean = format!("s3://{BUCKET}/builds");
    let store = format!("s3://{key_id}:{key_secret}@{BUCKET}/builds");

    // Prefect: a server started with an auth string; a wrong one and a bearer token.
    let auth = format!("admin:{}", random_hex());
    secrets.add_basic("the Prefect auth string", &auth);
    let wrong_auth = format!("admin:{}", random_hex());
    secrets.add_basic("a wrong Prefect auth string", &wrong_auth);
    let token = format!("pnu_{}", random_hex());
    secrets.add("the bearer token", &token);
    let server = PrefectServer::start_with_auth(Some(&auth));
    let api = server.api_url();
    let down_api = format!("http://127.0.0.1:{}/api", free_port());

    let p = GitProject::new();
    p.record_runs();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flowgate.toml", &config(&ledger, &store, &api, &down_api, ""));
    p.write("flows/guarded.py", FLOW);
    p.commit("v1");
    let r = Runner {
        p: &p,
        env: moto
            .env()
            .into_iter()
            .chain([(AUTH_VAR.into(), auth.clone()), (TOKEN_VAR.into(), token.clone())])
            .collect(),
        runs: Cell::new(0),
    };

    // The happy path, every command.
    let b1 = r.both(&["build"], 0)["build"]["id"].as_str().expect("build id").to_string();
    r.both(&["builds"], 0);
    r.both(&["show", &b1], 0);
    r.both(&["release", "guarded", "--env", "qa", "--build", &b1, "--create-work-pools"], 0);
    r.both(&["status"], 0);
    r.both(&["history", "guarded", "--env", "qa"], 0);
    r.both(&["plan", "--env", "qa"], 0);
    r.both(&["sync", "--env", "qa"], 0);
    r.both(&["approve", &b1, "--env", "prod", "--reason", "checked"], 0);
    // The second start (JSON) meets the first's active rollout: a conflict, shown too.
    r.each(&["rollout", "start", "--to", "prod", "--from", "qa", "--detach", "--reason", "first"], (0, 4));
    r.both(&["rollout", "status", "--env", "prod"], 0);
    r.both(&["rollout", "watch", "--env", "prod", "--interval", "1"], 0);
    r.both(&["diff", "qa", "prod"], 0);
    let pulled = r.both(&["pull", &b1], 0);
    assert!(pulled["path"].is_string(), "{pulled}");

    p.write("flows/guarded.py", &FLOW.replace("print(n)", "print(n * 2)"));
    p.commit("v2");
    let b2 = r.both(&["build"], 0)["build"]["id"].as_str().expect("build id").to_string();
    r.both(&["release", "guarded", "--env", "qa", "--build", &b2], 0);
    r.both(&["approve", &b2, "--env", "prod", "--reason", "checked"], 0);
    r.both(&["promote", "--from", "qa", "--to", "prod"], 0);
    r.both(&["rollback", "guarded", "--env", "prod"], 0);
    r.both(&["diff", "qa", "prod"], 0);

    // A worker-style pull for a flow run of the qa deployment, as Prefect runs the
    // pull step: no project, the store URL from the deployment, the cloud
    // credentials and the run's API auth in the environment. It records the
    // build on the run, which `which` then reads.
    let (flow_run, pull_script) = flow_run_and_pull_step(&api, &auth, "qa-guarded");
    let words: Vec<&str> = pull_script.split_whitespace().collect();
    assert_eq!(words[..2], ["flowgate", "pull"], "{pull_script}");
    assert!(pull_script.contains(&store_clean), "the pull step names the clean store URL: {pull_script}");
    let worker = tempfile::tempdir().expect("temp dir");
    let worker_env = [
        ("AWS_ACCESS_KEY_ID", key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", key_secret.as_str()),
        ("PREFECT__FLOW_RUN_ID", flow_run.as_str()),
        ("PREFECT_API_URL", api.as_str()),
        ("PREFECT_API_AUTH_STRING", auth.as_str()),
    ];
    r.both_in(worker.path(), &words[1..], 0, &worker_env);
    r.both(&["which", &flow_run, "--env", "qa"], 0);
    // The same with the credentials in `--store` instead.
    let build_arg = words.iter().skip(2).find(|w| !w.starts_with('-')).expect("build in the pull step");
    r.both_in(worker.path(), &["pull", build_arg, "--store", &store], 0, &[]);

    // Error paths: a wrong auth string, a bearer token the server refuses, an
    // unreachable server.
    r.both_with(&["sync", "--env", "qa"], 1, &[(AUTH_VAR, &wrong_auth)]);
    r.both_with(&["plan", "--env", "qa"], 1, &[(AUTH_VAR, &wrong_auth)]);
    r.both(&["sync", "--env", "cloud", "--create-work-pools"], 1);
    r.both(&["release", "guarded", "--env", "down", "--build", &b2], 1);
    r.both(&["which", &flow_run, "--env", "cloud"], 1);

    // Error paths of the ledger and the store, each in a project of its own config.
    let broken = GitProject::new();
    broken.record_runs();
    broken.write(".gitignore", ".flowgate/\n");
    broken.write("flows/guarded.py", FLOW);
    let b = Runner { p: &broken, env: r.env.clone(), runs: Cell::new(0) };
    let bad_ledgers = [
        // Unreachable server.
        (role.url_with_host("127.0.0.1", free_port()), 1),
        // A role that does not exist (trust auth still names the role, not the password).
        (role.url_with_user("flowgate_nobody"), 1),
        // No host: a malformed URL.
        (format!("postgres://{}:{}@/db", role.name(), percent_encode(&pg_password)), 2),
        // An unsupported scheme carrying a password.
        (format!("mysql://{}:{}@127.0.0.1/db", role.name(), percent_encode(&pg_password)), 2),
    ];
    for (bad, code) in &bad_ledgers {
        broken.write("flowgate.toml", &config(bad, &store, &api, &down_api, ""));
        broken.commit("bad ledger");
        b.both(&["status"], *code);
    }
    let bad_stores = [
        // A bucket that does not exist.
        (format!("s3://{key_id}:{key_secret}@no-such-bucket/x"), 1),
        // A query on an s3:// URL, and a key without its secret.
        (format!("s3://{key_id}:{key_secret}@{BUCKET}/x?token={key_secret}"), 2),
        (format!("s3://{key_id}@{BUCKET}/x"), 2),
        // An Azure SAS token in the query (no account configured).
        (format!("az://container/x?sv=2024&sig={key_secret}"), 1),
    ];
    for (bad, code) in &bad_stores {
        broken.write("flowgate.toml", &config(&ledger, bad, &api, &down_api, ""));
        broken.commit("bad store");
        b.both(&["build"], *code);
    }
    // A store that answers "no such bucket" has no such build: exit 2.
    let missing = format!("s3://{key_id}:{key_secret}@no-such-bucket/x");
    r.both_in(worker.path(), &["pull", build_arg, "--store", &missing], 2, &[]);

    // Everything that was printed, the ledger and what the server holds.
    let runs: Vec<RecordedRun> = p.recorded_runs().into_iter().chain(broken.recorded_runs()).collect();
    assert_eq!(runs.len(), r.runs.get() + b.runs.get(), "the recording missed runs");
    let mut hits = secrets.in_runs(&runs);
    let dump = ledger_dump(&ledger, p.path());
    assert!(dump.contains(&b2), "the dump shows the ledger's rows");
    hits.extend(secrets.hits("the ledger dump", &dump));
    let deployments = deployments_json(&api, &auth);
    assert!(deployments.contains("qa-guarded") && deployments.contains("prod-guarded"), "{deployments}");
    hits.extend(secrets.hits("the deployments on the Prefect server", &deployments));
    assert!(hits.is_empty(), "secrets shown ({}):\n{}", hits.len(), hits.join("\n"));
    drop(server);
}

/// A token written into `prefect_api_url`: in the authority, in the query and
/// in a URL of the wrong scheme. The config check refuses all three without
/// quoting the URL; whatever each command answers, no output shows the token.
/// (Found by this audit: the query form was once taken and shown by connection
/// errors, and the wrong-scheme form quoted whole by the config error.)
#[test]
fn a_token_in_a_prefect_api_url_never_shows() {
    let url_token = random_hex();
    let mut secrets = Secrets::new();
    secrets.add("the token in a Prefect API URL", &url_token);
    let p = GitProject::new();
    p.record_runs();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flows/guarded.py", FLOW);
    let r = Runner { p: &p, env: Vec::new(), runs: Cell::new(0) };
    let urls = [
        format!("http://flowgate:{url_token}@127.0.0.1:{}/api", free_port()),
        format!("http://127.0.0.1:{}/api?token={url_token}", free_port()),
        format!("ftp://flowgate:{url_token}@127.0.0.1/api"),
    ];
    for url in &urls {
        p.write(
            "flowgate.toml",
            &format!(
                "[project]\nname = \"tokens\"\n\n[flows.guarded]\nentrypoint = \"flows/guarded.py:guarded\"\n\n\
                 [envs.qa]\nprefect_api_url = \"{url}\"\n"
            ),
        );
        p.commit("a token in the server URL");
        for args in [&["status"][..], &["sync", "--env", "qa"], &["plan", "--env", "qa"]] {
            r.any(args);
        }
    }
    let runs = p.recorded_runs();
    assert_eq!(runs.len(), r.runs.get(), "the recording missed runs");
    let hits = secrets.in_runs(&runs);
    assert!(hits.is_empty(), "secrets shown ({}):\n{}", hits.len(), hits.join("\n"));
}

// ---- Fixtures: each shares no code with flowgate (raw HTTP, psql, coreutils).

/// `base64(text)` by the coreutils tool.
fn base64(text: &str) -> String {
    let mut child =
        Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("base64");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    String::from_utf8(child.wait_with_output().expect("base64").stdout).expect("utf-8").trim().to_string()
}

/// Every byte but the unreserved ones as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; returns status and body.
fn http(port: u16, method: &str, path: &str, body: &str, auth: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let auth = auth.map(|a| format!("Authorization: Basic {}\r\n", base64(a))).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

fn port_of(api: &str) -> u16 {
    let authority = api.split("://").nth(1).and_then(|r| r.split('/').next()).expect("authority");
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("port")
}

/// Every deployment on the server, as the server sends it.
fn deployments_json(api: &str, auth: &str) -> String {
    let (status, body) = http(port_of(api), "POST", "/api/deployments/filter", "{}", Some(auth));
    assert_eq!(status, 200, "{body}");
    body
}

/// A new flow run of deployment `name`, and the script of its pull step.
fn flow_run_and_pull_step(api: &str, auth: &str, name: &str) -> (String, String) {
    let all: serde_json::Value = serde_json::from_str(&deployments_json(api, auth)).expect("deployments JSON");
    let deployment = all.as_array().expect("array").iter().find(|d| d["name"] == name).expect("the deployment");
    let script = deployment["pull_steps"][0]["prefect.deployments.steps.run_shell_script"]["script"]
        .as_str()
        .expect("pull script")
        .to_string();
    let path = format!("/api/deployments/{}/create_flow_run", deployment["id"].as_str().expect("id"));
    let (status, body) = http(port_of(api), "POST", &path, "{}", Some(auth));
    assert_eq!(status, 201, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).expect("flow run JSON");
    (run["id"].as_str().expect("flow run id").to_string(), script)
}

fn ledger_dump(url: &str, base: &Path) -> String {
    let url: flowgate_ledger::LedgerUrl = url.parse().expect("ledger url");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let ledger = flowgate_ledger::open(&url, base).await.expect("open ledger");
        ledger.dump().await.expect("dump")
    })
}

/// `moto_server` on a free port, killed however the test ends.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`moto_server` must be on PATH (scripts/test installs it)");
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "`moto_server` did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// One unsigned request; moto accepts them.
    fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"), "", None);
        assert_eq!(status, 200, "creating bucket `{bucket}`: {body}");
    }

    /// Where flowgate finds the endpoint; credentials come from the URL or the worker's variables.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVER_VAR: &str = "FLOWGATE_TEST_POSTGRES_URL";
const SKIP_VAR: &str = "FLOWGATE_SKIP_POSTGRES";
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A login role with a password and a database it owns, dropped at the end.
struct PgRole {
    server: String,
    name: String,
    password: String,
    host: String,
}

fn psql(server: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server, "-c", sql])
        .output()
        .map_err(|e| format!("`psql` could not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl PgRole {
    /// None (skip) only when the server is unreachable and skipping was asked for.
    fn create(prefix: &str, password: &str) -> Option<Self> {
        let server = std::env::var(SERVER_VAR).unwrap_or_else(|_| DEFAULT_SERVER.into());
        let name = format!("{prefix}_{}", std::process::id());
        let drop_sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        if let Err(e) = psql(&server, &drop_sql) {
            if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
                eprintln!("skipping: PostgreSQL is unreachable ({e}) and {SKIP_VAR}=1");
                return None;
            }
            panic!("PostgreSQL is unreachable: {e}. Start it, point {SERVER_VAR} at it, or set {SKIP_VAR}=1");
        }
        psql(&server, &format!("DROP ROLE IF EXISTS {name}")).expect("drop old role");
        let quoted = password.replace('\'', "''");
        psql(&server, &format!("CREATE ROLE {name} LOGIN PASSWORD '{quoted}'")).expect("create role");
        psql(&server, &format!("CREATE DATABASE {name} OWNER {name}")).expect("create database");
        let rest = server.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_string();
        Some(Self { server, name, password: password.to_string(), host })
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn url(&self) -> String {
        self.url_with(&self.name, &self.host)
    }

    fn url_with_host(&self, host: &str, port: u16) -> String {
        self.url_with(&self.name, &format!("{host}:{port}"))
    }

    fn url_with_user(&self, user: &str) -> String {
        self.url_with(user, &self.host)
    }

    fn url_with(&self, user: &str, host: &str) -> String {
        format!("postgres://{user}:{}@{host}/{}", percent_encode(&self.password), self.name)
    }
}

impl Drop for PgRole {
    fn drop(&mut self) {
        let _ = psql(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        let _ = psql(&self.server, &format!("DROP ROLE IF EXISTS {}", self.name));
    }
}
