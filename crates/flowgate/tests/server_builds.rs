//! Registering a build through `flowgate serve`: the bundle is uploaded and
//! checked (digest, size limit, a real flowgate bundle) before it is stored
//! under the project's prefix of the server's store, then the build record is
//! checked (its id derives from its content, its bundle is stored) before the
//! ledger records it, with who registered it as verified: a CI job's claims
//! are its provenance. Every refusal leaves the ledger and the store as they were.

mod common;

use std::path::Path;

use common::server::{create_token, holds_bundle, ledger_dump_at, listing, local_bundle, released_project, Server};
use flowgate_testkit::oidc::Issuer;
use flowgate_testkit::GitProject;
use serde_json::{json, Value};

const AUDIENCE: &str = "flowgate-test";

/// A server config: the ledger, a store, the issuer, jobs of acme/flows as releasers of qa.
fn config(dir: &Path, ledger: &str, store: &Path, issuer: &str, extra: &str) -> String {
    let path = dir.join(format!("server-{}.toml", extra.len()));
    let text = format!(
        "ledger = \"{ledger}\"\nartifacts = \"file://{}\"\n{extra}\n\n[[oidc]]\nissuer = \"{issuer}\"\naudience = \"{AUDIENCE}\"\n\n\
         [[access]]\nissuer = \"{issuer}\"\nclaims = {{ repository = \"acme/flows\" }}\nroles = [\"releaser:qa\"]\n",
        store.display()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A CI job's checkout of `alpha` with one more commit, built against a
/// scratch ledger of its own (as a job would before registering the build
/// with the server): the build's JSON.
fn built_in_a_job(alpha: &GitProject, change: &str) -> (GitProject, Value) {
    let job = alpha.clone_repo(true);
    let config = job.read("flowgate.toml");
    let scratch =
        config
            .lines()
            .map(|l| if l.starts_with("ledger = ") { "ledger = \"sqlite://.flowgate/scratch.db\"" } else { l });
    job.write("flowgate.toml", &(scratch.collect::<Vec<_>>().join("\n") + "\n"));
    job.write("flows/ingest.py", &format!("from prefect import flow\n\n\n@flow\ndef main():\n    print({change:?})\n"));
    job.write("flows/lookup.csv", &incompressible_text(200 * 1024));
    job.commit(change);
    let built = common::run(&job, &["build", "--json"]).success().json();
    (job, built["build"].clone())
}

/// `len` bytes of hex no compressor shrinks much: a bundle over the API's
/// 64 KiB JSON limit, which the bundle upload must not be held to.
fn incompressible_text(len: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len / 16)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            format!("{state:016x}")
        })
        .collect()
}

/// An issuer, a SQLite ledger holding project `alpha` (built and released to
/// qa), and an empty directory for the server's store.
struct Setup {
    issuer: Issuer,
    dir: tempfile::TempDir,
    ledger: String,
    store: std::path::PathBuf,
    alpha: GitProject,
}

impl Setup {
    fn new() -> Self {
        let issuer = Issuer::start();
        let dir = tempfile::tempdir().unwrap();
        let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        let alpha = released_project(&ledger);
        Self { issuer, dir, ledger, store, alpha }
    }
}

