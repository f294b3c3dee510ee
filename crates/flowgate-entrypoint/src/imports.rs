//! The project's own modules that an entrypoint imports, read from the bundle
//! through the caller's callback and parsed (never run), and the resolution of
//! a name to what it finally denotes: a class or assignment of some project
//! module, a project module, or something outside the project by its dotted name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rustpython_parser::ast::{self, Expr, Stmt};
use rustpython_parser::source_code::RandomLocator;
use rustpython_parser::text_size::TextSize;
use rustpython_parser::Parse;

use crate::module::{Binding, Module, Package};

/// How many project modules one entrypoint may pull in; a bound on work, far
/// above what a flow's parameter types need.
const MAX_MODULES: usize = 256;

/// How many names may refer to names (`A = B`, re-exports) before we give up,
/// so cycles end.
const MAX_DEPTH: usize = 32;

/// One parsed file: its text (for line numbers) and its syntax tree.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub source: Rc<str>,
    pub suite: ast::Suite,
}

/// One file of the project as one flow's reading sees it: the same parse may
/// serve several flows, under the name each reached it by.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub path: String,
    pub parsed: Rc<Parsed>,
    pub package: Package,
    /// The dotted module name, `None` for the entrypoint.
    pub name: Option<String>,
}

/// The bundle's files, read through the caller once and parsed at most once
/// each however many flows import them: a build of 200 flows over 2,000
/// modules would otherwise parse every shared module once per flow that
/// imports it. Absent files are remembered too.
pub(crate) struct Sources<'r> {
    read: &'r dyn Fn(&str) -> Option<String>,
    texts: RefCell<HashMap<String, Option<Rc<str>>>>,
    /// `None` for a file that is absent or not Python. A project module that
    /// does not parse fails at import in Prefect too; leaving it out makes
    /// every name from it a refusal.
    parsed: RefCell<HashMap<String, Option<Rc<Parsed>>>>,
}

impl<'r> Sources<'r> {
    pub(crate) fn new(read: &'r dyn Fn(&str) -> Option<String>) -> Self {
        Sources { read, texts: RefCell::default(), parsed: RefCell::default() }
    }

    /// The text of a bundle file.
    pub(crate) fn text(&self, path: &str) -> Option<Rc<str>> {
        let path = path.trim_start_matches("./");
        if let Some(known) = self.texts.borrow().get(path) {
            return known.clone();
        }
        let text: Option<Rc<str>> = (self.read)(path).map(Rc::from);
        self.texts.borrow_mut().insert(path.to_string(), text.clone());
        text
    }

    /// The files read that exist, sorted.
    pub(crate) fn files_read(&self) -> Vec<String> {
        let mut files: Vec<String> =
            self.texts.borrow().iter().filter(|(_, text)| text.is_some()).map(|(path, _)| path.clone()).collect();
        files.sort_unstable();
        files
    }

    /// The parse of a project module.
    fn parse(&self, path: &str) -> Option<Rc<Parsed>> {
        let path = path.trim_start_matches("./");
        if let Some(known) = self.parsed.borrow().get(path) {
            return known.clone();
        }
        let parsed = self.text(path).and_then(|source| {
            let suite = ast::Suite::parse(&source, path).ok()?;
            Some(Rc::new(Parsed { source, suite }))
        });
        self.parsed.borrow_mut().insert(path.to_string(), parsed.clone());
        parsed
    }
}

fn join(dir: &str, rest: &str) -> String {
    match dir.trim_end_matches('/') {
        "" | "." => rest.to_string(),
        dir => format!("{dir}/{rest}"),
    }
}

