//! The code closure of a flow: the bundle files its run can load. A build
//! records a digest of each flow's closure, so a commit that touches only
//! flow B's modules shows flow A's code unchanged, and releases can say which
//! flows a change really affects.
//!
//! Python is never run. Imports are resolved the way Python's path finder
//! does at run time under Prefect's loader, against the bundle's file list
//! (no filesystem): the entrypoint is loaded as a package whose path is its
//! own directory then the working directory (the bundle root), and `sys.path`
//! starts with the entrypoint's directory, the bundle root, then the
//! configured `python_path` roots. A name found in none of them is
//! third-party or the standard library and is not part of the closure.
//!
//! The reading over-approximates where Python would decide at run time: every
//! import anywhere in a module counts (a function may be called, a
//! `TYPE_CHECKING` or `try:` branch may run), and `from pkg import x` counts
//! `pkg/x.py` whenever it exists. Where code loads what static reading cannot
//! know (`import_module(name)`, `exec(text)`, a file by path, a module that
//! does not parse), the flow depends on the whole bundle unless it declares
//! its dependencies with `depends` globs, and [`Closure::dynamic`] says where.
//!
//! Many flows share modules, so a [`ClosureIndex`] reads each file once and
//! remembers each module's resolved imports per search path; a closure is
//! then a walk over remembered edges. Files are read for their imports by a
//! token-level reader, with the full parser as its fallback (see
//! `closure_scan.rs`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use crate::closure_scan::{scan, Anchor, Import, Scan};

/// The name Prefect gives the entrypoint's module (`__prefect_loader__`), a
/// package whose `__path__` is the entrypoint's directory then the bundle root:
/// `from .x import y` in an entrypoint means `__prefect_loader__.x`.
const ENTRY: &str = "__prefect_loader__";

/// Files every flow depends on, by name at the bundle root: they decide the
/// environment the code runs in.
const SHARED: &[&str] =
    &["pyproject.toml", "setup.py", "setup.cfg", "uv.lock", "poetry.lock", "Pipfile", "Pipfile.lock"];

/// Shared files named by a prefix and suffix (`requirements-dev.txt`).
const SHARED_FAMILIES: &[(&str, &str)] = &[("requirements", ".txt"), ("constraints", ".txt")];

/// A load no static reading can follow, where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DynamicUse {
    /// The bundle path of the file.
    pub file: String,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    /// The call as written (`importlib.import_module(name)`), or
    /// `unreadable: ...` for a file that does not parse.
    pub what: String,
}

/// The bundle files one flow can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    /// What the flow's code digest covers: the entrypoint, the project modules
    /// it imports transitively (with the `__init__.py` of every package on the
    /// way), the [`shared_files`], and the files matching its `depends` globs.
    /// Every file of the bundle when [`Closure::whole_bundle`] is set.
    pub files: BTreeSet<String>,
    /// Loads that defeat static reading, in the files of the static closure,
    /// sorted by file and line.
    pub dynamic: Vec<DynamicUse>,
    /// `dynamic` is not empty and the flow declares no `depends`: the closure
    /// cannot be known, so the flow depends on the whole bundle.
    pub whole_bundle: bool,
}

/// A `depends` pattern that is not a glob.
#[derive(Debug, thiserror::Error)]
#[error("The `depends` pattern `{pattern}` is not a valid glob: {message}")]
pub struct DependsError {
    pub pattern: String,
    pub message: String,
}

/// The files every flow depends on: `pyproject.toml`, `setup.py`, `setup.cfg`,
/// `requirements*.txt`, `constraints*.txt`, `uv.lock`, `poetry.lock`,
/// `Pipfile` and `Pipfile.lock`, at the bundle root.
pub fn shared_files(files: &BTreeSet<String>) -> BTreeSet<String> {
    files
        .iter()
        .filter(|path| {
            !path.contains('/')
                && (SHARED.contains(&path.as_str())
                    || SHARED_FAMILIES
                        .iter()
                        .any(|(prefix, suffix)| path.starts_with(prefix) && path.ends_with(suffix)))
        })
        .cloned()
        .collect()
}

