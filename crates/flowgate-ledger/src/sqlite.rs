//! The SQLite ledger: the embedded default, one file in the project, WAL mode so
//! readers never wait for a writer, and `BEGIN IMMEDIATE` so two writers queue
//! on the write lock instead of deadlocking on a lock upgrade.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};

use crate::backend::Backend;
use crate::error::LedgerError;
use crate::lock::{LockHolder, MaintenanceLock};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How often opening runs the migrations when another opener races it.
const MIGRATE_ATTEMPTS: u32 = 5;

/// How long a writer waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A private in-memory database on one connection that lives as long as the
/// pool (a second connection would see another, empty database).
pub(crate) async fn open_memory(migrator: &Migrator) -> Result<SqlitePool, LedgerError> {
    let shown = "sqlite::memory:";
    let options = SqliteConnectOptions::from_str(shown)
        .map_err(|e| LedgerError::Open { url: shown.into(), source: Box::new(e) })?
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(|e| LedgerError::Open { url: shown.into(), source: Box::new(e) })?;
    migrate(pool, shown, migrator).await
}

/// A database file, created with its parent directories if missing.
#[tracing::instrument(level = "debug", skip_all, fields(path = %path.display()))]
pub(crate) async fn open_file(path: &Path, migrator: &Migrator) -> Result<SqlitePool, LedgerError> {
    let shown = format!("sqlite://{}", path.display());
    let open_err = |source: Box<dyn std::error::Error + Send + Sync>| LedgerError::Open { url: shown.clone(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await.map_err(|e| open_err(Box::new(e)))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    // Concurrent first opens of a new file race in the connection's
    // pragmas (switching the file to WAL mode), and SQLite answers some of
    // those races with SQLITE_BUSY at once instead of waiting out the busy
    // timeout: try again.
    let mut attempt = 1;
    let pool = loop {
        match connect(options.clone()).await {
            Ok(pool) => break pool,
            Err(e) if attempt < MIGRATE_ATTEMPTS && is_busy(&e) => {
                tracing::debug!(error = %e, attempt, "opening raced another opener; opening again");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(open_err(Box::new(e))),
        }
    };
    migrate(pool, &shown, migrator).await
}

/// A pool whose first connection has read the schema, so a file that is
/// not a database fails here as `Open` rather than later as a failed migration.
async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
    sqlx::query("SELECT COUNT(*) FROM sqlite_master").execute(&pool).await?;
    Ok(pool)
}

/// SQLite has no migration lock: two processes opening a new file at once
/// both see no migration applied, and the slower one's `CREATE TABLE`
/// fails. Each migration commits with its bookkeeping, so running again
/// picks up where the faster one left off; only a failed migration step is
/// retried, never a checksum or version mismatch.
async fn migrate(pool: SqlitePool, shown: &str, migrator: &Migrator) -> Result<SqlitePool, LedgerError> {
    let mut attempt = 1;
    loop {
        match migrator.run(&pool).await {
            Ok(()) => return Ok(pool),
            Err(MigrateError::ExecuteMigration(e, version)) if attempt < MIGRATE_ATTEMPTS => {
                tracing::debug!(version, error = %e, attempt, "migration raced another opener; running again");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(LedgerError::Migrate { url: shown.to_string(), source: Box::new(e) }),
        }
    }
}

impl Backend for Sqlite {
    /// `begin_write` already holds the database write lock: nothing to add.
    const LOCK_FOR_DELETE: Option<&'static str> = None;
    /// `begin_write` already holds the database write lock: nothing to add.
    const LOCK_FOR_CLAIM: Option<&'static str> = None;
    /// sqlx hands SQLite rows over one at a time from its worker thread, which
    /// cost most of a 10,000-pointer status: one row of JSON costs one handover.
    const POINTERS_AS_JSON: Option<&'static str> = Some(
        "SELECT json_group_array(json_array(flow, env, revision, build_id, updated_at_ms)) FROM pointers \
         WHERE project = $1 AND ($2 IS NULL OR env = $2)",
    );

    /// A write transaction holding the database's write lock from its first
    /// statement, so its reads and writes see one state.
    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, LedgerError> {
        pool.begin_with("BEGIN IMMEDIATE").await.map_err(LedgerError::backend("begin write transaction"))
    }

    /// A read transaction: in WAL mode its reads see one snapshot, taken at the first.
    async fn begin_read(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, LedgerError> {
        pool.begin().await.map_err(LedgerError::backend("begin read transaction"))
    }

    /// With the write lock taken up front a concurrent writer cannot slip in;
    /// a unique violation would still mean another move won.
    fn is_contention(e: &sqlx::Error) -> bool {
        e.as_database_error().is_some_and(|d| d.is_unique_violation())
    }

    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }

    async fn acquire_lock(pool: &Pool<Self>, holder: &LockHolder) -> Result<MaintenanceLock, LedgerError> {
        crate::lock::acquire_sqlite(pool, holder).await
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, in any of their extended forms.
fn is_busy(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code()).and_then(|c| c.parse::<i32>().ok());
    code.is_some_and(|c| matches!(c & 0xff, 5 | 6))
}
