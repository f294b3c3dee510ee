//! `flowgate init`: a starting `flowgate.toml`, optionally imported from the
//! deployments of an existing prefect.yaml.

use std::path::Path;

use anyhow::{Context as _, Result};
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
    notes: Vec<String>,
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
    let (text, notes) = match &args.from_prefect_yaml {
        Some(file) => {
            let path = dir.join(file);
            let yaml = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("Failed to read `{}`: {e}", path.display())))?;
            let imported = flowgate_config::import_prefect_yaml(name, &yaml)?;
            (imported.toml, imported.notes)
        }
        None => (flowgate_config::starter_toml(name, &[]), Vec::new()),
    };
    std::fs::write(&target, text).with_context(|| format!("Failed to write `{}`", target.display()))?;
    ignore_state_dir(dir)?;
    let result = Initialized {
        path: target.display().to_string(),
        imported_from: args.from_prefect_yaml.map(|p| p.display().to_string()),
        notes,
    };
    printer.result(&result, |out| {
        out.push_str(&format!("Wrote {}\n", result.path));
        for note in &result.notes {
            out.push_str(&format!("note: {note}\n"));
        }
    })
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
