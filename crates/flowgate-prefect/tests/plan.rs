//! The pure parts, without a server: the deployment spec flowgate builds and
//! the field-by-field plan against what a server would answer.

use flowgate_core::{BuildId, Digest};
use flowgate_core::{CollisionStrategy, ConcurrencyLimit};
use flowgate_prefect::{
    plan, update_body, Action, ConcurrencyOptions, DeploymentInput, DesiredDeployment, GlobalConcurrencyLimit, Owner,
    PruneScope, Schedule, ServerDeployment,
};
use serde_json::{json, Map, Value};

fn build(seed: &str) -> BuildId {
    Digest::of(seed.as_bytes()).to_hex()[..20].parse().unwrap()
}

fn input(flow: &str, seed: &str) -> DeploymentInput {
    DeploymentInput {
        project: "acme".parse().unwrap(),
        env: "qa".parse().unwrap(),
        flow_name: flow.into(),
        deployment_name: format!("qa-{flow}"),
        build: build(seed),
        digest: Digest::of(seed.as_bytes()),
        store_url: "s3://bucket/artifacts".into(),
        entrypoint: format!("flows/{flow}.py:{flow}"),
        work_pool: "qa-pool".into(),
        pool_type: "process".into(),
        work_queue: None,
        parameters: Map::from_iter([("days".to_string(), json!(1))]),
        parameter_schema: json!({"type": "object", "properties": {}}),
        schedules: vec![Schedule::cron("0 3 * * *", None)],
        job_variables: Map::new(),
        image: Some("ghcr.io/acme/flows@sha256:abc".into()),
        tags: vec!["etl".into(), "etl".into()],
        description: None,
        extra_pull_steps: vec![],
        paused: None,
        concurrency_limit: None,
        enforce_parameter_schema: None,
        pull_command: None,
    }
}

/// What the server answers after creating `want` (plus its own additions).
fn as_server(want: &DesiredDeployment, id: &str) -> ServerDeployment {
    let schedules = want
        .schedules
        .iter()
        .map(|s| {
            let mut body = s.create_body();
            body["id"] = json!("sched-id");
            body["active"] = json!(true);
            body["schedule"]["timezone"] = Value::Null;
            body
        })
        .collect();
    ServerDeployment {
        id: id.into(),
        name: want.name.clone(),
        flow_id: "flow-id".into(),
        flow_name: want.flow_name.clone(),
        version: Some(want.version.clone()),
        description: want.description.clone(),
        paused: false,
        schedules,
        job_variables: want.job_variables.clone(),
        parameters: want.parameters.clone(),
        parameter_openapi_schema: Some(want.parameter_schema.clone()),
        tags: want.tags.iter().rev().cloned().collect(),
        work_queue_name: Some("default".into()),
        work_pool_name: Some(want.work_pool.clone()),
        pull_steps: Some(want.pull_steps.clone()),
        entrypoint: Some(want.entrypoint.clone()),
        // A 3.9.1 server answers the limit as a global concurrency limit, the
        // deprecated field always null, and the options with every key.
        concurrency_limit: None,
        global_concurrency_limit: want.concurrency_limit.map(|c| GlobalConcurrencyLimit { limit: c.limit.into() }),
        concurrency_options: want.create_body("flow-id").get("concurrency_options").map(|o| ConcurrencyOptions {
            collision_strategy: o["collision_strategy"].as_str().unwrap().into(),
            grace_period_seconds: o.get("grace_period_seconds").and_then(Value::as_u64),
        }),
        enforce_parameter_schema: Some(want.enforce_parameter_schema.unwrap_or(true)),
    }
}

fn scope() -> PruneScope {
    PruneScope { project: "acme".parse().unwrap(), env: "qa".parse().unwrap(), name_prefix: "qa-".into() }
}

