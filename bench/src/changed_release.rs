//! Issue 16, benchmark 2: after a commit that changes one of 200 flows,
//! `flowgate release --all` against a real Prefect server moves that flow only
//! and sends exactly one write; `prefect deploy --all` of the equivalent
//! `prefect.yaml` (which redeploys all 200) is timed beside it in the same
//! rounds.
//!
//! One Prefect 3.9.1 server (SQLite, `PREFECT_HOME` under the work directory)
//! holds both sides' deployments of the same flows in the same work pool:
//! flowgate's are named `fg-<flow>`, the `prefect.yaml` ones `pf-<flow>`, so
//! neither tool touches the other's. flowgate talks to the server through a
//! counting proxy (every timed run is counted, and pays the proxy's few
//! hundred microseconds a request); `prefect deploy` talks to it directly,
//! except in its warm-up round, which is counted through the proxy too.

pub(crate) mod prefect;
pub(crate) mod proxy;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use self::prefect::PrefectServer;
use self::proxy::{CountingProxy, Logged};
use crate::report::{Row, Target};
use crate::timing::{fmt_duration, Timing};
use crate::Ctx;

const PROJECT: &str = "changed-release-bench";
const ENV: &str = "qa";
const POOL: &str = "bench-pool";
/// What one changed flow may cost, release and sync included.
const TARGET: Duration = Duration::from_millis(500);

/// How long the server is left alone after `prefect deploy --all` before the
/// next round's timed release.
const SETTLE: Duration = Duration::from_secs(10);
/// Consecutive rounds change flows this far apart (coprime with 200 and 20,
/// so no flow is changed twice before every flow has been).
const STRIDE: usize = 37;

/// `flow-007`: the flow key, the Prefect flow name and (prefixed) the deployment name.
pub(crate) fn flow_key(i: usize) -> String {
    format!("flow-{i:03}")
}

pub(crate) fn flow_file(i: usize) -> String {
    format!("flows/flow_{i:03}.py")
}

pub(crate) fn entrypoint(i: usize) -> String {
    format!("{}:flow_{i:03}", flow_file(i))
}

/// One flow's module at `revision`: a quarter import `lib.common`, a quarter
/// `lib.io`, the rest only Prefect.
pub(crate) fn flow_source(i: usize, revision: usize) -> String {
    let import = match i % 4 {
        0 => "from lib.common import RETRIES\n",
        1 => "from lib import io as bench_io\n",
        _ => "",
    };
    let body = match i % 4 {
        0 => "return days * RETRIES + REVISION",
        1 => "return len(bench_io.describe(label)) + days + REVISION",
        _ => "return days + REVISION",
    };
    format!(
        "\"\"\"Flow {i} of the changed-release benchmark.\"\"\"\n\nfrom prefect import flow\n{import}\n\
         REVISION = {revision}\n\n\n@flow(name=\"{key}\")\ndef flow_{i:03}(days: int = 1, label: str = \"{key}\") -> int:\n    \
         {body}\n",
        key = flow_key(i)
    )
}

/// The flows, their shared modules and `.gitignore` (same for both sides).
pub(crate) fn write_flows(dir: &Path, flows: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("flows"))?;
    std::fs::create_dir_all(dir.join("lib"))?;
    std::fs::write(dir.join(".gitignore"), ".flowgate/\n")?;
    std::fs::write(dir.join("lib/__init__.py"), "")?;
    std::fs::write(dir.join("lib/common.py"), "RETRIES = 2\n")?;
    std::fs::write(dir.join("lib/io.py"), "def describe(label: str) -> str:\n    return f\"<{label}>\"\n")?;
    for i in 0..flows {
        std::fs::write(dir.join(flow_file(i)), flow_source(i, 0))?;
    }
    Ok(())
}

fn flowgate_toml(flows: usize, api_url: &str) -> String {
    let mut toml = format!(
        "[project]\nname = \"{PROJECT}\"\nledger = \"sqlite://.flowgate/ledger.db\"\n\
         artifacts = \"file://.flowgate/artifacts\"\n"
    );
    for i in 0..flows {
        let _ = write!(toml, "\n[flows.{}]\nentrypoint = \"{}\"\nwork_pool = \"{POOL}\"\n", flow_key(i), entrypoint(i));
    }
    let _ = write!(toml, "\n[envs.{ENV}]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"fg-\"\n");
    toml
}

