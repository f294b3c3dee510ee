//! API tokens and the server's view of the database: tokens are stored by the
//! hash the caller gives, names are never reused, revocation is once; a
//! project is looked up without being registered.

use chrono::{DateTime, Utc};
use flowgate_core::Grant;
use flowgate_ledger::{LedgerDatabase, LedgerError, TokenRecord};

use super::Target;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn token(name: &str, hash: &str, grants: &[&str]) -> TokenRecord {
    TokenRecord {
        name: name.into(),
        secret_hash: hash.into(),
        grants: grants.iter().map(|g| g.parse::<Grant>().unwrap()).collect(),
        created_at: at(1_000),
        expires_at: Some(at(9_000)),
        revoked_at: None,
    }
}

pub async fn tokens_are_created_once_found_by_hash_and_revoked_once(t: &Target) {
    let db = LedgerDatabase::open(&t.url, &t.base_dir).await.unwrap();
    let ci = token("ci", "aa11", &["releaser:qa", "viewer"]);
    db.create_token(&ci).await.unwrap();
    db.create_token(&TokenRecord { expires_at: None, ..token("alice", "bb22", &["admin"]) }).await.unwrap();

    let taken = db.create_token(&token("ci", "cc33", &["viewer"])).await.unwrap_err();
    assert!(matches!(&taken, LedgerError::TokenNameTaken { name } if name == "ci"), "{taken:?}");
    assert_eq!(db.tokens().await.unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["alice", "ci"]);

    assert_eq!(db.token_by_hash("aa11").await.unwrap(), Some(ci.clone()));
    assert_eq!(db.token_by_hash("cc33").await.unwrap(), None);

    assert!(db.revoke_token("ci", at(5_000)).await.unwrap());
    assert!(!db.revoke_token("ci", at(6_000)).await.unwrap(), "revoked once");
    assert!(!db.revoke_token("nobody", at(6_000)).await.unwrap());
    let revoked = db.token_by_hash("aa11").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at(5_000)));
    assert!(!revoked.is_valid_at(at(5_001)));
    // A revoked token's name stays taken.
    assert!(db.create_token(&token("ci", "dd44", &["viewer"])).await.is_err());
}

pub async fn a_server_looks_projects_up_without_registering_them(t: &Target) {
    let db = LedgerDatabase::open(&t.url, &t.base_dir).await.unwrap();
    let alpha = "alpha".parse().unwrap();
    assert!(db.project(&alpha).await.unwrap().is_none());
    assert!(db.projects().await.unwrap().is_empty(), "a lookup registered a project");
    t.open().await;
    let ledger = db.project(&alpha).await.unwrap().expect("alpha is recorded");
    assert_eq!(ledger.project(), &alpha);
    assert!(ledger.pointers(None).await.unwrap().is_empty());
    assert_eq!(db.projects().await.unwrap().len(), 1);
}
