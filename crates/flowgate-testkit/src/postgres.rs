//! Databases of their own on the test PostgreSQL server, through `psql` (so no
//! code is shared with flowgate's ledger): a database per test, or a login role
//! with a password and a database it owns. Both are dropped however the test ends.
//!
//! The server is `FLOWGATE_TEST_POSTGRES_URL` (default: 127.0.0.1:5432, user
//! `postgres`, trust auth). When it is unreachable the fixture panics, unless
//! `FLOWGATE_SKIP_POSTGRES=1` outside CI, when it returns `None` and the test
//! skips (see [`crate::skip`]).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The variable naming the server's maintenance database URL.
pub const SERVER_VAR: &str = "FLOWGATE_TEST_POSTGRES_URL";
/// Set to `1` to skip, rather than fail, when the server is unreachable (not under `CI=true`).
pub const SKIP_VAR: &str = crate::skip::POSTGRES;
/// The server when [`SERVER_VAR`] is unset.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs `sql` with `psql` on the database at `url`; the error is psql's stderr.
pub fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .map_err(|e| format!("`psql` could not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The server's URL, and a name no other fixture of this process uses:
/// `{prefix}_{pid}_{n}`, dropped first if a killed run left it behind. `None`
/// when the server is unreachable and [`crate::skip::or_fail`] allows a skip;
/// a panic otherwise.
fn server_and_name(prefix: &str) -> Option<(String, String)> {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    crate::skip::check_value(SKIP_VAR);
    let server = std::env::var(SERVER_VAR).unwrap_or_else(|_| DEFAULT_SERVER.into());
    let name = format!("{prefix}_{}_{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed));
    if let Err(e) = psql(&server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
        let shown = without_password(&server);
        let missing = format!("PostgreSQL at `{shown}` is unreachable: {}", e.trim());
        crate::skip::or_fail(SKIP_VAR, &missing, &format!("Start it, point {SERVER_VAR} at it"));
        return None;
    }
    Some((server, name))
}

/// `scheme://authority` of a URL: `postgres://user@host:port/db?x` → `postgres://user@host:port`.
fn scheme_and_authority(url: &str) -> (&str, &str) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    (scheme, rest.split(['/', '?']).next().unwrap_or(rest))
}

/// `url` with a password in it replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    let (scheme, authority) = scheme_and_authority(url);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &url[scheme.len() + 3 + authority.len()..])
        }
        _ => url.to_string(),
    }
}

/// A database of its own on the test server, dropped however the test ends.
#[derive(Debug)]
pub struct Database {
    server: String,
    name: String,
}

impl Database {
    /// Creates a new database named after `prefix`. `None` (skip) only when the
    /// server is unreachable and skipping was asked for outside CI.
    pub fn create(prefix: &str) -> Option<Self> {
        let (server, name) = server_and_name(prefix)?;
        psql(&server, &format!("CREATE DATABASE {name}")).expect("create database");
        Some(Self { server, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's URL (its user, host and port) with this database as path.
    pub fn url(&self) -> String {
        let (scheme, authority) = scheme_and_authority(&self.server);
        format!("{scheme}://{authority}/{}", self.name)
    }

    /// Runs `sql` in this database.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        psql(&self.url(), sql)
    }

    /// The output of `sql` in this database, unaligned and without headers,
    /// trimmed (one value for a query of one value).
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-X", "-A", "-t", "-d", &self.url(), "-c", sql])
            .output()
            .map_err(|e| format!("`psql` could not run: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Polls `sql` (one value) until it prints `expected`, for at most 30 s.
    #[track_caller]
    pub fn wait_for(&self, sql: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.query(sql).expect("run psql") == expected {
                return;
            }
            assert!(Instant::now() < deadline, "`{sql}` did not give {expected} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A login role with a password and a database of the same name that it owns,
/// both dropped however the test ends. Its URLs carry the password percent-encoded.
#[derive(Debug)]
pub struct Role {
    server: String,
    name: String,
    password: String,
    /// `host:port` of the server.
    host: String,
}

impl Role {
    /// Creates the role (named after `prefix`) with `password`, and its
    /// database. `None` (skip) only when the server is unreachable and skipping
    /// was asked for outside CI.
    pub fn create(prefix: &str, password: &str) -> Option<Self> {
        let (server, name) = server_and_name(prefix)?;
        psql(&server, &format!("DROP ROLE IF EXISTS {name}")).expect("drop old role");
        let quoted = password.replace('\'', "''");
        psql(&server, &format!("CREATE ROLE {name} LOGIN PASSWORD '{quoted}'")).expect("create role");
        psql(&server, &format!("CREATE DATABASE {name} OWNER {name}")).expect("create database");
        let (_, authority) = scheme_and_authority(&server);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_string();
        Some(Self { server, name, password: password.to_string(), host })
    }

    /// The role's name, which is also its database's.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://ROLE:PASSWORD@HOST:PORT/DATABASE`.
    pub fn url(&self) -> String {
        self.url_with(&self.name, &self.host)
    }

    /// [`Role::url`] on another host and port (e.g. one nothing listens on).
    pub fn url_with_host(&self, host: &str, port: u16) -> String {
        self.url_with(&self.name, &format!("{host}:{port}"))
    }

    /// [`Role::url`] with another user name and the same password.
    pub fn url_with_user(&self, user: &str) -> String {
        self.url_with(user, &self.host)
    }

    fn url_with(&self, user: &str, host: &str) -> String {
        format!("postgres://{user}:{}@{host}/{}", crate::percent_encode(&self.password), self.name)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = psql(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        let _ = psql(&self.server, &format!("DROP ROLE IF EXISTS {}", self.name));
    }
}
