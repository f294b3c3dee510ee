//! Type hints to JSON Schema as pydantic v2 writes it for Prefect's
//! `parameter_schema` (`GenerateEmptySchemaForUserClasses`, refs under
//! `#/definitions/`), for the hints that are knowable from the file alone.

use std::collections::BTreeMap;

use rustpython_parser::ast::{self, Constant, Expr, Operator};
use rustpython_parser::Mode;
use serde_json::{json, Map, Value};

use crate::imports::{Project, Resolved, Scope, Target};
use crate::module::Package;
use crate::value::{enum_def, json_value, Problem};

/// Builds property schemas for one function, collecting the definitions (enums,
/// models) they refer to.
#[derive(Debug, Default)]
pub(crate) struct SchemaBuilder {
    pub definitions: BTreeMap<String, Value>,
    /// Which class (file, class name) each definition was made from: pydantic
    /// renames same-named classes of different modules, which is not mirrored.
    owners: BTreeMap<String, (String, String)>,
}

impl SchemaBuilder {
    /// The JSON Schema of a type hint (`None` hint means no annotation: `Any`).
    pub(crate) fn hint(&mut self, scope: &Scope<'_, '_>, hint: Option<&Expr>) -> Result<Value, Problem> {
        match hint {
            None => Ok(json!({})),
            Some(Expr::Constant(ast::ExprConstant { value: Constant::Str(text), .. }))
                if scope.module().future_annotations =>
            {
                Ok(foreign_forward_ref(text))
            }
            Some(expr) => self.schema(scope, expr),
        }
    }

    pub(crate) fn schema(&mut self, scope: &Scope<'_, '_>, expr: &Expr) -> Result<Value, Problem> {
        match expr {
            Expr::Constant(constant) => match &constant.value {
                Constant::None => Ok(json!({"type": "null"})),
                Constant::Str(text) => self.forward_ref(scope, expr, text),
                _ => Err(Problem::new(expr, "has a type hint that is not a type")),
            },
            Expr::BinOp(binop) if binop.op == Operator::BitOr => {
                let mut members = Vec::new();
                flatten_or(expr, &mut members);
                self.union(scope, &members)
            }
            Expr::Subscript(subscript) => {
                let args: Vec<&Expr> = match &*subscript.slice {
                    Expr::Tuple(tuple) => tuple.elts.iter().collect(),
                    single => vec![single],
                };
                self.generic(scope, expr, &subscript.value, &args)
            }
            Expr::Name(_) | Expr::Attribute(_) => self.named(scope, expr),
            _ => Err(Problem::new(expr, "has a type hint this reader does not understand")),
        }
    }

    /// A string annotation (`"Optional[int]"`), evaluated like `eval_str=True`.
    fn forward_ref(&mut self, scope: &Scope<'_, '_>, expr: &Expr, text: &str) -> Result<Value, Problem> {
        let parsed = rustpython_parser::parse(text, Mode::Expression, "<annotation>").map_err(|_| {
            Problem::new(expr, format!("has the string annotation `{text}`, which is not valid Python"))
        })?;
        let ast::Mod::Expression(inner) = parsed else {
            return Err(Problem::new(expr, "has a string annotation that is not an expression"));
        };
        self.schema(scope, &inner.body).map_err(|problem| Problem { at: Problem::new(expr, "").at, ..problem })
    }

    /// Records a definition under the class name, refusing two classes of one name.
    pub(crate) fn define(
        &mut self,
        scope: &Scope<'_, '_>,
        class: &ast::StmtClassDef,
        at: &Expr,
        make: impl FnOnce(&mut Self) -> Result<Value, Problem>,
    ) -> Result<Value, Problem> {
        let name = class.name.to_string();
        let owner = (scope.path().to_string(), name.clone());
        let reference = json!({"$ref": format!("#/definitions/{name}")});
        match self.owners.get(&name) {
            Some(existing) if *existing == owner => return Ok(reference),
            Some((path, _)) => {
                return Err(Problem::new(
                    at,
                    format!("has type `{name}`, and another class of that name (in `{path}`) is used too, which pydantic renames"),
                ))
            }
            None => {}
        }
        // Registered before it is built, so a model that refers to itself ends.
        self.owners.insert(name.clone(), owner);
        let definition = make(self)?;
        self.definitions.insert(name, definition);
        Ok(reference)
    }

