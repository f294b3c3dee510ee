//! The PostgreSQL ledger, shared by a team and its CI runners. Moves run at
//! READ COMMITTED: the compare-and-swap is the row count of a conditional
//! `UPDATE` (or of an `INSERT ... ON CONFLICT DO NOTHING` for a first release),
//! which blocks on a concurrent writer's row and then re-checks, so a lost
//! update is impossible and the loser sees a conflict.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};

use crate::backend::Backend;
use crate::error::LedgerError;
use crate::lock::{LockHolder, MaintenanceLock};
use crate::url::LedgerUrl;

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLSTATEs that mean a concurrent writer got there first: unique violation,
/// serialization failure, deadlock.
const CONTENTION_CODES: [&str; 3] = ["23505", "40001", "40P01"];

#[tracing::instrument(level = "debug", skip_all, fields(url = %url))]
pub(crate) async fn open(url: &LedgerUrl, migrator: &Migrator) -> Result<PgPool, LedgerError> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(15))
        .connect(url.expose())
        .await
        .map_err(|e| LedgerError::Open { url: url.redacted(), source: Box::new(e) })?;
    // Migrations take an advisory lock, so CI jobs opening at once are safe.
    migrator.run(&pool).await.map_err(|e| LedgerError::Migrate { url: url.redacted(), source: Box::new(e) })?;
    Ok(pool)
}

impl Backend for Postgres {
    /// Waits for, then holds off, writers of what can make a build needed, so
    /// the deletion's check stays true until it commits (SHARE conflicts with
    /// the ROW EXCLUSIVE lock every INSERT, UPDATE and DELETE takes). Tables
    /// are locked in the order a rollout transition writes them (rollouts,
    /// then pointers), so the two cannot deadlock.
    const LOCK_FOR_DELETE: Option<&'static str> = Some("LOCK TABLE rollouts, pointers, pins, sync_state IN SHARE MODE");

    /// Registrations take turns (the mode conflicts with itself, not with
    /// readers): the first project of a database claims the rows from before
    /// projects, and a second first opener must see that it is not the first.
    const LOCK_FOR_CLAIM: Option<&'static str> = Some("LOCK TABLE projects IN SHARE ROW EXCLUSIVE MODE");
    /// Rows come over the wire in batches: reading them is as cheap as JSON.
    const POINTERS_AS_JSON: Option<&'static str> = None;

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, LedgerError> {
        pool.begin().await.map_err(LedgerError::backend("begin write transaction"))
    }

    /// A read-only snapshot: every read of the transaction sees the same
    /// committed state (READ COMMITTED would give each statement its own).
    async fn begin_read(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, LedgerError> {
        let err = || LedgerError::backend("begin read transaction");
        let mut tx = pool.begin().await.map_err(err())?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(err())?;
        Ok(tx)
    }

    fn is_contention(e: &sqlx::Error) -> bool {
        e.as_database_error().and_then(|d| d.code()).is_some_and(|code| CONTENTION_CODES.contains(&code.as_ref()))
    }

    fn rows_affected(done: &Self::QueryResult) -> u64 {
        done.rows_affected()
    }

    async fn acquire_lock(pool: &Pool<Self>, holder: &LockHolder) -> Result<MaintenanceLock, LedgerError> {
        crate::lock::acquire_postgres(pool, holder).await
    }
}
