//! Verification runs and the runs of a build, against a real Prefect 3.9.1
//! server: a repeated create is the same run, runs are judged by the pull
//! record `flowgate pull` leaves, and a worker runs one through its pull step.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{build, client, input, server};
use flowgate_core::{BuildId, Digest};
use flowgate_prefect::{
    plan, scoped_key, sync, BuildRun, FlowRun, PrefectClient, PruneScope, PullRecord, ServerDeployment, SyncOptions,
    VERIFY_TAG,
};
use flowgate_testkit::prefect::PrefectWorker;
use serde_json::{json, Map, Value};

/// Creates or updates deployment `{prefix}{flow}` at build `build_seed` and reads it back by name.
async fn deploy(client: &PrefectClient, env: &str, prefix: &str, flow: &str, seed: &str) -> ServerDeployment {
    deploy_input(client, input(env, prefix, flow, seed, "verify-pool")).await
}

async fn deploy_input(client: &PrefectClient, input: flowgate_prefect::DeploymentInput) -> ServerDeployment {
    let name = input.deployment_name.clone();
    let flow = input.flow_name.clone();
    let scope = PruneScope { project: "acme".parse().unwrap(), env: input.env.clone(), name_prefix: name.clone() };
    let desired = vec![flowgate_prefect::DesiredDeployment::new(input)];
    let planned = plan(&desired, &client.read_deployments(std::slice::from_ref(&name)).await.unwrap(), &scope);
    let options = SyncOptions { prune: false, create_work_pools: true };
    sync(client, &planned, &options, "process").await.expect("sync");
    client.find_deployment(&flow, &name).await.expect("find deployment").expect("deployment exists")
}

