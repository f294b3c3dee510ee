//! Table tests of validation errors: each bad file gives the expected
//! `line:column` and a message naming the offending value.

use flowgate_config::{parse, ConfigError, ErrorKind};

/// A valid head every case extends: lines 1–5.
const HEAD: &str = "[project]\nname = \"acme\"\n\n[flows.etl]\nentrypoint = \"flows/etl.py:etl\"\n";

fn error_of(text: &str) -> ConfigError {
    match parse("flowgate.toml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn each_bad_value_is_reported_at_its_line_and_column() {
    // (what, text appended to HEAD (starts on line 6), expected "line:col", message fragment)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("unknown top-level key", "[projekt]\nname = \"x\"\n", "6:2", "unknown key `projekt` in `the top level`"),
        (
            "unknown flow key",
            "wrok_pool = \"x\"\n",
            "6:1",
            "unknown key `wrok_pool` in `[flows.etl]`; expected one of: entrypoint, flow_name, parameter_schema, python_path, depends, work_pool",
        ),
        (
            "unknown env key",
            "[envs.qa]\nprefect_url = \"x\"\n",
            "7:1",
            "unknown key `prefect_url` in `[envs.qa]`; expected one of: prefect_api_url",
        ),
        (
            "unknown env.flow key",
            "[envs.qa.flows.etl]\nentrypoint = \"a.py:b\"\n",
            "7:1",
            "unknown key `entrypoint` in `[envs.qa.flows.etl]`",
        ),
        (
            "unknown policy key",
            "[envs.qa]\npolicy = { branchez = [\"main\"] }\n",
            "7:12",
            "unknown key `branchez` in `[envs.qa].policy`; expected one of: branches, after",
        ),
        (
            "unknown rollout key",
            "[envs.qa]\nrollout = { wave = [] }\n",
            "7:13",
            "unknown key `wave` in `[envs.qa].rollout`",
        ),
        (
            "unknown verify key",
            "[envs.qa.rollout.verify]\nrun = 1\n",
            "7:1",
            "unknown key `run` in `[envs.qa].rollout.verify`",
        ),
        (
            "unknown schedule key",
            "schedules = [{ cron = \"0 3 * * *\", tz = \"UTC\" }]\n",
            "6:36",
            "unknown key `tz` in a schedule of `schedules` in `[flows.etl]`",
        ),
        (
            "schedule without a kind",
            "schedules = [{ timezone = \"UTC\" }]\n",
            "6:14",
            "needs exactly one of `cron`, `interval` or `rrule`; found none",
        ),
        (
            "schedule with two kinds",
            "schedules = [{ cron = \"0 3 * * *\", interval = 60 }]\n",
            "6:14",
            "found cron and interval",
        ),
        ("bad cron", "schedules = [{ cron = \"daily\" }]\n", "6:23", "`daily` is not a cron expression"),
        (
            "wrong type: string",
            "work_pool = 3\n",
            "6:13",
            "`work_pool` in `[flows.etl]` must be a string, found an integer `3`",
        ),
        (
            "wrong type: tags",
            "tags = \"etl\"\n",
            "6:8",
            "`tags` in `[flows.etl]` must be an array, found a string `\"etl\"`",
        ),
        (
            "wrong type: tag item",
            "tags = [\"a\", 2]\n",
            "6:14",
            "each item of `tags` in `[flows.etl]` must be a string, found an integer `2`",
        ),
        (
            "wrong type: parameters",
            "parameters = [1]\n",
            "6:14",
            "`parameters` in `[flows.etl]` must be a table, found an array `[1]`",
        ),
        ("wrong type: paused", "paused = \"yes\"\n", "6:10", "`paused` in `[flows.etl]` must be a boolean"),
        (
            "wrong type: pull step",
            "pull = [\"git_clone\"]\n",
            "6:9",
            "each step of `pull` in `[flows.etl]` must be a table with one key",
        ),
        (
            "unknown flow in env",
            "[envs.qa.flows.etll]\nwork_pool = \"x\"\n",
            "6:16",
            "`[envs.qa.flows.etll]` names unknown flow `etll`; flows: `etl`",
        ),
        (
            "unknown env in after",
            "[envs.prod]\npolicy = { after = \"qaa\" }\n[envs.qa]\n",
            "7:20",
            "names unknown env `qaa`; envs: `prod`, `qa`",
        ),
        ("after naming itself", "[envs.prod]\npolicy = { after = [\"prod\"] }\n", "7:21", "cannot name `prod`"),
        (
            "wave matching no flow",
            "[envs.qa]\nrollout = { waves = [[\"etl\"], [\"rep*\"]] }\n",
            "7:32",
            "pattern `rep*` of `waves` in `[envs.qa].rollout` matches no flow",
        ),
        ("bad duration", "[envs.qa]\npolicy = { soak = \"2 hours\" }\n", "7:19", "`2 hours` is not a duration"),
        (
            "bad failure rate",
            "[envs.qa]\npolicy = { max_failure_rate = 1.5 }\n",
            "7:31",
            "must be from 0 to 1, found `1.5`",
        ),
        (
            "bad placeholder",
            "work_pool = \"{comit}-pool\"\n",
            "6:13",
            "unknown placeholder `{comit}` in `{comit}-pool` (did you mean `{commit}`?)",
        ),
        (
            "unbalanced brace",
            "description = \"build {commit\"\n",
            "6:15",
            "unbalanced `{` at character 7 of `build {commit`",
        ),
        ("stray closing brace", "work_queue = \"q}\"\n", "6:14", "unbalanced `}` at character 2"),
        (
            "env in image",
            "image = \"ghcr.io/acme/flows:{env}\"\n",
            "6:9",
            "cannot use `{env}`: the image is pinned when the build is made",
        ),
        ("user in image", "image = \"ghcr.io/acme/{user}:{commit}\"\n", "6:9", "cannot use `{user}`"),
        (
            "image in an env",
            "[envs.qa]\nimage = \"x\"\n",
            "7:1",
            "`image` in `[envs.qa]` is not allowed: the image is pinned when the build is made",
        ),
        ("commit in name prefix", "[envs.qa]\nname_prefix = \"{short}-\"\n", "7:15", "cannot use `{short}`"),
        (
            "secret in prefect_auth",
            "[envs.qa]\nprefect_auth = { env = \"X\", token = \"s3cr3t\" }\n",
            "7:29",
            "`token` is not allowed in `prefect_auth` in `[envs.qa]`: it names the environment variable",
        ),
        (
            "prefect_auth as a string",
            "[envs.qa]\nprefect_auth = \"s3cr3t\"\n",
            "7:16",
            "must be a table: it names the environment variable",
        ),
        ("prefect_auth without env", "[envs.qa]\nprefect_auth = { scheme = \"basic\" }\n", "7:16", "needs `env`"),
        (
            "bad auth scheme",
            "[envs.qa]\nprefect_auth = { env = \"X\", scheme = \"digest\" }\n",
            "7:38",
            "`scheme` of `prefect_auth` in `[envs.qa]` is `digest`; expected `bearer` or `basic`",
        ),
        (
            "credentials in api url",
            "[envs.qa]\nprefect_api_url = \"https://u:p@h/api\"\n",
            "7:19",
            "must not hold credentials",
        ),
        (
            "api url not http",
            "[envs.qa]\nprefect_api_url = \"h/api\"\n",
            "7:19",
            "must start with `http://` or `https://` (it has no `scheme://`)",
        ),
        (
            "api url with a query",
            "[envs.qa]\nprefect_api_url = \"http://x/api?token=t0k3n\"\n",
            "7:19",
            "must not have a query or fragment",
        ),
        (
            "entrypoint without colon",
            "[flows.b]\nentrypoint = \"flows/b.py\"\n",
            "7:14",
            "`entrypoint` in `[flows.b]` `flows/b.py` has no `:`",
        ),
        ("entrypoint not python", "[flows.b]\nentrypoint = \"flows/b:main\"\n", "7:14", "names neither a `.py` file nor a dotted module"),
        (
            "entrypoint leaving the project",
            "[flows.b]\nentrypoint = \"../b.py:main\"\n",
            "7:14",
            "must be a relative path inside the project",
        ),
        ("flow without entrypoint", "[flows.b]\ntags = []\n", "6:8", "`[flows.b]` needs `entrypoint`"),
        (
            "bad flow name",
            "[flows.\"bad name\"]\nentrypoint = \"b.py:b\"\n",
            "6:8",
            "`bad name` is not a valid flow name",
        ),
        ("bad env name", "[envs.\"-qa\"]\n", "6:7", "`-qa` is not a valid environment name"),
        ("reserved env name", "[envs.dev-alice]\n", "6:7", "env name `dev-alice` is reserved"),
        ("TOML syntax", "work_pool = \n", "6:13", "invalid TOML"),
        ("duplicate key", "entrypoint = \"b.py:b\"\n", "6:1", "invalid TOML"),
    ];
    let mut failures = Vec::new();
    for (what, tail, at, fragment) in cases {
        let text = format!("{HEAD}{tail}");
        let err = error_of(&text);
        let shown = err.to_string();
        let expected_prefix = format!("flowgate.toml:{at}: ");
        if !shown.starts_with(&expected_prefix) || !shown.contains(fragment) {
            failures.push(format!("{what}:\n  expected `{expected_prefix}…{fragment}…`\n  got      `{shown}`"));
        }
        assert_eq!(err.kind(), ErrorKind::Invalid, "{what}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn project_level_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("[project]\nname = \"a\"\nwrok_pool = \"x\"\n", "3:1", "unknown key `wrok_pool` in `[project]`; expected one of: name, ledger, artifacts, include, exclude, pin_images"),
        ("[project]\nname = \"a\"\npin_images = \"yes\"\n", "3:14", "`pin_images` in `[project]` must be a boolean, found a string `\"yes\"`"),
        ("[project]\nname = \"a\"\n[flows.f]\nentrypoint = \"f.py:f\"\npin_images = true\n", "5:1", "unknown key `pin_images` in `[flows.f]`"),
        ("[project]\nname = \"a\"\ninclude = [\"flows/**\", \"lib/[\"]\n", "3:24", "pattern `lib/[` of `include` in `[project]` is not a valid glob"),
        ("[project]\nname = \"a\"\nexclude = \"tests\"\n", "3:11", "`exclude` in `[project]` must be an array"),
        ("[project]\nname = \"a\"\nledger = \"ledger.db\"\n", "3:10", "must be a URL like `scheme://…`, found `ledger.db`"),
        ("[project]\nname = \"\"\n", "2:8", "`name` in `[project]` must not be empty"),
        ("[project]\nledger = \"sqlite://x\"\n", "1:2", "`[project]` needs `name`"),
        ("[flows.a]\nentrypoint = \"a.py:a\"\n", "1:1", "missing the `[project]` table"),
        ("project = 1\n", "1:11", "`project` must be a table, found an integer `1`"),
    ];
    for (text, at, fragment) in cases {
        let shown = error_of(text).to_string();
        assert!(shown.starts_with(&format!("flowgate.toml:{at}: ")) && shown.contains(fragment), "{text}\n→ {shown}");
    }
}

