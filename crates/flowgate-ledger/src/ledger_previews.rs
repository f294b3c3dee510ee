//! Preview environments: which env a branch's preview is, where it is placed,
//! the build it runs and until when. Written once for both drivers like
//! `ledger_impl`.

use chrono::{DateTime, Utc};
use flowgate_core::{BuildId, EnvName};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::backend::Backend;
use crate::codec;
use crate::error::LedgerError;
use crate::ledger_impl::SqlLedger;
use crate::sql;

/// One preview env, open or closed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviewRecord {
    /// The env's ledger name: `preview-<branch>`.
    pub env: EnvName,
    pub branch: String,
    /// The env it is placed like (same Prefect server and work pool).
    pub from_env: EnvName,
    /// That env's table in `flowgate.toml` (`dev` for a personal env).
    pub from_config: String,
    /// The build the last `preview up` released.
    pub build: BuildId,
    /// Who opened it last.
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When `preview down` or gc closed it; None while open.
    pub closed_at: Option<DateTime<Utc>>,
}

impl PreviewRecord {
    /// Open, and past its time to live at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.closed_at.is_none() && self.expires_at <= now
    }
}

type Row = (String, String, String, String, String, String, i64, i64, Option<i64>);

impl<B: Backend> SqlLedger<B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> String: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    usize: ColumnIndex<B::Row>,
{
    /// Opens `preview`, or reopens its env with the new build, placement and
    /// expiry (keeping when it was first created).
    pub(crate) async fn upsert_preview(&self, preview: &PreviewRecord) -> Result<(), LedgerError> {
        sqlx::query(sql::UPSERT_PREVIEW)
            .bind(self.p())
            .bind(preview.env.as_str())
            .bind(preview.branch.as_str())
            .bind(preview.from_env.as_str())
            .bind(preview.from_config.as_str())
            .bind(preview.build.as_str())
            .bind(preview.actor.as_str())
            .bind(preview.created_at.timestamp_millis())
            .bind(preview.expires_at.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(LedgerError::backend("record preview"))?;
        Ok(())
    }

    pub(crate) async fn read_previews(&self) -> Result<Vec<PreviewRecord>, LedgerError> {
        let rows: Vec<Row> = sqlx::query_as(sql::SELECT_PREVIEWS)
            .bind(self.p())
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("read previews"))?;
        rows.into_iter()
            .map(|(env, branch, from_env, from_config, build, actor, created, expires, closed)| {
                Ok(PreviewRecord {
                    env: codec::parse("preview env", &env)?,
                    branch,
                    from_env: codec::parse("preview's env", &from_env)?,
                    from_config,
                    build: codec::parse("preview build", &build)?,
                    actor,
                    created_at: codec::time(created)?,
                    expires_at: codec::time(expires)?,
                    closed_at: closed.map(codec::time).transpose()?,
                })
            })
            .collect()
    }

    /// Closes the open preview `env`; false when there is none.
    pub(crate) async fn update_close_preview(&self, env: &EnvName, at: DateTime<Utc>) -> Result<bool, LedgerError> {
        let done = sqlx::query(sql::CLOSE_PREVIEW)
            .bind(self.p())
            .bind(env.as_str())
            .bind(at.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(LedgerError::backend("close preview"))?;
        Ok(B::rows_affected(&done) > 0)
    }
}
