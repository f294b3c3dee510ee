//! `[[webhooks]]` and `[notify]` of the server's config: where events go and
//! how hard the server tries. A webhook's URL and signing key are secrets:
//! the file names the environment variables that hold them, and neither is
//! ever printed, logged or stored (errors name the webhook and the variable).
//!
//! ```toml
//! [[webhooks]]
//! name = "prod-releases"                 # names it in logs and in the outbox
//! url = { env = "SLACK_RELEASES_URL" }
//! secret = { env = "FLOWGATE_WEBHOOK_KEY" }
//! format = "slack"                       # or "json" (the default)
//! projects = ["acme-flows"]              # default: every project
//! envs = ["prod"]                        # default: every env
//! events = ["release", "rollback", "rollout.rolled_back"]  # default: every event
//! ```

use std::time::Duration;

use flowgate_core::{Event, EventKind};
use serde::Deserialize;

/// A `{ env = "NAME" }` reference to a secret in the server's environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromEnv {
    pub env: String,
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The event as JSON, with a one-line `text` summary.
    #[default]
    Json,
    /// Slack's incoming-webhook body (`text` and `blocks`); Mattermost's
    /// incoming webhooks take its `text` too.
    Slack,
}

/// One `[[webhooks]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    pub name: String,
    pub url: FromEnv,
    pub secret: FromEnv,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default)]
    pub envs: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
}

/// `[notify]`: delivery tuning, each a duration (`250ms`, `10s`, `5m`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyEntry {
    /// How often a replica looks for events to deliver (default 1s).
    pub poll: Option<String>,
    /// How long one delivery may take (default 10s).
    pub timeout: Option<String>,
    /// The wait after the first failed attempt, doubled after each (default 1s).
    pub retry_base: Option<String>,
    /// The longest wait between attempts (default 10m).
    pub retry_max: Option<String>,
    /// Attempts before a webhook gives an event up (default 20).
    pub max_attempts: Option<u32>,
    /// Events older than this when first seen are settled without delivery
    /// (default 1d): a server started after a long pause does not replay them.
    pub max_age: Option<String>,
}

/// A webhook ready to post to: its secrets read from the environment.
#[derive(Clone)]
pub struct Webhook {
    pub name: String,
    pub url: reqwest::Url,
    pub secret: Vec<u8>,
    pub format: Format,
    projects: Vec<String>,
    envs: Vec<String>,
    events: Vec<EventKind>,
}

// Written by hand so a URL or key never reaches a log line through `{:?}`.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("name", &self.name).field("format", &self.format).finish_non_exhaustive()
    }
}

impl Webhook {
    /// True when this webhook wants `event`: its project, env and kind are listed (or no list is given).
    pub fn wants(&self, event: &Event) -> bool {
        let listed = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        listed(&self.projects, event.project.as_str())
            && listed(&self.envs, event.env.as_str())
            && (self.events.is_empty() || self.events.contains(&event.kind))
    }
}

/// The delivery settings, resolved.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub poll: Duration,
    pub timeout: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
}

impl Delivery {
    /// The wait before attempt `attempts + 1`, after `attempts` failures.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self.retry_base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        doubled.min(self.retry_max)
    }
}

/// Checks the entries' shape (names, events, durations) without reading the
/// environment: what `ServerConfig::load` refuses.
pub fn check(hooks: &[WebhookEntry], notify: &NotifyEntry) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for hook in hooks {
        if hook.name.is_empty() || !names.insert(hook.name.as_str()) {
            return Err(format!("[[webhooks]] name `{}` is empty or given twice", hook.name));
        }
        for kind in &hook.events {
            kind.parse::<EventKind>().map_err(|e| format!("[[webhooks]] `{}`: {e}", hook.name))?;
        }
    }
    delivery(notify).map(|_| ())
}

/// The delivery settings of `[notify]`, with their defaults.
pub fn delivery(notify: &NotifyEntry) -> Result<Delivery, String> {
    let duration = |key: &str, value: &Option<String>, default: Duration| match value {
        None => Ok(default),
        Some(text) => parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("[notify] {key} = `{text}` is not a duration such as `250ms`, `10s` or `5m`")),
    };
    Ok(Delivery {
        poll: duration("poll", &notify.poll, Duration::from_secs(1))?,
        timeout: duration("timeout", &notify.timeout, Duration::from_secs(10))?,
        retry_base: duration("retry_base", &notify.retry_base, Duration::from_secs(1))?,
        retry_max: duration("retry_max", &notify.retry_max, Duration::from_secs(600))?,
        max_attempts: match notify.max_attempts {
            Some(0) => return Err("[notify] max_attempts must be at least 1".into()),
            Some(n) => n,
            None => 20,
        },
        max_age: duration("max_age", &notify.max_age, Duration::from_secs(86_400))?,
    })
}

