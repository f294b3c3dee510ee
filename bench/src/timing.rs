//! Wall-clock timing of whole processes: each command runs N times after a warm-up
//! (untimed preparation before every run), and the median is what gets compared.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// The wall-clock times of the timed runs of one command.
#[derive(Debug, Clone)]
pub struct Timing {
    pub label: String,
    pub samples: Vec<Duration>,
}

impl Timing {
    pub fn median(&self) -> Duration {
        median(&self.samples)
    }

    pub fn min(&self) -> Duration {
        self.samples.iter().copied().min().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.samples.iter().copied().max().unwrap_or_default()
    }

    /// `1.2 s (min 1.1 s, max 1.4 s)`: the median and the range, as notes print them.
    pub fn spread(&self) -> String {
        format!("{} (min {}, max {})", fmt_duration(self.median()), fmt_duration(self.min()), fmt_duration(self.max()))
    }

    /// Prints the timing's median, range and run count on stderr, as progress.
    pub fn report(&self) {
        eprintln!(
            "  {}: median {} (min {}, max {}, {} runs)",
            self.label,
            fmt_duration(self.median()),
            fmt_duration(self.min()),
            fmt_duration(self.max()),
            self.samples.len()
        );
    }
}

/// The median (mean of the two middle values for an even count); zero if empty.
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// How to run one measured command.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub warmup: usize,
    pub runs: usize,
}

/// One command to time: `prepare` runs untimed before every run.
pub struct Case<'a> {
    pub label: String,
    pub prepare: Box<dyn FnMut() -> Result<()> + 'a>,
    pub make: Box<dyn FnMut() -> Command + 'a>,
}

impl<'a> Case<'a> {
    pub fn new(label: &str, prepare: impl FnMut() -> Result<()> + 'a, make: impl FnMut() -> Command + 'a) -> Self {
        Case { label: label.to_string(), prepare: Box::new(prepare), make: Box::new(make) }
    }

    /// A case that needs no preparation.
    pub fn plain(label: &str, make: impl FnMut() -> Command + 'a) -> Self {
        Case::new(label, || Ok(()), make)
    }
}

impl std::fmt::Debug for Case<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("label", &self.label).finish_non_exhaustive()
    }
}

/// Time the cases in rounds (one run of each per round, warm-up rounds first), so
/// flowgate and its baselines share whatever else the machine is doing. Stdout
/// goes to /dev/null; any run that exits non-zero is an error.
pub fn measure_interleaved(plan: Plan, mut cases: Vec<Case<'_>>) -> Result<Vec<Timing>> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(plan.runs); cases.len()];
    for round in 0..plan.warmup + plan.runs {
        for (case, samples) in cases.iter_mut().zip(&mut samples) {
            let elapsed = run_once(case)?;
            if round >= plan.warmup {
                samples.push(elapsed);
            }
        }
    }
    let timings: Vec<Timing> =
        cases.iter().zip(samples).map(|(case, samples)| Timing { label: case.label.clone(), samples }).collect();
    for timing in &timings {
        timing.report();
    }
    Ok(timings)
}

fn run_once(case: &mut Case<'_>) -> Result<Duration> {
    let label = &case.label;
    (case.prepare)().with_context(|| format!("Failed to prepare a run of `{label}`"))?;
    let mut cmd = (case.make)();
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let output = cmd.output().with_context(|| format!("Failed to start `{label}`"))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!("`{label}` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(elapsed)
}

/// Run a command once and return its stdout; fail with its stderr.
pub fn capture(label: &str, mut cmd: Command) -> Result<String> {
    let output = cmd.stdin(Stdio::null()).output().with_context(|| format!("Failed to start `{label}`"))?;
    if !output.status.success() {
        bail!("`{label}` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{label}` printed something that is not UTF-8"))
}

/// `12.3 ms` under a second, `1.234 s` above.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(median(&[ms(4), ms(1), ms(3), ms(100)]), Duration::from_micros(3500));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn measure_counts_only_timed_runs_interleaves_and_reports_failures() {
        let order = std::cell::RefCell::new(Vec::new());
        let plan = Plan { warmup: 1, runs: 3 };
        let cases = vec![
            Case::new(
                "a",
                || {
                    order.borrow_mut().push('a');
                    Ok(())
                },
                || Command::new("true"),
            ),
            Case::new(
                "b",
                || {
                    order.borrow_mut().push('b');
                    Ok(())
                },
                || Command::new("true"),
            ),
        ];
        let timings = measure_interleaved(plan, cases).unwrap();
        assert_eq!(timings.iter().map(|t| t.samples.len()).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(order.borrow().iter().collect::<String>(), "abababab");
        let err = measure_interleaved(plan, vec![Case::plain("false", || Command::new("false"))]).unwrap_err();
        assert!(err.to_string().contains("`false` failed"), "{err}");
    }

    #[test]
    fn durations_print_in_ms_or_s() {
        assert_eq!(fmt_duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(fmt_duration(Duration::from_millis(1_234)), "1.234 s");
    }
}
