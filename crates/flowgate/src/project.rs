//! The project a command runs in: its root, its parsed `flowgate.toml`, and the
//! ledger, artifact store and environment that config and flags select.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use flowgate_config::{Config, SelectedEnv};
use flowgate_core::{EnvName, FlowKey};
use flowgate_ledger::{Ledger, LedgerUrl, ProjectClaim};
use flowgate_store::ArtifactStore;

use crate::exit::usage;
use crate::git::Repo;

/// Environment variables flowgate reads, each documented once here.
pub mod vars {
    /// The environment to act on when `--env` is not given.
    pub const ENV: &str = "FLOWGATE_ENV";
    /// Who is recorded as the actor of a move (default: git's user.email, else the login name).
    pub const ACTOR: &str = "FLOWGATE_ACTOR";
    /// The login name used for the personal env (default: USER, else USERNAME).
    pub const USER: &str = "FLOWGATE_USER";
    /// Where `flowgate pull` keeps unpacked bundles.
    pub const CACHE_DIR: &str = "FLOWGATE_CACHE_DIR";
    /// The ledger of `flowgate serve` and `flowgate admin` when `--ledger` is not given.
    pub const SERVER_LEDGER: &str = "FLOWGATE_SERVER_LEDGER";
    /// The flowgate server the client commands talk to (`login`, `whoami`; set,
    /// `build`, `history`, `builds`, `pins`, `approve`, `pin`, `release`,
    /// `promote`, `rollback`, `plan`, `sync` and `status` go through it).
    pub const SERVER: &str = "FLOWGATE_SERVER";
    /// The credential for that server; wins over what `flowgate login` stored.
    pub const TOKEN: &str = "FLOWGATE_TOKEN";
    /// A CI job's OpenID Connect ID token (GitLab CI: declared under `id_tokens:`).
    pub const ID_TOKEN: &str = "FLOWGATE_ID_TOKEN";
    /// The audience a GitHub Actions job asks its ID token for (default `flowgate`).
    pub const OIDC_AUDIENCE: &str = "FLOWGATE_OIDC_AUDIENCE";
    /// Registries `flowgate build` reaches over plain http when it pins images
    /// (`[project] pin_images`): comma-separated, `host` or `host:port`.
    /// Loopback registries (`127.0.0.1`, `localhost`) always are.
    pub const INSECURE_REGISTRIES: &str = "FLOWGATE_INSECURE_REGISTRIES";
}

pub const CONFIG_FILE: &str = "flowgate.toml";

#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub config: Config,
}

impl Project {
    /// Finds `flowgate.toml` in `start` or the nearest parent, and parses it.
    pub fn discover(start: &Path) -> Result<Self> {
        let root = find_root(start).ok_or_else(|| {
            usage(format!(
                "No `{CONFIG_FILE}` in `{}` or any parent directory; run `flowgate init` first",
                start.display()
            ))
        })?;
        let config = flowgate_config::load(&root.join(CONFIG_FILE))?;
        Ok(Self { root, config })
    }

    /// The ledger, scoped to this project: every read and write is of its rows.
    pub async fn ledger(&self) -> Result<Box<dyn Ledger>> {
        self.ledger_of(&self.claim()).await
    }

    /// The ledger scoped to the project `claim` names (`status --all-projects`).
    pub async fn ledger_of(&self, claim: &ProjectClaim) -> Result<Box<dyn Ledger>> {
        let url: LedgerUrl = self.config.project.ledger.parse()?;
        Ok(flowgate_ledger::open(&url, &self.root, claim).await?)
    }

    /// This project as the ledger knows it: its name and, inside a git
    /// repository, the repository's root commit and `origin` remote, which tell
    /// two repositories that chose the same project name apart.
    pub fn claim(&self) -> ProjectClaim {
        let repo = Repo::discover(&self.root).ok();
        ProjectClaim {
            name: self.config.project_name().clone(),
            root_commit: repo.as_ref().and_then(Repo::root_commit),
            remote: repo.as_ref().and_then(Repo::origin_remote),
        }
    }

    pub fn store(&self) -> Result<ArtifactStore> {
        Ok(ArtifactStore::open(&self.config.project.artifacts, &self.root)?)
    }

    /// The env of a command that acts on one: `--env`, else FLOWGATE_ENV, else
    /// the personal dev env of this user.
    pub fn select_env(&self, flag: Option<&str>) -> Result<SelectedEnv> {
        let variable = std::env::var(vars::ENV).ok().filter(|v| !v.is_empty());
        Ok(flowgate_config::select_env(flag, variable.as_deref(), &self.config, &user_name())?)
    }

    /// An env named on the command line where no default applies (`promote --from`).
    pub fn named_env(&self, name: &str) -> Result<EnvName> {
        Ok(self.select_env(Some(name))?.ledger_name)
    }

    /// The env whose history is read: a configured one, or a preview env
    /// (`preview-…`, not in the config), whose history outlives it.
    pub fn history_env(&self, flag: Option<&str>) -> Result<EnvName> {
        match flag {
            Some(name) if name.starts_with("preview-") && self.config.env(name).is_none() => {
                name.parse().map_err(|e| usage(format!("--env `{name}`: {e}")))
            }
            _ => Ok(self.select_env(flag)?.ledger_name),
        }
    }

    /// The configured flows among `names`, or an error naming the first unknown one.
    pub fn flows(&self, names: &[String]) -> Result<Vec<FlowKey>> {
        names
            .iter()
            .map(|name| {
                let key: FlowKey = name.parse()?;
                if self.config.flow(&key).is_none() {
                    let known: Vec<String> = self.config.flows().map(|(k, _)| k.to_string()).collect();
                    return Err(usage(format!(
                        "Unknown flow `{name}`; flows in `{CONFIG_FILE}`: {}",
                        known.join(", ")
                    )));
                }
                Ok(key)
            })
            .collect()
    }

    pub fn all_flows(&self) -> Vec<FlowKey> {
        self.config.flows().map(|(k, _)| k.clone()).collect()
    }
}

fn find_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| dir.join(CONFIG_FILE).is_file()).map(Path::to_path_buf)
}

/// The login name: FLOWGATE_USER, USER, LOGNAME, USERNAME, else what `id -un`
/// says (containers often set none of the variables), else "unknown".
pub fn user_name() -> String {
    [vars::USER, "USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            let output = std::process::Command::new("id").arg("-un").output().ok()?;
            let name = String::from_utf8(output.stdout).ok()?.trim().to_string();
            (output.status.success() && !name.is_empty()).then_some(name)
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Who a move is recorded as: FLOWGATE_ACTOR, else git's user.email, else the login name.
pub fn actor(root: &Path) -> String {
    if let Ok(actor) = std::env::var(vars::ACTOR) {
        if !actor.is_empty() {
            return actor;
        }
    }
    std::process::Command::new("git")
        .current_dir(root)
        .args(["config", "user.email"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(user_name)
}

/// The working directory of the command: `-C DIR` or the current one.
pub fn working_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("Failed to read the current directory")?;
    Ok(match flag {
        Some(dir) => cwd.join(dir),
        None => cwd,
    })
}
