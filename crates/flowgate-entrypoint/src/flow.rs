//! The `@flow`-decorated function of an entrypoint: its Prefect name, description
//! and parameter schema, mirroring `prefect.flows.Flow.__init__` and
//! `prefect.utilities.callables.parameter_schema` of Prefect 3.9.1.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rustpython_parser::ast::{self, Expr, Ranged};
use rustpython_parser::source_code::RandomLocator;
use rustpython_parser::text_size::TextSize;
use rustpython_parser::Parse;
use serde_json::{json, Map, Value};

use crate::docstring;
use crate::error::EntrypointError;
use crate::fields::{FieldDefault, FieldInfo};
use crate::imports::{self, Parsed, Project, Scope, Sources};
use crate::module::{Binding, FnDef};
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
/// file in errors (for example `flows/etl.py`). Imports of other files are not
/// followed: use [`FlowReader`] for a project.
pub fn read_flow(file_label: &str, source: &str, function: &str) -> Result<FlowSignature, EntrypointError> {
    read_entry(&Sources::new(&|_| None), file_label, source.into(), function, &[])
}

/// Reads the flow `function` of the entrypoint file `entrypoint_path` of a
/// bundle, following imports of the project's own modules: `read` gives the
/// text of a bundle-relative path (`None` if there is no such file), and
/// `python_path` names the bundle directories importable besides the root and
/// the entrypoint's own directory (`[project] python_path`). To read several
/// flows of one bundle, use one [`FlowReader`].
pub fn read_flow_in(
    read: &dyn Fn(&str) -> Option<String>,
    entrypoint_path: &str,
    function: &str,
    python_path: &[String],
) -> Result<FlowSignature, EntrypointError> {
    FlowReader::new(read).read_flow(entrypoint_path, function, python_path)
}

/// Where a flow is: its entrypoint file, function and python path.
type FlowSpot = (String, String, Vec<String>);

/// Reads the flows of one bundle: each project module is read and parsed once
/// however many flows import it, and each flow's answer is remembered, so a
/// build's check and its settings read the same flow once.
#[allow(missing_debug_implementations)] // holds the caller's read callback
pub struct FlowReader<'r> {
    sources: Sources<'r>,
    answers: RefCell<HashMap<FlowSpot, Result<FlowSignature, EntrypointError>>>,
}

impl<'r> FlowReader<'r> {
    /// A reader of the bundle whose files `read` gives, as for [`read_flow_in`].
    pub fn new(read: &'r dyn Fn(&str) -> Option<String>) -> Self {
        FlowReader { sources: Sources::new(read), answers: RefCell::default() }
    }

    /// Takes `signature` as the answer for this flow without reading it: what a
    /// cache of an earlier reading of the very same files said.
    pub fn remember(&self, entrypoint_path: &str, function: &str, python_path: &[String], signature: FlowSignature) {
        let key = (entrypoint_path.to_string(), function.to_string(), python_path.to_vec());
        self.answers.borrow_mut().insert(key, Ok(signature));
    }

    /// How many flows have an answer without error (read or remembered).
    pub fn answered(&self) -> usize {
        self.answers.borrow().values().filter(|answer| answer.is_ok()).count()
    }

