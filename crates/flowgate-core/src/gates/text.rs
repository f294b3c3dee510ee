//! How gate details write times, durations, shares and lists, so every detail
//! reads the same way.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// RFC 3339 in UTC with a `Z`; sub-second digits only when there are some.
pub(super) fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A duration as it is written in `flowgate.toml` (`2h`, `1h30m`, `1d`), with
/// milliseconds when there are some (`1h59m59.999s`); negative shows as `0s`.
pub(super) fn duration(d: TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (hours, rest) = (rest / 3_600_000, rest % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    for (n, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if millis > 0 {
        let frac = format!("{millis:03}");
        out.push_str(&format!("{seconds}.{}s", frac.trim_end_matches('0')));
    } else if seconds > 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// A std duration from the policy; one too long for chrono is treated as
/// forever (nothing soaks that long).
pub(super) fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// A share as a percentage with at most two decimals: `10%`, `33.33%`.
pub(super) fn percent(share: f64) -> String {
    let text = format!("{:.2}", share * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// `` `a`, `b`, `c` `` for a list of names.
pub(super) fn ticked<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_config() {
        let cases = [
            (TimeDelta::hours(2), "2h"),
            (TimeDelta::minutes(90), "1h30m"),
            (TimeDelta::hours(2) - TimeDelta::milliseconds(1), "1h59m59.999s"),
            (TimeDelta::milliseconds(1500), "1.5s"),
            (TimeDelta::days(1) + TimeDelta::seconds(5), "1d5s"),
            (TimeDelta::zero(), "0s"),
            (TimeDelta::seconds(-5), "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn percentages_drop_needless_zeros() {
        assert_eq!(percent(0.1), "10%");
        assert_eq!(percent(1.0 / 3.0), "33.33%");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(0.0), "0%");
    }
}
