//! Commands that must fail: each case checks the exit code, that stderr names
//! the offending value (in backticks, or as `flowgate.toml:LINE:COL`), that the
//! `--json` form prints exactly one JSON document with `error.exit_code`, and
//! that the ledger and the artifact store are byte-for-byte what they were.

mod common;

use common::{record_crafted_build, run, state};
use flowgate_testkit::GitProject;

struct Case {
    name: &'static str,
    /// Changes the project before the command (the "before" state is taken after it).
    setup: fn(&GitProject),
    args: &'static [&'static str],
    code: i32,
    /// Text stderr must contain; `{root}` stands for the project directory.
    needle: &'static str,
}

fn nothing(_: &GitProject) {}

fn replace_in_config(p: &GitProject, from: &str, to: &str) {
    let text = p.read("flowgate.toml");
    assert!(text.contains(from), "the example config has no `{from}`");
    p.write("flowgate.toml", &text.replacen(from, to, 1));
}

const CASES: &[Case] = &[
    Case {
        name: "unknown flow",
        setup: nothing,
        args: &["release", "nosuch", "--env", "qa", "--build", "HEAD"],
        code: 2,
        needle: "`nosuch`",
    },
    Case {
        name: "unknown env",
        setup: nothing,
        args: &["release", "report", "--env", "staging", "--build", "HEAD"],
        code: 2,
        needle: "`staging`",
    },
    Case {
        name: "unknown env in diff",
        setup: nothing,
        args: &["diff", "qa", "staging"],
        code: 2,
        needle: "`staging`",
    },
    Case {
        name: "unknown build",
        setup: nothing,
        args: &["release", "report", "--env", "qa", "--build", "feedfacefeed"],
        code: 2,
        needle: "`feedfacefeed`",
    },
    Case {
        name: "unknown build in show",
        setup: nothing,
        args: &["show", "nosuchref"],
        code: 2,
        needle: "`nosuchref`",
    },
    Case {
        name: "ambiguous build prefix",
        setup: |p| {
            let head = p.git(&["rev-parse", "HEAD"]).trim().to_string();
            record_crafted_build(p, "abcd0000000000000001", &head);
            record_crafted_build(p, "abcd0000000000000002", &head);
        },
        args: &["release", "report", "--env", "qa", "--build", "abcd"],
        code: 2,
        needle: "`abcd`",
    },
    Case {
        name: "too-short build prefix",
        setup: nothing,
        args: &["release", "report", "--env", "qa", "--build", "abc"],
        code: 2,
        needle: "`abc`",
    },
    Case {
        name: "malformed toml",
        setup: |p| replace_in_config(p, "name = \"acme-flows\"", "name = \"acme-flows"),
        args: &["status"],
        code: 2,
        needle: "flowgate.toml:2:19",
    },
    Case {
        name: "unknown key in toml",
        setup: |p| {
            replace_in_config(p, "entrypoint = \"flows/report.py:report\"", "entrypont = \"flows/report.py:report\"")
        },
        args: &["status"],
        code: 2,
        needle: "`entrypont`",
    },
    Case {
        name: "dirty tree without --allow-dirty",
        setup: |p| p.write("lib/common.py", "MARKER = \"dirty\"\n"),
        args: &["build"],
        code: 2,
        needle: "`lib/common.py`",
    },
    Case {
        name: "missing store directory",
        setup: |p| {
            replace_in_config(p, "[project]\n", "[project]\nartifacts = \"file:///nonexistent/flowgate-store\"\n");
            p.commit("Point at a store that does not exist");
        },
        args: &["build"],
        code: 2,
        needle: "`file:///nonexistent/flowgate-store`",
    },
    Case {
        name: "unreadable ledger",
        setup: |p| {
            let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(p.path().join(format!(".flowgate/ledger.db{suffix}")));
            }
            std::fs::write(p.path().join(".flowgate/ledger.db"), garbage).unwrap();
        },
        args: &["status"],
        code: 1,
        needle: "{root}/.flowgate/ledger.db`",
    },
    Case {
        name: "rollback with no earlier revision",
        setup: nothing,
        args: &["rollback", "report", "--env", "qa"],
        code: 2,
        needle: "`report`",
    },
    Case {
        name: "rollback to a revision that does not exist",
        setup: nothing,
        args: &["rollback", "report", "--env", "qa", "--to", "7"],
        code: 2,
        needle: "7",
    },
    Case {
        name: "rollback of a flow never released in the env",
        setup: nothing,
        args: &["rollback", "cleanup", "--env", "prod"],
        code: 2,
        needle: "`prod`",
    },
    Case {
        name: "rollback to the current revision",
        setup: nothing,
        args: &["rollback", "cleanup", "--env", "qa", "--to", "1"],
        code: 2,
        needle: "`cleanup`",
    },
    Case {
        name: "image for an unknown flow",
        setup: nothing,
        args: &["build", "--image", "nosuch=ghcr.io/acme/x:1"],
        code: 2,
        needle: "`nosuch`",
    },
    Case {
        name: "promote from an env with no releases",
        setup: nothing,
        args: &["promote", "--from", "prod", "--to", "qa"],
        code: 2,
        needle: "`prod`",
    },
    Case {
        name: "release refused by the env's branch gate",
        setup: |p| {
            replace_in_config(
                p,
                "work_pool = \"prod-pool\"\n",
                "work_pool = \"prod-pool\"\npolicy = { branches = [\"release/*\"] }\n",
            )
        },
        args: &["release", "report", "--env", "prod", "--build", "HEAD"],
        code: 3,
        needle: "`release/*`",
    },
    Case {
        name: "malformed command line",
        setup: nothing,
        args: &["rollback", "report", "--env", "qa", "--to", "x1"],
        code: 2,
        needle: "'x1'",
    },
    Case { name: "unknown subcommand", setup: nothing, args: &["relase", "report"], code: 2, needle: "'relase'" },
];

