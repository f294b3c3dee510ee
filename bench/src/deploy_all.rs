//! Issue 17, benchmark 1: deploying every flow, flowgate beside `prefect
//! --no-prompt deploy --all` of the equivalent `prefect.yaml`, against the
//! same real Prefect 3.9.1 server, at 50 and 200 flows, with the server on
//! SQLite and on PostgreSQL (a new database on the bench's PostgreSQL).
//!
//! Each round, on each side:
//! - **create**: a commit changing every flow, then flowgate `build` +
//!   `release --all` to an env no deployment exists in yet (its own name
//!   prefix), beside `prefect deploy --all` of a `prefect.yaml` whose names
//!   are new too: every deployment is created;
//! - **update**: another commit changing every flow, then `build` + `release
//!   --all` to the same env, beside `prefect deploy --all` of the same names:
//!   every deployment is updated;
//! - **re-release**: `release --all` of the same build again, which must send
//!   no write (counted by a proxy in front of the server); no baseline runs
//!   for it (`prefect deploy --all` has no such case: it rewrites everything
//!   every time), so its row shows the update's `prefect deploy` for scale.
//!
//! flowgate talks to the server through the counting proxy, `prefect deploy`
//! directly. The server is left alone for a few seconds after each `prefect
//! deploy` (it goes on storing the deploy's events), so each flowgate run
//! meets a server that settled, as a team's release does.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::changed_release::prefect::{self, PrefectServer};
use crate::changed_release::proxy::CountingProxy;
use crate::changed_release::{
    count_deployments, entrypoint, flow_file, flow_key, flow_source, flows_in, timed, write_flows,
};
use crate::changed_release::{not_2xx, summarize};
use crate::report::{Row, Target};
use crate::status::{admin, database_url};
use crate::timing::{fmt_duration, Timing};
use crate::Ctx;

const PROJECT: &str = "deploy-all-bench";
const POOL: &str = "bench-pool";
/// flowgate's time at most this share of `prefect deploy --all`'s.
const CREATE_RATIO: f64 = 1.0 / 10.0;
const UPDATE_RATIO: f64 = 1.0 / 15.0;
const RERELEASE_TARGET: Duration = Duration::from_millis(200);
/// How long the server is left alone after each `prefect deploy --all`.
const SETTLE: Duration = Duration::from_secs(10);

/// Where the Prefect server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    fn name(self) -> &'static str {
        match self {
            Database::Sqlite => "SQLite",
            Database::Postgres => "PostgreSQL",
        }
    }
}

/// flowgate's env of round `round`: a name prefix of its own, so its release creates.
fn env(round: usize) -> String {
    format!("round-{round}")
}

fn flowgate_toml(flows: usize, rounds: usize, api_url: &str) -> String {
    let mut toml = format!(
        "[project]\nname = \"{PROJECT}\"\nledger = \"sqlite://.flowgate/ledger.db\"\n\
         artifacts = \"file://.flowgate/artifacts\"\n"
    );
    for i in 0..flows {
        let _ = write!(toml, "\n[flows.{}]\nentrypoint = \"{}\"\nwork_pool = \"{POOL}\"\n", flow_key(i), entrypoint(i));
    }
    for round in 0..rounds {
        let _ =
            write!(toml, "\n[envs.{}]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"fg{round}-\"\n", env(round));
    }
    toml
}

/// The same deployments for `prefect deploy --all`, named `pf<round>-<flow>`.
fn prefect_yaml(flows: usize, round: usize, dir: &Path) -> String {
    let mut yaml = format!(
        "name: {PROJECT}\nprefect-version: 3.9.1\n\nbuild: null\npush: null\n\npull:\n  \
         - prefect.deployments.steps.set_working_directory:\n      directory: \"{}\"\n\ndeployments:\n",
        dir.display()
    );
    for i in 0..flows {
        let _ = write!(
            yaml,
            "  - name: pf{round}-{}\n    entrypoint: {}\n    work_pool:\n      name: {POOL}\n",
            flow_key(i),
            entrypoint(i)
        );
    }
    yaml
}

/// Commits a new revision of every flow in `dir` (and `extra` files).
fn change_every_flow(dir: &Path, flows: usize, revision: usize, extra: &[(&str, String)]) -> Result<()> {
    for i in 0..flows {
        std::fs::write(dir.join(flow_file(i)), flow_source(i, revision))?;
    }
    for (path, text) in extra {
        std::fs::write(dir.join(path), text)?;
    }
    crate::git::run(dir, &["commit", "-q", "-a", "-m", &format!("revision {revision} of every flow")])?;
    Ok(())
}

/// The three timings of one side-by-side scenario, with what the runs showed.
struct Scenario {
    create: (Timing, Timing),
    update: (Timing, Timing),
    rerelease: Timing,
    rerelease_writes: Vec<usize>,
    notes: Vec<String>,
}