    fn class(&mut self, scope: &Scope<'_, '_>, class: &ast::StmtClassDef, expr: &Expr) -> Result<Value, Problem> {
        if crate::pydantic::is_model(scope, class) {
            return self.define(scope, class, expr, |this| crate::pydantic::definition(this, scope, class, expr));
        }
        if let Some(def) = enum_def(scope, class, expr)? {
            return self.define(scope, class, expr, |_| {
                let values: Vec<Value> = def.members.into_iter().map(|(_, v)| v).collect();
                let mut schema = Map::new();
                if let Some(description) = def.description {
                    schema.insert("description".into(), Value::String(description));
                }
                schema.insert("enum".into(), Value::Array(values.clone()));
                schema.insert("title".into(), Value::String(def.name.clone()));
                if let Some(kind) = common_type(&values, false) {
                    schema.insert("type".into(), Value::String(kind.into()));
                }
                Ok(Value::Object(schema))
            });
        }
        if class.bases.is_empty() && class.keywords.is_empty() && class.decorator_list.is_empty() {
            // A plain class: pydantic checks `isinstance`, which Prefect's
            // generator renders as an empty schema.
            return Ok(json!({}));
        }
        Err(Problem::new(
            expr,
            format!("has type `{}`, a class with bases or decorators whose schema is not knowable here", class.name),
        ))
    }

    fn named(&mut self, scope: &Scope<'_, '_>, expr: &Expr) -> Result<Value, Problem> {
        let qualified = match scope.resolve(expr) {
            None => {
                return Err(Problem::new(expr, "has a type hint that is neither imported nor defined in the project"))
            }
            Some(Target::Resolved(Resolved::Class(inner, class))) => {
                return self.class(&inner, class, expr).map_err(|p| p.moved(&inner, scope, expr))
            }
            Some(Target::Resolved(Resolved::Value(inner, value))) => {
                return self.alias(&inner, value).map_err(|p| p.moved(&inner, scope, expr))
            }
            Some(Target::Resolved(Resolved::Module(_))) => {
                return Err(Problem::new(expr, "has a module as its type hint"))
            }
            Some(Target::External(name)) => name,
        };
        let name = qualified.replace("typing_extensions.", "typing.");
        Ok(match name.as_str() {
            "builtins.int" => json!({"type": "integer"}),
            "builtins.float" => json!({"type": "number"}),
            "builtins.str" => json!({"type": "string"}),
            "builtins.bool" => json!({"type": "boolean"}),
            "builtins.bytes" => json!({"format": "binary", "type": "string"}),
            "builtins.object" | "typing.Any" => json!({}),
            "datetime.datetime" => json!({"format": "date-time", "type": "string"}),
            "datetime.date" => json!({"format": "date", "type": "string"}),
            "datetime.time" => json!({"format": "time", "type": "string"}),
            "datetime.timedelta" => json!({"format": "duration", "type": "string"}),
            "uuid.UUID" => json!({"format": "uuid", "type": "string"}),
            "pathlib.Path" => json!({"format": "path", "type": "string"}),
            "decimal.Decimal" => json!({"anyOf": [{"type": "number"}, {"type": "string"}]}),
            "pydantic.SecretStr" | "pydantic.types.SecretStr" => {
                json!({"format": "password", "type": "string", "writeOnly": true})
            }
            _ => match container(&name) {
                Some(kind) => self.container(scope, expr, kind, &[])?,
                None => {
                    return Err(Problem::new(
                        expr,
                        format!("has type `{qualified}`, whose schema is not knowable without importing it"),
                    ))
                }
            },
        })
    }

    /// A module-level type alias (`Choice = Literal["a", "b"]`, `X: TypeAlias =
    /// Optional[int]`, `UserId = NewType("UserId", int)`): the type it stands for.
    fn alias(&mut self, scope: &Scope<'_, '_>, value: &Expr) -> Result<Value, Problem> {
        if let Expr::Call(call) = value {
            if scope.external(&call.func).as_deref() == Some("typing.NewType") && call.args.len() == 2 {
                return self.schema(scope, &call.args[1]);
            }
            return Err(Problem::new(value, "has a type hint naming a value computed by a call"));
        }
        self.schema(scope, value)
    }

