//! `flowgate diff ENV ENV`: which flows run different builds, the commits between
//! them (when the repository has both) and the files that changed (from the two
//! manifests, so it works without the repository too).

use std::collections::BTreeSet;

use anyhow::Result;
use flowgate_core::{BuildId, FlowKey, ManifestDiff};
use serde::Serialize;

use crate::cli::DiffArgs;
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::Project;

#[derive(Serialize)]
struct EnvDiff {
    from: String,
    to: String,
    flows: Vec<FlowDiff>,
}

#[derive(Serialize)]
struct FlowDiff {
    flow: FlowKey,
    from_build: Option<BuildId>,
    to_build: Option<BuildId>,
    same: bool,
    /// `git log from..to` one-liners: commits `to` runs that `from` does not;
    /// null when either commit is not in this repository.
    commits: Option<Vec<String>>,
    /// `git log to..from`: commits `from` runs that `to` does not (when `to` is behind).
    commits_behind: Option<Vec<String>>,
    files: Option<ManifestDiff>,
}

pub async fn run(project: &Project, args: DiffArgs, printer: Printer) -> Result<()> {
    let from = project.named_env(&args.from)?;
    let to = project.named_env(&args.to)?;
    let ledger = project.ledger().await?;
    let store = project.store()?;
    let repo = Repo::discover(&project.root).ok();
    let left = ledger.pointers(Some(&from)).await?;
    let right = ledger.pointers(Some(&to)).await?;
    let flows: BTreeSet<&FlowKey> = left.iter().chain(right.iter()).map(|p| &p.flow).collect();
    let mut diffs = Vec::new();
    for flow in flows {
        let a = left.iter().find(|p| &p.flow == flow).map(|p| p.build.clone());
        let b = right.iter().find(|p| &p.flow == flow).map(|p| p.build.clone());
        let mut diff = FlowDiff {
            flow: flow.clone(),
            same: a == b,
            from_build: a,
            to_build: b,
            commits: None,
            commits_behind: None,
            files: None,
        };
        if let (false, Some(a), Some(b)) = (diff.same, &diff.from_build, &diff.to_build) {
            let (Some(ba), Some(bb)) = (ledger.build(a).await?, ledger.build(b).await?) else {
                anyhow::bail!("The ledger names build `{a}` or `{b}` but has no record of it");
            };
            diff.commits = repo.as_ref().and_then(|r| r.log_range(&ba.commit, &bb.commit));
            diff.commits_behind = repo.as_ref().and_then(|r| r.log_range(&bb.commit, &ba.commit));
            if ba.bundle != bb.bundle {
                let (ma, mb) = (store.manifest(&ba.bundle).await?, store.manifest(&bb.bundle).await?);
                diff.files = Some(ManifestDiff::between(&ma, &mb));
            } else {
                diff.files = Some(ManifestDiff::default());
            }
        }
        diffs.push(diff);
    }
    let result = EnvDiff { from: from.to_string(), to: to.to_string(), flows: diffs };
    printer.result(&result, |out| render(out, &result))
}

fn render(out: &mut String, result: &EnvDiff) {
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
    }
    if result.flows.is_empty() {
        out.push_str(&format!("Neither `{}` nor `{}` has releases.\n", result.from, result.to));
    }
}
