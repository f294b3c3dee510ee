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

/// Top-level bindings of one parsed file.
#[derive(Debug)]
pub(crate) struct Module<'a> {
    /// `from __future__ import annotations`: annotations are strings evaluated once.
    pub future_annotations: bool,
    bindings: HashMap<String, Binding<'a>>,
    qualified: HashMap<String, String>,
}

/// Names Python provides without an import, as far as annotations and defaults go.
const BUILTINS: &[&str] =
    &["int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset", "object", "type"];

impl<'a> Module<'a> {
    pub(crate) fn new(suite: &'a [Stmt]) -> Self {
        let mut module = Module { future_annotations: false, bindings: HashMap::new(), qualified: HashMap::new() };
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
                let level = import.level.map_or(0, |level| level.to_u32());
                let base =
                    format!("{}{}", ".".repeat(level as usize), import.module.as_ref().map_or("", |m| m.as_str()));
                for alias in &import.names {
                    let local = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                    if local == "*" {
                        continue;
                    }
                    self.import(local, format!("{base}.{}", alias.name.as_str()));
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
            _ => {}
        }
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

    /// The fully qualified name an expression such as `t.Optional` or `date`
    /// refers to, when it refers to something imported or built in.
    pub(crate) fn qualified_name(&self, expr: &Expr) -> Option<String> {
        match expr {
            Expr::Name(name) => match self.lookup(name.id.as_str()) {
                Some(Binding::Import(qualified)) => Some(qualified.to_string()),
                Some(_) => None,
                None if BUILTINS.contains(&name.id.as_str()) => Some(format!("builtins.{}", name.id.as_str())),
                None => None,
            },
            Expr::Attribute(attr) => {
                self.qualified_name(&attr.value).map(|base| format!("{base}.{}", attr.attr.as_str()))
            }
            _ => None,
        }
    }

    /// The class defined in this file that an expression names, if it names one.
    pub(crate) fn local_class(&self, expr: &Expr) -> Option<&'a ast::StmtClassDef> {
        match expr {
            Expr::Name(name) => match self.bindings.get(name.id.as_str()) {
                Some(Binding::Class(class)) if !self.qualified.contains_key(name.id.as_str()) => Some(class),
                _ => None,
            },
            _ => None,
        }
    }
}
