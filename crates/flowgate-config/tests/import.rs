//! Importing prefect.yaml files of the shapes real projects have (one fixture
//! per shape under `tests/fixtures/prefect_yaml/`, written for these tests):
//! every value is carried, translated or dropped with a note, the produced
//! config parses back, and the summary, notes and toml are snapshots.

use std::path::{Path, PathBuf};

use flowgate_config::{
    import_prefect_yaml, import_prefect_yaml_with, parse, starter_toml, ImportContext, Imported, Outcome,
};
use flowgate_core::FlowKey;
use serde_json::json;
use serde_yaml::Value as Yaml;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prefect_yaml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prefect_yaml").join(name))
        .expect("fixture")
}

/// The project's own remote, as `flowgate init` reads it from git.
fn context(fixture: &str) -> ImportContext {
    let own_repository = match fixture {
        "extra_clone.yaml" => Some("https://github.com/acme/warehouse-flows".to_string()),
        _ => None,
    };
    ImportContext { own_repository, name_from_file: false }
}

fn import(name: &str) -> Result<Imported, flowgate_config::ConfigError> {
    import_prefect_yaml_with("acme", &fixture(name), &context(name))
}

fn summary(imported: &Imported) -> String {
    let c = imported.counts;
    let mut out = format!(
        "{} deployments, {} flows: {} carried, {} translated, {} dropped\n",
        c.deployments, c.flows, c.carried, c.translated, c.dropped
    );
    for note in &imported.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[test]
fn every_fixture_imports_into_a_config_that_parses_back() {
    let files = fixtures();
    assert!(files.len() >= 12, "the corpus: {files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let snapshot = name.trim_end_matches(".yaml").to_string();
        match import(&name) {
            Ok(imported) => {
                parse("flowgate.toml", &imported.toml)
                    .unwrap_or_else(|e| panic!("{name}: the imported config does not parse: {e}\n{}", imported.toml));
                insta::assert_snapshot!(format!("{snapshot}_summary"), summary(&imported));
                insta::assert_snapshot!(format!("{snapshot}_toml"), imported.toml);
            }
            Err(error) => insta::assert_snapshot!(format!("{snapshot}_error"), error.to_string()),
        }
    }
}

/// Nothing is lost silently: every non-empty key of every deployment (after
/// anchors and merges) has an item saying what became of it.
#[test]
fn every_value_of_every_deployment_is_accounted_for() {
    for file in fixtures() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let Ok(imported) = import(&name) else { continue };
        let mut doc: Yaml = serde_yaml::from_str(&fixture(&name)).unwrap();
        doc.apply_merge().unwrap();
        let Some(Yaml::Sequence(deployments)) = doc.get("deployments") else { continue };
        for (i, d) in deployments.iter().enumerate() {
            let Some(map) = d.as_mapping() else { continue };
            let label = map.get("name").and_then(Yaml::as_str).map_or(format!("#{}", i + 1), str::to_string);
            for (key, value) in map {
                let key = key.as_str().unwrap();
                let empty = match value {
                    Yaml::Null => true,
                    Yaml::String(s) => s.is_empty(),
                    Yaml::Sequence(s) => s.is_empty(),
                    Yaml::Mapping(m) => m.is_empty(),
                    _ => false,
                };
                if empty {
                    continue;
                }
                let wanted = if key == "schedule" { "schedules" } else { key };
                let accounted = imported.items.iter().any(|item| {
                    item.deployment.as_deref() == Some(label.as_str())
                        && (item.path == wanted
                            || item.path.starts_with(&format!("{wanted}."))
                            || item.path.starts_with(&format!("{wanted}["))
                            || (wanted == "work_pool" && item.path == "work_queue"))
                });
                // A deployment skipped as a whole accounts for its keys with one item.
                let skipped = imported.items.iter().any(|item| {
                    item.deployment.as_deref() == Some(label.as_str())
                        && item.path == "entrypoint"
                        && item.outcome == Outcome::Dropped
                });
                assert!(accounted || skipped, "{name}: `{key}` of deployment `{label}` is not accounted for");
            }
        }
        for item in &imported.items {
            assert_eq!(
                item.note.is_some(),
                item.outcome != Outcome::Carried,
                "{name}: a translation or drop needs a note, a carried value none: {item:?}"
            );
        }
    }
}

