//! The notifications outbox: events written inside the transaction of the
//! change they tell of, then claimed, delivered and settled by a flowgate
//! server's delivery loop. Written once for both drivers, like `tokens`.
//!
//! Delivery is at least once: an event stays unsettled until the deliverer
//! says every webhook has it (or gave up), and a replica that dies holding a
//! claim loses it when the claim runs out, so another replica (or the same
//! one, restarted) posts it again with the same id.

use chrono::{DateTime, Utc};
use flowgate_core::Event;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use crate::backend::Backend;
use crate::codec;
use crate::error::LedgerError;

/// An unsettled event a deliverer claimed, with each webhook's attempts so far.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub event: Event,
    pub deliveries: Vec<DeliveryRecord>,
}

/// One webhook's attempts at one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The webhook's name in the server's config.
    pub hook: String,
    pub attempts: u32,
    /// When the next attempt is due; None once delivered or given up.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (never the webhook's URL).
    pub last_error: Option<String>,
}

/// Where one event stands, as `outbox_events` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub event: Event,
    pub settled_at: Option<DateTime<Utc>>,
    pub deliveries: Vec<DeliveryRecord>,
}

const INSERT: &str = "INSERT INTO outbox (id, project, env, kind, body, created_at_ms, due_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
const CANDIDATES: &str = "SELECT id FROM outbox WHERE settled_at_ms IS NULL AND due_at_ms <= $1 \
    AND (claimed_until_ms IS NULL OR claimed_until_ms < $1 OR claimed_by = $2) ORDER BY due_at_ms, id LIMIT $3";
const CLAIM: &str = "UPDATE outbox SET claimed_by = $2, claimed_until_ms = $3 WHERE id = $1 \
    AND settled_at_ms IS NULL AND (claimed_until_ms IS NULL OR claimed_until_ms < $4 OR claimed_by = $2)";
const BODY: &str = "SELECT body, settled_at_ms FROM outbox WHERE id = $1";
const DELIVERIES: &str = "SELECT hook, attempts, next_attempt_at_ms, delivered_at_ms, last_error \
    FROM outbox_deliveries WHERE event_id = $1 ORDER BY hook";
const RECORD_ATTEMPT: &str = "INSERT INTO outbox_deliveries \
    (event_id, hook, attempts, next_attempt_at_ms, delivered_at_ms, last_error) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (event_id, hook) DO UPDATE SET attempts = excluded.attempts, \
    next_attempt_at_ms = excluded.next_attempt_at_ms, delivered_at_ms = excluded.delivered_at_ms, \
    last_error = excluded.last_error";
const RELEASE: &str = "UPDATE outbox SET claimed_by = NULL, claimed_until_ms = NULL, due_at_ms = $3, \
    settled_at_ms = $4 WHERE id = $1 AND claimed_by = $2";
const LIST: &str = "SELECT id FROM outbox ORDER BY created_at_ms DESC, id DESC LIMIT $1";

/// Writes `events` inside the open transaction `tx`; an id stored already is
/// skipped (the same fact, written again).
pub(crate) async fn write<B: Backend>(
    tx: &mut Transaction<'static, B>,
    events: &[Event],
    now_ms: i64,
) -> Result<(), LedgerError>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Encode<'q, B> + Type<B>,
    for<'q> String: Encode<'q, B> + Type<B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
{
    for event in events {
        let body =
            serde_json::to_string(event).map_err(|e| LedgerError::corrupt(format!("event {}: {e}", event.id)))?;
        sqlx::query(INSERT)
            .bind(event.id.as_str())
            .bind(event.project.as_str())
            .bind(event.env.as_str())
            .bind(event.kind.as_str())
            .bind(body)
            .bind(event.at.timestamp_millis())
            .bind(now_ms)
            .execute(&mut **tx)
            .await
            .map_err(LedgerError::backend("write outbox event"))?;
    }
    Ok(())
}

/// The deliverer's queries, on the whole database (every project's events).
pub(crate) struct Outbox<'p, B: Backend>(pub(crate) &'p Pool<B>);

type DeliveryRow = (String, i64, Option<i64>, Option<i64>, Option<String>);

