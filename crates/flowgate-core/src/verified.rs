//! Who made a change, as a flowgate server verified them: recorded with the
//! change (an approval, a pin), so the ledger says not only the actor's name
//! but how they proved it and which request did it. Changes made in direct
//! mode carry none: nothing verified them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuthMethod {
    /// An API token made by `flowgate admin token create`.
    Token,
    /// An OpenID Connect ID token of a trusted issuer (a CI job's).
    Oidc,
    /// A person the single sign-on proxy in front of the server signed in
    /// (its user header, believed only from a configured proxy address).
    Sso,
}

/// The verified caller of the request that made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verified {
    /// The API token's name, or the ID token's `sub`.
    pub subject: String,
    pub method: AuthMethod,
    /// The ID token's issuer (`oidc` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The ID token's string claims, as verified (`oidc` only): repository,
    /// ref, sha, workflow, run id, actor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// The request's id, which the server's log names too.
    pub request_id: String,
}

impl Verified {
    /// `lead (token)`, `repo:acme/flows:ref:refs/heads/main (oidc)`: for tables.
    pub fn label(&self) -> String {
        let method = match self.method {
            AuthMethod::Token => "token",
            AuthMethod::Oidc => "oidc",
            AuthMethod::Sso => "sso",
        };
        format!("{} ({method})", self.subject)
    }
}

/// One registration of a build through a server: who registered it, as
/// verified, and when. A build registered by a CI job carries the job's
/// claims (repository, ref, sha), which a policy's `provenance` can require.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provenance {
    pub registrar: Verified,
    pub recorded_at: DateTime<Utc>,
}
