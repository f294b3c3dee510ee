//! Faults between flowgate and its servers: a seeded proxy (flowgate_testkit::faults)
//! delays, resets, truncates or answers 503 for 20% of requests to a real Prefect
//! 3.9.1 server and to a real S3 endpoint (`moto_server`). `release --all` of 50
//! flows either converges through retries or stops with an error that says how to
//! converge, and then `sync` does; after every command each deployment is wholly
//! at one build (version, pull step and tag agree), never half-updated. Through
//! the faulty S3 path every build completes through the store's retries,
//! every pull completes or fails cleanly, and every build then pulls and
//! verifies. Each trial asserts that the proxy injected every kind of fault.
//! docs/RELIABILITY.md lists what each proves.

mod common;

use common::{bin, run};
use flowgate_prefect::{PrefectClient, ServerDeployment};
use flowgate_testkit::faults::FaultProxy;
use flowgate_testkit::moto::Moto;
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::GitProject;

const FLOWS: usize = 50;
const RATE: u64 = 20;
const FLOW: &str = "from prefect import flow\n\n@flow(name=\"hello\")\ndef hello(days: int = 1):\n    print(days)\n";

fn project(api_url: &str, extra_project: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    let mut config = format!("[project]\nname = \"faults\"\nwork_pool = \"faults-pool\"\n{extra_project}\n");
    for i in 0..FLOWS {
        config.push_str(&format!("[flows.f{i:02}]\nentrypoint = \"flows/hello.py:hello\"\n\n"));
    }
    config.push_str(&format!("[envs.qa]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"fz-\"\n"));
    p.write("flowgate.toml", &config);
    p.write("flows/hello.py", FLOW);
    p.write("lib/version.py", "V = 1\n");
    p.commit("v1");
    p
}

fn upstream_of(api_url: &str) -> String {
    api_url.trim_start_matches("http://").split('/').next().expect("host:port").to_string()
}

/// Every deployment of the env is wholly at one build: its version, the build id
/// in its pull step and its build tag agree. Returns the builds, by deployment.
async fn assert_whole(client: &PrefectClient) -> Vec<(String, String)> {
    let names: Vec<String> = (0..FLOWS).map(|i| format!("fz-f{i:02}")).collect();
    let found: Vec<ServerDeployment> = client.read_deployments(&names).await.expect("read deployments");
    let mut out = Vec::new();
    for d in found.iter().filter(|d| names.contains(&d.name)) {
        let version = d.version.clone().expect("a managed deployment has a version");
        let steps = serde_json::to_string(&d.pull_steps).unwrap();
        assert!(
            steps.contains(&format!("flowgate pull {version}")),
            "{}: pull step {steps} vs version {version}",
            d.name
        );
        assert!(d.tags.contains(&format!("flowgate-build:{version}")), "{}: tags {:?} vs {version}", d.name, d.tags);
        out.push((d.name.clone(), version));
    }
    out
}

/// How many `sync` attempts a round may take. An answer cut in half (5% of
/// requests) is not retried and ends the attempt (503 bursts and resets are
/// retried), and the first round's creates need over a hundred requests: it
/// took ten attempts, nine failed, in CI on 2026-12-03 and twice in reruns.
/// A sync that kept nothing from a failed attempt would never converge.
const SYNC_ATTEMPTS: u32 = 30;

/// Syncs until a sync exits 0; after every attempt, failed or not, every
/// deployment is whole.
async fn sync_until_it_converges(p: &GitProject, direct: &PrefectClient) {
    for attempt in 1..=SYNC_ATTEMPTS {
        let synced = run(p, &["sync", "--env", "qa", "--create-work-pools"]);
        assert_whole(direct).await;
        if synced.code == 0 {
            return;
        }
        assert_eq!(synced.code, 1, "a faulty server is a failure, not usage: {}", synced.stderr);
        eprintln!("sync attempt {attempt} failed: {}", synced.stderr.lines().next().unwrap_or_default());
    }
    panic!("sync did not converge in {SYNC_ATTEMPTS} attempts at a {RATE}% fault rate");
}

