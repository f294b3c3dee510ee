//! Credentials `flowgate login` keeps, one per server URL, in
//! `$XDG_CONFIG_HOME/flowgate/credentials.toml` (else `~/.config/...`). The
//! file is written whole to a sibling and renamed into place, with mode 0600
//! in a 0700 directory: only its owner can read a token.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::exit::usage;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    servers: BTreeMap<String, Stored>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    token: String,
}

/// Where the file lives.
pub fn path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
            let home =
                home.ok_or_else(|| usage("Neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep credentials"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("flowgate").join("credentials.toml"))
}

impl Credentials {
    /// The file at `path`, or none stored yet.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| usage(format!("Credentials file `{}`: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("Failed to read `{}`", path.display())),
        }
    }

    pub fn token(&self, server: &str) -> Option<&str> {
        self.servers.get(server).map(|s| s.token.as_str())
    }

    pub fn set(&mut self, server: &str, token: &str) {
        self.servers.insert(server.to_string(), Stored { token: token.to_string() });
    }

    /// True when `server` had a credential.
    pub fn remove(&mut self, server: &str) -> bool {
        self.servers.remove(server).is_some()
    }

    /// Writes the file: owner-only, replaced whole.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().context("a credentials path has a directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create `{}`", dir.display()))?;
        owner_only(dir)?;
        let text = toml::to_string(self).context("Failed to encode the credentials")?;
        let temp = dir.join(".credentials.toml.tmp");
        let mut file = open_owner_only(&temp)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("Failed to write `{}`", temp.display()))?;
        std::fs::rename(&temp, path).with_context(|| format!("Failed to replace `{}`", path.display()))
    }
}

#[cfg(unix)]
fn open_owner_only(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("Failed to create `{}`", path.display()))
}

#[cfg(not(unix))]
fn open_owner_only(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("Failed to create `{}`", path.display()))
}

#[cfg(unix)]
fn owner_only(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("Failed to restrict `{}` to its owner", dir.display()))
}

#[cfg(not(unix))]
fn owner_only(_dir: &Path) -> Result<()> {
    Ok(())
}