/// The files matching `depends` globs, with the semantics of `include`: `*`
/// does not cross `/`, `**` does, and a pattern matching a directory matches
/// everything below it.
pub fn declared_files(files: &BTreeSet<String>, depends: &[String]) -> Result<BTreeSet<String>, DependsError> {
    if depends.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut builder = globset::GlobSetBuilder::new();
    for pattern in depends {
        let glob = globset::GlobBuilder::new(pattern.trim_start_matches("./").trim_end_matches('/'))
            .literal_separator(true)
            .build()
            .map_err(|e| DependsError { pattern: pattern.clone(), message: e.kind().to_string() })?;
        builder.add(glob);
    }
    let set = builder.build().map_err(|e| DependsError { pattern: depends.join(", "), message: e.to_string() })?;
    Ok(files
        .iter()
        .filter(|path| set.is_match(path.as_str()) || path.match_indices('/').any(|(i, _)| set.is_match(&path[..i])))
        .cloned()
        .collect())
}

/// The digest of a closure: BLAKE3, hex, of one `path\0hash\n` line per file in
/// path order, where `hash` is the file's content hash as the caller records it
/// (the bundle's BLAKE3 hex). A flow's digest changes exactly when a file of its
/// closure is added, removed, renamed or edited.
pub fn closure_digest<'p>(files: impl IntoIterator<Item = (&'p str, &'p str)>) -> String {
    let mut files: Vec<(&str, &str)> = files.into_iter().collect();
    files.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    for (path, hash) in files {
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(hash.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

/// The closure of one flow; for many flows of one bundle use a [`ClosureIndex`],
/// which parses each module once.
pub fn closure(
    files: &BTreeSet<String>,
    read: &dyn Fn(&str) -> Option<String>,
    entrypoint_file: &str,
    python_path: &[String],
    depends: &[String],
) -> Result<Closure, DependsError> {
    ClosureIndex::new(files, read, python_path).closure(entrypoint_file, depends)
}

/// Answers the closures of many flows of one bundle, parsing each file once.
pub struct ClosureIndex<'a> {
    tree: Tree<'a>,
    scans: HashMap<String, Rc<Scan>>,
    /// Per entrypoint directory (the first search root): resolved modules.
    graphs: HashMap<String, Graph>,
}

impl std::fmt::Debug for ClosureIndex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosureIndex")
            .field("files", &self.tree.files.len())
            .field("parsed", &self.scans.len())
            .finish_non_exhaustive()
    }
}

/// The bundle's paths, as the import system sees them.
struct Tree<'a> {
    files: &'a BTreeSet<String>,
    /// Every directory holding a file, at any depth (namespace packages are
    /// directories without `__init__.py`).
    dirs: HashSet<String>,
    read: &'a dyn Fn(&str) -> Option<String>,
    python_path: Vec<String>,
    /// The [`shared_files`], in every closure.
    shared: BTreeSet<String>,
}

impl Tree<'_> {
    fn is_file(&self, path: &str) -> bool {
        self.files.contains(path)
    }
}

/// Where a module name was found.
#[derive(Debug)]
struct Found {
    /// The file Python executes: `x.py` or `x/__init__.py`; none for a
    /// namespace package.
    file: Option<String>,
    /// A package's `__path__`: where its submodules are searched. Empty for a
    /// plain module.
    search: Vec<String>,
}

/// One module's place in the walk: its file and the modules (by id) it makes
/// Python import.
#[derive(Debug)]
struct Node {
    file: Option<Rc<str>>,
    deps: Vec<usize>,
}

/// Resolution memo for one search path. Module names are interned: a closure
/// walk then touches only integers, which matters when 200 flows each walk
/// most of 2,000 modules.
#[derive(Debug)]
struct Graph {
    roots: Vec<String>,
    found: HashMap<String, Option<Rc<Found>>>,
    ids: HashMap<String, usize>,
    names: Vec<String>,
    /// By id; `None` until the module is first reached.
    nodes: Vec<Option<Rc<Node>>>,
    /// By id: the walk that last saw the module.
    seen: Vec<u32>,
    walk: u32,
}

impl Graph {
    fn new(roots: Vec<String>) -> Self {
        Graph {
            roots,
            found: HashMap::new(),
            ids: HashMap::new(),
            names: Vec::new(),
            nodes: Vec::new(),
            seen: Vec::new(),
            walk: 0,
        }
    }

    fn id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.names.push(name.to_string());
        self.nodes.push(None);
        self.seen.push(0);
        self.ids.insert(name.to_string(), id);
        id
    }
}

fn join(dir: &str, rest: &str) -> String {
    if dir.is_empty() {
        rest.to_string()
    } else {
        format!("{dir}/{rest}")
    }
}

fn normalize(path: &str) -> &str {
    path.trim_start_matches("./").trim_matches('/')
}

