//! `flowgate diff ENV ENV`: which flows run different builds, the commits between
//! them (when the repository has both), the files that changed (from the two
//! manifests, so it works without the repository too) and, per flow, the
//! files of its code closure that changed, its deployment settings that
//! changed and its parameter contract (see `flow_changes.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;
use flowgate_core::{Build, BuildId, Digest, EnvName, FlowKey, Manifest, ManifestDiff};
use flowgate_ledger::Ledger;
use flowgate_store::ArtifactStore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::flow_changes::{self, flow_changes, FlowChanges};
use crate::cli::DiffArgs;
use crate::client::ServerClient;
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::Project;

/// What `flowgate diff --json` prints, and a server answers for it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EnvDiff {
    from: String,
    to: String,
    flows: Vec<FlowDiff>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct FlowDiff {
    flow: FlowKey,
    #[schema(value_type = Option<String>)]
    from_build: Option<BuildId>,
    #[schema(value_type = Option<String>)]
    to_build: Option<BuildId>,
    same: bool,
    /// The commits the two builds were made from, when they differ.
    #[serde(default)]
    from_commit: Option<String>,
    #[serde(default)]
    to_commit: Option<String>,
    /// `git log from..to` one-liners: commits `to` runs that `from` does not;
    /// null when either commit is not in this repository (a server has none).
    commits: Option<Vec<String>>,
    /// `git log to..from`: commits `from` runs that `to` does not (when `to` is behind).
    commits_behind: Option<Vec<String>>,
    /// The files that changed, from the two bundles' manifests; null where a
    /// server's store lacks a bundle (registered in direct mode).
    #[schema(value_type = Option<Object>)]
    files: Option<ManifestDiff>,
    /// What changes for this flow from `from`'s deployment to `to`'s: code,
    /// settings and parameters; null when both run the same build.
    #[serde(default)]
    changes: Option<FlowChanges>,
}

pub async fn run(project: &Project, args: DiffArgs, printer: Printer) -> Result<()> {
    let from = project.named_env(&args.from)?;
    let to = project.named_env(&args.to)?;
    let repo = Repo::discover(&project.root).ok();
    let mut result = match ServerClient::from_env().await? {
        Some(server) => {
            let name = project.config.project_name();
            server.get(&format!("/projects/{name}/diff?from={from}&to={to}")).await?
        }
        None => env_diff(project.ledger().await?.as_ref(), Some(&project.store()?), &from, &to, false).await?,
    };
    // The commits between the builds come from this checkout, wherever the rest was read.
    for diff in &mut result.flows {
        if let (Some(a), Some(b), Some(repo)) = (&diff.from_commit, &diff.to_commit, &repo) {
            diff.commits = repo.log_range(a, b);
            diff.commits_behind = repo.log_range(b, a);
        }
    }
    printer.result(&result, |out| render(out, &result))
}

