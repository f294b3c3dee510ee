//! Registry credentials and challenges: the user's Docker config file (the
//! credentials `docker login` stored, as `auths.<host>`), and the
//! `WWW-Authenticate` challenge a registry answers 401 with (`Basic` or
//! `Bearer realm=…,service=…,scope=…`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use base64::Engine as _;

use super::reference::{DOCKER_HUB, DOCKER_HUB_API};

/// The directory of Docker's `config.json` (Docker's own variable; default `~/.docker`).
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";

/// A user name and password for one registry; `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: String, password: String) -> Self {
        Self { username, password }
    }

    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"***").finish()
    }
}

/// The `auths` of a Docker config file, keyed as written (`ghcr.io`,
/// `https://index.docker.io/v1/`, …).
#[derive(Debug, Default)]
pub struct DockerConfig {
    auths: BTreeMap<String, Credentials>,
}

impl DockerConfig {
    /// Reads `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; a
    /// missing file is no credentials, an unreadable or malformed one an error
    /// naming it.
    pub fn load() -> Result<Self> {
        let Some(path) = config_path(std::env::var_os(DOCKER_CONFIG).map(PathBuf::from), home_dir()) else {
            return Ok(Self::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                Self::parse(&text).with_context(|| format!("Failed to read the Docker config `{}`", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("Failed to read the Docker config `{}`", path.display())),
        }
    }

    /// The `auths` entries of a config file's text: `auth` (base64 of
    /// `user:password`) or `username` and `password`. Entries with neither
    /// (kept in a credential store) are left out.
    pub fn parse(text: &str) -> Result<Self> {
        let doc: serde_json::Value = serde_json::from_str(text).context("It is not JSON")?;
        let mut auths = BTreeMap::new();
        let Some(entries) = doc.get("auths").and_then(|a| a.as_object()) else { return Ok(Self { auths }) };
        for (key, entry) in entries {
            let text = |field: &str| entry.get(field).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
            let credentials = if let Some(auth) = text("auth") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .with_context(|| format!("`auths.{key}.auth` is not base64 of `user:password`"))?;
                let (user, password) = decoded
                    .split_once(':')
                    .with_context(|| format!("`auths.{key}.auth` is not base64 of `user:password`"))?;
                Credentials::new(user.to_string(), password.to_string())
            } else if let (Some(user), Some(password)) = (text("username"), text("password")) {
                Credentials::new(user.to_string(), password.to_string())
            } else {
                continue;
            };
            auths.insert(key.clone(), credentials);
        }
        Ok(Self { auths })
    }

    /// The credentials stored for `registry` (a host with its port, Docker
    /// Hub as `docker.io`); keys may carry a scheme and a path, as Docker
    /// writes Docker Hub's (`https://index.docker.io/v1/`).
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        let wanted = hub_alias(registry);
        self.auths.iter().find(|(key, _)| hub_alias(host_of_key(key)) == wanted).map(|(_, c)| c)
    }
}

/// The host part of an `auths` key: `https://ghcr.io/v2/` → `ghcr.io`.
fn host_of_key(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// Docker Hub's hosts are one registry.
fn hub_alias(host: &str) -> &str {
    match host {
        "index.docker.io" | DOCKER_HUB_API | "registry.hub.docker.com" => DOCKER_HUB,
        other => other,
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// `$DOCKER_CONFIG/config.json` when the variable is set, else `~/.docker/config.json`.
fn config_path(docker_config: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    match docker_config.filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => Some(dir.join("config.json")),
        None => home.map(|h| Path::new(&h).join(".docker").join("config.json")),
    }
}

/// A `WWW-Authenticate` challenge: its scheme (lower-cased) and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Scheme k=v, k2="quoted, with commas"`; `None` when there is no scheme.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, mut rest) = match header.split_once(char::is_whitespace) {
            Some((scheme, rest)) => (scheme, rest.trim_start()),
            None => (header, ""),
        };
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        while !rest.is_empty() {
            let Some((key, after)) = rest.split_once('=') else { break };
            let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            if !key.is_empty() {
                params.insert(key, value);
            }
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Self { scheme: scheme.to_ascii_lowercase(), params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/alpine:pull,push"));
        let spaced = Challenge::parse(r#"Bearer realm = "https://r/t" , service=reg , error="invalid_token""#).unwrap();
        assert_eq!(spaced.param("realm"), Some("https://r/t"));
        assert_eq!(spaced.param("service"), Some("reg"));
        assert_eq!(spaced.param("error"), Some("invalid_token"));
        let escaped = Challenge::parse(r#"Basic realm="a \"b\"""#).unwrap();
        assert_eq!((escaped.scheme.as_str(), escaped.param("realm")), ("basic", Some(r#"a "b""#)));
        assert_eq!(Challenge::parse("Basic").unwrap().params.len(), 0);
        assert_eq!(Challenge::parse("  "), None);
    }

    #[test]
    fn docker_config_auths_by_host() {
        let config = DockerConfig::parse(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
                "ghcr.io": {"username": "me", "password": "pat"},
                "127.0.0.1:5000": {"auth": "dTpwOnc6Mg=="},
                "quay.io": {}
            }, "credsStore": "desktop"}"#,
        )
        .unwrap();
        let hub = config.credentials_for("docker.io").unwrap();
        assert_eq!(hub.basic_header(), "Basic aHViOnNlY3JldA==");
        assert_eq!(config.credentials_for("registry-1.docker.io"), Some(hub));
        assert_eq!(config.credentials_for("ghcr.io").unwrap().username, "me");
        // The password may hold `:`; only the first one splits.
        let local = config.credentials_for("127.0.0.1:5000").unwrap();
        assert_eq!((local.username.as_str(), local.password.as_str()), ("u", "p:w:2"));
        assert_eq!(config.credentials_for("127.0.0.1:5001"), None);
        assert_eq!(config.credentials_for("quay.io"), None);
        assert!(!format!("{local:?}").contains("p:w"), "Debug shows the password");
        assert!(DockerConfig::parse("{}").unwrap().credentials_for("ghcr.io").is_none());
        assert!(DockerConfig::parse("nope").is_err());
        let bad = DockerConfig::parse(r#"{"auths": {"h": {"auth": "!!"}}}"#).unwrap_err();
        assert!(format!("{bad:#}").contains("`auths.h.auth`"), "{bad:#}");
    }

    #[test]
    fn the_config_file_is_found_like_docker_finds_it() {
        let p = |dc: Option<&str>, home: Option<&str>| config_path(dc.map(PathBuf::from), home.map(PathBuf::from));
        assert_eq!(p(Some("/d"), Some("/h")), Some(PathBuf::from("/d/config.json")));
        assert_eq!(p(Some(""), Some("/h")), Some(PathBuf::from("/h/.docker/config.json")));
        assert_eq!(p(None, None), None);
    }
}
