//! The maintenance lock: `flowgate gc` and `flowgate fsck` run one at a time per
//! ledger, and a second one fails fast naming the first.
//!
//! PostgreSQL: a session advisory lock on a fixed key, taken with
//! `pg_try_advisory_lock` on a connection held for the command; the server
//! drops it when that connection ends, so a killed holder never blocks the
//! next run. The `maintenance_lock` row is written while holding it, only so a
//! refused run can name the holder.
//!
//! SQLite has no session locks that outlive a transaction, so the row is the
//! lock, taken under the database write lock (`BEGIN IMMEDIATE`). A holder is
//! stale, and replaced, when its process is gone from this host (killed) or its
//! lease expired: a holder renews the lease while it runs, so only a holder on
//! another host that stopped renewing (a shared file; rare) waits out the lease.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, SqlitePool};

use crate::error::LedgerError;

/// The advisory lock key: "flowgate" in ASCII.
const ADVISORY_KEY: i64 = 0x666c_6f77_6761_7465;
/// How long a SQLite holder's claim lasts without renewal.
const LEASE: Duration = Duration::from_secs(60);
/// How often a SQLite holder renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How long a refused PostgreSQL run waits for the winner to write its row.
const HOLDER_ROW_WAIT: Duration = Duration::from_millis(500);

const SELECT_LOCK: &str =
    "SELECT token, command, actor, host, pid, started_at_ms, expires_at_ms FROM maintenance_lock WHERE id = 1";
const UPSERT_LOCK: &str = "INSERT INTO maintenance_lock \
    (id, token, command, actor, host, pid, started_at_ms, expires_at_ms) VALUES (1, $1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (id) DO UPDATE SET token = excluded.token, command = excluded.command, actor = excluded.actor, \
    host = excluded.host, pid = excluded.pid, started_at_ms = excluded.started_at_ms, \
    expires_at_ms = excluded.expires_at_ms";
const RENEW_LOCK: &str = "UPDATE maintenance_lock SET expires_at_ms = $2 WHERE id = 1 AND token = $1";
const DELETE_LOCK: &str = "DELETE FROM maintenance_lock WHERE id = 1 AND token = $1";

/// token, command, actor, host, pid, started_at_ms, expires_at_ms.
type LockRow = (String, String, String, String, i64, i64, i64);

