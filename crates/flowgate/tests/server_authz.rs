//! Who may call what on `flowgate serve`: every route of the OpenAPI document
//! × every role, on a SQLite and on a PostgreSQL ledger, with a protected env
//! on a real Prefect server. What a role may not do is 403 naming the missing
//! right, and the ledger's dump, the server's store and the Prefect server's
//! deployments and work pools are unchanged; what it may do succeeds and
//! records the verified caller as the actor.
//! Bodies are bounded (413) and a wrong field is named (400), changing nothing.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::server::{create_token, ledger_dump_at, listing, local_bundle, released_project, Server};
use flowgate_testkit::http::{port_of, request};
use flowgate_testkit::postgres::Database;
use flowgate_testkit::prefect::PrefectServer;
use serde_json::{json, Value};

fn prefect() -> &'static PrefectServer {
    static SERVER: OnceLock<PrefectServer> = OnceLock::new();
    SERVER.get_or_init(PrefectServer::start)
}

/// What the Prefect server holds of one test: its deployments (every field,
/// `updated` among them, so a write that changes nothing still shows) and its
/// work pools, by the test's name prefix (the other ledger's test shares the server).
fn prefect_state(prefix: &str) -> String {
    let port = port_of(&prefect().api_url());
    let filter = json!({"deployments": {"name": {"like_": prefix}}, "sort": "NAME_ASC"}).to_string();
    let (status, deployments) = request(port, "POST", "/api/deployments/filter", &[], &filter);
    assert_eq!(status, 200, "{deployments}");
    let (status, pools) = request(port, "POST", "/api/work_pools/filter", &[], "{}");
    assert_eq!(status, 200, "{pools}");
    let pools: Vec<Value> = serde_json::from_str::<Vec<Value>>(&pools).expect("work pools");
    let ours: Vec<&Value> =
        pools.iter().filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with(prefix))).collect();
    format!("{deployments}\n{}", serde_json::to_string(&ours).expect("json"))
}

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
    body: Body,
    allowed: &'static [&'static str],
}

enum Body {
    Json(String),
    Bytes(Vec<u8>),
}

impl Body {
    fn none() -> Self {
        Body::Json(String::new())
    }
}

/// A releaser of any env may register builds.
const RELEASERS: &[&str] = &["releaser", "releaser-qa", "admin"];