fn parent(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(parent, _)| parent)
}

/// `name` and each of its parent packages, outermost first.
fn with_parents(name: &str, out: &mut Vec<String>) {
    for (i, _) in name.match_indices('.') {
        out.push(name[..i].to_string());
    }
    out.push(name.to_string());
}

/// The absolute name of `<level dots><module>` inside `package`, or `None` when
/// Python refuses it (beyond the top-level package, or no package at all).
fn absolute(package: &str, level: usize, module: &str) -> Option<String> {
    if level == 0 {
        return (!module.is_empty()).then(|| module.to_string());
    }
    if package.is_empty() {
        return None;
    }
    let parts: Vec<&str> = package.split('.').collect();
    if level > parts.len() {
        return None;
    }
    let base = parts[..parts.len() + 1 - level].join(".");
    Some(if module.is_empty() { base } else { format!("{base}.{module}") })
}

impl<'a> ClosureIndex<'a> {
    /// `files` is every path of the bundle (`/`-separated, relative to its
    /// root); `read` gives a file's text (`None` when it is not UTF-8);
    /// `python_path` the configured importable roots.
    pub fn new(files: &'a BTreeSet<String>, read: &'a dyn Fn(&str) -> Option<String>, python_path: &[String]) -> Self {
        let mut dirs = HashSet::new();
        for file in files {
            for (i, _) in file.match_indices('/') {
                dirs.insert(file[..i].to_string());
            }
        }
        let python_path = python_path.iter().map(|root| normalize(root).to_string()).collect();
        let shared = shared_files(files);
        ClosureIndex {
            tree: Tree { files, dirs, read, python_path, shared },
            scans: HashMap::new(),
            graphs: HashMap::new(),
        }
    }

    /// The closure of the flow whose entrypoint file is `entrypoint_file`, with
    /// the files its `depends` globs match.
    pub fn closure(&mut self, entrypoint_file: &str, depends: &[String]) -> Result<Closure, DependsError> {
        let declared = declared_files(self.tree.files, depends)?;
        let entry = normalize(entrypoint_file);
        let entry_dir = entry.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
        let tree = &self.tree;
        let scans = &mut self.scans;
        let graph = self.graphs.entry(entry_dir.clone()).or_insert_with(|| {
            let mut roots = vec![entry_dir.clone(), String::new()];
            for root in &tree.python_path {
                if !roots.contains(root) {
                    roots.push(root.clone());
                }
            }
            Graph::new(roots)
        });
        graph.walk += 1;
        let walk = graph.walk;

        let mut found_files: Vec<Rc<str>> = Vec::new();
        let entry_scan = scan_of(tree, scans, entry);
        let mut names = Vec::new();
        imports_of(tree, scans, graph, &entry_scan, ENTRY, ENTRY, &mut names);
        let entry_id = graph.id(ENTRY);
        graph.seen[entry_id] = walk;
        let mut stack: Vec<usize> = names.iter().map(|name| graph.id(name)).collect();
        while let Some(id) = stack.pop() {
            if graph.seen[id] == walk {
                continue;
            }
            graph.seen[id] = walk;
            let node = node(tree, scans, graph, id);
            if let Some(file) = &node.file {
                found_files.push(file.clone());
            }
            stack.extend(node.deps.iter().copied().filter(|&dep| graph.seen[dep] != walk));
        }

        let mut files: BTreeSet<String> = found_files.iter().map(|file| file.to_string()).collect();
        files.insert(entry.to_string());
        let mut scanned: Vec<&str> = found_files.iter().map(|file| &**file).collect();
        scanned.push(entry);
        let mut dynamic: Vec<DynamicUse> =
            scanned.iter().filter_map(|file| scans.get(*file)).flat_map(|scan| scan.dynamic.iter().cloned()).collect();
        dynamic.sort();
        dynamic.dedup();
        let whole_bundle = !dynamic.is_empty() && depends.is_empty();
        if whole_bundle {
            files = tree.files.clone();
        } else {
            files.extend(tree.shared.iter().cloned());
            files.extend(declared);
        }
        Ok(Closure { files, dynamic, whole_bundle })
    }
}

/// The scan of a file, parsed on first use.
fn scan_of(tree: &Tree<'_>, scans: &mut HashMap<String, Rc<Scan>>, path: &str) -> Rc<Scan> {
    if let Some(scan) = scans.get(path) {
        return scan.clone();
    }
    let source = (tree.read)(path);
    let result = Rc::new(scan(path, source.as_deref()));
    scans.insert(path.to_string(), result.clone());
    result
}

