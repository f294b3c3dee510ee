//! The layered merge, template rendering, env selection and file selection,
//! each tested through the public API on small configs.

use flowgate_config::{parse, select_env, Config, EnvSource, Template, TemplateError, TemplateVars};
use flowgate_core::FlowKey;
use serde_json::json;

const LAYERED: &str = r#"
[project]
name = "acme"
work_pool = "default-pool"
description = "{flow} at {short}"
tags = ["acme", "shared"]
parameters = { days = 1, db = { host = "db", port = 5432 } }
job_variables = { env = { A = "1" } }
schedules = [{ cron = "0 1 * * *" }]
pull = [{ "prefect.deployments.steps.pip_install_requirements" = { requirements_file = "requirements.txt" } }]

[flows.etl]
entrypoint = "flows/etl.py:etl"
flow_name = "ETL"
work_pool = "{env}-pool"
tags = ["etl", "acme"]
parameters = { db = { port = 6543 }, token = "{{ prefect.blocks.secret.db-token }}" }

[flows.report]
entrypoint = "flows/report.py:report"
deployment_name = "daily-{flow}"

[envs.qa]
prefect_api_url = "https://prefect.example/api"
work_queue = "qa-queue"
tags = ["qa", "etl"]
job_variables = { env = { B = "{{ $QA_B }}" } }
parameters = { days = 2 }
paused = true

[envs.qa.flows.etl]
parameters = { db = { host = "qa-db" } }
schedules = []
tags = ["critical"]

[envs.dev]
name_prefix = "sandbox-{user}-"
"#;

fn config() -> Config {
    parse("flowgate.toml", LAYERED).unwrap()
}

fn key(s: &str) -> FlowKey {
    s.parse().unwrap()
}

fn vars() -> TemplateVars {
    TemplateVars::for_build("0123456789abcdef0123456789abcdef01234567", Some("main"), &key("etl"))
}

#[test]
fn layers_merge_project_flow_env_env_flow() {
    let config = config();
    let qa = select_env(Some("qa"), None, &config, "alice").unwrap();
    let d = config.deployment(&key("etl"), &qa, &vars()).unwrap();
    assert_eq!(d.deployment_name, "etl");
    assert_eq!(d.flow_name.as_deref(), Some("ETL"));
    assert_eq!(d.entrypoint, "flows/etl.py:etl");
    // Scalars: the latest layer that sets one wins; templates rendered with flow and env.
    assert_eq!(d.work_pool.as_deref(), Some("qa-pool"));
    assert_eq!(d.work_queue.as_deref(), Some("qa-queue"));
    assert_eq!(d.description.as_deref(), Some("etl at 0123456789ab"));
    assert_eq!(d.paused, Some(true));
    // Maps merge key by key, recursively; Prefect templates pass through untouched.
    assert_eq!(
        serde_json::Value::Object(d.parameters),
        json!({ "days": 2, "db": { "host": "qa-db", "port": 6543 }, "token": "{{ prefect.blocks.secret.db-token }}" })
    );
    assert_eq!(serde_json::Value::Object(d.job_variables), json!({ "env": { "A": "1", "B": "{{ $QA_B }}" } }));
    // Tags: ordered union without repeats.
    assert_eq!(d.tags, ["acme", "shared", "etl", "qa", "critical"]);
    // Lists other than tags are replaced, even by an empty list.
    assert!(d.schedules.is_empty());
    assert_eq!(d.pull.len(), 1);
}

#[test]
fn a_flow_without_overrides_gets_project_and_env_values() {
    let config = config();
    let qa = select_env(Some("qa"), None, &config, "alice").unwrap();
    let d = config.deployment(&key("report"), &qa, &vars()).unwrap();
    assert_eq!(d.deployment_name, "daily-report");
    assert_eq!(d.work_pool.as_deref(), Some("default-pool"));
    assert_eq!(d.tags, ["acme", "shared", "qa", "etl"]);
    assert_eq!(d.schedules.len(), 1);
    assert_eq!(serde_json::Value::Object(d.parameters), json!({ "days": 2, "db": { "host": "db", "port": 5432 } }));
}

#[test]
fn personal_env_prefixes_deployment_names() {
    let config = config();
    let dev = select_env(None, None, &config, "Alice Smith").unwrap();
    let d = config.deployment(&key("report"), &dev, &vars()).unwrap();
    assert_eq!(d.deployment_name, "sandbox-alice-smith-daily-report");
    assert_eq!(d.work_pool.as_deref(), Some("default-pool"));
    assert_eq!(d.paused, None);
}