/// A raw request, bypassing the client under test; returns status and JSON body.
async fn raw(method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/{path}", server().api_url());
    let response = reqwest::Client::new().request(method, &url).json(&body).send().await.expect("raw request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("raw body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn set_state(run: &FlowRun, state_type: &str) {
    let body = json!({"state": {"type": state_type}, "force": true});
    let (status, answer) = raw(reqwest::Method::POST, &format!("flow_runs/{}/set_state", run.id), body).await;
    assert_eq!(status, 201, "set_state {state_type}: {answer}");
}

fn tag(build: &BuildId) -> String {
    format!("flowgate-build:{build}")
}

fn summary(runs: &[BuildRun]) -> BTreeSet<(String, bool, String)> {
    runs.iter().map(|r| (r.id.clone(), r.confirmed, r.state_type.clone())).collect()
}

#[tokio::test]
async fn a_repeated_verification_run_is_the_same_run_and_keys_do_not_cross_deployments() {
    let client = client();
    let qa = deploy(&client, "qa", "idem-qa-", "idem", "v1").await;
    let prod = deploy(&client, "prod", "idem-prod-", "idem", "v1").await;
    assert_eq!((qa.flow_name.as_str(), qa.flow_id.as_str()), ("idem", prod.flow_id.as_str()));
    assert_eq!(client.find_deployment("idem", "idem-qa-missing").await.unwrap(), None);
    assert_eq!(client.find_deployment("no-such-flow", "idem-qa-idem").await.unwrap(), None);

    let key = "rollout-1/wave-1";
    let params = Map::from_iter([("days".to_string(), json!(7))]);
    let first = client.create_verification_run(&qa.id, &params, key, &["wave-1".into()]).await.expect("first");
    // A caller that crashed and starts over (even with other arguments) gets the same run back.
    let other_params = Map::from_iter([("days".to_string(), json!(9))]);
    let again = client.create_verification_run(&qa.id, &other_params, key, &[]).await.expect("again");
    assert_eq!(again.id, first.id);
    assert_eq!(again.idempotency_key, Some(scoped_key(&qa.id, key)));
    let v1 = build("v1");
    for t in [VERIFY_TAG, "wave-1", "flowgate", &tag(&v1), "flowgate-env:qa"] {
        assert!(again.tags.iter().any(|have| have == t), "tag {t} missing: {:?}", again.tags);
    }
    let (_, stored) = raw(reqwest::Method::GET, &format!("flow_runs/{}", first.id), json!(null)).await;
    assert_eq!(stored["parameters"]["days"], json!(7), "the first call's parameters stay: {stored}");

    let filter = json!({"flow_runs": {"idempotency_key": {"any_": [scoped_key(&qa.id, key)]}}});
    let (_, same_key) = raw(reqwest::Method::POST, "flow_runs/filter", filter).await;
    let ids: Vec<&str> = same_key.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.id.as_str()]);
    let of_build = client.runs_of_build(&qa.id, &v1).await.expect("runs of build");
    assert_eq!(of_build.len(), 1, "{of_build:?}");
    assert_eq!((&of_build[0].id, &of_build[0].name), (&first.id, &first.name));
    assert_eq!(of_build[0].idempotency_key, Some(scoped_key(&qa.id, key)));
    assert_eq!((of_build[0].confirmed, of_build[0].state_type.as_str()), (false, "SCHEDULED"));

    // The same key on the prod deployment of the same flow is prod's own run.
    let in_prod = client.create_verification_run(&prod.id, &params, key, &[]).await.expect("prod run");
    assert_ne!(in_prod.id, first.id);
    assert_eq!(in_prod.deployment_id.as_deref(), Some(prod.id.as_str()));
    assert_eq!(client.create_verification_run(&prod.id, &params, key, &[]).await.unwrap().id, in_prod.id);

    // Why the key is scoped: Prefect 3.9.1 applies a raw key per flow, so prod
    // would get qa's run back (200 instead of 201 Created).
    let body = json!({"idempotency_key": "unscoped"});
    let (created, qa_run) =
        raw(reqwest::Method::POST, &format!("deployments/{}/create_flow_run", qa.id), body.clone()).await;
    let (repeated, prod_run) =
        raw(reqwest::Method::POST, &format!("deployments/{}/create_flow_run", prod.id), body).await;
    assert_eq!((created, repeated), (201, 200));
    assert_eq!(prod_run["id"], qa_run["id"]);
    assert_eq!(prod_run["deployment_id"], json!(qa.id));
}

