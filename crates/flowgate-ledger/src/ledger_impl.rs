//! The `Ledger` implementation, written once: [`SqlLedger`] is generic over
//! the [`Backend`] (SQLite or PostgreSQL), which supplies only what differs.
//! The inherent helpers live beside it: moves in `ledger_moves`, approvals and
//! rollouts in `ledger_rollouts`, pins, the inventory and build deletion in
//! `ledger_gc`.

use flowgate_core::{
    Approval, Build, BuildId, EnvName, Event, FlowKey, Move, Pointer, ProjectName, Provenance, Release, Revision,
    Verified,
};
use std::collections::BTreeMap;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::backend::Backend;
use crate::{codec, codec_gates, sql, Inventory, Ledger, LedgerError, LockHolder, MaintenanceLock, Pin, RecordedBuild};
use crate::{PreviewRecord, ProjectRecord, RolloutLease, RolloutRecord, FIND_LIMIT};
use chrono::{DateTime, Utc};

/// One project's ledger on one database: a connection pool, the backend's
/// type, and the project every query is scoped to (its `$1`). Made by
/// `SqlLedger::claim` (in `projects`), once the project's claim is registered.
pub(crate) struct SqlLedger<B: Backend> {
    pub(crate) pool: Pool<B>,
    pub(crate) project: ProjectName,
}

