//! `[project] pin_images = true` against a real registry (Debian's
//! `docker-registry` on 127.0.0.1): `flowgate build` records each flow's image
//! as `name@sha256:…`, the digest the push returned, and `show` prints it; a
//! missing tag, a registry that is down or answers garbage, and refused
//! credentials each fail naming the image and the registry, and leave the
//! ledger and the artifact store exactly as they were. Basic credentials come
//! from a Docker config directory (`DOCKER_CONFIG`); builds through a server
//! are pinned on the client before they are registered.

mod common;

use common::server::{create_token, ledger_dump_at, Server};
use common::{bin, run, state};
use flowgate_testkit::receiver::Receiver;
use flowgate_testkit::registry::{docker_config_with, Registry};
use flowgate_testkit::GitProject;
use serde_json::Value;

/// A project with two flows: `etl` in the project's image `{host}/acme/flows:v1`
/// and `report` in its own `{report_image}`.
fn project(host: &str, report_image: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flows/etl.py", "from prefect import flow\n\n@flow\ndef etl():\n    pass\n");
    p.write("flows/report.py", "from prefect import flow\n\n@flow\ndef report():\n    pass\n");
    p.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"pinned\"\nimage = \"{host}/acme/flows:v1\"\npin_images = true\n\n\
             [flows.etl]\nentrypoint = \"flows/etl.py:etl\"\n\n\
             [flows.report]\nentrypoint = \"flows/report.py:report\"\nimage = \"{report_image}\"\n\n[envs.qa]\n"
        ),
    );
    p.commit("two flows");
    p
}

/// A Docker config directory with nothing in it: no test reads the user's `~/.docker`.
fn no_docker_config() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn build(p: &GitProject, docker_config: &std::path::Path, extra: &[&str]) -> flowgate_testkit::Run {
    let mut args = vec!["build"];
    args.extend(extra);
    p.run_with_env(bin(), &args, &[("DOCKER_CONFIG", &docker_config.display().to_string())])
}