/// One server (on `database`), `flows` flows, `runs` rounds.
fn scenario(ctx: &Ctx, base: &Path, database: Option<&str>, flows: usize, runs: usize) -> Result<Scenario> {
    let bin = prefect::prefect_bin()?;
    if base.exists() {
        std::fs::remove_dir_all(base).with_context(|| format!("Failed to remove `{}`", base.display()))?;
    }
    let (fg_dir, pf_dir, client_home) = (base.join("flowgate"), base.join("prefect"), base.join("prefect-client"));
    std::fs::create_dir_all(&client_home)?;
    let server = PrefectServer::start_on(&bin, &base.join("server"), database)?;
    let proxy = CountingProxy::start(&server.address()).context("Failed to start the counting proxy")?;
    let proxied_api = format!("{}/api", proxy.url());

    write_flows(&fg_dir, flows)?;
    std::fs::write(fg_dir.join("flowgate.toml"), flowgate_toml(flows, runs, &proxied_api))?;
    crate::git::init_and_commit(&fg_dir, "Deploy-all benchmark: flowgate side")?;
    write_flows(&pf_dir, flows)?;
    std::fs::write(pf_dir.join("prefect.yaml"), prefect_yaml(flows, 0, &pf_dir))?;
    crate::git::init_and_commit(&pf_dir, "Deploy-all benchmark: prefect.yaml side")?;
    // Untimed: flowgate's first build fills its caches, as on a developer's machine.
    crate::timing::capture("flowgate build", ctx.flowgate_in(&fg_dir, &["build", "-q"]))?;

    let deploy = || prefect::cli(&bin, &client_home, &server.api_url(), &pf_dir, &["--no-prompt", "deploy", "--all"]);
    let timing = |label: &str| Timing { label: label.to_string(), samples: vec![] };
    let mut s = Scenario {
        create: (timing("flowgate build + release --all"), timing("prefect --no-prompt deploy --all")),
        update: (timing("flowgate build + release --all"), timing("prefect --no-prompt deploy --all")),
        rerelease: timing("flowgate release --all (same build)"),
        rerelease_writes: vec![],
        notes: vec![],
    };
    let mut flowgate_requests = Vec::new();
    for round in 0..runs {
        let env = env(round);
        let release = |extra: &[&str]| {
            let mut args = vec!["release", "--all", "--env", env.as_str(), "--build", "HEAD", "--json"];
            args.extend_from_slice(extra);
            ctx.flowgate_in(&fg_dir, &args)
        };
        let build_and_release = |extra: &[&str]| -> Result<(Duration, Value)> {
            let (built, _) = timed("flowgate build", ctx.flowgate_in(&fg_dir, &["build", "-q"]), false)?;
            let (released, out) = timed("flowgate release --all", release(extra), true)?;
            let answer: Value = serde_json::from_str(&out).context("`flowgate release --json` printed no JSON")?;
            let moved = flows_in(&answer, "moves").len();
            if moved != flows {
                bail!("round {round}: release moved {moved} flows, not all {flows}: {out}");
            }
            Ok((built + released, answer))
        };

        // Create: new names on both sides.
        change_every_flow(&fg_dir, flows, 2 * round + 1, &[])?;
        let yaml = prefect_yaml(flows, round, &pf_dir);
        change_every_flow(&pf_dir, flows, 2 * round + 1, &[("prefect.yaml", yaml)])?;
        proxy.take();
        let (fg_create, _) = build_and_release(&["--create-work-pools"])?;
        flowgate_requests.extend(proxy.take());
        let (pf_create, _) = timed("prefect deploy --all", deploy(), false)?;
        std::thread::sleep(SETTLE);
        for prefix in [format!("fg{round}-"), format!("pf{round}-")] {
            let found = count_deployments(&server, &prefix)?;
            if found != flows as u64 {
                bail!("round {round}: the server holds {found} `{prefix}*` deployments after the creates, not {flows}");
            }
        }

        // Update: every flow changed again, same names.
        change_every_flow(&fg_dir, flows, 2 * round + 2, &[])?;
        change_every_flow(&pf_dir, flows, 2 * round + 2, &[])?;
        let (fg_update, _) = build_and_release(&[])?;
        flowgate_requests.extend(proxy.take());
        let (pf_update, _) = timed("prefect deploy --all", deploy(), false)?;
        std::thread::sleep(SETTLE);

        // Re-release of the same build: nothing to write.
        let (again, out) = timed("flowgate release --all", release(&[]), true)?;
        let requests = proxy.take();
        let writes = requests.iter().filter(|r| r.writes()).count();
        let answer: Value = serde_json::from_str(&out).context("`flowgate release --json` printed no JSON")?;
        if !flows_in(&answer, "moves").is_empty() {
            bail!("round {round}: releasing the same build again moved flows: {out}");
        }
        eprintln!(
            "    round {round}: create flowgate {} / prefect {}; update flowgate {} / prefect {}; \
             re-release {} ({} requests, {writes} writes)",
            fmt_duration(fg_create),
            fmt_duration(pf_create),
            fmt_duration(fg_update),
            fmt_duration(pf_update),
            fmt_duration(again),
            requests.len()
        );
        s.create.0.samples.push(fg_create);
        s.create.1.samples.push(pf_create);
        s.update.0.samples.push(fg_update);
        s.update.1.samples.push(pf_update);
        s.rerelease.samples.push(again);
        s.rerelease_writes.push(writes);
    }
    let writes = flowgate_requests.iter().filter(|r| r.writes()).count();
    s.notes.push(format!(
        "flowgate's creates and updates sent {writes} writes for {} deployments ({}); answers other than 2xx: {}",
        2 * flows * runs,
        summarize(flowgate_requests.iter().filter(|r| r.writes())),
        not_2xx(&flowgate_requests)
    ));
    Ok(s)
}