impl<B: Backend> Outbox<'_, B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> String: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    for<'q> Option<i64>: Encode<'q, B> + Decode<'q, B>,
    for<'q> Option<String>: Encode<'q, B> + Decode<'q, B>,
    usize: ColumnIndex<B::Row>,
{
    /// Claims up to `limit` unsettled events that are due at `now` for
    /// `holder` until `until`, oldest due first: those nobody holds, whose
    /// claim ran out, or that `holder` holds already (renewed).
    pub(crate) async fn claim(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, LedgerError> {
        let now_ms = now.timestamp_millis();
        let ids: Vec<String> = sqlx::query_scalar(CANDIDATES)
            .bind(now_ms)
            .bind(holder)
            .bind(i64::from(limit))
            .fetch_all(self.0)
            .await
            .map_err(LedgerError::backend("read due events"))?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let done = sqlx::query(CLAIM)
                .bind(id.as_str())
                .bind(holder)
                .bind(until.timestamp_millis())
                .bind(now_ms)
                .execute(self.0)
                .await
                .map_err(LedgerError::backend("claim event"))?;
            if B::rows_affected(&done) == 1 {
                let record = self.read(&id).await?;
                claimed.push(PendingEvent { event: record.event, deliveries: record.deliveries });
            }
        }
        Ok(claimed)
    }

    /// Records one webhook's attempts at `event_id` so far.
    pub(crate) async fn record_attempt(&self, event_id: &str, d: &DeliveryRecord) -> Result<(), LedgerError> {
        sqlx::query(RECORD_ATTEMPT)
            .bind(event_id)
            .bind(d.hook.as_str())
            .bind(i64::from(d.attempts))
            .bind(d.next_attempt_at.map(|t| t.timestamp_millis()))
            .bind(d.delivered_at.map(|t| t.timestamp_millis()))
            .bind(d.last_error.clone())
            .execute(self.0)
            .await
            .map_err(LedgerError::backend("record delivery attempt"))?;
        Ok(())
    }

    /// Gives `holder`'s claim on `event_id` back: settled at `settled` when
    /// every webhook is done with it, else due again at `due`.
    pub(crate) async fn release(
        &self,
        event_id: &str,
        holder: &str,
        due: DateTime<Utc>,
        settled: Option<DateTime<Utc>>,
    ) -> Result<(), LedgerError> {
        sqlx::query(RELEASE)
            .bind(event_id)
            .bind(holder)
            .bind(due.timestamp_millis())
            .bind(settled.map(|t| t.timestamp_millis()))
            .execute(self.0)
            .await
            .map_err(LedgerError::backend("release event"))?;
        Ok(())
    }

    /// The newest `limit` events, settled or not, with their deliveries.
    pub(crate) async fn list(&self, limit: u32) -> Result<Vec<OutboxRecord>, LedgerError> {
        let ids: Vec<String> = sqlx::query_scalar(LIST)
            .bind(i64::from(limit))
            .fetch_all(self.0)
            .await
            .map_err(LedgerError::backend("list events"))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.read(&id).await?);
        }
        Ok(out)
    }

    async fn read(&self, id: &str) -> Result<OutboxRecord, LedgerError> {
        let (body, settled_ms): (String, Option<i64>) =
            sqlx::query_as(BODY).bind(id).fetch_one(self.0).await.map_err(LedgerError::backend("read event"))?;
        let event: Event =
            serde_json::from_str(&body).map_err(|e| LedgerError::corrupt(format!("outbox event `{id}`: {e}")))?;
        let rows: Vec<DeliveryRow> = sqlx::query_as(DELIVERIES)
            .bind(id)
            .fetch_all(self.0)
            .await
            .map_err(LedgerError::backend("read deliveries"))?;
        let deliveries = rows
            .into_iter()
            .map(|(hook, attempts, next, delivered, last_error)| {
                Ok(DeliveryRecord {
                    hook,
                    attempts: u32::try_from(attempts).map_err(|_| LedgerError::corrupt("delivery attempts"))?,
                    next_attempt_at: next.map(codec::time).transpose()?,
                    delivered_at: delivered.map(codec::time).transpose()?,
                    last_error,
                })
            })
            .collect::<Result<_, LedgerError>>()?;
        Ok(OutboxRecord { event, settled_at: settled_ms.map(codec::time).transpose()?, deliveries })
    }
}