/// Runs `build` (text, then `--json`) expecting it to fail with `code`, and
/// checks that both name every `needle` and that nothing was recorded.
#[track_caller]
fn fails_changing_nothing(p: &GitProject, docker_config: &std::path::Path, code: i32, needles: &[&str]) -> String {
    let before = state(p);
    let text = build(p, docker_config, &[]).expect_code(code);
    let json = build(p, docker_config, &["--json"]).expect_code(code);
    for needle in needles {
        assert!(text.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", text.stderr);
    }
    let doc = json.json();
    assert_eq!(doc["error"]["exit_code"].as_i64(), Some(i64::from(code)), "{doc}");
    assert!(needles.iter().all(|n| doc["error"]["message"].as_str().unwrap_or_default().contains(n)), "{doc}");
    assert!(text.stdout.is_empty(), "{}", text.stdout);
    assert!(before == state(p), "the ledger or the artifact store changed");
    text.stderr
}

#[test]
fn a_pinned_build_records_the_digest_the_push_returned_and_show_prints_it() {
    let Some(registry) = Registry::start_or_skip() else { return };
    let host = registry.host();
    let flows_digest = registry.push_image("acme/flows", "v1", "one");
    // An image given by digest is kept as it is, whatever the registry holds.
    let given = format!("{host}/acme/report@sha256:{}", "ab".repeat(32));
    let p = project(&host, &given);
    let none = no_docker_config();

    let built = build(&p, none.path(), &["--json"]).success().json();
    let pinned = format!("{host}/acme/flows@{flows_digest}");
    assert_eq!(built["build"]["images"]["etl"], Value::from(pinned.clone()), "{built}");
    assert_eq!(built["build"]["images"]["report"], Value::from(given.clone()), "{built}");
    let id = built["build"]["id"].as_str().unwrap().to_string();

    let shown = run(&p, &["show", &id]).success().stdout;
    assert!(shown.contains(&format!("image    etl: {pinned}\n")), "{shown}");
    assert!(shown.contains(&format!("image    report: {given}\n")), "{shown}");
    let listed = run(&p, &["show", &id, "--json"]).success().json();
    assert_eq!(listed["build"]["images"]["etl"], Value::from(pinned.clone()), "{listed}");

    // The same tag pushed again names another image: the next build pins it,
    // which makes it another build, though the code is the same.
    let moved = registry.push_image("acme/flows", "v1", "two");
    assert_ne!(moved, flows_digest);
    let rebuilt = build(&p, none.path(), &["--json"]).success().json();
    assert_eq!(rebuilt["build"]["images"]["etl"], Value::from(format!("{host}/acme/flows@{moved}")), "{rebuilt}");
    assert_ne!(rebuilt["build"]["id"], built["build"]["id"]);
    assert_eq!(rebuilt["uploaded"], Value::Bool(false), "the bundle is the same: {rebuilt}");

    // `--image FLOW=REF` is pinned too.
    registry.push_image("acme/other", "x", "three");
    let flagged = build(&p, none.path(), &["--json", "--image", &format!("etl={host}/acme/other:x")]).success().json();
    assert!(flagged["build"]["images"]["etl"].as_str().unwrap().starts_with(&format!("{host}/acme/other@sha256:")));
}

#[test]
fn a_missing_tag_fails_naming_the_image_and_the_flow_and_records_nothing() {
    let Some(registry) = Registry::start_or_skip() else { return };
    let host = registry.host();
    registry.push_image("acme/flows", "v1", "one");
    let report = format!("{host}/acme/report:nosuch");
    let p = project(&host, &report);
    let none = no_docker_config();
    let stderr =
        fails_changing_nothing(&p, none.path(), 1, &[&format!("`{report}`"), "`report`", &format!("`{host}`")]);
    assert!(stderr.contains("no manifest for tag `nosuch`"), "{stderr}");

    // A reference that is not one is a configuration error (exit 2).
    let p2 = project(&host, "ghcr.io/Acme/Report:v1");
    fails_changing_nothing(&p2, none.path(), 2, &["`ghcr.io/Acme/Report:v1`", "`report`"]);
}

#[test]
fn a_registry_that_is_down_or_answers_garbage_fails_naming_it() {
    let none = no_docker_config();
    // Nothing listens on this port.
    let closed = format!("127.0.0.1:{}", flowgate_testkit::free_port());
    let p = project(&closed, &format!("{closed}/acme/report:v1"));
    let stderr = fails_changing_nothing(&p, none.path(), 1, &[&format!("`{closed}`"), "`etl`"]);
    assert!(stderr.contains("Failed to reach the registry"), "{stderr}");

    // A server that answers 200 with an empty body (no digest, no manifest).
    let receiver = Receiver::start();
    let garbage = receiver.url("").trim_start_matches("http://").to_string();
    let p = project(&garbage, &format!("{garbage}/acme/report:v1"));
    let stderr = fails_changing_nothing(&p, none.path(), 1, &[&format!("`{garbage}`")]);
    assert!(stderr.contains("not an image manifest: the answer is empty"), "{stderr}");
    // A server that answers 500.
    receiver.fail(1000);
    let stderr = fails_changing_nothing(&p, none.path(), 1, &[&format!("`{garbage}`")]);
    assert!(stderr.contains("with 500 Internal Server Error"), "{stderr}");
}

#[test]
fn basic_auth_credentials_come_from_the_docker_config() {
    let Some(registry) = Registry::start_with_basic_auth_or_skip("ci", "s3cret:pass") else { return };
    let host = registry.host();
    let digest = registry.push_image("acme/flows", "v1", "one");
    let p = project(&host, &format!("{host}/acme/flows:v1"));
    p.record_runs();

    // Without credentials: refused, saying where they would come from.
    let none = no_docker_config();
    let stderr = fails_changing_nothing(&p, none.path(), 1, &[&format!("`{host}`"), "`acme/flows`"]);
    assert!(stderr.contains("no credentials for"), "{stderr}");
    // With the wrong ones: refused, naming the user.
    let wrong = docker_config_with(&host, "ci", "wrong");
    let stderr = fails_changing_nothing(&p, wrong.path(), 1, &[&format!("`{host}`")]);
    assert!(stderr.contains("the credentials of `ci`"), "{stderr}");

    let docker = registry.docker_config();
    let built = build(&p, docker.path(), &["--json"]).success().json();
    let pinned = format!("{host}/acme/flows@{digest}");
    assert_eq!(built["build"]["images"]["etl"], Value::from(pinned.clone()), "{built}");
    assert_eq!(built["build"]["images"]["report"], Value::from(pinned), "{built}");
    for recorded in p.recorded_runs() {
        assert!(!recorded.stderr.contains("s3cret") && !recorded.stdout.contains("s3cret"), "{recorded:?}");
    }
}

/// A registry behind bearer-token auth, as hosted registries are: its 401 names
/// a token realm, which gives a token for the Docker config's credentials.
#[test]
fn a_token_registry_is_answered_with_a_token_from_its_realm() {
    let Some(registry) = Registry::start_with_token_auth_or_skip("ci", "t0ken-pass") else { return };
    let host = registry.host();
    let digest = registry.push_image("acme/flows", "v1", "one");
    let p = project(&host, &format!("{host}/acme/flows:v1"));
    p.record_runs();
    let tokens = registry.token_server().expect("a token server");

    // Without credentials the token server refuses: the error names it and the registry.
    let none = no_docker_config();
    let before = tokens.requests();
    let stderr = fails_changing_nothing(&p, none.path(), 1, &[&format!("`{host}`")]);
    assert!(stderr.contains(&tokens.realm()), "{stderr}");
    assert!(tokens.requests() > before, "the realm was asked");

    let docker = registry.docker_config();
    let built = build(&p, docker.path(), &["--json"]).success().json();
    assert_eq!(built["build"]["images"]["etl"], Value::from(format!("{host}/acme/flows@{digest}")), "{built}");
    for recorded in p.recorded_runs() {
        assert!(!recorded.stderr.contains("t0ken-pass") && !recorded.stdout.contains("t0ken-pass"), "{recorded:?}");
    }
}

#[test]
fn a_build_through_a_server_is_pinned_on_the_client() {
    let Some(registry) = Registry::start_or_skip() else { return };
    let host = registry.host();
    let digest = registry.push_image("acme/flows", "v1", "one");
    registry.push_image("acme/report", "v1", "two");
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let none = no_docker_config();
    // The project enters the server's ledger with a first, direct build.
    let p = project(&host, &format!("{host}/acme/report:v1"));
    p.write(
        "flowgate.toml",
        &p.read("flowgate.toml").replace("pin_images = true\n", &format!("pin_images = true\nledger = \"{ledger}\"\n")),
    );
    p.commit("the server's ledger");
    build(&p, none.path(), &[]).success();
    let token = create_token(dir.path(), &ledger, "ci", &["--role", "releaser"]);
    let server = Server::start(&["--ledger", &ledger, "--artifacts", &format!("file://{}", store.display())]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let docker = none.path().display().to_string();
    let through = [("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", token.as_str()), ("DOCKER_CONFIG", &docker)];

    // The report image's new tag is not pushed yet: nothing is registered.
    p.write("flowgate.toml", &p.read("flowgate.toml").replace("acme/report:v1", "acme/report:v2"));
    p.commit("report v2");
    let before = ledger_dump_at(&ledger, dir.path());
    let refused = p.run_with_env(bin(), &["build"], &through).expect_code(1);
    assert!(refused.stderr.contains(&format!("`{host}/acme/report:v2`")), "{}", refused.stderr);
    assert_eq!(before, ledger_dump_at(&ledger, dir.path()), "the server's ledger changed");
    assert!(!server.log().contains("/builds"), "the client asked the server to record:\n{}", server.log());

    let report = registry.push_image("acme/report", "v2", "three");
    let built = p.run_with_env(bin(), &["build", "--json"], &through).success().json();
    assert_eq!(built["build"]["images"]["etl"], Value::from(format!("{host}/acme/flows@{digest}")), "{built}");
    assert_eq!(built["build"]["images"]["report"], Value::from(format!("{host}/acme/report@{report}")), "{built}");
    let id = built["build"]["id"].as_str().unwrap();
    let shown = p.run_with_env(bin(), &["show", id], &through).success().stdout;
    assert!(shown.contains(&format!("image    report: {host}/acme/report@{report}\n")), "{shown}");
}