#[test]
fn the_realistic_file_keeps_its_meaning() {
    let imported = import("realistic.yaml").unwrap();
    let config = parse("flowgate.toml", &imported.toml).unwrap();
    let keys: Vec<&str> = config.flows().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["etl-daily", "etl-hourly", "etl-daily-2", "report"]);
    let flow = |k: &str| config.flow(&k.parse::<FlowKey>().unwrap()).unwrap();

    let s = &flow("etl-daily").settings;
    assert_eq!(s.work_pool.as_ref().unwrap().as_str(), "docker-pool");
    assert_eq!(s.work_queue.as_ref().unwrap().as_str(), "default");
    // `{{ $TEAM }}` is resolved by `prefect deploy`; flowgate does not resolve tags, so it is dropped.
    assert_eq!(s.tags.as_deref().unwrap(), ["acme"]);
    // `{` in a description is escaped so that it renders to itself.
    let rendered = s.description.as_ref().unwrap().render(&Default::default()).unwrap();
    assert_eq!(rendered, "Daily ETL {not a flowgate placeholder}");
    // The deployment's `parameters` replaces the anchor's (a YAML merge is shallow); nulls are gone.
    assert_eq!(
        serde_json::Value::Object(s.parameters.clone().unwrap()),
        json!({ "days": 1, "nested": { "mode": "full" } })
    );
    // `{{ $API_URL }}` would reach the worker unresolved: dropped with a note.
    assert!(s.job_variables.is_none(), "{:?}", s.job_variables);
    assert!(s.pull.is_none());
    let project_pull = config.project.settings.pull.clone().unwrap();
    assert_eq!(
        serde_json::Value::Object(project_pull[0].clone()),
        json!({ "prefect.deployments.steps.pip_install_requirements": {
            "directory": "{{ pull-code.stdout }}", "requirements_file": "requirements.txt" } })
    );
    let h = &flow("etl-hourly").settings;
    assert_eq!(h.deployment_name.as_ref().unwrap().as_str(), "ETL Hourly");
    assert_eq!(h.image.as_ref().unwrap().as_str(), "python:3.12-slim");

    // The same name on the same flow: renamed, since Prefect would deploy it over the first.
    let duplicate = flow("etl-daily-2");
    assert!(duplicate.settings.deployment_name.is_none());
    // `{{ $POOL }}` is read when the build is made.
    assert_eq!(duplicate.settings.work_pool.as_ref().unwrap().as_str(), "{$POOL}");
    // A module entrypoint written with a dot.
    assert_eq!(flow("report").entrypoint, "reports:report_flow");
}

#[test]
fn environment_variables_are_read_when_the_build_is_made() {
    let imported = import("templates.yaml").unwrap();
    let config = parse("flowgate.toml", &imported.toml).unwrap();
    let (_, flow) = config.flows().next().unwrap();
    let s = &flow.settings;
    assert_eq!(s.deployment_name.as_ref().unwrap().as_str(), "ingest-{$DEPLOY_ENV}");
    assert_eq!(s.description.as_ref().unwrap().as_str(), "Ingest for {$TEAM} {{raw braces}}");
    assert_eq!(s.work_pool.as_ref().unwrap().as_str(), "{$POOL}");
    // Blocks and variables in job variables are the worker's to resolve when the flow runs.
    assert_eq!(
        serde_json::Value::Object(s.job_variables.clone().unwrap()),
        json!({ "env": {
            "WAREHOUSE_PASSWORD": "{{ prefect.blocks.secret.warehouse-password }}",
            "MODE": "{{ prefect.variables.mode }}" } })
    );
    assert_eq!(serde_json::Value::Object(s.parameters.clone().unwrap()), json!({ "days": 7 }));
    let no_unannounced_template = imported.toml.lines().filter(|l| l.contains("{{ $")).count();
    assert_eq!(no_unannounced_template, 0, "{}", imported.toml);
    let vars = flowgate_config::TemplateVars { environment: true, ..Default::default() };
    let template = s.deployment_name.as_ref().unwrap();
    let err = template.render(&vars).unwrap_err().to_string();
    assert!(err.contains("environment variable `DEPLOY_ENV`, which is not set"), "{err}");
    let err = template.render(&Default::default()).unwrap_err().to_string();
    assert!(err.contains("read only when a build is made"), "{err}");
}