#[test]
fn the_personal_ledger_name_selects_only_your_own_personal_env() {
    let config = config();
    let own = select_env(Some("dev-alice"), None, &config, "alice").unwrap();
    assert!(own.personal);
    assert_eq!(own.ledger_name.as_str(), "dev-alice");
    // Someone else's personal env is not reachable by name.
    assert!(select_env(Some("dev-bob"), None, &config, "alice").is_err());
}

#[test]
fn a_missing_template_value_is_an_error_naming_it() {
    let text = LAYERED.replace("description = \"{flow} at {short}\"", "description = \"from {branch}\"");
    let config = parse("flowgate.toml", &text).unwrap();
    let qa = select_env(Some("qa"), None, &config, "alice").unwrap();
    let detached = TemplateVars::for_build("abc", None, &key("etl"));
    let err = config.deployment(&key("etl"), &qa, &detached).unwrap_err();
    assert_eq!(err.to_string(), "Failed to render `description` of flow `etl`");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(source, "`{branch}` in `from {branch}` has no value here");
}

#[test]
fn build_image_prefers_the_flow_image_and_renders_build_values() {
    let text = r#"
[project]
name = "acme"
image = "ghcr.io/acme/flows:{short}"
[flows.etl]
entrypoint = "etl.py:etl"
[flows.report]
entrypoint = "report.py:report"
image = "ghcr.io/acme/{flow}:{branch}-{commit}"
"#;
    let config = parse("flowgate.toml", text).unwrap();
    let v = TemplateVars::for_build("0123456789abcdef", Some("main"), &key("etl"));
    assert_eq!(config.build_image(&key("etl"), &v).unwrap().as_deref(), Some("ghcr.io/acme/flows:0123456789ab"));
    assert_eq!(
        config.build_image(&key("report"), &v).unwrap().as_deref(),
        Some("ghcr.io/acme/report:main-0123456789abcdef")
    );
    let detached = TemplateVars::for_build("0123456789abcdef", None, &key("report"));
    assert!(config.build_image(&key("report"), &detached).is_err());
    let none = parse("flowgate.toml", "[project]\nname = \"a\"\n[flows.etl]\nentrypoint = \"etl.py:etl\"\n").unwrap();
    assert_eq!(none.build_image(&key("etl"), &v).unwrap(), None);
    assert!(none.build_image(&key("nope"), &v).unwrap_err().to_string().contains("unknown flow `nope`"));
}

#[test]
fn templates_parse_render_and_escape() {
    let t = Template::parse("{{literal}} {flow}-{env}/{user}:{commit}@{short}#{branch}").unwrap();
    let vars = TemplateVars {
        commit: Some("c".into()),
        short: Some("s".into()),
        branch: Some("b".into()),
        flow: Some("f".into()),
        env: Some("e".into()),
        user: Some("u".into()),
        environment: true,
    };
    assert_eq!(t.render(&vars).unwrap(), "{literal} f-e/u:c@s#b");
    // `{$NAME}` reads the environment of the process making the build.
    let from_env = Template::parse("{$CARGO_PKG_NAME}-{flow}").unwrap();
    assert_eq!(from_env.render(&vars).unwrap(), "flowgate-config-f");
    assert_eq!(from_env.variables().collect::<Vec<_>>(), ["CARGO_PKG_NAME"]);
    let err = Template::parse("{$1BAD}").unwrap_err().to_string();
    assert!(err.contains("`{$1BAD}`") && err.contains("not an environment variable name"), "{err}");
    assert_eq!(Template::parse("plain").unwrap().render(&TemplateVars::default()).unwrap(), "plain");
    let raw = "{{ $ENV }} {x}";
    assert_eq!(Template::parse(&Template::escape(raw)).unwrap().render(&TemplateVars::default()).unwrap(), raw);

    let err = Template::parse("{brnch}").unwrap_err();
    assert!(matches!(&err, TemplateError::UnknownPlaceholder { suggestion: Some("branch"), .. }), "{err:?}");
    let err = Template::parse("{nothing}").unwrap_err();
    assert!(matches!(&err, TemplateError::UnknownPlaceholder { suggestion: None, .. }), "{err:?}");
    assert!(err.to_string().contains("known placeholders: `{commit}`, `{short}`"), "{err}");
    assert!(matches!(Template::parse("a{").unwrap_err(), TemplateError::Unbalanced { brace: '{', position: 2, .. }));
    assert!(matches!(Template::parse("{a{b}").unwrap_err(), TemplateError::Unbalanced { brace: '{', .. }));
    assert!(matches!(Template::parse("}").unwrap_err(), TemplateError::Unbalanced { brace: '}', position: 1, .. }));
    let err = Template::parse("{env}").unwrap().render(&TemplateVars::default()).unwrap_err();
    assert_eq!(err.to_string(), "`{env}` in `{env}` has no value here");
}