#[test]
fn a_job_registers_its_build_and_the_server_records_its_provenance() {
    let Setup { issuer, dir, ledger, store, alpha } = Setup::new();
    let viewer = create_token(dir.path(), &ledger, "lead", &["--role", "viewer"]);
    let server = Server::start(&["--config", &config(dir.path(), &ledger, &store, issuer.url(), "")]);

    let (job, build) = built_in_a_job(&alpha, "second");
    let commit = build["commit"].as_str().unwrap().to_string();
    let main = issuer.mint(&issuer.github_claims(AUDIENCE, "acme/flows", "refs/heads/main", &commit));
    let (bundle, digest) = local_bundle(&job, &build);
    assert!(bundle.len() > 64 * 1024, "the bundle ({} bytes) is under the JSON body limit", bundle.len());
    let id = build["id"].as_str().unwrap().to_string();
    let bundles = |d: &str| format!("/api/v1/projects/alpha/bundles/{d}");
    let state = || (ledger_dump_at(&ledger, alpha.path()), listing(&store));

    // Refused, each naming what is wrong, and nothing changes.
    let before = state();
    let other = flowgate_core::Digest::of(b"other bytes").to_hex();
    let garbage = b"not a bundle at all".to_vec();
    let garbage_digest = flowgate_core::Digest::of(&garbage).to_hex();
    let refusals: [(&str, String, &[u8], &str, u16); 4] = [
        ("PUT", bundles(&other), &bundle, other.as_str(), 400),
        ("PUT", bundles("xyz"), &bundle, "`xyz`", 400),
        ("PUT", bundles(&garbage_digest), &garbage, "not a flowgate bundle", 400),
        ("PUT", bundles(&digest), &bundle, "`lead` lacks the `releaser` role", 403),
    ];
    for (method, path, body, needle, code) in refusals {
        let token = if code == 403 { &viewer } else { &main };
        let (status, answer) = server.send_bytes(method, &path, Some(token), body);
        assert_eq!(status, code, "{path}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(needle), "{path}: missing {needle}: {answer}");
    }
    let register = |build: &Value, token: &str| {
        server.send("POST", "/api/v1/projects/alpha/builds", Some(token), &json!({ "build": build }).to_string())
    };
    // Before its bundle is uploaded, the build is refused, saying what to do.
    let (status, answer) = register(&build, &main);
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("upload it first"), "{answer}");
    assert_eq!(state(), before, "a refused request changed the ledger or the store");

    // The job uploads the bundle (once: again it is already there) and registers the build.
    let (status, stored) = server.send_bytes("PUT", &bundles(&digest), Some(&main), &bundle);
    assert_eq!((status, stored["uploaded"].as_bool()), (200, Some(true)), "{stored}");
    assert_eq!(stored["file_count"], build["file_count"], "{stored}");
    let (_, again) = server.send_bytes("PUT", &bundles(&digest), Some(&main), &bundle);
    assert_eq!(again["uploaded"], false, "{again}");
    assert!(holds_bundle(&store.join("alpha"), &digest), "{:?}", listing(&store));

    // A record that does not hold is refused.
    let mut tampered = build.clone();
    tampered["images"] = json!({ "ingest": "registry.example/evil:1" });
    let mut bare = build.clone();
    bare.as_object_mut().unwrap().remove("settings");
    let mut short = build.clone();
    short["file_count"] = json!(99);
    for (record, needle) in [(&tampered, "give the id"), (&bare, "no deployment settings"), (&short, "not 99")] {
        let before = state();
        let (status, answer) = register(record, &main);
        assert_eq!(status, 400, "{needle}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(needle), "{needle}: {answer}");
        assert_eq!(state(), before, "{needle}: a refused record changed something");
    }

    let (status, registered) = register(&build, &main);
    assert_eq!((status, registered["recorded"].as_bool()), (200, Some(true)), "{registered}");
    assert_eq!(registered["build"]["id"], build["id"]);
    let registrar = &registered["provenance"][0]["registrar"];
    assert_eq!(registrar["method"], "oidc", "{registered}");
    assert_eq!(registrar["subject"], "repo:acme/flows:ref:refs/heads/main");
    assert_eq!(
        (registrar["claims"]["ref"].as_str(), registrar["claims"]["sha"].as_str()),
        (Some("refs/heads/main"), Some(commit.as_str()))
    );
    assert!(store.join(format!("alpha/builds/{id}.json")).is_file(), "no build record in the store");

    // A job on a feature branch registers the same build again: both are kept.
    let feature = issuer.mint(&issuer.github_claims(AUDIENCE, "acme/flows", "refs/heads/feature", &commit));
    let (status, again) = register(&build, &feature);
    assert_eq!((status, again["recorded"].as_bool()), (200, Some(false)), "{again}");
    let (status, provenance) =
        server.get(&format!("/api/v1/projects/alpha/builds/{}/provenance", &id[..8]), Some(&viewer));
    assert_eq!(status, 200, "{provenance}");
    let refs: Vec<&str> =
        provenance.as_array().unwrap().iter().map(|p| p["registrar"]["claims"]["ref"].as_str().unwrap()).collect();
    assert_eq!(refs, ["refs/heads/main", "refs/heads/feature"]);

    // The ledger has it: the project's builds list it, through the server as directly.
    let listed = common::run(&alpha, &["builds", "--json"]).success().json();
    assert!(listed.as_array().unwrap().iter().any(|b| b["id"] == build["id"]), "{listed}");
    // A build registered in direct mode has no provenance.
    let first =
        listed.as_array().unwrap().iter().find(|b| b["id"] != build["id"]).unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(server.get(&format!("/api/v1/projects/alpha/builds/{first}/provenance"), Some(&viewer)).1, json!([]));
}

#[test]
fn a_bundle_over_the_limit_is_413_and_a_server_without_a_store_says_so() {
    let Setup { issuer, dir, ledger, store, alpha } = Setup::new();
    let admin = create_token(dir.path(), &ledger, "root", &["--role", "admin"]);
    let record = common::run(&alpha, &["builds", "--json"]).success().json()[0].clone();
    let (bundle, digest) = local_bundle(&alpha, &record);
    let path = format!("/api/v1/projects/alpha/bundles/{digest}");

    let limit = bundle.len() - 1;
    let small = Server::start(&[
        "--config",
        &config(dir.path(), &ledger, &store, issuer.url(), &format!("bundle_limit = {limit}")),
    ]);
    let (status, answer) = small.send_bytes("PUT", &path, Some(&admin), &bundle);
    assert_eq!((status, answer["error"]["code"].as_str()), (413, Some("payload_too_large")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains(&limit.to_string()), "{answer}");
    assert_eq!(listing(&store), [], "a refused upload left something in the store");

    let storeless = Server::start(&["--ledger", &ledger]);
    let (status, answer) = storeless.send_bytes("PUT", &path, Some(&admin), &bundle);
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("no artifact store"), "{answer}");

    // A store that cannot be opened stops the server before it listens: exit 2 naming it.
    let missing = dir.path().join("no-such-dir");
    let refused = common::server::admin(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ledger",
            &ledger,
            "--artifacts",
            &format!("file://{}", missing.display()),
        ],
    )
    .expect_code(2);
    assert!(refused.stderr.contains("no-such-dir"), "{}", refused.stderr);
}

