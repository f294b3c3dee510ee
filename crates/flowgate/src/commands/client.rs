//! `flowgate login`, `flowgate logout` and `flowgate whoami`: the CLI's
//! credential for a flowgate server, and what the server makes of it.

use std::collections::BTreeMap;
use std::io::Read as _;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::cli::ServerArg;
use crate::client::credentials::{self, Credentials};
use crate::client::{server_url, ServerClient};
use crate::exit::usage;
use crate::printer::Printer;

/// `GET /api/v1/whoami`, as the server answers it.
#[derive(Debug, Serialize, Deserialize)]
struct WhoAmI {
    subject: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claims: Option<BTreeMap<String, String>>,
    grants: Vec<String>,
}

pub async fn login(args: ServerArg, printer: Printer) -> Result<()> {
    let server = server_url(args.server)?;
    let mut token = String::new();
    std::io::stdin().read_to_string(&mut token).context("Failed to read the token from standard input")?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(usage(
            "No token on standard input: paste it, or pipe it in (`flowgate login --server URL < file`)",
        ));
    }
    // Checked before it is kept: a mistyped token is never stored.
    let me: WhoAmI = ServerClient::with_token(server.clone(), token.clone()).get("/whoami").await?;
    let path = credentials::path()?;
    let mut stored = Credentials::load(&path)?;
    stored.set(&server, &token);
    stored.save(&path)?;
    printer.result(&me, |out| {
        out.push_str(&format!(
            "Logged in to {server} as `{}` ({}); credential kept in {}\n",
            me.subject,
            grants(&me),
            path.display()
        ));
    })
}

pub async fn logout(args: ServerArg, printer: Printer) -> Result<()> {
    let server = server_url(args.server)?;
    let path = credentials::path()?;
    let mut stored = Credentials::load(&path)?;
    let removed = stored.remove(&server);
    if removed {
        stored.save(&path)?;
    }
    #[derive(Serialize)]
    struct LoggedOut<'a> {
        server: &'a str,
        removed: bool,
    }
    printer.result(&LoggedOut { server: &server, removed }, |out| {
        out.push_str(&if removed {
            format!("Forgot the credential for {server}\n")
        } else {
            format!("No credential was kept for {server}\n")
        });
    })
}

pub async fn whoami(args: ServerArg, printer: Printer) -> Result<()> {
    let client = ServerClient::connect(server_url(args.server)?).await?;
    let me: WhoAmI = client.get("/whoami").await?;
    printer.result(&me, |out| {
        out.push_str(&format!("subject  {}\n", me.subject));
        out.push_str(&format!("kind     {}\n", me.kind));
        if let Some(issuer) = &me.issuer {
            out.push_str(&format!("issuer   {issuer}\n"));
        }
        for (claim, value) in me.claims.iter().flatten() {
            out.push_str(&format!("claim    {claim} = {value}\n"));
        }
        out.push_str(&format!("grants   {}\n", grants(&me)));
    })
}

fn grants(me: &WhoAmI) -> String {
    if me.grants.is_empty() {
        "no grants".to_string()
    } else {
        me.grants.join(", ")
    }
}
