//! Derives what `prefect deploy` learns by importing a flow module — the flow's
//! name, its description and `parameter_openapi_schema` — by parsing the
//! entrypoint file instead, so flowgate never runs the project's Python.
//!
//! Where a parameter's schema depends on code outside the file (an imported
//! pydantic model, a class with unknown bases), [`read_flow`] refuses with
//! [`EntrypointError::Unsupported`]; the user then sets `parameter_schema` for the
//! flow in `flowgate.toml`, which overrides the derived schema.

mod docstring;
mod error;
mod flow;
mod module;
mod schema;
mod value;

pub use error::EntrypointError;
pub use flow::{read_flow, FlowSignature};