    fn generic(&mut self, scope: &Scope<'_, '_>, expr: &Expr, origin: &Expr, args: &[&Expr]) -> Result<Value, Problem> {
        let Some(name) = scope.external(origin) else {
            return Err(Problem::new(expr, "has a generic type hint that is neither imported nor built in"));
        };
        match name.as_str() {
            "typing.Optional" if args.len() == 1 => {
                let none =
                    Expr::Constant(ast::ExprConstant { range: Default::default(), value: Constant::None, kind: None });
                let members = [args[0], &none];
                self.union(scope, &members)
            }
            "typing.Union" => self.union(scope, args),
            "typing.Literal" => {
                let mut values = Vec::new();
                for arg in args {
                    values.push(json_value(scope, arg)?);
                }
                Ok(literal(values))
            }
            "typing.Annotated" if args.len() >= 2 => {
                let inner = self.schema(scope, args[0])?;
                let info = crate::fields::FieldInfo::from_metadata(scope, &args[1..])?;
                if info.description.is_some() || info.title.is_some() || info.default.is_some() {
                    return Err(Problem::new(
                        expr,
                        "has `Annotated` metadata with a description, title or default inside another type",
                    ));
                }
                info.constrain(expr, inner)
            }
            _ => match container(&name) {
                Some(kind) => self.container(scope, expr, kind, args),
                None => {
                    Err(Problem::new(expr, format!("has the generic type `{name}`, whose schema is not knowable here")))
                }
            },
        }
    }

    fn container(
        &mut self,
        scope: &Scope<'_, '_>,
        expr: &Expr,
        kind: Container,
        args: &[&Expr],
    ) -> Result<Value, Problem> {
        let item = |this: &mut Self, i: usize| match args.get(i) {
            Some(arg) => this.schema(scope, arg),
            None => Ok(json!({})),
        };
        Ok(match (kind, args.len()) {
            (Container::List, 0 | 1) => json!({"items": item(self, 0)?, "type": "array"}),
            (Container::Set, 0 | 1) => {
                json!({"items": item(self, 0)?, "type": "array", "uniqueItems": true})
            }
            (Container::Tuple, 0) => json!({"items": {}, "type": "array"}),
            (Container::Tuple, 2) if matches!(args[1], Expr::Constant(c) if matches!(c.value, Constant::Ellipsis)) => {
                json!({"items": item(self, 0)?, "type": "array"})
            }
            (Container::Tuple, n) => {
                let items = args.iter().map(|a| self.schema(scope, a)).collect::<Result<Vec<_>, _>>()?;
                json!({"maxItems": n, "minItems": n, "prefixItems": items, "type": "array"})
            }
            (Container::Dict, 0) => json!({"additionalProperties": true, "type": "object"}),
            (Container::Dict, 2) => {
                let key = self.schema(scope, args[0])?;
                if key != json!({}) && key != json!({"type": "string"}) && key != json!({"type": "integer"}) {
                    return Err(Problem::new(expr, "has a mapping whose key type is not `str` or `int`"));
                }
                let value = self.schema(scope, args[1])?;
                let additional = if value == json!({}) { Value::Bool(true) } else { value };
                json!({"additionalProperties": additional, "type": "object"})
            }
            _ => return Err(Problem::new(expr, "has a generic type with an unexpected number of arguments")),
        })
    }

    /// pydantic's union: `None` members make it nullable (null last), nested
    /// `anyOf`s are flattened and duplicates dropped.
    fn union(&mut self, scope: &Scope<'_, '_>, members: &[&Expr]) -> Result<Value, Problem> {
        let mut expanded = Vec::new();
        for member in members {
            expand_union(scope, member, &mut expanded);
        }
        let null = json!({"type": "null"});
        let mut nullable = false;
        let mut schemas = Vec::new();
        for member in expanded {
            let schema = self.schema(scope, member)?;
            if schema == null {
                nullable = true;
            } else {
                schemas.push(schema);
            }
        }
        let inner = match schemas.len() {
            0 => return Ok(null),
            1 => schemas.pop().unwrap_or_default(),
            _ => flattened_any_of(schemas),
        };
        Ok(if nullable { flattened_any_of(vec![inner, null]) } else { inner })
    }
}

