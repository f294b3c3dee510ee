//! `flowgate build`: select files, pack them deterministically, upload the bundle
//! create-if-absent, and record the build. Packing (into a temp file) starts as
//! soon as the files are known, while git status and the ledger are consulted;
//! a dirty tree or a bad ledger cancels it before the store is touched. The
//! manifest is stored before the bundle and both before the ledger, so a recorded
//! build always has them. With a server (`FLOWGATE_SERVER`), the bundle and the
//! record go to the server instead, which checks both before it records them.
//! With `[project] pin_images`, image tags are resolved to digests here, on the
//! client, before either path stores anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::Utc;
use flowgate_bundle::{PackOptions, PackProgress, Packed, Plan, Scan};
use flowgate_config::TemplateVars;
use flowgate_core::{Build, Digest, FlowKey, Images};
use flowgate_entrypoint::FlowReader;
use flowgate_store::{ArtifactStore, Upload};
use serde::Serialize;
use serde_json::json;
use tempfile::NamedTempFile;
use tokio::task::JoinHandle;

use super::{build_check, build_code, build_signatures, settings};
use crate::cli::BuildArgs;
use crate::client::ServerClient;
use crate::exit::usage;
use crate::git::Repo;
use crate::printer::Printer;
use crate::project::{Project, CONFIG_FILE};
use crate::server::{Registered, StoredBundle};

#[derive(Serialize)]
struct Built {
    build: Build,
    /// False when the ledger already had this build (same bundle and images).
    recorded: bool,
    /// False when the store already had the bundle.
    uploaded: bool,
}

pub async fn run(project: &Project, args: BuildArgs, printer: Printer) -> Result<()> {
    let repo = Repo::discover(&project.root)?;
    // The git questions and the stat pass over the selected files are independent:
    // they run side by side.
    let status = blocking({
        let repo = repo.clone();
        move || repo.status()
    });
    let author = blocking({
        let repo = repo.clone();
        move || repo.author()
    });
    let tracked = blocking({
        let repo = repo.clone();
        move || repo.tracked_files()
    });
    // With a server, its credential is found before anything is packed.
    let server = ServerClient::from_env().await?;
    let cancel = CancelOnDrop::default();
    let options = PackOptions { cancel: Some(cancel.0.clone()), ..pack_options(project, printer) };
    let files = select_files(project, &repo, tracked.await??);
    let bundle_files: BTreeSet<String> = files.iter().cloned().collect();
    let planned = blocking({
        let (root, options) = (project.root.clone(), options.clone());
        move || flowgate_bundle::plan(&root, &files, &options)
    })
    .await??;
    // Packing starts now unless the index knows the archive already, while git
    // status and the ledger are consulted; if either says no, `cancel` stops it
    // when this function returns. Nothing reaches the store before both agreed.
    let pending = match planned.known_archive() {
        Some(digest) => Pending::Known(Box::new(planned), digest),
        None => Pending::Packing(pack(project, planned)?),
    };
    let status = status.await??;
    // Only changes to paths the bundle takes make it dirty (include/exclude applied
    // to the changed paths themselves, so a staged deletion counts): an edited
    // README outside the project or an excluded test does not.
    let changed = project_relative(project, &repo, status.dirty);
    let mut dirty = project.config.select_files(&changed);
    // The build's deployment settings are resolved from the config: an edit to it
    // makes the build dirty even where the bundle leaves the file out.
    if changed.iter().any(|f| f == CONFIG_FILE) && !dirty.iter().any(|f| f == CONFIG_FILE) {
        dirty.push(CONFIG_FILE.to_string());
    }
    if !dirty.is_empty() && !args.allow_dirty {
        let shown: Vec<String> = dirty.iter().take(5).map(|f| format!("`{f}`")).collect();
        return Err(usage(format!(
            "The working tree has uncommitted changes to tracked files ({}{}); commit them or pass --allow-dirty",
            shown.join(", "),
            if dirty.len() > 5 { ", …" } else { "" }
        )));
    }
    if !dirty.is_empty() {
        printer.note(format!("warning: building with uncommitted changes to {} tracked file(s)", dirty.len()));
    }
    let images = pinned_images(project, &args.image, &status.commit, status.branch.as_deref())?;
    // Resolved before anything is stored: a config the build cannot deploy
    // leaves the store and the ledger as they were.
    // The stat index's hash of every file, when it vouched for all of them: the
    // caches of signatures and closures are then valid if those hashes match.
    let known: Option<HashMap<String, String>> = match &pending {
        Pending::Known(planned, _) => planned
            .known_manifest()
            .map(|manifest| manifest.files.into_iter().map(|entry| (entry.path, entry.blake3.to_hex())).collect()),
        Pending::Packing(_) => None,
    };
    // One reader for the check and the settings, so each module is parsed once
    // (in a block: it is not `Send`, and must not be held across an await).
    let mut settings = {
        let read_bundle = |path: &str| {
            bundle_files.contains(path).then(|| std::fs::read_to_string(project.root.join(path)).ok()).flatten()
        };
        let flows = FlowReader::new(&read_bundle);
        let cache = build_signatures::seed(&project.root, &bundle_files, known.as_ref(), &flows);
        build_check::check_entrypoints(&project.config, &bundle_files, &flows)?;
        let settings = settings::resolve_all(
            &project.config,
            &status.commit,
            status.branch.as_deref(),
            &project.root,
            &flows,
            |path| {
                std::fs::read_to_string(project.root.join(path))
                    .with_context(|| format!("Failed to read entrypoint file `{path}`"))
            },
        )?;
        cache.save(&project.root, known.as_ref(), &flows);
        settings
    };
    for (flow, code) in build_code::flow_code(&project.config, &bundle_files, &project.root, &settings, known.as_ref())?
    {
        settings.set_code(&flow, code);
    }
    // With `pin_images`, each tag becomes the digest it names now, still before
    // anything is stored: a tag the registry lacks records nothing.
    let images = if project.config.project.pin_images { crate::registry::pin_images(images).await? } else { images };
    let origin =
        Origin { commit: status.commit, branch: status.branch, dirty: !dirty.is_empty(), author: author.await?? };
    if let Some(server) = &server {
        return register_through(server, project, pending, images, settings, origin, printer).await;
    }
    let ledger = project.ledger().await?;
    let store = project.store()?;

    // The manifest is stored before its bundle, so a bundle in the store proves its
    // manifest is there too: an unchanged rebuild writes neither.
    let (file_count, packed, uploaded) = match pending {
        Pending::Known(planned, digest) => match store.bundle_size(&digest).await? {
            Some(size) => (planned.file_count(), (digest, size), false),
            // Known to the index but gone from the store: pack it again.
            None => upload(&store, pack(project, *planned)?).await?,
        },
        Pending::Packing(packing) => upload(&store, packing).await?,
    };
    if printer.progress_enabled() {
        eprintln!();
    }
    let build = origin.build(packed, file_count, images, settings);
    // The store's build record first: a build the ledger knows must be pullable
    // by id on a worker (no ledger there), so a kill between the two writes may
    // leave an unrecorded record (an orphan fsck reports), never the reverse.
    // Both writes are create-if-absent: the first record of an id stays.
    store.put_build(&build).await?;
    let recorded = ledger.record_build(build).await?;
    print_built(&Built { build: recorded.build, recorded: recorded.created, uploaded }, printer)
}

