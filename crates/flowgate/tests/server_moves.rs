//! Moves into the envs a server protects: the server holds their placement,
//! policy and Prefect credentials, so a CLI with `FLOWGATE_SERVER` releases,
//! rolls back and promotes through it, as the verified caller, and the gates
//! judge verified identities: approvals by verified subjects (the releaser's
//! own do not count), branches by the refs of the CI jobs that registered the
//! build. Against a real Prefect server that requires a password only the
//! flowgate server knows, and a worker that runs the released flow.

mod common;

use std::path::Path;

use common::server::{create_token, ledger_dump_at, Server};
use flowgate_prefect::{PrefectAuth, PrefectClient, ServerDeployment};
use flowgate_testkit::oidc::Issuer;
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::{GitProject, Run};

const PREFECT_AUTH: &str = "flowgate:served-only";
const AUDIENCE: &str = "flowgate-test";

/// Project `alpha`: one flow; `prod` in its own config points at a dead
/// address with another work pool and prefix, so only the server's placement
/// can make a deployment; `qa` is ledger-only and not protected.
fn alpha(ledger: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flows/ingest.py", &flow_source("v1"));
    p.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"alpha\"\nledger = \"{ledger}\"\n\n\
             [flows.ingest]\nentrypoint = \"flows/ingest.py:main\"\nwork_pool = \"laptop-pool\"\n\n\
             [envs.qa]\n\n[envs.prod]\nprefect_api_url = \"http://127.0.0.1:9/api\"\nname_prefix = \"laptop-\"\n"
        ),
    );
    p.commit("v1");
    p
}

fn flow_source(marker: &str) -> String {
    format!("from prefect import flow\n\n\n@flow(log_prints=True)\ndef main():\n    print(\"marker-{marker}\")\n")
}

