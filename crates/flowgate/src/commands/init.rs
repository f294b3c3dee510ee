//! `flowgate init`: a starting `flowgate.toml`, optionally imported from the
//! deployments of an existing prefect.yaml.

use std::path::Path;

use anyhow::{Context as _, Result};
use flowgate_config::{ImportContext, ImportCounts, ImportItem, Imported, Outcome};
use flowgate_core::ProjectName;
use serde::Serialize;

use crate::cli::InitArgs;
use crate::exit::usage;
use crate::printer::Printer;
use crate::project::CONFIG_FILE;

#[derive(Serialize)]
struct Initialized {
    path: String,
    imported_from: Option<String>,
    /// Every translation, drop and piece of advice, each once.
    notes: Vec<String>,
    /// How many deployments became flows and how many values were carried, translated, dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<ImportCounts>,
    /// Each value of the prefect.yaml and what became of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    items: Vec<ImportItem>,
}

pub fn run(dir: &Path, args: InitArgs, printer: Printer) -> Result<()> {
    let target = dir.join(CONFIG_FILE);
    if target.exists() && !args.force {
        return Err(usage(format!("`{}` already exists; pass --force to overwrite it", target.display())));
    }
    let name: ProjectName = match &args.name {
        Some(name) => name.parse()?,
        None => project_name_of(dir),
    };
    let name = name.as_str();
    let (text, imported) = match &args.from_prefect_yaml {
        Some(file) => {
            let path = dir.join(file);
            let yaml = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("Failed to read `{}`: {e}", path.display())))?;
            let cx = ImportContext {
                own_repository: crate::git::Repo::discover(dir).ok().and_then(|repo| repo.origin_remote()),
                name_from_file: args.name.is_none(),
            };
            let imported = flowgate_config::import_prefect_yaml_with(name, &yaml, &cx)?;
            (imported.toml.clone(), Some(imported))
        }
        None => (flowgate_config::starter_toml(name, &[]), None),
    };
    std::fs::write(&target, text).with_context(|| format!("Failed to write `{}`", target.display()))?;
    ignore_state_dir(dir)?;
    let result = Initialized {
        path: target.display().to_string(),
        imported_from: args.from_prefect_yaml.map(|p| p.display().to_string()),
        notes: imported.as_ref().map(|i| i.notes.clone()).unwrap_or_default(),
        summary: imported.as_ref().map(|i| i.counts),
        items: imported.as_ref().map(|i| i.items.clone()).unwrap_or_default(),
    };
    printer.result(&result, |out| {
        out.push_str(&format!("Wrote {}\n", result.path));
        if let (Some(imported), Some(from)) = (&imported, &result.imported_from) {
            out.push_str(&import_summary(imported, from));
        }
    })
}

/// `Imported 4 of 5 deployments …` and each note once under its outcome.
fn import_summary(imported: &Imported, from: &str) -> String {
    let c = imported.counts;
    let mut out = format!(
        "Imported {} of {} deployments from {from} as flows: {} values carried, {} translated, {} dropped.\n",
        c.flows, c.deployments, c.carried, c.translated, c.dropped
    );
    let mut printed = std::collections::HashSet::new();
    for outcome in [Outcome::Translated, Outcome::Dropped] {
        for item in imported.items.iter().filter(|i| i.outcome == outcome) {
            let Some(note) = item.note.as_deref() else { continue };
            if printed.insert(note) {
                let label = if outcome == Outcome::Translated { "translated" } else { "dropped" };
                out.push_str(&format!("{label}: {note}\n"));
            }
        }
    }
    for note in imported.notes.iter().filter(|n| !printed.contains(n.as_str())) {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// A valid project name from the directory's name (`My Flows` → `my-flows`),
/// else `flows`.
fn project_name_of(dir: &Path) -> ProjectName {
    let base = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let cleaned = flowgate_config::sanitize_user(&base);
    cleaned.parse().ok().filter(|_| !base.is_empty()).unwrap_or_else(|| "flows".parse().expect("a valid name"))
}

/// `.flowgate/` holds the local ledger, store and caches: never commit it.
fn ignore_state_dir(dir: &Path) -> Result<()> {
    let path = dir.join(".gitignore");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current.lines().any(|l| matches!(l.trim(), ".flowgate" | ".flowgate/" | "/.flowgate/" | "/.flowgate")) {
        return Ok(());
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(".flowgate/\n");
    std::fs::write(&path, text).with_context(|| format!("Failed to write `{}`", path.display()))
}
