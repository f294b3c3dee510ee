//! Credentials for a Prefect API, in a type that can never print its secret.

use std::fmt;

/// How flowgate authenticates to one Prefect API.
#[derive(Clone, PartialEq, Eq)]
pub enum PrefectAuth {
    /// `Authorization: Bearer <key>` (Prefect Cloud API keys).
    Bearer(String),
    /// A self-hosted server's `PREFECT_SERVER_API_AUTH_STRING` (`user:password`),
    /// sent as HTTP Basic exactly as Prefect's own client does: the whole string,
    /// base64-encoded.
    Basic(String),
}

impl PrefectAuth {
    /// The `Authorization` header value. Callers mark it sensitive.
    pub(crate) fn header_value(&self) -> String {
        use base64::Engine as _;
        match self {
            Self::Bearer(key) => format!("Bearer {key}"),
            Self::Basic(auth) => format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(auth)),
        }
    }

    fn scheme(&self) -> &'static str {
        match self {
            Self::Bearer(_) => "Bearer",
            Self::Basic(_) => "Basic",
        }
    }
}

impl fmt::Debug for PrefectAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrefectAuth::{}(<redacted>)", self.scheme())
    }
}

impl fmt::Display for PrefectAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <redacted>", self.scheme())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_encodes_the_whole_auth_string_like_prefect() {
        // base64("user:secret") as Prefect's client computes it.
        assert_eq!(PrefectAuth::Basic("user:secret".into()).header_value(), "Basic dXNlcjpzZWNyZXQ=");
        assert_eq!(PrefectAuth::Bearer("pnu_abc".into()).header_value(), "Bearer pnu_abc");
    }

    #[test]
    fn debug_and_display_redact_the_secret() {
        for auth in [PrefectAuth::Basic("user:secret".into()), PrefectAuth::Bearer("secret".into())] {
            let shown = format!("{auth:?} {auth}");
            assert!(!shown.contains("secret"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
}
