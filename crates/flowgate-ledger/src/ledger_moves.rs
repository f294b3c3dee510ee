//! Applying moves inside an open write transaction, written once for both
//! drivers: `apply` and `transition_rollout` both end in `finish_moves`, so a
//! rollout's moves get exactly the compare-and-swap and errors of `apply`.

use flowgate_core::{Event, Move, Release};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use crate::backend::Backend;
use crate::ledger_impl::SqlLedger;
use crate::{codec, outbox, sql, Ledger, LedgerError};

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
    /// Applies `moves` inside `tx`, writes their events and `events` to the
    /// outbox, and commits; on any failure rolls back and returns the
    /// caller's error. `apply` and `transition_rollout` both end with it.
    pub(crate) async fn finish_moves(
        &self,
        mut tx: Transaction<'static, B>,
        moves: &[Move],
        events: &[Event],
        now_ms: i64,
    ) -> Result<Vec<Release>, LedgerError> {
        let mut releases = Vec::with_capacity(moves.len());
        for mv in moves {
            match Self::apply_one(&mut tx, self.p(), mv, now_ms).await {
                Ok(release) => releases.push(release),
                Err(err) => {
                    tx.rollback().await.map_err(LedgerError::backend("roll back moves"))?;
                    return Err(self.explain(mv, err).await);
                }
            }
        }
        let mut all = flowgate_core::events::for_releases(&self.project, &releases);
        all.extend_from_slice(events);
        if let Err(err) = outbox::write(&mut tx, &all, now_ms).await {
            tx.rollback().await.map_err(LedgerError::backend("roll back moves"))?;
            return Err(err);
        }
        match (tx.commit().await, moves.first()) {
            (Ok(()), _) => Ok(releases),
            // A commit refused because of a concurrent writer: nothing was applied.
            (Err(e), Some(first)) if B::is_contention(&e) => Err(self.explain(first, Step::Moved).await),
            (Err(e), _) => Err(LedgerError::backend("commit moves")(e)),
        }
    }

    /// One move of `project` inside the open write transaction.
    async fn apply_one(
        tx: &mut Transaction<'static, B>,
        project: &str,
        mv: &Move,
        now_ms: i64,
    ) -> Result<Release, Step> {
        let known: i64 = sqlx::query_scalar(sql::BUILD_EXISTS)
            .bind(project)
            .bind(mv.build.as_str())
            .fetch_one(&mut **tx)
            .await
            .map_err(Step::Db)?;
        if known == 0 {
            return Err(Step::UnknownBuild);
        }
        let current: Option<codec::PointerRow> = sqlx::query_as(&sql::select_pointer())
            .bind(project)
            .bind(mv.flow.as_str())
            .bind(mv.env.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(Step::Db)?;
        if current.as_ref().map(|row| row.2) != mv.expected {
            return Err(Step::Moved);
        }
        let next = mv.next_revision();
        let swap = match mv.expected {
            None => sqlx::query(sql::INSERT_POINTER),
            Some(_) => sqlx::query(sql::ADVANCE_POINTER),
        }
        .bind(project)
        .bind(mv.flow.as_str())
        .bind(mv.env.as_str())
        .bind(next)
        .bind(mv.build.as_str())
        .bind(now_ms);
        let swap = match mv.expected {
            None => swap,
            Some(expected) => swap.bind(expected),
        };
        let swapped = swap.execute(&mut **tx).await.map_err(Step::Db)?;
        if B::rows_affected(&swapped) != 1 {
            return Err(Step::Moved);
        }
        let previous = current.map(|row| row.3);
        let (kind, detail) = codec::kind_columns(&mv.kind);
        let (gates, override_reason, rollout, verified) = codec::audit_columns(&mv.audit).map_err(Step::Failed)?;
        sqlx::query(&sql::insert_release())
            .bind(project)
            .bind(mv.flow.as_str())
            .bind(mv.env.as_str())
            .bind(next)
            .bind(mv.build.as_str())
            .bind(&previous)
            .bind(kind)
            .bind(&detail)
            .bind(&mv.actor)
            .bind(&mv.reason)
            .bind(now_ms)
            .bind(&gates)
            .bind(&override_reason)
            .bind(&rollout)
            .bind(&verified)
            .execute(&mut **tx)
            .await
            .map_err(Step::Db)?;
        Ok(Release {
            flow: mv.flow.clone(),
            env: mv.env.clone(),
            revision: next,
            build: mv.build.clone(),
            previous_build: previous
                .map(|p| p.parse())
                .transpose()
                .map_err(|e| Step::Failed(LedgerError::corrupt(format!("previous build: {e}"))))?,
            kind: mv.kind.clone(),
            actor: mv.actor.clone(),
            reason: mv.reason.clone(),
            created_at: codec::time(now_ms).map_err(Step::Failed)?,
            audit: mv.audit.clone(),
        })
    }

    /// Turns a failed step into the caller's error, after the transaction
    /// was rolled back; a conflict reports the revision the pointer has now.
    async fn explain(&self, mv: &Move, step: Step) -> LedgerError {
        match step {
            Step::UnknownBuild => LedgerError::UnknownBuild { build: mv.build.clone() },
            Step::Failed(err) => err,
            Step::Db(e) if !B::is_contention(&e) => LedgerError::backend("apply moves")(e),
            Step::Moved | Step::Db(_) => {
                let found = match Ledger::pointer(self, &mv.flow, &mv.env).await {
                    Ok(pointer) => pointer.map(|p| p.revision),
                    Err(err) => return err,
                };
                LedgerError::Conflict { flow: mv.flow.clone(), env: mv.env.clone(), expected: mv.expected, found }
            }
        }
    }
}

/// Why one move of `apply` stopped.
#[derive(Debug)]
pub(crate) enum Step {
    /// The pointer was not at the expected revision (or, at commit, a
    /// concurrent writer won).
    Moved,
    UnknownBuild,
    /// A database error; a concurrent writer's is a conflict, others are failures.
    Db(sqlx::Error),
    Failed(crate::LedgerError),
}
