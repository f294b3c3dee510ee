//! Who may call what on `flowgate serve`: every route of the OpenAPI document
//! × every role, on a SQLite and on a PostgreSQL ledger. What a role may not
//! do is 403 naming the missing right, and the ledger's dump is unchanged;
//! what it may do succeeds and records the verified caller as the actor.
//! Bodies are bounded (413) and a wrong field is named (400), changing nothing.

mod common;

use std::path::Path;

use common::server::{create_token, ledger_dump_at, released_project, Server};
use flowgate_testkit::postgres::Database;
use serde_json::Value;

/// Each token's name and its `--role` flags.
const TOKENS: [(&str, &[&str]); 6] = [
    ("viewer", &["viewer"]),
    ("releaser", &["releaser"]),
    ("releaser-qa", &["releaser:qa"]),
    ("approver-qa", &["approver:qa"]),
    ("approver-prod", &["approver:prod"]),
    ("admin", &["admin"]),
];
const EVERYONE: &[&str] = &["viewer", "releaser", "releaser-qa", "approver-qa", "approver-prod", "admin"];

/// One call of the table: the route as the OpenAPI document names it, the
/// request sent, and the tokens that may make it (every other token gets 403).
struct Call {
    method: &'static str,
    route: &'static str,
    path: String,
    body: String,
    allowed: &'static [&'static str],
}

fn table(build: &str) -> Vec<Call> {
    let get =
        |route: &'static str, path: String| Call { method: "GET", route, path, body: String::new(), allowed: EVERYONE };
    let approve = |env: &str, allowed| Call {
        method: "POST",
        route: "/api/v1/projects/{project}/approvals",
        path: "/api/v1/projects/alpha/approvals".into(),
        body: format!(r#"{{"build": "{build}", "env": "{env}", "reason": "checked"}}"#),
        allowed,
    };
    vec![
        get("/api/v1/whoami", "/api/v1/whoami".into()),
        get("/api/v1/projects", "/api/v1/projects".into()),
        get("/api/v1/projects/{project}/status", "/api/v1/projects/alpha/status".into()),
        get("/api/v1/projects/{project}/history", "/api/v1/projects/alpha/history?flow=ingest&env=qa".into()),
        get("/api/v1/projects/{project}/builds", "/api/v1/projects/alpha/builds".into()),
        get("/api/v1/projects/{project}/builds/{build}", format!("/api/v1/projects/alpha/builds/{build}")),
        get("/api/v1/projects/{project}/pins", "/api/v1/projects/alpha/pins".into()),
        approve("qa", &["approver-qa", "admin"]),
        approve("prod", &["approver-prod", "admin"]),
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/pins",
            path: "/api/v1/projects/alpha/pins".into(),
            body: format!(r#"{{"build": "{build}", "reason": "audit"}}"#),
            allowed: &["releaser", "admin"],
        },
        Call {
            method: "DELETE",
            route: "/api/v1/projects/{project}/pins/{build}",
            path: format!("/api/v1/projects/alpha/pins/{build}"),
            body: String::new(),
            allowed: &["releaser", "admin"],
        },
    ]
}

fn every_route_and_role(ledger: &str, dir: &Path) {
    let alpha = released_project(ledger);
    let secrets: Vec<(&str, String)> = TOKENS
        .iter()
        .map(|(name, roles)| {
            let flags: Vec<&str> = roles.iter().flat_map(|r| ["--role", r]).collect();
            (*name, create_token(dir, ledger, name, &flags))
        })
        .collect();
    let server = Server::start(&["--ledger", ledger]);
    let build = server.get("/api/v1/projects/alpha/builds", Some(&secrets[0].1)).1[0]["id"]
        .as_str()
        .expect("a build id")
        .to_string();
    let calls = table(&build);

    // The table covers the document: every route and method it serves.
    let document = server.get("/api/v1/openapi.json", None).1;
    for (route, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            let public = ["/api/v1/health", "/api/v1/openapi.json"].contains(&route.as_str());
            let covered = calls.iter().any(|c| c.route == route && c.method.eq_ignore_ascii_case(method));
            assert!(public || covered, "{method} {route} is not in the table");
        }
    }
    for public in ["/api/v1/health", "/api/v1/openapi.json"] {
        assert_eq!(server.get(public, None).0, 200, "{public} needs no credential");
    }

    for call in &calls {
        let what = format!("{} {}", call.method, call.path);
        let before = ledger_dump_at(ledger, alpha.path());
        let (status, body) = server.send(call.method, &call.path, None, &call.body);
        assert_eq!(status, 401, "{what} without a token: {body}");
        assert_eq!(ledger_dump_at(ledger, alpha.path()), before, "{what} without a token changed the ledger");

        for (name, secret) in &secrets {
            let before = ledger_dump_at(ledger, alpha.path());
            let (status, body) = server.send(call.method, &call.path, Some(secret), &call.body);
            if call.allowed.contains(name) {
                assert_eq!(status, 200, "{what} as {name}: {body}");
                // A write that recorded something records the verified caller
                // (an approval or pin already made keeps its first actor).
                let wrote = body["recorded"] == Value::Bool(true) || body["changed"] == Value::Bool(true);
                if let Some(actor) = body.get("actor").or_else(|| body.pointer("/pin/actor")).filter(|_| wrote) {
                    assert_eq!(actor, &Value::from(*name), "{what}: the actor is the verified caller");
                }
                continue;
            }
            assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{what} as {name}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(&format!("`{name}`")), "{what} as {name}: the refusal names no caller: {body}");
            assert_eq!(
                ledger_dump_at(ledger, alpha.path()),
                before,
                "{what} as {name} was refused and changed the ledger"
            );
        }
    }

    // The allowed writes are in the ledger, under the verified names.
    let dump = ledger_dump_at(ledger, alpha.path());
    for actor in ["approver-qa", "approver-prod", "admin"] {
        assert!(dump.lines().any(|l| l.contains("approvals") && l.contains(actor)), "no approval by {actor}:\n{dump}");
    }
}