#[tokio::test]
async fn runs_of_build_keeps_runs_that_ran_the_build_or_died_before_pulling() {
    let client = client();
    let deployment = deploy(&client, "qa", "rob-qa-", "rob", "a").await;
    let neighbour = deploy(&client, "qa", "rob-qa-", "robneighbour", "a").await;
    let (a, b) = (build("a"), build("b"));
    let pulled = |build: &BuildId| PullRecord { build: build.clone(), bundle: Digest::of(build.as_str().as_bytes()) };
    let mut n = 0;
    let mut create = |id: &str, tags: Vec<String>| {
        n += 1;
        let client = &client;
        let id = id.to_string();
        async move { client.create_verification_run(&id, &Map::new(), &format!("rob-{n}"), &tags).await.unwrap() }
    };

    let ran_a = create(&deployment.id, vec![]).await;
    client.record_pull(&ran_a.id, &pulled(&a)).await.unwrap();
    set_state(&ran_a, "COMPLETED").await;
    let ran_b = create(&deployment.id, vec![]).await;
    client.record_pull(&ran_b.id, &pulled(&b)).await.unwrap();
    set_state(&ran_b, "COMPLETED").await;
    let failed_on_b = create(&deployment.id, vec![]).await;
    client.record_pull(&failed_on_b.id, &pulled(&b)).await.unwrap();
    set_state(&failed_on_b, "FAILED").await;
    // Labels lost or edited: the pull log line alone confirms.
    let logged_a = create(&deployment.id, vec![]).await;
    let line = json!([{"name": "flowgate.pull", "level": 20, "message": pulled(&a).log_message(),
        "timestamp": "2026-01-01T00:00:00Z", "flow_run_id": logged_a.id}]);
    assert_eq!(raw(reqwest::Method::POST, "logs/", line).await.0, 201);
    set_state(&logged_a, "COMPLETED").await;
    let crashed = create(&deployment.id, vec![]).await;
    set_state(&crashed, "CRASHED").await;
    let completed_unrecorded = create(&deployment.id, vec![]).await;
    set_state(&completed_unrecorded, "COMPLETED").await;
    let scheduled = create(&deployment.id, vec![]).await;
    let next_door = create(&neighbour.id, vec![]).await;
    client.record_pull(&next_door.id, &pulled(&a)).await.unwrap();

    // The deployment moves to build b; runs created now carry b's tag and version.
    let at_b = deploy(&client, "qa", "rob-qa-", "rob", "b").await;
    assert_eq!((at_b.id.as_str(), at_b.version.as_deref()), (deployment.id.as_str(), Some(b.as_str())));
    let created_at_b = create(&deployment.id, vec![]).await;
    let tagged_a_crashed = create(&deployment.id, vec![tag(&a)]).await;
    set_state(&tagged_a_crashed, "CRASHED").await;
    let tagged_a_pulled_a = create(&deployment.id, vec![tag(&a)]).await;
    client.record_pull(&tagged_a_pulled_a.id, &pulled(&a)).await.unwrap();

    let expect = |items: &[(&FlowRun, bool, &str)]| -> BTreeSet<(String, bool, String)> {
        items.iter().map(|(r, c, s)| (r.id.clone(), *c, s.to_string())).collect()
    };
    let of_a = client.runs_of_build(&deployment.id, &a).await.expect("runs of a");
    let want_a = expect(&[
        (&ran_a, true, "COMPLETED"),
        (&logged_a, true, "COMPLETED"),
        (&crashed, false, "CRASHED"),
        (&scheduled, false, "SCHEDULED"),
        (&tagged_a_pulled_a, true, "SCHEDULED"),
    ]);
    assert_eq!(summary(&of_a), want_a, "{of_a:#?}");
    let of_b = client.runs_of_build(&deployment.id, &b).await.expect("runs of b");
    let want_b = expect(&[(&created_at_b, false, "SCHEDULED"), (&tagged_a_crashed, false, "CRASHED")]);
    assert_eq!(summary(&of_b), want_b, "{of_b:#?}");
    let next = client.runs_of_build(&neighbour.id, &a).await.expect("neighbour runs");
    assert_eq!(summary(&next), expect(&[(&next_door, true, "SCHEDULED")]));
}

