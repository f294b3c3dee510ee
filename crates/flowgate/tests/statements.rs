//! Issue 17's scale rule: no command reads the ledger once per flow or once
//! per build. Each command runs with `RUST_LOG=sqlx::query=debug`, which makes
//! sqlx log every statement it sends, and the statements are counted: a
//! project of 2 flows and one of 12, every flow in each of two envs on a build
//! of its own, must cost each command the same number of statements, on a
//! SQLite ledger and on a PostgreSQL one.

mod common;

use common::run;
use flowgate_testkit::GitProject;

/// A project of `flows` flows whose every flow runs its own build in `dev`
/// and another in `qa` (2 × `flows` builds, moved one flow at a time).
fn project(flows: usize, ledger: Option<&str>) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    let ledger = ledger.map(|url| format!("ledger = \"{url}\"\n")).unwrap_or_default();
    let mut config = format!(
        "[project]\nname = \"scale\"\n{ledger}\n[envs.dev]\n\n[envs.qa]\n\n[envs.prod]\n\
        policy = {{ after = \"qa\", soak = \"1s\", approval = 1 }}\n"
    );
    for i in 0..flows {
        config.push_str(&format!("\n[flows.f{i}]\nentrypoint = \"flows/f{i}.py:f{i}\"\n"));
        p.write(&format!("flows/f{i}.py"), &flow(i, 0));
    }
    p.write("flowgate.toml", &config);
    p.commit("flows");
    for (round, env) in [(1, "dev"), (2, "qa")] {
        for i in 0..flows {
            p.write(&format!("flows/f{i}.py"), &flow(i, round));
            p.commit(&format!("f{i}, round {round}"));
            run(&p, &["build", "-q"]).success();
            run(&p, &["release", &format!("f{i}"), "--env", env, "--build", "HEAD", "-q"]).success();
        }
    }
    p
}

fn flow(i: usize, round: usize) -> String {
    format!("from prefect import flow\n\nROUND = {round}\n\n\n@flow\ndef f{i}():\n    pass\n")
}

/// How many statements `args` sends to the ledger (each is one line of
/// sqlx's log), leaving out the `PRAGMA`s each new pooled connection sends:
/// how many connections a pool opens depends on timing, not on the ledger.
fn statements(p: &GitProject, args: &[&str]) -> usize {
    // A gated promote that the gates refuse exits 3; what it read counts all the same.
    let run = p.run_with_env(common::bin(), args, &[("RUST_LOG", "sqlx::query=debug")]);
    assert!(matches!(run.code, 0 | 3), "flowgate {}: {}", args.join(" "), run.stderr);
    let sent: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.contains("DEBUG") && line.contains("summary=") && !line.contains("summary=\"PRAGMA"))
        .collect();
    eprintln!("flowgate {}:\n{}", args.join(" "), sent.join("\n"));
    sent.len()
}

#[test]
fn reading_commands_send_as_many_statements_for_12_flows_as_for_2() {
    same_statements(&project(2, None), &project(12, None));
}

#[test]
fn on_postgresql_too() {
    let Some(few) = flowgate_testkit::postgres::Database::create("statements_few") else { return };
    let Some(many) = flowgate_testkit::postgres::Database::create("statements_many") else { return };
    same_statements(&project(2, Some(&few.url())), &project(12, Some(&many.url())));
}

fn same_statements(small: &GitProject, large: &GitProject) {
    for args in [
        &["status", "--json"][..],
        &["status", "--json", "--env", "qa"],
        &["status", "--json", "--all-projects"],
        &["history", "f1", "--env", "qa", "--json"],
        &["diff", "dev", "qa", "--json"],
        &["builds", "--json"],
        &["promote", "--from", "qa", "--to", "prod", "--dry-run", "--json"],
    ] {
        let (few, many) = (statements(small, args), statements(large, args));
        assert!(few > 0, "`flowgate {}` logged no statement: is sqlx's log still on?", args.join(" "));
        assert_eq!(few, many, "`flowgate {}`: {few} statements for 2 flows, {many} for 12", args.join(" "));
    }
}
