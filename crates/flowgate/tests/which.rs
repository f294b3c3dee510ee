//! `flowgate which` against a real Prefect server and process worker: the pull
//! step runs the real `flowgate` binary, which records the build on the run, and
//! `which` names the build each run executed, including a run created while the
//! deployment was at v2 and executed after it was switched back to v1, and the
//! image its build pinned by digest.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{bin, run};
use flowgate_core::{BuildId, Digest, EnvName, Move, MoveKind};
use flowgate_ledger::LedgerUrl;
use flowgate_prefect::{plan, sync, DeploymentInput, DesiredDeployment, PrefectClient, PruneScope, SyncOptions};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::registry::Registry;
use flowgate_testkit::GitProject;
use serde_json::{json, Map, Value};

const POOL: &str = "which-pool";
const DEPLOYMENT: &str = "qa-hello";

fn flow_file(marker: &str) -> String {
    format!("from prefect import flow\n\n@flow(name=\"hello\", log_prints=True)\ndef hello():\n    print(\"marker-{marker}\")\n")
}

/// `image` is pinned by digest (`pin_images`): `which` names the pinned image.
fn project(api_url: &str, image: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"which-test\"\nledger = \"sqlite://.flowgate/ledger.db\"\n\
             artifacts = \"file://.flowgate/artifacts\"\nimage = \"{image}\"\npin_images = true\n\n\
             [flows.hello]\nentrypoint = \"flows/hello.py:hello\"\nwork_pool = \"{POOL}\"\n\n\
             [envs.qa]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"qa-\"\n"
        ),
    );
    p
}

/// Commits the flow with `marker` and builds it; returns (build id, bundle digest).
fn build(p: &GitProject, marker: &str) -> (BuildId, Digest) {
    p.write("flows/hello.py", &flow_file(marker));
    p.write("flows/helpers.py", "GREETING = \"hello\"\n");
    p.commit(marker);
    let built = run(p, &["build", "--json"]).success().json();
    let id = built["build"]["id"].as_str().expect("build id").parse().expect("valid id");
    let bundle = built["build"]["bundle"].as_str().expect("bundle").parse().expect("valid digest");
    (id, bundle)
}

async fn release(p: &GitProject, build: &BuildId, expected: Option<i64>) {
    let url: LedgerUrl = common::LEDGER_URL.parse().unwrap();
    let claim = common::project_claim(p.path()).expect("project");
    let ledger = flowgate_ledger::open(&url, p.path(), &claim).await.expect("ledger");
    let mv = Move {
        flow: "hello".parse().unwrap(),
        env: "qa".parse::<EnvName>().unwrap(),
        expected,
        build: build.clone(),
        kind: MoveKind::Release,
        actor: "tester@example.com".into(),
        reason: None,
        audit: Default::default(),
    };
    ledger.apply(&[mv]).await.expect("release");
}

/// Creates or updates the deployment so that it runs `build`.
async fn deploy(client: &PrefectClient, store_url: &str, build: &BuildId, digest: &Digest, pull: Option<String>) {
    let input = DeploymentInput {
        project: "acme".parse().unwrap(),
        env: "qa".parse().unwrap(),
        flow_name: "hello".into(),
        deployment_name: DEPLOYMENT.into(),
        build: build.clone(),
        digest: *digest,
        store_url: store_url.into(),
        entrypoint: "flows/hello.py:hello".into(),
        work_pool: POOL.into(),
        pool_type: "process".into(),
        work_queue: None,
        parameters: Map::new(),
        parameter_schema: json!({"title": "Parameters", "type": "object", "properties": {}}),
        schedules: vec![],
        job_variables: Map::new(),
        image: None,
        tags: vec![],
        description: None,
        extra_pull_steps: vec![],
        paused: None,
        concurrency_limit: None,
        enforce_parameter_schema: None,
        pull_command: pull,
    };
    let scope = PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "qa-".into() };
    let existing = client.read_deployments(&[DEPLOYMENT.into()]).await.expect("read deployments");
    let planned = plan(&[DesiredDeployment::new(input)], &existing, &scope);
    sync(client, &planned, &SyncOptions { prune: false, create_work_pools: true }, "process").await.expect("sync");
}

async fn deployment_id(client: &PrefectClient) -> String {
    client.read_deployments(&[DEPLOYMENT.into()]).await.expect("read").remove(0).id
}

