//! What differs between the two databases, and nothing else: how a write or a
//! read transaction starts, which errors mean a concurrent writer won, what
//! a build deletion and a project's registration lock, how a statement's row
//! count is read and how the maintenance lock is taken. The ledger itself
//! (`SqlLedger`) is written once, generic over a [`Backend`]; the query text
//! is shared too (`sql`: `$n` placeholders, `ON CONFLICT` and row-count compare-and-swap mean the same in
//! SQLite and PostgreSQL).
//!
//! A backend is the sqlx driver type itself (`sqlx::Sqlite`, `sqlx::Postgres`);
//! each is implemented in its own module (`sqlite`, `postgres`) beside how
//! that database is opened.

use std::future::Future;

use sqlx::{Database, Pool, Transaction};

use crate::error::LedgerError;
use crate::lock::{LockHolder, MaintenanceLock};

/// One database the ledger runs on.
///
/// The shared code also needs the driver to execute statements and encode and
/// decode the columns' types; Rust does not carry a trait's `where` clauses
/// over to its users, so those bounds are spelled out where the shared code is
/// implemented (`impl<B: Backend> ... where ...` in `ledger_impl`,
/// `ledger_moves`, `ledger_rollouts` and `ledger_gc`), the same list each time.
pub(crate) trait Backend: Database {
    /// A statement a build deletion runs first, inside its write transaction,
    /// so its check that nothing needs the builds stays true until it commits;
    /// None when `begin_write` already holds writers off.
    const LOCK_FOR_DELETE: Option<&'static str>;

    /// A statement registering a project runs first, inside its write
    /// transaction, so two first opens of one name (or of the first two
    /// names) take turns; None when `begin_write` already holds writers off.
    const LOCK_FOR_CLAIM: Option<&'static str>;

    /// A query reading a project's pointers (`$1`; `$2` an env, or NULL for
    /// all) as one row: a JSON array of `[flow, env, revision, build_id,
    /// updated_at_ms]`, in no order. For a driver whose cost per row rules a
    /// large read; None reads rows.
    const POINTERS_AS_JSON: Option<&'static str>;

    /// A write transaction. Its reads see one state together with its writes
    /// where the database can promise it (SQLite); otherwise the writes are
    /// compare-and-swaps that `is_contention` errors or row counts report.
    fn begin_write(pool: &Pool<Self>) -> impl Future<Output = Result<Transaction<'static, Self>, LedgerError>> + Send;

    /// A read-only transaction whose reads all see one snapshot.
    fn begin_read(pool: &Pool<Self>) -> impl Future<Output = Result<Transaction<'static, Self>, LedgerError>> + Send;

    /// True for an error that means a concurrent writer got there first.
    fn is_contention(e: &sqlx::Error) -> bool;

    /// The number of rows a statement inserted, updated or deleted.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Takes the maintenance lock, or names the run holding it.
    fn acquire_lock(
        pool: &Pool<Self>,
        holder: &LockHolder,
    ) -> impl Future<Output = Result<MaintenanceLock, LedgerError>> + Send;
}
