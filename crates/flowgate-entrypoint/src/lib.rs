//! Derives what `prefect deploy` learns by importing a flow module — the flow's
//! name, its description and `parameter_openapi_schema` — by parsing the
//! entrypoint file instead, so flowgate never runs the project's Python.
//!
//! [`read_flow_in`] follows the entrypoint's imports of the project's own modules
//! (type aliases, enums, pydantic models defined there). Where a parameter's
//! schema depends on code it cannot know (a third-party class, a class with
//! unknown bases, a computed default), it refuses with
//! [`EntrypointError::Unsupported`], naming the parameter and line; the user then
//! sets `parameter_schema` for the flow in `flowgate.toml`, which overrides the
//! derived schema.

mod docstring;
mod error;
mod fields;
mod flow;
mod imports;
mod module;
mod pydantic;
mod schema;
mod value;

pub use error::EntrypointError;
pub use flow::{read_flow, read_flow_in, FlowSignature};
