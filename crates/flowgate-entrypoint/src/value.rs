//! Python literals as the JSON Prefect would send: parameter defaults, `Literal[...]`
//! choices and enum member values, evaluated statically (no Python runs).

use rustpython_parser::ast::{self, Constant, Expr, Ranged, UnaryOp};
use rustpython_parser::text_size::TextSize;
use serde_json::{Map, Number, Value};

use crate::docstring;
use crate::imports::{Resolved, Scope, Target};

/// Why an expression has no statically known value, and where it is.
#[derive(Debug)]
pub(crate) struct Problem {
    pub reason: String,
    pub at: TextSize,
}

impl Problem {
    pub(crate) fn new(expr: &Expr, reason: impl Into<String>) -> Self {
        Problem { reason: reason.into(), at: expr.start() }
    }

    /// A problem met in `inner` (another module) while following `expr` of
    /// `outer`: placed at `expr`, with the other file and line in the reason.
    pub(crate) fn moved(self, inner: &Scope<'_, '_>, outer: &Scope<'_, '_>, expr: &Expr) -> Self {
        if inner.same(outer) {
            return self;
        }
        let reason = format!("{} (in `{}`, line {})", self.reason, inner.path(), inner.line(self.at));
        Problem { reason, at: expr.start() }
    }
}

/// How deep module-level names may refer to other names before we give up.
const MAX_NAME_DEPTH: usize = 16;

/// The JSON form (`pydantic_core.to_jsonable_python`) of a literal expression, a
/// module-level constant of the project, or a member of an enum of the project.
pub(crate) fn json_value(module: &Scope<'_, '_>, expr: &Expr) -> Result<Value, Problem> {
    evaluate(module, expr, 0)
}

fn evaluate(module: &Scope<'_, '_>, expr: &Expr, depth: usize) -> Result<Value, Problem> {
    match expr {
        Expr::Constant(constant) => constant_value(expr, &constant.value),
        Expr::UnaryOp(op) => {
            let inner = evaluate(module, &op.operand, depth)?;
            let negate = match op.op {
                UnaryOp::USub => true,
                UnaryOp::UAdd => false,
                _ => return Err(Problem::new(expr, "has a default computed by an operator")),
            };
            numeric(expr, inner, negate)
        }
        Expr::List(ast::ExprList { elts, .. }) | Expr::Tuple(ast::ExprTuple { elts, .. }) => {
            elts.iter().map(|e| evaluate(module, e, depth)).collect::<Result<Vec<_>, _>>().map(Value::Array)
        }
        Expr::Dict(dict) => {
            let mut map = Map::new();
            for (key, value) in dict.keys.iter().zip(&dict.values) {
                let Some(key) = key else {
                    return Err(Problem::new(expr, "has a dict default with `**` unpacking"));
                };
                let key = match evaluate(module, key, depth)? {
                    Value::String(s) => s,
                    Value::Number(n) if !n.is_f64() => n.to_string(),
                    _ => return Err(Problem::new(key, "has a dict default with a non-string key")),
                };
                map.insert(key, evaluate(module, value, depth)?);
            }
            Ok(Value::Object(map))
        }
        Expr::Name(_) | Expr::Attribute(_) if depth < MAX_NAME_DEPTH => {
            if let Some(Target::Resolved(Resolved::Value(scope, value))) = module.resolve(expr) {
                return evaluate(&scope, value, depth + 1).map_err(|p| p.moved(&scope, module, expr));
            }
            if let Expr::Attribute(attr) = expr {
                if let Some((scope, class)) = module.class(&attr.value) {
                    return enum_member(&scope, class, attr.attr.as_str(), expr)
                        .map_err(|p| p.moved(&scope, module, expr));
                }
            }
            Err(Problem::new(expr, "refers to something that is not a literal constant of the project"))
        }
        Expr::Call(call) => crate::pydantic::instance(module, call, expr),
        _ => Err(Problem::new(expr, "has a value that is not a literal")),
    }
}

fn constant_value(expr: &Expr, constant: &Constant) -> Result<Value, Problem> {
    Ok(match constant {
        Constant::None => Value::Null,
        Constant::Bool(b) => Value::Bool(*b),
        Constant::Str(s) => Value::String(s.clone()),
        Constant::Bytes(bytes) => match String::from_utf8(bytes.clone()) {
            Ok(s) => Value::String(s),
            Err(_) => return Err(Problem::new(expr, "has a bytes value that is not UTF-8")),
        },
        Constant::Int(int) => {
            let text = int.to_string();
            match (text.parse::<i64>(), text.parse::<u64>()) {
                (Ok(i), _) => Value::from(i),
                (_, Ok(u)) => Value::from(u),
                _ => return Err(Problem::new(expr, "has an integer beyond 64 bits")),
            }
        }
        Constant::Float(f) => match Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => return Err(Problem::new(expr, "has a float that JSON cannot hold")),
        },
        Constant::Tuple(items) => {
            Value::Array(items.iter().map(|c| constant_value(expr, c)).collect::<Result<_, _>>()?)
        }
        Constant::Complex { .. } | Constant::Ellipsis => {
            return Err(Problem::new(expr, "has a value JSON cannot hold"))
        }
    })
}

