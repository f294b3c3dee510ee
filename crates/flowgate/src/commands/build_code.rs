//! Each flow's code closure, computed when a build is made: the bundle files
//! the flow can load (see `flowgate_entrypoint::ClosureIndex`), summed up as
//! a digest that changes exactly when one of them does. Recorded with the
//! build's settings, it tells which flows a commit changed.
//!
//! Each file is read once, for its imports and its hash together. The answer
//! is kept in `.flowgate/cache/closures.json` with the hash of every file it
//! read: a rebuild whose files the stat index vouches for (an unchanged tree)
//! takes it from there when those hashes, the bundle's file list and the
//! flows' entrypoints, `python_path` and `depends` are all the same, without
//! reading a file. The cache also keeps one digest of every bundle file's
//! hash: when the tree is the very one, that digest alone vouches for the
//! cache and the per-file hashes are not even parsed. Like the stat index, it
//! is a cache: missing, damaged or stale, it costs time, never a wrong digest.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use flowgate_config::Config;
use flowgate_core::{BuildSettings, FlowCode, FlowKey};
use flowgate_entrypoint::{closure_digest, ClosureIndex};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::build_check::entrypoint_file;
use crate::exit::usage;

/// Bumped whenever what a closure holds changes, so remembered ones are forgotten.
const CACHE_VERSION: &str = "flowgate-closures-v2";

/// One flow whose code is wanted: its entrypoint file, `python_path` and `depends`.
struct Job<'c> {
    key: &'c FlowKey,
    file: String,
    python_path: &'c [String],
    depends: &'c [String],
}

/// The code of every configured flow whose entrypoint is in `bundle` (paths
/// relative to `root`, where the files are read) and that `settings` holds (a
/// flow without deployment settings has nowhere to record it). `known` is the
/// stat index's hash of every bundle file when it vouched for all of them:
/// then the closures may come from the cache.
pub fn flow_code(
    config: &Config,
    bundle: &BTreeSet<String>,
    root: &Path,
    settings: &BuildSettings,
    known: Option<&HashMap<String, String>>,
) -> Result<BTreeMap<FlowKey, FlowCode>> {
    let wanted: BTreeSet<&FlowKey> = settings.envs().flat_map(|env| settings.flows(env).map(|(key, _)| key)).collect();
    let jobs: Vec<Job<'_>> = config
        .flows()
        .filter(|(key, _)| wanted.contains(key))
        .filter_map(|(key, flow)| {
            let file = entrypoint_file(config, flow, |f| bundle.contains(f))?;
            let depends = flow.depends.as_deref().unwrap_or_default();
            Some(Job { key, file, python_path: config.python_path(flow), depends })
        })
        .collect();
    if jobs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let cache_path = root.join(".flowgate").join("cache").join("closures.json");
    let key = cache_key(bundle, &jobs);
    let tree = known.map(tree_digest);
    if let (Some(known), Some(tree)) = (known, &tree) {
        if let Some(code) = cached(&cache_path, &key, tree, known) {
            tracing::debug!(flows = code.len(), "flow code from the cache");
            return Ok(code);
        }
    }

    // Hex BLAKE3 of every file read or hashed: what the digests and the cache use.
    let hashes: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    let hash_of = |path: &str, bytes: Option<&[u8]>| -> String {
        match (known.and_then(|k| k.get(path)), bytes) {
            (Some(hash), _) => hash.clone(),
            (None, Some(bytes)) => blake3::hash(bytes).to_hex().to_string(),
            (None, None) => file_hash(root, path),
        }
    };
    let read = |path: &str| {
        if !bundle.contains(path) {
            return None;
        }
        let bytes = std::fs::read(root.join(path)).ok();
        let hash = hash_of(path, Some(bytes.as_deref().unwrap_or_default()));
        hashes.borrow_mut().insert(path.to_string(), hash);
        String::from_utf8(bytes?).ok()
    };
    // One index per python_path: flows sharing one read each module once.
    let mut indexes: HashMap<&[String], ClosureIndex<'_>> = HashMap::new();
    let mut out = BTreeMap::new();
    for job in &jobs {
        let index = indexes.entry(job.python_path).or_insert_with(|| ClosureIndex::new(bundle, &read, job.python_path));
        let closure = index.closure(&job.file, job.depends).map_err(|e| usage(format!("Flow `{}`: {e}", job.key)))?;
        let whole_bundle = closure
            .whole_bundle
            .then(|| closure.dynamic.first().map(|d| format!("{}:{}: {}", d.file, d.line, d.what)))
            .flatten();
        let mut hashes = hashes.borrow_mut();
        for path in &closure.files {
            if !hashes.contains_key(path) {
                let hash = hash_of(path, None);
                hashes.insert(path.clone(), hash);
            }
        }
        let digest = closure_digest(closure.files.iter().map(|p| (p.as_str(), hashes[p].as_str())));
        let paths = if whole_bundle.is_some() { Vec::new() } else { closure.files.iter().cloned().collect() };
        out.insert(job.key.clone(), FlowCode { digest, files: closure.files.len() as u64, whole_bundle, paths });
    }
    drop(indexes);
    remember(&cache_path, key, tree, hashes.into_inner(), &out);
    Ok(out)
}

