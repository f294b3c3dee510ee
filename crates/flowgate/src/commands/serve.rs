//! `flowgate serve` and `flowgate admin token ...`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use flowgate_config::EnvConfig;
use flowgate_core::{parse_duration, Grant};
use flowgate_ledger::{LedgerDatabase, LedgerUrl, TokenRecord};
use serde::Serialize;

use crate::cli::{LedgerArg, ServeArgs, TokenCommand, TokenCreateArgs, TokenRevokeArgs};
use crate::exit::usage;
use crate::printer::{table, Printer};
use crate::server::config::ServerConfig;
use crate::server::{self, AppState, OidcVerifier};

async fn open(ledger: &str, cwd: &Path) -> Result<LedgerDatabase> {
    let url: LedgerUrl = ledger.parse()?;
    Ok(LedgerDatabase::open(&url, cwd).await?)
}

/// The ledger an admin command names: `--ledger` (or FLOWGATE_SERVER_LEDGER),
/// else the `ledger =` of `--config FILE`.
async fn open_server_ledger(arg: &LedgerArg, cwd: &Path) -> Result<LedgerDatabase> {
    let from_config = match &arg.config {
        Some(path) => ServerConfig::load(&cwd.join(path))?.ledger,
        None => None,
    };
    let ledger = arg.ledger.clone().or(from_config).ok_or_else(|| {
        usage("No ledger: give --ledger URL, set FLOWGATE_SERVER_LEDGER, or --config FILE with `ledger =`")
    })?;
    open(&ledger, cwd).await
}

/// The largest bundle upload without `bundle_limit =`: 1 GiB, over ten times
/// the 20,000-file bench tree's bundle.
const DEFAULT_BUNDLE_LIMIT: u64 = 1 << 30;

/// Where `flowgate serve` listens without `--listen` or `listen =`.
const DEFAULT_LISTEN: &str = "127.0.0.1:8470";

pub async fn serve(cwd: &Path, args: ServeArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => ServerConfig::load(&cwd.join(path))?,
        None => ServerConfig::default(),
    };
    let ledger = args.ledger.or(config.ledger.clone()).ok_or_else(|| {
        usage("`flowgate serve` needs a ledger: --ledger URL, FLOWGATE_SERVER_LEDGER, or `ledger =` in --config FILE")
    })?;
    let listen = args.listen.or(config.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a socket address"));
    let access = config.access_rules().map_err(usage)?;
    let oidc = config.oidc.iter().cloned().map(OidcVerifier::new).collect();
    let artifacts = args.artifacts.or(config.artifacts.clone());
    if let Some(url) = &artifacts {
        // Checked now: a store that cannot be opened is a bad flag, not a failed request later.
        flowgate_store::ArtifactStore::open(url, cwd).map_err(|e| usage(format!("--artifacts: {e}")))?;
    }
    let protected = protected_envs(&config, artifacts.as_deref())?;
    // Read now: a webhook whose URL or key is missing is a usage error before anything is served.
    let hooks = server::notify::config::resolve(&config.webhooks, |name| std::env::var(name).ok()).map_err(usage)?;
    let delivery = server::notify::config::delivery(&config.notify).map_err(usage)?;
    let database = open(&ledger, cwd).await?;
    register_protected_projects(&ledger, cwd, &protected).await?;
    let database = Arc::new(database);
    let replica: Arc<str> = args.replica.unwrap_or_else(server::default_replica_name).into();
    let notifier = (!hooks.is_empty()).then(|| server::notify::Notifier {
        database: database.clone(),
        hooks: Arc::new(hooks),
        delivery,
        replica: replica.clone(),
    });
    let state = AppState {
        database,
        oidc: Arc::new(oidc),
        access: Arc::new(access),
        sso: config.sso.clone().map(Arc::new),
        artifacts,
        base_dir: cwd.to_path_buf(),
        bundle_limit: config.bundle_limit.unwrap_or(DEFAULT_BUNDLE_LIMIT),
        secure_cookies: !listen.ip().is_loopback(),
        protected: Arc::new(protected),
        replica,
        rollouts_changed: Arc::new(tokio::sync::Notify::new()),
    };
    server::serve(listen, state, notifier).await
}

/// Each project's protected envs, checked before the server starts: their
/// deployments pull bundles from the server's store, so one is needed, and
/// every Prefect credential they name must be in the server's environment.
fn protected_envs(config: &ServerConfig, artifacts: Option<&str>) -> Result<BTreeMap<String, Vec<EnvConfig>>> {
    let mut out = BTreeMap::new();
    for project in &config.protected {
        for env in &project.envs {
            if artifacts.is_none() {
                return Err(usage(format!(
                    "project `{}` has protected env `{}`, whose deployments pull bundles from this server's store: \
                     give one with --artifacts URL or `artifacts =`",
                    project.name, env.name
                )));
            }
            if let Some(auth) = &env.prefect_auth {
                if std::env::var(&auth.env).map_or(true, |v| v.is_empty()) {
                    return Err(usage(format!(
                        "the variable `{}` named by `prefect_auth` of protected env `{}` (project `{}`) is not set \
                         in the server's environment",
                        auth.env, env.name, project.name
                    )));
                }
            }
        }
        out.insert(project.name.to_string(), project.envs.clone());
    }
    Ok(out)
}

