//! `flowgate builds` and `flowgate show BUILD`.

use anyhow::Result;
use chrono::Utc;
use flowgate_core::{AuthMethod, Build, BuildId, FlowKey, Provenance};
use flowgate_ledger::Ledger;
use flowgate_store::ArtifactStore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::flow_changes::{self, flow_changes, FlowChanges};
use crate::cli::{BuildsArgs, ShowArgs};
use crate::client::{server_build_ref, ServerClient};
use crate::git::Repo;
use crate::printer::{age, table, Printer};
use crate::project::Project;
use crate::refs::resolve_build;

pub async fn list(project: &Project, args: BuildsArgs, printer: Printer) -> Result<()> {
    let builds: Vec<Build> = match ServerClient::from_env().await? {
        Some(server) => {
            server.get(&format!("/projects/{}/builds?limit={}", project.config.project_name(), args.limit)).await?
        }
        None => project.ledger().await?.builds(args.limit).await?,
    };
    let now = Utc::now();
    printer.result(&builds, |out| {
        let rows: Vec<Vec<String>> = builds
            .iter()
            .map(|b| {
                vec![
                    b.id.to_string(),
                    format!("{}{}", b.short_commit(), if b.dirty { "+dirty" } else { "" }),
                    b.branch.clone().unwrap_or_else(|| "-".into()),
                    b.file_count.to_string(),
                    age(b.created_at, now),
                    b.author.clone(),
                ]
            })
            .collect();
        table(out, &["BUILD", "COMMIT", "BRANCH", "FILES", "AGE", "AUTHOR"], &rows);
    })
}

/// What `flowgate show BUILD --json` prints, and a server answers for it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Shown {
    build: Build,
    total_size: u64,
    /// The largest top-level directories, by file count: a glance at what the bundle holds.
    #[schema(value_type = Vec<Object>)]
    top_level: Vec<(String, u64)>,
    /// Who registered the build through a flowgate server, as verified; empty for direct mode.
    provenance: Vec<Provenance>,
    /// With `--against OTHER`: how each flow changes from OTHER to this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    against: Option<Against>,
}

/// How each flow, in each env this build configures, changes from `build` to the shown one.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Against {
    #[schema(value_type = String)]
    build: BuildId,
    /// Only the flows with a change.
    flows: Vec<AgainstFlow>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AgainstFlow {
    env: String,
    flow: FlowKey,
    changes: FlowChanges,
}

impl Against {
    fn of(old: &Build, new: &Build) -> Self {
        let mut flows = Vec::new();
        for env in new.settings.iter().flat_map(|s| s.envs()) {
            for (flow, _) in new.settings.iter().flat_map(|s| s.flows(env)) {
                let changes = flow_changes(flow, (old, env), (new, env), None);
                let changed = changes.code_changed == Some(true)
                    || !changes.settings.is_empty()
                    || !changes.parameters.is_empty();
                if changed {
                    flows.push(AgainstFlow { env: env.to_string(), flow: flow.clone(), changes });
                }
            }
        }
        Against { build: old.id.clone(), flows }
    }
}

/// A build with what its bundle's manifest (in `store`) and its registrations say.
pub async fn shown(ledger: &dyn Ledger, store: &ArtifactStore, build: Build) -> Result<Shown> {
    let manifest = store.manifest(&build.bundle).await?;
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for file in &manifest.files {
        let top = file.path.split_once('/').map_or(".", |(dir, _)| dir).to_string();
        *counts.entry(top).or_default() += 1;
    }
    let provenance = ledger.provenance(&build.id).await?;
    Ok(Shown {
        total_size: manifest.total_size(),
        top_level: counts.into_iter().collect(),
        provenance,
        build,
        against: None,
    })
}

pub async fn show(project: &Project, args: ShowArgs, printer: Printer) -> Result<()> {
    let mut refs = vec![args.build.as_str()];
    refs.extend(args.against.as_deref());
    let mut found = Vec::new();
    match ServerClient::from_env().await? {
        Some(server) => {
            for reference in refs {
                let build = server_build_ref(project, reference)?;
                let one: Shown =
                    server.get(&format!("/projects/{}/builds/{build}/shown", project.config.project_name())).await?;
                found.push(one);
            }
        }
        None => {
            let ledger = project.ledger().await?;
            let repo = Repo::discover(&project.root).ok();
            for reference in refs {
                let build = resolve_build(ledger.as_ref(), repo.as_ref(), reference).await?;
                found.push(shown(ledger.as_ref(), &project.store()?, build).await?);
            }
        }
    }
    let mut found = found.into_iter();
    let mut shown = found.next().expect("the shown build");
    shown.against = found.next().map(|old| Against::of(&old.build, &shown.build));
    printer.result(&shown, |out| render_shown(out, &shown))
}

