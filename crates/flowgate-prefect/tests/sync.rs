//! Plan and sync against a real Prefect 3.9.1 server: idempotence, partial
//! updates, paused state and scheduled runs kept, foreign deployments untouched.

mod common;

use common::{client, desired, input, with_schedule};
use flowgate_prefect::{
    ensure_work_pool, plan, sync, Action, Owner, PrefectClient, PrefectError, PruneScope, ServerDeployment, Subject,
    SyncOptions,
};
use serde_json::json;

async fn read(client: &PrefectClient, names: &[&str]) -> Vec<ServerDeployment> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    client.read_deployments(&names).await.expect("read deployments")
}

async fn scheduled_ids(client: &PrefectClient, deployment_id: &str) -> Vec<String> {
    let runs = client.read_flow_runs(deployment_id, &["SCHEDULED"]).await.expect("read runs");
    runs.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn sync_is_idempotent_patches_only_changes_and_leaves_the_rest_alone() {
    let client = client();
    let pool = "sync-pool";
    let scope =
        PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "sync-qa-".into() };
    let options = SyncOptions { prune: false, create_work_pools: true };
    let (a, b) = ("sync-qa-alpha", "sync-qa-beta");

    // First sync creates both (and the missing process pool).
    let v1 = vec![
        desired(with_schedule(input("qa", "sync-qa-", "alpha", "v1", pool))),
        desired(input("qa", "sync-qa-", "beta", "v1", pool)),
    ];
    let first = plan(&v1, &read(&client, &[a, b]).await, &scope);
    assert!(first.deployments.iter().all(|d| d.action == Action::Create), "{first:#?}");
    let report = sync(&client, &first, &options, "process").await.expect("first sync");
    assert_eq!(report.created, vec![a.to_string(), b.to_string()]);
    assert_eq!(report.created_work_pools, vec![pool.to_string()]);

    // Re-sync: everything Unchanged, not one write sent.
    let again = plan(&v1, &read(&client, &[a, b]).await, &scope);
    assert!(again.is_noop(), "{again:#?}");
    let before = client.write_count();
    let report = sync(&client, &again, &options, "process").await.expect("second sync");
    assert_eq!(client.write_count(), before, "an unchanged sync must send no write");
    assert_eq!(report.unchanged, vec![a.to_string(), b.to_string()]);

    // Hand edits in the UI: pause beta; alpha has scheduled runs.
    let actual = read(&client, &[a, b]).await;
    let id_of = |name: &str| actual.iter().find(|d| d.name == name).expect("deployment").id.clone();
    let (alpha_id, beta_id) = (id_of(a), id_of(b));
    client.update_deployment(&beta_id, &json!({"paused": true}), &Subject::default()).await.expect("pause");
    client.schedule_runs(&alpha_id).await.expect("schedule runs");
    let alpha_runs = scheduled_ids(&client, &alpha_id).await;
    assert!(!alpha_runs.is_empty(), "alpha should have scheduled runs");

    // New build of beta only: a PATCH of version, tags and pull steps alone.
    let v2 = vec![v1[0].clone(), desired(input("qa", "sync-qa-", "beta", "v2", pool))];
    let update = plan(&v2, &read(&client, &[a, b]).await, &scope);
    assert_eq!(update.deployments[0].action, Action::Unchanged { id: alpha_id.clone() });
    let Action::Update { id, changes } = &update.deployments[1].action else { panic!("{update:#?}") };
    assert_eq!(id, &beta_id);
    let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
    assert_eq!(fields, ["version", "tags", "pull_steps"]);
    let before = client.write_count();
    sync(&client, &update, &options, "process").await.expect("update sync");
    assert_eq!(client.write_count(), before + 1, "exactly one PATCH");

    let beta = client.read_deployment(&beta_id).await.expect("read beta");
    assert_eq!(beta.version.as_deref(), Some(v2[1].version.as_str()));
    assert!(beta.paused, "a deployment paused by hand stays paused");
    assert_eq!(beta.pull_steps.as_ref(), Some(&v2[1].pull_steps));
    let after = scheduled_ids(&client, &alpha_id).await;
    for run in &alpha_runs {
        assert!(after.contains(run), "scheduled run {run} of unchanged alpha was deleted");
    }
    assert!(plan(&v2, &read(&client, &[a, b]).await, &scope).is_noop());

    // Pruning: refuses to remove everything; removes what left the config.
    let everything = plan(&[], &read(&client, &[]).await, &scope);
    assert_eq!(everything.prune.len(), 2, "{everything:#?}");
    let prune = SyncOptions { prune: true, create_work_pools: false };
    let refused = sync(&client, &everything, &prune, "process").await.unwrap_err();
    assert!(matches!(refused, PrefectError::PruneEverything { count: 2, .. }), "{refused}");
    let keep_alpha = plan(&v2[..1], &read(&client, &[a]).await, &scope);
    let report = sync(&client, &keep_alpha, &prune, "process").await.expect("prune");
    assert_eq!(report.pruned, vec![b.to_string()]);
    assert!(read(&client, &[b]).await.iter().all(|d| d.name != b), "beta was pruned");
    ensure_work_pool(&client, pool, "process", false).await.expect("pool stays");
}