/// Which flows run different builds in `from` and `to`, and the files that
/// changed between them. With `lenient`, a bundle `store` lacks (or no store)
/// leaves `files` null instead of failing; commits are left to the caller.
pub async fn env_diff(
    ledger: &dyn Ledger,
    store: Option<&ArtifactStore>,
    from: &EnvName,
    to: &EnvName,
    lenient: bool,
) -> Result<EnvDiff> {
    let left: BTreeMap<FlowKey, BuildId> =
        ledger.pointers(Some(from)).await?.into_iter().map(|p| (p.flow, p.build)).collect();
    let right: BTreeMap<FlowKey, BuildId> =
        ledger.pointers(Some(to)).await?.into_iter().map(|p| (p.flow, p.build)).collect();
    let flows: BTreeSet<&FlowKey> = left.keys().chain(right.keys()).collect();
    // The builds of every flow that differs, read together (not two per flow),
    // and each bundle's manifest fetched once however many flows share it.
    let differing: Vec<BuildId> = flows
        .iter()
        .filter_map(|flow| Some((left.get(*flow)?, right.get(*flow)?)))
        .filter(|(a, b)| a != b)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let builds: BTreeMap<BuildId, Build> =
        ledger.builds_by_id(&differing, true).await?.into_iter().map(|b| (b.id.clone(), b)).collect();
    let mut manifests: HashMap<Digest, Option<Manifest>> = HashMap::new();
    let mut diffs = Vec::new();
    for flow in flows {
        let a = left.get(flow).cloned();
        let b = right.get(flow).cloned();
        let mut diff = FlowDiff {
            flow: flow.clone(),
            same: a == b,
            from_build: a,
            to_build: b,
            from_commit: None,
            to_commit: None,
            commits: None,
            commits_behind: None,
            files: None,
            changes: None,
        };
        if let (false, Some(a), Some(b)) = (diff.same, &diff.from_build, &diff.to_build) {
            let (Some(ba), Some(bb)) = (builds.get(a), builds.get(b)) else {
                anyhow::bail!("The ledger names build `{a}` or `{b}` but has no record of it");
            };
            diff.from_commit = Some(ba.commit.clone());
            diff.to_commit = Some(bb.commit.clone());
            diff.files = if ba.bundle == bb.bundle {
                Some(ManifestDiff::default())
            } else {
                match store {
                    Some(store) => {
                        fetch_manifest(store, &ba.bundle, lenient, &mut manifests).await?;
                        fetch_manifest(store, &bb.bundle, lenient, &mut manifests).await?;
                        match (&manifests[&ba.bundle], &manifests[&bb.bundle]) {
                            (Some(ma), Some(mb)) => Some(ManifestDiff::between(ma, mb)),
                            _ => None,
                        }
                    }
                    None if lenient => None,
                    None => anyhow::bail!("No artifact store to read the manifests of `{a}` and `{b}` from"),
                }
            };
            diff.changes = Some(flow_changes(flow, (ba, from.as_str()), (bb, to.as_str()), diff.files.as_ref()));
        }
        diffs.push(diff);
    }
    Ok(EnvDiff { from: from.to_string(), to: to.to_string(), flows: diffs })
}

/// Puts the manifest of `bundle` in `manifests`, fetched from the store the
/// first time only: `None` when it cannot be read and `lenient` says to go on
/// without it.
async fn fetch_manifest(
    store: &ArtifactStore,
    bundle: &Digest,
    lenient: bool,
    manifests: &mut HashMap<Digest, Option<Manifest>>,
) -> Result<()> {
    if !manifests.contains_key(bundle) {
        let fetched = match store.manifest(bundle).await {
            Ok(manifest) => Some(manifest),
            Err(_) if lenient => None,
            Err(e) => return Err(e.into()),
        };
        manifests.insert(*bundle, fetched);
    }
    Ok(())
}

pub fn render(out: &mut String, result: &EnvDiff) {
    let short = |b: &Option<BuildId>| b.as_ref().map_or("-".to_string(), |b| b.as_str()[..8].to_string());
    for d in &result.flows {
        if d.same {
            out.push_str(&format!("  {}: same build {}\n", d.flow, short(&d.from_build)));
            continue;
        }
        out.push_str(&format!(
            "~ {}: {} {} -> {} {}\n",
            d.flow,
            result.from,
            short(&d.from_build),
            result.to,
            short(&d.to_build)
        ));
        for (mark, commits) in [("commit", &d.commits), ("behind", &d.commits_behind)] {
            for c in commits.iter().flatten() {
                out.push_str(&format!("    {mark} {c}\n"));
            }
        }
        if let Some(files) = &d.files {
            for (mark, list) in [("+", &files.added), ("-", &files.removed), ("M", &files.modified)] {
                for f in list {
                    out.push_str(&format!("    {mark} {f}\n"));
                }
            }
        }
        if let Some(changes) = &d.changes {
            flow_changes::render(out, changes);
        }
    }
    if result.flows.is_empty() {
        out.push_str(&format!("Neither `{}` nor `{}` has releases.\n", result.from, result.to));
    }
}