/// Every call, on the project's one build: its id, its record (as the API
/// answers it) and its bundle's bytes and digest.
fn table(build: &str, record: &Value, bundle: &[u8], digest: &str) -> Vec<Call> {
    let get =
        |route: &'static str, path: String| Call { method: "GET", route, path, body: Body::none(), allowed: EVERYONE };
    let approve = |env: &str, allowed| Call {
        method: "POST",
        route: "/api/v1/projects/{project}/approvals",
        path: "/api/v1/projects/alpha/approvals".into(),
        body: Body::Json(format!(r#"{{"build": "{build}", "env": "{env}", "reason": "checked"}}"#)),
        allowed,
    };
    vec![
        get("/api/v1/whoami", "/api/v1/whoami".into()),
        get("/api/v1/projects", "/api/v1/projects".into()),
        get("/api/v1/projects/{project}/status", "/api/v1/projects/alpha/status".into()),
        get("/api/v1/projects/{project}/matrix", "/api/v1/projects/alpha/matrix?envs=qa,prod".into()),
        get("/api/v1/projects/{project}/history", "/api/v1/projects/alpha/history?flow=ingest&env=qa".into()),
        get("/api/v1/projects/{project}/builds", "/api/v1/projects/alpha/builds".into()),
        get("/api/v1/projects/{project}/builds/{build}", format!("/api/v1/projects/alpha/builds/{build}")),
        get("/api/v1/projects/{project}/pins", "/api/v1/projects/alpha/pins".into()),
        get(
            "/api/v1/projects/{project}/builds/{build}/provenance",
            format!("/api/v1/projects/alpha/builds/{build}/provenance"),
        ),
        Call {
            method: "PUT",
            route: "/api/v1/projects/{project}/bundles/{digest}",
            path: format!("/api/v1/projects/alpha/bundles/{digest}"),
            body: Body::Bytes(bundle.to_vec()),
            allowed: RELEASERS,
        },
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/builds",
            path: "/api/v1/projects/alpha/builds".into(),
            body: Body::Json(json!({ "build": record }).to_string()),
            allowed: RELEASERS,
        },
        approve("qa", &["approver-qa", "admin"]),
        approve("prod", &["approver-prod", "admin"]),
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/pins",
            path: "/api/v1/projects/alpha/pins".into(),
            body: Body::Json(format!(r#"{{"build": "{build}", "reason": "audit"}}"#)),
            allowed: &["releaser", "admin"],
        },
        Call {
            method: "DELETE",
            route: "/api/v1/projects/{project}/pins/{build}",
            path: format!("/api/v1/projects/alpha/pins/{build}"),
            body: Body::none(),
            allowed: &["releaser", "admin"],
        },
        // qa and prod are the server's protected (ledger-only) envs.
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/envs/{env}/releases",
            path: "/api/v1/projects/alpha/envs/prod/releases".into(),
            body: Body::Json(format!(
                r#"{{"build": "{build}", "all": true, "reason": "ship", "create_work_pools": true}}"#
            )),
            allowed: &["releaser", "admin"],
        },
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/envs/{env}/promotions",
            path: "/api/v1/projects/alpha/envs/prod/promotions".into(),
            body: Body::Json(r#"{"from": "qa", "flows": ["ingest"]}"#.into()),
            allowed: &["releaser", "admin"],
        },
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/envs/{env}/rollbacks",
            path: "/api/v1/projects/alpha/envs/qa/rollbacks".into(),
            body: Body::Json(r#"{"flows": ["ingest"], "reason": "incident"}"#.into()),
            allowed: &["releaser", "releaser-qa", "admin"],
        },
        // prod is on the Prefect server: what it plans and syncs is read there.
        Call {
            method: "GET",
            route: "/api/v1/projects/{project}/envs/{env}/plan",
            path: "/api/v1/projects/alpha/envs/prod/plan".into(),
            body: Body::none(),
            allowed: EVERYONE,
        },
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/envs/{env}/sync",
            path: "/api/v1/projects/alpha/envs/prod/sync".into(),
            body: Body::Json(r#"{"prune": true}"#.into()),
            allowed: &["releaser", "admin"],
        },
        // A dry run: a recorded rollout would be driven by the server meanwhile.
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/envs/{env}/rollouts",
            path: "/api/v1/projects/alpha/envs/qa/rollouts".into(),
            body: Body::Json(format!(r#"{{"build": "{build}", "reason": "weekly", "dry_run": true}}"#)),
            allowed: &["releaser", "releaser-qa", "admin"],
        },
        // Maintenance: an admin's (a dry run: nothing is deleted).
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/gc",
            path: "/api/v1/projects/alpha/gc".into(),
            body: Body::Json(r#"{"keep_last": 1, "keep_days": 0, "dry_run": true}"#.into()),
            allowed: &["admin"],
        },
        Call {
            method: "POST",
            route: "/api/v1/projects/{project}/fsck",
            path: "/api/v1/projects/alpha/fsck".into(),
            body: Body::Json(r#"{"grace": "1h"}"#.into()),
            allowed: &["admin"],
        },
        // After the upload above: the server's store holds the bundle.
        Call {
            method: "GET",
            route: "/api/v1/projects/{project}/builds/{build}/shown",
            path: format!("/api/v1/projects/alpha/builds/{build}/shown"),
            body: Body::none(),
            allowed: EVERYONE,
        },
        Call {
            method: "GET",
            route: "/api/v1/projects/{project}/diff",
            path: "/api/v1/projects/alpha/diff?from=qa&to=prod".into(),
            body: Body::none(),
            allowed: EVERYONE,
        },
        Call {
            method: "GET",
            route: "/api/v1/projects/{project}/envs/{env}/rollout",
            path: "/api/v1/projects/alpha/envs/qa/rollout".into(),
            body: Body::none(),
            allowed: EVERYONE,
        },
    ]
}

/// The calls that cannot succeed here, each with what its `400` names: a
/// flow run the Prefect server does not have, a sync of qa's ledger-only
/// placement, and the active rollout qa does not have. A caller with the
/// right gets past the check of rights to that `400`.
fn refused_calls() -> Vec<(Call, &'static str)> {
    vec![
        (
            Call {
                method: "GET",
                route: "/api/v1/projects/{project}/envs/{env}/flow-runs/{flow_run}",
                path: "/api/v1/projects/alpha/envs/prod/flow-runs/00000000-0000-4000-8000-000000000000".into(),
                body: Body::none(),
                allowed: EVERYONE,
            },
            "No flow run `00000000-0000-4000-8000-000000000000`",
        ),
        (
            Call {
                method: "POST",
                route: "/api/v1/projects/{project}/envs/{env}/sync",
                path: "/api/v1/projects/alpha/envs/qa/sync".into(),
                body: Body::Json(r#"{"prune": true}"#.into()),
                allowed: &["releaser", "releaser-qa", "admin"],
            },
            "ledger-only",
        ),
        (
            Call {
                method: "POST",
                route: "/api/v1/projects/{project}/envs/{env}/rollout/abort",
                path: "/api/v1/projects/alpha/envs/qa/rollout/abort".into(),
                body: Body::Json(r#"{"reason": "stop"}"#.into()),
                allowed: &["releaser", "releaser-qa", "admin"],
            },
            "has no active rollout",
        ),
    ]
}

/// The server's config: qa and prod of `alpha` protected, qa ledger-only,
/// prod on the test's Prefect server under `prefix` (names and work pool).
fn protecting_qa_and_prod(dir: &Path, prefix: &str) -> String {
    let path = dir.join("server.toml");
    std::fs::write(
        &path,
        format!(
            "[projects.alpha.envs.qa]\n\n[projects.alpha.envs.prod]\nprefect_api_url = \"{}\"\n\
             name_prefix = \"{prefix}\"\nwork_pool = \"{prefix}pool\"\n",
            prefect().api_url()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn every_route_and_role(ledger: &str, dir: &Path, prefix: &str) {
    let alpha = released_project(ledger);
    // A second build, carrying settings for prod (its config gives prod a Prefect
    // server; the flowgate server uses its own), rolled out to qa: a rollback
    // there has a revision to return to, and the rollout routes one to read.
    alpha.write("flows/ingest.py", "from prefect import flow\n\n\n@flow\ndef main():\n    print(2)\n");
    let config = std::fs::read_to_string(alpha.path().join("flowgate.toml")).unwrap();
    let config = config.replace("[envs.prod]\n", "[envs.prod]\nprefect_api_url = \"http://127.0.0.1:9/api\"\n");
    alpha.write("flowgate.toml", &config);
    alpha.commit("second");
    common::run(&alpha, &["build"]).success();
    common::run(&alpha, &["rollout", "start", "--to", "qa", "--build", "HEAD", "--reason", "weekly"]).success();
    let secrets: Vec<(&str, String)> = TOKENS
        .iter()
        .map(|(name, roles)| {
            let flags: Vec<&str> = roles.iter().flat_map(|r| ["--role", r]).collect();
            (*name, create_token(dir, ledger, name, &flags))
        })
        .collect();
    let store = dir.join("server-artifacts");
    std::fs::create_dir_all(&store).unwrap();
    let artifacts = format!("file://{}", store.display());
    let config = protecting_qa_and_prod(dir, prefix);
    let server = Server::start(&["--config", &config, "--ledger", ledger, "--artifacts", &artifacts]);
    let record = server.get("/api/v1/projects/alpha/builds", Some(&secrets[0].1)).1[0].clone();
    let build = record["id"].as_str().expect("a build id").to_string();
    let (bundle, digest) = local_bundle(&alpha, &record);
    let calls = table(&build, &record, &bundle, &digest);
    let refused_calls = refused_calls();
    // What a refused call must leave as it was: the ledger, the server's store and the Prefect server.
    let state = || (ledger_dump_at(ledger, alpha.path()), listing(&store), prefect_state(prefix));

    // The table covers the document: every route and method it serves.
    let document = server.get("/api/v1/openapi.json", None).1;
    for (route, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            let public = ["/api/v1/health", "/api/v1/openapi.json"].contains(&route.as_str());
            let covered = calls
                .iter()
                .chain(refused_calls.iter().map(|(c, _)| c))
                .any(|c| c.route == route && c.method.eq_ignore_ascii_case(method));
            assert!(public || covered, "{method} {route} is not in the table");
        }
    }
    for public in ["/api/v1/health", "/api/v1/openapi.json"] {
        assert_eq!(server.get(public, None).0, 200, "{public} needs no credential");
    }

    let send = |call: &Call, token: Option<&str>| match &call.body {
        Body::Json(text) => server.send(call.method, &call.path, token, text),
        Body::Bytes(bytes) => server.send_bytes(call.method, &call.path, token, bytes),
    };
    for call in &calls {
        let what = format!("{} {}", call.method, call.path);
        let before = state();
        let (status, body) = send(call, None);
        assert_eq!(status, 401, "{what} without a token: {body}");
        assert_eq!(state(), before, "{what} without a token changed the ledger, the store or Prefect");

        for (name, secret) in &secrets {
            let before = state();
            let (status, body) = send(call, Some(secret));
            if call.allowed.contains(name) {
                assert_eq!(status, 200, "{what} as {name}: {body}");
                assert!(body.get("sync_error").is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)), "{body}");
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
            assert_eq!(state(), before, "{what} as {name} was refused and changed the ledger, the store or Prefect");
        }
    }

    for (call, needle) in &refused_calls {
        let what = format!("{} {}", call.method, call.path);
        let before = state();
        for (name, secret) in &secrets {
            let (status, body) = send(call, Some(secret));
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if call.allowed.contains(name) {
                assert_eq!(status, 400, "{what} as {name}: {body}");
                assert!(message.contains(needle), "{what} as {name}: {body}");
            } else {
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (403, Some("forbidden")),
                    "{what} as {name}: {body}"
                );
            }
        }
        assert_eq!(state(), before, "{what} changed the ledger, the store or the Prefect server");
    }

    // The allowed release reached the Prefect server, placed as the server says.
    let deployments: Vec<Value> = serde_json::from_str(prefect_state(prefix).lines().next().unwrap()).unwrap();
    let names: Vec<(&str, &str, &str)> = deployments
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["version"].as_str().unwrap(), d["work_pool_name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [(format!("{prefix}ingest").as_str(), build.as_str(), format!("{prefix}pool").as_str())]);

    // The allowed writes are in the ledger, under the verified names.
    let dump = ledger_dump_at(ledger, alpha.path());
    for actor in ["approver-qa", "approver-prod", "admin"] {
        assert!(dump.lines().any(|l| l.contains("approvals") && l.contains(actor)), "no approval by {actor}:\n{dump}");
    }
    // Each move is recorded with the verified caller as its actor.
    for (env, mover) in [("prod", "releaser"), ("qa", "releaser")] {
        let moved = |l: &&str| {
            l.contains("releases")
                && l.contains(&format!("\"{env}\""))
                && l.contains(&format!("\\\"subject\\\":\\\"{mover}\\\""))
        };
        assert!(dump.lines().any(|l| moved(&l)), "no move in {env} by {mover}:\n{dump}");
    }
    for registrar in RELEASERS {
        let registered =
            |l: &&str| l.contains("build_provenance") && l.contains(&format!("\\\"subject\\\":\\\"{registrar}\\\""));
        assert!(dump.lines().any(|l| registered(&l)), "no registration by {registrar}:\n{dump}");
    }
}

#[test]
fn every_route_refuses_every_role_without_the_right_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    every_route_and_role(&ledger, dir.path(), "authz-sqlite-");
}

#[test]
fn every_route_refuses_every_role_without_the_right_on_postgres() {
    let Some(database) = Database::create("flowgate_authz") else { return };
    let dir = tempfile::tempdir().unwrap();
    every_route_and_role(&database.url(), dir.path(), "authz-pg-");
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