#[tokio::test(flavor = "multi_thread")]
async fn release_of_50_flows_through_20_percent_faults_converges_and_never_half_updates() {
    let server = PrefectServer::start();
    let direct = PrefectClient::new(&server.api_url(), None).expect("client");
    let proxy = FaultProxy::start(&upstream_of(&server.api_url()), RATE, 0x5eed);
    let p = project(&format!("{}/api", proxy.url()), "");
    let v1 = run(&p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string();

    for (round, build) in [(1, v1.clone()), (2, String::new())] {
        let build = if round == 1 {
            build
        } else {
            p.write("lib/version.py", "V = 2\n");
            p.commit("v2");
            run(&p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string()
        };
        // `--force`: v2 changes a file no flow imports, and every flow must move.
        let released =
            run(&p, &["release", "--all", "--force", "--env", "qa", "--build", &build, "--create-work-pools"]);
        match released.code {
            0 => {}
            1 => assert!(
                released.stderr.contains("The move is recorded in the ledger")
                    && released.stderr.contains("flowgate sync --env qa"),
                "a failed sync says how to converge: {}",
                released.stderr
            ),
            other => panic!("exit {other}: {}", released.stderr),
        }
        // Whatever got through is whole; nothing is half-updated.
        assert_whole(&direct).await;
        sync_until_it_converges(&p, &direct).await;
        let whole = assert_whole(&direct).await;
        assert_eq!(whole.len(), FLOWS, "every flow has its deployment");
        assert!(whole.iter().all(|(_, v)| *v == build), "round {round}: every deployment at {build}: {whole:?}");
    }
    proxy.set_enabled(false);
    let plan = run(&p, &["plan", "--env", "qa", "--json"]).success().json();
    let deployments = plan["deployments"].as_array().expect("deployments");
    assert_eq!(deployments.len(), FLOWS, "{plan}");
    assert!(deployments.iter().all(|d| d["action"] == "unchanged"), "{plan}");
    let stats = proxy.stats();
    eprintln!("fault proxy toward Prefect: {stats:?}");
    // Every kind of fault the trial claims to survive was injected.
    assert!(
        stats.latency > 0 && stats.resets > 0 && stats.truncated > 0 && stats.unavailable > 0,
        "every kind of fault was injected: {stats:?}"
    );
}

#[test]
fn builds_through_a_faulty_s3_endpoint_complete_and_pulls_complete_or_fail_cleanly() {
    let moto = Moto::start();
    moto.create_bucket("faults");
    // A build stores its frames several at a time, so which request meets which
    // fault varies from run to run; over the builds' and pulls' requests every
    // kind occurs (the stats are printed and asserted at the end).
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", moto.port()), RATE, 10);
    let p = project("http://127.0.0.1:1/api", "artifacts = \"s3://faults/store\"");
    let env = [
        ("AWS_ENDPOINT_URL", proxy.url()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut builds = Vec::new();
    for round in 0..5 {
        p.write("lib/version.py", &format!("V = {round}\n"));
        p.commit(&format!("round {round}"));
        let built = p.run_with_env(bin(), &["build", "--json"], &env);
        assert_eq!(built.code, 0, "round {round}: the store's retries carry every build through: {}", built.stderr);
        builds.push(built.json()["build"]["id"].as_str().unwrap().to_string());
    }
    // The ledger records exactly those builds, once each.
    let listed = run(&p, &["builds", "--json"]).success().json();
    let mut recorded: Vec<String> = listed
        .as_array()
        .expect("a list of builds")
        .iter()
        .map(|b| b["id"].as_str().expect("build id").to_string())
        .collect();
    recorded.sort();
    let mut succeeded = builds.clone();
    succeeded.sort();
    assert_eq!(recorded, succeeded, "the ledger records exactly the builds made");
    // Every recorded build's bundle pulls and verifies, through the faults (with
    // retries) and, whatever happened, without them.
    for build in &builds {
        let pulled = p.run_with_env(bin(), &["pull", build], &env);
        assert!(pulled.code == 0 || pulled.code == 1, "pull exit {}: {}", pulled.code, pulled.stderr);
    }
    proxy.set_enabled(false);
    for build in &builds {
        let pulled = p.run_with_env(bin(), &["pull", build], &env).success();
        assert!(std::path::Path::new(pulled.stdout.trim()).join("flows/hello.py").is_file(), "{}", pulled.stdout);
    }
    let stats = proxy.stats();
    eprintln!("fault proxy toward S3: {stats:?}");
    assert!(
        stats.latency > 0 && stats.resets > 0 && stats.truncated > 0 && stats.unavailable > 0,
        "every kind of fault was injected (if flowgate's requests changed, pick a seed that covers all four): {stats:?}"
    );
}
