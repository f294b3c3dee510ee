//! Importing a realistic prefect.yaml: anchors, `<<:` merges, the old singular
//! `schedule:`, nulls, Prefect templates, a shared entrypoint and per-deployment
//! pull steps. The produced toml and notes are snapshots, and must parse back.

use flowgate_config::{import_prefect_yaml, parse, starter_toml};
use flowgate_core::FlowKey;
use serde_json::json;

const PREFECT_YAML: &str = r#"
name: acme-flows
prefect-version: 3.1.0

build:
  - prefect_docker.deployments.steps.build_docker_image:
      id: build-image
      image_name: ghcr.io/acme/flows
      tag: latest
push: null

pull:
  - prefect.deployments.steps.git_clone:
      id: clone-step
      repository: https://github.com/acme/flows.git
      branch: main
      access_token: "{{ prefect.blocks.secret.github-token }}"
  - prefect.deployments.steps.pip_install_requirements:
      directory: "{{ clone-step.directory }}"
      requirements_file: requirements.txt

definitions:
  work_pools:
    docker: &docker_pool
      name: docker-pool
      work_queue_name: default
      job_variables:
        image: "{{ build-image.image }}"
        env:
          API_URL: "{{ $API_URL }}"
  schedules:
    nightly: &nightly
      cron: "0 3 * * *"
      timezone: Europe/Berlin
      day_or: null
  common: &common
    tags: [acme, "{{ $TEAM }}"]
    version: "{{ $GITHUB_SHA }}"
    parameters:
      db_password: "{{ prefect.blocks.secret.db-password }}"
      retries: 2

deployments:
  - <<: *common
    name: etl-daily
    description: "Daily ETL {not a flowgate placeholder}"
    entrypoint: flows/etl.py:etl
    parameters:
      days: 1
      nested: { window: null, mode: full }
    work_pool: *docker_pool
    schedule: *nightly
  - <<: *common
    name: ETL Hourly
    entrypoint: flows/etl.py:etl
    schedules:
      - interval: 3600
        active: true
      - cron: null
        rrule: null
    work_pool:
      <<: *docker_pool
      work_queue_name: hourly
      job_variables:
        image: python:3.12-slim
    pull:
      - prefect.deployments.steps.git_clone:
          id: clone
          repository: https://github.com/acme/flows.git
      - prefect.deployments.steps.pip_install_requirements:
          directory: "{{ clone.directory }}"
          requirements_file: requirements-etl.txt
  - name: etl-daily
    entrypoint: flows/etl.py:etl
    concurrency_limit: 1
    work_pool:
      name: "{{ $POOL }}"
    description: null
    tags: null
  - name: report
    entrypoint: reports.report_flow
"#;

