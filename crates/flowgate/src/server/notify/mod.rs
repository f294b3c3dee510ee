//! Notifications: every replica of `flowgate serve` with `[[webhooks]]` runs
//! this loop over the ledger's outbox. It claims due events (a claim keeps
//! other replicas off while it posts), posts each to every webhook that wants
//! it and has not got it yet, records each attempt, and gives the event back:
//! settled once every webhook has it (or gave it up after `max_attempts`),
//! else due again when the next webhook's backoff ends. A replica killed
//! mid-delivery leaves the event unsettled; when its claim runs out, any
//! replica (or it, restarted) posts it again with the same idempotency key.

pub mod body;
pub mod config;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flowgate_ledger::{DeliveryRecord, LedgerDatabase, PendingEvent};

use config::{Delivery, Webhook};

/// How many events one pass claims: the claim must outlast posting them all.
const BATCH: u32 = 8;

/// What the delivery loop needs.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub database: Arc<LedgerDatabase>,
    pub hooks: Arc<Vec<Webhook>>,
    pub delivery: Delivery,
    /// This replica's name, as the holder of its claims.
    pub replica: Arc<str>,
}

impl Notifier {
    /// How long a claim lasts: time to post a whole batch to every webhook, and a poll more.
    fn claim_ttl(&self) -> Duration {
        let posts = BATCH * u32::try_from(self.hooks.len()).unwrap_or(u32::MAX);
        self.delivery.timeout.saturating_mul(posts) + self.delivery.poll
    }
}

/// Delivers until the process ends.
pub async fn deliver_forever(notifier: Notifier) {
    let client = match reqwest::Client::builder().timeout(notifier.delivery.timeout).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!("no HTTP client for webhooks, so nothing is delivered: {err}");
            return;
        }
    };
    tracing::info!(replica = %notifier.replica, hooks = notifier.hooks.len(), "delivering notifications");
    loop {
        match deliver_once(&notifier, &client).await {
            // A full batch: more may be due at once.
            Ok(n) if n == BATCH as usize => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(replica = %notifier.replica, "delivering notifications failed: {err:#}"),
        }
        tokio::time::sleep(notifier.delivery.poll).await;
    }
}

/// One pass: claims a batch of due events and delivers each. Returns how many it claimed.
async fn deliver_once(notifier: &Notifier, client: &reqwest::Client) -> anyhow::Result<usize> {
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(notifier.claim_ttl())?;
    let pending = notifier.database.claim_events(&notifier.replica, now, until, BATCH).await?;
    let claimed = pending.len();
    for event in pending {
        deliver_event(notifier, client, event).await?;
    }
    Ok(claimed)
}

/// Posts one claimed event to every webhook that wants it and is due, then gives it back.
async fn deliver_event(notifier: &Notifier, client: &reqwest::Client, pending: PendingEvent) -> anyhow::Result<()> {
    let event = &pending.event;
    let now = Utc::now();
    let stale = chrono::Duration::from_std(notifier.delivery.max_age)?;
    let untouched = pending.deliveries.iter().all(|d| d.attempts == 0);
    let mut next_due: Option<DateTime<Utc>> = None;
    for hook in notifier.hooks.iter().filter(|h| h.wants(event)) {
        let mut record = pending.deliveries.iter().find(|d| d.hook == hook.name).cloned().unwrap_or(DeliveryRecord {
            hook: hook.name.clone(),
            attempts: 0,
            next_attempt_at: Some(now),
            delivered_at: None,
            last_error: None,
        });
        if record.delivered_at.is_some() || record.next_attempt_at.is_none() {
            continue; // delivered, or given up
        }
        if untouched && now - event.at > stale {
            tracing::warn!(event = %event.id, webhook = %hook.name, "an event older than max_age is not delivered");
            record.next_attempt_at = None;
            record.last_error = Some("older than max_age when first seen; not delivered".into());
            notifier.database.record_delivery(&event.id, &record).await?;
            continue;
        }
        if record.next_attempt_at.is_some_and(|due| due > now) {
            let due = record.next_attempt_at.unwrap_or(now);
            next_due = Some(next_due.map_or(due, |d| d.min(due)));
            continue;
        }
        record.attempts += 1;
        match post(client, hook, event).await {
            Ok(()) => {
                tracing::info!(event = %event.id, webhook = %hook.name, attempts = record.attempts, "delivered");
                record.delivered_at = Some(Utc::now());
                record.next_attempt_at = None;
                record.last_error = None;
            }
            Err(why) => {
                let gave_up = record.attempts >= notifier.delivery.max_attempts;
                tracing::warn!(event = %event.id, webhook = %hook.name, attempts = record.attempts, gave_up, "delivery failed: {why}");
                record.next_attempt_at = (!gave_up).then(|| Utc::now() + notifier.delivery.backoff(record.attempts));
                record.last_error = Some(why);
                if let Some(due) = record.next_attempt_at {
                    next_due = Some(next_due.map_or(due, |d| d.min(due)));
                }
            }
        }
        notifier.database.record_delivery(&event.id, &record).await?;
    }
    let settled = next_due.is_none().then(Utc::now);
    notifier.database.release_event(&event.id, &notifier.replica, next_due.unwrap_or(now), settled).await?;
    Ok(())
}

/// One attempt: the body, signed. Any answer but 2xx is a failure, described
/// without the URL (a secret: reqwest's errors name it, so it is stripped).
async fn post(client: &reqwest::Client, hook: &Webhook, event: &flowgate_core::Event) -> Result<(), String> {
    let payload = serde_json::to_vec(&body::render(event, hook.format)).map_err(|e| e.to_string())?;
    let timestamp = Utc::now().timestamp();
    let answer = client
        .post(hook.url.clone())
        .header("content-type", "application/json")
        .header("idempotency-key", &event.id)
        .header("x-flowgate-event", event.kind.as_str())
        .header("x-flowgate-timestamp", timestamp.to_string())
        .header("x-flowgate-signature", body::signature(&hook.secret, timestamp, &payload))
        .body(payload)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    match answer.status() {
        status if status.is_success() => Ok(()),
        status => Err(format!("HTTP {status}")),
    }
}