/// Who holds, or asks for, the maintenance lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// What it runs: `gc`, `fsck`.
    pub command: String,
    pub actor: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` run by `{}` on host `{}` (pid {}) since {}",
            self.command,
            self.actor,
            self.host,
            self.pid,
            self.started_at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// The held maintenance lock. [`MaintenanceLock::release`] gives it back; if
/// it is dropped instead, the next run takes over once this process is gone
/// (its PostgreSQL connection is closed, its SQLite row goes stale).
#[derive(Debug)]
pub struct MaintenanceLock {
    holder: LockHolder,
    token: String,
    held: Held,
}

#[derive(Debug)]
enum Held {
    Sqlite { pool: SqlitePool, renewing: tokio::task::JoinHandle<()> },
    Postgres { conn: Option<PoolConnection<Postgres>> },
}

impl MaintenanceLock {
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    pub async fn release(mut self) -> Result<(), LedgerError> {
        let err = LedgerError::backend("release the maintenance lock");
        match &mut self.held {
            Held::Sqlite { pool, renewing } => {
                renewing.abort();
                sqlx::query(DELETE_LOCK).bind(&self.token).execute(&*pool).await.map_err(err)?;
            }
            // Unlock first, then delete our row (by token, so never the next
            // holder's): a run refused while we held the lock still finds us named.
            Held::Postgres { conn } => {
                let Some(mut c) = conn.take() else { return Ok(()) };
                if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)").bind(ADVISORY_KEY).execute(&mut *c).await {
                    // Closing the connection releases the lock instead.
                    drop(c.detach());
                    return Err(err(e));
                }
                let err = LedgerError::backend("release the maintenance lock");
                sqlx::query(DELETE_LOCK).bind(&self.token).execute(&mut *c).await.map_err(err)?;
            }
        }
        Ok(())
    }
}

impl Drop for MaintenanceLock {
    fn drop(&mut self) {
        match &mut self.held {
            Held::Sqlite { renewing, .. } => renewing.abort(),
            // Not released: close the connection rather than return it to the
            // pool still holding the lock; the server then releases it.
            Held::Postgres { conn } => drop(conn.take().map(PoolConnection::detach)),
        }
    }
}

fn unique_token(holder: &LockHolder) -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{}:{}:{nanos}", holder.host, holder.pid)
}

fn holder_of(row: &LockRow) -> Result<LockHolder, LedgerError> {
    let (_, command, actor, host, pid, started_at_ms, _) = row;
    Ok(LockHolder {
        command: command.clone(),
        actor: actor.clone(),
        host: host.clone(),
        pid: u32::try_from(*pid).map_err(|_| LedgerError::corrupt(format!("maintenance lock pid `{pid}`")))?,
        started_at: crate::codec::time(*started_at_ms)?,
    })
}

fn lease_end(now: DateTime<Utc>) -> i64 {
    now.timestamp_millis() + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX)
}

/// The upsert of the lock row, for either driver.
fn upsert_row<'q, DB: sqlx::Database>(
    token: &str,
    holder: &LockHolder,
    now: DateTime<Utc>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>(UPSERT_LOCK)
        .bind(token.to_string())
        .bind(holder.command.clone())
        .bind(holder.actor.clone())
        .bind(holder.host.clone())
        .bind(i64::from(holder.pid))
        .bind(holder.started_at.timestamp_millis())
        .bind(lease_end(now))
}

/// Takes the lock on SQLite, replacing a stale holder (see the module docs).
pub(crate) async fn acquire_sqlite(pool: &SqlitePool, holder: &LockHolder) -> Result<MaintenanceLock, LedgerError> {
    let err = || LedgerError::backend("take the maintenance lock");
    let now = Utc::now();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err())?;
    let current: Option<LockRow> = sqlx::query_as(SELECT_LOCK).fetch_optional(&mut *tx).await.map_err(err())?;
    if let Some(row) = &current {
        let other = holder_of(row)?;
        if !is_stale(&other, row.6, holder, now) {
            tx.rollback().await.map_err(err())?;
            return Err(LedgerError::MaintenanceLocked { holder: Some(other) });
        }
        tracing::info!(stale = %other, "replacing a stale maintenance lock holder");
    }
    let token = unique_token(holder);
    upsert_row(&token, holder, now).execute(&mut *tx).await.map_err(err())?;
    tx.commit().await.map_err(err())?;
    let renewing = tokio::spawn(renew(pool.clone(), token.clone()));
    Ok(MaintenanceLock { holder: holder.clone(), token, held: Held::Sqlite { pool: pool.clone(), renewing } })
}

/// A SQLite holder is stale when its lease (ending at `expires_at_ms`) ran
/// out, or it ran on the asking host and its process is gone.
fn is_stale(other: &LockHolder, expires_at_ms: i64, asking: &LockHolder, now: DateTime<Utc>) -> bool {
    expires_at_ms <= now.timestamp_millis() || (other.host == asking.host && !process_alive(other.pid))
}

/// Extends the lease while the holder runs; stops when aborted (released or dropped).
async fn renew(pool: SqlitePool, token: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match sqlx::query(RENEW_LOCK).bind(&token).bind(lease_end(Utc::now())).execute(&pool).await {
            Ok(done) if done.rows_affected() == 1 => {}
            Ok(_) => tracing::warn!("the maintenance lock was taken over by another run"),
            Err(e) => tracing::warn!(error = %e, "failed to renew the maintenance lock"),
        }
    }
}

/// Whether process `pid` of this host is running. Linux: `/proc/<pid>` exists
/// and is not a zombie (a killed child its parent has not reaped yet). Without
/// `/proc` the answer is "yes", leaving staleness to the lease.
fn process_alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Takes the advisory lock on PostgreSQL, or names its holder.
pub(crate) async fn acquire_postgres(pool: &PgPool, holder: &LockHolder) -> Result<MaintenanceLock, LedgerError> {
    let err = || LedgerError::backend("take the maintenance lock");
    let mut conn = pool.acquire().await.map_err(err())?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(ADVISORY_KEY)
        .fetch_one(&mut *conn)
        .await
        .map_err(err())?;
    if !got {
        drop(conn);
        return Err(LedgerError::MaintenanceLocked { holder: postgres_holder(pool).await? });
    }
    let token = unique_token(holder);
    let upsert = upsert_row(&token, holder, Utc::now());
    // Built before the row is written, so a failed write drops it and its
    // connection closes instead of going back to the pool holding the lock.
    let mut lock = MaintenanceLock { holder: holder.clone(), token, held: Held::Postgres { conn: Some(conn) } };
    if let Held::Postgres { conn: Some(c) } = &mut lock.held {
        upsert.execute(&mut **c).await.map_err(err())?;
    }
    Ok(lock)
}

/// The row of the run holding the advisory lock. A run that has just taken it
/// may not have written its row yet: wait briefly for one. (A killed run's row
/// stays until the next holder overwrites it, so in that short window the
/// name may be the previous holder's.)
async fn postgres_holder(pool: &PgPool) -> Result<Option<LockHolder>, LedgerError> {
    let err = || LedgerError::backend("read the maintenance lock holder");
    let deadline = tokio::time::Instant::now() + HOLDER_ROW_WAIT;
    loop {
        let row: Option<LockRow> = sqlx::query_as(SELECT_LOCK).fetch_optional(pool).await.map_err(err())?;
        let done = tokio::time::Instant::now() >= deadline;
        match row {
            Some(row) => return holder_of(&row).map(Some),
            None if done => return Ok(None),
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_an_unused_pid_is_not() {
        assert!(process_alive(std::process::id()));
        if std::path::Path::new("/proc/self").exists() {
            assert!(!process_alive(u32::MAX - 1));
        }
    }

    #[test]
    fn stale_means_lease_expired_or_process_gone_from_this_host() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |host: &str, pid: u32| LockHolder {
            command: "gc".into(),
            actor: "a".into(),
            host: host.into(),
            pid,
            started_at: now,
        };
        let me = at("here", std::process::id());
        let later = now.timestamp_millis() + 1;
        assert!(!is_stale(&at("here", std::process::id()), later, &me, now), "alive, leased");
        assert!(is_stale(&at("here", std::process::id()), now.timestamp_millis(), &me, now), "lease ran out");
        assert!(!is_stale(&at("elsewhere", u32::MAX - 1), later, &me, now), "another host's pid says nothing");
        if std::path::Path::new("/proc/self").exists() {
            assert!(is_stale(&at("here", u32::MAX - 1), later, &me, now), "gone from this host");
        }
    }

    #[test]
    fn a_holder_reads_as_a_sentence() {
        let holder = LockHolder {
            command: "gc".into(),
            actor: "alice".into(),
            host: "ci-7".into(),
            pid: 42,
            started_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        assert_eq!(holder.to_string(), "`gc` run by `alice` on host `ci-7` (pid 42) since 2023-11-14T22:13:20Z");
    }
}