#[test]
fn a_realistic_prefect_yaml_imports_and_parses_back() {
    let imported = import_prefect_yaml("acme-flows", PREFECT_YAML).unwrap();
    insta::assert_snapshot!("prefect_yaml_toml", imported.toml);
    insta::assert_snapshot!("prefect_yaml_notes", imported.notes.join("\n"));

    let config = parse("flowgate.toml", &imported.toml).unwrap();
    let keys: Vec<&str> = config.flows().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["etl-daily", "etl-hourly", "etl-daily-2"]);
    // The shared entrypoint is kept on each flow.
    assert!(config.flows().all(|(_, f)| f.entrypoint == "flows/etl.py:etl"));

    let daily = config.flow(&"etl-daily".parse::<FlowKey>().unwrap()).unwrap();
    let s = &daily.settings;
    assert_eq!(s.work_pool.as_ref().unwrap().as_str(), "docker-pool");
    assert_eq!(s.work_queue.as_ref().unwrap().as_str(), "default");
    assert_eq!(s.tags.as_deref().unwrap(), ["acme", "{{ $TEAM }}"]);
    // `{` in a description is escaped so that it renders to itself.
    let rendered = s.description.as_ref().unwrap().render(&Default::default()).unwrap();
    assert_eq!(rendered, "Daily ETL {not a flowgate placeholder}");
    // Parameters: the anchor's values merged with the deployment's, nulls gone, Prefect templates verbatim.
    assert_eq!(
        serde_json::Value::Object(s.parameters.clone().unwrap()),
        json!({ "days": 1, "nested": { "mode": "full" } })
    );
    assert_eq!(
        serde_json::Value::Object(s.job_variables.clone().unwrap()),
        json!({ "env": { "API_URL": "{{ $API_URL }}" } })
    );
    assert_eq!(
        serde_json::Value::Array(s.schedules.clone().unwrap().into_iter().map(serde_json::Value::Object).collect()),
        json!([{ "cron": "0 3 * * *", "timezone": "Europe/Berlin" }])
    );
    // No own pull: the project's kept steps apply; git_clone is gone and its directory rewired.
    assert!(s.pull.is_none());
    let project_pull = config.project.settings.pull.clone().unwrap();
    assert_eq!(
        serde_json::Value::Object(project_pull[0].clone()),
        json!({ "prefect.deployments.steps.pip_install_requirements": {
            "directory": "{{ pull-code.stdout }}", "requirements_file": "requirements.txt" } })
    );

    let hourly = config.flow(&"etl-hourly".parse::<FlowKey>().unwrap()).unwrap();
    let h = &hourly.settings;
    assert_eq!(h.deployment_name.as_ref().unwrap().as_str(), "ETL Hourly");
    assert_eq!(h.work_queue.as_ref().unwrap().as_str(), "hourly");
    assert_eq!(h.image.as_ref().unwrap().as_str(), "python:3.12-slim");
    // A `job_variables` given in the deployment replaces the anchor's (a YAML merge is shallow).
    assert!(h.job_variables.is_none());
    assert_eq!(h.schedules.as_ref().unwrap().len(), 1);
    assert_eq!(
        serde_json::Value::Object(h.pull.clone().unwrap()[0].clone()),
        json!({ "prefect.deployments.steps.pip_install_requirements": {
            "directory": "{{ pull-code.stdout }}", "requirements_file": "requirements-etl.txt" } })
    );
    let duplicate = config.flow(&"etl-daily-2".parse::<FlowKey>().unwrap()).unwrap();
    assert!(duplicate.settings.deployment_name.is_none());
    // A Prefect template in a flowgate template field is escaped: it stays literal text.
    let pool = duplicate.settings.work_pool.as_ref().unwrap().render(&Default::default()).unwrap();
    assert_eq!(pool, "{{ $POOL }}");
    assert!(duplicate.settings.description.is_none() && duplicate.settings.tags.is_none());
}

#[test]
fn broken_yaml_is_an_import_error() {
    let err = import_prefect_yaml("a", "deployments: [\n").unwrap_err();
    assert!(err.to_string().starts_with("Failed to import prefect.yaml: "), "{err}");
    let err = import_prefect_yaml("a", "- just a list\n").unwrap_err();
    assert!(err.to_string().contains("not a mapping"), "{err}");
    let empty = import_prefect_yaml("a", "name: x\ndeployments: null\n").unwrap();
    assert_eq!(empty.notes, ["The file has no deployments; add `[flows.F]` tables by hand."]);
    parse("flowgate.toml", &empty.toml).unwrap();
}

#[test]
fn the_starter_toml_parses_with_and_without_flows() {
    let none = starter_toml("acme-flows", &[]);
    let config = parse("flowgate.toml", &none).unwrap();
    assert_eq!(config.project_name().as_str(), "acme-flows");
    let err = parse("flowgate.toml", &starter_toml("acme \"flows\"", &[])).unwrap_err().to_string();
    assert!(err.contains("`acme \"flows\"` is not a valid project name") && err.contains("flowgate.toml:7:"), "{err}");
    assert_eq!(config.flows().count(), 0);
    assert!(config.env("dev").is_some());

    let flows = vec![
        ("etl".parse::<FlowKey>().unwrap(), "flows/etl.py:etl".to_string()),
        ("report.v2".parse::<FlowKey>().unwrap(), "flows/report.py:report".to_string()),
    ];
    let text = starter_toml("acme", &flows);
    insta::assert_snapshot!("starter_toml", text);
    let config = parse("flowgate.toml", &text).unwrap();
    let got: Vec<(String, String)> = config.flows().map(|(k, f)| (k.to_string(), f.entrypoint.clone())).collect();
    assert_eq!(
        got,
        [
            ("etl".to_string(), "flows/etl.py:etl".to_string()),
            ("report.v2".to_string(), "flows/report.py:report".to_string())
        ]
    );
}
