//! The `@flow`-decorated function of an entrypoint: its Prefect name, description
//! and parameter schema, mirroring `prefect.flows.Flow.__init__` and
//! `prefect.utilities.callables.parameter_schema` of Prefect 3.9.1.

use rustpython_parser::ast::{self, Expr, Ranged};
use rustpython_parser::source_code::RandomLocator;
use rustpython_parser::text_size::TextSize;
use rustpython_parser::Parse;
use serde_json::{json, Map, Value};

use crate::docstring;
use crate::error::EntrypointError;
use crate::module::{Binding, FnDef, Module};
use crate::schema::SchemaBuilder;
use crate::value::{json_value, Problem};

/// What `prefect deploy` would send for one flow function.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSignature {
    /// The Prefect flow name: `@flow(name=...)`, else the function name with `_`
    /// replaced by `-`.
    pub flow_name: String,
    /// The Python function the entrypoint names.
    pub function: String,
    /// Exactly what Prefect sends as `parameter_openapi_schema`.
    pub parameter_schema: Value,
    /// `@flow(description=...)` if non-empty, else the cleaned docstring, as
    /// Prefect's `Flow.description`.
    pub description: Option<String>,
}

/// Characters Prefect refuses in a flow name (`prefect.types.names.BANNED_CHARACTERS`).
const BANNED_CHARACTERS: &[char] = &['/', '%', '&', '>', '<'];

/// Reads the flow that `function` defines in `source`; `file_label` names the
/// file in errors (for example `flows/etl.py`).
pub fn read_flow(file_label: &str, source: &str, function: &str) -> Result<FlowSignature, EntrypointError> {
    let suite = ast::Suite::parse(source, file_label).map_err(|error| {
        let location = RandomLocator::new(source).locate(error.offset);
        EntrypointError::Syntax {
            file: file_label.to_string(),
            line: location.row.get() as usize,
            column: location.column.get() as usize,
            message: error.error.to_string(),
        }
    })?;
    let module = Module::new(&suite);
    let def = match module.lookup(function) {
        Some(Binding::Function(def)) => def,
        _ => {
            return Err(EntrypointError::FunctionNotFound {
                file: file_label.to_string(),
                function: function.to_string(),
            })
        }
    };
    let reader = Reader { file: file_label, source, module: &module, def };
    reader.read()
}

#[derive(Debug)]
struct Reader<'r, 'a> {
    file: &'r str,
    source: &'r str,
    module: &'r Module<'a>,
    def: FnDef<'r>,
}

/// The arguments given to `@flow(...)`, when written as literals.
#[derive(Debug, Default)]
struct FlowArgs {
    name: Option<String>,
    description: Option<String>,
}

impl Reader<'_, '_> {
    fn line(&self, at: TextSize) -> usize {
        RandomLocator::new(self.source).locate(at).row.get() as usize
    }

    fn read(&self) -> Result<FlowSignature, EntrypointError> {
        let args = self.flow_args()?;
        let default_name = self.def.name.replace('_', "-");
        let flow_name = args.name.filter(|n| !n.is_empty()).unwrap_or(default_name);
        if flow_name.contains(BANNED_CHARACTERS) || flow_name.is_empty() {
            return Err(self.decorator_error(
                self.def.decorators[0].start(),
                format!("the flow name `{flow_name}` contains one of `/ % & > <`, which Prefect refuses"),
            ));
        }
        let doc = docstring::raw(self.def.body).map(docstring::cleandoc);
        let description = args.description.filter(|d| !d.is_empty()).or_else(|| doc.clone());
        let docs = doc.as_deref().map(docstring::parameter_docs).unwrap_or_default();
        let parameter_schema = self.parameter_schema(&docs)?;
        Ok(FlowSignature { flow_name, function: self.def.name.to_string(), parameter_schema, description })
    }

    fn decorator_error(&self, at: TextSize, reason: String) -> EntrypointError {
        EntrypointError::Decorator {
            file: self.file.to_string(),
            function: self.def.name.to_string(),
            line: self.line(at),
            reason,
        }
    }