/// `pin_images` is a `[project]` boolean, false unless set.
#[test]
fn pin_images_is_a_project_boolean_off_by_default() {
    let off = parse("flowgate.toml", HEAD).unwrap();
    assert!(!off.project.pin_images);
    let on =
        parse("flowgate.toml", &HEAD.replace("name = \"acme\"\n", "name = \"acme\"\npin_images = true\n")).unwrap();
    assert!(on.project.pin_images);
}

#[test]
fn columns_count_characters_not_bytes() {
    let shown = error_of("[project]\nname = \"é\"; x = 1\n").to_string();
    assert!(shown.starts_with("flowgate.toml:2:"), "{shown}");
    let shown = error_of("[project]\nname = \"a\"\ndescription = \"ééé\"\nwork_pool = 1\n").to_string();
    assert!(shown.starts_with("flowgate.toml:4:13: "), "{shown}");
    let shown = error_of("[project]\ndescription = \"ééé\" \nname = \"a\"\ntags = \"ééé\"\n").to_string();
    assert!(shown.starts_with("flowgate.toml:4:8: "), "{shown}");
    let shown = error_of("[project] # é\nname = \"a\"\n[flows.\"é\"]\n").to_string();
    assert!(shown.starts_with("flowgate.toml:3:8: "), "{shown}");
}