#[tokio::test]
async fn a_colliding_deployment_without_the_flowgate_tag_is_refused_and_never_modified() {
    let client = client();
    let pool = "foreign-pool";
    ensure_work_pool(&client, pool, "process", true).await.expect("pool");
    let flow = client.get_or_create_flow("gamma").await.expect("flow");
    let body = json!({"name": "foreign-qa-gamma", "flow_id": flow.id, "work_pool_name": pool, "version": "hand-made", "tags": ["team"]});
    let theirs = client.create_deployment(&body, &Subject::default()).await.expect("hand-made deployment");

    let scope =
        PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "foreign-qa-".into() };
    let want = vec![desired(input("qa", "foreign-qa-", "gamma", "v1", pool))];
    let planned = plan(&want, &read(&client, &["foreign-qa-gamma"]).await, &scope);
    assert_eq!(planned.deployments[0].action, Action::Foreign { id: theirs.id.clone(), owner: Owner::Unmanaged });
    assert!(planned.prune.is_empty(), "a foreign deployment is never a prune candidate");

    let before = client.write_count();
    let options = SyncOptions { prune: true, create_work_pools: false };
    let err = sync(&client, &planned, &options, "process").await.unwrap_err();
    assert!(matches!(err, PrefectError::NotOwned { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("`gamma/foreign-qa-gamma`") && message.contains("not managed by flowgate"), "{message}");
    assert_eq!(client.write_count(), before, "nothing sent when a deployment is not the project's");
    let after = client.read_deployment(&theirs.id).await.expect("read");
    assert_eq!(after, ServerDeployment { flow_name: String::new(), ..theirs });
}

#[tokio::test]
async fn missing_work_pool_and_rejected_fields_are_named() {
    let client = client();
    let err = client.read_work_pool("no-such-pool").await.unwrap_err();
    assert!(matches!(&err, PrefectError::WorkPoolMissing { pool } if pool == "no-such-pool"), "{err:?}");
    assert!(err.to_string().contains("`no-such-pool`"), "{err}");

    let scope =
        PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "err-qa-".into() };
    let want = vec![desired(input("qa", "err-qa-", "delta", "v1", "no-such-pool"))];
    let planned = plan(&want, &read(&client, &["err-qa-delta"]).await, &scope);
    let err = sync(&client, &planned, &SyncOptions::default(), "process").await.unwrap_err();
    assert!(matches!(&err, PrefectError::WorkPoolMissing { pool } if pool == "no-such-pool"), "{err:?}");

    let flow = client.get_or_create_flow("delta").await.expect("flow");
    let mut body = want[0].create_body(&flow.id);
    body["work_pool_name"] = json!("default-agent-pool-x");
    body["schedule_bogus"] = json!(1);
    let subject = Subject::deployment("delta", "qa", "err-qa-delta");
    let err = client.create_deployment(&body, &subject).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PrefectError::Rejected { status: 422, .. }), "{err:?}");
    for part in
        ["`schedule_bogus`", "flow `delta`", "env `qa`", "deployment `err-qa-delta`", "Extra inputs are not permitted"]
    {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
}

