//! `flowgate serve` and `flowgate admin`: the server and what its operator
//! runs where the server's ledger is reachable. Neither needs a project.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::project::vars;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (default 127.0.0.1:8470); port 0 lets the system choose (the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The ledger the server serves every project of: `postgres://...`, or `sqlite://PATH` for a single node.
    #[arg(long, value_name = "URL", env = vars::SERVER_LEDGER)]
    pub ledger: Option<String>,
    /// The artifact store builds are registered into (each project under ARTIFACTS/PROJECT).
    #[arg(long, value_name = "URL")]
    pub artifacts: Option<String>,
    /// The server's TOML config: ledger, address, artifact store, OpenID Connect issuers and access rules. Flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This replica's name in the leases replicas sharing a ledger take on driving rollouts (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    pub replica: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// API tokens of a flowgate server.
    #[command(subcommand)]
    #[command(after_help = r#"Examples:
  flowgate admin token create --name ci --role releaser:qa --expires 90d --ledger postgres://db/fg
  flowgate admin token list --ledger postgres://db/fg
  flowgate admin token revoke ci --ledger postgres://db/fg"#)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once (under `token` with --json) and only its hash is kept.
    #[command(after_help = r#"Examples:
  flowgate admin token create --name alice --role viewer --ledger sqlite://server.db
  flowgate admin token create --name ci --role releaser:qa --role viewer --expires 30d --json"#)]
    Create(TokenCreateArgs),
    /// List tokens (names, grants, expiry, revocation; never secrets).
    #[command(after_help = r#"Examples:
  flowgate admin token list --ledger sqlite://server.db --json"#)]
    List(LedgerArg),
    /// Revoke a token: requests carrying it are refused from now on; its name stays taken.
    #[command(after_help = r#"Examples:
  flowgate admin token revoke ci --ledger sqlite://server.db"#)]
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct LedgerArg {
    /// The server's ledger (else the `ledger =` of --config).
    #[arg(long, value_name = "URL", env = vars::SERVER_LEDGER)]
    pub ledger: Option<String>,
    /// The server's TOML config, whose `ledger =` names the ledger.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A name for the token, unique in the ledger (it names the identity in the audit).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// A role, on every env or on one: viewer, releaser, approver, admin, or ROLE:ENV. Repeat for several.
    #[arg(long = "role", value_name = "ROLE[:ENV]", required = true)]
    pub roles: Vec<String>,
    /// The token stops working after this long (90s, 30m, 12h, 30d); without it, it works until revoked.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    #[command(flatten)]
    pub ledger: LedgerArg,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub ledger: LedgerArg,
}

#[derive(Debug, Args)]
pub struct ServerArg {
    /// The flowgate server's URL.
    #[arg(long, value_name = "URL", env = vars::SERVER)]
    pub server: Option<String>,
}