/// Loads the entrypoint and, transitively, every project module its top-level
/// imports name. Roots are searched as Prefect's loader orders `sys.path`: the
/// entrypoint's directory, the bundle root, then the configured python paths.
pub(crate) fn load(
    sources: &Sources<'_>,
    entry_path: &str,
    entry: Rc<Parsed>,
    python_path: &[String],
) -> Vec<SourceFile> {
    let entry_dir = entry_path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
    let mut roots = vec![entry_dir, String::new()];
    for root in python_path {
        let root = root.trim_matches('/').trim_start_matches("./").to_string();
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    let mut files =
        vec![SourceFile { path: entry_path.to_string(), parsed: entry, package: Package::Entry, name: None }];
    let mut tried: HashMap<String, ()> = HashMap::new();
    let mut next = 0;
    while next < files.len() && files.len() < MAX_MODULES {
        let wanted = imported_names(&files[next]);
        next += 1;
        for name in wanted {
            if tried.insert(name.clone(), ()).is_some() || name.is_empty() || name.starts_with('.') {
                continue;
            }
            let Some((path, is_package)) = locate(sources, &roots, &name) else { continue };
            let Some(parsed) = sources.parse(&path) else { continue };
            let package = match (is_package, name.rsplit_once('.')) {
                (true, _) => name.clone(),
                (false, Some((parent, _))) => parent.to_string(),
                (false, None) => String::new(),
            };
            files.push(SourceFile { path, parsed, package: Package::Named(package), name: Some(name) });
        }
    }
    files
}

/// Every module name (and possible submodule) the top-level imports of a file mention.
fn imported_names(file: &SourceFile) -> Vec<String> {
    let module = Module::new(&[], &file.package);
    let mut names = Vec::new();
    for stmt in &file.parsed.suite {
        match stmt {
            Stmt::Import(import) => {
                for alias in &import.names {
                    let mut prefix = String::new();
                    for part in alias.name.as_str().split('.') {
                        prefix = if prefix.is_empty() { part.to_string() } else { format!("{prefix}.{part}") };
                        names.push(prefix.clone());
                    }
                }
            }
            Stmt::ImportFrom(import) => {
                let base = module.import_base(import);
                names.push(base.clone());
                for alias in &import.names {
                    if alias.name.as_str() != "*" {
                        names.push(if base.is_empty() {
                            alias.name.to_string()
                        } else {
                            format!("{base}.{}", alias.name.as_str())
                        });
                    }
                }
            }
            _ => {}
        }
    }
    names
}

/// The file of a dotted module name in the bundle, and whether it is a package
/// (`__init__.py`). A regular package keeps its submodules in its own directory.
fn locate(sources: &Sources<'_>, roots: &[String], name: &str) -> Option<(String, bool)> {
    let relative = name.replace('.', "/");
    let candidates = |dir: &str, rest: &str| {
        [(join(dir, &format!("{rest}/__init__.py")), true), (join(dir, &format!("{rest}.py")), false)]
    };
    if let Some((parent, last)) = name.rsplit_once('.') {
        if let Some((parent_path, true)) = locate(sources, roots, parent) {
            let dir = parent_path.trim_end_matches("/__init__.py");
            return candidates(dir, last).into_iter().find(|(path, _)| sources.text(path).is_some());
        }
    }
    roots.iter().flat_map(|root| candidates(root, &relative)).find(|(path, _)| sources.text(path).is_some())
}

/// The project's parsed modules, with their bindings.
#[derive(Debug)]
pub(crate) struct Project<'a> {
    files: &'a [SourceFile],
    modules: Vec<Module<'a>>,
    by_name: HashMap<&'a str, usize>,
}

/// What a name finally denotes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resolved<'p, 'a> {
    Class(Scope<'p, 'a>, &'p ast::StmtClassDef),
    /// A module-level assignment of a project module: a constant or a type alias.
    Value(Scope<'p, 'a>, &'p Expr),
    Module(Scope<'p, 'a>),
}

/// What a name denotes: something outside the project (standard library, third
/// party, builtins) by its dotted name, or something of the project.
#[derive(Debug, Clone)]
pub(crate) enum Target<'p, 'a> {
    External(String),
    Resolved(Resolved<'p, 'a>),
}

impl<'a> Project<'a> {
    pub(crate) fn new(files: &'a [SourceFile]) -> Self {
        let modules = files.iter().map(|file| Module::new(&file.parsed.suite, &file.package)).collect();
        let by_name = files.iter().enumerate().filter_map(|(i, f)| f.name.as_deref().map(|n| (n, i))).collect();
        Project { files, modules, by_name }
    }

    /// The scope of the entrypoint.
    pub(crate) fn entry(&self) -> Scope<'_, 'a> {
        Scope { project: self, index: 0 }
    }

    fn module_scope(&self, name: &str) -> Option<Scope<'_, 'a>> {
        self.by_name.get(name).map(|&index| Scope { project: self, index })
    }

    /// A dotted name as Python's import machinery would find it: through the
    /// longest prefix that is a project module, else outside the project.
    fn resolve_qualified(&self, qualified: &str, depth: usize) -> Option<Target<'_, 'a>> {
        let parts: Vec<&str> = qualified.split('.').collect();
        for split in (1..=parts.len()).rev() {
            let Some(scope) = self.module_scope(&parts[..split].join(".")) else { continue };
            let mut current = Resolved::Module(scope);
            for part in &parts[split..] {
                let Resolved::Module(scope) = current else { return None };
                match scope.member(part, depth + 1)? {
                    Target::Resolved(resolved) => current = resolved,
                    external => return Some(external),
                }
            }
            return Some(Target::Resolved(current));
        }
        Some(Target::External(qualified.to_string()))
    }
}

/// One module of the project, in which names are looked up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'p, 'a> {
    project: &'p Project<'a>,
    index: usize,
}

