//! pydantic's `Field(...)`, written as a field's value or as `Annotated`
//! metadata: the default, the texts and the constraints it adds to a schema.

use rustpython_parser::ast::{self, Constant, Expr};
use serde_json::{Map, Value};

use crate::imports::Scope;
use crate::value::{json_value, Problem};

/// Where a field's default comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldDefault<'e> {
    /// `Field(...)` or `Field(default=...)` with the Ellipsis: required.
    Required,
    Value(&'e Expr),
    /// `default_factory=...`: not required, and no default in the schema.
    Factory(&'e Expr),
}

/// What one or more `Field(...)` calls say about a field.
#[derive(Debug, Default)]
pub(crate) struct FieldInfo<'e> {
    pub default: Option<FieldDefault<'e>>,
    pub description: Option<String>,
    pub title: Option<String>,
    pub alias: Option<String>,
    /// `(keyword, value)` of `ge`, `max_length`... in the order written.
    constraints: Vec<(String, Value)>,
    /// `examples` and `json_schema_extra`, copied into the property.
    pub extra: Map<String, Value>,
}

/// Keywords of `Field` that change nothing in a validation-mode JSON schema.
const SILENT: &[&str] = &["repr", "frozen", "exclude", "init", "init_var", "kw_only", "validate_default", "strict"];

fn is_field(scope: &Scope<'_, '_>, func: &Expr) -> bool {
    matches!(scope.external(func).as_deref(), Some("pydantic.Field" | "pydantic.fields.Field"))
}

impl<'e> FieldInfo<'e> {
    /// `Field(...)` if `expr` is a call to it.
    pub(crate) fn from_value(scope: &Scope<'_, '_>, expr: &'e Expr) -> Result<Option<Self>, Problem> {
        let Expr::Call(call) = expr else { return Ok(None) };
        if !is_field(scope, &call.func) {
            return Ok(None);
        }
        let mut info = FieldInfo::default();
        info.merge_call(scope, call, expr)?;
        Ok(Some(info))
    }

    /// The metadata of `Annotated[T, ...]`: `Field(...)` calls, validators that
    /// leave the schema alone, and plain strings, which pydantic ignores.
    pub(crate) fn from_metadata(scope: &Scope<'_, '_>, metadata: &[&'e Expr]) -> Result<Self, Problem> {
        let mut info = FieldInfo::default();
        for item in metadata {
            match item {
                Expr::Constant(ast::ExprConstant { value: Constant::Str(_), .. }) => {}
                Expr::Call(call) if is_field(scope, &call.func) => info.merge_call(scope, call, item)?,
                Expr::Call(call)
                    if matches!(
                        scope.external(&call.func).as_deref(),
                        Some(
                            "pydantic.AfterValidator"
                                | "pydantic.BeforeValidator"
                                | "pydantic.functional_validators.AfterValidator"
                                | "pydantic.functional_validators.BeforeValidator"
                        )
                    ) => {}
                other => {
                    return Err(Problem::new(
                        other,
                        "has `Annotated` metadata whose effect on the schema is not known here",
                    ))
                }
            }
        }
        Ok(info)
    }

    /// `Field(...)` assigned to a field overrides what its `Annotated` metadata said.
    pub(crate) fn merge(&mut self, later: FieldInfo<'e>) {
        self.default = later.default.or(self.default);
        self.description = later.description.or(self.description.take());
        self.title = later.title.or(self.title.take());
        self.alias = later.alias.or(self.alias.take());
        self.constraints.extend(later.constraints);
        self.extra.extend(later.extra);
    }

    fn merge_call(&mut self, scope: &Scope<'_, '_>, call: &'e ast::ExprCall, at: &Expr) -> Result<(), Problem> {
        let default = |expr: &'e Expr| match expr {
            Expr::Constant(ast::ExprConstant { value: Constant::Ellipsis, .. }) => FieldDefault::Required,
            other => FieldDefault::Value(other),
        };
        match call.args.as_slice() {
            [] => {}
            [first] => self.default = Some(default(first)),
            _ => return Err(Problem::new(at, "calls `Field` with more than one positional argument")),
        }
        let text = |expr: &Expr| match json_value(scope, expr)? {
            Value::String(s) => Ok(s),
            _ => Err(Problem::new(expr, "gives `Field` a text that is not a string literal")),
        };
        for keyword in &call.keywords {
            let Some(arg) = keyword.arg.as_ref().map(|a| a.as_str()) else {
                return Err(Problem::new(at, "calls `Field` with `**` options"));
            };
            let value = &keyword.value;
            match arg {
                "default" => self.default = Some(default(value)),
                "default_factory" => self.default = Some(FieldDefault::Factory(value)),
                "description" => self.description = Some(text(value)?),
                "title" => self.title = Some(text(value)?),
                "alias" => self.alias = Some(text(value)?),
                "ge" | "gt" | "le" | "lt" | "multiple_of" | "min_length" | "max_length" | "pattern" => {
                    self.constraints.push((arg.to_string(), json_value(scope, value)?));
                }
                "examples" => {
                    self.extra.insert("examples".into(), json_value(scope, value)?);
                }
                "json_schema_extra" => match json_value(scope, value)? {
                    Value::Object(extra) => self.extra.extend(extra),
                    _ => return Err(Problem::new(value, "gives `json_schema_extra` that is not a dict literal")),
                },
                silent if SILENT.contains(&silent) => {}
                other => {
                    return Err(Problem::new(
                        value,
                        format!("calls `Field` with `{other}`, whose effect is not mirrored"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Applies the constraints to the schema of the field's type, where pydantic
    /// puts them; refuses where it would put them anywhere subtler.
    pub(crate) fn constrain(&self, at: &Expr, schema: Value) -> Result<Value, Problem> {
        if self.constraints.is_empty() {
            return Ok(schema);
        }
        let Value::Object(mut map) = schema else { unreachable!("schemas are objects") };
        let kind = map.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        let refuse = |keyword: &str| {
            Problem::new(at, format!("has the constraint `{keyword}` on a type where its schema is not mirrored"))
        };
        for (keyword, value) in &self.constraints {
            let key = match (keyword.as_str(), kind.as_str()) {
                ("ge", "integer" | "number") => "minimum",
                ("gt", "integer" | "number") => "exclusiveMinimum",
                ("le", "integer" | "number") => "maximum",
                ("lt", "integer" | "number") => "exclusiveMaximum",
                ("multiple_of", "integer" | "number") => "multipleOf",
                ("min_length", "string") => "minLength",
                ("max_length", "string") => "maxLength",
                ("pattern", "string") => "pattern",
                ("min_length", "array") => "minItems",
                ("max_length", "array") => "maxItems",
                (keyword, _) => return Err(refuse(keyword)),
            };
            if map.contains_key("format") || map.contains_key("uniqueItems") {
                return Err(refuse(keyword));
            }
            map.insert(key.into(), value.clone());
        }
        Ok(Value::Object(map))
    }
}