#[test]
fn spec_carries_flowgate_tags_pull_steps_and_user_steps_after() {
    let mut i = input("etl", "v1");
    i.extra_pull_steps =
        vec![json!({"prefect.deployments.steps.pip_install_requirements": {"directory": "{{ pull-code.stdout }}"}})];
    let want = DesiredDeployment::new(i);
    let id = build("v1");
    assert_eq!(want.version, id.to_string());
    assert_eq!(
        want.tags,
        ["etl", "flowgate", &format!("flowgate-build:{id}"), "flowgate-env:qa", "flowgate-project:acme"]
    );
    let digest = Digest::of(b"v1").to_hex();
    assert_eq!(
        want.pull_steps,
        [
            json!({"prefect.deployments.steps.run_shell_script": {"id": "pull-code",
                "script": format!("flowgate pull {id} --store s3://bucket/artifacts --digest {digest}"), "stream_output": false}}),
            json!({"prefect.deployments.steps.set_working_directory": {"directory": "{{ pull-code.stdout }}"}}),
            json!({"prefect.deployments.steps.pip_install_requirements": {"directory": "{{ pull-code.stdout }}"}}),
        ]
    );
    assert!(!want.job_variables.contains_key("image"), "a process pool runs no image");
    let body = want.create_body("fid");
    assert!(body.get("paused").is_none() && body.get("work_queue_name").is_none(), "{body}");
}

#[test]
fn image_is_pinned_on_container_pools_only() {
    for (pool_type, pinned) in
        [("docker", true), ("kubernetes", true), ("ecs:push", true), ("cloud-run-v2", true), ("process", false)]
    {
        let mut i = input("etl", "v1");
        i.pool_type = pool_type.into();
        let want = DesiredDeployment::new(i);
        assert_eq!(want.job_variables.get("image").is_some(), pinned, "{pool_type}");
    }
    let mut i = input("etl", "v1");
    i.store_url = "file:///srv/my store".into();
    let script = DesiredDeployment::new(i).pull_steps[0].to_string();
    assert!(script.contains("--store 'file:///srv/my store'"), "{script}");
}

#[test]
fn plan_creates_leaves_and_updates_field_by_field() {
    let etl = DesiredDeployment::new(input("etl", "v1"));
    let report = DesiredDeployment::new(input("report", "v1"));
    let actual = vec![as_server(&etl, "e1")];
    let p = plan(&[etl.clone(), report.clone()], &actual, &scope());
    assert_eq!(p.deployments[0].action, Action::Unchanged { id: "e1".into() });
    assert_eq!(p.deployments[1].action, Action::Create);

    let v2 = DesiredDeployment::new(input("etl", "v2"));
    let p = plan(std::slice::from_ref(&v2), &actual, &scope());
    let Action::Update { id, changes } = &p.deployments[0].action else { panic!("{p:#?}") };
    assert_eq!(id, "e1");
    let fields: Vec<_> = changes.iter().map(|c| c.field).collect();
    assert_eq!(fields, ["version", "tags", "pull_steps"]);
    assert_eq!(changes[0].old, json!(etl.version));
    assert_eq!(changes[0].new, json!(v2.version));
    let body = update_body(changes);
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["version", "tags", "pull_steps"]);
}

#[test]
fn paused_counts_only_when_managed_and_hand_edits_show_as_drift() {
    let etl = DesiredDeployment::new(input("etl", "v1"));
    let mut have = as_server(&etl, "e1");
    have.paused = true;
    assert!(plan(std::slice::from_ref(&etl), std::slice::from_ref(&have), &scope()).is_noop());

    let mut managed = input("etl", "v1");
    managed.paused = Some(false);
    let p = plan(&[DesiredDeployment::new(managed)], &[have.clone()], &scope());
    let Action::Update { changes, .. } = &p.deployments[0].action else { panic!("{p:#?}") };
    assert_eq!(changes.iter().map(|c| c.field).collect::<Vec<_>>(), ["paused"]);

    have.paused = false;
    have.job_variables.insert("image".into(), json!("hand/edited:latest"));
    have.schedules.clear();
    let p = plan(&[etl], &[have], &scope());
    let Action::Update { changes, .. } = &p.deployments[0].action else { panic!("{p:#?}") };
    assert_eq!(changes.iter().map(|c| c.field).collect::<Vec<_>>(), ["job_variables", "schedules"]);
}

