//! The CLI as a client of `flowgate serve`: `login` checks a token before it
//! keeps it (mode 0600), `whoami` prints what the server answers, `logout`
//! forgets it; a missing or refused credential is exit 3 naming what to do.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::bin;
use common::server::{create_token, released_project, Server};
use flowgate_testkit::Run;

/// `flowgate ARGS` with `config_home` as XDG_CONFIG_HOME, `token` (if any) as
/// FLOWGATE_TOKEN, and `stdin` on standard input.
fn client(config_home: &Path, token: Option<&str>, args: &[&str], stdin: &str) -> Run {
    let mut command = Command::new(bin());
    command.args(args).env("XDG_CONFIG_HOME", config_home);
    // No credential from the machine running the tests (a CI job's among them).
    for name in ["FLOWGATE_TOKEN", "FLOWGATE_SERVER", "FLOWGATE_ID_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"] {
        command.env_remove(name);
    }
    if let Some(token) = token {
        command.env("FLOWGATE_TOKEN", token);
    }
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A command refused before it reads its input closes the pipe: that is not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    Run::from_output(child.wait_with_output().unwrap())
}

#[test]
fn login_keeps_a_checked_token_owner_only_and_whoami_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let lead = create_token(dir.path(), &ledger, "lead", &["--role", "viewer", "--role", "releaser:qa"]);
    let server = Server::start(&["--ledger", &ledger]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let home = dir.path().join("config");
    let file = home.join("flowgate/credentials.toml");

    // With FLOWGATE_TOKEN: the server's answer, as JSON and as text.
    let me = client(&home, Some(&lead), &["whoami", "--server", &url, "--json"], "").success().json();
    assert_eq!(me, server.get("/api/v1/whoami", Some(&lead)).1);
    assert_eq!((me["subject"].as_str(), me["kind"].as_str()), (Some("lead"), Some("token")), "{me}");
    let text = client(&home, Some(&lead), &["whoami", "--server", &url], "").success().stdout;
    assert!(text.contains("subject  lead") && text.contains("grants   viewer, releaser:qa"), "{text}");

    // Without any credential, or with a refused one: exit 3, naming what to do.
    let missing = client(&home, None, &["whoami", "--server", &url], "").expect_code(3);
    for needle in ["FLOWGATE_TOKEN", "flowgate login --server", url.as_str()] {
        assert!(missing.stderr.contains(needle), "missing {needle}: {}", missing.stderr);
    }
    let wrong = format!("fgt_{}", "1".repeat(64));
    let refused = client(&home, Some(&wrong), &["whoami", "--server", &url], "").expect_code(3);
    assert!(refused.stderr.contains("refused the credential"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(&wrong[4..]), "the token is printed");

    // A refused login keeps nothing; a good one keeps the token, owner-only.
    let bad_login = client(&home, None, &["login", "--server", &url], &wrong).expect_code(3);
    assert!(bad_login.stderr.contains("refused the credential"), "{}", bad_login.stderr);
    assert!(!file.exists(), "a refused token was kept");
    let logged_in = client(&home, None, &["login", "--server", &format!("{url}/")], &format!("{lead}\n")).success();
    assert!(logged_in.stdout.contains("as `lead`"), "{}", logged_in.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    }
    assert_eq!(client(&home, None, &["whoami", "--server", &url, "--json"], "").success().json(), me);

    // FLOWGATE_TOKEN wins over the kept one.
    let other = create_token(dir.path(), &ledger, "other", &["--role", "viewer"]);
    let as_other = client(&home, Some(&other), &["whoami", "--server", &url, "--json"], "").success().json();
    assert_eq!(as_other["subject"], "other");

    // logout forgets it.
    client(&home, None, &["logout", "--server", &url], "").success();
    client(&home, None, &["whoami", "--server", &url], "").expect_code(3);
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&lead[4..]), "logout left the token in the file");
}