/// The same deployments for `prefect deploy --all`: same flows, entrypoints and
/// work pool, `pf-` names, a pull step that only sets the working directory.
fn prefect_yaml(flows: usize, dir: &Path) -> String {
    let mut yaml = format!(
        "name: {PROJECT}\nprefect-version: 3.9.1\n\nbuild: null\npush: null\n\npull:\n  \
         - prefect.deployments.steps.set_working_directory:\n      directory: \"{}\"\n\ndeployments:\n",
        dir.display()
    );
    for i in 0..flows {
        let _ = write!(
            yaml,
            "  - name: pf-{}\n    entrypoint: {}\n    work_pool:\n      name: {POOL}\n",
            flow_key(i),
            entrypoint(i)
        );
    }
    yaml
}

/// Which flow round `round` changes (warm-up rounds included).
fn changed_flow(round: usize, flows: usize) -> usize {
    (round * STRIDE + 11) % flows
}

/// Commit a new revision of flow `i` in `dir`.
fn commit_change(dir: &Path, i: usize, revision: usize) -> Result<()> {
    std::fs::write(dir.join(flow_file(i)), flow_source(i, revision))?;
    crate::git::run(dir, &["commit", "-q", "-a", "-m", &format!("change {} (revision {revision})", flow_key(i))])?;
    Ok(())
}

