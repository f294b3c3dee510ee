//! What one Python file can make Python load, read once from its syntax tree:
//! every import statement wherever it sits (functions, `if TYPE_CHECKING:`,
//! `try:` blocks — any of them may run, so all count), imports spelled as calls
//! with literal names (`importlib.import_module("pkg.mod")`), and the calls
//! that load code no static reading can know (`import_module(name)`, `exec`,
//! loading a file by path), with the line that makes them.
//!
//! The scan knows nothing of where the file sits: relative imports keep their
//! level, and `closure.rs` resolves them once it knows the module's name.
//!
//! [`scan`] reads a file with the token-level reader of `import_scan.rs`, which
//! gives the same answer many times faster, and falls back to [`parse`] (the
//! full parser, and the reference for what the answer is) for a file that
//! reader is not sure of.

use std::collections::HashMap;

use rustpython_parser::ast::{self, Constant, Expr, Ranged, Stmt};
use rustpython_parser::Parse;

use crate::closure::DynamicUse;

/// One thing a file asks Python to import.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Import {
    /// `import a.b.c`, `import_module("a.b")`: the module and its parents.
    Module { level: usize, name: String, anchor: Anchor },
    /// `from <level dots><module> import names`: the module, its parents, and each
    /// name that turns out to be a submodule; `*` follows the package's `__all__`.
    From { level: usize, module: String, names: Vec<String> },
}

/// What a relative name is relative to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Anchor {
    /// The module's package (`__package__`), as for `from . import x`.
    Package,
    /// The module's own name (`import_module(".x", __name__)`).
    OwnName,
    /// A package named by a literal (`import_module(".x", "pkg")`).
    Named(String),
}

/// Everything [`scan`] learnt of one file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    pub imports: Vec<Import>,
    /// The literal names of `__all__` at the top level, which `from pkg import *`
    /// imports as submodules when they are.
    pub all: Vec<String>,
    /// Loads no static reading can follow, and a file that does not parse.
    pub dynamic: Vec<DynamicUse>,
}

/// The calls that load code, by the qualified name of the callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loader {
    ImportModule,
    DunderImport,
    Exec,
    /// Loads a file by its path (`spec_from_file_location`, `run_path`, ...):
    /// a path cannot be read as a module name, so it is always dynamic.
    ByPath,
    RunModule,
}

pub(crate) fn loader(qualified: &str) -> Option<Loader> {
    Some(match qualified {
        "importlib.import_module" => Loader::ImportModule,
        "__import__" | "importlib.__import__" | "builtins.__import__" => Loader::DunderImport,
        "exec" | "eval" | "builtins.exec" | "builtins.eval" => Loader::Exec,
        "importlib.util.spec_from_file_location"
        | "importlib.machinery.SourceFileLoader"
        | "importlib.machinery.SourcelessFileLoader"
        | "runpy.run_path" => Loader::ByPath,
        "runpy.run_module" => Loader::RunModule,
        _ => return None,
    })
}

/// The last part of every name [`loader`] knows: a call whose callee ends
/// otherwise is skipped without looking at its bindings.
pub(crate) const LOADER_NAMES: &[&str] = &[
    "import_module",
    "__import__",
    "exec",
    "eval",
    "spec_from_file_location",
    "SourceFileLoader",
    "SourcelessFileLoader",
    "run_path",
    "run_module",
];

/// Reads one file. `None` source (unreadable bytes) and syntax errors give a
/// scan with one dynamic use saying so: the file's imports cannot be known.
pub(crate) fn scan(path: &str, source: Option<&str>) -> Scan {
    let Some(source) = source else {
        return Scan {
            dynamic: vec![DynamicUse { file: path.to_string(), line: 0, what: "unreadable: not UTF-8 text".into() }],
            ..Scan::default()
        };
    };
    crate::import_scan::scan(path, source).unwrap_or_else(|| parse(path, source))
}