/// Where Python's path finder finds a dotted name: in each directory of the
/// parent's `__path__` (of `sys.path` for a top-level name) a regular package
/// wins, then a module; directories without `__init__.py` are kept as portions
/// of a namespace package, which is the answer only when no directory has a
/// package or module of that name.
fn find(tree: &Tree<'_>, graph: &mut Graph, name: &str) -> Option<Rc<Found>> {
    if let Some(found) = graph.found.get(name) {
        return found.clone();
    }
    let result = if name == ENTRY {
        let mut search = vec![graph.roots[0].clone()];
        if !graph.roots[0].is_empty() {
            search.push(String::new());
        }
        Some(Rc::new(Found { file: None, search }))
    } else {
        let (dirs, last) = match name.rsplit_once('.') {
            Some((parent, last)) => match find(tree, graph, parent) {
                Some(found) if !found.search.is_empty() => (found.search.clone(), last),
                _ => (Vec::new(), last),
            },
            None => (graph.roots.clone(), name),
        };
        let mut portions = Vec::new();
        let mut hit = None;
        for dir in &dirs {
            let package = join(dir, last);
            let init = join(&package, "__init__.py");
            if tree.is_file(&init) {
                hit = Some(Found { file: Some(init), search: vec![package] });
                break;
            }
            let module = join(dir, &format!("{last}.py"));
            if tree.is_file(&module) {
                hit = Some(Found { file: Some(module), search: Vec::new() });
                break;
            }
            if tree.dirs.contains(&package) {
                portions.push(package);
            }
        }
        hit.or_else(|| (!portions.is_empty()).then_some(Found { file: None, search: portions })).map(Rc::new)
    };
    graph.found.insert(name.to_string(), result.clone());
    result
}

/// The node of a module: its file, its parent packages and what it imports.
fn node(tree: &Tree<'_>, scans: &mut HashMap<String, Rc<Scan>>, graph: &mut Graph, id: usize) -> Rc<Node> {
    if let Some(node) = &graph.nodes[id] {
        return node.clone();
    }
    let name = graph.names[id].clone();
    let mut file = None;
    let mut names = Vec::new();
    if let Some(found) = find(tree, graph, &name) {
        // Importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` first.
        with_parents(parent(&name), &mut names);
        names.retain(|d| !d.is_empty());
        if let Some(path) = &found.file {
            let module_scan = scan_of(tree, scans, path);
            let package = if found.search.is_empty() { parent(&name) } else { &name };
            imports_of(tree, scans, graph, &module_scan, package, &name, &mut names);
            file = Some(Rc::from(path.as_str()));
        }
    }
    let mut deps: Vec<usize> = names.iter().map(|dep| graph.id(dep)).collect();
    deps.sort_unstable();
    deps.dedup();
    let node = Rc::new(Node { file, deps });
    graph.nodes[id] = Some(node.clone());
    node
}

/// The absolute module names a scanned module makes Python import (some may
/// not exist: `from pkg import name` counts `pkg.name` in case it is a submodule).
fn imports_of(
    tree: &Tree<'_>,
    scans: &mut HashMap<String, Rc<Scan>>,
    graph: &mut Graph,
    module: &Scan,
    package: &str,
    own_name: &str,
    deps: &mut Vec<String>,
) {
    for import in &module.imports {
        match import {
            Import::Module { level, name, anchor } => {
                let base = match anchor {
                    Anchor::Package => package,
                    Anchor::OwnName => own_name,
                    Anchor::Named(named) => named,
                };
                if let Some(name) = absolute(base, *level, name) {
                    with_parents(&name, deps);
                }
            }
            Import::From { level, module, names } => {
                let Some(base) = absolute(package, *level, module) else { continue };
                with_parents(&base, deps);
                for name in names {
                    if name == "*" {
                        // `from pkg import *` imports the submodules `__all__` names.
                        let Some(found) = find(tree, graph, &base) else { continue };
                        let Some(init) = found.file.as_ref().filter(|_| !found.search.is_empty()) else { continue };
                        let init_scan = scan_of(tree, scans, init);
                        deps.extend(init_scan.all.iter().map(|sub| format!("{base}.{sub}")));
                    } else {
                        deps.push(format!("{base}.{name}"));
                    }
                }
            }
        }
    }
}