#[test]
fn env_selection_flag_then_variable_then_personal() {
    let config = config();
    let flag = select_env(Some("qa"), Some("dev"), &config, "alice").unwrap();
    assert_eq!((flag.config_name.as_str(), flag.ledger_name.as_str(), flag.source), ("qa", "qa", EnvSource::Flag));
    assert!(!flag.personal && flag.name_prefix.is_empty() && !flag.is_ledger_only());

    let var = select_env(None, Some("qa"), &config, "alice").unwrap();
    assert_eq!((var.ledger_name.as_str(), var.source), ("qa", EnvSource::Variable));

    let personal = select_env(None, None, &config, "alice").unwrap();
    assert_eq!(personal.ledger_name.as_str(), "dev-alice");
    assert_eq!(personal.name_prefix, "sandbox-alice-");
    assert!(personal.personal && personal.is_ledger_only());
    assert_eq!(personal.source, EnvSource::Personal);

    // `--env dev` is the personal env of the current user too.
    let dev = select_env(Some("dev"), None, &config, "bob").unwrap();
    assert_eq!((dev.ledger_name.as_str(), dev.personal, dev.source), ("dev-bob", true, EnvSource::Flag));

    // An empty variable counts as unset.
    assert_eq!(select_env(None, Some(""), &config, "alice").unwrap().source, EnvSource::Personal);
}

#[test]
fn unknown_envs_list_the_known_ones() {
    let err = select_env(Some("prod"), None, &config(), "alice").unwrap_err();
    assert_eq!(err.to_string(), "unknown environment `prod`; known environments: `qa`, `dev`");
    let bare = parse("flowgate.toml", "[project]\nname = \"a\"\n").unwrap();
    let err = select_env(None, Some("qa"), &bare, "alice").unwrap_err();
    assert_eq!(err.to_string(), "unknown environment `qa`; known environments: `dev`");
}

#[test]
fn implicit_dev_env_and_user_sanitizing() {
    let bare = parse("flowgate.toml", "[project]\nname = \"a\"\n").unwrap();
    let cases = [
        ("alice", "dev-alice", "dev-alice-"),
        ("Alice.Smith@Corp.example", "dev-alice-smith-corp-example", "dev-alice-smith-corp-example-"),
        ("DOMAIN\\Bob", "dev-domain-bob", "dev-domain-bob-"),
        ("__", "dev-unknown", "dev-unknown-"),
        ("jörg", "dev-j-rg", "dev-j-rg-"),
    ];
    for (user, ledger, prefix) in cases {
        let env = select_env(None, None, &bare, user).unwrap();
        assert_eq!((env.ledger_name.as_str(), env.name_prefix.as_str()), (ledger, prefix), "{user}");
        assert!(env.is_ledger_only());
    }
    let long = "x".repeat(100);
    assert_eq!(select_env(None, None, &bare, &long).unwrap().ledger_name.as_str().len(), 63);
}

#[test]
fn select_files_applies_include_then_exclude() {
    let tracked: Vec<String> = [
        "flowgate.toml",
        "pyproject.toml",
        "flows/etl.py",
        "flows/tests/test_etl.py",
        "lib/util/x.py",
        "docs/index.md",
        "notes.py",
        "sub/notes.py",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let with = |include: &str, exclude: &str| {
        let text = format!("[project]\nname = \"a\"\n{include}\n{exclude}\n");
        parse("flowgate.toml", &text).unwrap().select_files(&tracked)
    };
    assert_eq!(with("", ""), tracked);
    assert_eq!(with("include = []", ""), tracked);
    assert_eq!(
        with("include = [\"flows/**\", \"lib\", \"pyproject.toml\"]", "exclude = [\"**/tests/**\"]"),
        ["pyproject.toml", "flows/etl.py", "lib/util/x.py"]
    );
    // `*` stays within one directory; a directory pattern takes what is below it.
    assert_eq!(with("include = [\"*.py\"]", ""), ["notes.py"]);
    assert_eq!(
        with("include = [\"**/*.py\"]", "exclude = [\"flows/tests/\", \"sub\"]"),
        ["flows/etl.py", "lib/util/x.py", "notes.py"]
    );
    assert_eq!(
        with("", "exclude = [\"docs/**\", \"*.toml\"]"),
        ["flows/etl.py", "flows/tests/test_etl.py", "lib/util/x.py", "notes.py", "sub/notes.py"]
    );
}

#[test]
fn debug_output_redacts_database_passwords() {
    let config =
        parse("flowgate.toml", "[project]\nname = \"a\"\nledger = \"postgres://flow:hunter2@db.internal/flows\"\n")
            .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("postgres://flow:***@db.internal/flows"), "{debug}");
    assert_eq!(config.project.ledger, "postgres://flow:hunter2@db.internal/flows");
}