/// Issue 15: the limit, its options and `enforce_parameter_schema` are sent
/// on create, compared with what the server answers (the limit as a global
/// concurrency limit, the options with defaults filled in), and patched field
/// by field: unchanged settings plan no write, whatever the server's spelling.
#[test]
fn issue_15_concurrency_limit_and_enforce_parameter_schema_plan_field_by_field() {
    let limited = |limit, strategy, grace, enforce| {
        let mut i = input("etl", "v1");
        i.concurrency_limit =
            Some(ConcurrencyLimit { limit, collision_strategy: strategy, grace_period_seconds: grace });
        i.enforce_parameter_schema = enforce;
        DesiredDeployment::new(i)
    };
    let want = limited(2, Some(CollisionStrategy::CancelNew), None, Some(true));
    let body = want.create_body("fid");
    assert_eq!(body["concurrency_limit"], 2);
    assert_eq!(body["concurrency_options"], json!({"collision_strategy": "CANCEL_NEW"}));
    assert_eq!(body["enforce_parameter_schema"], true);
    let plain = DesiredDeployment::new(input("etl", "v1")).create_body("fid");
    for key in ["concurrency_limit", "concurrency_options", "enforce_parameter_schema"] {
        assert!(plain.get(key).is_none(), "unset settings are left to Prefect's defaults: {plain}");
    }
    let bare = limited(3, None, None, None).create_body("fid");
    assert_eq!((bare["concurrency_limit"].clone(), bare.get("concurrency_options")), (json!(3), None));

    // What the server answers for each is unchanged, however it spells it.
    let mut have = as_server(&want, "e1");
    have.concurrency_options.as_mut().unwrap().grace_period_seconds = None;
    assert!(plan(std::slice::from_ref(&want), std::slice::from_ref(&have), &scope()).is_noop());
    let mut old_server = have.clone();
    (old_server.global_concurrency_limit, old_server.concurrency_limit) = (None, Some(2));
    old_server.enforce_parameter_schema = None;
    assert!(plan(std::slice::from_ref(&want), &[old_server], &scope()).is_noop());
    let enqueue = limited(2, Some(CollisionStrategy::Enqueue), None, None);
    let mut no_options = as_server(&enqueue, "e1");
    no_options.concurrency_options = None;
    assert!(plan(&[enqueue], &[no_options], &scope()).is_noop(), "no options means ENQUEUE");
    let nothing = DesiredDeployment::new(input("etl", "v1"));
    assert!(plan(std::slice::from_ref(&nothing), &[as_server(&nothing, "e1")], &scope()).is_noop());

    // A new limit is one field; a new strategy, a grace period, enforcement, each theirs.
    let changed = |want: &DesiredDeployment| {
        let p = plan(std::slice::from_ref(want), std::slice::from_ref(&have), &scope());
        let Action::Update { changes, .. } = &p.deployments[0].action else { panic!("{p:#?}") };
        update_body(changes)
    };
    assert_eq!(
        changed(&limited(5, Some(CollisionStrategy::CancelNew), None, Some(true))),
        json!({"concurrency_limit": 5})
    );
    assert_eq!(
        changed(&limited(2, None, Some(120), Some(false))),
        json!({"concurrency_options": {"collision_strategy": "ENQUEUE", "grace_period_seconds": 120},
               "enforce_parameter_schema": false})
    );
    // Removed from the config: the limit and its options go (null), enforcement stays Prefect's default.
    let p = plan(std::slice::from_ref(&nothing), std::slice::from_ref(&have), &scope());
    let Action::Update { changes, .. } = &p.deployments[0].action else { panic!("{p:#?}") };
    assert_eq!(update_body(changes), json!({"concurrency_limit": null, "concurrency_options": null}));
    assert_eq!(changes[0].old, json!(2), "plan shows the limit the server enforces");
    let mut hand_off = as_server(&nothing, "e1");
    hand_off.enforce_parameter_schema = Some(false);
    assert_eq!(changed_from(&nothing, hand_off), json!({"enforce_parameter_schema": true}));
}

fn changed_from(want: &DesiredDeployment, have: ServerDeployment) -> Value {
    let p = plan(std::slice::from_ref(want), &[have], &scope());
    let Action::Update { changes, .. } = &p.deployments[0].action else { panic!("{p:#?}") };
    update_body(changes)
}