#[test]
fn a_missing_file_is_named_and_unreadable() {
    let err = flowgate_config::load(std::path::Path::new("/nonexistent/flowgate.toml")).unwrap_err();
    assert_eq!(err.to_string(), "Failed to read `/nonexistent/flowgate.toml`");
    assert_eq!(err.kind(), ErrorKind::Unreadable);
}

#[test]
fn the_design_example_parses() {
    let text = r#"
[project]
name = "acme-flows"
ledger = "sqlite://.flowgate/ledger.db"
artifacts = "file://.flowgate/artifacts"
image = "ghcr.io/acme/flows:{commit}"
include = ["flows/**", "lib/**", "pyproject.toml", "uv.lock"]
pin_images = true
exclude = ["**/tests/**"]

[flows.etl-daily]
entrypoint = "flows/etl.py:etl"
work_pool = "{env}-pool"
parameters = { days = 1 }
schedules = [{ cron = "0 3 * * *", timezone = "UTC" }]
tags = ["etl"]

[flows.report]
entrypoint = "flows/report.py:report"
image = "ghcr.io/acme/report:{commit}"

[envs.qa]
prefect_api_url = "https://prefect.acme.internal/api"
prefect_auth = { env = "PREFECT_QA_AUTH" }

[envs.prod]
prefect_api_url = "https://prefect-prod.acme.internal/api"
prefect_auth = { env = "PREFECT_PROD_API_KEY", scheme = "bearer" }
policy = { branches = ["main"], after = "qa", soak = "2h", min_successful_runs = 3, approval = true }
rollout = { waves = [["etl-daily"], ["*"]], verify = { runs = 1, timeout = "1h" } }

[envs.dev]
name_prefix = "dev-{user}-"
"#;
    let config = parse("flowgate.toml", text).unwrap();
    assert_eq!(config.project_name().as_str(), "acme-flows");
    assert!(config.project.pin_images);
    let names: Vec<String> = config.env_names().iter().map(ToString::to_string).collect();
    assert_eq!(names, ["qa", "prod", "dev"]);
    let shared: Vec<String> = config.shared_env_names().iter().map(ToString::to_string).collect();
    assert_eq!(shared, ["qa", "prod"]);
    let prod = config.env("prod").unwrap();
    assert_eq!(prod.policy.after[0].as_str(), "qa");
    assert_eq!(prod.policy.soak, Some(std::time::Duration::from_secs(7200)));
    assert_eq!(prod.policy.min_successful_runs, 3);
    assert_eq!(prod.policy.approvals, 1);
    let rollout = prod.rollout.as_ref().unwrap();
    assert_eq!(rollout.waves, vec![vec!["etl-daily".to_string()], vec!["*".to_string()]]);
    let verify = rollout.verify.as_ref().unwrap();
    assert_eq!((verify.runs, verify.timeout), (1, Some(std::time::Duration::from_secs(3600))));
    assert_eq!(prod.prefect_auth.as_ref().unwrap().env, "PREFECT_PROD_API_KEY");
    assert!(config.env("qa").unwrap().policy == Default::default());
}

