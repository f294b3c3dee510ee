//! The `Ledger` implementation, written once: `impl_ledger!` instantiates the
//! same code for each driver (the drivers' types differ, the logic must not).
//! A backend supplies only `pool`, `begin_write`, `begin_read`,
//! `is_contention`, `LOCK_FOR_DELETE` and `acquire_lock`. The inherent helpers
//! live beside it: moves in `ledger_moves`, approvals and rollouts in
//! `ledger_rollouts`, pins, the inventory and build deletion in `ledger_gc`.

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
                    .bind(&v.settings)
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
                if moves.is_empty() {
                    return Ok(Vec::new());
                }
                let now_ms = chrono::Utc::now().timestamp_millis();
                let tx = self.begin_write().await?;
                self.finish_moves(tx, moves, now_ms).await
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
                let approvals: Vec<$crate::codec_gates::ApprovalRow> =
                    sqlx::query_as(&sql::dump_approvals()).fetch_all(&self.pool).await.map_err(err())?;
                let rollouts: Vec<$crate::codec_gates::RolloutRow> =
                    sqlx::query_as(&sql::dump_rollouts()).fetch_all(&self.pool).await.map_err(err())?;
                approvals.iter().for_each(|r| writeln!(out, "approvals {r:?}").expect("writing to a String"));
                rollouts.iter().for_each(|r| writeln!(out, "rollouts {r:?}").expect("writing to a String"));
                let pins: Vec<codec::PinRow> =
                    sqlx::query_as(&sql::dump_pins()).fetch_all(&self.pool).await.map_err(err())?;
                pins.iter().for_each(|r| writeln!(out, "pins {r:?}").expect("writing to a String"));
                Ok(out)
            }

            #[tracing::instrument(level = "debug", skip_all, fields(build = %pin.build, actor = %pin.actor))]
            async fn pin(&self, pin: &$crate::Pin) -> Result<bool, $crate::LedgerError> {
                self.insert_pin(pin).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(build = %build))]
            async fn unpin(&self, build: &flowgate_core::BuildId) -> Result<bool, $crate::LedgerError> {
                self.delete_pin(build).await
            }

            #[tracing::instrument(level = "debug", skip_all)]
            async fn pins(&self) -> Result<Vec<$crate::Pin>, $crate::LedgerError> {
                self.read_pins().await
            }

            #[tracing::instrument(level = "debug", skip_all)]
            async fn inventory(&self) -> Result<$crate::Inventory, $crate::LedgerError> {
                self.read_inventory().await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(builds = ids.len()))]
            async fn delete_builds(
                &self,
                ids: &[flowgate_core::BuildId],
            ) -> Result<Vec<flowgate_core::Build>, $crate::LedgerError> {
                self.remove_builds(ids).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(command = %holder.command, pid = holder.pid))]
            async fn lock_maintenance(
                &self,
                holder: &$crate::LockHolder,
            ) -> Result<$crate::MaintenanceLock, $crate::LedgerError> {
                self.acquire_lock(holder).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(env = %a.env, build = %a.build, actor = %a.actor))]
            async fn record_approval(&self, a: &flowgate_core::Approval) -> Result<bool, $crate::LedgerError> {
                self.store_approval(a).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(env = %env, build = %build))]
            async fn approvals(
                &self,
                env: &flowgate_core::EnvName,
                build: &flowgate_core::BuildId,
            ) -> Result<Vec<flowgate_core::Approval>, $crate::LedgerError> {
                self.read_approvals(env, build).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(rollout = %r.id, env = %r.env))]
            async fn start_rollout(
                &self,
                r: &$crate::RolloutRecord,
            ) -> Result<$crate::RolloutRecord, $crate::LedgerError> {
                self.insert_rollout(r).await
            }

            #[tracing::instrument(level = "debug", skip(self))]
            async fn rollout(&self, id: &str) -> Result<Option<$crate::RolloutRecord>, $crate::LedgerError> {
                self.read_rollout(id).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(env = %env))]
            async fn active_rollout(
                &self,
                env: &flowgate_core::EnvName,
            ) -> Result<Option<$crate::RolloutRecord>, $crate::LedgerError> {
                self.read_active_rollout(env).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(env = ?env.map(|e| e.as_str()), limit))]
            async fn rollouts(
                &self,
                env: Option<&flowgate_core::EnvName>,
                limit: u32,
            ) -> Result<Vec<$crate::RolloutRecord>, $crate::LedgerError> {
                self.list_rollouts(env, limit).await
            }

            #[tracing::instrument(level = "debug", skip_all, fields(rollout = %next.id, version = next.version))]
            async fn transition_rollout(
                &self,
                next: &$crate::RolloutRecord,
                moves: &[flowgate_core::Move],
            ) -> Result<Vec<flowgate_core::Release>, $crate::LedgerError> {
                self.advance_rollout(next, moves).await
            }
        }

        $crate::ledger_rollouts::impl_rollouts!($ledger, $db);
        $crate::ledger_gc::impl_gc!($ledger, $db);
        $crate::ledger_moves::impl_moves!($ledger, $db);
    };
}
pub(crate) use impl_ledger;