/// Where a build comes from: its commit, branch, tree state and author.
struct Origin {
    commit: String,
    branch: Option<String>,
    dirty: bool,
    author: String,
}

impl Origin {
    /// The build of this origin's bundle, images and settings; its id derives from those three.
    /// `bundle` is the archive's digest and size.
    fn build(
        self,
        bundle: (Digest, u64),
        file_count: u64,
        images: Images,
        settings: flowgate_core::BuildSettings,
    ) -> Build {
        let (digest, size) = bundle;
        Build {
            id: Build::derive_id(&digest, &images, &settings),
            bundle: digest,
            bundle_size: size,
            file_count,
            images,
            commit: self.commit,
            branch: self.branch,
            dirty: self.dirty,
            author: self.author,
            created_at: Utc::now(),
            settings: Some(settings),
        }
    }
}

/// Server mode: the bundle packed here is uploaded through the server, which
/// checks it and the record before it records the build, with the caller as
/// its provenance. The local store and ledger are not used.
async fn register_through(
    server: &ServerClient,
    project: &Project,
    pending: Pending,
    images: Images,
    settings: flowgate_core::BuildSettings,
    origin: Origin,
    printer: Printer,
) -> Result<()> {
    let packing = match pending {
        Pending::Known(planned, _) => pack(project, *planned)?,
        Pending::Packing(packing) => packing,
    };
    let (scan, packed, tmp) = packing.await??;
    let name = project.config.project_name();
    let stored: StoredBundle =
        server.put_file(&format!("/projects/{name}/bundles/{}", packed.digest), tmp.path()).await?;
    if printer.progress_enabled() {
        eprintln!();
    }
    let build = origin.build((packed.digest, packed.size), scan.manifest.files.len() as u64, images, settings);
    let registered: Registered = server.post(&format!("/projects/{name}/builds"), &json!({ "build": build })).await?;
    print_built(&Built { build: registered.build, recorded: registered.recorded, uploaded: stored.uploaded }, printer)
}

fn print_built(result: &Built, printer: Printer) -> Result<()> {
    printer.result(result, |out| {
        let b = &result.build;
        let what = if result.recorded { "Built" } else { "Unchanged, already built" };
        out.push_str(&format!(
            "{what} {} from commit {}{} ({} files, {} bytes, bundle {})\n",
            b.id,
            b.short_commit(),
            if b.dirty { " (dirty)" } else { "" },
            b.file_count,
            b.bundle_size,
            b.bundle.short()
        ));
    })
}

/// Where the bundle stands once the plan is made.
enum Pending {
    /// The index knows the archive of these files: the store may have it already.
    Known(Box<Plan>, Digest),
    /// Being packed into a temp file.
    Packing(JoinHandle<Result<(Scan, Packed, NamedTempFile)>>),
}