impl<B: Backend> SqlLedger<B> {
    /// The project, as the `$1` of every scoped query.
    pub(crate) fn p(&self) -> &str {
        self.project.as_str()
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
{
    /// Records `build` when the ledger has it already with settings (an
    /// unchanged rebuild): only its commit is new. The id derives from the
    /// settings' digest, so the recorded settings are `build`'s: they are
    /// neither encoded, sent, read back nor compared (with a large project's
    /// closures, that is most of a rebuild's ledger time). The build comes
    /// back when it is new or was recorded without settings.
    async fn record_known_build(&self, build: Build) -> Result<Known, LedgerError> {
        if build.settings.is_none() {
            return Ok(Known::New(build));
        }
        let row: Option<codec::BriefBuildRow> = sqlx::query_as(sql::SELECT_BUILD_BRIEF)
            .bind(self.p())
            .bind(build.id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(LedgerError::backend("read recorded build"))?;
        let Some((id, bundle, size, files, images, commit, branch, dirty, author, created, _, true)) = row else {
            return Ok(Known::New(build));
        };
        sqlx::query(sql::INSERT_BUILD_COMMIT)
            .bind(self.p())
            .bind(build.id.as_str())
            .bind(&build.commit)
            .execute(&self.pool)
            .await
            .map_err(LedgerError::backend("record build commit"))?;
        let mut recorded =
            codec::build((id, bundle, size, files, images, commit, branch, dirty, author, created, None))?;
        recorded.settings = build.settings;
        Ok(Known::Recorded(RecordedBuild { build: recorded, created: false }))
    }

    /// The rows of the statement `text_for(n)` for every one of `keys`
    /// (sorted and deduplicated here), [`crate::IDS_PER_STATEMENT`] keys at a
    /// time: `$1` is the project, then `scope` when given, then the keys.
    async fn rows_by_keys<R>(
        &self,
        mut keys: Vec<&str>,
        scope: Option<&str>,
        text_for: impl Fn(usize) -> String,
        what: &'static str,
    ) -> Result<Vec<R>, LedgerError>
    where
        R: for<'r> sqlx::FromRow<'r, B::Row> + Send + Unpin,
    {
        keys.sort_unstable();
        keys.dedup();
        let mut rows = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(crate::IDS_PER_STATEMENT) {
            let text = text_for(chunk.len());
            let mut query = sqlx::query_as::<B, R>(&text).bind(self.p());
            if let Some(scope) = scope {
                query = query.bind(scope);
            }
            for key in chunk {
                query = query.bind(*key);
            }
            rows.extend(query.fetch_all(&self.pool).await.map_err(LedgerError::backend(what))?);
        }
        Ok(rows)
    }
}

/// What [`SqlLedger::record_known_build`] found: the build recorded, or new to the ledger.
enum Known {
    Recorded(RecordedBuild),
    New(Build),
}

impl<B: Backend> std::fmt::Debug for SqlLedger<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlLedger").field("project", &self.project).field("pool", &self.pool).finish()
    }
}

#[async_trait::async_trait]
impl<B: Backend> Ledger for SqlLedger<B>
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
    #[tracing::instrument(level = "debug", skip_all, fields(build = %build.id, commit = %build.commit))]
    async fn record_build(&self, build: Build) -> Result<RecordedBuild, LedgerError> {
        let build = match self.record_known_build(build).await? {
            Known::Recorded(recorded) => return Ok(recorded),
            Known::New(build) => build,
        };
        let v = codec::BuildValues::new(&build)?;
        let err = LedgerError::backend("record build");
        let mut tx = B::begin_write(&self.pool).await?;
        let inserted = sqlx::query(sql::INSERT_BUILD)
            .bind(self.p())
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
            .bind(self.p())
            .bind(&v.id)
            .bind(&v.commit)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let err = LedgerError::backend("read recorded build");
        let mut row: codec::BuildRow =
            sqlx::query_as(&sql::select_build()).bind(self.p()).bind(&v.id).fetch_one(&mut *tx).await.map_err(err)?;
        tx.commit().await.map_err(LedgerError::backend("commit build"))?;
        // The recorded settings are usually the very text just encoded (the id
        // derives from them): then they are `build`'s, and not decoded again.
        let same_settings = row.10.is_some() && row.10 == v.settings;
        if same_settings {
            row.10 = None;
        }
        let mut recorded = codec::build(row)?;
        if same_settings {
            recorded.settings = build.settings;
        }
        Ok(RecordedBuild { build: recorded, created: B::rows_affected(&inserted) == 1 })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(build = %id))]
    async fn build(&self, id: &BuildId) -> Result<Option<Build>, LedgerError> {
        let row: Option<codec::BuildRow> = sqlx::query_as(&sql::select_build())
            .bind(self.p())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(LedgerError::backend("read build"))?;
        row.map(codec::build).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(ids = ids.len(), settings))]
    async fn builds_by_id(&self, ids: &[BuildId], settings: bool) -> Result<Vec<Build>, LedgerError> {
        let keys = ids.iter().map(BuildId::as_str).collect();
        let rows: Vec<codec::BuildRow> =
            self.rows_by_keys(keys, None, |n| sql::select_builds_by_id(n, settings), "read builds").await?;
        rows.into_iter().map(codec::build).collect()
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn builds(&self, limit: u32) -> Result<Vec<Build>, LedgerError> {
        let rows: Vec<codec::BuildRow> = sqlx::query_as(&sql::select_builds())
            .bind(self.p())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("list builds"))?;
        rows.into_iter().map(codec::build).collect()
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn find_builds(&self, prefix: &str) -> Result<Vec<Build>, LedgerError> {
        let Some((low, high)) = codec::hex_prefix_range(prefix) else {
            return Ok(Vec::new());
        };
        let rows: Vec<codec::BuildRow> = sqlx::query_as(&sql::find_builds())
            .bind(self.p())
            .bind(&low)
            .bind(&high)
            .bind(i64::from(FIND_LIMIT))
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("find builds"))?;
        rows.into_iter().map(codec::build).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = ?env.map(|e| e.as_str())))]
    async fn pointers(&self, env: Option<&EnvName>) -> Result<Vec<Pointer>, LedgerError> {
        if let Some(query) = B::POINTERS_AS_JSON {
            let json: String = sqlx::query_scalar(query)
                .bind(self.p())
                .bind(env.map(|e| e.as_str().to_string()))
                .fetch_one(&self.pool)
                .await
                .map_err(LedgerError::backend("list pointers"))?;
            let mut rows: Vec<codec::PointerRow> =
                serde_json::from_str(&json).map_err(|e| LedgerError::corrupt(format!("pointers as JSON: {e}")))?;
            rows.sort_unstable_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
            return rows.into_iter().map(codec::pointer).collect();
        }
        let rows: Vec<codec::PointerRow> = match env {
            Some(env) => {
                sqlx::query_as(&sql::select_pointers_env())
                    .bind(self.p())
                    .bind(env.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query_as(&sql::select_pointers_all()).bind(self.p()).fetch_all(&self.pool).await,
        }
        .map_err(LedgerError::backend("list pointers"))?;
        rows.into_iter().map(codec::pointer).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(flow = %flow, env = %env))]
    async fn pointer(&self, flow: &FlowKey, env: &EnvName) -> Result<Option<Pointer>, LedgerError> {
        let row: Option<codec::PointerRow> = sqlx::query_as(&sql::select_pointer())
            .bind(self.p())
            .bind(flow.as_str())
            .bind(env.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(LedgerError::backend("read pointer"))?;
        row.map(codec::pointer).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(moves = moves.len()))]
    async fn apply(&self, moves: &[Move]) -> Result<Vec<Release>, LedgerError> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let tx = B::begin_write(&self.pool).await?;
        self.finish_moves(tx, moves, &[], now_ms).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(flow = %flow, env = %env))]
    async fn history(&self, flow: &FlowKey, env: &EnvName, limit: Option<u32>) -> Result<Vec<Release>, LedgerError> {
        let rows: Vec<codec::ReleaseRow> = sqlx::query_as(&sql::select_history())
            .bind(self.p())
            .bind(flow.as_str())
            .bind(env.as_str())
            .bind(limit.map_or(i64::MAX, i64::from))
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("read history"))?;
        rows.into_iter().map(codec::release).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %env, flows = flows.len()))]
    async fn histories(
        &self,
        flows: &[FlowKey],
        env: &EnvName,
    ) -> Result<BTreeMap<FlowKey, Vec<Release>>, LedgerError> {
        let keys = flows.iter().map(FlowKey::as_str).collect();
        let rows: Vec<codec::ReleaseRow> =
            self.rows_by_keys(keys, Some(env.as_str()), sql::select_histories, "read history").await?;
        let mut histories: BTreeMap<FlowKey, Vec<Release>> = BTreeMap::new();
        for row in rows {
            let release = codec::release(row)?;
            histories.entry(release.flow.clone()).or_default().push(release);
        }
        Ok(histories)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %env, flows = synced.len()))]
    async fn record_synced(&self, env: &EnvName, synced: &[(FlowKey, Revision)]) -> Result<(), LedgerError> {
        if synced.is_empty() {
            return Ok(());
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut tx = B::begin_write(&self.pool).await?;
        for (flow, revision) in synced {
            sqlx::query(sql::UPSERT_SYNCED)
                .bind(self.p())
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
    async fn synced(&self, env: &EnvName) -> Result<Vec<(FlowKey, Revision)>, LedgerError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::SELECT_SYNCED)
            .bind(self.p())
            .bind(env.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("read sync state"))?;
        rows.into_iter()
            .map(|(flow, revision)| {
                let flow = flow.parse().map_err(|e| LedgerError::corrupt(format!("sync_state flow `{flow}`: {e}")))?;
                Ok((flow, revision))
            })
            .collect()
    }

    fn project(&self) -> &ProjectName {
        &self.project
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn projects(&self) -> Result<Vec<ProjectRecord>, LedgerError> {
        self.read_projects().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(build = %pin.build, actor = %pin.actor))]
    async fn pin(&self, pin: &Pin) -> Result<bool, LedgerError> {
        self.insert_pin(pin).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(build = %build))]
    async fn unpin(&self, build: &BuildId) -> Result<bool, LedgerError> {
        self.delete_pin(build).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn pins(&self) -> Result<Vec<Pin>, LedgerError> {
        self.read_pins().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(build = %build))]
    async fn record_provenance(&self, build: &BuildId, registrar: &Verified) -> Result<(), LedgerError> {
        self.insert_provenance(build, registrar).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(build = %build))]
    async fn provenance(&self, build: &BuildId) -> Result<Vec<Provenance>, LedgerError> {
        self.read_provenance(build).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn inventory(&self) -> Result<Inventory, LedgerError> {
        self.read_inventory().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(builds = ids.len()))]
    async fn delete_builds(&self, ids: &[BuildId]) -> Result<Vec<Build>, LedgerError> {
        self.remove_builds(ids).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(command = %holder.command, pid = holder.pid))]
    async fn lock_maintenance(&self, holder: &LockHolder) -> Result<MaintenanceLock, LedgerError> {
        B::acquire_lock(&self.pool, holder).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %preview.env, build = %preview.build))]
    async fn open_preview(&self, preview: &PreviewRecord) -> Result<(), LedgerError> {
        self.upsert_preview(preview).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn previews(&self) -> Result<Vec<PreviewRecord>, LedgerError> {
        self.read_previews().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %env))]
    async fn close_preview(&self, env: &EnvName, at: DateTime<Utc>) -> Result<bool, LedgerError> {
        self.update_close_preview(env, at).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %a.env, build = %a.build, actor = %a.actor))]
    async fn record_approval(&self, a: &Approval) -> Result<bool, LedgerError> {
        self.store_approval(a).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %env, build = %build))]
    async fn approvals(&self, env: &EnvName, build: &BuildId) -> Result<Vec<Approval>, LedgerError> {
        self.read_approvals(env, build).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %env, builds = builds.len()))]
    async fn approvals_of(
        &self,
        env: &EnvName,
        builds: &[BuildId],
    ) -> Result<BTreeMap<BuildId, Vec<Approval>>, LedgerError> {
        let keys = builds.iter().map(BuildId::as_str).collect();
        let rows: Vec<codec_gates::ApprovalRow> =
            self.rows_by_keys(keys, Some(env.as_str()), sql::select_approvals_of, "read approvals").await?;
        let mut approvals: BTreeMap<BuildId, Vec<Approval>> = BTreeMap::new();
        for row in rows {
            let approval = codec_gates::approval(row)?;
            approvals.entry(approval.build.clone()).or_default().push(approval);
        }
        Ok(approvals)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rollout = %r.id, env = %r.env))]
    async fn start_rollout(&self, r: &RolloutRecord) -> Result<RolloutRecord, LedgerError> {
        self.insert_rollout(r).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, LedgerError> {
        self.read_rollout(id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %env))]
    async fn active_rollout(&self, env: &EnvName) -> Result<Option<RolloutRecord>, LedgerError> {
        self.read_active_rollout(env).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = ?env.map(|e| e.as_str()), limit))]
    async fn rollouts(&self, env: Option<&EnvName>, limit: u32) -> Result<Vec<RolloutRecord>, LedgerError> {
        self.list_rollouts(env, limit).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn active_rollouts(&self) -> Result<Vec<RolloutRecord>, LedgerError> {
        self.read_active_rollouts().await
    }

    #[tracing::instrument(level = "debug", skip(self, now))]
    async fn lease_rollout(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<bool, LedgerError> {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        self.take_lease(id, holder, now, now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC)).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn rollout_lease(&self, id: &str) -> Result<Option<RolloutLease>, LedgerError> {
        self.read_lease(id).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn end_rollout_lease(&self, id: &str, holder: &str) -> Result<(), LedgerError> {
        self.end_lease(id, holder).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rollout = %next.id, version = next.version))]
    async fn transition_rollout(
        &self,
        next: &RolloutRecord,
        moves: &[Move],
        events: &[Event],
    ) -> Result<Vec<Release>, LedgerError> {
        self.advance_rollout(next, moves, events).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(events = events.len()))]
    async fn record_events(&self, events: &[Event]) -> Result<(), LedgerError> {
        if let Some(stranger) = events.iter().find(|e| e.project != self.project) {
            return Err(LedgerError::corrupt(format!(
                "event {} is of project `{}`, not `{}`",
                stranger.id, stranger.project, self.project
            )));
        }
        let mut tx = B::begin_write(&self.pool).await?;
        if let Err(err) = crate::outbox::write(&mut tx, events, chrono::Utc::now().timestamp_millis()).await {
            tx.rollback().await.map_err(LedgerError::backend("roll back events"))?;
            return Err(err);
        }
        tx.commit().await.map_err(LedgerError::backend("commit events"))
    }
}