    /// Every flow read without error so far: entrypoint, function, python path
    /// and signature.
    pub fn signatures(&self) -> Vec<(String, String, Vec<String>, FlowSignature)> {
        let answers = self.answers.borrow();
        let mut out: Vec<_> = answers
            .iter()
            .filter_map(|((path, function, python_path), answer)| {
                Some((path.clone(), function.clone(), python_path.clone(), answer.as_ref().ok()?.clone()))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        out
    }

    /// The bundle files read so far (existing ones): what the answers depend on,
    /// besides which files exist.
    pub fn files_read(&self) -> Vec<String> {
        self.sources.files_read()
    }

    /// Whether the bundle has the file `path`.
    pub fn has(&self, path: &str) -> bool {
        self.sources.text(path).is_some()
    }

    /// What [`read_flow_in`] answers for this flow.
    pub fn read_flow(
        &self,
        entrypoint_path: &str,
        function: &str,
        python_path: &[String],
    ) -> Result<FlowSignature, EntrypointError> {
        let key = (entrypoint_path.to_string(), function.to_string(), python_path.to_vec());
        if let Some(answer) = self.answers.borrow().get(&key) {
            return answer.clone();
        }
        let answer = match self.sources.text(entrypoint_path) {
            Some(source) => read_entry(&self.sources, entrypoint_path, source, function, python_path),
            None => Err(EntrypointError::FileNotFound { file: entrypoint_path.to_string() }),
        };
        self.answers.borrow_mut().insert(key, answer.clone());
        answer
    }
}

fn read_entry(
    sources: &Sources<'_>,
    path: &str,
    source: Rc<str>,
    function: &str,
    python_path: &[String],
) -> Result<FlowSignature, EntrypointError> {
    let file_label = path;
    let suite = ast::Suite::parse(&source, file_label).map_err(|error| {
        let location = RandomLocator::new(&source).locate(error.offset);
        EntrypointError::Syntax {
            file: file_label.to_string(),
            line: location.row.get() as usize,
            column: location.column.get() as usize,
            message: error.error.to_string(),
        }
    })?;
    let files = imports::load(sources, path, Rc::new(Parsed { source, suite }), python_path);
    let project = Project::new(&files);
    let scope = project.entry();
    let def = match scope.module().lookup(function) {
        Some(Binding::Function(def)) => def,
        _ => {
            return Err(EntrypointError::FunctionNotFound {
                file: file_label.to_string(),
                function: function.to_string(),
            })
        }
    };
    let reader = Reader { file: file_label, scope, def };
    reader.read()
}

#[derive(Debug)]
struct Reader<'r, 'p, 'a> {
    file: &'r str,
    scope: Scope<'p, 'a>,
    def: FnDef<'a>,
}

/// The arguments given to `@flow(...)`, when written as literals.
#[derive(Debug, Default)]
struct FlowArgs {
    name: Option<String>,
    description: Option<String>,
}

impl Reader<'_, '_, '_> {
    fn line(&self, at: TextSize) -> usize {
        self.scope.line(at)
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
        let is_flow =
            |expr: &Expr| matches!(self.scope.external(expr).as_deref(), Some("prefect.flow" | "prefect.flows.flow"));
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
        match json_value(&self.scope, expr) {
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

    /// A parameter's schema. `Annotated[T, Field(...)]` keeps its constraints,
    /// but Prefect's own `Field(title=..., description=...)` replaces the rest.
    fn hint(&self, builder: &mut SchemaBuilder, hint: Option<&Expr>) -> Result<(Value, Option<String>), Problem> {
        let Some(expr) = hint else { return builder.hint(&self.scope, hint).map(|s| (s, None)) };
        let (core, info) = crate::pydantic::unwrap_annotated(&self.scope, expr)?;
        if std::ptr::eq(core, expr) {
            return builder.hint(&self.scope, hint).map(|s| (s, None));
        }
        if info.default.is_some() || !info.extra.is_empty() {
            return Err(Problem::new(expr, "has a default or extra schema inside `Annotated`"));
        }
        let schema = builder.schema(&self.scope, core)?;
        Ok((info.constrain(expr, schema)?, None))
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

        let mut builder = SchemaBuilder::default();
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
            let (hint, mut description) = self.hint(&mut builder, arg.annotation.as_deref()).map_err(fail)?;
            let mut extra = Map::new();
            let (schema, default) = match kind {
                Kind::Plain(None) => (hint, None),
                Kind::Plain(Some(default)) => match FieldInfo::from_value(&self.scope, default).map_err(fail)? {
                    // `param: int = Field(3, description=...)`, as Prefect reads it.
                    Some(info) => {
                        let value = match info.default {
                            Some(FieldDefault::Value(value)) => Some(json_value(&self.scope, value).map_err(fail)?),
                            None | Some(FieldDefault::Required) => None,
                            Some(FieldDefault::Factory(at)) => {
                                return Err(fail(Problem::new(at, "has a `default_factory`, which Prefect drops")))
                            }
                        };
                        if info.title.is_some() || info.alias.is_some() {
                            return Err(fail(Problem::new(default, "gives `Field` a title or alias")));
                        }
                        description = info.description.clone();
                        extra = info.extra.clone();
                        // Prefect keeps only the default, description and extra schema
                        // of such a `Field`; its constraints do not reach the schema.
                        (hint, value)
                    }
                    None => (hint, Some(json_value(&self.scope, default).map_err(fail)?)),
                },
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
            if let Some(description) = description.or_else(|| docs.get(name).cloned()) {
                property.insert("description".into(), Value::String(description));
            }
            property.extend(extra);
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