#[test]
fn policy_freeze_windows_and_approval_counts() {
    let text = format!(
        "{HEAD}[envs.qa]\n[envs.prod]\npolicy = {{ after = [\"qa\"], approval = 2, allow_override = true, max_failure_rate = 0.1, \
         freeze = [{{ from = 2024-12-20T00:00:00Z, until = \"2025-01-02T00:00:00+01:00\", reason = \"holidays\" }}] }}\n"
    );
    let config = parse("flowgate.toml", &text).unwrap();
    let policy = &config.env("prod").unwrap().policy;
    assert_eq!(policy.approvals, 2);
    assert!(policy.allow_override);
    assert_eq!(policy.max_failure_rate, Some(0.1));
    let window = &policy.freeze[0];
    assert_eq!(window.from.to_rfc3339(), "2024-12-20T00:00:00+00:00");
    assert_eq!(window.until.to_rfc3339(), "2025-01-01T23:00:00+00:00");
    assert_eq!(window.reason.as_deref(), Some("holidays"));

    let bad = format!("{HEAD}[envs.qa]\npolicy = {{ freeze = [{{ from = 2024-12-20T00:00:00 }}] }}\n");
    let shown = error_of(&bad).to_string();
    assert!(shown.starts_with("flowgate.toml:7:31: ") && shown.contains("must be a datetime with offset"), "{shown}");
    let bad = format!("{HEAD}[envs.qa]\npolicy = {{ approval = \"yes\" }}\n");
    assert!(error_of(&bad).to_string().contains("must be `true`, `false` or a number of approvals"));
}