#[test]
fn a_bad_server_url_or_an_empty_login_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, stdin, needle) in [
        (&["whoami"][..], "", "FLOWGATE_SERVER"),
        (&["whoami", "--server", "ftp://host"][..], "", "`ftp://host`"),
        (&["login", "--server", "not a url"][..], "x", "`not a url`"),
        (&["login", "--server", "http://127.0.0.1:9"][..], "  \n", "No token on standard input"),
    ] {
        let out = client(dir.path(), Some("fgt_x"), args, stdin).expect_code(2);
        assert!(out.stderr.contains(needle), "{args:?}: missing {needle}: {}", out.stderr);
    }
    assert!(!dir.path().join("flowgate").exists(), "a refused command wrote credentials");
}

#[test]
fn history_and_builds_print_the_same_through_the_server_as_direct() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let alpha = released_project(&ledger);
    let viewer = create_token(dir.path(), &ledger, "lead", &["--role", "viewer"]);
    let server = Server::start(&["--ledger", &ledger]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let through = [("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", viewer.as_str())];

    for args in [&["history", "ingest", "--env", "qa"][..], &["builds"][..]] {
        for json in [false, true] {
            let mut args = args.to_vec();
            if json {
                args.push("--json");
            }
            // Ages are printed relative to now: the answer through the server
            // must equal a direct one made just before or just after it.
            let before = common::run(&alpha, &args).success().stdout;
            let served = alpha.run_with_env(bin(), &args, &through).success().stdout;
            let after = common::run(&alpha, &args).success().stdout;
            assert!(served == before || served == after, "{args:?} through the server:\n{served}\ndirect:\n{after}");
        }
    }
    let log = server.log();
    for path in ["/api/v1/projects/alpha/history", "/api/v1/projects/alpha/builds"] {
        assert_eq!(log.matches(&format!("path={path}")).count(), 2, "{path} not asked twice:\n{log}");
    }
    // The same refusals: an unknown flow is exit 2 before any request; no
    // credential for the server is exit 3.
    alpha.run_with_env(bin(), &["history", "nope", "--env", "qa"], &through).expect_code(2);
    common::run(&alpha, &["history", "nope", "--env", "qa"]).expect_code(2);
    let no_token = alpha.run_with_env(
        bin(),
        &["builds"],
        &[("FLOWGATE_SERVER", url.as_str()), ("XDG_CONFIG_HOME", "/nonexistent")],
    );
    assert!(no_token.expect_code(3).stderr.contains("FLOWGATE_TOKEN"));
}