/// Nested `Union[...]`, `Optional[...]` and `|` flatten into their parent, as
/// `typing` does before pydantic sees them.
fn expand_union<'e>(scope: &Scope<'_, '_>, expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinOp(binop) if binop.op == Operator::BitOr => flatten_or(expr, out),
        Expr::Subscript(subscript) => match scope.external(&subscript.value).as_deref() {
            Some("typing.Union") => match &*subscript.slice {
                Expr::Tuple(tuple) => tuple.elts.iter().for_each(|e| expand_union(scope, e, out)),
                single => expand_union(scope, single, out),
            },
            _ => out.push(expr),
        },
        _ => out.push(expr),
    }
}

/// Under `from __future__ import annotations` a quoted annotation evaluates to a
/// string, which pydantic resolves in the namespace of Prefect's schema module
/// (builtins and `typing`); whatever fails there becomes `Any`, as Prefect does.
fn foreign_forward_ref(text: &str) -> Value {
    const PREFECT_NAMESPACE: &str = "import inspect\nimport typing\nimport typing as t\nimport pydantic\n";
    let Ok(suite) = <ast::Suite as rustpython_parser::Parse>::parse(PREFECT_NAMESPACE, "<prefect>") else {
        return json!({});
    };
    let files = [crate::imports::SourceFile {
        path: "<prefect>".into(),
        parsed: std::rc::Rc::new(crate::imports::Parsed { source: PREFECT_NAMESPACE.into(), suite }),
        package: Package::Named(String::new()),
        name: None,
    }];
    let project = Project::new(&files);
    let Ok(ast::Mod::Expression(inner)) = rustpython_parser::parse(text, Mode::Expression, "<annotation>") else {
        return json!({});
    };
    SchemaBuilder::default().schema(&project.entry(), &inner.body).unwrap_or_else(|_| json!({}))
}

fn flatten_or<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinOp(binop) if binop.op == Operator::BitOr => {
            flatten_or(&binop.left, out);
            flatten_or(&binop.right, out);
        }
        other => out.push(other),
    }
}

fn flattened_any_of(schemas: Vec<Value>) -> Value {
    let mut members: Vec<Value> = Vec::new();
    for schema in schemas {
        let nested = match &schema {
            Value::Object(map) if map.len() == 1 => map.get("anyOf").and_then(Value::as_array).cloned(),
            _ => None,
        };
        for member in nested.unwrap_or_else(|| vec![schema]) {
            if !members.contains(&member) {
                members.push(member);
            }
        }
    }
    if members.len() == 1 {
        return members.pop().unwrap_or_default();
    }
    json!({"anyOf": members})
}

#[derive(Debug, Clone, Copy)]
enum Container {
    List,
    Set,
    Tuple,
    Dict,
}

fn container(name: &str) -> Option<Container> {
    Some(match name {
        "builtins.list" | "typing.List" | "typing.Sequence" | "collections.abc.Sequence" => Container::List,
        "builtins.set" | "builtins.frozenset" | "typing.Set" | "typing.FrozenSet" => Container::Set,
        "builtins.tuple" | "typing.Tuple" => Container::Tuple,
        "builtins.dict" | "typing.Dict" | "typing.Mapping" | "collections.abc.Mapping" => Container::Dict,
        _ => return None,
    })
}

/// The JSON type shared by every value, as pydantic names it for enums and literals.
pub(crate) fn common_type(values: &[Value], allow_null: bool) -> Option<&'static str> {
    let kind = |v: &Value| match v {
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Array(_) => "array",
        Value::Null => "null",
        Value::Object(_) => "object",
    };
    let first = kind(values.first()?);
    let same = values.iter().all(|v| kind(v) == first);
    (same && first != "object" && (allow_null || first != "null")).then_some(first)
}

/// pydantic's `literal_schema`.
fn literal(values: Vec<Value>) -> Value {
    let mut schema = Map::new();
    let kind = common_type(&values, true);
    if values.len() == 1 {
        schema.insert("const".into(), values.into_iter().next().unwrap_or_default());
    } else {
        schema.insert("enum".into(), Value::Array(values));
    }
    if let Some(kind) = kind {
        schema.insert("type".into(), Value::String(kind.into()));
    }
    Value::Object(schema)
}
