//! A real run: a process worker executes a synced deployment whose pull step
//! runs a shell command and enters the directory it prints (the shape of
//! `flowgate pull`), proving those pull steps work on Prefect 3.9.1.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use flowgate_core::{Digest, EnvName};
use flowgate_prefect::{
    plan, sync, Action, DeploymentInput, DesiredDeployment, PrefectClient, PruneScope, SyncOptions,
};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use serde_json::{json, Map};

const FLOW: &str = "from prefect import flow\n\n@flow(name=\"hello\", log_prints=True)\ndef hello(days: int = 1):\n    print(f\"marker-v1 days={days}\")\n";

#[tokio::test]
async fn a_worker_runs_the_synced_deployment_through_its_pull_steps() {
    let server = PrefectServer::start();
    let client = PrefectClient::new(&server.api_url(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("bundle");
    std::fs::create_dir_all(code.join("flows")).unwrap();
    std::fs::write(code.join("flows/hello.py"), FLOW).unwrap();
    // A stand-in for `flowgate pull`: checks its arguments, prints the directory.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("fake-flowgate");
    let text = format!("#!/bin/sh\n[ \"$1\" = pull ] && [ \"$3\" = --store ] || exit 3\necho {}\n", code.display());
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let digest = Digest::of(b"bundle");
    let build = digest.to_hex()[..20].parse().unwrap();
    let input = DeploymentInput {
        project: "acme".parse().unwrap(),
        env: "qa".parse::<EnvName>().unwrap(),
        flow_name: "hello".into(),
        deployment_name: "qa-hello".into(),
        pull_command: Some(format!("fake-flowgate pull {build} --store file:///store --digest {}", digest.to_hex())),
        build,
        digest,
        store_url: "file:///store".into(),
        entrypoint: "flows/hello.py:hello".into(),
        work_pool: "run-pool".into(),
        pool_type: "process".into(),
        work_queue: None,
        parameters: Map::from_iter([("days".to_string(), json!(3))]),
        parameter_schema: json!({"title": "Parameters", "type": "object",
            "properties": {"days": {"title": "days", "default": 1, "position": 0, "type": "integer"}}}),
        schedules: vec![],
        job_variables: Map::new(),
        image: None,
        tags: vec![],
        description: None,
        extra_pull_steps: vec![],
        paused: None,
        concurrency_limit: None,
        enforce_parameter_schema: None,
    };
    let desired = vec![DesiredDeployment::new(input)];
    let scope = PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "qa-".into() };
    let planned = plan(&desired, &client.read_deployments(&["qa-hello".into()]).await.unwrap(), &scope);
    assert_eq!(planned.deployments[0].action, Action::Create);
    let options = SyncOptions { prune: false, create_work_pools: true };
    sync(&client, &planned, &options, "process").await.expect("sync");
    let deployment = client.read_deployments(&["qa-hello".into()]).await.unwrap().remove(0);

    let worker = PrefectWorker::start(&server.api_url(), "run-pool", Some(&bin));
    let run = client.create_flow_run(&deployment.id).await.expect("create run");
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
    // The run's process ships its logs in batches: they may land after the state.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = client.read_logs(&run.id).await.expect("logs");
        let text: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
        if text.iter().any(|m| m.contains("marker-v1 days=3")) {
            assert!(text.iter().any(|m| m.contains("run_shell_script")), "{text:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "no marker in the run's logs: {text:#?}\n--- worker\n{}", worker.log());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(finished.deployment_version.as_deref(), Some(deployment.version.as_deref().unwrap()));
}