#[test]
fn parameter_schema_and_work_pool_type_come_from_config() {
    let text = r#"
[project]
name = "acme"
work_pool_type = "process"

[flows.etl]
entrypoint = "flows/etl.py:etl"
parameter_schema = { type = "object", properties = { days = { type = "integer" } } }

[flows.report]
entrypoint = "flows/report.py:report"

[envs.qa]
work_pool_type = "docker"

[envs.qa.flows.report]
work_pool_type = "kubernetes"
"#;
    let config = parse("flowgate.toml", text).unwrap();
    let qa = select_env(Some("qa"), None, &config, "alice").unwrap();
    let etl = config.deployment(&key("etl"), &qa, &vars()).unwrap();
    assert_eq!(
        etl.parameter_schema.map(serde_json::Value::Object),
        Some(json!({ "type": "object", "properties": { "days": { "type": "integer" } } }))
    );
    assert_eq!(etl.work_pool_type.as_deref(), Some("docker"));
    let report = config.deployment(&key("report"), &qa, &vars()).unwrap();
    assert_eq!(report.parameter_schema, None);
    assert_eq!(report.work_pool_type.as_deref(), Some("kubernetes"));
    let dev = select_env(None, None, &config, "alice").unwrap();
    assert_eq!(config.deployment(&key("report"), &dev, &vars()).unwrap().work_pool_type.as_deref(), Some("process"));
    // A schema that is not a table is refused with its location.
    let bad = text.replace("parameter_schema = {", "parameter_schema = \"x\"\nignored = {");
    let err = parse("flowgate.toml", &bad).unwrap_err().to_string();
    assert!(err.contains("parameter_schema"), "{err}");
}

/// Issue 15: the concurrency limit is one value a later layer replaces whole;
/// `enforce_parameter_schema` is a scalar like `paused`.
#[test]
fn issue_15_concurrency_limit_and_enforce_parameter_schema_layer() {
    use flowgate_core::{CollisionStrategy, ConcurrencyLimit};
    let text = r#"
[project]
name = "acme"
concurrency_limit = { limit = 4, collision_strategy = "CANCEL_NEW", grace_period_seconds = 120 }

[flows.etl]
entrypoint = "flows/etl.py:etl"
enforce_parameter_schema = false

[flows.report]
entrypoint = "flows/report.py:report"
concurrency_limit = 1

[envs.qa]
prefect_api_url = "https://prefect.example/api"

[envs.prod]
prefect_api_url = "https://prefect.example/api"
enforce_parameter_schema = true

[envs.prod.flows.etl]
concurrency_limit = { limit = 2 }
"#;
    let config = parse("flowgate.toml", text).unwrap();
    let qa = select_env(Some("qa"), None, &config, "alice").unwrap();
    let prod = select_env(Some("prod"), None, &config, "alice").unwrap();
    let at = |flow: &str, env| config.deployment(&key(flow), env, &vars()).unwrap();
    let project = ConcurrencyLimit {
        limit: 4,
        collision_strategy: Some(CollisionStrategy::CancelNew),
        grace_period_seconds: Some(120),
    };
    let plain = |limit| ConcurrencyLimit { limit, collision_strategy: None, grace_period_seconds: None };
    assert_eq!(at("etl", &qa).concurrency_limit, Some(project));
    assert_eq!(at("etl", &qa).enforce_parameter_schema, Some(false));
    assert_eq!(at("etl", &prod).concurrency_limit, Some(plain(2)), "replaced whole, not merged key by key");
    assert_eq!(at("etl", &prod).enforce_parameter_schema, Some(true));
    assert_eq!(at("report", &qa).concurrency_limit, Some(plain(1)));
    assert_eq!(at("report", &qa).enforce_parameter_schema, None, "unset: Prefect's default");
    let none = parse("flowgate.toml", LAYERED).unwrap();
    let d = none.deployment(&key("etl"), &select_env(Some("qa"), None, &none, "alice").unwrap(), &vars()).unwrap();
    assert_eq!((d.concurrency_limit, d.enforce_parameter_schema), (None, None));
}