/// A database for one PostgreSQL-backed Prefect server, dropped afterwards.
async fn with_postgres<T>(server: &str, name: &str, work: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    admin(server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    admin(server, &format!("CREATE DATABASE {name}")).await?;
    let url = database_url(server, name)?;
    let url = format!("postgresql+asyncpg://{}", url.split_once("://").map_or(url.as_str(), |(_, rest)| rest));
    let result = work(&url);
    let dropped = admin(server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    let value = result?;
    dropped?;
    Ok(value)
}

/// Runs every scenario: rows and notes.
pub async fn run(ctx: &Ctx, postgres: &str) -> Result<(Vec<Row>, Vec<String>)> {
    let sizes: &[usize] = if ctx.quick { &[10] } else { &[50, 200] };
    let runs = ctx.runs(3);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for database in [Database::Sqlite, Database::Postgres] {
        for &flows in sizes {
            eprintln!("  {flows} flows, Prefect on {} ({runs} rounds)…", database.name());
            let base = ctx.work.join("deploy-all").join(format!("{}-{flows}", database.name().to_lowercase()));
            let s = match database {
                Database::Sqlite => scenario(ctx, &base, None, flows, runs)?,
                Database::Postgres => {
                    let name = format!("flowgate_bench_prefect_{flows}");
                    with_postgres(postgres, &name, |url| scenario(ctx, &base, Some(url), flows, runs)).await?
                }
            };
            let what = format!("{flows} flows, Prefect on {}", database.name());
            rows.push(Row::new(&format!("create, {what}"), &s.create.0, &s.create.1, Target::Ratio(CREATE_RATIO)));
            rows.push(Row::new(
                &format!("update after a commit changing every flow, {what}"),
                &s.update.0,
                &s.update.1,
                Target::Ratio(UPDATE_RATIO),
            ));
            let zero = s.rerelease_writes.iter().all(|&w| w == 0);
            rows.push(Row::new(
                &format!("re-release of the same build, {what} (zero writes: {})", if zero { "yes" } else { "NO" }),
                &s.rerelease,
                &s.update.1,
                Target::Absolute(RERELEASE_TARGET),
            ));
            for (side, (fg, pf)) in [("create", &s.create), ("update", &s.update)] {
                notes.push(format!(
                    "deploy all, {what}, {side}: `{}` median {}; `{}` median {}; {:.1}× faster",
                    fg.label,
                    fg.spread(),
                    pf.label,
                    pf.spread(),
                    pf.median().as_secs_f64() / fg.median().as_secs_f64().max(1e-9)
                ));
            }
            notes.push(format!(
                "deploy all, {what}, re-release: median {}; writes per round {:?}",
                s.rerelease.spread(),
                s.rerelease_writes
            ));
            notes.extend(s.notes.into_iter().map(|n| format!("deploy all, {what}: {n}")));
        }
    }
    Ok((rows, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_has_an_env_and_a_prefect_yaml_of_its_own_names() {
        let toml = flowgate_toml(2, 3, "http://127.0.0.1:1/api");
        for round in 0..3 {
            assert!(toml.contains(&format!("[envs.round-{round}]")), "{toml}");
            assert!(toml.contains(&format!("name_prefix = \"fg{round}-\"")), "{toml}");
        }
        let yaml = prefect_yaml(2, 1, Path::new("/p"));
        assert!(yaml.contains("  - name: pf1-flow-000\n") && yaml.contains("  - name: pf1-flow-001\n"), "{yaml}");
        assert_eq!(yaml.matches("name: bench-pool").count(), 2, "{yaml}");
    }
}
