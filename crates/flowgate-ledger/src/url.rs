//! Ledger database URLs. A PostgreSQL URL may carry a password, so this type is
//! the only place the raw string lives, and everything that prints it redacts.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::LedgerError;

const REDACTED: &str = "***";

/// A database URL whose `Debug`/`Display` redact the password and any
/// `password=` query parameter. `expose` hands the raw string to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerUrl(String);

/// Which backend a URL names, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A private in-memory SQLite database (tests).
    SqliteMemory,
    /// A SQLite file, relative to the project's base directory unless absolute.
    SqliteFile(PathBuf),
    Postgres,
}

impl LedgerUrl {
    /// The URL with credentials replaced by `***`: safe for logs and errors.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// The raw URL, credentials included. Only for handing to the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn target(&self) -> Target {
        if self.0 == "sqlite::memory:" {
            Target::SqliteMemory
        } else if let Some(path) = self.0.strip_prefix("sqlite://") {
            Target::SqliteFile(PathBuf::from(path))
        } else {
            Target::Postgres
        }
    }
}

impl FromStr for LedgerUrl {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| LedgerError::InvalidUrl { url: redact(s), reason: reason.to_string() };
        if s == "sqlite::memory:" {
            return Ok(Self(s.to_string()));
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid("it names no file"));
            }
            if path.contains('?') || path.contains('#') {
                return Err(invalid("SQLite ledger URLs take no query or fragment"));
            }
            return Ok(Self(s.to_string()));
        }
        let Some((scheme, _)) = s.split_once("://") else {
            return Err(LedgerError::Unsupported { url: redact(s) });
        };
        if !matches!(scheme, "postgres" | "postgresql") {
            return Err(LedgerError::Unsupported { url: redact(s) });
        }
        let parsed = url::Url::parse(s).map_err(|e| invalid(&e.to_string()))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it names no host"));
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for LedgerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for LedgerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LedgerUrl({:?})", self.redacted())
    }
}

/// Textual redaction that also works on strings that failed to parse: the
/// password of the userinfo and the value of every `password=` parameter.
pub(crate) fn redact(raw: &str) -> String {
    let (before_query, query) = match raw.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (raw, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => before_query.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}={REDACTED}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_password() {
        let url: LedgerUrl =
            "postgres://alice:s3cr3t@db.internal:5432/ledger?sslmode=require&password=hunter2".parse().unwrap();
        for shown in [format!("{url}"), format!("{url:?}"), url.redacted()] {
            assert!(!shown.contains("s3cr3t") && !shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("alice:***@db.internal:5432/ledger"), "{shown}");
            assert!(shown.contains("sslmode=require&password=***"), "{shown}");
        }
        assert!(url.expose().contains("s3cr3t"));
    }

    #[test]
    fn errors_name_the_redacted_value() {
        let err = "mysql://bob:pw@host/db".parse::<LedgerUrl>().unwrap_err();
        assert!(matches!(err, LedgerError::Unsupported { .. }));
        assert!(err.to_string().contains("`mysql://bob:***@host/db`"), "{err}");
        let err = "postgres://bob:pw@:99999/db".parse::<LedgerUrl>().unwrap_err();
        assert!(!err.to_string().contains("pw@"), "{err}");
        assert!("ledger.db".parse::<LedgerUrl>().is_err());
        assert!("sqlite://".parse::<LedgerUrl>().is_err());
    }

    #[test]
    fn targets_are_recognized() {
        let parse = |s: &str| s.parse::<LedgerUrl>().unwrap().target();
        assert_eq!(parse("sqlite::memory:"), Target::SqliteMemory);
        assert_eq!(parse("sqlite://.flowgate/ledger.db"), Target::SqliteFile(".flowgate/ledger.db".into()));
        assert_eq!(parse("sqlite:///var/ledger.db"), Target::SqliteFile("/var/ledger.db".into()));
        assert_eq!(parse("postgresql://u@h/db"), Target::Postgres);
    }
}