#[test]
fn approve_and_pin_through_the_server_record_the_verified_caller() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let alpha = released_project(&ledger);
    let lead = create_token(dir.path(), &ledger, "lead", &["--role", "approver:prod", "--role", "releaser"]);
    let viewer = create_token(dir.path(), &ledger, "intern", &["--role", "viewer"]);
    let server = Server::start(&["--ledger", &ledger]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let as_lead = [("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", lead.as_str()), ("FLOWGATE_ACTOR", "spoofed")];
    let as_viewer = [("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", viewer.as_str())];
    let build = common::run(&alpha, &["builds", "--json"]).success().json()[0]["id"].as_str().unwrap().to_string();

    // A git ref is resolved by the client; the actor is who the server verified,
    // whatever FLOWGATE_ACTOR says.
    let approve = ["approve", "HEAD", "--env", "prod", "--reason", "reviewed"];
    let approved = alpha.run_with_env(bin(), &approve, &as_lead).success().stdout;
    assert_eq!(approved, format!("lead approved build {build} for `prod` (every flow): reviewed\n"));
    let again = alpha.run_with_env(bin(), &[&approve[..], &["--json"]].concat(), &as_lead).success().json();
    assert_eq!((again["actor"].as_str(), again["recorded"].as_bool()), (Some("lead"), Some(false)), "{again}");
    assert_eq!(
        (again["verified"]["subject"].as_str(), again["verified"]["method"].as_str()),
        (Some("lead"), Some("token"))
    );
    assert_eq!(again["verified"]["request_id"].as_str().map(str::len), Some(32), "{again}");

    // Without the right: exit 3 naming it, and nothing recorded.
    let before = common::server::ledger_dump_at(&ledger, alpha.path());
    let refused = alpha.run_with_env(bin(), &approve, &as_viewer).expect_code(3);
    assert!(refused.stderr.contains("`intern` lacks the `approver` role on env `prod`"), "{}", refused.stderr);
    let refused = alpha.run_with_env(bin(), &["pin", &build[..8], "--reason", "keep"], &as_viewer).expect_code(3);
    assert!(refused.stderr.contains("`releaser`"), "{}", refused.stderr);
    assert_eq!(common::server::ledger_dump_at(&ledger, alpha.path()), before, "a refused command wrote");

    // pin, pins and unpin print what direct mode prints for the same ledger.
    let pinned = alpha.run_with_env(bin(), &["pin", &build[..8], "--reason", "audit"], &as_lead).success().stdout;
    assert_eq!(pinned, format!("Pinned build {build}: audit\n"));
    for args in [&["pins"][..], &["pins", "--json"][..]] {
        // Ages are relative to now: a direct answer just before or after must match.
        let before = common::run(&alpha, args).success().stdout;
        let served = alpha.run_with_env(bin(), args, &as_viewer).success().stdout;
        let after = common::run(&alpha, args).success().stdout;
        assert!(served == before || served == after, "{args:?} through the server:\n{served}\ndirect:\n{after}");
        assert!(served.contains("lead"), "{served}");
    }
    // The ledger keeps how the server verified the pin's actor, and which request it was.
    let listed = alpha.run_with_env(bin(), &["pins", "--json"], &as_viewer).success().json();
    assert_eq!(listed[0]["verified"]["method"], "token", "{listed}");
    let request = listed[0]["verified"]["request_id"].as_str().expect("a request id").to_string();
    assert!(server.log().contains(&request), "the server's log does not name request {request}");
    let table = alpha.run_with_env(bin(), &["pins"], &as_viewer).success().stdout;
    assert!(table.contains("lead (token)"), "{table}");
    let unpinned = alpha.run_with_env(bin(), &["pin", "--remove", "HEAD"], &as_lead).success().stdout;
    assert_eq!(unpinned, format!("Unpinned build {build}\n"));
    let missing = alpha.run_with_env(bin(), &["pin", "HEAD"], &as_lead).expect_code(2);
    assert!(missing.stderr.contains("--reason"), "{}", missing.stderr);
    let unknown = alpha.run_with_env(bin(), &["approve", "no-such-ref", "--env", "prod", "--reason", "r"], &as_lead);
    assert!(unknown.expect_code(2).stderr.contains("`no-such-ref`"));
}

/// `diff` and `show` through the server print what direct mode prints: the
/// server reads pointers, records and manifests (of the bundles registered
/// through it), the CLI adds the commits between the builds from its checkout.
#[test]
fn diff_and_show_through_the_server_print_what_direct_mode_prints() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let alpha = released_project(&ledger);
    let ci = create_token(dir.path(), &ledger, "ci", &["--role", "releaser"]);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let (server, _store) = with_store(dir.path(), &ledger);
    let through = |token: &str, args: &[&str]| as_holder(&server, &alpha, token, args);
    // Two builds, each in the project's own store (for direct mode) and registered
    // through the server (into its store), one in each env (moved in direct mode).
    through(&ci, &["build"]).success(); // the first, made by `released_project`
    common::run(&alpha, &["release", "--all", "--env", "prod", "--build", "HEAD"]).success();
    alpha.write("flows/ingest.py", "from prefect import flow\n\n\n@flow\ndef main():\n    print(2)\n");
    alpha.write("flows/extra.sql", "select 1\n");
    alpha.commit("second");
    common::run(&alpha, &["build"]).success();
    through(&ci, &["build"]).success();
    common::run(&alpha, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();

    let direct = common::run(&alpha, &["diff", "prod", "qa", "--json"]).success().json();
    let served = through(&viewer, &["diff", "prod", "qa", "--json"]).success().json();
    assert_eq!(served, direct);
    assert_eq!(served["flows"][0]["commits"][0].as_str().map(|c| c.ends_with("second")), Some(true), "{served}");
    let files = served["flows"][0]["files"].to_string();
    assert!(files.contains("flows/extra.sql") && files.contains("flows/ingest.py"), "{served}");
    let text = through(&viewer, &["diff", "prod", "qa"]).success().stdout;
    assert_eq!(text, common::run(&alpha, &["diff", "prod", "qa"]).success().stdout);

    // `show` of a build registered through the server (by a git ref the CLI resolves).
    let direct = common::run(&alpha, &["show", "HEAD", "--json"]).success().json();
    let served = through(&viewer, &["show", "HEAD", "--json"]).success().json();
    assert_eq!(served["provenance"][0]["registrar"]["subject"], "ci", "{served}");
    assert_eq!(served, direct);
    let text = through(&viewer, &["show", "HEAD"]).success().stdout;
    assert_eq!(text, common::run(&alpha, &["show", "HEAD"]).success().stdout);

    // A server without a store of the builds' bundles cannot name the files: unknown, not an error.
    let storeless = Server::start(&["--ledger", &ledger]);
    let (status, answer) = storeless.get("/api/v1/projects/alpha/diff?from=prod&to=qa", Some(&viewer));
    assert_eq!((status, &answer["flows"][0]["files"]), (200, &serde_json::Value::Null), "{answer}");
    let shown = as_holder(&storeless, &alpha, &viewer, &["show", "HEAD"]).expect_code(2);
    assert!(shown.stderr.contains("was not registered through this server"), "{}", shown.stderr);
    let (status, answer) = server.get("/api/v1/projects/alpha/diff?from=prod&to=../qa", Some(&viewer));
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("bad_request")), "{answer}");
}

