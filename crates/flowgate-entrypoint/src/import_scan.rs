//! The closure's fast reading of one Python file: the same [`Scan`] as the
//! parser-based reading in `closure_scan.rs` (import statements anywhere,
//! `__all__`, calls that load code, with their lines) from the tokens of
//! `import_lex.rs`, statement by statement, without building a syntax tree.
//! A repository of 2,000 modules is read in tens of milliseconds instead of
//! more than a second.
//!
//! It is exact where it answers and says [`Unsure`] where it might not be: a
//! `match` statement, a parenthesised callee, an escape it does not decode, a
//! loader call inside an f-string, a name bound to a loader only after its
//! call, or anything that looks like a syntax error. Syntax is checked only
//! as far as cheap rules go (brackets, strings, indentation, block colons,
//! import statements, operators and operands that cannot stand side by
//! side), so a file the parser would refuse for a subtler reason (`f() = 1`)
//! can be read here rather than counted as unreadable.

use std::collections::{HashMap, HashSet};

use crate::closure::DynamicUse;
use crate::closure_scan::{call_text, loader, Anchor, Import, Loader, Scan, LOADER_NAMES};
use crate::import_lex::{str_value, unsure, Kw, Lexer, Token, Unsure, T};

/// Reads `source` (the text of `path`), or `None` when only the parser can.
pub(crate) fn scan(path: &str, source: &str) -> Option<Scan> {
    let mut reader = Reader::new(path, source, 0, HashMap::new(), false);
    reader.run().ok()?;
    reader.finish().ok()?;
    Some(reader.scan)
}

/// An argument of a loader call, as far as the call's reading needs it.
#[derive(Debug)]
enum Arg {
    /// A text literal (implicitly concatenated parts joined).
    Str(String),
    /// A bare name (`__name__`).
    Name(String),
    /// A list or tuple display: its text literal elements.
    Seq(Vec<String>),
    Other,
}

/// A call whose callee may be a loader, read once the file's bindings are known.
#[derive(Debug)]
struct Call {
    /// `a.b.c` as written.
    dotted: String,
    bare: bool,
    line: u32,
    start: u32,
    end: u32,
    args: Vec<Arg>,
    keywords: Vec<(String, Arg)>,
}

impl Call {
    /// The argument at a position, or given by keyword.
    fn argument(&self, position: usize, keyword: &str) -> Option<&Arg> {
        self.args.get(position).or_else(|| self.keywords.iter().find(|(k, _)| k == keyword).map(|(_, v)| v))
    }

    fn literal(&self, position: usize, keyword: &str) -> Option<&str> {
        match self.argument(position, keyword) {
            Some(Arg::Str(text)) => Some(text),
            _ => None,
        }
    }
}

struct Reader<'s> {
    path: &'s str,
    src: &'s str,
    /// Non-zero for code given to `exec` as a literal: every line is that call's.
    line_base: usize,
    bindings: HashMap<String, String>,
    calls: Vec<Call>,
    /// Bare callees that were not loaders when called: a later import that
    /// makes one a loader would change the answer (see [`Reader::finish`]).
    plain_callees: HashSet<&'s str>,
    /// Indentation levels, each with whether it lies in a function or class.
    levels: Vec<(u32, bool)>,
    /// The last line opened a block (of a function or class when true).
    pending_block: Option<bool>,
    brackets: Vec<T>,
    scan: Scan,
}

fn is_operand_end(kind: T) -> bool {
    matches!(
        kind,
        T::Name
            | T::Kw(Kw::None | Kw::True | Kw::False)
            | T::Number
            | T::Str
            | T::Bytes
            | T::FStr
            | T::RPar
            | T::RSq
            | T::RBr
            | T::Ellipsis
    )
}

fn is_string(kind: T) -> bool {
    matches!(kind, T::Str | T::Bytes | T::FStr)
}