/// Waits for packing, then stores the manifest and the bundle's frames (in
/// that order); returns the file count, the archive's digest and size, and
/// whether the store lacked it.
async fn upload(
    store: &ArtifactStore,
    packing: JoinHandle<Result<(Scan, Packed, NamedTempFile)>>,
) -> Result<(u64, (Digest, u64), bool)> {
    let (scan, packed, tmp) = packing.await??;
    store.put_manifest(&packed.digest, &scan.manifest).await?;
    let (upload, stored) = store.put_bundle_frames(&packed.digest, tmp.path(), &packed.frames).await?;
    tracing::debug!(frames = stored.frames, uploaded = stored.uploaded, bytes = stored.uploaded_bytes, "bundle stored");
    Ok((scan.manifest.files.len() as u64, (packed.digest, packed.size), matches!(upload, Upload::Created)))
}

/// Writes the archive of `planned` into a temp file under `.flowgate/tmp`, off
/// the async threads.
fn pack(project: &Project, planned: Plan) -> Result<JoinHandle<Result<(Scan, Packed, NamedTempFile)>>> {
    let tmp_dir = project.root.join(".flowgate").join("tmp");
    std::fs::create_dir_all(&tmp_dir).with_context(|| format!("Failed to create `{}`", tmp_dir.display()))?;
    let mut tmp = NamedTempFile::new_in(&tmp_dir)?;
    Ok(blocking(move || {
        let (scan, packed) = planned.write(tmp.as_file_mut())?;
        Ok((scan, packed, tmp))
    }))
}

/// Cancels packing when dropped: on every early return, so a refused build does
/// not keep the cores (and the runtime's shutdown) busy packing for nothing.
#[derive(Debug, Default)]
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// git-tracked ∩ include − exclude, relative to the project root (which may sit
/// below the repository root). Files deleted in a dirty tree are left out by the
/// stat pass (`skip_missing`), so nothing is stat'ed here.
fn select_files(project: &Project, repo: &Repo, tracked: Vec<String>) -> Vec<String> {
    project.config.select_files(&project_relative(project, repo, tracked))
}

/// Repository-relative paths made relative to the project root; paths outside
/// the project are dropped.
fn project_relative(project: &Project, repo: &Repo, paths: Vec<String>) -> Vec<String> {
    let prefix =
        project.root.strip_prefix(repo.root()).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
    if prefix.is_empty() {
        return paths;
    }
    let prefix = format!("{prefix}/");
    paths.into_iter().filter_map(|f| f.strip_prefix(&prefix).map(str::to_string)).collect()
}

/// Runs blocking work (git, file I/O) off the async threads.
fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(work)
}

/// The image of every flow: `--image FLOW=REF` for one flow, `--image REF` for
/// all, else the configured template rendered for this commit.
fn pinned_images(project: &Project, flags: &[String], commit: &str, branch: Option<&str>) -> Result<Images> {
    let mut for_all = None;
    let mut per_flow: BTreeMap<FlowKey, String> = BTreeMap::new();
    for flag in flags {
        match flag.split_once('=') {
            Some((flow, image)) => {
                let key = project.flows(&[flow.to_string()])?.remove(0);
                per_flow.insert(key, non_empty(image, flag)?);
            }
            None => for_all = Some(non_empty(flag, flag)?),
        }
    }
    let mut images = Images::new();
    for (flow, _) in project.config.flows() {
        let vars = TemplateVars::for_build(commit, branch, flow);
        let image = match per_flow.remove(flow).or_else(|| for_all.clone()) {
            Some(image) => Some(image),
            None => project.config.build_image(flow, &vars)?,
        };
        if let Some(image) = image {
            images.insert(flow.clone(), image);
        }
    }
    Ok(images)
}

fn non_empty(value: &str, flag: &str) -> Result<String> {
    if value.trim().is_empty() {
        return Err(usage(format!("`--image {flag}` names no image")));
    }
    Ok(value.to_string())
}

fn pack_options(project: &Project, printer: Printer) -> PackOptions {
    let mut options = PackOptions {
        index_path: Some(project.root.join(".flowgate").join("cache").join("index")),
        skip_missing: true,
        md5_only_for: Some(Arc::new(entrypoint_files(project))),
        ..Default::default()
    };
    if printer.progress_enabled() {
        options.progress = Some(Arc::new(|p: PackProgress| eprint!("\r{}", progress_line(&p))));
    }
    options
}

/// The configured flows' entrypoint files, as bundle paths: the only files whose
/// MD5 `which` may need (Prefect's `flow_version`).
fn entrypoint_files(project: &Project) -> BTreeSet<String> {
    project.config.flows().map(|(_, flow)| flow.entrypoint_path().trim_start_matches("./").to_string()).collect()
}

fn progress_line(progress: &PackProgress) -> String {
    match progress {
        PackProgress::Scanned { done, total } => format!("scanned {done}/{total} files"),
        PackProgress::Written { done, total } => format!("packed {done}/{total} files"),
    }
}