/// `flowgate ARGS` in `p` through the server as the token's holder.
fn as_holder(p: &GitProject, url: &str, token: &str, args: &[&str]) -> Run {
    p.run_with_env(common::bin(), args, &[("FLOWGATE_SERVER", url), ("FLOWGATE_TOKEN", token)])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_env_is_placed_gated_and_credentialed_by_the_server_alone() {
    let prefect = PrefectServer::start_with_auth(Some(PREFECT_AUTH));
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "ledger = \"{ledger}\"\nartifacts = \"file://{}\"\n\n[projects.alpha.envs.prod]\n\
             prefect_api_url = \"{}\"\nprefect_auth = {{ env = \"SERVED_PREFECT_AUTH\", scheme = \"basic\" }}\n\
             name_prefix = \"prod-\"\nwork_pool = \"served-pool\"\n\
             policy = {{ approval = 1, separate_approver = true, allow_override = false }}\n",
            store.display(),
            prefect.api_url()
        ),
    )
    .unwrap();
    let config = config.display().to_string();

    // Without the Prefect credential in its environment, the server does not start.
    let refused = common::server::admin(dir.path(), &["serve", "--listen", "127.0.0.1:0", "--config", &config]);
    assert!(refused.expect_code(2).stderr.contains("SERVED_PREFECT_AUTH"));

    let p = alpha(&ledger);
    common::run(&p, &["builds"]).success(); // registers the project in the ledger
    let ci = create_token(dir.path(), &ledger, "ci", &["--role", "releaser:prod", "--role", "approver:prod"]);
    let lead = create_token(dir.path(), &ledger, "lead", &["--role", "approver:prod"]);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let server = Server::start_with_env(&["--config", &config], &[("SERVED_PREFECT_AUTH", PREFECT_AUTH)]);
    let url = format!("http://127.0.0.1:{}", server.port);
    // Read on a thread of its own: the dump runs a runtime, which cannot start inside this test's.
    let dump = || std::thread::scope(|s| s.spawn(|| ledger_dump_at(&ledger, p.path())).join().expect("dump"));

    let built = as_holder(&p, &url, &ci, &["build", "--json"]).success().json();
    let first = built["build"]["id"].as_str().unwrap().to_string();
    let release = ["release", "--all", "--env", "prod", "--build", "HEAD", "--create-work-pools", "--reason", "ship"];

    // No right, no approval, only one's own approval: exit 3 naming why, nothing changed.
    let before = dump();
    let no_right = as_holder(&p, &url, &viewer, &release).expect_code(3);
    assert!(no_right.stderr.contains("`viewer` lacks the `releaser` role on env `prod`"), "{}", no_right.stderr);
    let unapproved = as_holder(&p, &url, &ci, &release).expect_code(3);
    assert!(unapproved.stderr.contains("has 0 of the 1 approvals needed for `prod`"), "{}", unapproved.stderr);
    assert_eq!(dump(), before, "a refused release changed the ledger");
    as_holder(&p, &url, &ci, &["approve", "HEAD", "--env", "prod", "--reason", "mine"]).success();
    let own = as_holder(&p, &url, &ci, &release).expect_code(3);
    assert!(own.stderr.contains("approvals by `ci`, who makes this move, do not count"), "{}", own.stderr);
    // Overrides are not allowed in this env; the server says so.
    let mut forced = release.to_vec();
    forced.push("--override-gates");
    let overridden = as_holder(&p, &url, &ci, &forced).expect_code(2);
    assert!(overridden.stderr.contains("does not allow --override-gates"), "{}", overridden.stderr);

    // With the lead's approval the release goes, placed as the server says.
    as_holder(&p, &url, &lead, &["approve", "HEAD", "--env", "prod", "--reason", "reviewed"]).success();
    let moved = as_holder(&p, &url, &ci, &[&release[..], &["--json"]].concat()).success().json();
    assert_eq!(moved["moves"][0]["build"], first.as_str(), "{moved}");
    assert_eq!(moved["sync"]["created"], serde_json::json!(["prod-ingest"]), "{moved}");
    let client = PrefectClient::new(&prefect.api_url(), Some(PrefectAuth::Basic(PREFECT_AUTH.into()))).unwrap();
    let deployment = deployment(&client, "prod-ingest").await;
    assert_eq!(deployment.work_pool_name.as_deref(), Some("served-pool"), "{deployment:?}");
    let pull = serde_json::to_string(&deployment.pull_steps).unwrap();
    assert!(pull.contains(&format!("{}/alpha", store.display())), "the pull step is not the server's store: {pull}");

    // The text of a move is direct mode's; the history names the verified caller.
    let history = as_holder(&p, &url, &viewer, &["history", "ingest", "--env", "prod", "--json"]).success().json();
    assert_eq!(history[0]["actor"], "ci", "{history}");
    assert_eq!(history[0]["audit"]["verified"]["method"], "token", "{history}");
    let text = as_holder(&p, &url, &viewer, &["history", "ingest", "--env", "prod"]).success().stdout;
    assert!(text.contains("ci (token)"), "the history does not say how the mover was verified: {text}");

    // A worker runs the flow from the bundle the server stored.
    let bin_dir = Path::new(common::bin()).parent().unwrap().to_path_buf();
    let worker = PrefectWorker::start_with_auth(&prefect.api_url(), "served-pool", Some(&bin_dir), Some(PREFECT_AUTH));
    common::run_to_completion(&client, "prod-ingest", &worker).await;

    // A second build goes the same way; a rollback returns to the first.
    p.write("flows/ingest.py", &flow_source("v2"));
    p.commit("v2");
    as_holder(&p, &url, &ci, &["build"]).success();
    as_holder(&p, &url, &lead, &["approve", "HEAD", "--env", "prod", "--reason", "reviewed"]).success();
    let text = as_holder(&p, &url, &ci, &release).success().stdout;
    assert!(text.contains("updated `prod-ingest`"), "{text}");
    let back = as_holder(&p, &url, &ci, &["rollback", "ingest", "--env", "prod", "--reason", "incident", "--json"])
        .success()
        .json();
    assert_eq!(
        (back["moves"][0]["kind"].as_str(), back["moves"][0]["build"].as_str()),
        (Some("rollback"), Some(first.as_str()))
    );

    // The server plans and syncs the env with its own credentials; a viewer may look, not sync.
    let plan = as_holder(&p, &url, &viewer, &["plan", "--env", "prod", "--json"]).success().json();
    assert_eq!(plan["deployments"][0]["action"], "unchanged", "{plan}");
    let synced = as_holder(&p, &url, &ci, &["sync", "--env", "prod", "--json"]).success().json();
    assert_eq!(
        (synced["unchanged"][0].as_str(), synced["writes"].as_u64()),
        (Some("prod-ingest"), Some(0)),
        "{synced}"
    );
    let no_right = as_holder(&p, &url, &viewer, &["sync", "--env", "prod"]).expect_code(3);
    assert!(no_right.stderr.contains("`viewer` lacks the `releaser` role on env `prod`"), "{}", no_right.stderr);

    // `status` shows what runs where, with prod's sync state read by the server.
    let status = as_holder(&p, &url, &viewer, &["status", "--json"]).success().json();
    assert_eq!(status["envs"], serde_json::json!(["qa", "prod"]), "{status}");
    let cell = &status["flows"][0]["cells"][1];
    assert_eq!((cell["build"].as_str(), cell["sync"].as_str()), (Some(first.as_str()), Some("synced")), "{status}");
    assert!(status["flows"][0]["cells"][0].is_null(), "{status}");
    let text = as_holder(&p, &url, &viewer, &["status", "--env", "prod"]).success().stdout;
    assert!(text.contains("PROD") && text.contains(&first[..8]), "{text}");

    // An env the server does not protect is not moved through it.
    let unprotected = as_holder(&p, &url, &ci, &["release", "--all", "--env", "qa", "--build", "HEAD"]).expect_code(2);
    assert!(unprotected.stderr.contains("env `qa` is not protected by this server"), "{}", unprotected.stderr);
}