/// Puts each project the config protects envs of in the ledger (by name, with
/// no repository: the first checkout to claim it fills that in), so CI can
/// register its first build through the server without anyone opening the
/// ledger directly.
async fn register_protected_projects(
    ledger: &str,
    cwd: &Path,
    protected: &BTreeMap<String, Vec<EnvConfig>>,
) -> Result<()> {
    let url: LedgerUrl = ledger.parse()?;
    for project in protected.keys() {
        let claim = flowgate_ledger::ProjectClaim { name: project.parse()?, root_commit: None, remote: None };
        flowgate_ledger::open(&url, cwd, &claim).await?;
    }
    Ok(())
}

pub async fn token(cwd: &Path, command: TokenCommand, printer: Printer) -> Result<()> {
    match command {
        TokenCommand::Create(args) => create(cwd, args, printer).await,
        TokenCommand::List(ledger) => list(&open_server_ledger(&ledger, cwd).await?, printer).await,
        TokenCommand::Revoke(args) => revoke(cwd, args, printer).await,
    }
}

/// A token as printed: never its secret or its hash.
#[derive(Serialize)]
struct TokenView {
    name: String,
    grants: Vec<Grant>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        Self {
            name: t.name,
            grants: t.grants,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    view: TokenView,
    /// The secret, shown this once.
    token: String,
}

async fn create(cwd: &Path, args: TokenCreateArgs, printer: Printer) -> Result<()> {
    // Every value is checked before the ledger is opened.
    let grants = args
        .roles
        .iter()
        .map(|r| r.parse::<Grant>().map_err(|e| usage(format!("--role: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    if args.name.trim().is_empty() || args.name.chars().any(char::is_control) {
        return Err(usage(format!("--name `{}`: a token needs a printable, non-empty name", args.name.escape_debug())));
    }
    let now = Utc::now();
    let expires_at = match &args.expires {
        None => None,
        Some(text) => {
            let after = parse_duration(text)
                .ok_or_else(|| usage(format!("--expires `{text}` is not a duration (90s, 30m, 12h, 30d)")))?;
            let after = chrono::Duration::from_std(after).ok().filter(|d| !d.is_zero());
            Some(now + after.ok_or_else(|| usage(format!("--expires `{text}` must be more than zero")))?)
        }
    };
    let database = open_server_ledger(&args.ledger, cwd).await?;
    let secret = server::new_secret()?;
    let record = TokenRecord {
        name: args.name,
        secret_hash: server::secret_hash(&secret),
        grants,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    database.create_token(&record).await?;
    let created = Created { view: record.into(), token: secret };
    printer.result(&created, |out| {
        let grants: Vec<String> = created.view.grants.iter().map(ToString::to_string).collect();
        out.push_str(&format!("token `{}` created ({})\n", created.view.name, grants.join(", ")));
        out.push_str("its secret, shown only this once:\n");
        out.push_str(&created.token);
        out.push('\n');
    })
}

async fn list(database: &LedgerDatabase, printer: Printer) -> Result<()> {
    let tokens: Vec<TokenView> = database.tokens().await?.into_iter().map(TokenView::from).collect();
    printer.result(&tokens, |out| {
        let when = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or("-".into());
        let rows: Vec<Vec<String>> = tokens
            .iter()
            .map(|t| {
                let grants: Vec<String> = t.grants.iter().map(ToString::to_string).collect();
                vec![t.name.clone(), grants.join(","), when(t.expires_at), when(t.revoked_at)]
            })
            .collect();
        table(out, &["NAME", "GRANTS", "EXPIRES", "REVOKED"], &rows);
    })
}

async fn revoke(cwd: &Path, args: TokenRevokeArgs, printer: Printer) -> Result<()> {
    let database = open_server_ledger(&args.ledger, cwd).await?;
    let known = database.tokens().await?.into_iter().any(|t| t.name == args.name);
    if !known {
        return Err(usage(format!("no token named `{}` in this ledger", args.name)));
    }
    let revoked = database.revoke_token(&args.name, Utc::now()).await.context("revoke the token")?;
    let result = serde_json::json!({ "name": args.name, "revoked": revoked });
    printer.result(&result, |out| {
        if revoked {
            out.push_str(&format!("token `{}` revoked\n", args.name));
        } else {
            out.push_str(&format!("token `{}` was revoked already\n", args.name));
        }
    })
}
