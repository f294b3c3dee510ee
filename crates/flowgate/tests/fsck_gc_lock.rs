//! Issue 5: the maintenance lock `gc` and `fsck` take. On SQLite a live holder
//! blocks fsck and a dead one (killed, never released) does not. On PostgreSQL
//! a second maintenance run exits 4 naming the holder (held by the test, and by
//! a real `gc` process), and fsck finds a pointer to an unknown build and a
//! history gap crafted in SQL.

mod common;
mod fsck_gc_support;

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::Utc;
use common::run;
use flowgate_ledger::LockHolder;
use flowgate_testkit::postgres::Database;
use flowgate_testkit::GitProject;
use fsck_gc_support::{block_on, ledger, problems};

/// On SQLite the lock is a row: held while its process lives (exit 4 naming
/// it), taken over at once when that process is gone from this host (a gc
/// killed with SIGKILL must not block the fsck that checks up on it). Linux
/// only: liveness is read from `/proc`, and without it the lease decides.
#[cfg(target_os = "linux")]
#[test]
fn on_sqlite_a_live_holder_blocks_and_a_dead_one_does_not() {
    let p = GitProject::example();
    run(&p, &["status"]).success();
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("the host name from /proc").trim().to_string();
    let holder = |pid| LockHolder {
        command: "gc".into(),
        actor: "cron".into(),
        host: host.clone(),
        pid,
        started_at: Utc::now(),
    };
    block_on(async {
        let ledger = ledger(&p).await;
        let live = ledger.lock_maintenance(&holder(std::process::id())).await.unwrap();
        let out = run(&p, &["fsck"]).expect_code(4);
        assert!(out.stderr.contains(&format!("`gc` run by `cron` on host `{host}`")), "{}", out.stderr);
        live.release().await.unwrap();
        // A pid above Linux's pid_max: no such process. Dropped, not released, as a kill leaves it.
        drop(ledger.lock_maintenance(&holder(4_194_304 + 17)).await.unwrap());
    });
    run(&p, &["fsck"]).success();
    run(&p, &["gc", "--keep-last", "1", "--keep-days", "1"]).success();
}

#[test]
fn on_postgres_a_second_maintenance_run_exits_4_and_fsck_finds_a_crafted_pointer_and_gap() {
    let Some(db) = Database::create("flowgate_fsck_gc") else { return };
    let p = GitProject::example();
    let toml = p.read("flowgate.toml").replacen("[project]\n", &format!("[project]\nledger = \"{}\"\n", db.url()), 1);
    p.write("flowgate.toml", &toml);
    p.commit("PostgreSQL ledger");
    run(&p, &["build"]).success();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    p.write("lib/common.py", "MARKER = \"v2\"\n");
    p.commit("v2");
    run(&p, &["build"]).success();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    run(&p, &["fsck"]).success();

    // A run holding the lock (here: this test, as `gc` would) makes gc and fsck exit 4 naming it.
    let holder = LockHolder {
        command: "gc".into(),
        actor: "night-job@example.com".into(),
        host: "ci-runner-7".into(),
        pid: 4242,
        started_at: Utc::now(),
    };
    block_on(async {
        let ledger = ledger(&p).await;
        let lock = ledger.lock_maintenance(&holder).await.unwrap();
        for args in [&["gc", "--keep-last", "1", "--keep-days", "0"][..], &["fsck", "--repair"]] {
            let out = run(&p, args).expect_code(4);
            assert!(
                out.stderr.contains("`gc` run by `night-job@example.com` on host `ci-runner-7` (pid 4242)"),
                "{}",
                out.stderr
            );
        }
        lock.release().await.unwrap();
    });

    // Two real gc processes: the first takes the lock and then waits on a table
    // this test holds locked; the second exits 4 naming the first; the first
    // then finishes.
    let mut blocker = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut script = blocker.stdin.take().unwrap();
    script.write_all(b"BEGIN;\nLOCK TABLE builds IN ACCESS EXCLUSIVE MODE;\n").unwrap();
    script.flush().unwrap();
    let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
        WHERE c.relname = 'builds' AND l.mode = 'AccessExclusiveLock' AND l.granted";
    db.wait_for(held, "1");
    let gc = |actor: &str| {
        Command::new(common::bin())
            .current_dir(p.path())
            .args(["gc", "--keep-last", "1", "--keep-days", "0", "--grace", "0s"])
            .env("FLOWGATE_ACTOR", actor)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = gc("first@example.com");
    db.wait_for("SELECT count(*) FROM maintenance_lock", "1");
    let second = gc("second@example.com").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("maintenance lock is held by `gc` run by `first@example.com` on host `"), "{stderr}");
    script.write_all(b"COMMIT;\n").unwrap();
    drop(script);
    assert!(blocker.wait().unwrap().success());
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));

    // A pointer to a build the ledger never recorded, and a hole in a history, crafted in SQL.
    db.execute("ALTER TABLE pointers DROP CONSTRAINT pointers_build_id_fkey").unwrap();
    db.execute("UPDATE pointers SET build_id = 'ffff0000000000000000' WHERE flow = 'report' AND env = 'qa'").unwrap();
    db.execute("DELETE FROM releases WHERE flow = 'cleanup' AND env = 'qa' AND revision = 1").unwrap();
    let before = block_on(async { ledger(&p).await.dump().await.unwrap() });
    let out = run(&p, &["fsck", "--repair", "--json"]).expect_code(1).json();
    let kinds: Vec<String> = problems(&out).into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, ["history_gap", "pointer_to_unknown_build", "pointer_not_at_latest_release"], "{out:#}");
    assert!(problems(&out)[1].1.contains("`ffff0000000000000000`"), "{out:#}");
    assert_eq!(block_on(async { ledger(&p).await.dump().await.unwrap() }), before, "fsck never writes the ledger");
}