/// Reads one file with the full parser.
pub(crate) fn parse(path: &str, source: &str) -> Scan {
    match ast::Suite::parse(source, path) {
        Ok(suite) => {
            let mut walker = Walker { calls: Vec::new(), bindings: HashMap::new(), scan: Scan::default() };
            walker.suite(&suite, true);
            walker.finish(path, source, 0);
            walker.scan
        }
        Err(error) => {
            let line = line_of(source, error.offset.to_usize());
            Scan {
                dynamic: vec![DynamicUse {
                    file: path.to_string(),
                    line,
                    what: format!("unreadable: syntax error: {}", error.error),
                }],
                ..Scan::default()
            }
        }
    }
}

/// The 1-based line of a byte offset.
fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The source of a call, on one line and short enough for a terminal.
pub(crate) fn call_text(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

struct Walker<'a> {
    /// Calls whose callee ends in one of [`LOADER_NAMES`] or is a bare name,
    /// resolved once every binding of the file is known.
    calls: Vec<&'a ast::ExprCall>,
    /// Local name → what an import bound it to (file-wide, scopes merged: a
    /// function-level `from importlib import import_module` counts everywhere,
    /// which can only report more, never miss).
    bindings: HashMap<String, String>,
    scan: Scan,
}

impl<'a> Walker<'a> {
    fn suite(&mut self, suite: &'a [Stmt], top: bool) {
        for stmt in suite {
            self.stmt(stmt, top);
        }
    }

    fn stmt(&mut self, stmt: &'a Stmt, top: bool) {
        match stmt {
            Stmt::Import(import) => {
                for alias in &import.names {
                    let name = alias.name.as_str();
                    let (local, bound) = match &alias.asname {
                        Some(local) => (local.as_str(), name),
                        None => (name.split('.').next().unwrap_or(name), name.split('.').next().unwrap_or(name)),
                    };
                    self.bindings.insert(local.to_string(), bound.to_string());
                    self.scan.imports.push(Import::Module {
                        level: 0,
                        name: name.to_string(),
                        anchor: Anchor::Package,
                    });
                }
            }
            Stmt::ImportFrom(import) => {
                let level = import.level.map_or(0, |level| level.to_u32()) as usize;
                let module = import.module.as_ref().map_or("", |m| m.as_str()).to_string();
                for alias in &import.names {
                    if level == 0 && alias.name.as_str() != "*" {
                        let local = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                        self.bindings.insert(local.to_string(), format!("{module}.{}", alias.name.as_str()));
                    }
                }
                let names = import.names.iter().map(|alias| alias.name.to_string()).collect();
                self.scan.imports.push(Import::From { level, module, names });
            }
            Stmt::FunctionDef(def) => self.function(&def.decorator_list, &def.args, def.returns.as_deref(), &def.body),
            Stmt::AsyncFunctionDef(def) => {
                self.function(&def.decorator_list, &def.args, def.returns.as_deref(), &def.body)
            }
            Stmt::ClassDef(class) => {
                self.exprs(&class.decorator_list);
                self.exprs(&class.bases);
                class.keywords.iter().for_each(|k| self.expr(&k.value));
                self.suite(&class.body, false);
            }
            Stmt::Return(ret) => self.opt(ret.value.as_deref()),
            Stmt::Delete(delete) => self.exprs(&delete.targets),
            Stmt::Assign(assign) => {
                if top && assign.targets.iter().any(is_all) {
                    self.all(&assign.value);
                }
                self.exprs(&assign.targets);
                self.expr(&assign.value);
            }
            Stmt::AugAssign(assign) => {
                if top && is_all(&assign.target) {
                    self.all(&assign.value);
                }
                self.expr(&assign.target);
                self.expr(&assign.value);
            }
            Stmt::AnnAssign(assign) => {
                if let (true, true, Some(value)) = (top, is_all(&assign.target), &assign.value) {
                    self.all(value);
                }
                self.expr(&assign.target);
                self.expr(&assign.annotation);
                self.opt(assign.value.as_deref());
            }
            Stmt::TypeAlias(alias) => self.expr(&alias.value),
            Stmt::For(f) => self.for_loop(&f.target, &f.iter, &f.body, &f.orelse, top),
            Stmt::AsyncFor(f) => self.for_loop(&f.target, &f.iter, &f.body, &f.orelse, top),
            Stmt::While(w) => {
                self.expr(&w.test);
                self.suite(&w.body, top);
                self.suite(&w.orelse, top);
            }
            Stmt::If(i) => {
                self.expr(&i.test);
                self.suite(&i.body, top);
                self.suite(&i.orelse, top);
            }
            Stmt::With(w) => self.with(&w.items, &w.body, top),
            Stmt::AsyncWith(w) => self.with(&w.items, &w.body, top),
            Stmt::Match(m) => {
                self.expr(&m.subject);
                for case in &m.cases {
                    self.opt(case.guard.as_deref());
                    self.suite(&case.body, top);
                }
            }
            Stmt::Raise(raise) => {
                self.opt(raise.exc.as_deref());
                self.opt(raise.cause.as_deref());
            }
            Stmt::Try(t) => self.try_block(&t.body, &t.handlers, &t.orelse, &t.finalbody, top),
            Stmt::TryStar(t) => self.try_block(&t.body, &t.handlers, &t.orelse, &t.finalbody, top),
            Stmt::Assert(assert) => {
                self.expr(&assert.test);
                self.opt(assert.msg.as_deref());
            }
            Stmt::Expr(e) => self.expr(&e.value),
            Stmt::Global(_) | Stmt::Nonlocal(_) | Stmt::Pass(_) | Stmt::Break(_) | Stmt::Continue(_) => {}
        }
    }

