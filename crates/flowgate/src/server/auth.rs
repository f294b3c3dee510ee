//! Who is calling: the `Authorization: Bearer TOKEN` header. An API token
//! (`fgt_...`) is checked against the hashes in the ledger: a secret is hashed
//! on arrival and never logged, stored or compared in the clear. Anything else
//! is taken as an OpenID Connect ID token of a configured issuer, verified
//! against its keys, and given the roles of the access rules it matches.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;
use flowgate_core::access::{allowed, allowed_somewhere};
use flowgate_core::{grants_for, AuthMethod, EnvName, Grant, Role, Verified};

use super::oidc::{unverified_issuer, OidcIdentity};

use super::error::ApiError;
use super::{AppState, RequestId};

/// The prefix of every token secret, so a leaked one is recognisable (and
/// secret scanners can be taught it).
pub const SECRET_PREFIX: &str = "fgt_";

/// A new random secret: the prefix and 32 bytes from the operating system, in hex.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the system gave no random bytes: {e}"))?;
    Ok(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
}

/// What the ledger stores of a secret.
pub fn secret_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// How a caller proved who it is.
#[derive(Debug, Clone)]
pub enum Identity {
    /// An API token (its name is the subject).
    Token,
    /// An OpenID Connect ID token, verified.
    Oidc(OidcIdentity),
    /// The single sign-on proxy's user header (a page's caller only), with
    /// the claims access rules for the `sso` issuer match (`email`, `groups`).
    Sso(std::collections::BTreeMap<String, String>),
}

/// A request's verified caller: who (the token's name, or the ID token's
/// `sub`), how, and what its grants allow.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub identity: Identity,
    pub grants: Vec<Grant>,
    pub request_id: RequestId,
}

impl Caller {
    /// What a change this caller makes records of them.
    pub fn verified(&self) -> Verified {
        let (method, issuer, claims) = match &self.identity {
            Identity::Token => (AuthMethod::Token, None, Default::default()),
            Identity::Oidc(id) => (AuthMethod::Oidc, Some(id.issuer.clone()), id.claims.clone()),
            Identity::Sso(claims) => (AuthMethod::Sso, None, claims.clone()),
        };
        Verified { subject: self.subject.clone(), method, issuer, claims, request_id: self.request_id.0.clone() }
    }

    /// Ok when the caller's grants allow `needed` (on `env`, if the action is
    /// on one env); else 403 naming the right that is missing.
    pub fn require(&self, needed: Role, env: Option<&EnvName>) -> Result<(), ApiError> {
        if allowed(&self.grants, needed, env) {
            return Ok(());
        }
        let scope = env.map(|e| format!(" on env `{e}`")).unwrap_or_default();
        Err(ApiError::forbidden(
            self.request_id.clone(),
            format!("`{}` lacks the `{needed}` role{scope}", self.subject),
        ))
    }
}

impl Caller {
    /// Ok when the caller holds `needed` on at least one env; else 403.
    pub fn require_somewhere(&self, needed: Role) -> Result<(), ApiError> {
        if allowed_somewhere(&self.grants, needed) {
            return Ok(());
        }
        Err(ApiError::forbidden(
            self.request_id.clone(),
            format!("`{}` lacks the `{needed}` role on any env", self.subject),
        ))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let request_id = parts.extensions.get::<RequestId>().cloned().unwrap_or_default();
        match bearer(parts) {
            Some(credential) => Caller::verify(state, credential, request_id).await,
            None => Err(ApiError::unauthenticated(request_id)),
        }
    }
}

/// The credential of an `Authorization: Bearer` header, if the request has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim())
}

impl Caller {
    /// The caller a credential proves: an API token, or an ID token of a
    /// trusted issuer; 401 (the same for every reason) otherwise.
    pub async fn verify(state: &AppState, bearer: &str, request_id: RequestId) -> Result<Self, ApiError> {
        let unauthenticated = || ApiError::unauthenticated(request_id.clone());
        if bearer.starts_with(SECRET_PREFIX) {
            let token = state
                .database
                .token_by_hash(&secret_hash(bearer))
                .await
                .map_err(|e| ApiError::internal(request_id.clone(), &anyhow::Error::from(e)))?
                .filter(|t| t.is_valid_at(Utc::now()))
                .ok_or_else(unauthenticated)?;
            return Ok(Caller { subject: token.name, identity: Identity::Token, grants: token.grants, request_id });
        }
        let issuer = unverified_issuer(bearer).ok_or_else(unauthenticated)?;
        let Some(verifier) = state.oidc.iter().find(|v| v.issuer() == issuer) else {
            tracing::debug!(request_id = %request_id.0, %issuer, "ID token refused: no [[oidc]] entry trusts its issuer");
            return Err(unauthenticated());
        };
        let identity = verifier.verify(bearer).await.map_err(|why| {
            tracing::debug!(request_id = %request_id.0, %issuer, "ID token refused: {why}");
            unauthenticated()
        })?;
        let grants = grants_for(&state.access, &identity.issuer, &identity.claims);
        Ok(Caller { subject: identity.subject.clone(), identity: Identity::Oidc(identity), grants, request_id })
    }
}
