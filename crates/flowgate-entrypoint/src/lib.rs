//! Derives what `prefect deploy` learns by importing a flow module — the flow's
//! name, its description and `parameter_openapi_schema` — by parsing the
//! entrypoint file instead, so flowgate never runs the project's Python.
//!
//! [`read_flow_in`] (and [`FlowReader`], for the flows of one bundle) follows the entrypoint's imports of the project's own modules
//! (type aliases, enums, pydantic models defined there). Where a parameter's
//! schema depends on code it cannot know (a third-party class, a class with
//! unknown bases, a computed default), it refuses with
//! [`EntrypointError::Unsupported`], naming the parameter and line; the user then
//! sets `parameter_schema` for the flow in `flowgate.toml`, which overrides the
//! derived schema.
//!
//! [`ClosureIndex`] answers, for each flow, the bundle files its run can load
//! (its code closure), so a build can record a per-flow code digest.

mod closure;
mod closure_scan;
mod docstring;
mod error;
mod fields;
mod flow;
mod import_lex;
mod import_scan;
mod imports;
mod module;
mod pydantic;
mod schema;
mod value;

pub use closure::{
    closure, closure_digest, declared_files, shared_files, Closure, ClosureIndex, DependsError, DynamicUse,
};
pub use error::EntrypointError;
pub use flow::{read_flow, read_flow_in, FlowReader, FlowSignature};
