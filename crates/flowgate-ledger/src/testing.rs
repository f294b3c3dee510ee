//! What tests need of a ledger beyond [`Ledger`] (feature `test-support`,
//! which test code enables through its dev-dependencies): a complete dump of
//! the ledger's tables, every project's, so a test can prove that something
//! changed nothing; and a database left at an earlier migration, filled by raw
//! SQL, to test the migrations after it. It stays out of the `Ledger` trait,
//! so no production caller can reach it.

use std::ops::Deref;
use std::path::Path;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::backend::Backend;
use crate::ledger_impl::SqlLedger;
use crate::{codec, codec_gates, sql, Database, Ledger, LedgerError, LedgerUrl, Opened, ProjectClaim};

/// Opens the ledger a URL names for `project` as [`crate::open`] does, as a [`TestLedger`].
pub async fn open(url: &LedgerUrl, base_dir: &Path, project: &ProjectClaim) -> Result<TestLedger, LedgerError> {
    Ok(TestLedger(Opened::open(url, base_dir, project).await?))
}

/// Opens the database a URL names (as [`crate::open`] does) and brings its
/// schema up to migration `until` only, the way an earlier release left it,
/// for a test to fill through [`RawDatabase::execute`] before opening it with
/// every migration.
pub async fn migrated_until(url: &LedgerUrl, base_dir: &Path, until: i64) -> Result<RawDatabase, LedgerError> {
    Ok(RawDatabase(Database::open(url, base_dir, Some(until)).await?))
}

/// A database without a project, for raw SQL: see [`migrated_until`].
#[derive(Debug)]
pub struct RawDatabase(Database);

impl RawDatabase {
    /// Runs `statements` (one or more, `;`-separated) as they are.
    pub async fn execute(&self, statements: &str) -> Result<(), LedgerError> {
        let err = LedgerError::backend("execute raw SQL");
        match &self.0 {
            Database::Sqlite(pool) => sqlx::raw_sql(statements).execute(pool).await.map(drop).map_err(err),
            Database::Postgres(pool) => sqlx::raw_sql(statements).execute(pool).await.map(drop).map_err(err),
        }
    }

    /// Closes the database's connections.
    pub async fn close(self) {
        match self.0 {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// A ledger opened by a test: every [`Ledger`] method through `Deref` (so
/// `&*ledger` is a `&dyn Ledger`), and [`TestLedger::dump`].
#[derive(Debug)]
pub struct TestLedger(Opened);

impl TestLedger {
    /// A deterministic, complete text dump of every ledger table, for every
    /// project (not the migration bookkeeping, nor the maintenance lock's
    /// holder, nor the notifications outbox: a refusal by the gates changes
    /// nothing but writes its notification), for tests that prove nothing changed: the `projects` rows,
    /// then each project's rows (rows from before projects under `[]`), each
    /// line prefixed with its project, as `[alpha] builds (...)`.
    pub async fn dump(&self) -> Result<String, LedgerError> {
        match &self.0 {
            Opened::Sqlite(ledger) => ledger.dump().await,
            Opened::Postgres(ledger) => ledger.dump().await,
        }
    }
}

impl TestLedger {
    /// Every project's outbox events as `(id, env, type)`, by id.
    pub async fn events(&self) -> Result<Vec<(String, String, String)>, LedgerError> {
        const EVENTS: &str = "SELECT id, env, kind FROM outbox ORDER BY id";
        let read = match &self.0 {
            Opened::Sqlite(ledger) => sqlx::query_as(EVENTS).fetch_all(&ledger.pool).await,
            Opened::Postgres(ledger) => sqlx::query_as(EVENTS).fetch_all(&ledger.pool).await,
        };
        read.map_err(LedgerError::backend("read events"))
    }
}

impl Deref for TestLedger {
    type Target = dyn Ledger;

    fn deref(&self) -> &Self::Target {
        match &self.0 {
            Opened::Sqlite(ledger) => ledger,
            Opened::Postgres(ledger) => ledger,
        }
    }
}

impl<B: Backend> SqlLedger<B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> bool: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> String: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    for<'q> Option<String>: Encode<'q, B>,
    usize: ColumnIndex<B::Row>,
    for<'n> &'n str: ColumnIndex<B::Row>,
{
    #[tracing::instrument(level = "debug", skip_all)]
    async fn dump(&self) -> Result<String, LedgerError> {
        use std::fmt::Write as _;
        let err = || LedgerError::backend("dump");
        let mut out = String::new();
        let projects: Vec<(String, Option<String>, Option<String>, i64)> =
            sqlx::query_as(sql::SELECT_PROJECTS).fetch_all(&self.pool).await.map_err(err())?;
        projects.iter().for_each(|r| writeln!(out, "projects {r:?}").expect("writing to a String"));
        let names: Vec<String> =
            sqlx::query_scalar(sql::DUMP_PROJECT_NAMES).fetch_all(&self.pool).await.map_err(err())?;
        for p in &names {
            let mut line = |table: &str, row: &dyn std::fmt::Debug| {
                writeln!(out, "[{p}] {table} {row:?}").expect("writing to a String");
            };
            let builds: Vec<codec::BuildRow> =
                sqlx::query_as(&sql::dump_builds()).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            builds.iter().for_each(|r| line("builds", r));
            let commits: Vec<(String, String)> =
                sqlx::query_as(sql::DUMP_BUILD_COMMITS).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            commits.iter().for_each(|r| line("build_commits", r));
            let pointers: Vec<codec::PointerRow> =
                sqlx::query_as(&sql::dump_pointers()).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            pointers.iter().for_each(|r| line("pointers", r));
            let releases: Vec<codec::ReleaseRow> =
                sqlx::query_as(&sql::dump_releases()).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            releases.iter().for_each(|r| line("releases", r));
            let synced: Vec<(String, String, i64)> =
                sqlx::query_as(sql::DUMP_SYNC_STATE).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            synced.iter().for_each(|r| line("sync_state", r));
            let approvals: Vec<codec_gates::ApprovalRow> =
                sqlx::query_as(&sql::dump_approvals()).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            approvals.iter().for_each(|r| line("approvals", r));
            let rollouts: Vec<codec_gates::RolloutRow> =
                sqlx::query_as(&sql::dump_rollouts()).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            rollouts.iter().for_each(|r| line("rollouts", r));
            let pins: Vec<codec::PinRow> =
                sqlx::query_as(&sql::dump_pins()).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            pins.iter().for_each(|r| line("pins", r));
            let provenance: Vec<(String, String, String, i64)> =
                sqlx::query_as(sql::DUMP_PROVENANCE).bind(p).fetch_all(&self.pool).await.map_err(err())?;
            provenance.iter().for_each(|r| line("build_provenance", r));
        }
        Ok(out)
    }
}
