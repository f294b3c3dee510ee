//! What a webhook receives: the body in its format, and the headers that let
//! the receiver check who sent it and drop a duplicate.
//!
//! Every delivery carries `Idempotency-Key` (the event's id, the same on every
//! attempt), `X-Flowgate-Event` (its type), `X-Flowgate-Timestamp` (Unix
//! seconds) and `X-Flowgate-Signature: sha256=HEX`, the HMAC-SHA256 of
//! `TIMESTAMP.BODY` under the webhook's signing key. A receiver recomputes it
//! over the raw body and compares in constant time, and refuses old timestamps.

use flowgate_core::{Event, EventFlow};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::config::Format;

/// `TIMESTAMP.BODY`'s HMAC-SHA256 under `key`, as `sha256=HEX`.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body of `event` in `format`.
pub fn render(event: &Event, format: Format) -> Value {
    match format {
        Format::Json => {
            let mut body = serde_json::to_value(event).expect("an event serializes");
            body["text"] = Value::String(summary(event));
            body
        }
        Format::Slack => {
            let mut lines = vec![format!("*{}*", slack_escape(&summary(event)))];
            lines.extend(event.flows.iter().map(|f| format!("• {}", slack_escape(&flow_line(f)))));
            json!({
                "text": summary(event),
                "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": lines.join("\n") } }],
            })
        }
    }
}

/// One line saying what happened: `acme/prod: release by alice (3 flows): ship it`.
pub fn summary(event: &Event) -> String {
    let what = match event.kind {
        flowgate_core::EventKind::Release => "release",
        flowgate_core::EventKind::Promote => "promote",
        flowgate_core::EventKind::Rollback => "rollback",
        flowgate_core::EventKind::GateRefused => "refused by the gates",
        flowgate_core::EventKind::ApprovalRequested => "approval requested",
        flowgate_core::EventKind::ApprovalGiven => "approved",
        flowgate_core::EventKind::WavePassed => "rollout wave passed",
        flowgate_core::EventKind::WaveFailed => "rollout wave FAILED",
        flowgate_core::EventKind::AutomaticRollback => "rollout ROLLED BACK",
        flowgate_core::EventKind::DriftFound => "drift found",
    };
    let mut line = format!("{}/{}: {what}", event.project, event.env);
    if let Some(actor) = &event.actor {
        line.push_str(&format!(" by {actor}"));
    }
    match event.flows.as_slice() {
        [] => {}
        [one] => line.push_str(&format!(" ({})", one.flow)),
        many => line.push_str(&format!(" ({} flows)", many.len())),
    }
    if let Some(detail) = &event.detail {
        line.push_str(&format!(": {detail}"));
    }
    if let Some(reason) = &event.reason {
        line.push_str(&format!(" (reason: {reason})"));
    }
    line
}

fn flow_line(f: &EventFlow) -> String {
    let short = |b: &flowgate_core::BuildId| b.as_str().chars().take(12).collect::<String>();
    let mut line = f.flow.to_string();
    if let Some(build) = &f.build {
        line.push_str(&format!(" → {}", short(build)));
    }
    if let Some(previous) = &f.previous_build {
        line.push_str(&format!(" (was {})", short(previous)));
    }
    for note in &f.notes {
        line.push_str(&format!("; {note}"));
    }
    line
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup: escaped, a user's text
/// (a reason, a branch) can neither link nor mention anyone.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let project = "acme".parse().unwrap();
        let env = "prod".parse().unwrap();
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut event = flowgate_core::events::drift_found(
            &project,
            &env,
            at,
            &[("etl".parse().unwrap(), None, 3, vec!["schedule".into()])],
        );
        event.reason = Some("<!channel> & <https://evil.example|click>".into());
        event
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2's key and data, behind the timestamp and dot this scheme puts first;
        // the value is `printf '0.what do ya want for nothing?' | openssl dgst -sha256 -hmac Jefe`.
        assert_eq!(
            signature(b"Jefe", 0, b"what do ya want for nothing?"),
            "sha256=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
    }

    #[test]
    fn slack_bodies_escape_what_users_typed() {
        let body = render(&event(), Format::Slack);
        let text = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"), "{text}");
        assert!(text.contains("• etl; schedule"), "{text}");
        assert_eq!(body["text"], summary(&event()));
    }

    #[test]
    fn json_bodies_are_the_event_with_its_summary() {
        let body = render(&event(), Format::Json);
        assert_eq!(body["type"], "drift.found");
        assert_eq!(body["id"], event().id);
        assert_eq!(body["flows"][0]["notes"][0], "schedule");
        assert!(body["text"].as_str().unwrap().starts_with("acme/prod: drift found (etl): 1 deployment(s)"));
    }
}
