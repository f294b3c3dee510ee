//! Approvals and rollouts, written once for both drivers like `ledger_impl`
//! (whose `Ledger` implementation delegates the trait methods here, so
//! neither file grows past reading size).

use flowgate_core::{Approval, BuildId, EnvName, Event, Move, Release};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use crate::backend::Backend;
use crate::ledger_impl::SqlLedger;
use crate::{codec, codec_gates, outbox, sql, LedgerError, RolloutRecord, RolloutStatus};

/// The approval and rollout methods behind `Ledger`'s.
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
    pub(crate) async fn store_approval(&self, a: &Approval) -> Result<bool, LedgerError> {
        let mut tx = B::begin_write(&self.pool).await?;
        let known: i64 = sqlx::query_scalar(sql::BUILD_EXISTS)
            .bind(self.p())
            .bind(a.build.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(LedgerError::backend("check approved build"))?;
        if known == 0 {
            tx.rollback().await.map_err(LedgerError::backend("roll back approval"))?;
            return Err(LedgerError::UnknownBuild { build: a.build.clone() });
        }
        let inserted = sqlx::query(&sql::insert_approval())
            .bind(self.p())
            .bind(a.env.as_str())
            .bind(a.build.as_str())
            .bind(codec_gates::approval_flow(a.flow.as_ref()))
            .bind(&a.actor)
            .bind(&a.reason)
            .bind(a.created_at.timestamp_millis())
            .bind(codec::verified_column(a.verified.as_ref())?)
            .execute(&mut *tx)
            .await
            .map_err(LedgerError::backend("record approval"))?;
        let created = B::rows_affected(&inserted) == 1;
        if created {
            let event = flowgate_core::events::approval_given(&self.project, a);
            if let Err(err) = outbox::write(&mut tx, &[event], chrono::Utc::now().timestamp_millis()).await {
                tx.rollback().await.map_err(LedgerError::backend("roll back approval"))?;
                return Err(err);
            }
        }
        tx.commit().await.map_err(LedgerError::backend("commit approval"))?;
        Ok(created)
    }

    pub(crate) async fn read_approvals(&self, env: &EnvName, build: &BuildId) -> Result<Vec<Approval>, LedgerError> {
        let rows: Vec<codec_gates::ApprovalRow> = sqlx::query_as(&sql::select_approvals())
            .bind(self.p())
            .bind(env.as_str())
            .bind(build.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("read approvals"))?;
        rows.into_iter().map(codec_gates::approval).collect()
    }

    /// Checks for an active rollout and a taken id, then inserts, all in
    /// one write transaction. On SQLite the write lock makes the checks
    /// final; on PostgreSQL a concurrent start can commit between check
    /// and insert, and the partial unique index refuses ours: then the
    /// winner is read back and named, or, if it already finished, the
    /// start is tried again.
    pub(crate) async fn insert_rollout(&self, r: &RolloutRecord) -> Result<RolloutRecord, LedgerError> {
        let body = codec_gates::rollout_body(r)?;
        let mut attempt = 1;
        loop {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut tx = B::begin_write(&self.pool).await?;
            let active: Option<codec_gates::RolloutRow> = sqlx::query_as(&sql::select_active_rollout())
                .bind(self.p())
                .bind(r.env.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(LedgerError::backend("read active rollout"))?;
            let taken: Option<i64> = sqlx::query_scalar(sql::ROLLOUT_VERSION)
                .bind(self.p())
                .bind(&r.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(LedgerError::backend("read rollout"))?;
            if active.is_some() || taken.is_some() {
                tx.rollback().await.map_err(LedgerError::backend("roll back rollout start"))?;
                return Err(match active {
                    Some(row) => LedgerError::RolloutActive { env: r.env.clone(), id: row.0 },
                    None => LedgerError::RolloutIdTaken { id: r.id.clone() },
                });
            }
            let inserted = sqlx::query(&sql::insert_rollout())
                .bind(self.p())
                .bind(&r.id)
                .bind(r.env.as_str())
                .bind(RolloutStatus::Running.as_str())
                .bind(1_i64)
                .bind(&r.actor)
                .bind(&body)
                .bind(now_ms)
                .bind(now_ms)
                .execute(&mut *tx)
                .await;
            let lost = match inserted {
                Ok(_) => match tx.commit().await {
                    Ok(()) => {
                        let at = codec::time(now_ms)?;
                        return Ok(RolloutRecord {
                            status: RolloutStatus::Running,
                            version: 1,
                            created_at: at,
                            updated_at: at,
                            ..r.clone()
                        });
                    }
                    Err(e) if B::is_contention(&e) => e,
                    Err(e) => return Err(LedgerError::backend("commit rollout start")(e)),
                },
                Err(e) if B::is_contention(&e) => {
                    tx.rollback().await.map_err(LedgerError::backend("roll back rollout start"))?;
                    e
                }
                Err(e) => return Err(LedgerError::backend("start rollout")(e)),
            };
            if let Some(winner) = self.read_active_rollout(&r.env).await? {
                return Err(LedgerError::RolloutActive { env: r.env.clone(), id: winner.id });
            }
            if self.read_rollout(&r.id).await?.is_some() {
                return Err(LedgerError::RolloutIdTaken { id: r.id.clone() });
            }
            if attempt == START_ATTEMPTS {
                return Err(LedgerError::backend("start rollout")(lost));
            }
            tracing::debug!(attempt, error = %lost, "a concurrent rollout won and already finished; starting again");
            attempt += 1;
        }
    }

    pub(crate) async fn read_rollout(&self, id: &str) -> Result<Option<RolloutRecord>, LedgerError> {
        let row: Option<codec_gates::RolloutRow> = sqlx::query_as(&sql::select_rollout())
            .bind(self.p())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(LedgerError::backend("read rollout"))?;
        row.map(codec_gates::rollout).transpose()
    }

    pub(crate) async fn read_active_rollout(&self, env: &EnvName) -> Result<Option<RolloutRecord>, LedgerError> {
        let row: Option<codec_gates::RolloutRow> = sqlx::query_as(&sql::select_active_rollout())
            .bind(self.p())
            .bind(env.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(LedgerError::backend("read active rollout"))?;
        row.map(codec_gates::rollout).transpose()
    }

    pub(crate) async fn read_active_rollouts(&self) -> Result<Vec<RolloutRecord>, LedgerError> {
        let rows: Vec<codec_gates::RolloutRow> = sqlx::query_as(&sql::select_active_rollouts())
            .bind(self.p())
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("read active rollouts"))?;
        rows.into_iter().map(codec_gates::rollout).collect()
    }

    pub(crate) async fn list_rollouts(
        &self,
        env: Option<&EnvName>,
        limit: u32,
    ) -> Result<Vec<RolloutRecord>, LedgerError> {
        let rows: Vec<codec_gates::RolloutRow> = match env {
            Some(env) => {
                sqlx::query_as(&sql::select_rollouts_env())
                    .bind(self.p())
                    .bind(env.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query_as(&sql::select_rollouts_all())
                    .bind(self.p())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(LedgerError::backend("list rollouts"))?;
        rows.into_iter().map(codec_gates::rollout).collect()
    }

    /// The rollout's compare-and-swap, then the moves, in one
    /// transaction that `finish_moves` commits or rolls back.
    pub(crate) async fn advance_rollout(
        &self,
        next: &RolloutRecord,
        moves: &[Move],
        events: &[Event],
    ) -> Result<Vec<Release>, LedgerError> {
        let body = codec_gates::rollout_body(next)?;
        let expected = next.version.saturating_sub(1);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut tx = B::begin_write(&self.pool).await?;
        let swapped = sqlx::query(sql::ADVANCE_ROLLOUT)
            .bind(self.p())
            .bind(&next.id)
            .bind(next.status.as_str())
            .bind(next.version)
            .bind(&body)
            .bind(next.updated_at.timestamp_millis())
            .bind(expected)
            .execute(&mut *tx)
            .await;
        let refused = match swapped {
            Ok(done) if B::rows_affected(&done) == 1 => return self.finish_moves(tx, moves, events, now_ms).await,
            Ok(_) => None,
            // Becoming `running` again while another rollout runs in the env.
            Err(e) if B::is_contention(&e) => Some(e),
            Err(e) => return Err(LedgerError::backend("transition rollout")(e)),
        };
        tx.rollback().await.map_err(LedgerError::backend("roll back rollout transition"))?;
        if refused.is_some() {
            if let Some(other) = self.read_active_rollout(&next.env).await?.filter(|a| a.id != next.id) {
                return Err(LedgerError::RolloutActive { env: next.env.clone(), id: other.id });
            }
        }
        let found: Option<i64> = sqlx::query_scalar(sql::ROLLOUT_VERSION)
            .bind(self.p())
            .bind(&next.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(LedgerError::backend("read rollout version"))?;
        Err(LedgerError::RolloutMoved { id: next.id.clone(), expected, found })
    }
}

/// How often `start_rollout` tries again when a concurrent rollout won the env
/// and finished before it could be named (PostgreSQL only; each try needs
/// another rollout to start and finish in between).
const START_ATTEMPTS: u32 = 3;