/// Operators after which an operand must come.
fn wants_operand(kind: T) -> bool {
    matches!(kind, T::Assign | T::AugAssign | T::Bin | T::Cmp | T::Arrow | T::Walrus)
}

/// Tokens that cannot start an operand.
fn is_infix(kind: T) -> bool {
    matches!(kind, T::Assign | T::AugAssign | T::Bin | T::Cmp | T::Arrow | T::Walrus | T::At)
}

/// Keywords that must be followed by an operand or a name.
fn keyword_wants_operand(kw: Kw) -> bool {
    matches!(
        kw,
        Kw::If
            | Kw::Elif
            | Kw::While
            | Kw::For
            | Kw::In
            | Kw::Is
            | Kw::Not
            | Kw::And
            | Kw::Or
            | Kw::Assert
            | Kw::Del
            | Kw::With
            | Kw::As
            | Kw::Global
            | Kw::Nonlocal
            | Kw::Await
            | Kw::Async
            | Kw::Class
            | Kw::Def
            | Kw::Import
            | Kw::From
    )
}

fn is_compound(t: &[Token], i: usize) -> bool {
    matches!(
        t[i].kind,
        T::Kw(
            Kw::If
                | Kw::Elif
                | Kw::Else
                | Kw::While
                | Kw::For
                | Kw::Try
                | Kw::Except
                | Kw::Finally
                | Kw::With
                | Kw::Def
                | Kw::Class
                | Kw::Async
        )
    )
}

/// The index after the bracket group starting at `i`, or `i + 1`.
fn skip(t: &[Token], i: usize) -> usize {
    match t[i].kind {
        T::LPar | T::LSq | T::LBr => t[i].pair as usize + 1,
        _ => i + 1,
    }
}

/// The depth-0 tokens of `t[from..to]` that satisfy `hit`.
fn find(t: &[Token], from: usize, to: usize, hit: impl Fn(T) -> bool) -> Option<usize> {
    let mut i = from;
    while i < to {
        if hit(t[i].kind) {
            return Some(i);
        }
        i = skip(t, i);
    }
    None
}

/// `t[from..to]` cut at depth-0 commas; empty pieces (a trailing comma) dropped.
fn split_commas(t: &[Token], from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = from;
    let mut i = from;
    while i < to {
        if t[i].kind == T::Comma {
            pieces.push((start, i));
            start = i + 1;
        }
        i = skip(t, i);
    }
    pieces.push((start, to));
    pieces.retain(|(a, b)| a < b);
    pieces
}

/// `t[from..to]` without redundant parentheses around it: `("a")` is `"a"`,
/// but `("a",)`, `()` and `(x for x in y)` are a tuple and a generator.
fn unwrap(t: &[Token], mut from: usize, mut to: usize) -> (usize, usize) {
    while to - from >= 3
        && t[from].kind == T::LPar
        && t[from].pair as usize == to - 1
        && find(t, from + 1, to - 1, |k| matches!(k, T::Comma | T::Kw(Kw::For) | T::Kw(Kw::Yield))).is_none()
    {
        from += 1;
        to -= 1;
    }
    (from, to)
}

impl<'s> Reader<'s> {
    fn new(path: &'s str, src: &'s str, line_base: usize, bindings: HashMap<String, String>, inner: bool) -> Self {
        Reader {
            path,
            src,
            line_base,
            bindings,
            calls: Vec::new(),
            plain_callees: HashSet::new(),
            levels: vec![(0, inner)],
            pending_block: None,
            brackets: Vec::new(),
            scan: Scan::default(),
        }
    }

