//! The status benchmark: a project of many flows and envs whose ledger holds a
//! million releases, on SQLite (populated once and reused) and on PostgreSQL (a
//! fresh database per run, dropped afterwards); `flowgate status --json` is timed
//! against process start (`flowgate --version`), and through a `flowgate serve`
//! over the same ledger against itself in direct mode; the dashboard's matrix
//! page of the project is fetched with curl beside curl of the health check.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use flowgate_ledger::{Ledger, LedgerUrl, ProjectClaim};
use sqlx::Connection as _;

use crate::populate::{self, LedgerSpec};
use crate::report::{Row, Target};
use crate::served::Served;
use crate::timing::{self, Case, Plan};
use crate::Ctx;

/// Where the status project keeps its ledger.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres { server: String },
}

/// The status project's `[project] name`: the project its ledger is populated
/// for, so `flowgate status` in it sees the rows.
const PROJECT: &str = "status-bench";

/// Write a git project whose `flowgate.toml` lists the spec's flows and envs and
/// names `ledger_url`.
fn write_project(dir: &Path, spec: &LedgerSpec, ledger_url: &str) -> Result<()> {
    let mut toml = format!("[project]\nname = \"{PROJECT}\"\nledger = \"{ledger_url}\"\n");
    for flow in populate::flow_keys(spec.flows) {
        toml.push_str(&format!("\n[flows.{flow}]\nentrypoint = \"flows/f.py:f\"\n"));
    }
    for env in populate::env_names(spec.envs) {
        toml.push_str(&format!("\n[envs.{env}]\n"));
    }
    std::fs::create_dir_all(dir.join("flows")).with_context(|| format!("Failed to create `{}`", dir.display()))?;
    std::fs::write(dir.join("flowgate.toml"), toml).context("Failed to write the status project's `flowgate.toml`")?;
    std::fs::write(dir.join(".gitignore"), ".flowgate/\n")?;
    std::fs::write(dir.join("flows/f.py"), "from prefect import flow\n\n\n@flow\ndef f() -> None:\n    pass\n")?;
    crate::git::init_and_commit(dir, "Status benchmark project")
}

async fn open(url: &str, base: &Path) -> Result<Arc<dyn Ledger>> {
    let parsed: LedgerUrl = url.parse().with_context(|| format!("Invalid ledger URL `{url}`"))?;
    Ok(Arc::from(flowgate_ledger::open(&parsed, base, &ProjectClaim::named(PROJECT)).await?))
}

/// Run the status benchmark on one backend; returns its rows and a note on how
/// long population took.
pub async fn run(ctx: &Ctx, spec: LedgerSpec, backend: &Backend) -> Result<(Vec<Row>, String)> {
    match backend {
        Backend::Sqlite => {
            let name = format!("status-sqlite-{}x{}x{}", spec.flows, spec.envs, spec.revisions);
            let dir = ctx.work.join(&name);
            let marker = ctx.work.join(format!("{name}.complete"));
            let note = match std::fs::read_to_string(&marker) {
                Ok(note) if dir.join(".flowgate/ledger.db").exists() => {
                    format!("{} (reused from an earlier run)", note.trim())
                }
                _ => {
                    if dir.exists() {
                        std::fs::remove_dir_all(&dir)
                            .with_context(|| format!("Failed to remove `{}`", dir.display()))?;
                    }
                    write_project(&dir, &spec, "sqlite://.flowgate/ledger.db")?;
                    let ledger = open("sqlite://.flowgate/ledger.db", &dir).await?;
                    eprintln!("  populating SQLite with {} releases…", spec.releases());
                    let took = populate::populate(ledger, spec, 1, 10_000).await?;
                    let note = format!("SQLite: {} releases populated in {:.1} s", spec.releases(), took.as_secs_f64());
                    std::fs::write(&marker, &note)?;
                    note
                }
            };
            eprintln!("  {note}");
            Ok((measure(ctx, &dir, spec, "sqlite://.flowgate/ledger.db", "status (SQLite)")?, note))
        }
        Backend::Postgres { server } => {
            let db = format!("flowgate_bench_{}", std::process::id());
            let url = database_url(server, &db)?;
            admin(server, &format!("CREATE DATABASE {db}")).await?;
            let result: Result<(Vec<Row>, String)> = async {
                let dir = ctx.work.join("status-postgres");
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).with_context(|| format!("Failed to remove `{}`", dir.display()))?;
                }
                write_project(&dir, &spec, &url)?;
                let ledger = open(&url, &dir).await?;
                eprintln!("  populating PostgreSQL database `{db}` with {} releases…", spec.releases());
                let took = populate::populate(ledger, spec, ctx.pg_writers, 10_000).await?;
                let note = format!(
                    "PostgreSQL: {} releases populated in {:.1} s ({} writers)",
                    spec.releases(),
                    took.as_secs_f64(),
                    ctx.pg_writers
                );
                eprintln!("  {note}");
                Ok((measure(ctx, &dir, spec, &url, "status (PostgreSQL)")?, note))
            }
            .await;
            let dropped = admin(server, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
            let rows = result?;
            dropped?;
            Ok(rows)
        }
    }
}

