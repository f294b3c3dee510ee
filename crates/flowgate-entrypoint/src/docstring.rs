//! Docstrings as Prefect reads them: `inspect.getdoc` for the flow description and
//! griffe's Google-style parser for the per-parameter descriptions in the schema.

use std::collections::HashMap;

use rustpython_parser::ast::{Constant, Expr, Stmt};

/// The raw docstring of a body: its first statement, when that is a string literal.
pub(crate) fn raw(body: &[Stmt]) -> Option<&str> {
    match body.first()? {
        Stmt::Expr(stmt) => match &*stmt.value {
            Expr::Constant(constant) => match &constant.value {
                Constant::Str(text) => Some(text.as_str()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Python's `inspect.cleandoc`: tabs expanded, first line stripped, the common
/// indentation of the other lines removed, blank lines at both ends dropped.
pub(crate) fn cleandoc(doc: &str) -> String {
    let expanded = expand_tabs(doc);
    let mut lines: Vec<&str> = expanded.split('\n').collect();
    let margin = lines
        .iter()
        .skip(1)
        .filter_map(|line| {
            let content = line.trim_start();
            (!content.is_empty()).then(|| line.len() - content.len())
        })
        .min();
    let mut cleaned: Vec<String> = Vec::with_capacity(lines.len());
    if let Some(first) = lines.first_mut() {
        cleaned.push(first.trim_start().to_string());
    }
    for line in lines.iter().skip(1) {
        cleaned.push(match margin {
            Some(margin) => line.get(margin..).unwrap_or("").to_string(),
            None => line.to_string(),
        });
    }
    while cleaned.last().is_some_and(|line| line.is_empty()) {
        cleaned.pop();
    }
    let start = cleaned.iter().take_while(|line| line.is_empty()).count();
    cleaned[start..].join("\n")
}

/// `str.expandtabs(8)`, column-aware, restarting at each newline.
fn expand_tabs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut column = 0;
    for ch in text.chars() {
        match ch {
            '\t' => {
                let spaces = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            '\n' | '\r' => {
                out.push(ch);
                column = 0;
            }
            _ => {
                out.push(ch);
                column += 1;
            }
        }
    }
    out
}

/// Section titles griffe's Google parser knows; only the first four hold parameters.
const SECTIONS: &[&str] = &[
    "args",
    "arguments",
    "params",
    "parameters",
    "keyword args",
    "keyword arguments",
    "other args",
    "other arguments",
    "other params",
    "other parameters",
    "type args",
    "type arguments",
    "type params",
    "type parameters",
    "raises",
    "exceptions",
    "returns",
    "yields",
    "receives",
    "examples",
    "attributes",
    "functions",
    "methods",
    "classes",
    "type aliases",
    "modules",
    "warns",
    "warnings",
];

fn is_empty(line: &str) -> bool {
    line.chars().all(char::is_whitespace)
}

/// The section title on this line (`Args:` or `Args: title`), lower-cased.
fn section_title(line: &str) -> Option<String> {
    let (kind, rest) = line.split_once(':')?;
    let first = kind.chars().next()?;
    if !(first.is_alphanumeric() || first == '_')
        || !kind.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c.is_whitespace())
    {
        return None;
    }
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(kind.to_lowercase())
}

/// Parameter descriptions from the Google-style sections of a cleaned docstring,
/// as `prefect.utilities.callables.parameter_docstrings` returns them (the last
/// parameters section wins).
pub(crate) fn parameter_docs(doc: &str) -> HashMap<String, String> {
    let lines: Vec<&str> = doc.split('\n').collect();
    let mut docs = HashMap::new();
    let mut in_code = false;
    let mut offset = 0;
    while offset < lines.len() {
        let line = lines[offset];
        let fence = line.trim_start_matches(' ').starts_with("```");
        if in_code || fence {
            in_code ^= fence;
            offset += 1;
            continue;
        }
        let Some(title) = section_title(line) else {
            offset += 1;
            continue;
        };
        let next = |i: usize| lines.get(offset + i).copied();
        let blank_above = offset == 0 || is_empty(lines[offset - 1]);
        let blank_below = next(1).is_some_and(is_empty);
        let blanks_below = next(2).is_some_and(is_empty);
        let indented_below = next(1).is_some_and(|l| !blank_below && l.starts_with(' '));
        let indented_2_below = next(2).is_some_and(|l| !blanks_below && l.starts_with(' '));
        let skipped = !(indented_below || indented_2_below) || !blank_above || (indented_2_below && blank_below);
        if skipped || !SECTIONS.contains(&title.as_str()) {
            offset += 1;
            continue;
        }
        let (items, end) = block_items(&lines, offset + 1);
        if matches!(title.as_str(), "args" | "arguments" | "params" | "parameters") {
            let parsed = parameters(&items);
            if !parsed.is_empty() {
                docs = parsed;
            }
        }
        offset = end + 1;
    }
    docs
}

/// griffe's `_read_block_items`: items at the first line's indentation, their
/// continuation lines indented further. Returns the items and the last line read.
fn block_items(lines: &[&str], start: usize) -> (Vec<Vec<String>>, usize) {
    let mut offset = start;
    while offset < lines.len() && is_empty(lines[offset]) {
        offset += 1;
    }
    let Some(first) = lines.get(offset) else {
        return (Vec::new(), offset);
    };
    let indent = first.len() - first.trim_start_matches(' ').len();
    if indent == 0 {
        return (Vec::new(), offset.saturating_sub(1));
    }
    let mut items = Vec::new();
    let mut current = vec![first[indent..].to_string()];
    offset += 1;
    while offset < lines.len() {
        let line = lines[offset];
        if is_empty(line) {
            current.push(String::new());
        } else if line.starts_with(&" ".repeat(indent * 2)) {
            current.push(line[indent * 2..].to_string());
        } else if line.starts_with(&" ".repeat(indent + 1)) {
            current.push(line.trim_start().to_string());
        } else if line.starts_with(&" ".repeat(indent)) {
            items.push(std::mem::replace(&mut current, vec![line[indent..].to_string()]));
        } else {
            break;
        }
        offset += 1;
    }
    items.push(current);
    (items, offset - 1)
}

/// griffe's `_read_parameters`: `name: text` or `name (type): text`.
fn parameters(items: &[Vec<String>]) -> HashMap<String, String> {
    let mut docs = HashMap::new();
    for item in items {
        let Some((name_with_type, first)) = item[0].split_once(':') else {
            continue;
        };
        let mut description = first.trim_start().to_string();
        for line in &item[1..] {
            description.push('\n');
            description.push_str(line);
        }
        let description = description.trim_end_matches('\n').to_string();
        let name = match name_with_type.split_once('(') {
            Some((name, _)) if name_with_type.ends_with(')') => name.trim(),
            _ => name_with_type,
        };
        docs.insert(name.to_string(), description);
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleandoc_strips_the_common_margin_and_blank_ends() {
        let doc = "\n  Summary.  \n\n    Details\n      more\n  \n";
        assert_eq!(cleandoc(doc), "Summary.  \n\n  Details\n    more");
    }

    #[test]
    fn google_args_section_gives_descriptions_with_continuations() {
        let doc =
            "Do.\n\nArgs:\n    a: the a\n    b (int): the b\n        continued\n\nReturns:\n    c: not a parameter";
        let docs = parameter_docs(doc);
        assert_eq!(docs.get("a").map(String::as_str), Some("the a"));
        assert_eq!(docs.get("b").map(String::as_str), Some("the b\ncontinued"));
        assert!(!docs.contains_key("c"));
    }

    #[test]
    fn a_section_without_a_blank_line_above_is_text() {
        let docs = parameter_docs("Do.\nArgs:\n    a: the a");
        assert!(docs.is_empty());
    }
}
