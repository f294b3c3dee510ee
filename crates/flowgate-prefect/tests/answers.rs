//! A 409 Conflict from a real Prefect 3.9.1 server, reached through `sync`,
//! becomes a message that names the flow, env, deployment, field and reason.
//! (404 work pool and 422 field answers are covered in `sync.rs`.)

mod common;

use common::{client, desired, input};
use flowgate_prefect::{ensure_work_pool, plan, sync, PrefectError, PruneScope, SyncOptions};
use serde_json::json;

#[tokio::test]
async fn parameters_the_schema_refuses_on_update_are_a_named_409() {
    let client = client();
    let pool = "answers-pool";
    ensure_work_pool(&client, pool, "process", true).await.expect("pool");
    let scope = PruneScope {
        project: "acme".parse().unwrap(),
        env: "staging".parse().unwrap(),
        name_prefix: "ans-staging-".into(),
    };
    let names = vec!["ans-staging-epsilon".to_string()];

    let good = vec![desired(input("staging", "ans-staging-", "epsilon", "v1", pool))];
    let planned = plan(&good, &client.read_deployments(&names).await.expect("read"), &scope);
    sync(&client, &planned, &SyncOptions::default(), "process").await.expect("first sync");
    let before = client.read_deployments(&names).await.expect("read v1");

    // The deployment's parameter schema declares `days` an integer: on a PATCH
    // of parameters, Prefect validates them against it and answers 409.
    let mut wrong = input("staging", "ans-staging-", "epsilon", "v2", pool);
    wrong.parameters.insert("days".to_string(), json!("many"));
    let want = vec![desired(wrong)];
    let planned = plan(&want, &before, &scope);
    let err = sync(&client, &planned, &SyncOptions::default(), "process").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PrefectError::Rejected { status: 409, .. }), "{err:?}");
    for part in [
        "PATCH",
        "flow `epsilon`",
        "env `staging`",
        "deployment `ans-staging-epsilon`",
        "HTTP 409",
        "field 'days'",
        "'many' is not of type 'integer'",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    let after = client.read_deployments(&names).await.expect("read after");
    assert_eq!(after, before, "a refused PATCH changes nothing on the server");
}
