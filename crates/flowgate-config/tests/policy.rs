//! Table tests of the policy keys added with gate evaluation: `separate_approver`,
//! and the gates that count upstream (`soak`, `min_successful_runs`,
//! `max_failure_rate`) needing `after`, each error located at its key.

use flowgate_config::{parse, ErrorKind, Policy};

/// A valid head every case extends: lines 1–7, with envs `qa` and `prod`.
const HEAD: &str = "[project]\nname = \"acme\"\n\n[flows.etl]\nentrypoint = \"flows/etl.py:etl\"\n\n[envs.qa]\n";

fn policy_of(tail: &str) -> Policy {
    let text = format!("{HEAD}{tail}");
    let config = parse("flowgate.toml", &text).unwrap_or_else(|e| panic!("{e}\nfor:\n{text}"));
    config.env("prod").unwrap().policy.clone()
}

#[test]
fn upstream_gates_without_after_are_errors_at_their_key() {
    // (what, text appended to HEAD (starts on line 8), expected "line:col", message fragment)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "soak",
            "[envs.prod]\npolicy = { soak = \"2h\" }\n",
            "9:12",
            "`soak` in `[envs.prod].policy` needs `after`: the env whose runs/soak are counted",
        ),
        (
            "min_successful_runs",
            "[envs.prod]\npolicy = { approval = true, min_successful_runs = 3 }\n",
            "9:29",
            "`min_successful_runs` in `[envs.prod].policy` needs `after`",
        ),
        (
            "max_failure_rate",
            "[envs.prod]\npolicy = { max_failure_rate = 0.1 }\n",
            "9:12",
            "`max_failure_rate` in `[envs.prod].policy` needs `after`",
        ),
        ("after left empty", "[envs.prod]\npolicy = { after = [], soak = \"1h\" }\n", "9:24", "`soak` in"),
        (
            "policy as its own table",
            "[envs.prod.policy]\nbranches = [\"main\"]\nmin_successful_runs = 2\n",
            "10:1",
            "`min_successful_runs` in `[envs.prod].policy` needs `after`",
        ),
        (
            "separate_approver not a boolean",
            "[envs.prod]\npolicy = { approval = 1, separate_approver = \"yes\" }\n",
            "9:46",
            "`separate_approver` in `[envs.prod].policy` must be a boolean, found a string `\"yes\"`",
        ),
    ];
    let mut failures = Vec::new();
    for (what, tail, at, fragment) in cases {
        let text = format!("{HEAD}{tail}");
        let err = match parse("flowgate.toml", &text) {
            Ok(_) => {
                failures.push(format!("{what}: expected an error"));
                continue;
            }
            Err(e) => e,
        };
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
fn upstream_gates_with_after_parse_in_any_key_order() {
    let p = policy_of(
        "[envs.prod]\npolicy = { soak = \"2h\", min_successful_runs = 3, max_failure_rate = 0, after = \"qa\" }\n",
    );
    assert_eq!(p.after.iter().map(|e| e.as_str()).collect::<Vec<_>>(), ["qa"]);
    assert_eq!(p.soak, Some(std::time::Duration::from_secs(7200)));
    assert_eq!((p.min_successful_runs, p.max_failure_rate), (3, Some(0.0)));
    assert!(!p.separate_approver);
}

#[test]
fn separate_approver_is_read_and_is_not_a_gate_alone() {
    let p = policy_of("[envs.prod]\npolicy = { approval = 2, separate_approver = true }\n");
    assert!(p.separate_approver);
    assert_eq!(p.approvals, 2);
    let p = policy_of("[envs.prod]\npolicy = { separate_approver = true }\n");
    assert!(p.separate_approver && !p.has_gates());
}

#[test]
fn the_policy_type_is_the_one_gate_evaluation_reads() {
    // The config re-exports the core's type: no conversion sits between them.
    let p: flowgate_core::Policy = policy_of("[envs.prod]\npolicy = { branches = [\"main\"] }\n");
    assert!(p.branch_allowed(Some("main")) && !p.branch_allowed(Some("dev")));
    assert_eq!(flowgate_config::parse_duration("1h30m"), flowgate_core::parse_duration("1h30m"));
}

#[test]
fn provenance_is_read_and_its_mistakes_are_named() {
    let p =
        policy_of("[envs.prod]\npolicy = { provenance = { ref = \"refs/heads/main\", repository = \"acme/*\" } }\n");
    let rule = p.provenance.clone().expect("a provenance rule");
    assert_eq!((rule.git_ref.as_str(), rule.repository.as_deref()), ("refs/heads/main", Some("acme/*")));
    assert!(p.has_gates());
    let cases = [
        ("policy = { provenance = { repository = \"acme/flows\" } }", "needs `ref`"),
        ("policy = { provenance = { ref = \"refs/heads/main\", branch = \"main\" } }", "unknown key `branch`"),
        ("policy = { provenance = { ref = \"\" } }", "`ref` of"),
        ("policy = { provenance = { ref = \"refs/heads/[main\" } }", "`refs/heads/[main` is not a valid glob"),
        ("policy = { provenance = \"refs/heads/main\" }", "a table like"),
    ];
    for (line, fragment) in cases {
        let text = format!("{HEAD}[envs.prod]\n{line}\n");
        let err = parse("flowgate.toml", &text).expect_err(line).to_string();
        assert!(err.starts_with("flowgate.toml:9:") && err.contains(fragment), "{line}: {err}");
    }
}
