//! A configured schedule (a `flowgate.toml` table, already validated) as the
//! Prefect schedule flowgate-prefect sends and compares.

use anyhow::{bail, Result};
use flowgate_config::JsonMap;
use flowgate_prefect::{Schedule, ScheduleKind};
use serde_json::Value;

/// Keys flowgate can sync today; the others are refused by name rather than dropped.
const SYNCED_KEYS: &[&str] = &["cron", "interval", "rrule", "timezone", "day_or", "anchor_date", "active"];

pub fn schedule_of(table: &JsonMap) -> Result<Schedule> {
    if let Some(key) = table.keys().find(|k| !SYNCED_KEYS.contains(&k.as_str())) {
        bail!("schedule key `{key}` is not synced by this version of flowgate; remove it");
    }
    let text = |key: &str| table.get(key).and_then(Value::as_str).map(str::to_string);
    let kind = if let Some(cron) = text("cron") {
        ScheduleKind::Cron { cron, day_or: table.get("day_or").and_then(Value::as_bool).unwrap_or(true) }
    } else if let Some(seconds) = table.get("interval").and_then(Value::as_f64) {
        ScheduleKind::Interval { seconds, anchor_date: text("anchor_date") }
    } else if let Some(rrule) = text("rrule") {
        ScheduleKind::RRule { rrule }
    } else {
        bail!("a schedule needs one of `cron`, `interval` or `rrule`");
    };
    Ok(Schedule { kind, timezone: text("timezone"), active: table.get("active").and_then(Value::as_bool) })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn table(value: Value) -> JsonMap {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn each_kind_converts_and_unknown_keys_are_named() {
        let cron = schedule_of(&table(json!({"cron": "0 3 * * *", "timezone": "UTC", "active": false}))).unwrap();
        assert_eq!(cron.kind, ScheduleKind::Cron { cron: "0 3 * * *".into(), day_or: true });
        assert_eq!((cron.timezone.as_deref(), cron.active), (Some("UTC"), Some(false)));
        let every = schedule_of(&table(json!({"interval": 60}))).unwrap();
        assert_eq!(every.kind, ScheduleKind::Interval { seconds: 60.0, anchor_date: None });
        assert_eq!(every.active, None);
        let rrule = schedule_of(&table(json!({"rrule": "FREQ=DAILY"}))).unwrap();
        assert_eq!(rrule.kind, ScheduleKind::RRule { rrule: "FREQ=DAILY".into() });
        let err = schedule_of(&table(json!({"cron": "* * * * *", "slug": "x"}))).unwrap_err().to_string();
        assert!(err.contains("`slug`"), "{err}");
    }
}
