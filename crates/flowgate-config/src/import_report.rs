//! What became of each value of an imported prefect.yaml: carried as it was,
//! translated into flowgate's terms, or dropped. Every translation and drop
//! carries a note saying what changed and what to do instead, so nothing is
//! lost without a word.

use serde::Serialize;

/// What became of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// In `flowgate.toml` with the same meaning and the same text.
    Carried,
    /// In `flowgate.toml` with the same meaning, written differently.
    Translated,
    /// Not in `flowgate.toml`; the note says what to do instead.
    Dropped,
}

/// One value of the prefect.yaml and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportItem {
    /// The deployment it belongs to, by its prefect.yaml name; `None` at the top level.
    pub deployment: Option<String>,
    /// Where it was: `parameters.days`, `work_pool.job_variables.env`, `pull[1]`.
    pub path: String,
    pub outcome: Outcome,
    /// What changed and what to do instead; `None` for a value carried as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How many values had each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub deployments: usize,
    pub flows: usize,
    pub carried: usize,
    pub translated: usize,
    pub dropped: usize,
}

/// Collects items and advice while a prefect.yaml is read.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub items: Vec<ImportItem>,
    /// Advice about the file as a whole that is not one value (a deployment
    /// without a work pool): printed with the notes, not counted.
    pub advice: Vec<String>,
    /// The deployment the next items belong to.
    deployment: Option<String>,
}

impl Report {
    /// Items recorded from now on belong to `deployment` (`None`: the top level).
    pub fn enter(&mut self, deployment: Option<&str>) {
        self.deployment = deployment.map(str::to_string);
    }

    pub fn carried(&mut self, path: impl Into<String>) {
        self.push(path.into(), Outcome::Carried, None);
    }

    pub fn translated(&mut self, path: impl Into<String>, note: impl Into<String>) {
        self.push(path.into(), Outcome::Translated, Some(note.into()));
    }

    pub fn dropped(&mut self, path: impl Into<String>, note: impl Into<String>) {
        self.push(path.into(), Outcome::Dropped, Some(note.into()));
    }

    pub fn advise(&mut self, note: impl Into<String>) {
        self.advice.push(note.into());
    }

    fn push(&mut self, path: String, outcome: Outcome, note: Option<String>) {
        self.items.push(ImportItem { deployment: self.deployment.clone(), path, outcome, note });
    }

    /// Every note once, in the order first written: translations and drops, then advice.
    pub fn notes(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let notes = self.items.iter().filter_map(|i| i.note.as_deref()).chain(self.advice.iter().map(String::as_str));
        notes.filter(|n| seen.insert(*n)).map(str::to_string).collect()
    }

    pub fn counts(&self, deployments: usize, flows: usize) -> ImportCounts {
        let count = |o: Outcome| self.items.iter().filter(|i| i.outcome == o).count();
        ImportCounts {
            deployments,
            flows,
            carried: count(Outcome::Carried),
            translated: count(Outcome::Translated),
            dropped: count(Outcome::Dropped),
        }
    }
}
