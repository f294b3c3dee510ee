//! `flowgate pull BUILD`: fetch, verify and unpack a bundle into the cache, and
//! print its directory. Inside a project BUILD resolves through the ledger; on a
//! worker (no project) the pull step passes the build id and an absolute store URL.
//! Inside a Prefect flow run it also records on the run which build it fetched,
//! the record `flowgate which` trusts over the run's `deployment_version`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use flowgate_bundle::Cache;
use flowgate_core::{Build, BuildId, Digest};
use flowgate_prefect::{PrefectClient, PullRecord, RunContext};
use flowgate_store::ArtifactStore;
use serde::Serialize;

use super::local_bundle;
use crate::cli::PullArgs;
use crate::exit::usage;
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::Project;
use crate::refs::resolve_build;

#[derive(Serialize)]
struct Pulled {
    build: BuildId,
    digest: Digest,
    path: PathBuf,
    cached: bool,
}

pub async fn run(cwd: &Path, args: PullArgs, printer: Printer) -> Result<()> {
    let (build, store) = locate(cwd, &args).await?;
    if let Some(expected) = &args.digest {
        let expected: Digest = expected.parse()?;
        if expected != build.bundle {
            return Err(usage(format!(
                "Build `{}` has bundle `{}`, not the `--digest {expected}` given",
                build.id, build.bundle
            )));
        }
    }
    let cache = Cache::new(local_bundle::cache_dir(args.cache.as_deref())?);
    let (path, cached) = local_bundle::ensure(&cache, &store, &build.bundle).await?;
    if let Some(context) = RunContext::from_env() {
        let record = PullRecord { build: build.id.clone(), bundle: build.bundle };
        if let Err(error) = record_on_run(&context, &record).await {
            // The code is in place: a run must not fail because its record did not land.
            eprintln!("warning: {error:#}");
        }
    }
    let result = Pulled { build: build.id, digest: build.bundle, path, cached };
    printer.result(&result, |out| out.push_str(&format!("{}\n", result.path.display())))
}

/// How long recording on the flow run may take before the pull goes on without it.
const RECORD_TIMEOUT: Duration = Duration::from_secs(30);

/// Labels the flow run with the build and bundle and logs a line on it.
async fn record_on_run(context: &RunContext, record: &PullRecord) -> Result<()> {
    let failed = || format!("Failed to record build `{}` on flow run `{}`", record.build, context.flow_run_id);
    let client = PrefectClient::new(&context.api_url, context.auth.clone()).with_context(failed)?;
    tokio::time::timeout(RECORD_TIMEOUT, client.record_pull(&context.flow_run_id, record))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from `{}` within {RECORD_TIMEOUT:?}", context.api_url))
        .with_context(failed)?
        .with_context(failed)
}

async fn locate(cwd: &Path, args: &PullArgs) -> Result<(Build, ArtifactStore)> {
    if args.store.is_none() {
        if let Ok(project) = Project::discover(cwd) {
            let ledger = project.ledger().await?;
            let repo = Repo::discover(&project.root).ok();
            let build = resolve_build(ledger.as_ref(), repo.as_ref(), &args.build).await?;
            return Ok((build, project.store()?));
        }
    }
    let url = args.store.as_deref().ok_or_else(|| {
        usage(format!("No `flowgate.toml` here to find the store of build `{}`; pass --store URL", args.build))
    })?;
    let store = ArtifactStore::open(url, cwd)?;
    let id: BuildId = args.build.parse()?;
    let build =
        store.build(&id).await?.ok_or_else(|| usage(format!("The store `{}` has no build `{id}`", store.url())))?;
    Ok((build, store))
}