/// Issue 15: `concurrency_limit` and `enforce_parameter_schema`, on any layer,
/// each bad value reported at its line and column.
#[test]
fn issue_15_concurrency_limit_and_enforce_parameter_schema_are_checked() {
    let cases: &[(&str, &str, &str)] = &[
        ("concurrency_limit = 0\n", "6:21", "`concurrency_limit` in `[flows.etl]` must be a whole number from 1 up, found `0`"),
        ("concurrency_limit = -2\n", "6:21", "must be a whole number from 1 up, found `-2`"),
        ("concurrency_limit = \"2\"\n", "6:21", "`concurrency_limit` in `[flows.etl]` must be a whole number from 1 up, or a table like `{ limit = 2, collision_strategy = \"CANCEL_NEW\" }`, found a string"),
        ("concurrency_limit = 1.5\n", "6:21", "must be a whole number from 1 up, or a table"),
        ("concurrency_limit = { limit = 0 }\n", "6:31", "`limit` of `concurrency_limit` in `[flows.etl]` must be a whole number from 1 up, found `0`"),
        ("concurrency_limit = { limit = \"2\" }\n", "6:31", "`limit` of `concurrency_limit` in `[flows.etl]` must be a whole number from 1 up, found a string"),
        ("concurrency_limit = { collision_strategy = \"ENQUEUE\" }\n", "6:21", "`concurrency_limit` in `[flows.etl]` needs `limit`"),
        (
            "concurrency_limit = { limit = 2, collision_strategy = \"cancel\" }\n",
            "6:55",
            "`collision_strategy` of `concurrency_limit` in `[flows.etl]` is `cancel`; expected `ENQUEUE` or `CANCEL_NEW`",
        ),
        ("concurrency_limit = { limit = 2, collision_strategy = 1 }\n", "6:55", "must be a string, found an integer `1`"),
        ("concurrency_limit = { limit = 2, grace_period_seconds = 30 }\n", "6:57", "`grace_period_seconds` of `concurrency_limit` in `[flows.etl]` must be from 60 to 86400 seconds, found `30`"),
        ("concurrency_limit = { limit = 2, grace_period_seconds = \"1m\" }\n", "6:57", "must be a whole number of seconds"),
        (
            "concurrency_limit = { limit = 2, strategy = \"ENQUEUE\" }\n",
            "6:34",
            "unknown key `strategy` in `concurrency_limit` in `[flows.etl]`; expected one of: limit, collision_strategy, grace_period_seconds",
        ),
        ("[envs.qa]\nconcurrency_limit = 0\n", "7:21", "`concurrency_limit` in `[envs.qa]` must be a whole number from 1 up"),
        ("[envs.qa.flows.etl]\nconcurrency_limit = { limit = -1 }\n", "7:31", "`limit` of `concurrency_limit` in `[envs.qa.flows.etl]`"),
        ("enforce_parameter_schema = \"yes\"\n", "6:28", "`enforce_parameter_schema` in `[flows.etl]` must be a boolean, found a string"),
        ("[envs.qa]\nenforce_parameter_schema = 1\n", "7:28", "`enforce_parameter_schema` in `[envs.qa]` must be a boolean"),
    ];
    let mut failures = Vec::new();
    for (tail, at, fragment) in cases {
        let err = error_of(&format!("{HEAD}{tail}"));
        let shown = err.to_string();
        let expected_prefix = format!("flowgate.toml:{at}: ");
        if !shown.starts_with(&expected_prefix) || !shown.contains(fragment) {
            failures.push(format!("{tail}  expected `{expected_prefix}…{fragment}…`\n  got      `{shown}`"));
        }
        assert_eq!(err.kind(), ErrorKind::Invalid, "{tail}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let project = "[project]\nname = \"a\"\nconcurrency_limit = 0\n";
    assert!(error_of(project).to_string().starts_with("flowgate.toml:3:21: "), "{}", error_of(project));
}
