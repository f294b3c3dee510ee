//! What each top-level name of the entrypoint file is bound to, so annotations,
//! defaults and decorators can be resolved the way Python's import would.

use std::collections::HashMap;

use rustpython_parser::ast::{self, Expr, Stmt};

/// A function definition, sync or async, seen through one shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FnDef<'a> {
    pub name: &'a str,
    pub args: &'a ast::Arguments,
    pub body: &'a [Stmt],
    pub decorators: &'a [Expr],
}

/// What a top-level name holds once the module has run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Binding<'a> {
    /// An imported module or object, by its fully qualified name.
    Import(&'a str),
    Class(&'a ast::StmtClassDef),
    Function(FnDef<'a>),
    /// `NAME = <expr>` at the top level (the last such assignment).
    Value(&'a Expr),
    /// Bound by something this crate does not follow (loops, `with`, tuples...).
    Opaque,
}

/// Where a module sits, which decides what its relative imports mean.
#[derive(Debug, Clone)]
pub(crate) enum Package {
    /// The entrypoint: Prefect loads it as a package whose path is its own
    /// directory (then the working directory), so `.x` means the top-level `x`.
    Entry,
    /// A module imported by its dotted name, inside this package (`""` for a
    /// top-level module, which has no parent for `.x` to mean).
    Named(String),
}

impl Package {
    /// The absolute module name of `from <dots><module> import ...`, or the text
    /// itself (dots kept, which no project module matches) when Python would
    /// refuse the relative import.
    fn absolute(&self, level: usize, module: Option<&str>) -> String {
        let relative = || format!("{}{}", ".".repeat(level), module.unwrap_or(""));
        if level == 0 {
            return module.unwrap_or("").to_string();
        }
        let base = match self {
            Package::Entry if level == 1 => String::new(),
            Package::Named(package) if !package.is_empty() => {
                let parts: Vec<&str> = package.split('.').collect();
                if level > parts.len() {
                    return relative();
                }
                parts[..parts.len() + 1 - level].join(".")
            }
            _ => return relative(),
        };
        match (base.is_empty(), module) {
            (true, Some(module)) => module.to_string(),
            (true, None) => String::new(),
            (false, Some(module)) => format!("{base}.{module}"),
            (false, None) => base,
        }
    }
}

/// Top-level bindings of one parsed file.
#[derive(Debug)]
pub(crate) struct Module<'a> {
    /// `from __future__ import annotations`: annotations are strings evaluated once.
    pub future_annotations: bool,
    package: Package,
    bindings: HashMap<String, Binding<'a>>,
    qualified: HashMap<String, String>,
}

impl<'a> Module<'a> {
    pub(crate) fn new(suite: &'a [Stmt], package: &Package) -> Self {
        let mut module = Module {
            future_annotations: false,
            package: package.clone(),
            bindings: HashMap::new(),
            qualified: HashMap::new(),
        };
        for stmt in suite {
            module.bind(stmt);
        }
        module
    }

    fn bind(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Import(import) => {
                for alias in &import.names {
                    let full = alias.name.as_str();
                    match &alias.asname {
                        Some(local) => self.import(local.as_str(), full.to_string()),
                        None => {
                            let head = full.split('.').next().unwrap_or(full);
                            self.import(head, head.to_string());
                        }
                    }
                }
            }
            Stmt::ImportFrom(import) => {
                if import.module.as_ref().is_some_and(|m| m.as_str() == "__future__") {
                    self.future_annotations |= import.names.iter().any(|a| a.name.as_str() == "annotations");
                }
                let base = self.import_base(import);
                for alias in &import.names {
                    let local = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                    if local == "*" {
                        continue;
                    }
                    let qualified = match base.as_str() {
                        "" => alias.name.to_string(),
                        base => format!("{base}.{}", alias.name.as_str()),
                    };
                    self.import(local, qualified);
                }
            }
            Stmt::ClassDef(class) => self.set(class.name.as_str(), Binding::Class(class)),
            Stmt::FunctionDef(def) => self.set(
                def.name.as_str(),
                Binding::Function(FnDef {
                    name: def.name.as_str(),
                    args: &def.args,
                    body: &def.body,
                    decorators: &def.decorator_list,
                }),
            ),
            Stmt::AsyncFunctionDef(def) => self.set(
                def.name.as_str(),
                Binding::Function(FnDef {
                    name: def.name.as_str(),
                    args: &def.args,
                    body: &def.body,
                    decorators: &def.decorator_list,
                }),
            ),
            Stmt::Assign(assign) => {
                for target in &assign.targets {
                    match target {
                        Expr::Name(name) if assign.targets.len() == 1 => {
                            self.set(name.id.as_str(), Binding::Value(&assign.value))
                        }
                        other => self.opaque_targets(other),
                    }
                }
            }
            Stmt::AnnAssign(assign) => match (&*assign.target, &assign.value) {
                (Expr::Name(name), Some(value)) => self.set(name.id.as_str(), Binding::Value(value)),
                (target, Some(_)) => self.opaque_targets(target),
                _ => {}
            },
            Stmt::AugAssign(assign) => self.opaque_targets(&assign.target),
            // `type X = ...` makes a `TypeAliasType`, which pydantic turns into a
            // definition of its own; not followed, so a hint naming it is refused.
            Stmt::TypeAlias(alias) => self.opaque_targets(&alias.name),
            _ => {}
        }
    }

    /// The absolute module a `from ... import` statement reads from.
    pub(crate) fn import_base(&self, import: &ast::StmtImportFrom) -> String {
        let level = import.level.map_or(0, |level| level.to_u32()) as usize;
        self.package.absolute(level, import.module.as_ref().map(|m| m.as_str()))
    }

    fn opaque_targets(&mut self, target: &Expr) {
        match target {
            Expr::Name(name) => self.set(name.id.as_str(), Binding::Opaque),
            Expr::Tuple(tuple) => tuple.elts.iter().for_each(|e| self.opaque_targets(e)),
            Expr::List(list) => list.elts.iter().for_each(|e| self.opaque_targets(e)),
            Expr::Starred(starred) => self.opaque_targets(&starred.value),
            _ => {}
        }
    }

    fn import(&mut self, local: &str, qualified: String) {
        self.bindings.remove(local);
        self.qualified.insert(local.to_string(), qualified);
    }

    fn set(&mut self, name: &str, binding: Binding<'a>) {
        self.qualified.remove(name);
        self.bindings.insert(name.to_string(), binding);
    }

    /// The binding of a top-level name, if the file binds it.
    pub(crate) fn lookup(&self, name: &str) -> Option<Binding<'_>> {
        if let Some(qualified) = self.qualified.get(name) {
            return Some(Binding::Import(qualified.as_str()));
        }
        self.bindings.get(name).copied()
    }
}