/// Names Python provides without an import, as far as annotations and defaults go.
const BUILTINS: &[&str] =
    &["int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset", "object", "type"];

impl<'p, 'a> Scope<'p, 'a> {
    pub(crate) fn module(&self) -> &'p Module<'a> {
        &self.project.modules[self.index]
    }

    pub(crate) fn path(&self) -> &'p str {
        &self.project.files[self.index].path
    }

    pub(crate) fn same(&self, other: &Scope<'_, '_>) -> bool {
        self.index == other.index
    }

    /// The 1-based line of an offset in this module's file.
    pub(crate) fn line(&self, at: TextSize) -> usize {
        RandomLocator::new(&self.project.files[self.index].parsed.source).locate(at).row.get() as usize
    }

    /// A name of this module, or its submodule of that name, as `module.name` finds it.
    fn member(&self, name: &str, depth: usize) -> Option<Target<'p, 'a>> {
        if let Some(target) = self.name(name, depth) {
            return Some(target);
        }
        let own = self.project.files[self.index].name.as_deref()?;
        self.project.module_scope(&format!("{own}.{name}")).map(|s| Target::Resolved(Resolved::Module(s)))
    }

    fn name(&self, name: &str, depth: usize) -> Option<Target<'p, 'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.module().lookup(name) {
            Some(Binding::Import(qualified)) => self.project.resolve_qualified(qualified, depth + 1),
            Some(Binding::Class(class)) => Some(Target::Resolved(Resolved::Class(*self, class))),
            // `Alias = Other` (or `= mod.Other`) names the same object.
            Some(Binding::Value(value @ (Expr::Name(_) | Expr::Attribute(_)))) => self.target(value, depth + 1),
            Some(Binding::Value(value)) => Some(Target::Resolved(Resolved::Value(*self, value))),
            Some(Binding::Function(_) | Binding::Opaque) => None,
            None if BUILTINS.contains(&name) => Some(Target::External(format!("builtins.{name}"))),
            None => None,
        }
    }

    fn target(&self, expr: &Expr, depth: usize) -> Option<Target<'p, 'a>> {
        match expr {
            Expr::Name(name) => self.name(name.id.as_str(), depth),
            Expr::Attribute(attr) => match self.target(&attr.value, depth + 1)? {
                Target::External(base) => Some(Target::External(format!("{base}.{}", attr.attr.as_str()))),
                Target::Resolved(Resolved::Module(scope)) => scope.member(attr.attr.as_str(), depth + 1),
                Target::Resolved(_) => None,
            },
            _ => None,
        }
    }

    /// What a name or attribute chain denotes, if it can be known.
    pub(crate) fn resolve(&self, expr: &Expr) -> Option<Target<'p, 'a>> {
        self.target(expr, 0)
    }

    /// The dotted name of something outside the project (`typing.Optional`).
    pub(crate) fn external(&self, expr: &Expr) -> Option<String> {
        match self.resolve(expr)? {
            Target::External(name) => Some(name.replace("typing_extensions.", "typing.")),
            Target::Resolved(_) => None,
        }
    }

    /// The project class a name denotes.
    pub(crate) fn class(&self, expr: &Expr) -> Option<(Scope<'p, 'a>, &'p ast::StmtClassDef)> {
        match self.resolve(expr)? {
            Target::Resolved(Resolved::Class(scope, class)) => Some((scope, class)),
            _ => None,
        }
    }
}
