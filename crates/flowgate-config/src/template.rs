//! flowgate's own string templates (`{commit}`, `{flow}`, …) for the few fields
//! that are rendered per build or per env, parsed once so a typo is caught when
//! the config is read rather than at release time.

use std::fmt;

use flowgate_core::FlowKey;

/// A value a template can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placeholder {
    /// The full commit sha of the build.
    Commit,
    /// The first 12 characters of the commit, as git prints them.
    Short,
    /// The branch the build was made on; absent on a detached HEAD.
    Branch,
    /// The flow key.
    Flow,
    /// The configured env name (`dev` for every personal env).
    Env,
    /// The sanitized login name of the current user.
    User,
}

impl Placeholder {
    pub const ALL: [Placeholder; 6] = [Self::Commit, Self::Short, Self::Branch, Self::Flow, Self::Env, Self::User];

    pub fn name(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Short => "short",
            Self::Branch => "branch",
            Self::Flow => "flow",
            Self::Env => "env",
            Self::User => "user",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Why a template is malformed or cannot be rendered; messages name the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{name}}}` in `{template}`{}; known placeholders: {}",
        suggestion.map(|s| format!(" (did you mean `{{{s}}}`?)")).unwrap_or_default(), known())]
    UnknownPlaceholder { template: String, name: String, suggestion: Option<&'static str> },
    #[error(
        "unbalanced `{brace}` at character {position} of `{template}`; write `{brace}{brace}` for a literal brace"
    )]
    Unbalanced { template: String, brace: char, position: usize },
    #[error("`{{{}}}` in `{template}` has no value here", placeholder.name())]
    Missing { template: String, placeholder: Placeholder },
    #[error("`{{${name}}}` in `{template}` reads the environment variable `{name}`, which is not set{}",
        if *read_here { "" } else { " (environment variables are read only when a build is made)" })]
    MissingVariable { template: String, name: String, read_here: bool },
    #[error("`{{${name}}}` in `{template}` is not an environment variable name (letters, digits and `_`)")]
    BadVariable { template: String, name: String },
}

fn known() -> String {
    let names: Vec<String> = Placeholder::ALL.iter().map(|p| format!("`{{{}}}`", p.name())).collect();
    format!("{}, and `{{$NAME}}` for an environment variable at build time", names.join(", "))
}

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Placeholder),
    /// `{$NAME}`: the environment variable NAME of the process making the build,
    /// as `{{ $NAME }}` in a prefect.yaml reads it when `prefect deploy` runs.
    Variable(String),
}

/// A parsed template: literal text and placeholders; `{{` and `}}` are literal braces.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let chars: Vec<char> = source.chars().collect();
        let unbalanced = |brace, position| TemplateError::Unbalanced { template: source.to_string(), brace, position };
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    literal.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    literal.push('}');
                    i += 2;
                }
                '}' => return Err(unbalanced('}', i + 1)),
                '{' => {
                    let close = chars[i + 1..].iter().position(|c| *c == '}').map(|p| p + i + 1);
                    let Some(close) = close.filter(|c| !chars[i + 1..*c].contains(&'{')) else {
                        return Err(unbalanced('{', i + 1));
                    };
                    let name: String = chars[i + 1..close].iter().collect();
                    if let Some(variable) = name.strip_prefix('$') {
                        if !is_variable_name(variable) {
                            return Err(TemplateError::BadVariable {
                                template: source.to_string(),
                                name: variable.to_string(),
                            });
                        }
                        if !literal.is_empty() {
                            parts.push(Part::Literal(std::mem::take(&mut literal)));
                        }
                        parts.push(Part::Variable(variable.to_string()));
                        i = close + 1;
                        continue;
                    }
                    let placeholder =
                        Placeholder::from_name(&name).ok_or_else(|| TemplateError::UnknownPlaceholder {
                            template: source.to_string(),
                            suggestion: closest(&name),
                            name,
                        })?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(placeholder));
                    i = close + 1;
                }
                c => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { source: source.to_string(), parts })
    }

    /// The template as written in the config.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholders used, in order of appearance (repeats included).
    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Literal(_) | Part::Variable(_) => None,
        })
    }

    /// The environment variables read (`{$NAME}`), in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = &str> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) | Part::Var(_) => None,
        })
    }

    pub fn render(&self, vars: &TemplateVars) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(p) => out.push_str(
                    vars.get(*p)
                        .ok_or_else(|| TemplateError::Missing { template: self.source.clone(), placeholder: *p })?,
                ),
                Part::Variable(name) => {
                    let value = vars.environment.then(|| std::env::var(name).ok()).flatten().ok_or_else(|| {
                        TemplateError::MissingVariable {
                            template: self.source.clone(),
                            name: name.clone(),
                            read_here: vars.environment,
                        }
                    })?;
                    out.push_str(&value);
                }
            }
        }
        Ok(out)
    }

    /// `text` written so that it renders to itself: braces doubled.
    pub fn escape(text: &str) -> String {
        text.replace('{', "{{").replace('}', "}}")
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The known placeholder nearest to a misspelt one, if it is close enough.
fn closest(name: &str) -> Option<&'static str> {
    Placeholder::ALL
        .iter()
        .map(|p| (edit_distance(name, p.name()), p.name()))
        .filter(|(d, candidate)| *d <= 2 && *d < candidate.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The values placeholders render to; `None` means "not known here".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateVars {
    pub commit: Option<String>,
    pub short: Option<String>,
    pub branch: Option<String>,
    pub flow: Option<String>,
    pub env: Option<String>,
    pub user: Option<String>,
    /// Whether `{$NAME}` reads the process environment: only when a build is
    /// made, so a build records the values and later moves never depend on a
    /// shell's environment.
    pub environment: bool,
}

impl TemplateVars {
    /// The values known when a build is made: commit (and its short form), branch, flow.
    pub fn for_build(commit: &str, branch: Option<&str>, flow: &FlowKey) -> Self {
        Self {
            commit: Some(commit.to_string()),
            short: Some(commit.chars().take(12).collect()),
            branch: branch.map(str::to_string),
            flow: Some(flow.to_string()),
            environment: true,
            ..Self::default()
        }
    }

    pub fn get(&self, placeholder: Placeholder) -> Option<&str> {
        match placeholder {
            Placeholder::Commit => self.commit.as_deref(),
            Placeholder::Short => self.short.as_deref(),
            Placeholder::Branch => self.branch.as_deref(),
            Placeholder::Flow => self.flow.as_deref(),
            Placeholder::Env => self.env.as_deref(),
            Placeholder::User => self.user.as_deref(),
        }
    }
}