/// `have` with its project tag replaced (None: removed, as synced before projects).
fn owned_by(mut have: ServerDeployment, project: Option<&str>) -> ServerDeployment {
    have.tags.retain(|t| !t.starts_with("flowgate-project:"));
    have.tags.extend(project.map(|p| format!("flowgate-project:{p}")));
    have
}

#[test]
fn foreign_deployments_are_marked_and_prune_stays_in_scope() {
    let etl = DesiredDeployment::new(input("etl", "v1"));
    let mut foreign = as_server(&etl, "f1");
    foreign.tags = vec!["team".into()];
    let p = plan(std::slice::from_ref(&etl), std::slice::from_ref(&foreign), &scope());
    assert_eq!(p.deployments[0].action, Action::Foreign { id: "f1".into(), owner: Owner::Unmanaged });
    assert_eq!(p.conflicts().len(), 1);
    assert!(p.conflicts()[0].to_string().contains("not managed by flowgate"), "{}", p.conflicts()[0]);

    let gone = as_server(&DesiredDeployment::new(input("gone", "v1")), "g1");
    let mut prod = as_server(&DesiredDeployment::new(input("other", "v1")), "p1");
    prod.tags = vec!["flowgate".into(), "flowgate-env:prod".into()];
    let mut unmanaged_gone = as_server(&DesiredDeployment::new(input("old", "v1")), "u1");
    unmanaged_gone.tags = vec![];
    let p = plan(&[etl], &[gone, prod, unmanaged_gone, foreign], &scope());
    let names: Vec<_> = p.prune.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["qa-gone"]);
}

#[test]
fn another_projects_deployment_is_refused_and_never_pruned() {
    let etl = DesiredDeployment::new(input("etl", "v1"));
    let theirs = owned_by(as_server(&etl, "t1"), Some("beta"));
    let p = plan(std::slice::from_ref(&etl), std::slice::from_ref(&theirs), &scope());
    assert_eq!(p.deployments[0].action, Action::Foreign { id: "t1".into(), owner: Owner::Project("beta".into()) });
    let conflict = p.conflicts()[0].to_string();
    assert!(conflict.contains("flowgate project `beta`") && conflict.contains("`etl/qa-etl`"), "{conflict}");

    // Same env tag, same prefix, not wanted: still not ours to prune.
    let their_gone = owned_by(as_server(&DesiredDeployment::new(input("gone", "v1")), "g1"), Some("beta"));
    let p = plan(&[etl], &[their_gone], &scope());
    assert!(p.prune.is_empty() && p.unclaimed.is_empty(), "{p:#?}");
}

#[test]
fn deployments_from_before_projects_are_adopted_only_when_unambiguous() {
    let etl = DesiredDeployment::new(input("etl", "v1"));
    let legacy = owned_by(as_server(&etl, "l1"), None);
    let p = plan(std::slice::from_ref(&etl), std::slice::from_ref(&legacy), &scope());
    let Action::Adopt { id, changes } = &p.deployments[0].action else { panic!("{p:#?}") };
    assert_eq!(id, "l1");
    assert_eq!(changes.iter().map(|c| c.field).collect::<Vec<_>>(), ["tags"], "adoption adds the project tag only");

    // Of another env: not this project's to adopt.
    let mut other_env = legacy.clone();
    other_env.tags.retain(|t| !t.starts_with("flowgate-env:"));
    other_env.tags.push("flowgate-env:prod".into());
    let p = plan(std::slice::from_ref(&etl), &[other_env], &scope());
    assert_eq!(
        p.deployments[0].action,
        Action::Foreign { id: "l1".into(), owner: Owner::Unclaimed { env: Some("prod".into()) } }
    );

    // Of this env but wanted by nothing here: reported, never pruned.
    let gone = owned_by(as_server(&DesiredDeployment::new(input("gone", "v1")), "g1"), None);
    let p = plan(&[etl], &[gone], &scope());
    assert!(p.prune.is_empty(), "{p:#?}");
    assert_eq!(p.unclaimed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["qa-gone"]);
}