    fn function(
        &mut self,
        decorators: &'a [Expr],
        args: &'a ast::Arguments,
        returns: Option<&'a Expr>,
        body: &'a [Stmt],
    ) {
        self.exprs(decorators);
        self.arguments(args);
        self.opt(returns);
        self.suite(body, false);
    }

    fn for_loop(&mut self, target: &'a Expr, iter: &'a Expr, body: &'a [Stmt], orelse: &'a [Stmt], top: bool) {
        self.expr(target);
        self.expr(iter);
        self.suite(body, top);
        self.suite(orelse, top);
    }

    fn with(&mut self, items: &'a [ast::WithItem], body: &'a [Stmt], top: bool) {
        for item in items {
            self.expr(&item.context_expr);
            self.opt(item.optional_vars.as_deref());
        }
        self.suite(body, top);
    }

    fn try_block(
        &mut self,
        body: &'a [Stmt],
        handlers: &'a [ast::ExceptHandler],
        orelse: &'a [Stmt],
        finalbody: &'a [Stmt],
        top: bool,
    ) {
        self.suite(body, top);
        for ast::ExceptHandler::ExceptHandler(handler) in handlers {
            self.opt(handler.type_.as_deref());
            self.suite(&handler.body, top);
        }
        self.suite(orelse, top);
        self.suite(finalbody, top);
    }

    fn arguments(&mut self, args: &'a ast::Arguments) {
        for arg in args.posonlyargs.iter().chain(&args.args).chain(&args.kwonlyargs) {
            self.opt(arg.def.annotation.as_deref());
            self.opt(arg.default.as_deref());
        }
        for arg in args.vararg.iter().chain(&args.kwarg) {
            self.opt(arg.annotation.as_deref());
        }
    }

    /// Literal strings of an `__all__` value (a list, a tuple, or `a + b` of them).
    fn all(&mut self, value: &Expr) {
        match value {
            Expr::List(ast::ExprList { elts, .. }) | Expr::Tuple(ast::ExprTuple { elts, .. }) => {
                self.scan.all.extend(elts.iter().filter_map(literal).map(str::to_string));
            }
            Expr::BinOp(op) => {
                self.all(&op.left);
                self.all(&op.right);
            }
            _ => {}
        }
    }

    fn opt(&mut self, expr: Option<&'a Expr>) {
        if let Some(expr) = expr {
            self.expr(expr);
        }
    }

    fn exprs(&mut self, exprs: &'a [Expr]) {
        for expr in exprs {
            self.expr(expr);
        }
    }

