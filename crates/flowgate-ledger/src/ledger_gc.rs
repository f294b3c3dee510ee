//! Pins, the gc/fsck inventory and build deletion, written once for both
//! drivers like `ledger_impl` (whose `Ledger` implementation delegates the
//! trait methods here).
//!
//! Deleting builds is the one place the ledger forgets something, so it checks,
//! inside its own transaction, that no pointer, pin, running rollout or synced
//! deployment (the release a (flow, env) was last synced at) names a build it
//! deletes. On SQLite the write lock makes that check final; on PostgreSQL the
//! transaction first takes SHARE locks on `rollouts`, `pointers`, `pins` and
//! `sync_state` (`Backend::LOCK_FOR_DELETE`), which wait for writers in flight and
//! hold new ones off until it commits.

use std::collections::{BTreeMap, BTreeSet};

use flowgate_core::{Build, BuildId};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use crate::backend::Backend;
use crate::codec::{self, PinRow, PointerRow, ReleaseRefRow};
use crate::error::LedgerError;
use crate::ledger_impl::SqlLedger;
use crate::{sql, Inventory, Pin};

/// The pin, inventory and deletion methods behind `Ledger`'s.
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
    pub(crate) async fn insert_pin(&self, pin: &Pin) -> Result<bool, LedgerError> {
        let mut tx = B::begin_write(&self.pool).await?;
        let known: i64 = sqlx::query_scalar(sql::BUILD_EXISTS)
            .bind(self.p())
            .bind(pin.build.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(LedgerError::backend("check pinned build"))?;
        if known == 0 {
            tx.rollback().await.map_err(LedgerError::backend("roll back pin"))?;
            return Err(LedgerError::UnknownBuild { build: pin.build.clone() });
        }
        let inserted = sqlx::query(&sql::insert_pin())
            .bind(self.p())
            .bind(pin.build.as_str())
            .bind(&pin.actor)
            .bind(&pin.reason)
            .bind(pin.created_at.timestamp_millis())
            .bind(codec::verified_column(pin.verified.as_ref())?)
            .execute(&mut *tx)
            .await
            .map_err(LedgerError::backend("pin build"))?;
        tx.commit().await.map_err(LedgerError::backend("commit pin"))?;
        Ok(B::rows_affected(&inserted) == 1)
    }

    pub(crate) async fn delete_pin(&self, build: &BuildId) -> Result<bool, LedgerError> {
        let done = sqlx::query(sql::DELETE_PIN)
            .bind(self.p())
            .bind(build.as_str())
            .execute(&self.pool)
            .await
            .map_err(LedgerError::backend("unpin build"))?;
        Ok(B::rows_affected(&done) == 1)
    }

    pub(crate) async fn read_pins(&self) -> Result<Vec<Pin>, LedgerError> {
        let rows: Vec<codec::PinRow> = sqlx::query_as(&sql::select_pins())
            .bind(self.p())
            .fetch_all(&self.pool)
            .await
            .map_err(LedgerError::backend("list pins"))?;
        rows.into_iter().map(codec::pin).collect()
    }

    /// The four reads of what must be kept (see [`Keepers`]),
    /// in that order, inside `tx`; a failed read is the backend error `op`.
    async fn read_keepers(&self, tx: &mut Transaction<'_, B>, op: &'static str) -> Result<Keepers, LedgerError> {
        let err = || LedgerError::backend(op);
        let p = self.p();
        let pointers: Vec<codec::PointerRow> =
            sqlx::query_as(&sql::select_pointers_all()).bind(p).fetch_all(&mut **tx).await.map_err(err())?;
        let pins: Vec<codec::PinRow> =
            sqlx::query_as(&sql::select_pins()).bind(p).fetch_all(&mut **tx).await.map_err(err())?;
        let running: Vec<(String, String)> =
            sqlx::query_as(sql::SELECT_RUNNING_BODIES).bind(p).fetch_all(&mut **tx).await.map_err(err())?;
        let synced: Vec<codec::ReleaseRefRow> =
            sqlx::query_as(sql::SELECT_SYNCED_RELEASES).bind(p).fetch_all(&mut **tx).await.map_err(err())?;
        Ok(Keepers { pointers, pins, running, synced })
    }

    pub(crate) async fn read_inventory(&self) -> Result<Inventory, LedgerError> {
        let op = "read the inventory";
        let err = || LedgerError::backend(op);
        let mut tx = B::begin_read(&self.pool).await?;
        let builds: Vec<codec::BuildRow> =
            sqlx::query_as(&sql::dump_builds()).bind(self.p()).fetch_all(&mut *tx).await.map_err(err())?;
        let releases: Vec<codec::ReleaseRefRow> =
            sqlx::query_as(sql::SELECT_RELEASE_REFS).bind(self.p()).fetch_all(&mut *tx).await.map_err(err())?;
        let Keepers { pointers, pins, running, synced } = self.read_keepers(&mut tx, op).await?;
        tx.rollback().await.map_err(err())?;
        let mut rollout_builds = Vec::new();
        for (id, body) in running {
            for build in body_builds(&id, &body)? {
                rollout_builds.push((build, id.clone()));
            }
        }
        Ok(Inventory {
            builds: builds.into_iter().map(codec::build).collect::<Result<_, _>>()?,
            pointers: pointers.into_iter().map(codec::pointer).collect::<Result<_, _>>()?,
            releases: releases.into_iter().map(codec::release_ref).collect::<Result<_, _>>()?,
            pins: pins.into_iter().map(codec::pin).collect::<Result<_, _>>()?,
            rollout_builds,
            synced: synced.into_iter().map(codec::release_ref).collect::<Result<_, _>>()?,
        })
    }

    pub(crate) async fn remove_builds(&self, ids: &[BuildId]) -> Result<Vec<Build>, LedgerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let op = "delete builds";
        let err = || LedgerError::backend(op);
        let mut tx = B::begin_write(&self.pool).await?;
        if let Some(lock) = B::LOCK_FOR_DELETE {
            sqlx::query(lock).execute(&mut *tx).await.map_err(err())?;
        }
        let keepers = self.read_keepers(&mut tx, op).await?;
        let needed = needed(&keepers)?;
        if let Some((build, by)) = ids.iter().find_map(|id| needed.get(id).map(|by| (id, by))) {
            tx.rollback().await.map_err(err())?;
            return Err(LedgerError::BuildInUse { build: build.clone(), by: by.clone() });
        }
        let mut deleted = Vec::with_capacity(ids.len());
        for id in ids {
            let p = self.p();
            let row: Option<codec::BuildRow> = sqlx::query_as(&sql::select_build())
                .bind(p)
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err())?;
            let Some(row) = row else { continue };
            sqlx::query(sql::DELETE_BUILD_COMMITS).bind(p).bind(id.as_str()).execute(&mut *tx).await.map_err(err())?;
            sqlx::query(sql::DELETE_BUILD_PROVENANCE)
                .bind(p)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(err())?;
            sqlx::query(sql::DELETE_BUILD).bind(p).bind(id.as_str()).execute(&mut *tx).await.map_err(err())?;
            deleted.push(codec::build(row)?);
        }
        tx.commit().await.map_err(LedgerError::backend("commit deleted builds"))?;
        Ok(deleted)
    }
}

