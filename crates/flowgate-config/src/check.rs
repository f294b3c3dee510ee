//! Typed reads of tree nodes that fail with a located sentence naming the key,
//! the table and the offending value.

use std::ops::Range;

use crate::error::{ConfigError, Source};
use crate::node::{Entry, Node, Val};
use crate::schema::JsonMap;

/// Reads values out of one file's tree; every error points into that file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub src: Source<'a>,
}

impl Ctx<'_> {
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> ConfigError {
        self.src.error(span, message)
    }

    /// "`what` must be a string, found an integer `3`".
    pub fn wrong_type(&self, node: &Node, what: &str, expected: &str) -> ConfigError {
        self.error(&node.span, format!("{what} must be {expected}, found {} `{}`", node.type_name(), node.display()))
    }

    pub fn unknown_key(&self, entry: &Entry, table: &str, expected: &[&str]) -> ConfigError {
        self.error(
            &entry.key_span,
            format!("unknown key `{}` in `{table}`; expected one of: {}", entry.key, expected.join(", ")),
        )
    }

    pub fn table<'n>(&self, node: &'n Node, what: &str) -> Result<&'n [Entry], ConfigError> {
        match &node.val {
            Val::Table(entries) => Ok(entries),
            _ => Err(self.wrong_type(node, what, "a table")),
        }
    }

    pub fn array<'n>(&self, node: &'n Node, what: &str) -> Result<&'n [Node], ConfigError> {
        match &node.val {
            Val::Array(items) => Ok(items),
            _ => Err(self.wrong_type(node, what, "an array")),
        }
    }

    pub fn string(&self, node: &Node, what: &str) -> Result<String, ConfigError> {
        match &node.val {
            Val::Str(s) => Ok(s.clone()),
            _ => Err(self.wrong_type(node, what, "a string")),
        }
    }

    pub fn non_empty(&self, node: &Node, what: &str) -> Result<String, ConfigError> {
        let s = self.string(node, what)?;
        if s.trim().is_empty() {
            return Err(self.error(&node.span, format!("{what} must not be empty")));
        }
        Ok(s)
    }

    pub fn bool(&self, node: &Node, what: &str) -> Result<bool, ConfigError> {
        match node.val {
            Val::Bool(b) => Ok(b),
            _ => Err(self.wrong_type(node, what, "a boolean")),
        }
    }

    pub fn count(&self, node: &Node, what: &str) -> Result<u32, ConfigError> {
        match node.val {
            Val::Int(i) => u32::try_from(i)
                .map_err(|_| self.error(&node.span, format!("{what} must be a whole number from 0 up, found `{i}`"))),
            _ => Err(self.wrong_type(node, what, "a whole number")),
        }
    }

    /// An array of strings, each with its span.
    pub fn strings<'n>(&self, node: &'n Node, what: &str) -> Result<Vec<(String, &'n Range<usize>)>, ConfigError> {
        self.array(node, what)?
            .iter()
            .map(|item| match &item.val {
                Val::Str(s) => Ok((s.clone(), &item.span)),
                _ => Err(self.wrong_type(item, &format!("each item of {what}"), "a string")),
            })
            .collect()
    }

    /// A table kept as JSON; Prefect templates (`{{ … }}`) inside stay untouched.
    pub fn object(&self, node: &Node, what: &str) -> Result<JsonMap, ConfigError> {
        self.table(node, what)?;
        match node.to_json() {
            Some(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(self.error(&node.span, format!("{what} holds a float that is not a number (nan or inf)"))),
        }
    }
}

/// `what` for a key of a table: "`work_pool` in `[flows.etl]`".
pub(crate) fn key_in(key: &str, table: &str) -> String {
    format!("`{key}` in `{table}`")
}
