//! pydantic v2 models of the project, read statically: the definition pydantic
//! writes for a `BaseModel` subclass under `#/definitions/`, and the JSON of a
//! model instance used as a default (`cfg: Config = Config(days=2)`).

use rustpython_parser::ast::{self, Constant, Expr, Stmt};
use serde_json::{json, Map, Number, Value};

use crate::docstring;
use crate::fields::{FieldDefault, FieldInfo};
use crate::imports::{Resolved, Scope, Target};
use crate::schema::SchemaBuilder;
use crate::value::{enum_def, json_value, Problem};

/// How deep model classes may inherit or nest before we give up.
const MAX_DEPTH: usize = 16;

/// One field of a model, with the module its annotation is read in.
#[derive(Debug, Clone)]
struct ModelField<'p, 'a> {
    name: String,
    scope: Scope<'p, 'a>,
    annotation: &'p Expr,
    value: Option<&'p Expr>,
}

fn is_base_model(name: Option<&str>) -> bool {
    matches!(name, Some("pydantic.BaseModel" | "pydantic.main.BaseModel"))
}

/// Whether a project class is a pydantic (v2) model: `BaseModel` among its bases,
/// directly or through other project models.
pub(crate) fn is_model(scope: &Scope<'_, '_>, class: &ast::StmtClassDef) -> bool {
    is_model_at(scope, class, 0)
}

fn is_model_at(scope: &Scope<'_, '_>, class: &ast::StmtClassDef, depth: usize) -> bool {
    depth < MAX_DEPTH
        && class.bases.iter().any(|base| {
            is_base_model(scope.external(base).as_deref())
                || scope.class(base).is_some_and(|(inner, base)| is_model_at(&inner, base, depth + 1))
        })
}

fn is_class_var(scope: &Scope<'_, '_>, annotation: &Expr) -> bool {
    let origin = match annotation {
        Expr::Subscript(subscript) => &*subscript.value,
        other => other,
    };
    scope.external(origin).as_deref() == Some("typing.ClassVar")
}

/// The fields of a model in pydantic's order: inherited ones first (an
/// override keeps its place), then the class's own.
fn fields<'p, 'a>(
    scope: &Scope<'p, 'a>,
    class: &'p ast::StmtClassDef,
    at: &Expr,
    depth: usize,
) -> Result<Vec<ModelField<'p, 'a>>, Problem> {
    let name = class.name.as_str();
    let refuse = |reason: String| Problem::new(at, format!("has type `{name}`, a pydantic model {reason}"));
    if depth > MAX_DEPTH {
        return Err(refuse("nested too deeply".into()));
    }
    if !class.keywords.is_empty() || !class.decorator_list.is_empty() {
        return Err(refuse("with class keywords or decorators, which may change its schema".into()));
    }
    let mut out: Vec<ModelField<'p, 'a>> = Vec::new();
    for base in &class.bases {
        if is_base_model(scope.external(base).as_deref()) {
            continue;
        }
        match scope.class(base) {
            Some((inner, base_class)) if is_model(&inner, base_class) => {
                out.extend(fields(&inner, base_class, at, depth + 1).map_err(|p| p.moved(&inner, scope, at))?)
            }
            _ => return Err(refuse("with a base class that is not a pydantic model of the project".into())),
        }
    }
    for stmt in &class.body {
        match stmt {
            Stmt::AnnAssign(assign) => {
                let Expr::Name(target) = &*assign.target else {
                    return Err(refuse("with an annotated attribute that is not a plain name".into()));
                };
                let field = target.id.as_str();
                if field.starts_with('_') || is_class_var(scope, &assign.annotation) {
                    continue;
                }
                if field == "model_config" {
                    return Err(refuse("with `model_config`, which may change its schema".into()));
                }
                let entry = ModelField {
                    name: field.to_string(),
                    scope: *scope,
                    annotation: &assign.annotation,
                    value: assign.value.as_deref(),
                };
                match out.iter_mut().find(|f| f.name == field) {
                    Some(existing) => *existing = entry,
                    None => out.push(entry),
                }
            }
            Stmt::Assign(assign) => {
                let private = assign.targets.iter().all(|t| matches!(t, Expr::Name(n) if n.id.starts_with('_')));
                if !private {
                    return Err(refuse("with an unannotated attribute or `model_config`".into()));
                }
            }
            Stmt::FunctionDef(def)
                if !def.name.starts_with("__get_pydantic") && def.name.as_str() != "model_json_schema" => {}
            Stmt::AsyncFunctionDef(_) | Stmt::Pass(_) => {}
            Stmt::Expr(expr) if matches!(&*expr.value, Expr::Constant(_)) => {}
            Stmt::ClassDef(inner) if inner.name.as_str() != "Config" => {}
            _ => return Err(refuse("with a statement in its body that may change its schema".into())),
        }
    }
    Ok(out)
}

