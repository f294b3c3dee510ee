//! `flowgate fsck [--repair] [--grace 1h]`: checks that the ledger and the
//! artifact store agree. Problems (exit 1): a build whose bundle is missing,
//! of another size, or does not verify (digest and entries, through the bundle
//! crate as `pull` does), whose manifest or build record is missing, damaged or
//! disagrees; a pointer naming an unknown build or not at its newest release;
//! a history with gaps; an unreferenced bundle that does not verify (a partial
//! object). Reported but consistent: unreferenced objects (orphans, e.g. from
//! a killed `build`) and staging leftovers of killed uploads, which readers
//! never see. `--repair` deletes only those two, and only when older than the
//! grace period; it never writes the ledger and never uploads anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use flowgate_bundle::{read_manifest, Limits};
use flowgate_core::{Build, Digest, Manifest};
use flowgate_ledger::{Ledger, LedgerProblem};
use flowgate_store::{ArtifactStore, ObjectKind, StoreError, StoredObject};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::gc::{self, Object};
use crate::cli::FsckArgs;
use crate::client::ServerClient;
use crate::exit::Status;
use crate::printer::Printer;
use crate::project::Project;

/// What `fsck --json` prints, and a server answers for its store.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct FsckReport {
    /// True when no problem is left (orphans and leftovers are not problems).
    consistent: bool,
    checked: Checked,
    problems: Vec<Problem>,
    orphans: Vec<Aged>,
    leftovers: Vec<Aged>,
    /// Objects outside flowgate's layout: never touched.
    unknown: Vec<Object>,
    /// What --repair deleted.
    repaired: Vec<Object>,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Checked {
    builds: usize,
    bundles: usize,
    pointers: usize,
    releases: usize,
    objects: usize,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Problem {
    kind: String,
    message: String,
    /// The store object it is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// True when --repair deleted the object (only an unreferenced one).
    repaired: bool,
}

fn problem(kind: &str, key: Option<String>, message: String) -> Problem {
    Problem { kind: kind.to_string(), message, key, repaired: false }
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Aged {
    key: String,
    size: u64,
    age_secs: u64,
    /// Older than the grace period: --repair deletes it.
    deletable: bool,
}

pub async fn run(project: &Project, args: FsckArgs, printer: Printer) -> Result<()> {
    let grace = gc::grace(&args.grace)?;
    let (report, store_url): (FsckReport, String) = match ServerClient::from_env().await? {
        Some(server) => {
            let body = json!({"repair": args.repair, "grace": args.grace});
            let path = format!("/projects/{}/fsck", project.config.project_name());
            (server.post(&path, &body).await?, format!("of the flowgate server at {}", server.server))
        }
        None => {
            let ledger = project.ledger().await?;
            let store = project.store()?;
            let holder = gc::holder(project, "fsck");
            (checked(ledger.as_ref(), &store, &holder, grace, args.repair).await?, format!("`{}`", store.url()))
        }
    };
    printer.result(&report, |out| render(out, &report, args.repair))?;
    if report.consistent {
        return Ok(());
    }
    let left = report.problems.iter().filter(|p| !p.repaired).count();
    let message = format!("fsck found {left} problem(s) in the ledger and the artifact store {store_url}");
    if printer.json {
        // stdout already holds the one JSON document (the report); returning
        // the error would make `main` print a second one.
        eprintln!("error: {message}");
        std::process::exit(Status::Failure as i32);
    }
    Err(anyhow!(message))
}

/// [`check`] holding the maintenance lock as `holder`.
pub async fn checked(
    ledger: &dyn Ledger,
    store: &ArtifactStore,
    holder: &flowgate_ledger::LockHolder,
    grace: Duration,
    repair: bool,
) -> Result<FsckReport> {
    gc::locked(ledger, holder, check(ledger, store, grace, repair)).await
}

async fn check(ledger: &dyn Ledger, store: &ArtifactStore, grace: Duration, repair: bool) -> Result<FsckReport> {
    let inventory = ledger.inventory().await?;
    let mut problems: Vec<Problem> = inventory.check().iter().map(ledger_problem).collect();
    let objects = store.list().await?;
    let by_key: HashMap<&str, &StoredObject> = objects.iter().map(|o| (o.key.as_str(), o)).collect();
    let scratch = tempfile::tempdir()?;
    let mut by_bundle: BTreeMap<Digest, Vec<&Build>> = BTreeMap::new();
    inventory.builds.iter().for_each(|b| by_bundle.entry(b.bundle).or_default().push(b));
    for (digest, builds) in &by_bundle {
        problems.extend(check_bundle(store, &by_key, digest, builds, scratch.path()).await?);
    }
    for build in &inventory.builds {
        problems.extend(check_record(store, &by_key, build).await?);
    }
    let now = SystemTime::now();
    let in_use = gc::frames_in_use(store, &objects, &inventory.builds, grace, now).await?;
    let orphans = gc::unreferenced(&objects, &inventory.builds, &in_use);
    for orphan in &orphans {
        if let ObjectKind::Bundle(digest) | ObjectKind::FrameList(digest) = orphan.kind() {
            if let Err(why) = verify(store, &digest, &orphan.key, scratch.path()).await? {
                let message = format!("`{}` is referenced by no build and does not verify: {why}", orphan.key);
                problems.push(problem("corrupt_unreferenced_bundle", Some(orphan.key.clone()), message));
            }
        }
    }
    let leftovers: Vec<&StoredObject> = objects.iter().filter(|o| o.kind() == ObjectKind::Staging).collect();
    let mut repaired = Vec::new();
    if repair {
        // Read the ledger again: a build recorded since (reusing an orphan
        // bundle it found in the store) keeps its objects.
        let builds = ledger.inventory().await?.builds;
        let in_use = gc::frames_in_use(store, &objects, &builds, grace, now).await?;
        let still: HashSet<&str> =
            gc::unreferenced(&objects, &builds, &in_use).iter().map(|o| o.key.as_str()).collect();
        let candidates =
            leftovers.iter().copied().chain(orphans.iter().copied().filter(|o| still.contains(o.key.as_str())));
        let (old, _) = gc::split_by_age(candidates.collect(), grace, now);
        for object in gc::deletion_order(old) {
            store.delete(&object.key).await?;
            repaired.push(Object::from(object));
        }
    }
    let gone: HashSet<&str> = repaired.iter().map(|o| o.key.as_str()).collect();
    for p in &mut problems {
        p.repaired = p.key.as_deref().is_some_and(|k| gone.contains(k));
    }
    let aged = |o: &&StoredObject| {
        let age = now.duration_since(o.last_modified).unwrap_or_default();
        Aged { key: o.key.clone(), size: o.size, age_secs: age.as_secs(), deletable: age >= grace }
    };
    Ok(FsckReport {
        consistent: problems.iter().all(|p| p.repaired),
        checked: Checked {
            builds: inventory.builds.len(),
            bundles: by_bundle.len(),
            pointers: inventory.pointers.len(),
            releases: inventory.releases.len(),
            objects: objects.len(),
        },
        orphans: orphans.iter().map(aged).collect(),
        leftovers: leftovers.iter().map(aged).collect(),
        unknown: objects.iter().filter(|o| o.kind() == ObjectKind::Other).map(Object::from).collect(),
        problems,
        repaired,
    })
}

fn ledger_problem(p: &LedgerProblem) -> Problem {
    let kind = serde_json::to_value(p).ok().and_then(|v| v["kind"].as_str().map(str::to_string));
    problem(&kind.unwrap_or_else(|| "ledger".into()), None, p.to_string())
}

/// The bundle and manifest several builds may share: present, of the recorded
/// size, verifying, and the manifest equal to what the archive holds.
async fn check_bundle(
    store: &ArtifactStore,
    by_key: &HashMap<&str, &StoredObject>,
    digest: &Digest,
    builds: &[&Build],
    scratch: &Path,
) -> Result<Vec<Problem>> {
    let names = builds.iter().map(|b| format!("`{}`", b.id)).collect::<Vec<_>>().join(", ");
    let list_key = ObjectKind::FrameList(*digest).key().expect("frame lists have keys");
    let whole_key = ObjectKind::Bundle(*digest).key().expect("bundles have keys");
    let manifest_key = ObjectKind::Manifest(*digest).key().expect("manifests have keys");
    let mut problems = Vec::new();
    let mut archived: Option<Manifest> = None;
    // A bundle is its frame list, or (stored before frames) one whole object.
    let (key, stored_size) = if by_key.contains_key(list_key.as_str()) {
        match store.bundle_size(digest).await {
            Ok(size) => (list_key, size),
            Err(e @ StoreError::Corrupt { .. }) => {
                problems.push(problem("corrupt_bundle", None, format!("build {names}: {e}")));
                (list_key, None)
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        let size = by_key.get(whole_key.as_str()).map(|o| o.size);
        (if size.is_some() { whole_key } else { list_key }, size)
    };
    match stored_size {
        None if problems.is_empty() => {
            problems.push(problem("missing_bundle", None, format!("build {names}: `{key}` is not in the store")))
        }
        None => {}
        Some(size) => {
            for b in builds.iter().filter(|b| b.bundle_size != size) {
                let message =
                    format!("build `{}` records a bundle of {} bytes, `{key}` has {size}", b.id, b.bundle_size);
                problems.push(problem("bundle_size", None, message));
            }
            match verify(store, digest, &key, scratch).await? {
                Ok(manifest) => archived = Some(manifest),
                Err(why) => problems.push(problem("corrupt_bundle", None, format!("build {names}: {why}"))),
            }
        }
    }
    if !by_key.contains_key(manifest_key.as_str()) {
        problems.push(problem(
            "missing_manifest",
            None,
            format!("build {names}: `{manifest_key}` is not in the store"),
        ));
        return Ok(problems);
    }
    match store.manifest(digest).await {
        Ok(stored) if archived.as_ref().is_some_and(|a| !stored.describes(a)) => problems.push(problem(
            "manifest_mismatch",
            None,
            format!("build {names}: `{manifest_key}` does not list the files `{key}` holds"),
        )),
        Ok(_) => {}
        Err(e @ (StoreError::Corrupt { .. } | StoreError::NotFound { .. })) => {
            problems.push(problem("corrupt_manifest", None, format!("build {names}: {e}")))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(problems)
}

/// `builds/<id>.json`: present, readable, and naming the ledger's bundle
/// (a worker pulling with `--store` trusts it).
async fn check_record(
    store: &ArtifactStore,
    by_key: &HashMap<&str, &StoredObject>,
    build: &Build,
) -> Result<Vec<Problem>> {
    let key = ObjectKind::BuildRecord(build.id.clone()).key().expect("build records have keys");
    let missing = || {
        let message =
            format!("build `{}`: its record `{key}` is not in the store, so workers cannot pull it", build.id);
        vec![problem("missing_build_record", None, message)]
    };
    if !by_key.contains_key(key.as_str()) {
        return Ok(missing());
    }
    Ok(match store.build(&build.id).await {
        Ok(Some(record)) if record.bundle != build.bundle => vec![problem(
            "build_record_mismatch",
            None,
            format!("build `{}`: `{key}` names bundle `{}`, the ledger `{}`", build.id, record.bundle, build.bundle),
        )],
        Ok(Some(_)) => Vec::new(),
        Ok(None) => missing(),
        Err(e @ StoreError::Corrupt { .. }) => {
            vec![problem("corrupt_build_record", None, format!("build `{}`: {e}", build.id))]
        }
        Err(e) => return Err(e.into()),
    })
}

/// Verifies a stored bundle as `pull` does (the whole object against its
/// digest, then every entry) and returns its manifest; a remote bundle is
/// streamed to `scratch` first. The outer error is a failure to check (the
/// store unreachable); the inner one what is wrong with the bundle.
async fn verify(
    store: &ArtifactStore,
    digest: &Digest,
    key: &str,
    scratch: &Path,
) -> Result<std::result::Result<Manifest, String>> {
    let (path, downloaded) = match store.local_bundle_path(digest) {
        Some(path) => (path, false),
        None => {
            let dest = scratch.join(format!("{}.tar.zst", digest.to_hex()));
            match store.fetch_bundle(digest, &dest).await {
                Ok(()) => (dest, true),
                Err(e @ (StoreError::NotFound { .. } | StoreError::Corrupt { .. })) => return Ok(Err(e.to_string())),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let (digest, checked) = (*digest, path.clone());
    let result = tokio::task::spawn_blocking(move || read_manifest(&checked, &digest, &Limits::default())).await?;
    if downloaded {
        let _ = tokio::fs::remove_file(&path).await;
    }
    Ok(result.map_err(|e| format!("`{key}` does not verify: {e}")))
}

fn render(out: &mut String, r: &FsckReport, repair: bool) {
    let c = &r.checked;
    out.push_str(&format!(
        "Checked {} build(s), {} bundle(s), {} pointer(s), {} release(s), {} object(s).\n",
        c.builds, c.bundles, c.pointers, c.releases, c.objects
    ));
    for p in &r.problems {
        let mark = if p.repaired { "REPAIRED" } else { "PROBLEM " };
        out.push_str(&format!("{mark} {}\n", p.message));
    }
    let age_note = |a: &Aged| if a.deletable { "" } else { ", younger than the grace period" };
    for (what, list) in [("orphan  ", &r.orphans), ("leftover", &r.leftovers)] {
        for a in list.iter().filter(|a| !r.repaired.iter().any(|o| o.key == a.key)) {
            out.push_str(&format!("{what} {} ({} bytes, {}s old{})\n", a.key, a.size, a.age_secs, age_note(a)));
        }
    }
    for o in &r.unknown {
        out.push_str(&format!("unknown  {} ({} bytes; not flowgate's, left alone)\n", o.key, o.size));
    }
    for o in &r.repaired {
        out.push_str(&format!("deleted  {} ({} bytes)\n", o.key, o.size));
    }
    let cleanup = (r.orphans.len() + r.leftovers.len()).saturating_sub(r.repaired.len());
    if r.consistent {
        out.push_str("The ledger and the store are consistent.");
        if cleanup > 0 && !repair {
            out.push_str(" `flowgate fsck --repair` deletes the orphans and leftovers older than the grace period.");
        }
        out.push('\n');
    }
}