fn measure(ctx: &Ctx, dir: &Path, spec: LedgerSpec, ledger: &str, name: &str) -> Result<Vec<Row>> {
    let served = Served::start(ctx, dir, ledger)?;
    let status = ["status", "--json"];
    verify(ctx.flowgate_in(dir, &status), spec)?;
    verify(served.flowgate_in(ctx, dir, &status), spec)?;
    let matrix_page = format!("/projects/{PROJECT}");
    verify_page(&timing::capture("curl the matrix page", served.curl(&matrix_page))?, spec)?;
    let t = timing::measure_interleaved(
        Plan { warmup: 2, runs: ctx.runs(15) },
        vec![
            Case::plain("flowgate status --json", || ctx.flowgate_in(dir, &status)),
            Case::plain("flowgate --version", || ctx.flowgate_in(dir, &["--version"])),
            Case::plain("flowgate status --json (server)", || served.flowgate_in(ctx, dir, &status)),
            Case::plain("curl the matrix page", || served.curl(&matrix_page)),
            Case::plain("curl /api/v1/health", || served.curl("/api/v1/health")),
        ],
    )?;
    Ok(vec![
        Row::new(name, &t[0], &t[1], Target::Absolute(Duration::from_millis(100))),
        Row::new(&format!("{name} through the server"), &t[2], &t[0], Target::Ratio(1.5)),
        Row::new(
            &format!("dashboard matrix page ({name})"),
            &t[3],
            &t[4],
            Target::Absolute(Duration::from_millis(150)),
        ),
    ])
}

/// A fast wrong page is no result either: every flow a row, every env a column.
fn verify_page(page: &str, spec: LedgerSpec) -> Result<()> {
    let rows = page.matches("<th class=\"flow\">").count();
    let cells = page.matches("<td class=\"cell\">").count();
    if rows != spec.flows || cells != spec.flows * spec.envs {
        bail!(
            "the matrix page showed {rows} flows and {cells} released cells, expected {} and {}",
            spec.flows,
            spec.flows * spec.envs
        );
    }
    Ok(())
}

/// A fast wrong answer is no result: check once that status shows every flow
/// with a release in every env.
fn verify(status: std::process::Command, spec: LedgerSpec) -> Result<()> {
    let out = timing::capture("flowgate status --json", status)?;
    let json: serde_json::Value =
        serde_json::from_str(&out).context("`flowgate status --json` printed no JSON document")?;
    let flows = json.get("flows").and_then(|f| f.as_array()).map_or(0, Vec::len);
    let cells = json.get("flows").and_then(|f| f.as_array()).map_or(0, |flows| {
        flows.iter().filter_map(|f| f.get("cells")?.as_array()).flatten().filter(|c| !c.is_null()).count()
    });
    if flows != spec.flows || cells != spec.flows * spec.envs {
        bail!(
            "`flowgate status --json` showed {flows} flows and {cells} released cells, expected {} and {}",
            spec.flows,
            spec.flows * spec.envs
        );
    }
    Ok(())
}

/// `server` with its database replaced by `db`.
pub fn database_url(server: &str, db: &str) -> Result<String> {
    let (scheme, rest) = server.split_once("://").with_context(|| format!("`{server}` is not a postgres:// URL"))?;
    let (authority, query) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.split_once('?').map(|(_, q)| q)),
        None => (rest.split('?').next().unwrap_or(rest), rest.split_once('?').map(|(_, q)| q)),
    };
    Ok(match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    })
}

pub async fn admin(server: &str, statement: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .with_context(|| format!("Failed to connect to PostgreSQL at `{}`", redact(server)))?;
    sqlx::query(statement).execute(&mut conn).await.with_context(|| format!("Failed to run `{statement}`"))?;
    conn.close().await.ok();
    Ok(())
}

fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(s, rest)| rest.split_once('@').map(|(user, host)| (s, user, host))) {
        Some((scheme, user, host)) if user.contains(':') => {
            format!("{scheme}://{}:***@{host}", user.split(':').next().unwrap_or(""))
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_only_the_database() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(database_url("postgres://u@h/db?sslmode=disable", "x").unwrap(), "postgres://u@h/x?sslmode=disable");
        assert_eq!(database_url("postgresql://u@h", "x").unwrap(), "postgresql://u@h/x");
        assert!(database_url("nope", "x").is_err());
    }

    #[test]
    fn redact_hides_a_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
