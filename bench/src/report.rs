//! The results table: each benchmark's flowgate median beside its baseline median
//! from the same run, the ratio, the target and whether this run met it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::timing::{fmt_duration, Timing};

/// What a benchmark aims for.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// flowgate / baseline at most this. Met only when the ranges agree too:
    /// flowgate's slowest run over the baseline's fastest is at most this
    /// (otherwise the medians meeting it is "within noise").
    Ratio(f64),
    /// flowgate's median at most this, whatever the baseline.
    Absolute(Duration),
    /// flowgate's median minus the baseline's at most `max`: what flowgate
    /// adds to a baseline that does the same work but the part measured.
    /// `worst` is the largest difference the ranges allow (slowest flowgate
    /// run minus fastest baseline run): over `max`, the verdict is "within
    /// noise" even when the medians meet it.
    Added { max: Duration, worst: Duration },
    /// No target: a second baseline shown for context.
    None,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub benchmark: String,
    pub flowgate: Duration,
    /// flowgate's slowest run: an absolute target it is over is "within noise".
    pub flowgate_max: Duration,
    pub baseline_label: String,
    pub baseline: Duration,
    /// The baseline's fastest run: with `flowgate_max`, the worst ratio the ranges allow.
    pub baseline_min: Duration,
    pub target: Target,
}

impl Row {
    pub fn new(benchmark: &str, flowgate: &Timing, baseline: &Timing, target: Target) -> Self {
        Row {
            benchmark: benchmark.to_string(),
            flowgate: flowgate.median(),
            flowgate_max: flowgate.max(),
            baseline_label: baseline.label.clone(),
            baseline: baseline.median(),
            baseline_min: baseline.min(),
            target,
        }
    }

    pub fn ratio(&self) -> f64 {
        self.flowgate.as_secs_f64() / self.baseline.as_secs_f64().max(1e-9)
    }

    /// flowgate's slowest run over the baseline's fastest.
    pub fn worst_ratio(&self) -> f64 {
        self.flowgate_max.as_secs_f64() / self.baseline_min.as_secs_f64().max(1e-9)
    }

    /// `Some(true)` when this run met the target, `None` when there is none.
    pub fn met(&self) -> Option<bool> {
        match self.target {
            Target::Ratio(max) => Some(self.ratio() <= max),
            Target::Absolute(max) => Some(self.flowgate <= max),
            Target::Added { max, .. } => Some(self.flowgate.saturating_sub(self.baseline) <= max),
            Target::None => None,
        }
    }
}

fn target_text(target: Target) -> String {
    match target {
        // A speed-up target reads as one: `≥ 15× faster`, not `≤ 0.1×`.
        Target::Ratio(max) if max < 1.0 => format!("≥ {:.0}× faster", 1.0 / max),
        Target::Ratio(max) => format!("≤ {max:.1}×"),
        Target::Absolute(max) => format!("≤ {}", fmt_duration(max)).replace(".0 ms", " ms"),
        Target::Added { max, .. } => format!("≤ {} added", fmt_duration(max)).replace(".0 ms", " ms"),
        Target::None => "—".to_string(),
    }
}

/// A Markdown table of the rows (medians), ready to paste into a README.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| benchmark | flowgate | baseline | ratio | target | met |\n");
    out.push_str("|---|---:|---|---:|---|---|\n");
    for row in rows {
        let met = match (row.met(), row.target) {
            (Some(true), Target::Added { max, worst }) if worst > max => "within noise",
            (Some(true), Target::Absolute(max)) if row.flowgate_max > max => "within noise",
            (Some(true), Target::Ratio(max)) if row.worst_ratio() > max => "within noise",
            (Some(true), _) => "yes",
            (Some(false), _) => "**MISSED**",
            (None, _) => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | `{}` {} | {:.2}× | {} | {} |",
            row.benchmark,
            fmt_duration(row.flowgate),
            row.baseline_label.replace('|', "\\|"),
            fmt_duration(row.baseline),
            row.ratio(),
            target_text(row.target),
            met
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(flowgate_ms: u64, baseline_ms: u64, target: Target) -> Row {
        Row {
            benchmark: "b".into(),
            flowgate: Duration::from_millis(flowgate_ms),
            flowgate_max: Duration::from_millis(flowgate_ms),
            baseline_label: "base".into(),
            baseline: Duration::from_millis(baseline_ms),
            baseline_min: Duration::from_millis(baseline_ms),
            target,
        }
    }

    #[test]
    fn ratio_targets_compare_the_ratio_and_absolute_targets_the_time() {
        assert_eq!(row(90, 100, Target::Ratio(1.0)).met(), Some(true));
        assert_eq!(row(160, 100, Target::Ratio(1.5)).met(), Some(false));
        assert_eq!(row(50, 1, Target::Absolute(Duration::from_millis(100))).met(), Some(true));
        assert_eq!(row(150, 1000, Target::Absolute(Duration::from_millis(100))).met(), Some(false));
        assert_eq!(row(1, 1, Target::None).met(), None);
        let added = |worst| Target::Added { max: Duration::from_millis(300), worst: Duration::from_millis(worst) };
        assert_eq!(row(330, 100, added(250)).met(), Some(true));
        assert_eq!(row(430, 100, added(350)).met(), Some(false));
        assert!(table(&[row(330, 100, added(250))]).contains("| yes |"));
        assert!(table(&[row(330, 100, added(400))]).contains("| within noise |"));
        let absolute = Target::Absolute(Duration::from_millis(500));
        assert!(table(&[row(290, 1, absolute)]).contains("| yes |"));
        let outlier = Row { flowgate_max: Duration::from_millis(750), ..row(290, 1, absolute) };
        assert!(table(&[outlier]).contains("| within noise |"), "a slowest run over an absolute target");
        let speedup = Target::Ratio(1.0 / 15.0);
        assert!(table(&[row(60, 1000, speedup)]).contains("| ≥ 15× faster | yes |"));
        let overlapping = Row { flowgate_max: Duration::from_millis(80), ..row(60, 1000, speedup) };
        assert!(
            table(std::slice::from_ref(&overlapping)).contains("| within noise |"),
            "80 ms against 1,000 ms is 12.5×"
        );
        let fast_baseline_run = Row { baseline_min: Duration::from_millis(700), ..row(60, 1000, speedup) };
        assert!(table(&[fast_baseline_run]).contains("| within noise |"), "60 ms against 700 ms is 11.7×");
        assert_eq!(overlapping.met(), Some(true), "the medians meet it");
    }

    #[test]
    fn pipes_in_a_baseline_command_do_not_split_the_cell() {
        let mut r = row(1, 1, Target::None);
        r.baseline_label = "a | b".into();
        assert!(table(&[r]).contains("`a \\| b`"));
    }

    #[test]
    fn table_shows_medians_ratio_target_and_verdict() {
        let text =
            table(&[row(150, 100, Target::Ratio(1.0)), row(20, 10, Target::Absolute(Duration::from_millis(100)))]);
        assert!(text.contains("| b | 150.0 ms | `base` 100.0 ms | 1.50× | ≤ 1.0× | **MISSED** |"), "{text}");
        assert!(text.contains("| b | 20.0 ms | `base` 10.0 ms | 2.00× | ≤ 100 ms | yes |"), "{text}");
    }
}
