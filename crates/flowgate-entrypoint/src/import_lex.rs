//! The tokenizer behind [`crate::import_scan`]: Python source cut into the
//! tokens of one logical line at a time (strings, comments, `\` continuations
//! and bracketed line breaks are handled here, so the reader above sees only
//! whole statements), with each bracket paired to its match and each
//! f-string's replacement fields set aside for a look of their own.
//!
//! It knows less than a parser and says so: anything it does not follow
//! exactly (a tab in indentation, a non-ASCII name, an unterminated string, an
//! unmatched bracket, a stray character) is [`Unsure`], and the file is then
//! read by the full parser instead. Being unsure costs time, never a result.

/// The fast reading cannot vouch for this file: read it with the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsure;

#[cfg(test)]
thread_local! {
    /// Where the last [`Unsure`] was made, for tests that ask why.
    pub(crate) static WHY: std::cell::Cell<Option<&'static std::panic::Location<'static>>> =
        const { std::cell::Cell::new(None) };
}

/// An [`Unsure`] (in tests, remembering the line of this crate that made it).
#[track_caller]
pub(crate) fn unsure() -> Unsure {
    #[cfg(test)]
    {
        let at = std::panic::Location::caller();
        WHY.with(|why| why.set(Some(at)));
    }
    Unsure
}

/// Python's hard keywords. `None`, `True` and `False` are operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    False,
    None,
    True,
    And,
    As,
    Assert,
    Async,
    Await,
    Break,
    Class,
    Continue,
    Def,
    Del,
    Elif,
    Else,
    Except,
    Finally,
    For,
    From,
    Global,
    If,
    Import,
    In,
    Is,
    Lambda,
    Nonlocal,
    Not,
    Or,
    Pass,
    Raise,
    Return,
    Try,
    While,
    With,
    Yield,
}

fn keyword(name: &[u8]) -> Option<Kw> {
    Some(match name {
        b"False" => Kw::False,
        b"None" => Kw::None,
        b"True" => Kw::True,
        b"and" => Kw::And,
        b"as" => Kw::As,
        b"assert" => Kw::Assert,
        b"async" => Kw::Async,
        b"await" => Kw::Await,
        b"break" => Kw::Break,
        b"class" => Kw::Class,
        b"continue" => Kw::Continue,
        b"def" => Kw::Def,
        b"del" => Kw::Del,
        b"elif" => Kw::Elif,
        b"else" => Kw::Else,
        b"except" => Kw::Except,
        b"finally" => Kw::Finally,
        b"for" => Kw::For,
        b"from" => Kw::From,
        b"global" => Kw::Global,
        b"if" => Kw::If,
        b"import" => Kw::Import,
        b"in" => Kw::In,
        b"is" => Kw::Is,
        b"lambda" => Kw::Lambda,
        b"nonlocal" => Kw::Nonlocal,
        b"not" => Kw::Not,
        b"or" => Kw::Or,
        b"pass" => Kw::Pass,
        b"raise" => Kw::Raise,
        b"return" => Kw::Return,
        b"try" => Kw::Try,
        b"while" => Kw::While,
        b"with" => Kw::With,
        b"yield" => Kw::Yield,
        _ => return None,
    })
}

/// What a token is. Operators are grouped by what may stand next to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum T {
    Name,
    Kw(Kw),
    Number,
    /// A text literal (no `b`, no `f` prefix).
    Str,
    Bytes,
    FStr,
    LPar,
    RPar,
    LSq,
    RSq,
    LBr,
    RBr,
    Comma,
    Colon,
    Semi,
    Dot,
    Ellipsis,
    Assign,
    AugAssign,
    Arrow,
    Walrus,
    Star,
    DStar,
    Slash,
    At,
    Plus,
    Minus,
    Tilde,
    /// `//`, `%`, `|`, `&`, `^`, `<<`, `>>`: binary operators only.
    Bin,
    /// `<`, `>`, `==`, `!=`, `<=`, `>=`.
    Cmp,
    /// `!` of an f-string's conversion, seen only inside replacement fields.
    Bang,
}

/// One token: byte range in the source, 1-based line of its start, and for a
/// bracket the index (in its line's tokens) of the bracket matching it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: T,
    pub start: u32,
    pub end: u32,
    pub line: u32,
    pub pair: u32,
}

/// The tokenizer's state over one source text.
pub(crate) struct Lexer<'s> {
    src: &'s [u8],
    pos: usize,
    line: u32,
    /// Inside an f-string's replacement field: line breaks are spaces, `!` is
    /// a conversion, and there is no indentation.
    field: bool,
    /// Open brackets: index of the token in the line's tokens.
    open: Vec<u32>,
    /// Byte ranges of the replacement fields of the f-strings lexed so far;
    /// the reader takes them.
    pub fields: Vec<(u32, u32)>,
}