fn numeric(expr: &Expr, value: Value, negate: bool) -> Result<Value, Problem> {
    let Value::Number(n) = value else {
        return Err(Problem::new(expr, "applies a sign to something not a number"));
    };
    if !negate {
        return Ok(Value::Number(n));
    }
    if let Some(i) = n.as_i64() {
        return Ok(Value::from(-i));
    }
    match n.as_f64().and_then(|f| Number::from_f64(-f)) {
        Some(n) if n.is_f64() => Ok(Value::Number(n)),
        _ => Err(Problem::new(expr, "has an integer beyond 64 bits")),
    }
}

/// An enum defined in the file: its name, docstring and members in order.
#[derive(Debug)]
pub(crate) struct EnumDef {
    pub name: String,
    pub description: Option<String>,
    pub members: Vec<(String, Value)>,
}

/// Which builtin type an enum mixes in (`class Color(str, Enum)`, `IntEnum`).
fn mixin(module: &Scope<'_, '_>, class: &ast::StmtClassDef) -> Result<Option<Option<&'static str>>, ()> {
    let mut is_enum = false;
    let mut mixin = None;
    for base in &class.bases {
        match module.external(base).as_deref() {
            Some("enum.Enum") => is_enum = true,
            Some("enum.IntEnum") => (is_enum, mixin) = (true, Some("int")),
            Some("enum.StrEnum") => (is_enum, mixin) = (true, Some("str")),
            Some("builtins.str") => mixin = Some("str"),
            Some("builtins.int") => mixin = Some("int"),
            _ => return Err(()),
        }
    }
    Ok(is_enum.then_some(mixin))
}

/// The enum a class of this file defines; `Ok(None)` if the class is not an enum.
pub(crate) fn enum_def(
    module: &Scope<'_, '_>,
    class: &ast::StmtClassDef,
    at: &Expr,
) -> Result<Option<EnumDef>, Problem> {
    let name = class.name.as_str();
    let mixin = match mixin(module, class) {
        Ok(Some(mixin)) => mixin,
        Ok(None) => return Ok(None),
        Err(()) => {
            return Err(Problem::new(at, format!("has type `{name}`, whose base classes are not all known here")))
        }
    };
    let mut members: Vec<(String, Value)> = Vec::new();
    for stmt in &class.body {
        let (target, value) = match stmt {
            ast::Stmt::Assign(assign) if assign.targets.len() == 1 => (&assign.targets[0], &*assign.value),
            ast::Stmt::AnnAssign(assign) => match &assign.value {
                Some(value) => (&*assign.target, &**value),
                None => continue,
            },
            _ => continue,
        };
        let Expr::Name(member) = target else { continue };
        let member = member.id.as_str();
        if member.starts_with('_') && member.ends_with('_') {
            continue;
        }
        let value = match value {
            Expr::Constant(_) | Expr::UnaryOp(_) | Expr::Tuple(_) => json_value(module, value)?,
            _ => {
                return Err(Problem::new(
                    at,
                    format!("has type `{name}`, whose member `{member}` is not a literal (e.g. `auto()`)"),
                ))
            }
        };
        let fits = match mixin {
            Some("str") => value.is_string(),
            Some("int") => value.is_i64() || value.is_u64(),
            _ => true,
        };
        if !fits {
            return Err(Problem::new(
                at,
                format!("has type `{name}`, whose member `{member}` is converted by its mixin type"),
            ));
        }
        // Aliases stay: pydantic lists `__members__`, aliases included.
        members.push((member.to_string(), value));
    }
    let description =
        docstring::raw(&class.body).map(docstring::cleandoc).filter(|doc| !doc.is_empty() && doc != "An enumeration.");
    Ok(Some(EnumDef { name: name.to_string(), description, members }))
}

/// Python's `==` on the values an enum may hold: `1 == 1.0 == True` (so aliases).
fn python_eq(a: &Value, b: &Value) -> bool {
    let number = |v: &Value| match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn enum_member(module: &Scope<'_, '_>, class: &ast::StmtClassDef, member: &str, expr: &Expr) -> Result<Value, Problem> {
    let Some(def) = enum_def(module, class, expr)? else {
        return Err(Problem::new(expr, format!("refers to `{}.{member}`, which is not an enum member", class.name)));
    };
    let declared = class.body.iter().find_map(|stmt| match stmt {
        ast::Stmt::Assign(assign) => match assign.targets.as_slice() {
            [Expr::Name(name)] if name.id.as_str() == member => Some(&*assign.value),
            _ => None,
        },
        _ => None,
    });
    let not_member = || Problem::new(expr, format!("refers to `{}.{member}`, which is not a member", def.name));
    let value = json_value(module, declared.ok_or_else(not_member)?)?;
    // An alias (`B = 1` after `A = 1`) is the first member with an equal value.
    def.members
        .into_iter()
        .map(|(_, canonical)| canonical)
        .find(|canonical| python_eq(canonical, &value))
        .ok_or_else(not_member)
}
