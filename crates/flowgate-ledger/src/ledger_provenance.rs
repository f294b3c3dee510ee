//! Build provenance: who registered a build through a flowgate server, as the
//! server verified them. Written once for both drivers like `ledger_impl`.

use flowgate_core::{BuildId, Provenance, Verified};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::backend::Backend;
use crate::codec;
use crate::error::LedgerError;
use crate::ledger_impl::SqlLedger;
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
    pub(crate) async fn insert_provenance(&self, build: &BuildId, registrar: &Verified) -> Result<(), LedgerError> {
        let json = codec::verified_column(Some(registrar))?.unwrap_or_default();
        let mut tx = B::begin_write(&self.pool).await?;
        let known: i64 = sqlx::query_scalar(sql::BUILD_EXISTS)
            .bind(self.p())
            .bind(build.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(LedgerError::backend("check registered build"))?;
        if known == 0 {
            tx.rollback().await.map_err(LedgerError::backend("roll back provenance"))?;
            return Err(LedgerError::UnknownBuild { build: build.clone() });
        }
        sqlx::query(sql::INSERT_PROVENANCE)
            .bind(self.p())
            .bind(build.as_str())
            .bind(registrar.request_id.as_str())
            .bind(json)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(LedgerError::backend("record provenance"))?;
        tx.commit().await.map_err(LedgerError::backend("commit provenance"))
    }

    pub(crate) async fn read_provenance(&self, build: &BuildId) -> Result<Vec<Provenance>, LedgerError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::SELECT_PROVENANCE)
            .bind(self.p())
            .bind(build.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("read provenance"))?;
        rows.into_iter()
            .map(|(json, at)| {
                let registrar = codec::verified(&json, || format!("registration of build `{build}`"))?;
                Ok(Provenance { registrar, recorded_at: codec::time(at)? })
            })
            .collect()
    }
}