#[tokio::test]
async fn runs_of_build_pages_through_every_run() {
    let client = client();
    let deployment = deploy(&client, "qa", "page-qa-", "paged", "p").await;
    let p = build("p");
    let mut created = BTreeSet::new();
    // The bulk endpoint reports rows SQLite refused ("database is locked")
    // one by one: post again for those until `count` exist.
    let add = |count: usize| {
        let path = format!("deployments/{}/create_flow_run/bulk", deployment.id);
        async move {
            let mut ids: Vec<String> = Vec::new();
            for attempt in 0..30 {
                if ids.len() == count {
                    return ids;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                let (status, answer) =
                    raw(reqwest::Method::POST, &path, json!(vec![json!({}); count - ids.len()])).await;
                assert_eq!(status, 200, "{answer}");
                let results = answer["results"].as_array().unwrap_or_else(|| panic!("no results: {answer}"));
                ids.extend(results.iter().filter_map(|r| r["flow_run_id"].as_str().map(String::from)));
            }
            panic!("only {} of {count} runs were created", ids.len());
        }
    };
    for _ in 0..4 {
        created.extend(add(100).await);
    }
    created.extend(add(50).await);
    // Three pages (200, 200, 50); the cap of MAX_BUILD_RUNS is unit-tested in
    // `verify.rs` (creating 1,000 runs on SQLite takes a minute).
    let runs = client.runs_of_build(&deployment.id, &p).await.expect("450 runs");
    assert_eq!(runs.len(), 450);
    assert_eq!(runs.iter().map(|r| r.id.clone()).collect::<BTreeSet<_>>(), created, "every run, once");
    assert!(runs.iter().all(|r| !r.confirmed && r.state_type == "SCHEDULED"));
}

const FLOW: &str = "from prefect import flow\n\n@flow(name=\"vrun\", log_prints=True)\ndef vrun(days: int = 1):\n    print(f\"verify-marker days={days}\")\n";

#[tokio::test]
async fn a_worker_runs_a_verification_run_through_the_pull_step() {
    let client = client();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("bundle");
    std::fs::create_dir_all(code.join("flows")).unwrap();
    std::fs::write(code.join("flows/vrun.py"), FLOW).unwrap();
    let mut input = input("qa", "vrun-qa-", "vrun", "w1", "vrun-pool");
    let (run_build, bundle) = (input.build.clone(), input.digest);
    // A stand-in for `flowgate pull`: records the pull on its run (the labels
    // `record_pull` writes) through the API the worker handed it, prints the code directory.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("fake-flowgate");
    let labels = json!({"flowgate.build": run_build.to_string(), "flowgate.bundle": bundle.to_hex()});
    let text = format!(
        "#!/bin/sh\n[ \"$1\" = pull ] && [ \"$2\" = {run_build} ] && [ \"$3\" = --store ] || exit 3\n\
         curl -sSf --retry 5 --retry-all-errors -X PATCH -H 'Content-Type: application/json' -d '{labels}' \
         \"$PREFECT_API_URL/flow_runs/$PREFECT__FLOW_RUN_ID/labels\" >&2 || exit 4\necho {}\n",
        code.display()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    input.pull_command = Some(format!("fake-flowgate pull {run_build} --store file:///store"));
    let deployment = deploy_input(&client, input).await;

    let worker = PrefectWorker::start(&server().api_url(), "vrun-pool", Some(&bin));
    let params = Map::from_iter([("days".to_string(), json!(5))]);
    let run = client.create_verification_run(&deployment.id, &params, "vrun-1", &[]).await.expect("create run");
    let deadline = Instant::now() + Duration::from_secs(150);
    let finished = loop {
        let current = client.read_flow_run(&run.id).await.expect("read run");
        if ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].contains(&current.state_type()) {
            break current;
        }
        assert!(Instant::now() < deadline, "run stuck in {:?}\n--- worker\n{}", current.state, worker.log());
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(finished.state_type(), "COMPLETED", "{:?}\n--- worker\n{}", finished.state, worker.log());
    let record = finished.labels.as_ref().and_then(PullRecord::from_labels);
    assert_eq!(record, Some(PullRecord { build: run_build.clone(), bundle }));

    let of_build = client.runs_of_build(&deployment.id, &run_build).await.expect("runs of build");
    assert_eq!(summary(&of_build), BTreeSet::from([(run.id.clone(), true, "COMPLETED".to_string())]));
    // Starting it again after the fact is the same, finished run: nothing new is scheduled.
    let again = client.create_verification_run(&deployment.id, &params, "vrun-1", &[]).await.expect("again");
    assert_eq!((again.id.as_str(), again.state_type()), (run.id.as_str(), "COMPLETED"));
    assert_eq!(client.runs_of_build(&deployment.id, &run_build).await.unwrap().len(), 1);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = client.read_logs(&run.id).await.expect("logs");
        if logs.iter().any(|l| l.message.contains("verify-marker days=5")) {
            break;
        }
        assert!(Instant::now() < deadline, "no marker in the run's logs: {logs:#?}\n--- worker\n{}", worker.log());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
