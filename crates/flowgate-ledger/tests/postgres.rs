//! The shared ledger stories against PostgreSQL. Each story creates its own
//! database `flowgate_test_<pid>_<n>` on the server named by
//! `FLOWGATE_TEST_POSTGRES_URL` (through the maintenance database, no `psql`
//! needed) and drops it afterwards. An unreachable server fails the test unless
//! `FLOWGATE_SKIP_POSTGRES=1` outside CI (`flowgate_testkit::skip`).

mod suite;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use flowgate_ledger::LedgerUrl;
use sqlx::{Connection, Executor, PgConnection};

const SERVER_VAR: &str = "FLOWGATE_TEST_POSTGRES_URL";
const SKIP_VAR: &str = flowgate_testkit::skip::POSTGRES;
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A database that exists for one test.
struct TestDb {
    server: LedgerUrl,
    name: String,
    url: LedgerUrl,
}

impl TestDb {
    /// None (skip) only when the server is unreachable and skipping was asked
    /// for outside CI.
    async fn create() -> Option<Self> {
        flowgate_testkit::skip::check_value(SKIP_VAR);
        let server: LedgerUrl = std::env::var(SERVER_VAR).unwrap_or_else(|_| DEFAULT_SERVER.into()).parse().unwrap();
        let mut admin = match PgConnection::connect(server.expose()).await {
            Ok(conn) => conn,
            Err(e) => {
                let missing = format!("PostgreSQL at `{server}` is unreachable: {e}");
                flowgate_testkit::skip::or_fail(SKIP_VAR, &missing, &format!("Start it, point {SERVER_VAR} at it"));
                return None;
            }
        };
        let name = format!("flowgate_test_{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::SeqCst));
        admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.unwrap();
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        admin.close().await.unwrap();
        let mut url = url::Url::parse(server.expose()).unwrap();
        url.set_path(&format!("/{name}"));
        let url = url.as_str().parse().unwrap();
        Some(Self { server, name, url })
    }

    async fn drop_database(self) {
        let mut admin = PgConnection::connect(self.server.expose()).await.unwrap();
        admin.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str()).await.unwrap();
    }
}

/// Runs the story in its own task so the database is dropped even when the
/// story panics, then re-raises the panic.
macro_rules! story {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some(db) = TestDb::create().await else { return };
            let target = suite::Target { url: db.url.clone(), base_dir: PathBuf::from(".") };
            let outcome = tokio::spawn(async move { suite::$name(&target).await }).await;
            db.drop_database().await;
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    };
}

suite::stories!(story);

#[tokio::test]
async fn credentials_that_fail_to_connect_are_never_shown() {
    let Some(db) = TestDb::create().await else { return };
    let mut url = url::Url::parse(db.url.expose()).unwrap();
    url.set_username("flowgate_nobody").unwrap();
    url.set_password(Some("hunter2secret")).unwrap();
    let url: LedgerUrl = url.as_str().parse().unwrap();
    let result =
        flowgate_ledger::open(&url, std::path::Path::new("."), &flowgate_ledger::ProjectClaim::named("alpha")).await;
    db.drop_database().await;
    let err = result.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, flowgate_ledger::LedgerError::Open { .. }), "{shown}");
    assert!(shown.contains("flowgate_nobody:***@") && !shown.contains("hunter2secret"), "{shown}");
}