async fn wait_done(client: &PrefectClient, id: &str, worker: &PrefectWorker) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let current = client.read_flow_run(id).await.expect("read run");
        if ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].contains(&current.state_type()) {
            assert_eq!(current.state_type(), "COMPLETED", "{:?}\n--- worker\n{}", current.state, worker.log());
            return;
        }
        assert!(Instant::now() < deadline, "run stuck in {:?}\n--- worker\n{}", current.state, worker.log());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn which(p: &GitProject, run_id: &str) -> (Value, String) {
    let json = run(p, &["which", run_id, "--env", "qa", "--json"]).success().json();
    let text = run(p, &["which", run_id, "--env", "qa"]).success().stdout;
    (json, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn which_names_the_build_each_run_executed_even_after_a_switch() {
    let server = PrefectServer::start();
    let client = PrefectClient::new(&server.api_url(), None).unwrap();
    let registry = Registry::start();
    let digest = registry.push_image("acme/hello", "v1", "which");
    let pinned = format!("{}/acme/hello@{digest}", registry.host());
    let p = project(&server.api_url(), &format!("{}/acme/hello:v1", registry.host()));
    let (v1, d1) = build(&p, "v1");
    let (v2, d2) = build(&p, "v2");
    assert_ne!(v1, v2);
    release(&p, &v1, None).await;
    release(&p, &v2, Some(1)).await;
    let store_url = format!("file://{}", p.path().join(".flowgate/artifacts").display());

    // The hard case: a run created while the deployment is at v2, executed after
    // the deployment went back to v1 (no worker is polling until then).
    deploy(&client, &store_url, &v2, &d2, None).await;
    let held = client.create_flow_run(&deployment_id(&client).await).await.expect("create held run");
    assert_eq!(held.deployment_version.as_deref(), Some(v2.to_string().as_str()));
    deploy(&client, &store_url, &v1, &d1, None).await;
    let bin_dir = Path::new(bin()).parent().unwrap().to_path_buf();
    let worker = PrefectWorker::start(&server.api_url(), POOL, Some(&bin_dir));
    wait_done(&client, &held.id, &worker).await;

    let (held_which, text) = which(&p, &held.id);
    assert_eq!(held_which["build"], json!(v1.to_string()), "{held_which:#}");
    assert_eq!(held_which["determined_by"], json!("pull-record"), "{held_which:#}");
    assert_eq!(held_which["deployment_version"], json!(v2.to_string()), "{held_which:#}");
    assert_eq!(held_which["deployment_version_agrees"], json!(false), "{held_which:#}");
    assert_eq!(held_which["flow_version_matches"], json!(true), "{held_which:#}");
    assert_eq!(held_which["bundle"], json!(d1.to_hex()), "{held_which:#}");
    assert_eq!(held_which["flow"], json!("hello"), "{held_which:#}");
    assert!(text.contains(&format!("build       {v1}")), "{text}");
    assert!(text.contains(&format!("deployment_version `{v2}`")), "{text}");
    assert_eq!(held_which["image"], json!(pinned), "{held_which:#}");
    assert!(text.contains(&format!("image       {pinned}\n")), "{text}");

    // Runs created and executed at one version agree with it.
    deploy(&client, &store_url, &v2, &d2, None).await;
    let at_v2 = client.create_flow_run(&deployment_id(&client).await).await.expect("create run");
    wait_done(&client, &at_v2.id, &worker).await;
    let (v2_which, text) = which(&p, &at_v2.id);
    assert_eq!(v2_which["build"], json!(v2.to_string()), "{v2_which:#}");
    assert_eq!(v2_which["deployment_version_agrees"], json!(true), "{v2_which:#}");
    assert!(!text.contains("note"), "{text}");

    // Prefect's flow_version is the MD5 of the entrypoint file as executed.
    assert_eq!(held_which["flow_version"], json!(md5_hex(flow_file("v1").as_bytes())), "{held_which:#}");

    // Without a pull record (a pull step that only prints v2's unpacked
    // directory), the run's flow_version alone still names the build.
    let pulled = run(&p, &["pull", &v2.to_string(), "--json"]).success().json();
    let dir = pulled["path"].as_str().expect("path").to_string();
    deploy(&client, &store_url, &v2, &d2, Some(format!("echo {dir}"))).await;
    let unrecorded = client.create_flow_run(&deployment_id(&client).await).await.expect("create run");
    wait_done(&client, &unrecorded.id, &worker).await;
    let (by_md5, _) = which(&p, &unrecorded.id);
    assert_eq!(by_md5["determined_by"], json!("flow-version"), "{by_md5:#}");
    assert_eq!(by_md5["build"], json!(v2.to_string()), "{by_md5:#}");
    assert_eq!(by_md5["candidates"].as_array().map(Vec::len), Some(1), "{by_md5:#}");

    // A build keeps MD5s for its entrypoints only (not for flows/helpers.py). A
    // manifest without one (an entrypoint that was not one when it was built) is
    // answered from the bundle itself.
    for digest in [&d1, &d2] {
        let manifest = p.path().join(format!(".flowgate/artifacts/manifests/{}.json", digest.to_hex()));
        assert_eq!(strip_md5s(&manifest), vec!["flows/hello.py".to_string()], "{}", manifest.display());
    }
    let (from_bundle, _) = which(&p, &unrecorded.id);
    assert_eq!(from_bundle["determined_by"], json!("flow-version"), "{from_bundle:#}");
    assert_eq!(from_bundle["build"], json!(v2.to_string()), "{from_bundle:#}");
    let (held_again, _) = which(&p, &held.id);
    assert_eq!(held_again["flow_version_matches"], json!(true), "{held_again:#}");

    // An unknown run is a usage error naming it.
    let missing = "00000000-0000-4000-8000-000000000000";
    let out = run(&p, &["which", missing, "--env", "qa"]).expect_code(2);
    assert!(out.stderr.contains(&format!("`{missing}`")), "{}", out.stderr);
    drop(worker);
}

/// Removes every `md5` from a stored manifest; returns the paths that had one.
fn strip_md5s(manifest: &Path) -> Vec<String> {
    let mut value: Value = serde_json::from_slice(&std::fs::read(manifest).expect("manifest")).expect("json");
    let mut had = Vec::new();
    for file in value["files"].as_array_mut().expect("files") {
        if file.as_object_mut().expect("entry").remove("md5").is_some() {
            had.push(file["path"].as_str().expect("path").to_string());
        }
    }
    std::fs::write(manifest, serde_json::to_vec(&value).unwrap()).expect("write manifest");
    had
}

/// MD5 by the `md5sum` tool, so the test shares no code with flowgate.
fn md5_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}