    fn text(&self, token: &Token) -> &'s str {
        &self.src[token.start as usize..token.end as usize]
    }

    fn run(&mut self) -> Result<(), Unsure> {
        if self.src.contains('\0') {
            return Err(unsure());
        }
        let mut lexer = Lexer::new(self.src);
        let mut tokens = Vec::new();
        while let Some(indent) = lexer.next_line(&mut tokens)? {
            for (start, end) in std::mem::take(&mut lexer.fields) {
                self.field(start, end)?;
            }
            self.line(&tokens, indent)?;
        }
        if self.pending_block.is_some() {
            return Err(unsure());
        }
        Ok(())
    }

    /// One logical line at `indent` columns.
    fn line(&mut self, t: &[Token], indent: u32) -> Result<(), Unsure> {
        let &(current, in_function) = self.levels.last().ok_or_else(unsure)?;
        if let Some(function) = self.pending_block.take() {
            if indent <= current {
                return Err(unsure());
            }
            self.levels.push((indent, in_function || function));
        } else if indent > current {
            return Err(unsure());
        } else {
            while self.levels.last().is_some_and(|&(level, _)| level > indent) {
                self.levels.pop();
            }
            if self.levels.last().map(|&(level, _)| level) != Some(indent) {
                return Err(unsure());
            }
        }
        let in_function = self.levels.last().ok_or_else(unsure)?.1;
        let lambda = t.iter().any(|token| token.kind == T::Kw(Kw::Lambda));
        self.statements(t, in_function, lambda)
    }

    /// The statements of one logical line: simple ones separated by `;`, or a
    /// block's header followed by its block or by simple statements.
    fn statements(&mut self, t: &[Token], mut in_function: bool, lambda: bool) -> Result<(), Unsure> {
        let mut i = 0;
        let mut inline = false;
        loop {
            let first = t[i].kind;
            if is_compound(t, i) {
                if inline {
                    return Err(unsure());
                }
                let function = match first {
                    T::Kw(Kw::Def | Kw::Class) => true,
                    T::Kw(Kw::Async) => match t.get(i + 1).map(|token| token.kind) {
                        Some(T::Kw(Kw::Def)) => true,
                        Some(T::Kw(Kw::For | Kw::With)) => false,
                        _ => return Err(unsure()),
                    },
                    _ => false,
                };
                let colon = header_colon(t, i)?;
                self.check(&t[i..=colon], lambda)?;
                self.calls(t, i, colon)?;
                if colon + 1 == t.len() {
                    self.pending_block = Some(function);
                    return Ok(());
                }
                in_function |= function;
                inline = true;
                i = colon + 1;
                continue;
            }
            let end = find(t, i, t.len(), |k| k == T::Semi).unwrap_or(t.len());
            match first {
                T::Kw(Kw::Import) => self.import(&t[..end], i)?,
                T::Kw(Kw::From) => self.import_from(&t[..end], i)?,
                T::At if i == 0 && end == t.len() && end > 1 => {
                    self.check(&t[1..end], lambda)?;
                    self.calls(t, 1, end)?;
                }
                _ => {
                    if first == T::Name {
                        let soft = self.text(&t[i]);
                        let next = t.get(i + 1).map(|token| token.kind);
                        let starts_operand = next.is_some_and(|k| {
                            is_operand_end(k)
                                || matches!(
                                    k,
                                    T::LPar
                                        | T::LSq
                                        | T::LBr
                                        | T::Minus
                                        | T::Plus
                                        | T::Tilde
                                        | T::Star
                                        | T::Kw(Kw::Not | Kw::Lambda | Kw::Await)
                                )
                        });
                        // `match` and `case` statements, `type` aliases: the parser reads them.
                        if (matches!(soft, "match" | "case") && starts_operand)
                            || (soft == "type" && next == Some(T::Name))
                        {
                            return Err(unsure());
                        }
                    }
                    self.check(&t[i..end], lambda)?;
                    self.calls(t, i, end)?;
                    if !in_function {
                        self.all(t, i, end)?;
                    }
                }
            }
            if end == t.len() {
                return Ok(());
            }
            i = end + 1;
            if i == t.len() {
                return Ok(());
            }
            inline = true;
        }
    }

    /// Operators and operands that cannot stand side by side, brackets opened
    /// or closed where nothing can be, a statement that ends mid-expression.
    fn check(&mut self, t: &[Token], lambda: bool) -> Result<(), Unsure> {
        let first = t[0].kind;
        if is_infix(first) || matches!(first, T::RPar | T::RSq | T::RBr | T::Comma | T::Colon | T::Semi | T::Dot) {
            return Err(unsure());
        }
        self.brackets.clear();
        for pair in t.windows(2) {
            let (a, b) = (pair[0].kind, pair[1].kind);
            match a {
                T::LPar | T::LSq | T::LBr => self.brackets.push(a),
                T::RPar | T::RSq | T::RBr => {
                    self.brackets.pop();
                }
                _ => {}
            }
            let bad = match a {
                _ if is_operand_end(a) => {
                    matches!(b, T::Name | T::Number | T::LBr | T::Kw(Kw::None | Kw::True | Kw::False))
                        || (is_string(b) && !(is_string(a) && (a == T::Bytes) == (b == T::Bytes)))
                }
                T::LPar | T::LBr => is_infix(b) || matches!(b, T::Colon | T::Comma | T::Semi | T::Dot | T::Slash),
                T::LSq => is_infix(b) || matches!(b, T::Comma | T::Semi | T::Dot | T::Slash),
                T::Comma => {
                    matches!(b, T::Comma | T::AugAssign | T::Bin | T::Cmp | T::Arrow | T::Walrus | T::Dot | T::At)
                        || (b == T::Assign && !self.brackets.is_empty())
                        || (b == T::Colon && !lambda && matches!(self.brackets.last(), Some(T::LPar | T::LBr)))
                }
                _ if wants_operand(a) || matches!(a, T::Plus | T::Minus | T::Tilde) => {
                    is_infix(b)
                        || matches!(b, T::Comma | T::Colon | T::Semi | T::RPar | T::RSq | T::RBr | T::Dot | T::Slash)
                }
                T::Dot => b != T::Name,
                T::Kw(Kw::Def | Kw::Class) => b != T::Name,
                T::Kw(kw) if keyword_wants_operand(kw) => {
                    is_infix(b)
                        || matches!(b, T::Comma | T::Colon | T::Semi | T::RPar | T::RSq | T::RBr | T::Dot | T::Slash)
                }
                _ => false,
            };
            if bad {
                return Err(unsure());
            }
        }
        let last = t[t.len() - 1].kind;
        let dangling = match last {
            T::Kw(kw) => keyword_wants_operand(kw),
            _ => {
                wants_operand(last)
                    || matches!(last, T::Dot | T::Plus | T::Minus | T::Tilde | T::Star | T::DStar | T::Slash | T::At)
            }
        };
        if dangling {
            return Err(unsure());
        }
        Ok(())
    }

    /// Whether a bare call of `name` can be a loader with the bindings so far.
    fn loader_name(&self, name: &str) -> bool {
        LOADER_NAMES.contains(&name)
            || self.bindings.get(name).is_some_and(|bound| LOADER_NAMES.contains(&last_part(bound)))
    }

    /// The calls in `t[from..to]` whose callee may be a loader.
    fn calls(&mut self, t: &[Token], from: usize, to: usize) -> Result<(), Unsure> {
        for k in from + 1..to {
            if t[k].kind != T::LPar {
                continue;
            }
            let before = t[k - 1];
            if before.kind == T::RPar {
                // `(exec)(code)`: a parenthesised callee, which the parser sees through.
                if grouped_name(t, from, k - 1) {
                    return Err(unsure());
                }
                continue;
            }
            if before.kind != T::Name {
                continue;
            }
            let mut j = k - 1;
            while j >= from + 2 && t[j - 1].kind == T::Dot && t[j - 2].kind == T::Name {
                j -= 2;
            }
            let tail = self.text(&before);
            if j > from {
                match t[j - 1].kind {
                    T::Dot => {
                        // `f().exec(x)` is no loader; `(importlib).import_module(x)` may be.
                        if j >= from + 2 && grouped_name(t, from, j - 2) && LOADER_NAMES.contains(&tail) {
                            return Err(unsure());
                        }
                        continue;
                    }
                    T::Kw(Kw::Def | Kw::Class) => continue,
                    _ => {}
                }
            }
            let bare = j == k - 1;
            if bare && !self.loader_name(tail) {
                self.plain_callees.insert(tail);
                continue;
            }
            if !bare && !LOADER_NAMES.contains(&tail) {
                continue;
            }
            let close = t[k].pair as usize;
            let mut args = Vec::new();
            let mut keywords = Vec::new();
            for (a, b) in split_commas(t, k + 1, close) {
                if t[a].kind == T::Name && t.get(a + 1).is_some_and(|token| token.kind == T::Assign) {
                    keywords.push((self.text(&t[a]).to_string(), self.arg(t, a + 2, b)?));
                } else if t[a].kind != T::DStar {
                    args.push(self.arg(t, a, b)?);
                }
            }
            let dotted = (j..k).map(|i| self.text(&t[i])).collect();
            self.calls.push(Call {
                dotted,
                bare,
                line: t[j].line,
                start: t[j].start,
                end: t[close].end,
                args,
                keywords,
            });
        }
        Ok(())
    }

    /// The text literal `t[from..to]` stands for, if it is one.
    fn literal(&self, t: &[Token], from: usize, to: usize) -> Result<Option<String>, Unsure> {
        let (from, to) = unwrap(t, from, to);
        if from == to || !t[from..to].iter().all(|token| token.kind == T::Str) {
            return Ok(None);
        }
        let mut value = String::new();
        for token in &t[from..to] {
            value.push_str(&str_value(self.text(token))?);
        }
        Ok(Some(value))
    }

    /// The text literals among the elements of a list or tuple display.
    fn elements(&self, t: &[Token], open: usize, close: usize) -> Result<Option<Vec<String>>, Unsure> {
        if find(t, open + 1, close, |k| k == T::Kw(Kw::For)).is_some() {
            return Ok(None);
        }
        let mut values = Vec::new();
        for (a, b) in split_commas(t, open + 1, close) {
            values.extend(self.literal(t, a, b)?);
        }
        Ok(Some(values))
    }

    fn arg(&self, t: &[Token], from: usize, to: usize) -> Result<Arg, Unsure> {
        if from >= to {
            return Ok(Arg::Other);
        }
        if let Some(text) = self.literal(t, from, to)? {
            return Ok(Arg::Str(text));
        }
        let (from, to) = unwrap(t, from, to);
        if to == from + 1 && t[from].kind == T::Name {
            return Ok(Arg::Name(self.text(&t[from]).to_string()));
        }
        if to > from && matches!(t[from].kind, T::LSq | T::LPar) && t[from].pair as usize == to - 1 {
            return Ok(self.elements(t, from, to - 1)?.map_or(Arg::Other, Arg::Seq));
        }
        Ok(Arg::Other)
    }

    /// An f-string's replacement field: a call in it that may be a loader is
    /// left to the parser; other bare callees are remembered.
    fn field(&mut self, start: u32, end: u32) -> Result<(), Unsure> {
        let mut lexer = Lexer::field(self.src, start, end);
        let mut t = Vec::new();
        if lexer.next_line(&mut t)?.is_none() {
            // `f"{}"`: an empty expression.
            return Err(unsure());
        }
        for (start, end) in std::mem::take(&mut lexer.fields) {
            self.field(start, end)?;
        }
        for k in 0..t.len() {
            if t[k].kind != T::Name {
                continue;
            }
            let name = self.text(&t[k]);
            if LOADER_NAMES.contains(&name) {
                return Err(unsure());
            }
            let bare = k == 0 || t[k - 1].kind != T::Dot;
            if bare && t.get(k + 1).is_some_and(|token| token.kind == T::LPar) {
                if self.loader_name(name) {
                    return Err(unsure());
                }
                self.plain_callees.insert(name);
            }
        }
        Ok(())
    }

    /// `import a.b as c, d`.
    fn import(&mut self, t: &[Token], i: usize) -> Result<(), Unsure> {
        let mut k = i + 1;
        loop {
            let (name, next) = self.dotted_name(t, k)?;
            k = next;
            if t.get(k).is_some_and(|token| token.kind == T::Kw(Kw::As)) {
                let local = t.get(k + 1).filter(|token| token.kind == T::Name).ok_or_else(unsure)?;
                self.bindings.insert(self.text(local).to_string(), name.clone());
                k += 2;
            } else {
                let head = name.split('.').next().unwrap_or(&name).to_string();
                self.bindings.insert(head.clone(), head);
            }
            self.scan.imports.push(Import::Module { level: 0, name, anchor: Anchor::Package });
            match t.get(k) {
                Some(token) if token.kind == T::Comma => k += 1,
                None => return Ok(()),
                Some(_) => return Err(unsure()),
            }
        }
    }

    /// `from <dots><module> import names`, names in parentheses or not, or `*`.
    fn import_from(&mut self, t: &[Token], i: usize) -> Result<(), Unsure> {
        let mut k = i + 1;
        let mut level = 0;
        while let Some(token) = t.get(k) {
            match token.kind {
                T::Dot => level += 1,
                T::Ellipsis => level += 3,
                _ => break,
            }
            k += 1;
        }
        let module = if t.get(k).is_some_and(|token| token.kind == T::Name) {
            let (module, next) = self.dotted_name(t, k)?;
            k = next;
            module
        } else {
            String::new()
        };
        if (level == 0 && module.is_empty()) || t.get(k).map(|token| token.kind) != Some(T::Kw(Kw::Import)) {
            return Err(unsure());
        }
        k += 1;
        let (from, to) = match t.get(k).map(|token| token.kind) {
            Some(T::Star) if k + 1 == t.len() => {
                self.scan.imports.push(Import::From { level, module, names: vec!["*".into()] });
                return Ok(());
            }
            Some(T::LPar) if t[k].pair as usize == t.len() - 1 => (k + 1, t.len() - 1),
            Some(_) => (k, t.len()),
            None => return Err(unsure()),
        };
        let mut names = Vec::new();
        let mut k = from;
        while k < to {
            let name = t.get(k).filter(|token| token.kind == T::Name).ok_or_else(unsure)?;
            let name = self.text(name);
            k += 1;
            let mut local = name;
            if k < to && t[k].kind == T::Kw(Kw::As) {
                local = t
                    .get(k + 1)
                    .filter(|token| k + 1 < to && token.kind == T::Name)
                    .map(|token| self.text(token))
                    .ok_or_else(unsure)?;
                k += 2;
            }
            if level == 0 {
                self.bindings.insert(local.to_string(), format!("{module}.{name}"));
            }
            names.push(name.to_string());
            if k < to {
                if t[k].kind != T::Comma {
                    return Err(unsure());
                }
                k += 1;
                // A trailing comma only inside parentheses.
                if k == to && to == t.len() {
                    return Err(unsure());
                }
            }
        }
        if names.is_empty() {
            return Err(unsure());
        }
        self.scan.imports.push(Import::From { level, module, names });
        Ok(())
    }

    /// `a.b.c` from `t[k]`, and the index after it.
    fn dotted_name(&self, t: &[Token], mut k: usize) -> Result<(String, usize), Unsure> {
        let mut name = String::new();
        loop {
            let part = t.get(k).filter(|token| token.kind == T::Name).ok_or_else(unsure)?;
            name.push_str(self.text(part));
            k += 1;
            if t.get(k).is_some_and(|token| token.kind == T::Dot) {
                name.push('.');
                k += 1;
            } else {
                return Ok((name, k));
            }
        }
    }

    /// An assignment to `__all__` at module level (`t[from..to]`): its literal names.
    fn all(&mut self, t: &[Token], from: usize, to: usize) -> Result<(), Unsure> {
        if !t[from..to].iter().any(|token| token.kind == T::Name && self.text(token) == "__all__") {
            return Ok(());
        }
        let is_all = |a: usize, b: usize| {
            let (a, b) = unwrap(t, a, b);
            b == a + 1 && t[a].kind == T::Name && self.text(&t[a]) == "__all__"
        };
        let value = match t.get(from + 1).filter(|_| from + 1 < to).map(|token| token.kind) {
            Some(T::AugAssign) if is_all(from, from + 1) => from + 2,
            Some(T::Colon) if is_all(from, from + 1) => match find(t, from + 2, to, |k| k == T::Assign) {
                Some(assign) => assign + 1,
                None => return Ok(()),
            },
            _ => {
                if t[from].kind == T::LPar || find(t, from, to, |k| k == T::Kw(Kw::Lambda)).is_some() {
                    return Err(unsure());
                }
                let mut start = from;
                let mut targets = false;
                let mut last = None;
                let mut i = from;
                while i < to {
                    if t[i].kind == T::Assign {
                        targets |= is_all(start, i);
                        start = i + 1;
                        last = Some(start);
                    }
                    i = skip(t, i);
                }
                match last {
                    Some(value) if targets => value,
                    _ => return Ok(()),
                }
            }
        };
        let names = self.all_value(t, value, to)?;
        self.scan.all.extend(names);
        Ok(())
    }

    /// The literal names of an `__all__` value: a list, a tuple, or any binary
    /// operation of them (as the parser-based reading takes them).
    fn all_value(&self, t: &[Token], from: usize, to: usize) -> Result<Vec<String>, Unsure> {
        if from == to {
            return Ok(Vec::new());
        }
        if find(t, from, to, |k| k == T::Comma).is_some() {
            let mut values = Vec::new();
            for (a, b) in split_commas(t, from, to) {
                values.extend(self.literal(t, a, b)?);
            }
            return Ok(values);
        }
        if find(t, from, to, |k| k == T::Kw(Kw::Await)).is_some() {
            return Err(unsure());
        }
        // A conditional, a boolean or a comparison at the top: none of the three.
        if find(t, from, to, |k| {
            matches!(k, T::Cmp | T::Walrus) || matches!(k, T::Kw(kw) if !matches!(kw, Kw::None | Kw::True | Kw::False))
        })
        .is_some()
        {
            return Ok(Vec::new());
        }
        let binary = |k: T| matches!(k, T::Plus | T::Minus | T::Star | T::DStar | T::Slash | T::At | T::Bin | T::Tilde);
        let mut values = Vec::new();
        let mut start = from;
        let mut i = from;
        loop {
            if i == to || binary(t[i].kind) {
                // An empty operand: a unary operator, which binds otherwise.
                if i == start || (i < to && t[i].kind == T::Tilde) {
                    return Err(unsure());
                }
                let (a, b) = (start, i);
                if matches!(t[a].kind, T::LSq | T::LPar) && t[a].pair as usize == b - 1 {
                    let (ia, ib) = unwrap(t, a, b);
                    if (ia, ib) != (a, b) {
                        values.extend(self.all_value(t, ia, ib)?);
                    } else if let Some(found) = self.elements(t, a, b - 1)? {
                        values.extend(found);
                    }
                }
                if i == to {
                    return Ok(values);
                }
                start = i + 1;
            }
            i = skip(t, i);
        }
    }

    /// Turns the collected calls into imports or dynamic uses, as the
    /// parser-based reading does, now that every binding is known.
    fn finish(&mut self) -> Result<(), Unsure> {
        for name in &self.plain_callees {
            if self.bindings.get(*name).is_some_and(|bound| LOADER_NAMES.contains(&last_part(bound))) {
                return Err(unsure());
            }
        }
        for call in std::mem::take(&mut self.calls) {
            if call.bare {
                let bound = self.bindings.get(&call.dotted).map_or(call.dotted.as_str(), |b| last_part(b));
                if !LOADER_NAMES.contains(&bound) {
                    continue;
                }
            }
            let qualified = match call.dotted.split_once('.') {
                Some((head, rest)) => match self.bindings.get(head) {
                    Some(bound) => format!("{bound}.{rest}"),
                    None => call.dotted.clone(),
                },
                None => self.bindings.get(&call.dotted).cloned().unwrap_or_else(|| call.dotted.clone()),
            };
            let Some(kind) = loader(&qualified) else { continue };
            let line = if self.line_base > 0 { self.line_base } else { call.line as usize };
            let name = call.literal(0, "name");
            let imports = match (kind, name) {
                (Loader::ImportModule, Some(name)) => {
                    let level = name.len() - name.trim_start_matches('.').len();
                    let anchor = match call.argument(1, "package") {
                        _ if level == 0 => Some(Anchor::Package),
                        None => Some(Anchor::Package),
                        Some(Arg::Name(n)) if n == "__package__" => Some(Anchor::Package),
                        Some(Arg::Name(n)) if n == "__name__" => Some(Anchor::OwnName),
                        Some(Arg::Str(package)) => Some(Anchor::Named(package.clone())),
                        Some(_) => None,
                    };
                    anchor
                        .filter(|_| !name.is_empty())
                        .map(|anchor| vec![Import::Module { level, name: name[level..].to_string(), anchor }])
                }
                (Loader::DunderImport, Some(name)) if !name.is_empty() && !name.starts_with('.') => {
                    let names = match call.argument(3, "fromlist") {
                        Some(Arg::Seq(names)) => names.clone(),
                        _ => Vec::new(),
                    };
                    Some(vec![Import::From { level: 0, module: name.to_string(), names }])
                }
                (Loader::RunModule, Some(name)) if !name.is_empty() && !name.starts_with('.') => {
                    Some(vec![Import::From { level: 0, module: name.to_string(), names: vec!["__main__".into()] }])
                }
                (Loader::Exec, Some(code)) => {
                    let mut inner = Reader::new(self.path, code, line, self.bindings.clone(), true);
                    inner.run()?;
                    inner.finish()?;
                    self.scan.dynamic.append(&mut inner.scan.dynamic);
                    Some(inner.scan.imports)
                }
                _ => None,
            };
            match imports {
                Some(imports) => self.scan.imports.extend(imports),
                None => self.scan.dynamic.push(DynamicUse {
                    file: self.path.to_string(),
                    line,
                    what: call_text(&self.src[call.start as usize..call.end as usize]),
                }),
            }
        }
        Ok(())
    }
}

/// Whether `t[close]` closes parentheses that only group a dotted name
/// (`(importlib)`, not the call `f()`).
fn grouped_name(t: &[Token], from: usize, close: usize) -> bool {
    if t[close].kind != T::RPar {
        return false;
    }
    let open = t[close].pair as usize;
    (open == from || (open > from && !is_operand_end(t[open - 1].kind)))
        && t[open + 1..close].iter().all(|token| matches!(token.kind, T::Name | T::Dot))
}

fn last_part(dotted: &str) -> &str {
    dotted.rsplit('.').next().unwrap_or(dotted)
}

/// The colon ending the block header that starts at `t[i]` (a `lambda`'s
/// colon is the lambda's).
fn header_colon(t: &[Token], i: usize) -> Result<usize, Unsure> {
    let mut lambdas = 0;
    let mut k = i + 1;
    while k < t.len() {
        match t[k].kind {
            T::Kw(Kw::Lambda) => lambdas += 1,
            T::Colon if lambdas > 0 => lambdas -= 1,
            T::Colon => return Ok(k),
            T::Semi => return Err(unsure()),
            _ => {}
        }
        k = skip(t, k);
    }
    Err(unsure())
}

#[cfg(test)]
#[path = "import_scan_tests.rs"]
mod tests;