    /// Finds Prefect's `flow` among the decorators and reads its literal arguments.
    fn flow_args(&self) -> Result<FlowArgs, EntrypointError> {
        let is_flow = |expr: &Expr| {
            matches!(self.module.qualified_name(expr).as_deref(), Some("prefect.flow" | "prefect.flows.flow"))
        };
        for decorator in self.def.decorators {
            match decorator {
                Expr::Call(call) if is_flow(&call.func) => {
                    if !call.args.is_empty() {
                        return Err(self.decorator_error(
                            decorator.start(),
                            "`flow(...)` takes its options as keywords".to_string(),
                        ));
                    }
                    let mut args = FlowArgs::default();
                    for keyword in &call.keywords {
                        let slot = match keyword.arg.as_ref().map(|a| a.as_str()) {
                            Some("name") => &mut args.name,
                            Some("description") => &mut args.description,
                            None => {
                                return Err(self.decorator_error(
                                    keyword.start(),
                                    "`**` options cannot be read without running Python".to_string(),
                                ))
                            }
                            Some(_) => continue,
                        };
                        *slot = self.literal_str(&keyword.value)?;
                    }
                    return Ok(args);
                }
                expr if is_flow(expr) => return Ok(FlowArgs::default()),
                _ => {}
            }
        }
        Err(EntrypointError::NotAFlow { file: self.file.to_string(), function: self.def.name.to_string() })
    }

    fn literal_str(&self, expr: &Expr) -> Result<Option<String>, EntrypointError> {
        match json_value(self.module, expr) {
            Ok(Value::String(s)) => Ok(Some(s)),
            Ok(Value::Null) => Ok(None),
            _ => Err(self.decorator_error(
                expr.start(),
                "`name` and `description` must be string literals or constants of this file".to_string(),
            )),
        }
    }

    fn unsupported(&self, parameter: &str, problem: Problem) -> EntrypointError {
        EntrypointError::Unsupported {
            file: self.file.to_string(),
            function: self.def.name.to_string(),
            parameter: parameter.to_string(),
            line: self.line(problem.at),
            reason: problem.reason,
        }
    }

    /// `generate_parameter_schema` over `inspect.signature` order: positional-only,
    /// positional-or-keyword, `*args`, keyword-only, `**kwargs`.
    fn parameter_schema(&self, docs: &std::collections::HashMap<String, String>) -> Result<Value, EntrypointError> {
        let args = self.def.args;
        enum Kind<'e> {
            Plain(Option<&'e Expr>),
            VarPositional,
            VarKeyword,
        }
        let mut params: Vec<(&ast::Arg, Kind<'_>)> = Vec::new();
        for arg in args.posonlyargs.iter().chain(&args.args) {
            params.push((&arg.def, Kind::Plain(arg.default.as_deref())));
        }
        if let Some(vararg) = &args.vararg {
            params.push((vararg, Kind::VarPositional));
        }
        for arg in &args.kwonlyargs {
            params.push((&arg.def, Kind::Plain(arg.default.as_deref())));
        }
        if let Some(kwarg) = &args.kwarg {
            params.push((kwarg, Kind::VarKeyword));
        }

        let mut builder = SchemaBuilder::new(self.module);
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (position, (arg, kind)) in params.into_iter().enumerate() {
            let name = arg.arg.as_str();
            if name == "self" || name == "cls" {
                continue;
            }
            let fail = |problem| self.unsupported(name, problem);
            if name.starts_with('_') {
                return Err(fail(Problem {
                    reason: "starts with `_`, which pydantic does not accept as a field".into(),
                    at: arg.start(),
                }));
            }
            let hint = builder.hint(arg.annotation.as_deref()).map_err(fail)?;
            let (schema, default) = match kind {
                Kind::Plain(None) => (hint, None),
                Kind::Plain(Some(default)) => (hint, Some(json_value(self.module, default).map_err(fail)?)),
                Kind::VarPositional => (json!({"items": hint, "type": "array"}), Some(json!([]))),
                Kind::VarKeyword => {
                    let additional = if hint == json!({}) { Value::Bool(true) } else { hint };
                    (json!({"additionalProperties": additional, "type": "object"}), Some(json!({})))
                }
            };
            let Value::Object(mut property) = schema else { unreachable!("schemas are objects") };
            match default {
                Some(default) => {
                    property.insert("default".into(), default);
                }
                None => required.push(Value::String(name.to_string())),
            }
            if let Some(description) = docs.get(name) {
                property.insert("description".into(), Value::String(description.clone()));
            }
            property.insert("position".into(), json!(position));
            property.insert("title".into(), Value::String(name.to_string()));
            property.sort_keys();
            properties.insert(name.to_string(), Value::Object(property));
        }

        let mut schema = Map::new();
        schema.insert("title".into(), json!("Parameters"));
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
        let definitions: Map<String, Value> = builder.definitions.into_iter().collect();
        schema.insert("definitions".into(), Value::Object(definitions));
        Ok(Value::Object(schema))
    }
}
