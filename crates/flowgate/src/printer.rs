//! Where output goes: one JSON document or human text on stdout, progress and
//! notes on stderr (notes only when not `--quiet`, progress only on a terminal).

use std::io::{IsTerminal, Write};

use anyhow::Result;
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
}

impl Printer {
    /// Print the command's result: `value` as JSON, or the text `render` writes.
    pub fn result<T: Serialize>(&self, value: &T, render: impl FnOnce(&mut String)) -> Result<()> {
        let mut out = String::new();
        if self.json {
            out = serde_json::to_string_pretty(value)?;
            out.push('\n');
        } else {
            render(&mut out);
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }

    /// A human note on stderr (what was skipped, what could not be carried over).
    pub fn note(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    /// Whether progress lines are wanted: stderr is a terminal and not quiet.
    pub fn progress_enabled(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// Pads columns to their widest cell, as `git` and `kubectl` tables do.
pub fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// "3m", "2h", "5d": how long ago, coarse enough to read at a glance.
pub fn age(then: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
