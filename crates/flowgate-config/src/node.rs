//! A parsed TOML document as a small owned tree that keeps the span of every key
//! and value, so every later check can point at the exact line and column.

use std::ops::Range;

use serde_json::{Map, Value as Json};
use toml_edit::{ImDocument, Item, Table, Value};

use crate::error::{ConfigError, Source};

/// One value with where it sits in the file.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub span: Range<usize>,
    pub val: Val,
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// One `key = value` of a table.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub node: Node,
}

/// Parses `text` into a tree; syntax errors carry the parser's location.
pub(crate) fn parse_document(src: Source<'_>) -> Result<Node, ConfigError> {
    let doc = ImDocument::parse(src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().replace('\n', "; ");
        src.error(&span, format!("invalid TOML: {message}"))
    })?;
    Ok(Node { span: 0..0, val: Val::Table(table_entries(doc.as_table(), 0..0)) })
}

fn table_entries(table: &Table, fallback: Range<usize>) -> Vec<Entry> {
    table
        .iter()
        .map(|(key, item)| {
            let key_span = table.key(key).and_then(|k| k.span()).unwrap_or_else(|| fallback.clone());
            Entry { key: key.to_string(), node: from_item(item, key_span.clone()), key_span }
        })
        .collect()
}

fn from_item(item: &Item, fallback: Range<usize>) -> Node {
    let span = item.span().unwrap_or_else(|| fallback.clone());
    match item {
        Item::Value(v) => from_value(v, fallback),
        Item::Table(t) => Node { val: Val::Table(table_entries(t, span.clone())), span },
        Item::ArrayOfTables(a) => Node {
            val: Val::Array(
                a.iter()
                    .map(|t| {
                        let span = t.span().unwrap_or_else(|| span.clone());
                        Node { val: Val::Table(table_entries(t, span.clone())), span }
                    })
                    .collect(),
            ),
            span,
        },
        Item::None => Node { val: Val::Table(Vec::new()), span },
    }
}

fn from_value(value: &Value, fallback: Range<usize>) -> Node {
    let span = value.span().unwrap_or(fallback);
    let val = match value {
        Value::String(s) => Val::Str(s.value().clone()),
        Value::Integer(i) => Val::Int(*i.value()),
        Value::Float(f) => Val::Float(*f.value()),
        Value::Boolean(b) => Val::Bool(*b.value()),
        Value::Datetime(d) => Val::Datetime(d.value().to_string()),
        Value::Array(a) => Val::Array(a.iter().map(|v| from_value(v, span.clone())).collect()),
        Value::InlineTable(t) => Val::Table(
            t.iter()
                .map(|(key, v)| {
                    let key_span = t.key(key).and_then(|k| k.span()).unwrap_or_else(|| span.clone());
                    Entry { key: key.to_string(), node: from_value(v, key_span.clone()), key_span }
                })
                .collect(),
        ),
    };
    Node { span, val }
}

impl Node {
    /// What kind of value this is, for "expected a string, found an integer".
    pub fn type_name(&self) -> &'static str {
        match self.val {
            Val::Str(_) => "a string",
            Val::Int(_) => "an integer",
            Val::Float(_) => "a float",
            Val::Bool(_) => "a boolean",
            Val::Datetime(_) => "a datetime",
            Val::Array(_) => "an array",
            Val::Table(_) => "a table",
        }
    }

    /// The value as it would be written in the file, shortened, for messages.
    pub fn display(&self) -> String {
        let text = match &self.val {
            Val::Str(s) => format!("{s:?}"),
            _ => self.to_json().map(|j| j.to_string()).unwrap_or_default(),
        };
        if text.chars().count() > 60 {
            format!("{}…", text.chars().take(59).collect::<String>())
        } else {
            text
        }
    }

    /// The value as JSON (datetimes become strings); `None` for NaN or infinity.
    pub fn to_json(&self) -> Option<Json> {
        Some(match &self.val {
            Val::Str(s) | Val::Datetime(s) => Json::String(s.clone()),
            Val::Int(i) => Json::from(*i),
            Val::Float(f) => Json::Number(serde_json::Number::from_f64(*f)?),
            Val::Bool(b) => Json::Bool(*b),
            Val::Array(items) => Json::Array(items.iter().map(Node::to_json).collect::<Option<_>>()?),
            Val::Table(entries) => Json::Object(
                entries.iter().map(|e| Some((e.key.clone(), e.node.to_json()?))).collect::<Option<Map<_, _>>>()?,
            ),
        })
    }
}
