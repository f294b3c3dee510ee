//! A `flowgate serve` over a benchmark's ledger, with a token: the status
//! benchmark times `flowgate status --json` through it beside the same command
//! in direct mode, and the load benchmark runs two replicas.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _, Result};

use crate::timing;
use crate::Ctx;

/// A running server, stopped when dropped.
pub struct Served {
    child: Child,
    pub url: String,
    pub token: String,
}

impl Served {
    /// `flowgate serve --ledger LEDGER` on a free loopback port, run in `dir`
    /// (where a relative SQLite URL points), and a new viewer token for it.
    pub fn start(ctx: &Ctx, dir: &Path, ledger: &str) -> Result<Self> {
        let token = create_token(ctx, dir, ledger, "viewer")?;
        Self::start_with(ctx, dir, &["--ledger", ledger], token)
    }

    /// `flowgate serve ARGS` on a free loopback port, run in `dir`, whose
    /// callers use `token`.
    pub fn start_with(ctx: &Ctx, dir: &Path, args: &[&str], token: String) -> Result<Self> {
        let mut child = ctx
            .flowgate_in(dir, &[&["serve", "--listen", "127.0.0.1:0"], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("Failed to start `flowgate serve`")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let Some(address) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("`flowgate serve` printed `{}` instead of its address", line.trim());
        };
        Ok(Self { url: address.to_string(), token, child })
    }

    /// `curl PATH` of this server with its token, failing on an error status.
    pub fn curl(&self, path: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--fail",
            "-H",
            &format!("Authorization: Bearer {}", self.token),
            &format!("{}{path}", self.url),
        ]);
        cmd
    }

    /// `flowgate ARGS` in `dir`, through this server.
    pub fn flowgate_in(&self, ctx: &Ctx, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = ctx.flowgate_in(dir, args);
        cmd.env("FLOWGATE_SERVER", &self.url).env("FLOWGATE_TOKEN", &self.token);
        cmd
    }
}

/// A new token with `role` on every env, made with `flowgate admin token create`.
pub fn create_token(ctx: &Ctx, dir: &Path, ledger: &str, role: &str) -> Result<String> {
    let name = format!("bench-{role}-{}", std::process::id());
    let args = ["admin", "token", "create", "--name", &name, "--role", role, "--ledger", ledger, "--json"];
    let created = timing::capture("flowgate admin token create", ctx.flowgate_in(dir, &args))?;
    let created: serde_json::Value = serde_json::from_str(&created).context("the token command printed no JSON")?;
    Ok(created["token"].as_str().context("the token command printed no `token`")?.to_string())
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