#[test]
fn flowgate_build_in_a_job_registers_through_the_server_without_the_ledger() {
    let Setup { issuer, dir, ledger, store, alpha } = Setup::new();
    let server = Server::start(&["--config", &config(dir.path(), &ledger, &store, issuer.url(), "")]);
    let url = format!("http://127.0.0.1:{}", server.port);

    // The job's checkout names a ledger it cannot reach: server mode never opens it.
    let job = alpha.clone_repo(true);
    let config = job.read("flowgate.toml");
    let unreachable = config.lines().map(|l| {
        if l.starts_with("ledger = ") {
            "ledger = \"postgres://nobody@127.0.0.1:1/none\""
        } else {
            l
        }
    });
    job.write("flowgate.toml", &(unreachable.collect::<Vec<_>>().join("\n") + "\n"));
    job.write("flows/ingest.py", "from prefect import flow\n\n\n@flow\ndef main():\n    print('third')\n");
    let head = job.commit("third");
    let token = issuer.mint(&issuer.github_claims(AUDIENCE, "acme/flows", "refs/heads/main", &head));
    let through = [("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_ID_TOKEN", token.as_str())];

    let built = job.run_with_env(common::bin(), &["build", "--json"], &through).success().json();
    assert_eq!((built["recorded"].as_bool(), built["uploaded"].as_bool()), (Some(true), Some(true)), "{built}");
    assert_eq!(built["build"]["commit"].as_str(), Some(head.as_str()), "{built}");
    let id = built["build"]["id"].as_str().unwrap().to_string();
    // Again: the text direct mode prints, and nothing new stored.
    let again = job.run_with_env(common::bin(), &["build"], &through).success().stdout;
    assert!(again.starts_with(&format!("Unchanged, already built {id} from commit {}", &head[..12])), "{again}");

    let (_, provenance) = server.get(&format!("/api/v1/projects/alpha/builds/{id}/provenance"), Some(&token));
    assert_eq!(provenance.as_array().map(Vec::len), Some(2), "{provenance}");
    assert_eq!(provenance[0]["registrar"]["claims"]["sha"].as_str(), Some(head.as_str()));
    let listed = common::run(&alpha, &["builds", "--json"]).success().json();
    assert!(listed.as_array().unwrap().iter().any(|b| b["id"] == id.as_str()), "{listed}");
    assert!(holds_bundle(&store.join("alpha"), built["build"]["bundle"].as_str().unwrap()));

    // Without a credential: exit 3 before anything is packed or sent.
    let refused = job.run_with_env(
        common::bin(),
        &["build"],
        &[("FLOWGATE_SERVER", url.as_str()), ("XDG_CONFIG_HOME", "/nonexistent")],
    );
    assert!(refused.expect_code(3).stderr.contains("FLOWGATE_TOKEN"));
}