/// The example project with one build released to qa (prod has nothing).
fn released_project() -> GitProject {
    let p = GitProject::example();
    run(&p, &["build"]).success();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    p
}

#[test]
fn bad_input_fails_with_its_code_names_the_value_and_changes_nothing() {
    let mut failures = Vec::new();
    for case in CASES {
        let p = released_project();
        (case.setup)(&p);
        let needle = case.needle.replace("{root}", &p.path().display().to_string());
        let before = state(&p);

        let text = run(&p, case.args);
        let mut json_args = case.args.to_vec();
        json_args.push("--json");
        let json = run(&p, &json_args);
        let after = state(&p);

        let mut problems = Vec::new();
        if text.code != case.code || json.code != case.code {
            problems.push(format!("exit codes {} and {} (--json), expected {}", text.code, json.code, case.code));
        }
        if !text.stderr.contains(&needle) {
            problems.push(format!("stderr does not contain {needle:?}"));
        }
        if !text.stdout.is_empty() {
            problems.push("text mode printed on stdout".into());
        }
        match serde_json::from_str::<serde_json::Value>(&json.stdout) {
            Ok(doc) => {
                if doc["error"]["exit_code"].as_i64() != Some(i64::from(case.code)) {
                    problems.push(format!("--json document has the wrong error.exit_code: {doc}"));
                }
                if !doc["error"]["message"].as_str().is_some_and(|m| m.contains(&needle)) {
                    problems.push(format!("--json error.message does not contain {needle:?}: {doc}"));
                }
            }
            Err(e) => problems.push(format!("--json stdout is not one JSON document ({e}): {:?}", json.stdout)),
        }
        if before != after {
            problems.push("the ledger or the artifact store changed".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n  stderr: {}", case.name, problems.join("; "), text.stderr.trim()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// A staged rename is listed by both of its paths, each whole (git's `-z` output
/// gives the source path as a field without status columns).
#[test]
fn a_dirty_rename_names_both_paths() {
    let p = released_project();
    p.git(&["mv", "lib/common.py", "lib/moved.py"]);
    let before = state(&p);
    let refused = run(&p, &["build"]).expect_code(2);
    assert!(refused.stderr.contains("(`lib/moved.py`, `lib/common.py`)"), "{}", refused.stderr);
    assert_eq!(state(&p), before);
}
