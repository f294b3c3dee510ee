//! Shared by this crate's server tests: one Prefect server per test binary and
//! a builder for desired deployments.
#![allow(dead_code)]

use std::sync::OnceLock;

use flowgate_core::{BuildId, Digest, EnvName};
use flowgate_prefect::{DeploymentInput, DesiredDeployment, PrefectClient, Schedule};
use flowgate_testkit::prefect::PrefectServer;
use serde_json::{json, Map};

/// One server for every test of this binary (start-up takes 5–14 s).
pub fn server() -> &'static PrefectServer {
    static SERVER: OnceLock<PrefectServer> = OnceLock::new();
    SERVER.get_or_init(PrefectServer::start)
}

pub fn client() -> PrefectClient {
    PrefectClient::new(&server().api_url(), None).expect("client")
}

/// A 20-hex-digit build id derived from `seed`.
pub fn build(seed: &str) -> BuildId {
    Digest::of(seed.as_bytes()).to_hex()[..20].parse().expect("build id")
}

pub fn input(env: &str, prefix: &str, flow: &str, build_seed: &str, pool: &str) -> DeploymentInput {
    DeploymentInput {
        project: "acme".parse().unwrap(),
        env: env.parse::<EnvName>().expect("env"),
        flow_name: flow.to_string(),
        deployment_name: format!("{prefix}{flow}"),
        build: build(build_seed),
        digest: Digest::of(build_seed.as_bytes()),
        store_url: "file:///srv/flowgate/artifacts".to_string(),
        entrypoint: format!("flows/{flow}.py:{flow}"),
        work_pool: pool.to_string(),
        pool_type: "process".to_string(),
        work_queue: None,
        parameters: Map::from_iter([("days".to_string(), json!(1))]),
        parameter_schema: json!({
            "title": "Parameters", "type": "object",
            "properties": {"days": {"title": "days", "default": 1, "position": 0, "type": "integer"}},
        }),
        schedules: vec![],
        job_variables: Map::new(),
        image: Some("ghcr.io/acme/flows:abc".to_string()),
        tags: vec!["etl".to_string()],
        description: Some(format!("{flow} released by flowgate")),
        extra_pull_steps: vec![],
        paused: None,
        concurrency_limit: None,
        enforce_parameter_schema: None,
        pull_command: None,
    }
}

pub fn desired(input: DeploymentInput) -> DesiredDeployment {
    DesiredDeployment::new(input)
}

pub fn with_schedule(mut input: DeploymentInput) -> DeploymentInput {
    input.schedules = vec![Schedule::cron("0 3 * * *", Some("UTC"))];
    input
}