/// `250ms`, or what `flowgate_core::parse_duration` takes (`10s`, `5m`, `1h30m`).
fn parse_duration(text: &str) -> Option<Duration> {
    match text.trim().strip_suffix("ms") {
        Some(ms) => ms.parse().ok().map(Duration::from_millis),
        None => flowgate_core::parse_duration(text),
    }
}

/// The webhooks with their secrets read from `lookup` (the process's
/// environment). A variable unset or empty, or a URL that is not http(s), is an
/// error naming the webhook and the variable, never the value.
pub fn resolve(hooks: &[WebhookEntry], lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<Webhook>, String> {
    hooks
        .iter()
        .map(|hook| {
            let read = |from: &FromEnv, what: &str| {
                lookup(&from.env).filter(|v| !v.is_empty()).ok_or_else(|| {
                    format!("webhook `{}`: its {what} comes from `{}`, which is not set", hook.name, from.env)
                })
            };
            let url = read(&hook.url, "URL")?;
            let url = reqwest::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| format!("webhook `{}`: `{}` does not hold an http(s) URL", hook.name, hook.url.env))?;
            Ok(Webhook {
                name: hook.name.clone(),
                url,
                secret: read(&hook.secret, "signing key")?.into_bytes(),
                format: hook.format,
                projects: hook.projects.clone(),
                envs: hook.envs.clone(),
                events: hook.events.iter().filter_map(|k| k.parse().ok()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> WebhookEntry {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn secrets_come_from_the_environment_and_errors_never_show_them() {
        let hooks = [entry("name = \"ops\"\nurl = { env = \"HOOK_URL\" }\nsecret = { env = \"HOOK_KEY\" }\n")];
        let env = |url: &'static str| move |name: &str| (name == "HOOK_URL").then(|| url.to_string());
        let err = resolve(&hooks, env("https://hooks.example/T0/secret-path")).unwrap_err();
        assert_eq!(err, "webhook `ops`: its signing key comes from `HOOK_KEY`, which is not set");
        let both = |name: &str| match name {
            "HOOK_URL" => Some("ftp://hooks.example/secret-path".to_string()),
            _ => Some("k".to_string()),
        };
        let err = resolve(&hooks, both).unwrap_err();
        assert!(err.contains("`HOOK_URL` does not hold an http(s) URL") && !err.contains("secret-path"), "{err}");
        let ok = |name: &str| Some(if name == "HOOK_URL" { "https://hooks.example/x".into() } else { "k".into() });
        let resolved = resolve(&hooks, ok).unwrap();
        assert!(!format!("{resolved:?}").contains("hooks.example"), "Debug shows no URL");
    }

    #[test]
    fn durations_take_milliseconds_and_mistakes_are_named() {
        let notify: NotifyEntry = toml::from_str("poll = \"250ms\"\nretry_base = \"2s\"\nretry_max = \"5s\"").unwrap();
        let d = delivery(&notify).unwrap();
        assert_eq!((d.poll, d.timeout), (Duration::from_millis(250), Duration::from_secs(10)));
        let waits: Vec<u64> = (1..=4).map(|n| d.backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 5, 5], "doubling, capped at retry_max");
        let bad: NotifyEntry = toml::from_str("timeout = \"soon\"").unwrap();
        assert!(delivery(&bad).unwrap_err().contains("timeout = `soon`"));
        let hooks = [entry("name = \"a\"\nurl = { env = \"U\" }\nsecret = { env = \"K\" }\nevents = [\"deploy\"]\n")];
        assert!(check(&hooks, &NotifyEntry::default()).unwrap_err().contains("unknown event `deploy`"));
        let valid = WebhookEntry { events: Vec::new(), ..hooks[0].clone() };
        let twice = [valid.clone(), valid];
        assert!(check(&twice, &NotifyEntry::default()).unwrap_err().contains("given twice"));
    }
}

#[cfg(test)]
mod readme {
    use super::*;

    #[derive(Deserialize)]
    struct Section {
        webhooks: Vec<WebhookEntry>,
        notify: NotifyEntry,
    }

    #[test]
    fn the_readme_example_is_a_good_config_with_the_defaults_it_shows() {
        let readme = include_str!("../../../../../README.md");
        let section = &readme[readme.find("### Notifications").expect("the README's notifications section")..];
        let block = section.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block");
        let parsed: Section = toml::from_str(block).unwrap_or_else(|e| panic!("the README's webhooks: {e}"));
        check(&parsed.webhooks, &parsed.notify).unwrap();
        let shown = delivery(&parsed.notify).unwrap();
        let defaults = delivery(&NotifyEntry::default()).unwrap();
        assert_eq!(format!("{shown:?}"), format!("{defaults:?}"), "the README shows the defaults");
    }
}
