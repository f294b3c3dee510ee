//! `flowgate init`: the starter config is one `build` accepts once a flow is
//! added, an existing config is never overwritten, and a realistic prefect.yaml
//! imports into a config that parses, with notes on what could not be carried over.

mod common;

use common::{filters, pairs, run};
use flowgate_testkit::GitProject;

#[test]
fn starter_config_builds_once_a_flow_is_added() {
    let p = GitProject::new();
    run(&p, &["init"]).success();
    assert!(p.read(".gitignore").lines().any(|l| l == ".flowgate/"), "init ignores the state directory");
    p.write("flows/etl.py", "from prefect import flow\n\n@flow\ndef etl():\n    pass\n");
    let config = p.read("flowgate.toml");
    p.write("flowgate.toml", &format!("{config}\n[flows.etl]\nentrypoint = \"flows/etl.py:etl\"\n"));
    p.commit("Starter config and one flow");

    let built = run(&p, &["build", "--json"]).success().json();
    assert_eq!(built["build"]["file_count"].as_u64(), Some(3), "flowgate.toml, .gitignore and the flow: {built}");
    // The starter's personal env is this user's, and status shows it.
    let status = run(&p, &["status", "--json"]).success().json();
    assert_eq!(status["envs"], serde_json::json!(["dev-tester"]), "{status}");
    assert_eq!(status["flows"][0]["flow"].as_str(), Some("etl"));
}

#[test]
fn init_refuses_to_overwrite_a_config() {
    let p = GitProject::example();
    let before = p.read("flowgate.toml");
    for args in [&["init"][..], &["init", "--from-prefect-yaml", "prefect.yaml"][..]] {
        let refused = run(&p, args).expect_code(2);
        assert!(refused.stderr.contains("flowgate.toml`"), "names the file: {}", refused.stderr);
        assert_eq!(p.read("flowgate.toml"), before);
    }
}

const PREFECT_YAML: &str = r#"
name: acme-flows
prefect-version: 3.1.0

build:
  - prefect_docker.deployments.steps.build_docker_image:
      id: build-image
      image_name: ghcr.io/acme/flows
      tag: "{{ $GITHUB_SHA }}"
push: null

pull:
  - prefect.deployments.steps.git_clone:
      id: clone-step
      repository: https://github.com/acme/flows.git
      branch: main
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
  schedules:
    nightly: &nightly
      cron: "0 3 * * *"
      timezone: Europe/Berlin
  common: &common
    tags: [acme, "{{ $TEAM }}"]
    parameters:
      retries: 2
      api_token: "{{ prefect.blocks.secret.api-token }}"

deployments:
  - <<: *common
    name: etl-daily
    entrypoint: flows/etl.py:etl
    parameters:
      days: 1
      window: null
    work_pool: *docker_pool
    schedule: *nightly
  - <<: *common
    name: etl-backfill
    entrypoint: flows/etl.py:etl
    description: null
    work_pool:
      <<: *docker_pool
      work_queue_name: backfill
    pull:
      - prefect.deployments.steps.git_clone:
          id: clone
          repository: https://github.com/acme/flows.git
      - prefect.deployments.steps.run_shell_script:
          script: "echo {{ $REGION }}"
  - name: report
    entrypoint: flows/report.py:report
    work_pool:
      name: process-pool
"#;