/// What `flowgate show` prints (the dashboard's build page shows the same).
pub fn render_shown(out: &mut String, shown: &Shown) {
    render_build(out, &shown.build, Some((shown.total_size, &shown.top_level)), &shown.provenance);
    if let Some(against) = &shown.against {
        if against.flows.is_empty() {
            out.push_str(&format!("against  {}: no flow's code, settings or parameters changed\n", against.build));
        }
        for f in &against.flows {
            out.push_str(&format!("against  {}: {} in {}\n", against.build, f.flow, f.env));
            flow_changes::render(out, &f.changes);
        }
    }
}

/// A build as `flowgate show` prints it; `contents` (the files' total size and
/// the top-level directories) when its manifest could be read.
pub fn render_build(out: &mut String, b: &Build, contents: Option<(u64, &[(String, u64)])>, provenance: &[Provenance]) {
    out.push_str(&format!("build    {}\n", b.id));
    out.push_str(&format!("commit   {}{}\n", b.commit, if b.dirty { " (dirty)" } else { "" }));
    out.push_str(&format!("branch   {}\n", b.branch.as_deref().unwrap_or("-")));
    out.push_str(&format!("author   {}\n", b.author));
    out.push_str(&format!("created  {}\n", b.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    out.push_str(&format!("bundle   {} ({} bytes compressed)\n", b.bundle, b.bundle_size));
    match contents {
        Some((total_size, top_level)) => {
            out.push_str(&format!("files    {} ({} bytes)\n", b.file_count, total_size));
            for (dir, n) in top_level {
                out.push_str(&format!("         {dir}/ {n} file{}\n", if *n == 1 { "" } else { "s" }));
            }
        }
        None => out.push_str(&format!("files    {} (the manifest is not in this store)\n", b.file_count)),
    }
    if b.images.is_empty() {
        out.push_str("images   none\n");
    }
    for (flow, image) in &b.images {
        out.push_str(&format!("image    {flow}: {image}\n"));
    }
    settings_lines(out, b);
    provenance_lines(out, provenance);
}

/// Who registered the build through a server: a CI job's repository, ref, sha
/// and run, or a token's name; each as the server verified it.
fn provenance_lines(out: &mut String, provenance: &[Provenance]) {
    if provenance.is_empty() {
        out.push_str("registered  in direct mode (no verified registration)\n");
    }
    for p in provenance {
        let r = &p.registrar;
        let claim = |key: &str| r.claims.get(key).map_or("-", String::as_str);
        let at = p.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let detail = match r.method {
            AuthMethod::Oidc => format!(
                "by CI: {} on {} at sha {} (run {}, workflow {})",
                claim("repository"),
                claim("ref"),
                claim("sha"),
                claim("run_id"),
                claim("workflow")
            ),
            AuthMethod::Token => format!("by token `{}`", r.subject),
            AuthMethod::Sso => format!("by `{}`, signed in through single sign-on", r.subject),
        };
        out.push_str(&format!("registered  {at} {detail}, request {}\n", r.request_id));
    }
}

/// What each env deploys at this build (`--json` has every field).
fn settings_lines(out: &mut String, build: &Build) {
    let Some(settings) = &build.settings else {
        out.push_str("settings none recorded: a build made before builds carried their settings is deployed with the working tree's config\n");
        return;
    };
    if settings.envs().next().is_none() {
        out.push_str("settings none: no env of this commit's config has a Prefect server\n");
    }
    code_lines(out, settings);
    for env in settings.envs() {
        out.push_str(&format!("settings {env} (its placement adds the Prefect server and the name prefix)\n"));
        for (flow, d) in settings.flows(env) {
            let parameters = serde_json::Value::Object(d.parameters.clone());
            out.push_str(&format!(
                "         {flow}: deployment `{}` of flow `{}`, pool {}, parameters {parameters}, {} schedule{}{}\n",
                d.deployment_name,
                d.flow_name,
                d.work_pool.as_deref().unwrap_or("-"),
                d.schedules.len(),
                if d.schedules.len() == 1 { "" } else { "s" },
                if d.tags.is_empty() { String::new() } else { format!(", tags {}", d.tags.join(",")) },
            ));
        }
    }
}

/// Each flow's code closure, once (it is the same in every env).
fn code_lines(out: &mut String, settings: &flowgate_core::BuildSettings) {
    let Some(env) = settings.envs().next() else { return };
    for (flow, d) in settings.flows(env) {
        let Some(code) = &d.code else { continue };
        let digest = &code.digest[..code.digest.len().min(12)];
        match &code.whole_bundle {
            Some(why) => out.push_str(&format!(
                "code     {flow}: {digest}, the whole bundle ({} files): static reading stops at {why}; declare `depends` to bound it\n",
                code.files
            )),
            None => out.push_str(&format!("code     {flow}: {digest}, {} files\n", code.files)),
        }
    }
}
