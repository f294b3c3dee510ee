//! What tests need of a ledger beyond [`Ledger`] (feature `test-support`,
//! which test code enables through its dev-dependencies): a complete dump of
//! the ledger's tables, so a test can prove that something changed nothing.
//! It stays out of the `Ledger` trait, so no production caller can reach it.

use std::ops::Deref;
use std::path::Path;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::backend::Backend;
use crate::ledger_impl::SqlLedger;
use crate::{codec, codec_gates, sql, Ledger, LedgerError, LedgerUrl, Opened};

/// Opens the ledger a URL names as [`crate::open`] does, as a [`TestLedger`].
pub async fn open(url: &LedgerUrl, base_dir: &Path) -> Result<TestLedger, LedgerError> {
    Ok(TestLedger(Opened::open(url, base_dir).await?))
}

/// A ledger opened by a test: every [`Ledger`] method through `Deref` (so
/// `&*ledger` is a `&dyn Ledger`), and [`TestLedger::dump`].
#[derive(Debug)]
pub struct TestLedger(Opened);

impl TestLedger {
    /// A deterministic, complete text dump of every ledger table (not the
    /// migration bookkeeping, nor the maintenance lock's holder), for tests
    /// that prove nothing changed.
    pub async fn dump(&self) -> Result<String, LedgerError> {
        match &self.0 {
            Opened::Sqlite(ledger) => ledger.dump().await,
            Opened::Postgres(ledger) => ledger.dump().await,
        }
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
        let builds: Vec<codec::BuildRow> =
            sqlx::query_as(&sql::dump_builds()).fetch_all(&self.pool).await.map_err(err())?;
        let commits: Vec<(String, String)> =
            sqlx::query_as(sql::DUMP_BUILD_COMMITS).fetch_all(&self.pool).await.map_err(err())?;
        let pointers: Vec<codec::PointerRow> =
            sqlx::query_as(&sql::dump_pointers()).fetch_all(&self.pool).await.map_err(err())?;
        let releases: Vec<codec::ReleaseRow> =
            sqlx::query_as(&sql::dump_releases()).fetch_all(&self.pool).await.map_err(err())?;
        let synced: Vec<(String, String, i64)> =
            sqlx::query_as(sql::DUMP_SYNC_STATE).fetch_all(&self.pool).await.map_err(err())?;
        builds.iter().for_each(|r| writeln!(out, "builds {r:?}").expect("writing to a String"));
        commits.iter().for_each(|r| writeln!(out, "build_commits {r:?}").expect("writing to a String"));
        pointers.iter().for_each(|r| writeln!(out, "pointers {r:?}").expect("writing to a String"));
        releases.iter().for_each(|r| writeln!(out, "releases {r:?}").expect("writing to a String"));
        synced.iter().for_each(|r| writeln!(out, "sync_state {r:?}").expect("writing to a String"));
        let approvals: Vec<codec_gates::ApprovalRow> =
            sqlx::query_as(&sql::dump_approvals()).fetch_all(&self.pool).await.map_err(err())?;
        let rollouts: Vec<codec_gates::RolloutRow> =
            sqlx::query_as(&sql::dump_rollouts()).fetch_all(&self.pool).await.map_err(err())?;
        approvals.iter().for_each(|r| writeln!(out, "approvals {r:?}").expect("writing to a String"));
        rollouts.iter().for_each(|r| writeln!(out, "rollouts {r:?}").expect("writing to a String"));
        let pins: Vec<codec::PinRow> = sqlx::query_as(&sql::dump_pins()).fetch_all(&self.pool).await.map_err(err())?;
        pins.iter().for_each(|r| writeln!(out, "pins {r:?}").expect("writing to a String"));
        Ok(out)
    }
}
