//! API tokens of a flowgate server, kept in the ledger's database beside the
//! projects they give rights in. Only a hash of each secret is stored, and the
//! caller hashes: the ledger never sees a secret.

use chrono::{DateTime, Utc};
use flowgate_core::Grant;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::backend::Backend;
use crate::codec;
use crate::error::LedgerError;

/// An API token as stored: its name, the hash of its secret and its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    /// The hex hash of the secret (never the secret).
    pub secret_hash: String,
    pub grants: Vec<Grant>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// True when the token may be used at `now`: not revoked, not expired.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// `api_tokens` columns: name, secret_hash, grants, created_at_ms, expires_at_ms, revoked_at_ms.
type TokenRow = (String, String, String, i64, Option<i64>, Option<i64>);

const COLUMNS: &str = "name, secret_hash, grants, created_at_ms, expires_at_ms, revoked_at_ms";
const INSERT: &str = "INSERT INTO api_tokens (name, secret_hash, grants, created_at_ms, expires_at_ms, revoked_at_ms) \
    VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT DO NOTHING";
const REVOKE: &str = "UPDATE api_tokens SET revoked_at_ms = $2 WHERE name = $1 AND revoked_at_ms IS NULL";

fn decode(row: TokenRow) -> Result<TokenRecord, LedgerError> {
    let (name, secret_hash, grants, created_at_ms, expires_at_ms, revoked_at_ms) = row;
    let grants: Vec<Grant> =
        serde_json::from_str(&grants).map_err(|e| LedgerError::corrupt(format!("grants of token `{name}`: {e}")))?;
    Ok(TokenRecord {
        grants,
        created_at: codec::time(created_at_ms)?,
        expires_at: expires_at_ms.map(codec::time).transpose()?,
        revoked_at: revoked_at_ms.map(codec::time).transpose()?,
        name,
        secret_hash,
    })
}

/// The token queries, generic over the backend like the ledger's.
pub(crate) struct Tokens<'p, B: Backend>(pub(crate) &'p Pool<B>);

impl<B: Backend> Tokens<'_, B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> String: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    for<'q> Option<i64>: Encode<'q, B> + Decode<'q, B>,
    usize: ColumnIndex<B::Row>,
{
    /// Inserts `token` unless its name or its secret's hash is taken:
    /// [`LedgerError::TokenNameTaken`] and nothing changes.
    pub(crate) async fn create(&self, token: &TokenRecord) -> Result<(), LedgerError> {
        let grants = serde_json::to_string(&token.grants).expect("grants serialize");
        let done = sqlx::query(INSERT)
            .bind(token.name.as_str())
            .bind(token.secret_hash.as_str())
            .bind(grants)
            .bind(token.created_at.timestamp_millis())
            .bind(token.expires_at.map(|t| t.timestamp_millis()))
            .execute(self.0)
            .await
            .map_err(LedgerError::backend("create token"))?;
        match B::rows_affected(&done) {
            0 => Err(LedgerError::TokenNameTaken { name: token.name.clone() }),
            _ => Ok(()),
        }
    }

    /// Every token, by name, revoked and expired ones included.
    pub(crate) async fn list(&self) -> Result<Vec<TokenRecord>, LedgerError> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name"))
            .fetch_all(self.0)
            .await
            .map_err(LedgerError::backend("list tokens"))?;
        rows.into_iter().map(decode).collect()
    }

    pub(crate) async fn by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>, LedgerError> {
        let row: Option<TokenRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_tokens WHERE secret_hash = $1"))
            .bind(secret_hash)
            .fetch_optional(self.0)
            .await
            .map_err(LedgerError::backend("read token"))?;
        row.map(decode).transpose()
    }

    /// Revokes the token `name` at `at`; false when there is no such token or
    /// it was revoked already (the first revocation's time stays).
    pub(crate) async fn revoke(&self, name: &str, at: DateTime<Utc>) -> Result<bool, LedgerError> {
        let done = sqlx::query(REVOKE)
            .bind(name)
            .bind(at.timestamp_millis())
            .execute(self.0)
            .await
            .map_err(LedgerError::backend("revoke token"))?;
        Ok(B::rows_affected(&done) > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_valid_until_it_expires_or_is_revoked() {
        let at = |ms| DateTime::from_timestamp_millis(ms).unwrap();
        let token = TokenRecord {
            name: "ci".into(),
            secret_hash: "00".into(),
            grants: vec![],
            created_at: at(0),
            expires_at: Some(at(1_000)),
            revoked_at: None,
        };
        assert!(token.is_valid_at(at(999)));
        assert!(!token.is_valid_at(at(1_000)));
        let forever = TokenRecord { expires_at: None, ..token.clone() };
        assert!(forever.is_valid_at(at(4_102_444_800_000)), "2100-01-01");
        let revoked = TokenRecord { revoked_at: Some(at(5)), ..forever };
        assert!(!revoked.is_valid_at(at(6)));
    }
}