/// The test of done: a CI job on a feature branch cannot release to an
/// env whose policy requires `refs/heads/main` provenance, even with a build
/// whose recorded git branch says `main`; a job on main registering it can.
#[test]
fn a_build_registered_only_from_a_feature_branch_cannot_reach_an_env_requiring_main() {
    let Setup { issuer, dir, ledger, store, alpha } = Setup::new();
    let server = Server::start(&["--config", &config(dir.path(), &ledger, &store, issuer.url(), "")]);
    let url = format!("http://127.0.0.1:{}", server.port);

    // The project's store is the server's prefix for it, as the README says to set it.
    let job = alpha.clone_repo(true);
    let artifacts = format!("artifacts = \"file://{}/alpha\"\n[envs.qa]\n", store.display());
    let config = job.read("flowgate.toml").replace("[envs.qa]\n", &artifacts).replace(
        "[envs.prod]\n",
        "[envs.prod]\npolicy = { provenance = { ref = \"refs/heads/main\", repository = \"acme/flows\" } }\n",
    );
    job.write("flowgate.toml", &config);
    let head = job.commit("prod needs builds from main");
    let through = |git_ref: &str, sha: &str| {
        let claims = issuer.github_claims(AUDIENCE, "acme/flows", git_ref, sha);
        [("FLOWGATE_SERVER".to_string(), url.clone()), ("FLOWGATE_ID_TOKEN".to_string(), issuer.mint(&claims))]
    };
    let pairs = |vars: &[(String, String)]| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
    let run_as = |vars: &[(String, String)], args: &[&str]| {
        let vars = pairs(vars);
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        job.run_with_env(common::bin(), args, &refs)
    };

    // A token for another commit may not register this one.
    let refused = run_as(&through("refs/heads/main", &"0".repeat(40)), &["build"]).expect_code(3);
    assert!(refused.stderr.contains("may not register a build of commit"), "{}", refused.stderr);

    // Registered by a job on a feature branch; the record says branch `main`.
    let built = run_as(&through("refs/heads/feature", &head), &["build", "--json"]).success().json();
    assert_eq!(built["build"]["branch"], "main", "{built}");
    // The checkout's first direct open teaches the ledger its origin remote; then nothing may change.
    common::run(&job, &["builds"]).success();
    let before = ledger_dump_at(&ledger, alpha.path());
    let release = ["release", "--all", "--env", "prod", "--build", "HEAD", "--reason", "ship"];
    let refused = common::run(&job, &release).expect_code(3);
    for needle in ["provenance", "refs/heads/main", "only on `refs/heads/feature` of `acme/flows`"] {
        assert!(refused.stderr.contains(needle), "missing {needle}: {}", refused.stderr);
    }
    assert_eq!(ledger_dump_at(&ledger, alpha.path()), before, "a refused release changed the ledger");

    // A job on main registers the same build: now it may go.
    run_as(&through("refs/heads/main", &head), &["build"]).success();
    let released = common::run(&job, &[&release[..], &["--json"]].concat()).success().json();
    assert_eq!(released["moves"][0]["env"], "prod", "{released}");
    let history = common::run(&job, &["history", "ingest", "--env", "prod"]).success().stdout;
    assert!(history.contains("provenance") && history.contains("on `refs/heads/main` at sha"), "{history}");
    // `show` prints both registrations as verified; `--json` has them under `provenance`.
    let shown = common::run(&job, &["show", "HEAD"]).success().stdout;
    for needle in ["by CI: acme/flows on refs/heads/feature at sha", "by CI: acme/flows on refs/heads/main", &head] {
        assert!(shown.contains(needle), "missing {needle}: {shown}");
    }
    let shown = common::run(&job, &["show", "HEAD", "--json"]).success().json();
    assert_eq!(shown["provenance"].as_array().map(Vec::len), Some(2), "{shown}");
}