/// What the cache's answer depends on besides file contents: the bundle's
/// file list and each flow's entrypoint, `python_path` and `depends`.
fn cache_key(bundle: &BTreeSet<String>, jobs: &[Job<'_>]) -> String {
    // One buffer hashed once: thousands of tiny `update`s cost more than the hashing.
    let mut text = String::with_capacity(bundle.iter().map(|p| p.len() + 1).sum::<usize>() + 64 * jobs.len());
    text.push_str(CACHE_VERSION);
    text.push('\0');
    for path in bundle {
        text.push_str(path);
        text.push('\n');
    }
    for job in jobs {
        let fields = [job.key.as_str(), &job.file, &job.python_path.join("\n"), &job.depends.join("\n")];
        for field in fields {
            text.push('\0');
            text.push_str(field);
        }
    }
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// One digest of every bundle file's path and hash (`known`, the stat index's).
fn tree_digest(known: &HashMap<String, String>) -> String {
    let mut files: Vec<(&String, &String)> = known.iter().collect();
    files.sort_unstable();
    let mut text = String::with_capacity(files.iter().map(|(p, h)| p.len() + h.len() + 2).sum());
    for (path, hash) in files {
        for part in [path, hash] {
            text.push_str(part);
            text.push('\0');
        }
    }
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The cache file: the tree it was made from, every file the closures read
/// or hashed with those files' hashes (in the same order), and each flow's
/// code with its paths as indexes into that list.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    key: String,
    /// [`tree_digest`] of the tree, when the stat index vouched for it.
    tree: Option<String>,
    files: Vec<String>,
    /// `Vec<String>`, parsed only when `tree` is not this tree's.
    hashes: Box<RawValue>,
    flows: Vec<CachedFlow>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedFlow {
    flow: FlowKey,
    digest: String,
    files: u64,
    whole_bundle: Option<String>,
    paths: Vec<u32>,
}

/// The flows' code from the cache, when it was made with `key` and every file
/// it read still has the hash it had then (`known`: the stat index's hashes;
/// `tree`: their [`tree_digest`]).
fn cached(path: &Path, key: &str, tree: &str, known: &HashMap<String, String>) -> Option<BTreeMap<FlowKey, FlowCode>> {
    let bytes = std::fs::read(path).ok()?;
    let cached: Cached = serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::debug!(path = %path.display(), error = %e, "unreadable closure cache"))
        .ok()?;
    if cached.key != key {
        return None;
    }
    if cached.tree.as_deref() != Some(tree) {
        let hashes: Vec<String> = serde_json::from_str(cached.hashes.get()).ok()?;
        let same = hashes.len() == cached.files.len()
            && cached.files.iter().zip(&hashes).all(|(file, hash)| known.get(file) == Some(hash));
        if !same {
            return None;
        }
    }
    let mut out = BTreeMap::new();
    for flow in cached.flows {
        let paths = flow.paths.iter().map(|&i| cached.files.get(i as usize).cloned()).collect::<Option<_>>()?;
        out.insert(
            flow.flow,
            FlowCode { digest: flow.digest, files: flow.files, whole_bundle: flow.whole_bundle, paths },
        );
    }
    Some(out)
}

/// Writes the cache (atomically; a failure only costs the next rebuild time).
fn remember(
    path: &Path,
    key: String,
    tree: Option<String>,
    hashes: HashMap<String, String>,
    code: &BTreeMap<FlowKey, FlowCode>,
) {
    let mut read: Vec<(String, String)> = hashes.into_iter().collect();
    read.sort_unstable();
    let (files, hashes): (Vec<String>, Vec<String>) = read.into_iter().unzip();
    let Ok(hashes) = serde_json::value::to_raw_value(&hashes) else { return };
    let at: HashMap<&str, u32> = files.iter().enumerate().map(|(i, p)| (p.as_str(), i as u32)).collect();
    let flows = code
        .iter()
        .map(|(flow, code)| CachedFlow {
            flow: flow.clone(),
            digest: code.digest.clone(),
            files: code.files,
            whole_bundle: code.whole_bundle.clone(),
            paths: code.paths.iter().filter_map(|p| at.get(p.as_str()).copied()).collect(),
        })
        .collect();
    let cached = Cached { key, tree, files, hashes, flows };
    if let Err(e) = write_atomically(path, &cached) {
        tracing::warn!(path = %path.display(), error = %e, "cannot save the closure cache");
    }
}

/// The hex BLAKE3 of a bundle file; one that cannot be read hashes as empty
/// (the build fails on it later anyway).
pub fn file_hash(root: &Path, path: &str) -> String {
    blake3::hash(&std::fs::read(root.join(path)).unwrap_or_default()).to_hex().to_string()
}

/// Writes `value` as JSON to `path` through a temp file beside it, so a reader
/// sees the old file or the new one, never part of one.
pub fn write_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let mut writer = std::io::BufWriter::new(tmp.as_file_mut());
    serde_json::to_writer(&mut writer, value)?;
    writer.flush()?;
    drop(writer);
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
