//! The `Ledger` implementation, written once: `impl_ledger!` instantiates the
//! same code for each driver (the drivers' types differ, the logic must not).
//! A backend supplies only `pool`, `begin_write` and `is_contention`.

/// Implements `Ledger` for a backend type with a `pool: Pool<$db>` field and
/// `async fn begin_write(&self) -> Result<Transaction<'static, $db>, LedgerError>`
/// and `fn is_contention(&sqlx::Error) -> bool` (a concurrent writer's error
/// that means "someone else moved first").
macro_rules! impl_ledger {
    ($ledger:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::Ledger for $ledger {
            #[tracing::instrument(level = "debug", skip_all, fields(build = %build.id, commit = %build.commit))]
            async fn record_build(
                &self,
                build: &flowgate_core::Build,
            ) -> Result<$crate::RecordedBuild, $crate::LedgerError> {
                use $crate::{codec, sql, LedgerError};
                let v = codec::BuildValues::new(build)?;
                let err = LedgerError::backend("record build");
                let mut tx = self.begin_write().await?;
                let inserted = sqlx::query(sql::INSERT_BUILD)
                    .bind(&v.id)
                    .bind(&v.bundle)
                    .bind(v.bundle_size)
                    .bind(v.file_count)
                    .bind(&v.images)
                    .bind(&v.commit)
                    .bind(&v.branch)
                    .bind(v.dirty)
                    .bind(&v.author)
                    .bind(v.created_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                let err = LedgerError::backend("record build commit");
                sqlx::query(sql::INSERT_BUILD_COMMIT)
                    .bind(&v.id)
                    .bind(&v.commit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                let err = LedgerError::backend("read recorded build");
                let row: codec::BuildRow =
                    sqlx::query_as(&sql::select_build()).bind(&v.id).fetch_one(&mut *tx).await.map_err(err)?;
                tx.commit().await.map_err(LedgerError::backend("commit build"))?;
                Ok($crate::RecordedBuild { build: codec::build(row)?, created: inserted.rows_affected() == 1 })
            }

            #[tracing::instrument(level = "debug", skip_all, fields(build = %id))]
            async fn build(
                &self,
                id: &flowgate_core::BuildId,
            ) -> Result<Option<flowgate_core::Build>, $crate::LedgerError> {
                use $crate::{codec, sql, LedgerError};
                let row: Option<codec::BuildRow> = sqlx::query_as(&sql::select_build())
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(LedgerError::backend("read build"))?;
                row.map(codec::build).transpose()
            }

            #[tracing::instrument(level = "debug", skip(self))]
            async fn builds(&self, limit: u32) -> Result<Vec<flowgate_core::Build>, $crate::LedgerError> {
                use $crate::{codec, sql, LedgerError};
                let rows: Vec<codec::BuildRow> = sqlx::query_as(&sql::select_builds())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(LedgerError::backend("list builds"))?;
                rows.into_iter().map(codec::build).collect()
            }

            #[tracing::instrument(level = "debug", skip(self))]
            async fn find_builds(&self, prefix: &str) -> Result<Vec<flowgate_core::Build>, $crate::LedgerError> {
                use $crate::{codec, sql, LedgerError};
                let Some((low, high)) = codec::hex_prefix_range(prefix) else {
                    return Ok(Vec::new());
                };
                let rows: Vec<codec::BuildRow> = sqlx::query_as(&sql::find_builds())
                    .bind(&low)
                    .bind(&high)
                    .bind(i64::from($crate::FIND_LIMIT))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(LedgerError::backend("find builds"))?;
                rows.into_iter().map(codec::build).collect()
            }

            #[tracing::instrument(level = "debug", skip_all, fields(env = ?env.map(|e| e.as_str())))]
            async fn pointers(
                &self,
                env: Option<&flowgate_core::EnvName>,
            ) -> Result<Vec<flowgate_core::Pointer>, $crate::LedgerError> {
                use $crate::{codec, sql, LedgerError};
                let rows: Vec<codec::PointerRow> = match env {
                    Some(env) => {
                        sqlx::query_as(&sql::select_pointers_env()).bind(env.as_str()).fetch_all(&self.pool).await
                    }
                    None => sqlx::query_as(&sql::select_pointers_all()).fetch_all(&self.pool).await,
                }
                .map_err(LedgerError::backend("list pointers"))?;
                rows.into_iter().map(codec::pointer).collect()
            }

            #[tracing::instrument(level = "debug", skip_all, fields(flow = %flow, env = %env))]
            async fn pointer(
                &self,
                flow: &flowgate_core::FlowKey,
                env: &flowgate_core::EnvName,
            ) -> Result<Option<flowgate_core::Pointer>, $crate::LedgerError> {
                use $crate::{codec, sql, LedgerError};
                let row: Option<codec::PointerRow> = sqlx::query_as(&sql::select_pointer())
                    .bind(flow.as_str())
                    .bind(env.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(LedgerError::backend("read pointer"))?;
                row.map(codec::pointer).transpose()
            }

            #[tracing::instrument(level = "debug", skip_all, fields(moves = moves.len()))]
            async fn apply(
                &self,
                moves: &[flowgate_core::Move],
            ) -> Result<Vec<flowgate_core::Release>, $crate::LedgerError> {
                use $crate::LedgerError;
                if moves.is_empty() {
                    return Ok(Vec::new());
                }
                let now_ms = chrono::Utc::now().timestamp_millis();
                let mut tx = self.begin_write().await?;
                let mut releases = Vec::with_capacity(moves.len());
                for mv in moves {
                    match Self::apply_one(&mut tx, mv, now_ms).await {
                        Ok(release) => releases.push(release),
                        Err(err) => {
                            tx.rollback().await.map_err(LedgerError::backend("roll back moves"))?;
                            return Err(self.explain(mv, err).await);
                        }
                    }
                }
                match tx.commit().await {
                    Ok(()) => Ok(releases),
                    // A commit refused because of a concurrent writer: nothing was applied.
                    Err(e) if Self::is_contention(&e) => {
                        Err(self.explain(&moves[0], $crate::ledger_impl::Step::Moved).await)
                    }
                    Err(e) => Err(LedgerError::backend("commit moves")(e)),
                }
            }

            #[tracing::instrument(level = "debug", skip_all, fields(flow = %flow, env = %env))]
            async fn history(
                &self,
                flow: &flowgate_core::FlowKey,
                env: &flowgate_core::EnvName,
                limit: Option<u32>,
            ) -> Result<Vec<flowgate_core::Release>, $crate::LedgerError> {
                use $crate::{codec, sql, LedgerError};
                let rows: Vec<codec::ReleaseRow> = sqlx::query_as(&sql::select_history())
                    .bind(flow.as_str())
                    .bind(env.as_str())
                    .bind(limit.map_or(i64::MAX, i64::from))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(LedgerError::backend("read history"))?;
                rows.into_iter().map(codec::release).collect()
            }

            #[tracing::instrument(level = "debug", skip_all, fields(env = %env, flows = synced.len()))]
            async fn record_synced(
                &self,
                env: &flowgate_core::EnvName,
                synced: &[(flowgate_core::FlowKey, flowgate_core::Revision)],
            ) -> Result<(), $crate::LedgerError> {
                use $crate::{sql, LedgerError};
                if synced.is_empty() {
                    return Ok(());
                }
                let now_ms = chrono::Utc::now().timestamp_millis();
                let mut tx = self.begin_write().await?;
                for (flow, revision) in synced {
                    sqlx::query(sql::UPSERT_SYNCED)
                        .bind(flow.as_str())
                        .bind(env.as_str())
                        .bind(*revision)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(LedgerError::backend("record sync state"))?;
                }
                tx.commit().await.map_err(LedgerError::backend("commit sync state"))
            }

            #[tracing::instrument(level = "debug", skip_all, fields(env = %env))]
            async fn synced(
                &self,
                env: &flowgate_core::EnvName,
            ) -> Result<Vec<(flowgate_core::FlowKey, flowgate_core::Revision)>, $crate::LedgerError> {
                use $crate::{sql, LedgerError};
                let rows: Vec<(String, i64)> = sqlx::query_as(sql::SELECT_SYNCED)
                    .bind(env.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(LedgerError::backend("read sync state"))?;
                rows.into_iter()
                    .map(|(flow, revision)| {
                        let flow =
                            flow.parse().map_err(|e| LedgerError::corrupt(format!("sync_state flow `{flow}`: {e}")))?;
                        Ok((flow, revision))
                    })
                    .collect()
            }

            #[tracing::instrument(level = "debug", skip_all)]
            async fn dump(&self) -> Result<String, $crate::LedgerError> {
                use std::fmt::Write as _;
                use $crate::{codec, sql, LedgerError};
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
                Ok(out)
            }
        }

        impl $ledger {
            /// One move inside the open write transaction.
            async fn apply_one(
                tx: &mut sqlx::Transaction<'static, $db>,
                mv: &flowgate_core::Move,
                now_ms: i64,
            ) -> Result<flowgate_core::Release, $crate::ledger_impl::Step> {
                use $crate::ledger_impl::Step;
                use $crate::{codec, sql};
                let known: i64 = sqlx::query_scalar(sql::BUILD_EXISTS)
                    .bind(mv.build.as_str())
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(Step::Db)?;
                if known == 0 {
                    return Err(Step::UnknownBuild);
                }
                let current: Option<codec::PointerRow> = sqlx::query_as(&sql::select_pointer())
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
                .bind(mv.flow.as_str())
                .bind(mv.env.as_str())
                .bind(next)
                .bind(mv.build.as_str())
                .bind(now_ms);
                let swap = match mv.expected {
                    None => swap,
                    Some(expected) => swap.bind(expected),
                };
                if swap.execute(&mut **tx).await.map_err(Step::Db)?.rows_affected() != 1 {
                    return Err(Step::Moved);
                }
                let previous = current.map(|row| row.3);
                let (kind, detail) = codec::kind_columns(&mv.kind);
                sqlx::query(&sql::insert_release())
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
                    .execute(&mut **tx)
                    .await
                    .map_err(Step::Db)?;
                Ok(flowgate_core::Release {
                    flow: mv.flow.clone(),
                    env: mv.env.clone(),
                    revision: next,
                    build: mv.build.clone(),
                    previous_build: previous
                        .map(|p| p.parse())
                        .transpose()
                        .map_err(|e| Step::Failed($crate::LedgerError::corrupt(format!("previous build: {e}"))))?,
                    kind: mv.kind.clone(),
                    actor: mv.actor.clone(),
                    reason: mv.reason.clone(),
                    created_at: codec::time(now_ms).map_err(Step::Failed)?,
                    audit: mv.audit.clone(),
                })
            }

            /// Turns a failed step into the caller's error, after the transaction
            /// was rolled back; a conflict reports the revision the pointer has now.
            async fn explain(&self, mv: &flowgate_core::Move, step: $crate::ledger_impl::Step) -> $crate::LedgerError {
                use $crate::ledger_impl::Step;
                use $crate::LedgerError;
                match step {
                    Step::UnknownBuild => LedgerError::UnknownBuild { build: mv.build.clone() },
                    Step::Failed(err) => err,
                    Step::Db(e) if !Self::is_contention(&e) => LedgerError::backend("apply moves")(e),
                    Step::Moved | Step::Db(_) => {
                        let found = match $crate::Ledger::pointer(self, &mv.flow, &mv.env).await {
                            Ok(pointer) => pointer.map(|p| p.revision),
                            Err(err) => return err,
                        };
                        LedgerError::Conflict {
                            flow: mv.flow.clone(),
                            env: mv.env.clone(),
                            expected: mv.expected,
                            found,
                        }
                    }
                }
            }
        }
    };
}
pub(crate) use impl_ledger;

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
