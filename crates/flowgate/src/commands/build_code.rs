//! Each flow's code closure, computed when a build is made: the bundle files
//! the flow can load (see `flowgate_entrypoint::ClosureIndex`), summed up as
//! a digest that changes exactly when one of them does. Recorded with the
//! build's settings, it tells which flows a commit changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::Result;
use flowgate_config::Config;
use flowgate_core::{FlowCode, FlowKey};
use flowgate_entrypoint::{closure_digest, ClosureIndex};

use super::build_check::entrypoint_file;
use crate::exit::usage;

/// The code of every configured flow whose entrypoint is in `bundle` (paths
/// relative to `root`, where the files are read).
pub fn flow_code(config: &Config, bundle: &BTreeSet<String>, root: &Path) -> Result<BTreeMap<FlowKey, FlowCode>> {
    let read = |path: &str| if bundle.contains(path) { std::fs::read_to_string(root.join(path)).ok() } else { None };
    // One index per python_path: flows sharing one parse each module once.
    let mut indexes: HashMap<Vec<String>, ClosureIndex<'_>> = HashMap::new();
    let mut hashes: HashMap<String, String> = HashMap::new();
    let mut out = BTreeMap::new();
    for (key, flow) in config.flows() {
        let Some(file) = entrypoint_file(config, flow, |f| bundle.contains(f)) else { continue };
        let python_path = config.python_path(flow).to_vec();
        let index =
            indexes.entry(python_path.clone()).or_insert_with(|| ClosureIndex::new(bundle, &read, &python_path));
        let depends = flow.depends.as_deref().unwrap_or_default();
        let closure = index.closure(&file, depends).map_err(|e| usage(format!("Flow `{key}`: {e}")))?;
        let whole_bundle = closure
            .whole_bundle
            .then(|| closure.dynamic.first().map(|d| format!("{}:{}: {}", d.file, d.line, d.what)))
            .flatten();
        for path in &closure.files {
            if !hashes.contains_key(path) {
                // A file that cannot be read hashes as absent: the build fails on it later anyway.
                let bytes = std::fs::read(root.join(path)).unwrap_or_default();
                hashes.insert(path.clone(), blake3::hash(&bytes).to_hex().to_string());
            }
        }
        let digest = closure_digest(closure.files.iter().map(|p| (p.as_str(), hashes[p].as_str())));
        let paths = if whole_bundle.is_some() { Vec::new() } else { closure.files.iter().cloned().collect() };
        out.insert(key.clone(), FlowCode { digest, files: closure.files.len() as u64, whole_bundle, paths });
    }
    Ok(out)
}