/// The build ids a stored rollout body names.
fn body_builds(rollout: &str, body: &str) -> Result<BTreeSet<BuildId>, LedgerError> {
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| LedgerError::corrupt(format!("body of rollout `{rollout}`: {e}")))?;
    Ok(flowgate_core::inventory::builds_named(&json))
}

/// What must be kept, as read (undecoded) inside the inventory's or the
/// deletion's transaction by `SqlLedger::read_keepers`: the current pointers,
/// the pins, the running rollouts (id, body) and the synced releases.
struct Keepers {
    pointers: Vec<PointerRow>,
    pins: Vec<PinRow>,
    running: Vec<(String, String)>,
    synced: Vec<ReleaseRefRow>,
}

/// Every build a pointer, pin, running rollout or synced deployment needs,
/// with the first such need in words (for [`LedgerError::BuildInUse`]).
fn needed(keepers: &Keepers) -> Result<BTreeMap<BuildId, String>, LedgerError> {
    let Keepers { pointers, pins, running, synced } = keepers;
    let mut needed = BTreeMap::new();
    for (flow, env, _, build, _) in pointers {
        let build = codec::parse::<BuildId>("build id", build)?;
        needed.entry(build).or_insert_with(|| format!("the pointer of `{flow}` in `{env}`"));
    }
    for (build, actor, reason, _, _) in pins {
        let build = codec::parse::<BuildId>("build id", build)?;
        needed.entry(build).or_insert_with(|| format!("a pin by `{actor}` ({reason})"));
    }
    for (id, body) in running {
        for build in body_builds(id, body)? {
            needed.entry(build).or_insert_with(|| format!("the running rollout `{id}`"));
        }
    }
    for (flow, env, revision, build) in synced {
        let build = codec::parse::<BuildId>("build id", build)?;
        needed.entry(build).or_insert_with(|| {
            format!("the deployment of `{flow}` on the Prefect server of `{env}` (synced at r{revision})")
        });
    }
    Ok(needed)
}
