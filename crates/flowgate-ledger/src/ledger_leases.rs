//! Leases on driving rollouts: server replicas sharing one ledger each ask
//! before they step a rollout, so one drives it at a time, and a replica that
//! dies loses it when its lease runs out. Written once for both drivers like
//! `ledger_impl`.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::backend::Backend;
use crate::codec;
use crate::error::LedgerError;
use crate::ledger_impl::SqlLedger;
use crate::rollout::RolloutLease;
use crate::sql;

impl<B: Backend> SqlLedger<B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> String: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    usize: ColumnIndex<B::Row>,
{
    /// One upsert decides: two replicas asking at once get one grant (on
    /// PostgreSQL the conflicting insert waits for the first and then sees its
    /// row; on SQLite writers are serialised).
    pub(crate) async fn take_lease(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let mut tx = B::begin_write(&self.pool).await?;
        let done = sqlx::query(sql::LEASE_ROLLOUT)
            .bind(self.p())
            .bind(id)
            .bind(holder)
            .bind(until.timestamp_millis())
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(LedgerError::backend("lease rollout"))?;
        tx.commit().await.map_err(LedgerError::backend("commit rollout lease"))?;
        Ok(B::rows_affected(&done) == 1)
    }

    pub(crate) async fn read_lease(&self, id: &str) -> Result<Option<RolloutLease>, LedgerError> {
        let row: Option<(String, i64)> = sqlx::query_as(sql::SELECT_ROLLOUT_LEASE)
            .bind(self.p())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(LedgerError::backend("read rollout lease"))?;
        row.map(|(holder, at)| Ok(RolloutLease { holder, expires_at: codec::time(at)? })).transpose()
    }

    pub(crate) async fn end_lease(&self, id: &str, holder: &str) -> Result<(), LedgerError> {
        let mut tx = B::begin_write(&self.pool).await?;
        sqlx::query(sql::END_ROLLOUT_LEASE)
            .bind(self.p())
            .bind(id)
            .bind(holder)
            .execute(&mut *tx)
            .await
            .map_err(LedgerError::backend("end rollout lease"))?;
        tx.commit().await.map_err(LedgerError::backend("commit rollout lease"))
    }
}