/// Splits `Annotated[T, ...]` into `T` and the `Field` information of its
/// metadata; any other annotation is its own type.
pub(crate) fn unwrap_annotated<'a>(
    scope: &Scope<'_, '_>,
    annotation: &'a Expr,
) -> Result<(&'a Expr, FieldInfo<'a>), Problem> {
    if let Expr::Subscript(subscript) = annotation {
        if scope.external(&subscript.value).as_deref() == Some("typing.Annotated") {
            if let Expr::Tuple(tuple) = &*subscript.slice {
                if let [inner, metadata @ ..] = tuple.elts.as_slice() {
                    let metadata: Vec<&Expr> = metadata.iter().collect();
                    return Ok((inner, FieldInfo::from_metadata(scope, &metadata)?));
                }
            }
        }
    }
    Ok((annotation, FieldInfo::default()))
}

/// The field's type and everything `Field(...)` says of it, from the
/// annotation's metadata and the assigned value together.
fn field_info<'p>(field: &ModelField<'p, '_>) -> Result<(&'p Expr, FieldInfo<'p>), Problem> {
    let (core, mut info) = unwrap_annotated(&field.scope, field.annotation)?;
    if let Some(value) = field.value {
        match FieldInfo::from_value(&field.scope, value)? {
            Some(assigned) => info.merge(assigned),
            None => info.default = Some(FieldDefault::Value(value)),
        }
    }
    Ok((core, info))
}

/// Python's `str.title()`, then `_` to spaces: pydantic's title of a field.
fn title_case(name: &str) -> String {
    let mut out = String::new();
    let mut previous_cased = false;
    for c in name.chars() {
        if previous_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        previous_cased = c.is_alphabetic();
    }
    out.replace('_', " ").trim().to_string()
}

/// pydantic sets no title on a field whose schema is a reference (a model or an
/// enum), nor on the nullable form of one.
fn takes_title(schema: &Value) -> bool {
    if schema.get("$ref").is_some() {
        return false;
    }
    match schema.get("anyOf").and_then(Value::as_array).map(Vec::as_slice) {
        Some([first, null]) if *null == json!({"type": "null"}) => first.get("$ref").is_none(),
        _ => true,
    }
}

/// The definition of a model: its properties, required fields, title and docstring.
pub(crate) fn definition(
    builder: &mut SchemaBuilder,
    scope: &Scope<'_, '_>,
    class: &ast::StmtClassDef,
    at: &Expr,
) -> Result<Value, Problem> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in fields(scope, class, at, 0)? {
        let context = |p: Problem| {
            let reason = format!("{} (field `{}` of `{}`)", p.reason, field.name, class.name);
            Problem { reason, ..p }.moved(&field.scope, scope, at)
        };
        let (core, info) = field_info(&field).map_err(context)?;
        let schema = builder.schema(&field.scope, core).and_then(|s| info.constrain(core, s)).map_err(context)?;
        let Value::Object(mut property) = schema.clone() else { unreachable!("schemas are objects") };
        let key = info.alias.clone().unwrap_or_else(|| field.name.clone());
        if let Some(title) = &info.title {
            property.insert("title".into(), json!(title));
        } else if takes_title(&schema) {
            property.insert("title".into(), json!(title_case(&key)));
        }
        match info.default {
            None | Some(FieldDefault::Required) => required.push(json!(key)),
            Some(FieldDefault::Factory(_)) => {}
            Some(FieldDefault::Value(value)) => {
                property.insert("default".into(), json_value(&field.scope, value).map_err(context)?);
            }
        }
        if let Some(description) = &info.description {
            property.insert("description".into(), json!(description));
        }
        property.extend(info.extra.clone());
        properties.insert(key, Value::Object(property));
    }
    let mut schema = Map::new();
    if let Some(doc) = docstring::raw(&class.body).map(docstring::cleandoc).filter(|d| !d.is_empty()) {
        schema.insert("description".into(), json!(doc));
    }
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("title".into(), json!(class.name.as_str()));
    schema.insert("type".into(), json!("object"));
    Ok(Value::Object(schema))
}

