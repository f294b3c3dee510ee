//! flowgate against a real Prefect 3.9.1 server started with an auth string:
//! without the configured variable it is a usage error naming it, with a wrong
//! secret an unauthorized failure that keeps the move pending, with the right
//! one it syncs; and no command that talks to the server (nor a worker-style
//! `flowgate pull`) ever shows the secret or its Basic header, even at `-vvv`.

mod common;

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::process::{Command, Stdio};

use common::{bin, run};
use flowgate_prefect::{PrefectAuth, PrefectClient};
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::{GitProject, Run};
use serde_json::{json, Value};

const VAR: &str = "PREFECT_TEST_AUTH";
const FLOW: &str = "from prefect import flow\n\n@flow(name=\"guarded\")\ndef guarded(n: int = 1):\n    print(n)\n";

/// 32 random hex digits (std's per-process random hasher keys, no extra crate).
fn random_hex() -> String {
    let word = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", word(), word())
}

/// `base64(text)` by the coreutils tool, so the test shares no code with flowgate.
fn base64(text: &str) -> String {
    let mut child =
        Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("base64");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("base64 output");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Panics when any of `secrets` shows in either stream of `out`.
#[track_caller]
fn assert_hidden(out: &Run, what: &str, secrets: &[&str]) {
    for secret in secrets {
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(!text.contains(secret), "`{what}` shows a secret on {stream}:\n{text}");
        }
    }
}

fn cell_sync(p: &GitProject, auth: &str) -> Value {
    let status = p.run_with_env(bin(), &["status", "--env", "qa", "--json"], &[(VAR, auth)]).success().json();
    status["flows"][0]["cells"][0]["sync"].clone()
}

fn build(p: &GitProject) -> String {
    run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().expect("build id").to_string()
}

#[test]
fn auth_string_is_required_refused_when_wrong_and_never_shown() {
    let secret = random_hex();
    let auth = format!("user:{secret}");
    let server = PrefectServer::start_with_auth(Some(&auth));
    let hidden = [secret.clone(), base64(&auth)];
    let hidden: Vec<&str> = hidden.iter().map(String::as_str).collect();

    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"guarded\"\n\n[flows.guarded]\nentrypoint = \"flows/guarded.py:guarded\"\n\
             work_pool = \"auth-pool\"\n\n[envs.qa]\nprefect_api_url = \"{}\"\nname_prefix = \"au-\"\n\
             prefect_auth = {{ env = \"{VAR}\", scheme = \"basic\" }}\n",
            server.api_url()
        ),
    );
    p.write("flows/guarded.py", FLOW);
    p.commit("v1");
    let b1 = build(&p);
    let release_b1 = ["release", "guarded", "--env", "qa", "--build", b1.as_str(), "--create-work-pools"];

    // Without the variable: a usage error naming it, nothing moved.
    let before = common::ledger_dump(&p).expect("ledger");
    let missing = run(&p, &release_b1).expect_code(2);
    assert!(missing.stderr.contains(&format!("`{VAR}`")), "{}", missing.stderr);
    assert_eq!(common::ledger_dump(&p).expect("ledger"), before, "nothing moved");

    // A wrong secret: refused, said plainly; the move stands, pending sync.
    let wrong_secret = random_hex();
    let wrong = format!("user:{wrong_secret}");
    let refused = p.run_with_env(bin(), &release_b1, &[(VAR, &wrong)]).expect_code(1);
    assert!(refused.stderr.contains("refused the credentials"), "{}", refused.stderr);
    assert!(refused.stderr.contains("HTTP 401"), "{}", refused.stderr);
    assert!(refused.stderr.contains("The move is recorded in the ledger"), "{}", refused.stderr);
    assert!(refused.stderr.contains("env `qa`"), "{}", refused.stderr);
    assert_hidden(&refused, "release with a wrong secret", &[&wrong_secret, &base64(&wrong)]);
    assert_eq!(cell_sync(&p, &auth), "pending sync");

    // The right one: sync converges.
    let synced = p
        .run_with_env(bin(), &["sync", "--env", "qa", "--create-work-pools", "--json"], &[(VAR, &auth)])
        .success()
        .json();
    assert_eq!(synced["created"], json!(["au-guarded"]), "{synced}");
    assert_eq!(cell_sync(&p, &auth), "synced");

    // A flow run whose pull step ran as on a worker: `flowgate pull` from the
    // deployment's own command line, with the run's id and the server's auth in
    // its environment (as Prefect passes them), records the build on the run.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = PrefectClient::new(&server.api_url(), Some(PrefectAuth::Basic(auth.clone()))).expect("client");
    let deployment = rt.block_on(client.read_deployments(&["au-guarded".into()])).expect("read").remove(0);
    let flow_run = rt.block_on(client.create_flow_run(&deployment.id)).expect("create flow run").id;
    let steps = serde_json::to_value(&deployment.pull_steps).expect("steps");
    let script = steps[0]["prefect.deployments.steps.run_shell_script"]["script"].as_str().expect("pull script");
    let words: Vec<&str> = script.split_whitespace().collect();
    assert_eq!(words[..2], ["flowgate", "pull"], "{script}");
    let mut pull_args = vec!["-vvv"];
    pull_args.extend(&words[1..]);
    let worker_dir = tempfile::tempdir().expect("temp dir");
    let url = server.api_url();
    let worker_env =
        [("PREFECT__FLOW_RUN_ID", flow_run.as_str()), ("PREFECT_API_URL", &url), ("PREFECT_API_AUTH_STRING", &auth)];
    let pulled = p.run_in(bin(), worker_dir.path(), &pull_args, &worker_env).success();
    assert_hidden(&pulled, "pull -vvv", &hidden);

    p.write("flows/guarded.py", &FLOW.replace("print(n)", "print(n * 2)"));
    p.commit("v2");
    let b2 = build(&p);

    // Every command that talks to the server, as text and as JSON, at -vvv.
    // `status` and `history` answer from the ledger (status may also read the
    // server for drift): whether they send a request is not asserted.
    let commands: [(&[&str], bool); 7] = [
        (&["release", "guarded", "--env", "qa", "--build", &b2], true),
        (&["rollback", "guarded", "--env", "qa"], true),
        (&["sync", "--env", "qa"], true),
        (&["plan", "--env", "qa"], true),
        (&["status", "--env", "qa"], false),
        (&["history", "guarded", "--env", "qa"], false),
        (&["which", &flow_run, "--env", "qa"], true),
    ];
    for json_mode in [false, true] {
        for (command, must_request) in commands {
            let mut args = vec!["-vvv"];
            if json_mode {
                args.push("--json");
            }
            args.extend(command);
            let out = p.run_with_env(bin(), &args, &[(VAR, &auth)]).success();
            if must_request {
                assert!(out.stderr.contains("prefect_request"), "`{args:?}` sent no request at -vvv:\n{}", out.stderr);
            }
            assert_hidden(&out, &args.join(" "), &hidden);
            if json_mode {
                out.json();
            }
        }
    }
    let which = p.run_with_env(bin(), &["which", &flow_run, "--env", "qa", "--json"], &[(VAR, &auth)]).success().json();
    assert_eq!((which["build"].clone(), which["determined_by"].clone()), (json!(b1), json!("pull-record")), "{which}");
    assert_eq!(
        rt.block_on(client.read_deployments(&[])).expect("read").remove(0).version.as_deref(),
        Some(b1.as_str())
    );
}