/// `flowgate ARGS` in `project` through `server` as the holder of `token`.
fn as_holder(server: &Server, project: &flowgate_testkit::GitProject, token: &str, args: &[&str]) -> Run {
    let url = format!("http://127.0.0.1:{}", server.port);
    project.run_with_env(bin(), args, &[("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", token)])
}

/// A server over `ledger` with a store of its own in `dir`.
fn with_store(dir: &Path, ledger: &str) -> (Server, std::path::PathBuf) {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    (Server::start(&["--ledger", ledger, "--artifacts", &format!("file://{}", store.display())]), store)
}

/// `gc` and `fsck` through the server work on its ledger and its store, as an
/// admin: builds no pointer or recent revision keeps go, with their bundles.
#[test]
fn gc_and_fsck_through_the_server_maintain_its_store_as_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let alpha = released_project(&ledger);
    let admin = create_token(dir.path(), &ledger, "ops", &["--role", "admin"]);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let (server, store) = with_store(dir.path(), &ledger);
    let through = |token: &str, args: &[&str]| as_holder(&server, &alpha, token, args);
    // Both builds registered through the server (the first again, into its store); qa moves to the second.
    let first = through(&admin, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();
    alpha.write("flows/ingest.py", "from prefect import flow\n\n\n@flow\ndef main():\n    print(2)\n");
    alpha.commit("second");
    through(&admin, &["build"]).success();
    common::run(&alpha, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    let bundles = || common::server::listing(&store).into_iter().filter(|(k, _)| k.contains("bundles/")).count();
    assert_eq!(bundles(), 2);

    let gc = ["gc", "--keep-last", "1", "--keep-days", "0", "--grace", "0s"];
    let refused = through(&viewer, &gc).expect_code(3);
    assert!(refused.stderr.contains("`viewer` lacks the `admin` role"), "{}", refused.stderr);
    let dry = through(&admin, &[&gc[..], &["--dry-run", "--json"]].concat()).success().json();
    assert_eq!(dry["deleted_builds"][0]["id"], first.as_str(), "{dry}");
    assert_eq!(bundles(), 2, "a dry run deleted");
    let text = through(&admin, &gc).success().stdout;
    assert!(text.starts_with("Deleted 1 build(s); kept 1 (1 pointer, 1 recent)"), "{text}");
    assert!(text.contains(&first), "{text}");
    assert_eq!(bundles(), 1);
    let builds = through(&viewer, &["builds", "--json"]).success().json();
    assert_eq!(builds.as_array().map(Vec::len), Some(1), "{builds}");

    // The server's store and ledger agree; the lock was held as the verified caller.
    let checked = through(&admin, &["fsck", "--json"]).success().json();
    assert_eq!(checked["consistent"], true, "{checked}");
    assert!(server.log().contains("path=/api/v1/projects/alpha/fsck"));
    through(&viewer, &["fsck"]).expect_code(3);
    let bad = through(&admin, &["fsck", "--grace", "soon"]).expect_code(2);
    assert!(bad.stderr.contains("`--grace soon`"), "{}", bad.stderr);
}