/// The JSON of `Model(...)` written as a default: the validated keyword
/// arguments and every other field's default, in field order.
pub(crate) fn instance(scope: &Scope<'_, '_>, call: &ast::ExprCall, expr: &Expr) -> Result<Value, Problem> {
    let Some((inner, class)) = scope.class(&call.func).filter(|(s, c)| is_model(s, c)) else {
        return Err(Problem::new(expr, "has a default computed by a call"));
    };
    if !call.args.is_empty() {
        return Err(Problem::new(expr, "builds a model with positional arguments, which pydantic refuses"));
    }
    let mut given = Vec::new();
    for keyword in &call.keywords {
        let Some(name) = &keyword.arg else {
            return Err(Problem::new(expr, "builds a model with `**` arguments"));
        };
        given.push((name.to_string(), &keyword.value));
    }
    construct(&inner, class, scope, &given, expr, 0)
}

fn construct(
    scope: &Scope<'_, '_>,
    class: &ast::StmtClassDef,
    given_scope: &Scope<'_, '_>,
    given: &[(String, &Expr)],
    at: &Expr,
    depth: usize,
) -> Result<Value, Problem> {
    if depth > MAX_DEPTH {
        return Err(Problem::new(at, "builds models nested too deeply"));
    }
    let mut out = Map::new();
    for field in fields(scope, class, at, 0).map_err(|p| p.moved(scope, given_scope, at))? {
        let context = |p: Problem| p.moved(&field.scope, given_scope, at);
        let (core, info) = field_info(&field).map_err(context)?;
        if info.alias.is_some() {
            return Err(Problem::new(
                at,
                format!("builds `{}`, whose field `{}` has an alias", class.name, field.name),
            ));
        }
        let value = match given.iter().find(|(name, _)| *name == field.name) {
            Some((_, value)) => validate(&field.scope, core, given_scope, value, depth)?,
            None => match info.default {
                Some(FieldDefault::Value(value)) => json_value(&field.scope, value).map_err(context)?,
                Some(FieldDefault::Factory(factory)) => factory_value(&field.scope, factory, depth).map_err(context)?,
                _ => {
                    return Err(Problem::new(
                        at,
                        format!("builds `{}` without its required field `{}`", class.name, field.name),
                    ))
                }
            },
        };
        out.insert(field.name.clone(), value);
    }
    Ok(Value::Object(out))
}

/// What `default_factory` produces, for the factories whose result is known.
fn factory_value(scope: &Scope<'_, '_>, factory: &Expr, depth: usize) -> Result<Value, Problem> {
    if let Some((inner, class)) = scope.class(factory).filter(|(s, c)| is_model(s, c)) {
        return construct(&inner, class, scope, &[], factory, depth + 1);
    }
    match scope.external(factory).as_deref() {
        Some("builtins.list" | "builtins.set" | "builtins.tuple" | "builtins.frozenset") => Ok(json!([])),
        Some("builtins.dict") => Ok(json!({})),
        _ => match factory {
            Expr::Lambda(lambda) if lambda.args.args.is_empty() => json_value(scope, &lambda.body),
            _ => Err(Problem::new(factory, "has a `default_factory` whose result is not known here")),
        },
    }
}