#[test]
fn a_clone_of_another_repository_stays_after_the_bundle_download() {
    let imported = import("extra_clone.yaml").unwrap();
    let config = parse("flowgate.toml", &imported.toml).unwrap();
    let pull: Vec<serde_json::Value> =
        config.project.settings.pull.clone().unwrap().into_iter().map(serde_json::Value::Object).collect();
    assert_eq!(
        serde_json::Value::Array(pull),
        json!([
            { "prefect.deployments.steps.git_clone": {
                "id": "clone-dbt", "repository": "https://github.com/acme/dbt-models.git", "branch": "main" } },
            { "prefect.deployments.steps.pip_install_requirements": {
                "directory": "{{ pull-code.stdout }}", "requirements_file": "requirements.txt" } },
            { "prefect.deployments.steps.run_shell_script": {
                "script": "dbt deps --project-dir {{ clone-dbt.directory }}" } },
        ])
    );
}

#[test]
fn prefect_2_steps_are_renamed_and_the_code_checkout_replaced() {
    let imported = import("prefect2.yaml").unwrap();
    let config = parse("flowgate.toml", &imported.toml).unwrap();
    let pull = config.project.settings.pull.clone().unwrap();
    assert_eq!(pull.len(), 1);
    assert!(pull[0].contains_key("prefect.deployments.steps.pip_install_requirements"), "{pull:?}");
    assert!(!imported.toml.contains("prefect.projects"), "{}", imported.toml);
}

#[test]
fn deployments_of_different_flows_keep_their_shared_name() {
    let imported = import("same_names.yaml").unwrap();
    let config = parse("flowgate.toml", &imported.toml).unwrap();
    let names: Vec<(String, Option<String>)> = config
        .flows()
        .map(|(k, f)| (k.to_string(), f.settings.deployment_name.as_ref().map(|t| t.as_str().to_string())))
        .collect();
    assert_eq!(
        names,
        [
            ("default".to_string(), None),
            ("default-2".to_string(), Some("default".to_string())),
            ("default-3".to_string(), Some("default".to_string())),
            // The second `default` of flow `transform` would replace the first in Prefect.
            ("default-4".to_string(), None),
        ]
    );
}

#[test]
fn an_empty_flow_name_is_absent() {
    let imported = import("empty_values.yaml").unwrap();
    let config = parse("flowgate.toml", &imported.toml).unwrap();
    let (_, flow) = config.flows().next().unwrap();
    assert!(flow.flow_name.is_none() && flow.settings.description.is_none() && flow.settings.work_queue.is_none());
}

#[test]
fn a_file_with_nothing_importable_is_an_error_naming_why() {
    let err = import("nothing_importable.yaml").unwrap_err().to_string();
    assert!(err.contains("none of its 2 deployment(s) can become a flow"), "{err}");
    assert!(err.contains("Deployment `a` has no `entrypoint`"), "{err}");
}

#[test]
fn the_same_note_is_printed_once() {
    let yaml = "pull:\n  - prefect.deployments.steps.git_clone: { id: c, repository: r }\n  - prefect.deployments.steps.run_shell_script: { script: \"ls {{ c.directory }} {{ c.directory }}\" }\n  - prefect.deployments.steps.run_shell_script: { script: \"cd {{ c.directory }}\" }\ndeployments:\n  - { name: a, entrypoint: \"a.py:a\", work_pool: { name: p } }\n";
    let imported = import_prefect_yaml("acme", yaml).unwrap();
    let rewired: Vec<&String> = imported.notes.iter().filter(|n| n.contains("now reads")).collect();
    assert_eq!(rewired.len(), 1, "{:?}", imported.notes);
    let json = serde_json::to_value(&imported.items).unwrap();
    assert_eq!(json[0]["outcome"], "dropped", "{json}");
}

#[test]
fn broken_yaml_is_an_import_error() {
    let err = import_prefect_yaml("a", "deployments: [\n").unwrap_err();
    assert!(err.to_string().starts_with("Failed to import prefect.yaml: "), "{err}");
    let err = import_prefect_yaml("a", "- just a list\n").unwrap_err();
    assert!(err.to_string().contains("not a mapping"), "{err}");
    let empty = import_prefect_yaml("a", "name: x\ndeployments: null\n").unwrap();
    assert!(empty.notes.contains(&"The file has no deployments; add `[flows.F]` tables by hand.".to_string()));
    parse("flowgate.toml", &empty.toml).unwrap();
}

#[test]
fn the_starter_toml_parses_with_and_without_flows() {
    let none = starter_toml("acme-flows", &[]);
    let config = parse("flowgate.toml", &none).unwrap();
    assert_eq!(config.project_name().as_str(), "acme-flows");
    let err = parse("flowgate.toml", &starter_toml("acme \"flows\"", &[])).unwrap_err().to_string();
    assert!(err.contains("`acme \"flows\"` is not a valid project name") && err.contains("flowgate.toml:8:"), "{err}");
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