    fn comprehensions(&mut self, generators: &'a [ast::Comprehension]) {
        for generator in generators {
            self.expr(&generator.target);
            self.expr(&generator.iter);
            self.exprs(&generator.ifs);
        }
    }

    fn expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Call(call) => {
                // A bare name may be an alias (`import_module as load`), known
                // only once the whole file is read.
                if matches!(&*call.func, Expr::Name(_))
                    || dotted_tail(&call.func).is_some_and(|tail| LOADER_NAMES.contains(&tail))
                {
                    self.calls.push(call);
                }
                self.expr(&call.func);
                self.exprs(&call.args);
                call.keywords.iter().for_each(|k| self.expr(&k.value));
            }
            Expr::BoolOp(e) => self.exprs(&e.values),
            Expr::NamedExpr(e) => {
                self.expr(&e.target);
                self.expr(&e.value);
            }
            Expr::BinOp(e) => {
                self.expr(&e.left);
                self.expr(&e.right);
            }
            Expr::UnaryOp(e) => self.expr(&e.operand),
            Expr::Lambda(e) => {
                self.arguments(&e.args);
                self.expr(&e.body);
            }
            Expr::IfExp(e) => {
                self.expr(&e.test);
                self.expr(&e.body);
                self.expr(&e.orelse);
            }
            Expr::Dict(e) => {
                e.keys.iter().for_each(|k| self.opt(k.as_ref()));
                self.exprs(&e.values);
            }
            Expr::Set(e) => self.exprs(&e.elts),
            Expr::ListComp(e) => {
                self.expr(&e.elt);
                self.comprehensions(&e.generators);
            }
            Expr::SetComp(e) => {
                self.expr(&e.elt);
                self.comprehensions(&e.generators);
            }
            Expr::GeneratorExp(e) => {
                self.expr(&e.elt);
                self.comprehensions(&e.generators);
            }
            Expr::DictComp(e) => {
                self.expr(&e.key);
                self.expr(&e.value);
                self.comprehensions(&e.generators);
            }
            Expr::Await(e) => self.expr(&e.value),
            Expr::Yield(e) => self.opt(e.value.as_deref()),
            Expr::YieldFrom(e) => self.expr(&e.value),
            Expr::Compare(e) => {
                self.expr(&e.left);
                self.exprs(&e.comparators);
            }
            Expr::FormattedValue(e) => {
                self.expr(&e.value);
                self.opt(e.format_spec.as_deref());
            }
            Expr::JoinedStr(e) => self.exprs(&e.values),
            Expr::Attribute(e) => self.expr(&e.value),
            Expr::Subscript(e) => {
                self.expr(&e.value);
                self.expr(&e.slice);
            }
            Expr::Starred(e) => self.expr(&e.value),
            Expr::List(e) => self.exprs(&e.elts),
            Expr::Tuple(e) => self.exprs(&e.elts),
            Expr::Slice(e) => {
                self.opt(e.lower.as_deref());
                self.opt(e.upper.as_deref());
                self.opt(e.step.as_deref());
            }
            Expr::Constant(_) | Expr::Name(_) => {}
        }
    }

    /// Turns the collected calls into imports or dynamic uses, now that the
    /// file's bindings are known. `line_base` places the calls of code given to
    /// `exec` as a literal at the line of that `exec`.
    fn finish(&mut self, path: &str, source: &str, line_base: usize) {
        for call in std::mem::take(&mut self.calls) {
            if let Expr::Name(name) = &*call.func {
                let name = name.id.as_str();
                let bound = self.bindings.get(name).map_or(name, |bound| bound.rsplit('.').next().unwrap_or(bound));
                if !LOADER_NAMES.contains(&bound) {
                    continue;
                }
            }
            let Some(dotted) = dotted(&call.func) else { continue };
            let qualified = match dotted.split_once('.') {
                Some((head, rest)) => match self.bindings.get(head) {
                    Some(bound) => format!("{bound}.{rest}"),
                    None => dotted.clone(),
                },
                None => self.bindings.get(&dotted).cloned().unwrap_or(dotted),
            };
            let Some(kind) = loader(&qualified) else { continue };
            let line = if line_base > 0 { line_base } else { line_of(source, call.range().start().to_usize()) };
            let name = argument(call, 0, "name").and_then(literal);
            let import = match (kind, name) {
                (Loader::ImportModule, Some(name)) => {
                    let level = name.len() - name.trim_start_matches('.').len();
                    let anchor = match argument(call, 1, "package") {
                        // An absolute name ignores the package.
                        _ if level == 0 => Some(Anchor::Package),
                        None => Some(Anchor::Package),
                        Some(Expr::Name(n)) if n.id.as_str() == "__package__" => Some(Anchor::Package),
                        Some(Expr::Name(n)) if n.id.as_str() == "__name__" => Some(Anchor::OwnName),
                        Some(other) => literal(other).map(|p| Anchor::Named(p.to_string())),
                    };
                    // A relative name under a package known only at run time stays dynamic.
                    anchor
                        .filter(|_| !name.is_empty())
                        .map(|anchor| vec![Import::Module { level, name: name[level..].to_string(), anchor }])
                }
                (Loader::DunderImport, Some(name)) if !name.is_empty() && !name.starts_with('.') => {
                    let names: Vec<String> = match argument(call, 3, "fromlist") {
                        Some(Expr::List(ast::ExprList { elts, .. }) | Expr::Tuple(ast::ExprTuple { elts, .. })) => {
                            elts.iter().filter_map(literal).map(str::to_string).collect()
                        }
                        _ => Vec::new(),
                    };
                    Some(vec![Import::From { level: 0, module: name.to_string(), names }])
                }
                (Loader::RunModule, Some(name)) if !name.is_empty() && !name.starts_with('.') => {
                    // `run_module("pkg")` runs `pkg.__main__`.
                    Some(vec![Import::From { level: 0, module: name.to_string(), names: vec!["__main__".into()] }])
                }
                (Loader::Exec, Some(code)) => self.literal_code(path, code, line),
                _ => None,
            };
            match import {
                Some(imports) => self.scan.imports.extend(imports),
                None => self.scan.dynamic.push(DynamicUse {
                    file: path.to_string(),
                    line,
                    what: call_text(
                        source.get(call.range().start().to_usize()..call.range().end().to_usize()).unwrap_or(""),
                    ),
                }),
            }
        }
    }

    /// The imports of code given to `exec`/`eval` as a literal, or `None` when
    /// it does not parse (then the call counts as dynamic).
    fn literal_code(&mut self, path: &str, code: &str, line: usize) -> Option<Vec<Import>> {
        let suite = ast::Suite::parse(code, path).ok()?;
        let mut inner = Walker { calls: Vec::new(), bindings: self.bindings.clone(), scan: Scan::default() };
        inner.suite(&suite, false);
        inner.finish(path, code, line);
        self.scan.dynamic.append(&mut inner.scan.dynamic);
        Some(inner.scan.imports)
    }
}

fn is_all(target: &Expr) -> bool {
    matches!(target, Expr::Name(name) if name.id.as_str() == "__all__")
}

/// A string literal's text.
fn literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Constant(ast::ExprConstant { value: Constant::Str(text), .. }) => Some(text),
        _ => None,
    }
}

/// The argument at a position, or given by keyword.
fn argument<'e>(call: &'e ast::ExprCall, position: usize, keyword: &str) -> Option<&'e Expr> {
    call.args.get(position).or_else(|| {
        call.keywords.iter().find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == keyword)).map(|k| &k.value)
    })
}

/// The last name of a `a.b.c` callee.
fn dotted_tail(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(name) => Some(name.id.as_str()),
        Expr::Attribute(attr) => Some(attr.attr.as_str()),
        _ => None,
    }
}

/// `a.b.c` of a callee made of names only.
fn dotted(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Name(name) => Some(name.id.to_string()),
        Expr::Attribute(attr) => Some(format!("{}.{}", dotted(&attr.value)?, attr.attr.as_str())),
        _ => None,
    }
}