/// The value pydantic keeps after validating `value` (written in `value_scope`)
/// as the type `hint` (written in `scope`), for the types where that is plain.
fn validate(
    scope: &Scope<'_, '_>,
    hint: &Expr,
    value_scope: &Scope<'_, '_>,
    value: &Expr,
    depth: usize,
) -> Result<Value, Problem> {
    let refuse = || Problem::new(value, "gives a model a value whose validated form is not known here");
    let (hint, _) = unwrap_annotated(scope, hint).map_err(|p| p.moved(scope, value_scope, value))?;
    if let Some(Target::Resolved(Resolved::Value(inner, alias))) = scope.resolve(hint) {
        return validate(&inner, alias, value_scope, value, depth + 1);
    }
    if let Some((inner, class)) = scope.class(hint) {
        if is_model(&inner, class) {
            return match value {
                Expr::Call(call)
                    if value_scope.class(&call.func).is_some_and(|(s, c)| s.same(&inner) && c.name == class.name) =>
                {
                    instance(value_scope, call, value)
                }
                Expr::Dict(dict) => {
                    let mut given = Vec::new();
                    for (key, item) in dict.keys.iter().zip(&dict.values) {
                        match key.as_ref().map(|k| json_value(value_scope, k)) {
                            Some(Ok(Value::String(key))) => given.push((key, item)),
                            _ => return Err(refuse()),
                        }
                    }
                    construct(&inner, class, value_scope, &given, value, depth + 1)
                }
                _ => Err(refuse()),
            };
        }
        let found = json_value(value_scope, value)?;
        let def = enum_def(&inner, class, hint).map_err(|p| p.moved(&inner, value_scope, value))?.ok_or_else(refuse)?;
        return def.members.into_iter().map(|(_, v)| v).find(|v| *v == found).ok_or_else(refuse);
    }
    let (origin, args): (&Expr, Vec<&Expr>) = match hint {
        Expr::Subscript(subscript) => match &*subscript.slice {
            Expr::Tuple(tuple) => (&subscript.value, tuple.elts.iter().collect()),
            single => (&subscript.value, vec![single]),
        },
        Expr::BinOp(_) => return nullable_only(scope, hint, value_scope, value, depth),
        other => (other, vec![]),
    };
    let found = || json_value(value_scope, value);
    match (scope.external(origin).as_deref(), args.as_slice()) {
        (None, _) => Err(refuse()),
        (Some("typing.Any" | "builtins.object"), []) => found(),
        (Some("builtins.str"), []) => found().and_then(|v| if v.is_string() { Ok(v) } else { Err(refuse()) }),
        (Some("builtins.bool"), []) => found().and_then(|v| if v.is_boolean() { Ok(v) } else { Err(refuse()) }),
        (Some("builtins.int"), []) => {
            found().and_then(|v| if v.is_i64() || v.is_u64() { Ok(v) } else { Err(refuse()) })
        }
        (Some("builtins.float"), []) => match found()? {
            Value::Number(n) => n.as_f64().and_then(Number::from_f64).map(Value::Number).ok_or_else(refuse),
            _ => Err(refuse()),
        },
        (Some("typing.Optional" | "typing.Union"), _) => nullable_only(scope, hint, value_scope, value, depth),
        (Some("typing.Literal"), members) => {
            let found = found()?;
            for member in members {
                if json_value(scope, member)? == found {
                    return Ok(found);
                }
            }
            Err(refuse())
        }
        (Some("builtins.list" | "typing.List" | "typing.Sequence"), [item]) => match value {
            Expr::List(list) => list
                .elts
                .iter()
                .map(|e| validate(scope, item, value_scope, e, depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(refuse()),
        },
        (Some("builtins.dict" | "typing.Dict" | "typing.Mapping"), [key, item])
            if scope.external(key).as_deref() == Some("builtins.str") =>
        {
            let Expr::Dict(dict) = value else { return Err(refuse()) };
            let mut map = Map::new();
            for (k, v) in dict.keys.iter().zip(&dict.values) {
                let Some(Ok(Value::String(k))) = k.as_ref().map(|k| json_value(value_scope, k)) else {
                    return Err(refuse());
                };
                map.insert(k, validate(scope, item, value_scope, v, depth + 1)?);
            }
            Ok(Value::Object(map))
        }
        _ => Err(refuse()),
    }
}

/// `Optional[T]`, `T | None`: `None` stays `None`; anything else validates as
/// `T`. Other unions are left to pydantic's smart mode, which is not mirrored.
fn nullable_only(
    scope: &Scope<'_, '_>,
    hint: &Expr,
    value_scope: &Scope<'_, '_>,
    value: &Expr,
    depth: usize,
) -> Result<Value, Problem> {
    if matches!(value, Expr::Constant(c) if matches!(c.value, Constant::None)) {
        return Ok(Value::Null);
    }
    let members: Vec<&Expr> = match hint {
        Expr::BinOp(binop) => vec![&binop.left, &binop.right],
        Expr::Subscript(subscript) => match &*subscript.slice {
            Expr::Tuple(tuple) => tuple.elts.iter().collect(),
            single => vec![single],
        },
        _ => vec![],
    };
    let is_none = |e: &&Expr| matches!(e, Expr::Constant(c) if matches!(c.value, Constant::None));
    let rest: Vec<&Expr> = members.into_iter().filter(|e| !is_none(e)).collect();
    match rest.as_slice() {
        [only] => validate(scope, only, value_scope, value, depth + 1),
        _ => Err(Problem::new(value, "gives a model a value for a union, whose validated form is not known here")),
    }
}
