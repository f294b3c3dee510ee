//! The flows' signatures (Prefect name, description, parameter schema) that a
//! build reads from their entrypoints, kept in `.flowgate/cache/flows.json`
//! with the hash of every file the reading read. A rebuild whose files the
//! stat index vouches for (an unchanged tree) takes them from there when the
//! bundle's file list and those hashes are the same, and parses nothing. Like
//! the stat index and the closure cache, it is a cache: missing, damaged or
//! stale, it costs time, never a wrong answer. Only answers are kept, never
//! refusals: a flow the reader refuses is read again, and the build fails.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use flowgate_entrypoint::{FlowReader, FlowSignature};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::build_code::{file_hash, write_atomically};

/// Bumped whenever what the reader answers changes, so remembered answers are forgotten.
const CACHE_VERSION: &str = "flowgate-signatures-v1";

#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    key: String,
    files: Vec<(String, String)>,
    flows: Vec<CachedFlow>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedFlow {
    entrypoint: String,
    function: String,
    python_path: Vec<String>,
    flow_name: String,
    parameter_schema: Value,
    description: Option<String>,
}

/// The cache of one build: what it gave the reader, to save what it lacked.
#[derive(Debug)]
pub struct SignatureCache {
    path: PathBuf,
    key: String,
    /// The files the remembered answers were read from, with their hashes.
    files: Vec<(String, String)>,
    remembered: usize,
}

/// Gives `reader` the answers the cache holds for these very files. `known`
/// is the stat index's hash of every bundle file, when it vouched for all.
pub fn seed(
    root: &Path,
    bundle: &BTreeSet<String>,
    known: Option<&HashMap<String, String>>,
    reader: &FlowReader<'_>,
) -> SignatureCache {
    let path = root.join(".flowgate").join("cache").join("flows.json");
    let key = cache_key(bundle);
    let mut cache = SignatureCache { path, key, files: Vec::new(), remembered: 0 };
    let Some(known) = known else { return cache };
    let Some(cached) = read(&cache.path) else { return cache };
    if cached.key != cache.key || cached.files.iter().any(|(file, hash)| known.get(file) != Some(hash)) {
        return cache;
    }
    for flow in cached.flows {
        let signature = FlowSignature {
            flow_name: flow.flow_name,
            function: flow.function.clone(),
            parameter_schema: flow.parameter_schema,
            description: flow.description,
        };
        reader.remember(&flow.entrypoint, &flow.function, &flow.python_path, signature);
        cache.remembered += 1;
    }
    cache.files = cached.files;
    tracing::debug!(flows = cache.remembered, "flow signatures from the cache");
    cache
}

impl SignatureCache {
    /// Saves every answer `reader` holds, when it read any the cache lacked.
    pub fn save(self, root: &Path, known: Option<&HashMap<String, String>>, reader: &FlowReader<'_>) {
        if reader.answered() <= self.remembered {
            return;
        }
        let signatures = reader.signatures();
        let mut files: HashMap<String, String> = self.files.into_iter().collect();
        for file in reader.files_read() {
            if let std::collections::hash_map::Entry::Vacant(slot) = files.entry(file) {
                let hash =
                    known.and_then(|k| k.get(slot.key()).cloned()).unwrap_or_else(|| file_hash(root, slot.key()));
                slot.insert(hash);
            }
        }
        let mut files: Vec<(String, String)> = files.into_iter().collect();
        files.sort_unstable();
        let flows = signatures
            .into_iter()
            .map(|(entrypoint, function, python_path, signature)| CachedFlow {
                entrypoint,
                function,
                python_path,
                flow_name: signature.flow_name,
                parameter_schema: signature.parameter_schema,
                description: signature.description,
            })
            .collect();
        let cached = Cached { key: self.key, files, flows };
        if let Err(e) = write_atomically(&self.path, &cached) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot save the flow signature cache");
        }
    }
}

fn read(path: &Path) -> Option<Cached> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::debug!(path = %path.display(), error = %e, "unreadable flow signature cache"))
        .ok()
}

/// What the answers depend on besides file contents: which files the bundle
/// has (an import finds a module by its file being there).
fn cache_key(bundle: &BTreeSet<String>) -> String {
    // One buffer hashed once: thousands of tiny `update`s cost more than the hashing.
    let mut text = String::with_capacity(CACHE_VERSION.len() + 1 + bundle.iter().map(|p| p.len() + 1).sum::<usize>());
    text.push_str(CACHE_VERSION);
    text.push('\0');
    for path in bundle {
        text.push_str(path);
        text.push('\n');
    }
    blake3::hash(text.as_bytes()).to_hex().to_string()
}
