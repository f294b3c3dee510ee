//! `flowgate serve` and `flowgate admin token`: a real server process over a
//! ledger that a project's CLI wrote, called over HTTP. Tokens are stored
//! hashed; a missing, wrong, revoked or expired token is 401 with the same
//! body; a token's grants decide; every error is JSON with a code, a message
//! naming the value and the request id.

mod common;

use std::path::Path;
use std::process::Command;

use common::run;
use common::server::{admin, create_token, released_project, Server};
use serde_json::Value;

#[test]
fn the_server_answers_only_to_valid_tokens_with_their_rights() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("server-ledger.db");
    let ledger = format!("sqlite://{}", ledger_path.display());

    // A project writes the ledger through the CLI, as it does today.
    let alpha = released_project(&ledger);

    let viewer = create_token(dir.path(), &ledger, "lead", &["--role", "viewer"]);
    let scoped = create_token(dir.path(), &ledger, "ci-qa", &["--role", "releaser:qa"]);
    let revoked = create_token(dir.path(), &ledger, "gone", &["--role", "admin"]);
    let expiring = create_token(dir.path(), &ledger, "brief", &["--role", "viewer", "--expires", "1s"]);
    admin(dir.path(), &["admin", "token", "revoke", "gone", "--ledger", &ledger]).success();

    let server = Server::start(&["--ledger", &ledger]);
    let (status, health) = server.get("/api/v1/health", None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    // The OpenAPI document needs no token either, and is the one checked in.
    let (status, document) = server.get("/api/v1/openapi.json", None);
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json"));
    let checked_in: Value = serde_json::from_str(&checked_in.expect("docs/api/openapi.json")).expect("JSON");
    assert_eq!((status, &document), (200, &checked_in));

    // The same status the CLI prints for the project, for any role.
    let expected = run(&alpha, &["status", "--all-projects", "--json"]).success().json()["projects"][0].clone();
    for token in [&viewer, &scoped] {
        let (status, body) = server.get("/api/v1/projects/alpha/status", Some(token));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, expected);
    }
    let (status, projects) = server.get("/api/v1/projects", Some(&viewer));
    assert_eq!((status, projects[0]["project"].as_str()), (200, Some("alpha")), "{projects}");

    // History, builds and one build: what the CLI prints with --json.
    let (status, history) = server.get("/api/v1/projects/alpha/history?flow=ingest&env=qa", Some(&scoped));
    assert_eq!(status, 200, "{history}");
    assert_eq!(history, run(&alpha, &["history", "ingest", "--env", "qa", "--json"]).success().json());
    let (status, builds) = server.get("/api/v1/projects/alpha/builds", Some(&viewer));
    assert_eq!((status, &builds), (200, &run(&alpha, &["builds", "--json"]).success().json()));
    let build_id = builds[0]["id"].as_str().expect("build id").to_string();
    let (status, build) = server.get(&format!("/api/v1/projects/alpha/builds/{}", &build_id[..8]), Some(&viewer));
    assert_eq!(status, 200, "{build}");
    assert_eq!(build, run(&alpha, &["show", &build_id, "--json"]).success().json()["build"]);

    // Bad parameters: 400 naming what is wrong.
    let bad: [(&str, &str); 6] = [
        ("/api/v1/projects/alpha/history?flow=ingest", "env"),
        ("/api/v1/projects/alpha/history?flow=ingest&env=qa&colour=red", "colour"),
        ("/api/v1/projects/alpha/history?flow=no%20such&env=qa", "`no such`"),
        ("/api/v1/projects/alpha/builds?limit=many", "limit"),
        ("/api/v1/projects/alpha/builds/zz", "`zz`"),
        ("/api/v1/projects/alpha/builds/abc", "`abc`"),
    ];
    for (path, needle) in bad {
        let (status, body) = server.get(path, Some(&viewer));
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{path}: missing {needle}: {body}");
    }
    let (status, body) = server.get("/api/v1/projects/alpha/builds/ffffffff", Some(&viewer));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`ffffffff`"), "{body}");

    // No token, a malformed one, an unknown one, a revoked one, an expired one:
    // one answer, which does not say which part was wrong.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let unknown = format!("fgt_{}", "0".repeat(64));
    let mut bodies = Vec::new();
    for token in [None, Some("not-a-token"), Some(unknown.as_str()), Some(revoked.as_str()), Some(expiring.as_str())] {
        let (status, mut body) = server.get("/api/v1/projects/alpha/status", token);
        assert_eq!(status, 401, "{token:?}: {body}");
        let id = body["error"]["request_id"].as_str().expect("a request id").to_string();
        assert_eq!(id.len(), 32, "{body}");
        body["error"]["request_id"] = Value::Null;
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "401s differ: {bodies:?}");
    assert_eq!(bodies[0]["error"]["code"], "unauthenticated");
    assert_eq!(server.get("/api/v1/projects", None).0, 401, "the project list needs a token too");

    // Unknown project and route: 404 naming them.
    let (status, body) = server.get("/api/v1/projects/omega/status", Some(&viewer));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`omega`"), "{body}");
    let (status, body) = server.get("/api/v1/nothing-here", Some(&viewer));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("/api/v1/nothing-here"), "{body}");

    // No secret reaches the server's log, even at -vvv.
    let log = server.log();
    assert!(log.contains("request"), "the server logged nothing:\n{log}");
    for secret in [&viewer, &scoped, &revoked, &expiring] {
        assert!(!log.contains(&secret[4..]), "a secret is in the server's log");
    }

    // The ledger keeps hashes only: no secret is in its file or in the listing.
    drop(server);
    let listed = admin(dir.path(), &["admin", "token", "list", "--ledger", &ledger, "--json"]).success();
    let listing = listed.stdout.clone();
    let names: Vec<String> = listed.json().as_array().unwrap().iter().map(|t| t["name"].to_string()).collect();
    assert_eq!(names, [r#""brief""#, r#""ci-qa""#, r#""gone""#, r#""lead""#], "{listing}");
    // The database file and its write-ahead log, where recent rows may still be.
    let mut file = std::fs::read(&ledger_path).unwrap();
    file.extend(std::fs::read(format!("{}-wal", ledger_path.display())).unwrap_or_default());
    for name in ["brief", "ci-qa", "gone", "lead"] {
        assert!(file.windows(name.len()).any(|w| w == name.as_bytes()), "token `{name}` is not in the files searched");
    }
    for secret in [&viewer, &scoped, &revoked, &expiring] {
        assert!(!listing.contains(secret.as_str()), "a secret is listed");
        let hex = &secret.as_bytes()[4..];
        assert!(!file.windows(hex.len()).any(|w| w == hex), "a secret is stored in the ledger");
    }
}

#[test]
fn bad_token_commands_name_the_value_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server-ledger.db").display());
    create_token(dir.path(), &ledger, "ci", &["--role", "releaser:qa"]);
    let list = || admin(dir.path(), &["admin", "token", "list", "--ledger", &ledger, "--json"]).success().stdout;
    let before = list();
    let cases: [(&[&str], &str); 5] = [
        (&["--name", "ci", "--role", "viewer"], "`ci`"),
        (&["--name", "x", "--role", "owner"], "`owner`"),
        (&["--name", "x", "--role", "releaser:../qa"], "releaser:../qa"),
        (&["--name", "x", "--role", "viewer", "--expires", "soon"], "`soon`"),
        (&["--name", "x", "--role", "viewer", "--expires", "0s"], "`0s`"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["admin", "token", "create", "--ledger", &ledger];
        all.extend(args);
        let refused = admin(dir.path(), &all).expect_code(2);
        assert!(refused.stderr.contains(needle), "{args:?}: missing {needle}: {}", refused.stderr);
    }
    let refused = admin(dir.path(), &["admin", "token", "revoke", "nobody", "--ledger", &ledger]).expect_code(2);
    assert!(refused.stderr.contains("`nobody`"), "{}", refused.stderr);
    let nowhere = admin(dir.path(), &["admin", "token", "list"]).expect_code(2);
    assert!(nowhere.stderr.contains("No ledger") && nowhere.stderr.contains("--config"), "{}", nowhere.stderr);
    assert_eq!(list(), before, "a refused command changed the tokens");

    // The server's config names the ledger as well as --ledger does.
    std::fs::write(dir.path().join("server.toml"), format!("ledger = \"{ledger}\"\n")).unwrap();
    let by_config = ["admin", "token", "create", "--name", "ops", "--role", "admin", "--config", "server.toml"];
    admin(dir.path(), &by_config).success();
    let listed = admin(dir.path(), &["admin", "token", "list", "--config", "server.toml"]).success().stdout;
    assert!(listed.contains("ops") && listed.contains("ci"), "{listed}");
}

/// `openapi-spec-validator` from PATH: scripts/test puts the pinned one
/// (scripts/lib.sh, PYTHON_TOOLS) there. Missing, the test fails.
fn openapi_spec_validator() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("openapi-spec-validator")).find(|c| c.is_file()).unwrap_or_else(
        || panic!("`openapi-spec-validator` is not on PATH; run through scripts/test, or `source scripts/lib.sh && ensure_python_tools` first"),
    )
}

#[test]
fn the_checked_in_openapi_document_is_valid_openapi_3_1() {
    let document = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");
    let validate = |file: &Path| Command::new(openapi_spec_validator()).arg(file).output().expect("run the validator");
    let out = validate(Path::new(document));
    let said = |out: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    assert!(out.status.success(), "docs/api/openapi.json is not valid OpenAPI:\n{}", said(&out));
    // The validator can say no: the same document with a reference to nothing.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    let text = std::fs::read_to_string(document).unwrap();
    std::fs::write(&broken, text.replacen("#/components/schemas/Health", "#/components/schemas/Nothing", 1)).unwrap();
    let out = validate(&broken);
    assert!(!out.status.success(), "a dangling reference passed:\n{}", said(&out));
}