async fn deployment(client: &PrefectClient, name: &str) -> ServerDeployment {
    let found = client.read_deployments(&[name.to_string()]).await.expect("read deployments");
    found.into_iter().find(|d| d.name == name).unwrap_or_else(|| panic!("no deployment {name}"))
}

/// On a server, `branches` believes the CI job's verified ref, not the branch
/// the build record names: a build registered only by a job on a feature
/// branch, whose record says `main`, cannot reach a protected env that takes
/// only `main`; registered again by a job on main, it can.
#[test]
fn a_protected_env_believes_only_verified_branches() {
    feature_job_refused_main_job_moves(
        "{ branches = [\"main\"] }",
        "registered by CI jobs on `feature` (verified)",
        "on branch `main` (verified)",
    );
}

/// The test of done, through the server: a CI job on a feature branch
/// cannot release to a protected env whose policy requires `refs/heads/main`
/// provenance, even with a build whose record says `main`, and even though
/// the job holds `releaser` there; a job on main can.
#[test]
fn a_feature_branch_job_cannot_release_to_an_env_requiring_main_provenance() {
    feature_job_refused_main_job_moves(
        "{ provenance = { ref = \"refs/heads/main\", repository = \"acme/flows\" } }",
        "only on `refs/heads/feature` of `acme/flows`",
        "on `refs/heads/main` at sha",
    );
}

/// CI jobs of `acme/flows` hold `releaser:prod`; prod's `policy`. A build
/// registered by a job on `feature` is refused (`refusal` in the message,
/// nothing changed); registered by a job on main it moves (`passed` among the gates).
fn feature_job_refused_main_job_moves(policy: &str, refusal: &str, passed: &str) {
    let issuer = Issuer::start();
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let config = dir.path().join("server.toml");
    let issuer_url = issuer.url();
    std::fs::write(
        &config,
        format!(
            "ledger = \"{ledger}\"\nartifacts = \"file://{}\"\n\n[[oidc]]\nissuer = \"{issuer_url}\"\naudience = \"{AUDIENCE}\"\n\n\
             [[access]]\nissuer = \"{issuer_url}\"\nclaims = {{ repository = \"acme/flows\" }}\nroles = [\"releaser:prod\"]\n\n\
             [projects.alpha.envs.prod]\npolicy = {policy}\n",
            store.display()
        ),
    )
    .unwrap();
    let p = alpha(&ledger);
    common::run(&p, &["builds"]).success();
    let server = Server::start(&["--config", &config.display().to_string()]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let head = p.git(&["rev-parse", "HEAD"]).trim().to_string();
    let job = |git_ref: &str, args: &[&str]| {
        let token = issuer.mint(&issuer.github_claims(AUDIENCE, "acme/flows", git_ref, &head));
        p.run_with_env(common::bin(), args, &[("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_ID_TOKEN", token.as_str())])
    };
    let release = ["release", "--all", "--env", "prod", "--build", "HEAD"];

    let built = job("refs/heads/feature", &["build", "--json"]).success().json();
    assert_eq!(built["build"]["branch"], "main", "the record says main: {built}");
    let before = ledger_dump_at(&ledger, p.path());
    let refused = job("refs/heads/feature", &release).expect_code(3);
    assert!(refused.stderr.contains(refusal), "{}", refused.stderr);
    assert_eq!(ledger_dump_at(&ledger, p.path()), before, "a refused release changed the ledger");

    job("refs/heads/main", &["build"]).success();
    let moved = job("refs/heads/main", &[&release[..], &["--json"]].concat()).success().json();
    let gates = moved["gates"][0]["gates"].to_string();
    assert!(gates.contains(passed), "{moved}");
}
