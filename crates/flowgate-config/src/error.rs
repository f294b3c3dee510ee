//! The one error type of this crate, with the file:line:column of the offending
//! value, so the binary can print it as is and map it to exit code 2.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use crate::template::TemplateError;

/// Where in a config file something is; line and column are 1-based, columns
/// count characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` of `text`, labelled `file`.
    pub fn at(file: &str, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..text.floor_char_boundary_compat(offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { file: file.to_string(), line, column }
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut index: usize) -> usize {
        while !self.is_char_boundary(index) {
            index -= 1;
        }
        index
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What class of failure a [`ConfigError`] is, for choosing an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read (missing, permissions): a usage problem.
    Unreadable,
    /// The file, a flag or an imported document says something invalid.
    Invalid,
}

/// Everything that can go wrong reading, checking or resolving configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A value in the file is wrong; the message names it in backticks.
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
    #[error("unknown environment `{name}`; known environments: {}", known_list(.known))]
    UnknownEnv { name: String, known: Vec<String> },
    #[error("unknown flow `{name}`; flows in the config: {}", known_list(.known))]
    UnknownFlow { name: String, known: Vec<String> },
    #[error("Failed to render `{field}` of {context}")]
    Render {
        field: &'static str,
        context: String,
        #[source]
        source: TemplateError,
    },
    #[error("Failed to import prefect.yaml: {message}")]
    Import { message: String },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "(none)".to_string()
    } else {
        known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    }
}

impl ConfigError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Read { .. } => ErrorKind::Unreadable,
            _ => ErrorKind::Invalid,
        }
    }

    /// The location of an [`ConfigError::Invalid`], for tests and editors.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Invalid { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// Builds located errors for one file's text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { location: Location::at(self.file, self.text, span.start), message: message.into() }
    }
}
