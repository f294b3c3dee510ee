//! The shared ledger stories against SQLite files, plus what only SQLite has:
//! in-memory databases and files that are not databases.

mod suite;

use std::path::Path;

use flowgate_ledger::{open, LedgerError, LedgerUrl, ProjectClaim};

/// Each story gets its own temporary directory; the URL is relative, so
/// resolution against the base directory and parent creation are exercised.
macro_rules! story {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let target = suite::Target {
                url: "sqlite://state/nested/ledger.db".parse().unwrap(),
                base_dir: dir.path().to_path_buf(),
            };
            suite::$name(&target).await;
            assert!(dir.path().join("state/nested/ledger.db").is_file());
        }
    };
}

suite::stories!(story);

fn claim() -> ProjectClaim {
    ProjectClaim::named(suite::PROJECT)
}

#[tokio::test]
async fn a_file_that_is_not_a_database_fails_to_open_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    let url: LedgerUrl = format!("sqlite://{}", path.display()).parse().unwrap();
    let err = open(&url, Path::new("/nonexistent"), &claim()).await.unwrap_err();
    assert!(matches!(err, LedgerError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a_u8; 8192], "the file is left alone");
}

#[tokio::test]
async fn a_directory_in_the_way_fails_to_open_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let url: LedgerUrl = "sqlite://file/ledger.db".parse().unwrap();
    let err = open(&url, dir.path(), &claim()).await.unwrap_err();
    assert!(matches!(err, LedgerError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("file/ledger.db"), "{err}");
}

#[tokio::test]
async fn in_memory_ledger_works_on_one_connection() {
    let url: LedgerUrl = "sqlite::memory:".parse().unwrap();
    let ledger = open(&url, Path::new("."), &claim()).await.unwrap();
    ledger.record_build(suite::build("aaaa0000000000000001", "c1", 1)).await.unwrap();
    ledger.apply(&[suite::mv("etl", "qa", None, "aaaa0000000000000001")]).await.unwrap();
    let err = ledger.apply(&[suite::mv("etl", "qa", None, "aaaa0000000000000001")]).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(ledger.history(&suite::flow("etl"), &suite::env("qa"), None).await.unwrap().len(), 1);
    // Another in-memory ledger is another, empty database: only its project is in it.
    let other = flowgate_ledger::testing::open(&url, Path::new("."), &claim()).await.unwrap();
    let dump = other.dump().await.unwrap();
    assert!(dump.starts_with("projects (\"alpha\", None, None, ") && dump.lines().count() == 1, "{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_opens_racing_on_a_new_file_all_succeed() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url: LedgerUrl = "sqlite://ledger.db".parse().unwrap();
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let (url, base) = (url.clone(), dir.path().to_path_buf());
                tokio::spawn(async move { open(&url, &base, &claim()).await.map(|_| ()) })
            })
            .collect();
        for handle in opens {
            handle.await.unwrap().unwrap();
        }
    }
}

/// Migration 0004 rebuilds `releases` and `approvals` (SQLite cannot drop a
/// foreign key): a ledger made by the migrations before it keeps every row.
#[tokio::test]
async fn upgrading_a_ledger_from_migration_3_keeps_history_and_approvals() {
    use sqlx::{Connection, Executor, SqliteConnection};
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in ["0001_init.sql", "0002_sync_state.sql", "0003_gates_and_rollouts.sql"] {
        std::fs::copy(src.join(name), old.join(name)).unwrap();
    }
    let path = dir.path().join("ledger.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path()).await.unwrap().run(&mut conn).await.unwrap();
    conn.execute(
        "INSERT INTO builds VALUES ('aaaa0000000000000001', 'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd',
                                    1, 1, '{}', 'c1', 'main', 0, 'a', 1000);
         INSERT INTO releases VALUES ('etl', 'qa', 1, 'aaaa0000000000000001', NULL, 'release', NULL, 'alice', 'r',
                                      2000, '[]', 'o', 'ro-1');
         INSERT INTO pointers VALUES ('etl', 'qa', 1, 'aaaa0000000000000001', 2000);
         INSERT INTO approvals VALUES ('prod', 'aaaa0000000000000001', '', 'carol', 'ok', 3000);",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();

    let url: LedgerUrl = format!("sqlite://{}", path.display()).parse().unwrap();
    let ledger = flowgate_ledger::testing::open(&url, Path::new("/"), &claim()).await.unwrap();
    let dump = ledger.dump().await.unwrap();
    assert!(
        dump.contains("etl\", env: \"qa\", revision: 1, build_id: \"aaaa0000000000000001\"")
            && dump.contains("override_reason: Some(\"o\"), rollout_id: Some(\"ro-1\")"),
        "{dump}"
    );
    assert!(
        dump.contains("approvals (\"prod\", \"aaaa0000000000000001\", \"\", \"carol\", \"ok\", 3000, None)"),
        "{dump}"
    );
    // The release and approval no longer hold the build: with the pointer moved
    // away, the build can be deleted and both rows stay.
    let b2 = suite::build("aaaa0000000000000002", "c2", 4_000);
    ledger.record_build(b2.clone()).await.unwrap();
    ledger.apply(&[suite::mv("etl", "qa", Some(1), "aaaa0000000000000002")]).await.unwrap();
    let gone = ledger.delete_builds(&["aaaa0000000000000001".parse().unwrap()]).await.unwrap();
    assert_eq!(gone.len(), 1);
    let history = ledger.history(&suite::flow("etl"), &suite::env("qa"), None).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.build.as_str()).collect::<Vec<_>>(),
        ["aaaa0000000000000002", "aaaa0000000000000001"]
    );
    assert_eq!(ledger.approvals(&suite::env("prod"), &"aaaa0000000000000001".parse().unwrap()).await.unwrap().len(), 1);
}