/// A plan's writes go side by side, within the client's adaptive limit: 40
/// deployments of 5 flows through a proxy that answers a share of requests
/// 503 in the server's place (4% of requests, each followed by a burst of
/// three more: about one in six). Every write lands once, the report keeps the
/// plan's order, more than one write was in flight at a time, and busy
/// answers cut the limit.
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_of_many_writes_goes_side_by_side_and_backs_off_when_the_server_is_busy() {
    use flowgate_testkit::faults::{Fault, FaultProxy};

    let upstream = common::server().api_url().trim_start_matches("http://").split('/').next().unwrap().to_string();
    let proxy = FaultProxy::start(&upstream, 4, 0x51de).only(&[Fault::Unavailable]);
    let client = PrefectClient::new(&format!("{}/api", proxy.url()), None).expect("client");
    let scope =
        PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "wide-qa-".into() };
    let options = SyncOptions { prune: false, create_work_pools: true };
    // 40 deployments of 5 flows: `wide-flow-K` has the deployments `<prefix>dNN` with NN % 5 == K.
    let deployment = |prefix: &str, i: usize, seed: &str| {
        let mut input = input("qa", prefix, &format!("wide-flow-{}", i % 5), seed, "wide-pool");
        input.deployment_name = format!("{prefix}d{i:02}");
        desired(input)
    };
    let wanted = |seed: &str| -> Vec<_> { (0..40).map(|i| deployment("wide-qa-", i, seed)).collect() };
    let deployment_names: Vec<String> = (0..40).map(|i| format!("wide-qa-d{i:02}")).collect();

    let first = plan(&wanted("v1"), &client.read_deployments(&deployment_names).await.unwrap(), &scope);
    let report = sync(&client, &first, &options, "process").await.expect("create 40");
    assert_eq!(report.created.len(), 40);
    assert_eq!(report.created, first.deployments.iter().map(|d| d.desired.name.clone()).collect::<Vec<_>>());
    assert_eq!(client.write_count(), 1 + 5 + 40, "the pool, each flow once, each deployment once (retries aside)");

    let before = client.write_count();
    let second = plan(&wanted("v2"), &client.read_deployments(&deployment_names).await.unwrap(), &scope);
    let report = sync(&client, &second, &options, "process").await.expect("update 40");
    assert_eq!(report.updated.len(), 40, "{report:#?}");
    assert_eq!(client.write_count() - before, 40, "one PATCH per deployment, retries aside");

    let on_server = common::client().read_deployments(&deployment_names).await.unwrap();
    assert_eq!(on_server.len(), 40);
    assert!(on_server.iter().all(|d| d.version.as_deref() == Some(common::build("v2").as_str())), "{on_server:#?}");

    // Another prefix's 40 deployments of the same flows: the flows exist, so no flow is written.
    let other_scope =
        PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "wide-qa2-".into() };
    let others: Vec<_> = (0..40).map(|i| deployment("wide-qa2-", i, "v1")).collect();
    let other_names: Vec<String> = others.iter().map(|d| d.name.clone()).collect();
    let third = plan(&others, &client.read_deployments(&other_names).await.unwrap(), &other_scope);
    let before = client.write_count();
    let report = sync(&client, &third, &options, "process").await.expect("create 40 more");
    assert_eq!(report.created.len(), 40, "{report:#?}");
    assert_eq!(client.write_count() - before, 40, "deployments only: the flows were read, not created");

    let stats = client.write_stats();
    let injected = proxy.stats().unavailable;
    assert!(injected > 0, "the proxy answered no 503: {:?}", proxy.stats());
    assert!(stats.peak_in_flight > 1, "the writes went one at a time: {stats:?}");
    assert!(stats.peak_in_flight <= flowgate_prefect::limit::MAX, "{stats:?}");
    // The server's own 503s (SQLite busy) cut it too, so only "some".
    assert!(stats.backoffs > 0, "{stats:?}, {injected} injected 503s");
}
