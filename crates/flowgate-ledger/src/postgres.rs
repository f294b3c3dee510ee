//! The PostgreSQL ledger, shared by a team and its CI runners. Moves run at
//! READ COMMITTED: the compare-and-swap is the row count of a conditional
//! `UPDATE` (or of an `INSERT ... ON CONFLICT DO NOTHING` for a first release),
//! which blocks on a concurrent writer's row and then re-checks, so a lost
//! update is impossible and the loser sees a conflict.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::error::LedgerError;
use crate::ledger_impl::impl_ledger;
use crate::url::LedgerUrl;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLSTATEs that mean a concurrent writer got there first: unique violation,
/// serialization failure, deadlock.
const CONTENTION_CODES: [&str; 3] = ["23505", "40001", "40P01"];

#[derive(Debug)]
pub(crate) struct PostgresLedger {
    pool: PgPool,
}

impl PostgresLedger {
    #[tracing::instrument(level = "debug", skip_all, fields(url = %url))]
    pub(crate) async fn open(url: &LedgerUrl) -> Result<Self, LedgerError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            .connect(url.expose())
            .await
            .map_err(|e| LedgerError::Open { url: url.redacted(), source: Box::new(e) })?;
        // Migrations take an advisory lock, so CI jobs opening at once are safe.
        MIGRATOR.run(&pool).await.map_err(|e| LedgerError::Migrate { url: url.redacted(), source: Box::new(e) })?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, LedgerError> {
        self.pool.begin().await.map_err(LedgerError::backend("begin write transaction"))
    }

    /// A read-only snapshot: every read of the transaction sees the same
    /// committed state (READ COMMITTED would give each statement its own).
    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, LedgerError> {
        let err = || LedgerError::backend("begin read transaction");
        let mut tx = self.pool.begin().await.map_err(err())?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(err())?;
        Ok(tx)
    }

    /// Waits for, then holds off, writers of what can make a build needed, so
    /// the deletion's check stays true until it commits (SHARE conflicts with
    /// the ROW EXCLUSIVE lock every INSERT, UPDATE and DELETE takes). Tables
    /// are locked in the order a rollout transition writes them (rollouts,
    /// then pointers), so the two cannot deadlock.
    const LOCK_FOR_DELETE: Option<&'static str> = Some("LOCK TABLE rollouts, pointers, pins, sync_state IN SHARE MODE");

    async fn acquire_lock(&self, holder: &crate::LockHolder) -> Result<crate::MaintenanceLock, LedgerError> {
        crate::lock::acquire_postgres(&self.pool, holder).await
    }

    fn is_contention(e: &sqlx::Error) -> bool {
        e.as_database_error().and_then(|d| d.code()).is_some_and(|code| CONTENTION_CODES.contains(&code.as_ref()))
    }
}

impl_ledger!(PostgresLedger, Postgres);
