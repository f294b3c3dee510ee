//! One full release cycle through the real binary in a temporary git repository:
//! init, build, release, promote, change, build, release, rollback, then every
//! read command. Text and JSON outputs are snapshots with the two builds and two
//! commits named (`[B1]`, `[B2]`, `[C1]`, `[C2]`) so the snapshots show which
//! build each pointer holds; the semantic facts are asserted on the JSON.

mod common;

use common::{filters, ledger_dump, pairs, run};
use flowgate_testkit::GitProject;
use serde_json::Value;

/// Filters naming the cycle's builds and commits, in every length they print in.
fn named(ids: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (id, name) in ids {
        for len in [40, 20, 12, 8, 7] {
            if id.len() >= len {
                out.push((format!(r"\b{}\b", &id[..len]), format!("[{name}]")));
            }
        }
    }
    out
}

/// Ages ("0s", "12s") change the width of table columns; tables that show
/// ages are compared with every run of spaces collapsed to two.
fn collapse(text: &str) -> String {
    let mut out = String::new();
    let mut run = 0;
    for c in text.chars() {
        run = if c == ' ' { run + 1 } else { 0 };
        if run <= 2 {
            out.push(c);
        }
    }
    out
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("`{key}` is not a string in {value}"))
}

#[test]
fn release_cycle() {
    let p = GitProject::new();
    let init = run(&p, &["init", "--name", "acme-flows"]).success();
    assert!(init.stdout.starts_with("Wrote "), "{}", init.stdout);
    p.write_example();
    let c1 = p.commit("Three flows");

    // First build: recorded and uploaded.
    let first = run(&p, &["build", "--json"]).success().json();
    assert_eq!((first["recorded"].as_bool(), first["uploaded"].as_bool()), (Some(true), Some(true)), "{first}");
    let b1 = str_of(&first["build"], "id").to_string();
    assert_eq!(str_of(&first["build"], "commit"), c1);

    // The same tree again: the same id, nothing recorded, nothing uploaded, store untouched.
    let store_before = p.tree_contents(".flowgate/artifacts");
    let again = run(&p, &["build", "--json"]).success().json();
    assert_eq!(str_of(&again["build"], "id"), b1);
    assert_eq!((again["recorded"].as_bool(), again["uploaded"].as_bool()), (Some(false), Some(false)), "{again}");
    assert_eq!(p.tree_contents(".flowgate/artifacts"), store_before, "an unchanged build rewrote the store");
    let again_text = run(&p, &["build"]).success();
    assert!(again_text.stdout.contains(&format!("Unchanged, already built {b1}")), "{}", again_text.stdout);

    let released = run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD", "--reason", "first"]).success();
    // Releasing the current build again moves nothing and changes nothing.
    let ledger_before = ledger_dump(&p).unwrap();
    assert!(ledger_before.contains(&b1), "the dump shows the ledger's contents:\n{ledger_before}");
    let noop = run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD", "--json"]).success().json();
    assert_eq!(noop["moves"], serde_json::json!([]), "{noop}");
    assert_eq!(ledger_dump(&p).unwrap(), ledger_before);

    // Promote copies pointers; it never makes a build.
    let builds_count = |p: &GitProject| run(p, &["builds", "--json"]).success().json().as_array().unwrap().len();
    assert_eq!(builds_count(&p), 1);
    let promoted = run(&p, &["promote", "--from", "qa", "--to", "prod", "--reason", "qa ok"]).success();
    assert_eq!(builds_count(&p), 1);

    // A change makes a second build; release one flow, then roll it back.
    p.write("lib/common.py", "MARKER = \"v2\"\n");
    let c2 = p.commit("Report v2");
    let second = run(&p, &["build", "--json"]).success().json();
    let b2 = str_of(&second["build"], "id").to_string();
    assert_ne!(b2, b1);
    assert_ne!(str_of(&second["build"], "bundle"), str_of(&first["build"], "bundle"));
    assert_eq!(builds_count(&p), 2);
    // A dry run shows the move it would make and changes nothing.
    let ledger_before = ledger_dump(&p).unwrap();
    let dry = run(&p, &["release", "report", "--env", "qa", "--build", "HEAD", "--dry-run", "--json"]).success().json();
    assert_eq!(dry["dry_run"].as_bool(), Some(true));
    let planned = &dry["moves"][0];
    assert_eq!((planned["revision"].as_i64(), str_of(planned, "build")), (Some(2), b2.as_str()), "{dry}");
    assert_eq!(str_of(planned, "previous_build"), b1);
    assert_eq!(ledger_dump(&p).unwrap(), ledger_before, "a dry run changed the ledger");
    let report = run(&p, &["release", "report", "--env", "qa", "--build", "HEAD", "--reason", "try v2"]).success();
    // Before the rollback, qa runs B2 for `report`: diff shows the commit and the changed file.
    let diff_before = run(&p, &["diff", "prod", "qa"]).success();
    let diff_before_json = run(&p, &["diff", "prod", "qa", "--json"]).success().json();
    let rollback = run(&p, &["rollback", "report", "--env", "qa", "--reason", "v2 broke", "--json"]).success().json();
    let rolled = &rollback["moves"][0];
    assert_eq!((rolled["revision"].as_i64(), str_of(rolled, "build")), (Some(3), b1.as_str()), "{rollback}");
    assert_eq!(str_of(rolled, "previous_build"), b2);

    // History: revisions 3, 2, 1; the rollback's build is revision 1's.
    let history = run(&p, &["history", "report", "--env", "qa", "--json"]).success().json();
    let revisions: Vec<i64> = history.as_array().unwrap().iter().map(|r| r["revision"].as_i64().unwrap()).collect();
    assert_eq!(revisions, [3, 2, 1]);
    assert_eq!(history[0]["build"], history[2]["build"]);
    assert_eq!(str_of(&history[1], "build"), b2);
    assert_eq!(history[0]["to_revision"].as_i64(), Some(1));

    let status = run(&p, &["status"]).success();
    let status_json = run(&p, &["status", "--json"]).success().json();
    let history_text = run(&p, &["history", "report", "--env", "qa"]).success();
    let diff = run(&p, &["diff", "qa", "prod"]).success();
    let diff_json = run(&p, &["diff", "qa", "prod", "--json"]).success().json();
    let builds = run(&p, &["builds"]).success();
    let show = run(&p, &["show", &b1[..8]]).success();

    let mut settings_filters = named(&[(&b1, "B1"), (&b2, "B2"), (&c1, "C1"), (&c2, "C2")]);
    settings_filters.extend(filters(&p, &[]));
    insta::with_settings!({ filters => pairs(&settings_filters) }, {
        insta::assert_snapshot!(init.stdout, @"Wrote [PROJECT]/flowgate.toml");
        insta::assert_snapshot!(released.stdout, @"
        FLOW       ENV  REVISION  FROM  TO                    KIND
        etl-daily  qa   r1        -     [B1]  release
        report     qa   r1        -     [B1]  release
        cleanup    qa   r1        -     [B1]  release
        ");
        insta::assert_snapshot!(promoted.stdout, @"
        FLOW       ENV   REVISION  FROM  TO                    KIND
        cleanup    prod  r1        -     [B1]  promote
        etl-daily  prod  r1        -     [B1]  promote
        report     prod  r1        -     [B1]  promote
        ");
        insta::assert_snapshot!(report.stdout, @"
        FLOW    ENV  REVISION  FROM                  TO                    KIND
        report  qa   r2        [B1]  [B2]  release
        ");
        insta::assert_snapshot!(collapse(&status.stdout), @"
        FLOW  QA  PROD
        etl-daily  [B1] r1 [C1] [AGE]  [B1] r1 [C1] [AGE]
        report  [B1] r3 [C1] [AGE]  [B1] r1 [C1] [AGE]
        cleanup  [B1] r1 [C1] [AGE]  [B1] r1 [C1] [AGE]
        ");
        insta::assert_json_snapshot!(status_json, @r#"
        {
          "envs": [
            "qa",
            "prod"
          ],
          "flows": [
            {
              "flow": "etl-daily",
              "cells": [
                {
                  "build": "[B1]",
                  "revision": 1,
                  "commit": "[C1]",
                  "updated_at": "[TIME]"
                },
                {
                  "build": "[B1]",
                  "revision": 1,
                  "commit": "[C1]",
                  "updated_at": "[TIME]"
                }
              ]
            },
            {
              "flow": "report",
              "cells": [
                {
                  "build": "[B1]",
                  "revision": 3,
                  "commit": "[C1]",
                  "updated_at": "[TIME]"
                },
                {
                  "build": "[B1]",
                  "revision": 1,
                  "commit": "[C1]",
                  "updated_at": "[TIME]"
                }
              ]
            },
            {
              "flow": "cleanup",
              "cells": [
                {
                  "build": "[B1]",
                  "revision": 1,
                  "commit": "[C1]",
                  "updated_at": "[TIME]"
                },
                {
                  "build": "[B1]",
                  "revision": 1,
                  "commit": "[C1]",
                  "updated_at": "[TIME]"
                }
              ]
            }
          ]
        }
        "#);
        insta::assert_snapshot!(collapse(&history_text.stdout), @"
        REVISION  BUILD  MOVE  ACTOR  AGE  GATES  ROLLOUT  REASON
        r3  [B1]  rollback to r1  tester@example.com  [AGE]  -  -  v2 broke
        r2  [B2]  release  tester@example.com  [AGE]  -  -  try v2
        r1  [B1]  release  tester@example.com  [AGE]  -  -  first
        ");
        insta::assert_json_snapshot!(history, @r#"
        [
          {
            "flow": "report",
            "env": "qa",
            "revision": 3,
            "build": "[B1]",
            "previous_build": "[B2]",
            "kind": "rollback",
            "to_revision": 1,
            "actor": "tester@example.com",
            "reason": "v2 broke",
            "created_at": "[TIME]"
          },
          {
            "flow": "report",
            "env": "qa",
            "revision": 2,
            "build": "[B2]",
            "previous_build": "[B1]",
            "kind": "release",
            "actor": "tester@example.com",
            "reason": "try v2",
            "created_at": "[TIME]"
          },
          {
            "flow": "report",
            "env": "qa",
            "revision": 1,
            "build": "[B1]",
            "previous_build": null,
            "kind": "release",
            "actor": "tester@example.com",
            "reason": "first",
            "created_at": "[TIME]"
          }
        ]
        "#);
        insta::assert_snapshot!(diff_before.stdout, @"
          cleanup: same build [B1]
          etl-daily: same build [B1]
        ~ report: prod [B1] -> qa [B2]
            commit [C2] Report v2
            M lib/common.py
        ");
        insta::assert_json_snapshot!(diff_before_json, @r#"
        {
          "from": "prod",
          "to": "qa",
          "flows": [
            {
              "flow": "cleanup",
              "from_build": "[B1]",
              "to_build": "[B1]",
              "same": true,
              "from_commit": null,
              "to_commit": null,
              "commits": null,
              "commits_behind": null,
              "files": null,
              "changes": null
            },
            {
              "flow": "etl-daily",
              "from_build": "[B1]",
              "to_build": "[B1]",
              "same": true,
              "from_commit": null,
              "to_commit": null,
              "commits": null,
              "commits_behind": null,
              "files": null,
              "changes": null
            },
            {
              "flow": "report",
              "from_build": "[B1]",
              "to_build": "[B2]",
              "same": false,
              "from_commit": "[C1]",
              "to_commit": "[C2]",
              "commits": [
                "[C2] Report v2"
              ],
              "commits_behind": [],
              "files": {
                "added": [],
                "removed": [],
                "modified": [
                  "lib/common.py"
                ]
              },
              "changes": {
                "code_changed": null,
                "code_files": null,
                "settings": [],
                "parameters": []
              }
            }
          ]
        }
        "#);
        insta::assert_snapshot!(diff.stdout, @"
        cleanup: same build [B1]
        etl-daily: same build [B1]
        report: same build [B1]
        ");
        insta::assert_json_snapshot!(diff_json, @r#"
        {
          "from": "qa",
          "to": "prod",
          "flows": [
            {
              "flow": "cleanup",
              "from_build": "[B1]",
              "to_build": "[B1]",
              "same": true,
              "from_commit": null,
              "to_commit": null,
              "commits": null,
              "commits_behind": null,
              "files": null,
              "changes": null
            },
            {
              "flow": "etl-daily",
              "from_build": "[B1]",
              "to_build": "[B1]",
              "same": true,
              "from_commit": null,
              "to_commit": null,
              "commits": null,
              "commits_behind": null,
              "files": null,
              "changes": null
            },
            {
              "flow": "report",
              "from_build": "[B1]",
              "to_build": "[B1]",
              "same": true,
              "from_commit": null,
              "to_commit": null,
              "commits": null,
              "commits_behind": null,
              "files": null,
              "changes": null
            }
          ]
        }
        "#);
        insta::assert_snapshot!(collapse(&builds.stdout), @"
        BUILD  COMMIT  BRANCH  FILES  AGE  AUTHOR
        [B2]  [C2]  main  6  [AGE]  Test Author <author@example.com>
        [B1]  [C1]  main  6  [AGE]  Test Author <author@example.com>
        ");
        insta::assert_snapshot!(show.stdout, @"
        build    [B1]
        commit   [C1]
        branch   main
        author   Test Author <author@example.com>
        created  [TIME]
        bundle   [DIGEST] ([N] bytes compressed)
        files    6 ([N] bytes)
                 ./ 2 files
                 flows/ 3 files
                 lib/ 1 file
        image    cleanup: ghcr.io/acme/flows:[C1]
        image    etl-daily: ghcr.io/acme/flows:[C1]
        image    report: ghcr.io/acme/flows:[C1]
        settings none: no env of this commit's config has a Prefect server
        registered  in direct mode (no verified registration)
        ");
    });
}