/// Runs `cmd` once, timed; its stdout when `capture`, else /dev/null.
pub(crate) fn timed(label: &str, mut cmd: Command, capture: bool) -> Result<(Duration, String)> {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    cmd.stdout(if capture { Stdio::piped() } else { Stdio::null() });
    let start = Instant::now();
    let output = cmd.output().with_context(|| format!("Failed to start `{label}`"))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!("`{label}` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok((elapsed, String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// The flow keys under `key` (`moves` or `unchanged`) of `release --json`.
pub(crate) fn flows_in(answer: &Value, key: &str) -> Vec<String> {
    answer[key]
        .as_array()
        .map_or_else(Vec::new, |all| all.iter().filter_map(|m| m["flow"].as_str().map(str::to_string)).collect())
}

/// What one flowgate round did, checked.
#[derive(Debug)]
struct Round {
    flow: String,
    moved: Vec<String>,
    unchanged: usize,
    /// Writes flowgate itself counted (`sync.writes`).
    reported_writes: u64,
    requests: Vec<Logged>,
}

impl Round {
    fn writes(&self) -> Vec<&Logged> {
        self.requests.iter().filter(|r| r.writes()).collect()
    }
}

/// `PATCH /api/deployments/{id}`: ids out (a segment that is or ends in a
/// UUID, as `prefect.deployment.<uuid>`), so requests group by kind.
fn kind(request: &Logged) -> String {
    let path = request.path.split('?').next().unwrap_or("");
    let segments: Vec<String> = path
        .split('/')
        .map(|s| {
            let tail = s.len().checked_sub(36).and_then(|at| s.get(at..)).unwrap_or("");
            let uuid = tail.chars().enumerate().all(|(n, c)| {
                if [8, 13, 18, 23].contains(&n) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
            if !tail.is_empty() && uuid {
                format!("{}{{id}}", &s[..s.len() - 36])
            } else {
                s.to_string()
            }
        })
        .collect();
    format!("{} {}", request.method, segments.join("/"))
}

/// `3 × POST /api/flows/, 1 × GET …`: requests counted by kind.
pub(crate) fn summarize<'a>(requests: impl IntoIterator<Item = &'a Logged>) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for request in requests {
        *kinds.entry(kind(request)).or_default() += 1;
    }
    if kinds.is_empty() {
        return "none".to_string();
    }
    kinds.into_iter().map(|(k, n)| format!("{n} × `{k}`")).collect::<Vec<_>>().join(", ")
}

/// `none`, or the requests answered other than 2xx (a 503 retried, say),
/// counted by kind and status.
pub(crate) fn not_2xx(requests: &[Logged]) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in requests.iter().filter(|r| !(200..300).contains(&r.status)) {
        *kinds.entry(format!("`{}` → {}", kind(r), r.status)).or_default() += 1;
    }
    if kinds.is_empty() {
        return "none".to_string();
    }
    kinds.into_iter().map(|(k, n)| format!("{n} × {k}")).collect::<Vec<_>>().join(", ")
}

/// The verdict by the README's rule: met only if the median meets the target
/// and no run crosses it; a median over it misses; in between is noise.
fn verdict(t: &Timing, limit: Duration) -> String {
    let (median, min, max) = (fmt_duration(t.median()), fmt_duration(t.min()), fmt_duration(t.max()));
    if t.max() <= limit {
        format!("met: the slowest run ({max}) is under")
    } else if t.median() <= limit {
        format!("within noise: median {median} is under, the slowest run ({max}) is over")
    } else if t.min() <= limit {
        format!("missed: median {median} is over (the fastest run, {min}, is under)")
    } else {
        format!("missed: even the fastest run ({min}) is over")
    }
}

/// How many deployments whose name contains `prefix` the server holds (`like_`
/// is a case-insensitive substring match).
pub(crate) fn count_deployments(server: &PrefectServer, prefix: &str) -> Result<u64> {
    let body = json!({ "deployments": { "name": { "like_": prefix } } });
    let answer = server.post("/deployments/count", &body)?;
    answer.as_u64().with_context(|| format!("`POST /deployments/count` answered `{answer}`"))
}

/// Run the benchmark: rows and notes.
pub fn run(ctx: &Ctx) -> Result<(Vec<Row>, Vec<String>)> {
    let bin = prefect::prefect_bin()?;
    let flows = if ctx.quick { 20 } else { 200 };
    let runs = ctx.runs(7);
    let warmup = 1;
    let base = ctx.work.join("changed-release");
    if base.exists() {
        std::fs::remove_dir_all(&base).with_context(|| format!("Failed to remove `{}`", base.display()))?;
    }
    let (fg_dir, pf_dir, client_home) = (base.join("flowgate"), base.join("prefect"), base.join("prefect-client"));
    std::fs::create_dir_all(&client_home)?;

    eprintln!("  starting a Prefect server (PREFECT_HOME {})…", base.join("server").display());
    let started = Instant::now();
    let server = PrefectServer::start(&bin, &base.join("server"))?;
    let server_start = started.elapsed();
    let proxy = CountingProxy::start(&server.address()).context("Failed to start the counting proxy")?;
    let proxied_api = format!("{}/api", proxy.url());

    write_flows(&fg_dir, flows)?;
    std::fs::write(fg_dir.join("flowgate.toml"), flowgate_toml(flows, &proxied_api))?;
    crate::git::init_and_commit(&fg_dir, "Changed-release benchmark: flowgate side")?;
    write_flows(&pf_dir, flows)?;
    std::fs::write(pf_dir.join("prefect.yaml"), prefect_yaml(flows, &pf_dir))?;
    crate::git::init_and_commit(&pf_dir, "Changed-release benchmark: prefect.yaml side")?;

    let release_args = ["release", "--all", "--env", ENV, "--build", "HEAD", "--json"];
    let release = || ctx.flowgate_in(&fg_dir, &release_args);
    let deploy = |api: &str| prefect::cli(&bin, &client_home, api, &pf_dir, &["--no-prompt", "deploy", "--all"]);

    // Untimed setup: every deployment created once by each tool.
    eprintln!("  setup: flowgate build + release of {flows} flows (creates), then prefect deploy --all (creates)…");
    crate::timing::capture("flowgate build", ctx.flowgate_in(&fg_dir, &["build", "-q"]))?;
    let mut first = ctx.flowgate_in(&fg_dir, &release_args);
    first.arg("--create-work-pools");
    let (first_release, out) = timed("flowgate release --all --create-work-pools", first, true)?;
    let answer: Value = serde_json::from_str(&out).context("`flowgate release --json` printed no JSON document")?;
    let first_requests = proxy.take();
    if flows_in(&answer, "moves").len() != flows {
        bail!("the first release moved {} flows, expected all {flows}: {out}", flows_in(&answer, "moves").len());
    }
    let (first_deploy, _) = timed("prefect deploy --all", deploy(&server.api_url()), false)?;
    for (prefix, who) in [("fg-", "flowgate"), ("pf-", "prefect deploy")] {
        let found = count_deployments(&server, prefix)?;
        if found != flows as u64 {
            bail!("after setup the server holds {found} `{prefix}*` deployments ({who}), expected {flows}");
        }
    }

    // Timed rounds, interleaved: each side's untimed preparation commits a
    // change to one flow (flowgate also builds it), then the command is timed.
    let mut fg = Timing { label: release_args.join(" ").replace("release", "flowgate release"), samples: vec![] };
    let mut pf = Timing { label: "prefect --no-prompt deploy --all".to_string(), samples: vec![] };
    let mut rounds = Vec::new();
    let mut deploy_requests = Vec::new();
    for round in 0..warmup + runs {
        let i = changed_flow(round, flows);
        commit_change(&fg_dir, i, round + 1)?;
        crate::timing::capture("flowgate build", ctx.flowgate_in(&fg_dir, &["build", "-q"]))?;
        proxy.take();
        let (took, out) = timed("flowgate release --all", release(), true)?;
        let requests = proxy.take();
        let answer: Value = serde_json::from_str(&out).context("`flowgate release --json` printed no JSON document")?;
        let checked = Round {
            flow: flow_key(i),
            moved: flows_in(&answer, "moves"),
            unchanged: flows_in(&answer, "unchanged").len(),
            reported_writes: answer["sync"]["writes"].as_u64().unwrap_or(0),
            requests,
        };
        if checked.moved != [checked.flow.clone()] || checked.unchanged != flows - 1 {
            bail!(
                "round {round}: the commit changed `{}` only, but release moved {:?} and left {} unchanged: {out}",
                checked.flow,
                checked.moved,
                checked.unchanged
            );
        }

        commit_change(&pf_dir, i, round + 1)?;
        let api = if round < warmup { format!("{}/api", proxy.url()) } else { server.api_url() };
        proxy.take();
        let (deploy_took, _) = timed("prefect deploy --all", deploy(&api), false)?;
        if round < warmup {
            deploy_requests = proxy.take();
        }
        // The server goes on storing `prefect deploy`'s events and automations
        // after it exits (it answers 503s during the deploy): the next round's
        // release is timed against a server that settled, as a team's release
        // meets it, not against the tail of the baseline's 600 writes.
        std::thread::sleep(SETTLE);
        eprintln!(
            "  round {round}{}: flowgate {} (moved {}; {} requests, {} writes: {}); prefect deploy {}",
            if round < warmup { " (warm-up)" } else { "" },
            fmt_duration(took),
            checked.flow,
            checked.requests.len(),
            checked.writes().len(),
            summarize(checked.writes()),
            fmt_duration(deploy_took)
        );
        if round >= warmup {
            fg.samples.push(took);
            pf.samples.push(deploy_took);
        }
        rounds.push(checked);
    }
    for (prefix, who) in [("fg-", "flowgate"), ("pf-", "prefect deploy")] {
        let found = count_deployments(&server, prefix)?;
        if found != flows as u64 {
            bail!("after the rounds the server holds {found} `{prefix}*` deployments ({who}), expected {flows}");
        }
    }

    let name = format!("changed release: 1 of {flows} flows changed, real Prefect server");
    let rows = vec![Row::new(&name, &fg, &pf, Target::Absolute(TARGET))];
    let mut notes = vec![format!(
        "changed release: {flows} flows (a quarter import `lib/common.py`, a quarter `lib/io.py`), one Prefect 3.9.1 \
         server (SQLite, started in {:.1} s); flowgate's deployments `fg-*` through a counting proxy, prefect.yaml's \
         `pf-*` direct; both in work pool `{POOL}`; {warmup} warm-up + {runs} timed rounds, each side committing a \
         change to one flow's own file before its run (flowgate also builds, untimed)",
        server_start.as_secs_f64()
    )];
    let spread = |t: &Timing| format!("median {}", t.spread());
    notes.push(format!(
        "changed release: `{}` {}; `{}` {}; prefect/flowgate {:.1}×; ≤ {}: {}",
        fg.label,
        spread(&fg),
        pf.label,
        spread(&pf),
        pf.median().as_secs_f64() / fg.median().as_secs_f64().max(1e-9),
        fmt_duration(TARGET).replace(".0 ms", " ms"),
        verdict(&fg, TARGET)
    ));
    let counts: Vec<String> = rounds.iter().map(|r| r.writes().len().to_string()).collect();
    let reported: Vec<String> = rounds.iter().map(|r| r.reported_writes.to_string()).collect();
    let all_one = rounds.iter().all(|r| r.writes().len() == 1);
    notes.push(format!(
        "changed release: writes per round seen by the proxy {} ({}), flowgate's own count {}; each round moved \
         exactly the changed flow and left {} unchanged; requests per round {}; writes: {}",
        counts.join(", "),
        if all_one { "exactly one every round" } else { "NOT exactly one in every round" },
        reported.join(", "),
        flows - 1,
        rounds.iter().map(|r| r.requests.len().to_string()).collect::<Vec<_>>().join(", "),
        summarize(rounds.iter().flat_map(Round::writes))
    ));
    if !all_one {
        for (n, r) in rounds.iter().enumerate().filter(|(_, r)| r.writes().len() != 1) {
            let all: Vec<String> = r.requests.iter().map(ToString::to_string).collect();
            notes.push(format!("changed release round {n} ({}): {}", r.flow, all.join("; ")));
        }
    }
    notes.push(format!(
        "changed release: answers other than 2xx to flowgate: {}; reads of a round: {}",
        not_2xx(&rounds.iter().flat_map(|r| r.requests.iter().cloned()).collect::<Vec<_>>()),
        summarize(
            rounds.last().map(|r| r.requests.iter().filter(|q| !q.writes()).collect::<Vec<_>>()).unwrap_or_default()
        )
    ));
    notes.push(format!(
        "changed release: prefect deploy --all, warm-up round through the proxy: {} requests, {} writes ({}); \
         answers other than 2xx: {}",
        deploy_requests.len(),
        deploy_requests.iter().filter(|r| r.writes()).count(),
        summarize(deploy_requests.iter().filter(|r| r.writes())),
        not_2xx(&deploy_requests)
    ));
    notes.push(format!(
        "changed release setup (untimed): first `flowgate release --all --create-work-pools` {} ({} requests, {} \
         writes), first `prefect deploy --all` {}",
        fmt_duration(first_release),
        first_requests.len(),
        first_requests.iter().filter(|r| r.writes()).count(),
        fmt_duration(first_deploy)
    ));
    Ok((rows, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_changes_another_flow_until_all_have_changed() {
        for flows in [200, 20] {
            let changed: std::collections::BTreeSet<usize> = (0..flows).map(|r| changed_flow(r, flows)).collect();
            assert_eq!(changed.len(), flows);
        }
    }

    #[test]
    fn both_sides_list_the_same_flows_and_entrypoints() {
        let toml = flowgate_toml(3, "http://127.0.0.1:1/api");
        let yaml = prefect_yaml(3, Path::new("/p"));
        for i in 0..3 {
            assert!(toml.contains(&format!("[flows.{}]\nentrypoint = \"{}\"", flow_key(i), entrypoint(i))), "{toml}");
            assert!(yaml.contains(&format!("  - name: pf-{}\n    entrypoint: {}\n", flow_key(i), entrypoint(i))));
        }
        assert_eq!(yaml.matches("name: bench-pool").count(), 3, "{yaml}");
        assert!(toml.ends_with("name_prefix = \"fg-\"\n"), "{toml}");
        assert_ne!(flow_source(4, 1), flow_source(4, 2));
        assert!(flow_source(4, 0).contains("from lib.common import RETRIES"));
    }

    #[test]
    fn requests_group_by_kind_without_ids() {
        let logged = |method: &str, path: &str| Logged { method: method.into(), path: path.into(), status: 200 };
        let requests = [
            logged("PATCH", "/api/deployments/0b5c3e3e-6a4e-4bb8-9d3a-1f6c8e4f9a01"),
            logged("PATCH", "/api/deployments/7d7a2a11-0c2e-4a57-8b55-0e3c8c1d2f44"),
            logged("POST", "/api/flows/"),
            logged("DELETE", "/api/automations/owned-by/prefect.deployment.0b5c3e3e-6a4e-4bb8-9d3a-1f6c8e4f9a01"),
        ];
        assert_eq!(
            summarize(&requests),
            "1 × `DELETE /api/automations/owned-by/prefect.deployment.{id}`, \
             2 × `PATCH /api/deployments/{id}`, 1 × `POST /api/flows/`"
        );
        assert_eq!(summarize(&[]), "none");
        assert_eq!(not_2xx(&requests), "none");
        let busy = Logged { method: "PATCH".into(), path: "/api/deployments/x".into(), status: 503 };
        assert_eq!(not_2xx(&[busy.clone(), busy]), "2 × `PATCH /api/deployments/x` → 503");
    }

    #[test]
    fn verdict_follows_the_readme_rule() {
        let t =
            |ms: &[u64]| Timing { label: "x".into(), samples: ms.iter().map(|&v| Duration::from_millis(v)).collect() };
        let limit = Duration::from_millis(500);
        assert!(verdict(&t(&[100, 200, 300]), limit).starts_with("met"));
        assert!(verdict(&t(&[100, 200, 600]), limit).starts_with("within noise"));
        assert!(verdict(&t(&[100, 600, 700]), limit).starts_with("missed: median"));
        assert!(verdict(&t(&[501, 600, 700]), limit).starts_with("missed: even"));
    }
}
