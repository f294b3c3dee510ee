//! Deployment schedules and their semantic comparison with what the server
//! answers (it adds ids, anchors and floats, and may reorder them).

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleKind {
    Cron { cron: String, day_or: bool },
    Interval { seconds: f64, anchor_date: Option<String> },
    RRule { rrule: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// `None` means UTC.
    pub timezone: Option<String>,
    /// `Some` only when config manages whether the schedule is active.
    pub active: Option<bool>,
}

impl Schedule {
    pub fn cron(cron: &str, timezone: Option<&str>) -> Self {
        Self {
            kind: ScheduleKind::Cron { cron: cron.into(), day_or: true },
            timezone: timezone.map(Into::into),
            active: None,
        }
    }

    pub fn interval(seconds: f64) -> Self {
        Self { kind: ScheduleKind::Interval { seconds, anchor_date: None }, timezone: None, active: None }
    }

    /// A `DeploymentScheduleCreate` body.
    pub fn create_body(&self) -> Value {
        let mut schedule = match &self.kind {
            ScheduleKind::Cron { cron, day_or } => json!({"cron": cron, "day_or": day_or}),
            ScheduleKind::Interval { seconds, anchor_date } => {
                let mut s = json!({"interval": seconds});
                if let Some(anchor) = anchor_date {
                    s["anchor_date"] = json!(anchor);
                }
                s
            }
            ScheduleKind::RRule { rrule } => json!({"rrule": rrule}),
        };
        if let Some(tz) = &self.timezone {
            schedule["timezone"] = json!(tz);
        }
        let mut body = json!({ "schedule": schedule });
        if let Some(active) = self.active {
            body["active"] = json!(active);
        }
        body
    }

    /// Whether `server` (one entry of a deployment's `schedules`) means the same.
    pub fn matches(&self, server: &Value) -> bool {
        let Some(schedule) = server.get("schedule") else { return false };
        if let Some(active) = self.active {
            if server.get("active").and_then(Value::as_bool) != Some(active) {
                return false;
            }
        }
        let tz = schedule.get("timezone").and_then(Value::as_str).unwrap_or("UTC");
        if tz != self.timezone.as_deref().unwrap_or("UTC") {
            return false;
        }
        match &self.kind {
            ScheduleKind::Cron { cron, day_or } => {
                schedule.get("cron").and_then(Value::as_str) == Some(cron.as_str())
                    && schedule.get("day_or").and_then(Value::as_bool).unwrap_or(true) == *day_or
            }
            ScheduleKind::Interval { seconds, anchor_date } => {
                let same_interval =
                    schedule.get("interval").and_then(Value::as_f64).is_some_and(|s| (s - seconds).abs() < 1e-6);
                let same_anchor = match anchor_date {
                    None => true,
                    Some(anchor) => {
                        schedule.get("anchor_date").and_then(Value::as_str).is_some_and(|a| same_instant(a, anchor))
                    }
                };
                same_interval && same_anchor
            }
            ScheduleKind::RRule { rrule } => schedule.get("rrule").and_then(Value::as_str) == Some(rrule.as_str()),
        }
    }
}

/// Whether the server's schedules are exactly the desired ones, in any order.
pub fn schedules_match(desired: &[Schedule], server: &[Value]) -> bool {
    if desired.len() != server.len() {
        return false;
    }
    let mut unused: Vec<&Value> = server.iter().collect();
    desired.iter().all(|want| match unused.iter().position(|have| want.matches(have)) {
        Some(i) => {
            unused.remove(i);
            true
        }
        None => false,
    })
}

/// Compares timestamps loosely: the server writes `Z` and microseconds.
fn same_instant(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim_end_matches('Z').trim_end_matches("+00:00").trim_end_matches(".000000").to_string();
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(schedule: Value) -> Value {
        json!({"id": "x", "schedule": schedule, "active": true, "max_scheduled_runs": null, "parameters": {}, "slug": null})
    }

    #[test]
    fn server_additions_and_order_do_not_count_as_change() {
        let desired = [Schedule::cron("0 3 * * *", None), Schedule::interval(3600.0)];
        let answer = [
            server(json!({"interval": 3600.0, "anchor_date": "2026-11-26T12:20:01.149040Z", "timezone": "UTC"})),
            server(json!({"cron": "0 3 * * *", "timezone": null, "day_or": true})),
        ];
        assert!(schedules_match(&desired, &answer));
    }

    #[test]
    fn a_different_cron_timezone_or_count_is_a_change() {
        let answer = [server(json!({"cron": "0 3 * * *", "timezone": null, "day_or": true}))];
        assert!(!schedules_match(&[Schedule::cron("0 4 * * *", None)], &answer));
        assert!(!schedules_match(&[Schedule::cron("0 3 * * *", Some("Europe/Paris"))], &answer));
        assert!(!schedules_match(&[], &answer));
        assert!(schedules_match(&[Schedule::cron("0 3 * * *", Some("UTC"))], &answer));
    }

    #[test]
    fn activity_counts_only_when_managed() {
        let answer = [json!({"schedule": {"cron": "0 3 * * *", "day_or": true}, "active": false})];
        assert!(schedules_match(&[Schedule::cron("0 3 * * *", None)], &answer));
        let managed = Schedule { active: Some(true), ..Schedule::cron("0 3 * * *", None) };
        assert!(!schedules_match(&[managed], &answer));
    }
}