#[test]
fn every_route_refuses_every_role_without_the_right_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    every_route_and_role(&ledger, dir.path());
}

#[test]
fn every_route_refuses_every_role_without_the_right_on_postgres() {
    let Some(database) = Database::create("flowgate_authz") else { return };
    let dir = tempfile::tempdir().unwrap();
    every_route_and_role(&database.url(), dir.path());
}

#[test]
fn bodies_are_bounded_and_their_mistakes_named() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let alpha = released_project(&ledger);
    let admin = create_token(dir.path(), &ledger, "admin", &["--role", "admin"]);
    let server = Server::start(&["--ledger", &ledger]);
    let build = server.get("/api/v1/projects/alpha/builds", Some(&admin)).1[0]["id"].as_str().unwrap().to_string();
    let approvals = "/api/v1/projects/alpha/approvals";
    let before = ledger_dump_at(&ledger, alpha.path());

    let huge = format!(r#"{{"build": "{build}", "env": "qa", "reason": "{}"}}"#, "x".repeat(70 * 1024));
    let (status, body) = server.send("POST", approvals, Some(&admin), &huge);
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("65536"), "{body}");

    let cases = [
        (r#"{"build": "B", "env": "qa", "reason": "r", "colour": "red"}"#.to_string(), "colour"),
        (r#"{"build": "B", "env": "qa"}"#.to_string(), "reason"),
        (r#"{"build": "B", "env": 7, "reason": "r"}"#.to_string(), "integer"),
        (r#"{"build": "B", "env": "qa", "reason": "r""#.to_string(), "EOF"),
        (r#"{"build": "B", "env": "../qa", "reason": "r"}"#.to_string(), "../qa"),
        (r#"{"build": "B", "env": "qa", "flows": ["no such"], "reason": "r"}"#.to_string(), "no such"),
        (r#"{"build": "B", "env": "qa", "reason": "  "}"#.to_string(), "reason"),
        (r#"{"build": "zz", "env": "qa", "reason": "r"}"#.to_string(), "`zz`"),
    ];
    for (text, needle) in cases {
        let text = text.replace("\"B\"", &format!("\"{build}\""));
        let (status, body) = server.send("POST", approvals, Some(&admin), &text);
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{text}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{text}: missing {needle}: {body}");
    }
    let (status, body) =
        server.send("POST", approvals, Some(&admin), r#"{"build": "ffffffff", "env": "qa", "reason": "r"}"#);
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`ffffffff`"), "{body}");
    assert_eq!(ledger_dump_at(&ledger, alpha.path()), before, "a refused body changed the ledger");
}