impl<'s> Lexer<'s> {
    pub fn new(src: &'s str) -> Self {
        Lexer { src: src.as_bytes(), pos: 0, line: 1, field: false, open: Vec::new(), fields: Vec::new() }
    }

    /// A lexer over an f-string's replacement field, `src[start..end]`.
    pub fn field(src: &'s str, start: u32, end: u32) -> Self {
        let mut lexer = Lexer::new(&src[..end as usize]);
        lexer.pos = start as usize;
        lexer.field = true;
        lexer
    }

    /// The next logical line's tokens into `out`, and its indentation in
    /// columns; `None` at the end of the source. Blank and comment-only lines
    /// make no logical line.
    pub fn next_line(&mut self, out: &mut Vec<Token>) -> Result<Option<u32>, Unsure> {
        out.clear();
        let indent = if self.field {
            0
        } else {
            match self.indentation()? {
                Some(indent) => indent,
                None => return Ok(None),
            }
        };
        loop {
            while let Some(b' ' | b'\t' | b'\x0c') = self.src.get(self.pos) {
                self.pos += 1;
            }
            let Some(&c) = self.src.get(self.pos) else {
                if !self.open.is_empty() {
                    return Err(unsure());
                }
                return Ok(if out.is_empty() { None } else { Some(indent) });
            };
            match c {
                b'\n' | b'\r' => {
                    self.newline()?;
                    if self.open.is_empty() && !self.field {
                        return Ok(Some(indent));
                    }
                }
                b'#' if !self.field => self.comment(),
                b'\\' if !self.field => {
                    self.pos += 1;
                    match self.src.get(self.pos) {
                        Some(b'\n' | b'\r') => self.newline()?,
                        _ => return Err(unsure()),
                    }
                }
                _ => {
                    let token = self.token(c, out.len() as u32)?;
                    out.push(token);
                    match token.kind {
                        T::LPar | T::LSq | T::LBr => self.open.push(out.len() as u32 - 1),
                        T::RPar | T::RSq | T::RBr => {
                            let open = self.open.pop().ok_or_else(unsure)?;
                            let expected = match out[open as usize].kind {
                                T::LPar => T::RPar,
                                T::LSq => T::RSq,
                                _ => T::RBr,
                            };
                            if token.kind != expected {
                                return Err(unsure());
                            }
                            let close = out.len() as u32 - 1;
                            out[open as usize].pair = close;
                            out[close as usize].pair = open;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Skips blank and comment lines; the indentation of the next line that
    /// holds a token, or `None` at the end.
    fn indentation(&mut self) -> Result<Option<u32>, Unsure> {
        loop {
            let mut col = 0;
            while self.src.get(self.pos) == Some(&b' ') {
                self.pos += 1;
                col += 1;
            }
            match self.src.get(self.pos) {
                None => return Ok(None),
                Some(b'\n' | b'\r') => self.newline()?,
                Some(b'#') => self.comment(),
                // Tabs and form feeds in indentation have rules of their own.
                Some(b'\t' | b'\x0c' | b'\\') => return Err(unsure()),
                Some(_) => return Ok(Some(col)),
            }
        }
    }

    /// Consumes `\n` or `\r\n`; a lone `\r` (old Mac line ends) is unsure.
    fn newline(&mut self) -> Result<(), Unsure> {
        if self.src[self.pos] == b'\r' {
            if self.src.get(self.pos + 1) != Some(&b'\n') {
                return Err(unsure());
            }
            self.pos += 1;
        }
        self.pos += 1;
        self.line += 1;
        Ok(())
    }

    /// To the end of the line, leaving the line break.
    fn comment(&mut self) {
        while let Some(&c) = self.src.get(self.pos) {
            if c == b'\n' || c == b'\r' {
                break;
            }
            self.pos += 1;
        }
    }

    fn at(&self, offset: usize) -> u8 {
        self.src.get(self.pos + offset).copied().unwrap_or(0)
    }

    fn token(&mut self, c: u8, index: u32) -> Result<Token, Unsure> {
        let start = self.pos;
        let line = self.line;
        let kind = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while let Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_') = self.src.get(self.pos) {
                    self.pos += 1;
                }
                let word = &self.src[start..self.pos];
                match self.src.get(self.pos) {
                    Some(b'\'' | b'"') => match string_prefix(word) {
                        Some(prefix) => self.string(prefix)?,
                        None => return Err(unsure()),
                    },
                    Some(&c) if c >= 0x80 => return Err(unsure()),
                    _ => keyword(word).map_or(T::Name, T::Kw),
                }
            }
            b'0'..=b'9' => self.number(),
            b'.' if self.at(1).is_ascii_digit() => self.number(),
            b'.' if self.at(1) == b'.' && self.at(2) == b'.' => self.ops(3, T::Ellipsis),
            b'\'' | b'"' => self.string(Prefix::default())?,
            _ => self.operator(c)?,
        };
        Ok(Token { kind, start: start as u32, end: self.pos as u32, line, pair: index })
    }

    fn ops(&mut self, len: usize, kind: T) -> T {
        self.pos += len;
        kind
    }

    fn operator(&mut self, c: u8) -> Result<T, Unsure> {
        let (n1, n2) = (self.at(1), self.at(2));
        Ok(match c {
            b'(' => self.ops(1, T::LPar),
            b')' => self.ops(1, T::RPar),
            b'[' => self.ops(1, T::LSq),
            b']' => self.ops(1, T::RSq),
            b'{' => self.ops(1, T::LBr),
            b'}' => self.ops(1, T::RBr),
            b',' => self.ops(1, T::Comma),
            b';' => self.ops(1, T::Semi),
            b'.' => self.ops(1, T::Dot),
            b'~' => self.ops(1, T::Tilde),
            b':' if n1 == b'=' => self.ops(2, T::Walrus),
            b':' => self.ops(1, T::Colon),
            b'=' if n1 == b'=' => self.ops(2, T::Cmp),
            b'=' => self.ops(1, T::Assign),
            b'!' if n1 == b'=' => self.ops(2, T::Cmp),
            b'!' if self.field => self.ops(1, T::Bang),
            b'<' | b'>' if n1 == c && n2 == b'=' => self.ops(3, T::AugAssign),
            b'<' | b'>' if n1 == c => self.ops(2, T::Bin),
            b'<' | b'>' if n1 == b'=' => self.ops(2, T::Cmp),
            b'<' | b'>' => self.ops(1, T::Cmp),
            b'*' | b'/' if n1 == c && n2 == b'=' => self.ops(3, T::AugAssign),
            b'*' if n1 == b'*' => self.ops(2, T::DStar),
            b'/' if n1 == b'/' => self.ops(2, T::Bin),
            b'-' if n1 == b'>' => self.ops(2, T::Arrow),
            b'*' | b'/' | b'-' | b'+' | b'%' | b'&' | b'|' | b'^' | b'@' if n1 == b'=' => self.ops(2, T::AugAssign),
            b'*' => self.ops(1, T::Star),
            b'/' => self.ops(1, T::Slash),
            b'-' => self.ops(1, T::Minus),
            b'+' => self.ops(1, T::Plus),
            b'@' => self.ops(1, T::At),
            b'%' | b'&' | b'|' | b'^' => self.ops(1, T::Bin),
            // `$`, `?`, a backtick, control characters, non-ASCII names.
            _ => return Err(unsure()),
        })
    }

    /// Digits, letters, `_` and `.`, with the sign of a decimal exponent: loose,
    /// since a number is never a name the reader needs.
    fn number(&mut self) -> T {
        let radix = self.src[self.pos] == b'0' && matches!(self.at(1), b'x' | b'X' | b'o' | b'O' | b'b' | b'B');
        while let Some(&c) = self.src.get(self.pos) {
            match c {
                b'e' | b'E' if !radix && matches!(self.at(1), b'+' | b'-') => self.pos += 2,
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => self.pos += 1,
                _ => break,
            }
        }
        T::Number
    }

    /// A string literal from its opening quote (the prefix already read).
    fn string(&mut self, prefix: Prefix) -> Result<T, Unsure> {
        let quote = self.src[self.pos];
        let triple = self.at(1) == quote && self.at(2) == quote;
        self.pos += if triple { 3 } else { 1 };
        let content = self.pos;
        let content_end = loop {
            let Some(&c) = self.src.get(self.pos) else { return Err(unsure()) };
            match c {
                b'\\' => {
                    self.pos += 1;
                    match self.src.get(self.pos) {
                        None => return Err(unsure()),
                        Some(b'\n' | b'\r') => self.newline()?,
                        Some(_) => self.pos += 1,
                    }
                }
                b'\n' | b'\r' => {
                    if !triple {
                        return Err(unsure());
                    }
                    self.newline()?;
                }
                _ if c == quote => {
                    if !triple {
                        self.pos += 1;
                        break self.pos - 1;
                    }
                    if self.at(1) == quote && self.at(2) == quote {
                        self.pos += 3;
                        break self.pos - 3;
                    }
                    self.pos += 1;
                }
                // Bytes literals hold ASCII only.
                _ if c >= 0x80 && prefix.bytes => return Err(unsure()),
                _ => self.pos += 1,
            }
        };
        if prefix.format {
            self.format_fields(content, content_end)?;
            return Ok(T::FStr);
        }
        Ok(if prefix.bytes { T::Bytes } else { T::Str })
    }

    /// Sets aside the replacement fields of an f-string's text `src[start..end]`
    /// (the rules before Python 3.12: the literal ends at its quote, a field's
    /// expression holds no backslash and no comment).
    fn format_fields(&mut self, start: usize, end: usize) -> Result<(), Unsure> {
        let mut i = start;
        while i < end {
            match self.src[i] {
                b'\\' if matches!(self.src.get(i + 1), Some(b'{' | b'}')) => return Err(unsure()),
                b'\\' => i += 2,
                b'{' if self.src.get(i + 1) == Some(&b'{') => i += 2,
                b'}' if self.src.get(i + 1) == Some(&b'}') => i += 2,
                b'}' => return Err(unsure()),
                b'{' => i = self.field_end(i + 1, end)? + 1,
                _ => i += 1,
            }
        }
        Ok(())
    }

    /// Sets aside the expression of the field that starts at `i` (up to its
    /// `!conversion` or `:format spec`, whose own nested fields are set aside
    /// too); the index of the `}` closing it.
    fn field_end(&mut self, start: usize, end: usize) -> Result<usize, Unsure> {
        let mut depth = 0usize;
        let mut expression_end = None;
        let mut i = start;
        while i < end {
            let c = self.src[i];
            if expression_end.is_some() {
                match c {
                    b'{' => i = self.field_end(i + 1, end)?,
                    b'}' => return Ok(i),
                    b'\\' => return Err(unsure()),
                    _ => {}
                }
                i += 1;
                continue;
            }
            match c {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth > 0 => depth -= 1,
                b')' | b']' => return Err(unsure()),
                b'}' => {
                    self.fields.push((start as u32, i as u32));
                    return Ok(i);
                }
                b':' if depth == 0 => {
                    self.fields.push((start as u32, i as u32));
                    expression_end = Some(i);
                }
                b'!' if depth == 0 && self.src.get(i + 1) != Some(&b'=') => {
                    self.fields.push((start as u32, i as u32));
                    expression_end = Some(i);
                }
                b'\\' | b'#' => return Err(unsure()),
                quote @ (b'\'' | b'"') => {
                    let triple = self.src.get(i + 1) == Some(&quote) && self.src.get(i + 2) == Some(&quote);
                    let close: &[u8] = if triple { &[quote; 3] } else { &[quote] };
                    i += close.len();
                    while i < end && !self.src[i..].starts_with(close) {
                        i += 1;
                    }
                    if i >= end {
                        return Err(unsure());
                    }
                    i += close.len() - 1;
                }
                _ => {}
            }
            i += 1;
        }
        Err(unsure())
    }
}

/// What a string prefix says.
#[derive(Debug, Clone, Copy, Default)]
struct Prefix {
    bytes: bool,
    format: bool,
}

fn string_prefix(word: &[u8]) -> Option<Prefix> {
    let lower: Vec<u8> = word.iter().map(u8::to_ascii_lowercase).collect();
    let (bytes, format) = match lower.as_slice() {
        b"r" | b"u" => (false, false),
        b"b" | b"br" | b"rb" => (true, false),
        b"f" | b"fr" | b"rf" => (false, true),
        _ => return None,
    };
    Some(Prefix { bytes, format })
}

/// The value of a text literal token (`'a'`, `r"\d"`, `"""x"""`), or unsure
/// when it holds an escape this reading does not decode.
pub(crate) fn str_value(text: &str) -> Result<String, Unsure> {
    let prefix_len = text.find(['\'', '"']).ok_or_else(unsure)?;
    let raw = text[..prefix_len].bytes().any(|b| b.eq_ignore_ascii_case(&b'r'));
    let body = &text[prefix_len..];
    let quote_len = if body.len() >= 6 && (body.starts_with("'''") || body.starts_with("\"\"\"")) { 3 } else { 1 };
    let inner = &body[quote_len..body.len() - quote_len];
    if inner.contains('\r') {
        return Err(unsure());
    }
    if raw || !inner.contains('\\') {
        return Ok(inner.to_string());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().ok_or_else(unsure)? {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            // Octal, hex, unicode and named escapes.
            '0'..='7' | 'x' | 'u' | 'U' | 'N' => return Err(unsure()),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}