#[test]
fn init_imports_a_realistic_prefect_yaml() {
    let p = GitProject::new();
    p.write("prefect.yaml", PREFECT_YAML);
    let init = run(&p, &["init", "--from-prefect-yaml", "prefect.yaml"]).success();
    assert!(init.stdout.contains("dropped: "), "notes on what was not carried over: {}", init.stdout);

    let status = run(&p, &["status", "--json"]).success().json();
    let flows: Vec<&str> = status["flows"].as_array().unwrap().iter().map(|f| f["flow"].as_str().unwrap()).collect();
    assert_eq!(flows, ["etl-daily", "etl-backfill", "report"]);
    let config = p.read("flowgate.toml");
    assert!(config.contains("Europe/Berlin"), "the singular schedule came through:\n{config}");
    assert!(!config.contains("window"), "nulls are dropped:\n{config}");

    let filters = filters(&p, &[]);
    insta::with_settings!({ filters => pairs(&filters) }, {
        insta::assert_snapshot!(init.stdout, @"
        Wrote [PROJECT]/flowgate.toml
        Imported 3 of 3 deployments from prefect.yaml as flows: 19 values carried, 1 translated, 10 dropped.
        translated: In the top-level `pull`, `{{ clone-step.directory }}` now reads `{{ pull-code.stdout }}`, the directory of flowgate's download.
        dropped: The top-level `prefect-version` is not carried over: flowgate deploys through the Prefect server's API; pin `prefect` in the project's requirements.
        dropped: The top-level `build` is not carried over: `flowgate build` packs the code and pins the image (set `image` in `[project]`).
        dropped: The `git_clone` step of the top-level `pull` is not carried over: flowgate's pull step downloads the build's code.
        dropped: The tag `{{ $TEAM }}` of deployment `etl-daily` holds `{{ $TEAM }}`, which Prefect resolves when it deploys; flowgate sends tags as written, so it is not carried over: add the tag per env (`[envs.E.flows.F] tags`).
        dropped: The parameter `window` of deployment `etl-daily` is null, which TOML cannot hold: not carried over, so the flow's default applies where Prefect passed None.
        dropped: The `job_variables.image` `{{ build-image.image }}` of deployment `etl-daily` is not carried over: each build pins the image (set `image`).
        dropped: The tag `{{ $TEAM }}` of deployment `etl-backfill` holds `{{ $TEAM }}`, which Prefect resolves when it deploys; flowgate sends tags as written, so it is not carried over: add the tag per env (`[envs.E.flows.F] tags`).
        dropped: The parameter `api_token` of deployment `etl-backfill` holds `{{ prefect.blocks.secret.api-token }}`, which Prefect resolves when it deploys; flowgate sends parameters as written, so it is not carried over: load it in the flow (`Secret.load(...)`, `Variable.get(...)`) or set the value per env in `[envs.E.flows.F] parameters`.
        dropped: The `job_variables.image` `{{ build-image.image }}` of deployment `etl-backfill` is not carried over: each build pins the image (set `image`).
        dropped: The `git_clone` step of the `pull` of deployment `etl-backfill` is not carried over: flowgate's pull step downloads the build's code.
        ");
    });
}

#[test]
fn init_json_gives_the_summary_and_every_item() {
    let p = GitProject::new();
    p.write("prefect.yaml", PREFECT_YAML);
    let init = run(&p, &["init", "--from-prefect-yaml", "prefect.yaml", "--json"]).success().json();
    assert_eq!(init["summary"]["deployments"], 3, "{init}");
    assert_eq!(init["summary"]["flows"], 3, "{init}");
    let items = init["items"].as_array().unwrap();
    let dropped = items.iter().filter(|i| i["outcome"] == "dropped").count() as u64;
    assert_eq!(init["summary"]["dropped"].as_u64(), Some(dropped), "{init}");
    let token = items.iter().find(|i| i["path"] == "parameters.api_token").expect("the secret parameter has an item");
    assert_eq!(token["outcome"], "dropped");
    assert!(token["note"].as_str().unwrap().contains("Secret.load"), "{token}");
    // Named after the prefect.yaml's `name` when `--name` is not given.
    assert!(p.read("flowgate.toml").contains("name = \"acme-flows\""));
}

#[test]
fn init_refuses_a_prefect_yaml_with_nothing_importable() {
    let p = GitProject::new();
    p.write("prefect.yaml", "deployments:\n  - name: a\n  - name: b\n    entrypoint: flows/b\n");
    let refused = run(&p, &["init", "--from-prefect-yaml", "prefect.yaml"]).expect_code(2);
    assert!(refused.stderr.contains("none of its 2 deployment(s) can become a flow"), "{}", refused.stderr);
    assert!(refused.stderr.contains("Deployment `a` has no `entrypoint`"), "{}", refused.stderr);
    assert!(!p.path().join("flowgate.toml").exists(), "nothing written");
}

/// Bad prefect.yaml files keep clear exit-2 errors, and nothing is written.
#[test]
fn init_refuses_broken_prefect_yaml_with_exit_2() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\ndeployments: *g\n";
    let cases = [
        ("not YAML", "deployments: [\n", "Failed to import prefect.yaml"),
        ("alias bomb", bomb, "repetition limit"),
        ("recursive merge", "base: &base\n  <<: *base\ndeployments: []\n", "Failed to import prefect.yaml"),
        ("tabs", "deployments:\n\t- name: a\n", "Failed to import prefect.yaml"),
        ("duplicate keys", "deployments: []\ndeployments: []\n", "duplicate"),
        ("a list document", "- name: a\n", "not a mapping"),
        ("two documents", "name: a\n---\nname: b\n", "more than one document"),
    ];
    for (what, yaml, says) in cases {
        let p = GitProject::new();
        p.write("prefect.yaml", yaml);
        let refused = run(&p, &["init", "--from-prefect-yaml", "prefect.yaml"]).expect_code(2);
        assert!(refused.stderr.contains(says), "{what}: {}", refused.stderr);
        assert!(!p.path().join("flowgate.toml").exists(), "{what}: nothing written");
    }
}
