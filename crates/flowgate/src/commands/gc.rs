//! `flowgate gc --keep-last N --keep-days D [--grace 1h] [--dry-run]`: deletes
//! the builds nothing keeps (pointers, the last N revisions, builds younger
//! than D days or the grace period, pins, running rollouts, what Prefect
//! deployments were last synced to: see `flowgate_ledger::retention`), then every store
//! object no remaining build references, except objects younger than the grace
//! period (a build may still be uploading them). Ledger rows go first and store
//! objects after, so a crash in between leaves unreferenced objects (the next
//! gc or `fsck --repair` removes them), never a build without its bundle.
//! In direct mode it first closes the preview envs past their time to live
//! (their deployments deleted on the Prefect server, see `preview.rs`).
//! Also the helpers `fsck` shares: the maintenance lock, the grace period, and
//! which objects are unreferenced.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use chrono::{DateTime, Utc};
use flowgate_core::retention::{self, KeepReason};
use flowgate_core::{parse_duration, Build, BuildId, Digest};
use flowgate_ledger::{Ledger, LockHolder};
use flowgate_store::ArtifactStore;
use flowgate_store::{ObjectKind, StoredObject};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::cli::GcArgs;
use crate::client::ServerClient;
use crate::exit::usage;
use crate::printer::Printer;
use crate::project::{actor, Project};

/// What `gc --json` prints, and a server answers for its store.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    dry_run: bool,
    /// Every kept build with why.
    kept: Vec<Kept>,
    /// Builds deleted from the ledger (with --dry-run: that would be).
    deleted_builds: Vec<Build>,
    /// Objects deleted from the store (with --dry-run: that would be).
    deleted_objects: Vec<Object>,
    /// Unreferenced objects left because they are younger than the grace period.
    young_objects: Vec<Object>,
    freed_bytes: u64,
    /// Preview envs closed because they expired (with --dry-run: that would
    /// be), each with its deleted deployments; direct mode only.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    closed_previews: Vec<super::preview::Closed>,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Kept {
    #[schema(value_type = String)]
    build: BuildId,
    reasons: Vec<KeepReason>,
}

#[derive(Serialize, Deserialize, Clone, ToSchema)]
pub(super) struct Object {
    pub key: String,
    pub size: u64,
}

impl From<&StoredObject> for Object {
    fn from(o: &StoredObject) -> Self {
        Self { key: o.key.clone(), size: o.size }
    }
}

/// What gc keeps: the last N revisions of every (flow, env), builds of the
/// last D days, and anything younger than the grace period.
pub struct Retain {
    pub keep_last: u32,
    pub keep_days: u32,
    pub grace: Duration,
    pub dry_run: bool,
}

pub async fn run(project: &Project, args: GcArgs, printer: Printer) -> Result<()> {
    let retain = Retain {
        keep_last: args.keep_last,
        keep_days: args.keep_days,
        grace: grace(&args.grace)?,
        dry_run: args.dry_run,
    };
    let report: GcReport = match ServerClient::from_env().await? {
        Some(server) => {
            let body = json!({
                "keep_last": args.keep_last, "keep_days": args.keep_days, "grace": args.grace, "dry_run": args.dry_run,
            });
            server.post(&format!("/projects/{}/gc", project.config.project_name()), &body).await?
        }
        None => {
            let ledger = project.ledger().await?;
            let closed_previews = close_expired_previews(project, ledger.as_ref(), args.dry_run).await?;
            let report = collect(ledger.as_ref(), &project.store()?, &holder(project, "gc"), &retain).await?;
            GcReport { closed_previews, ..report }
        }
    };
    printer.result(&report, |out| render(out, &report, &args.grace))
}

/// Closes every open preview env whose time to live has run out.
async fn close_expired_previews(
    project: &Project,
    ledger: &dyn Ledger,
    dry_run: bool,
) -> Result<Vec<super::preview::Closed>> {
    let now = Utc::now();
    let mut closed = Vec::new();
    for preview in ledger.previews().await?.into_iter().filter(|p| p.expired(now)) {
        closed.push(if dry_run {
            super::preview::Closed { env: preview.env, branch: preview.branch, deleted: Vec::new(), open: true }
        } else {
            super::preview::close(project, ledger, &preview, now).await?
        });
    }
    Ok(closed)
}

/// Deletes from `ledger` the builds `retain` does not keep, then the objects
/// of `store` no remaining build references, holding the maintenance lock.
pub async fn collect(
    ledger: &dyn Ledger,
    store: &ArtifactStore,
    holder: &LockHolder,
    retain: &Retain,
) -> Result<GcReport> {
    let grace = retain.grace;
    locked(ledger, holder, async {
        let now = Utc::now();
        let inventory = ledger.inventory().await?;
        let keep_for = Duration::from_secs(u64::from(retain.keep_days) * 86_400).max(grace);
        // A build younger than the grace period is kept like its objects: its
        // `flowgate build` may not have written its build record yet.
        let keep_since = chrono::Duration::from_std(keep_for)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let plan = retention::plan(&inventory, retain.keep_last, keep_since);
        let ids: Vec<BuildId> = plan.delete.iter().map(|b| b.id.clone()).collect();
        let (deleted_builds, remaining) = if retain.dry_run {
            let gone: HashSet<&BuildId> = ids.iter().collect();
            (plan.delete.clone(), inventory.builds.into_iter().filter(|b| !gone.contains(&b.id)).collect())
        } else {
            let deleted = ledger.delete_builds(&ids).await?;
            // Read again: a build recorded since the inventory keeps its objects.
            (deleted, ledger.inventory().await?.builds)
        };
        let objects = store.list().await?;
        let now = SystemTime::now();
        let in_use = frames_in_use(store, &objects, &remaining, grace, now).await?;
        let (old, young) = split_by_age(unreferenced(&objects, &remaining, &in_use), grace, now);
        let mut deleted_objects = Vec::new();
        for object in deletion_order(old) {
            if !retain.dry_run {
                store.delete(&object.key).await?;
            }
            deleted_objects.push(Object::from(object));
        }
        Ok(GcReport {
            dry_run: retain.dry_run,
            kept: plan.keep.into_iter().map(|(build, reasons)| Kept { build, reasons }).collect(),
            freed_bytes: deleted_objects.iter().map(|o| o.size).sum(),
            deleted_builds,
            deleted_objects,
            young_objects: young.into_iter().map(Object::from).collect(),
            closed_previews: Vec::new(),
        })
    })
    .await
}

fn render(out: &mut String, r: &GcReport, grace: &str) {
    let (builds_verb, objects_verb) = if r.dry_run { ("Would delete", "would free") } else { ("Deleted", "freed") };
    for closed in &r.closed_previews {
        if r.dry_run {
            out.push_str(&format!("Would close expired preview `{}` of branch `{}`.\n", closed.env, closed.branch));
        } else {
            super::preview::render_closed(out, closed);
        }
    }
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    for kept in &r.kept {
        let names: HashSet<&str> = kept.reasons.iter().map(class).collect();
        names.into_iter().for_each(|name| *classes.entry(name).or_default() += 1);
    }
    let classes: Vec<String> = classes.iter().map(|(name, n)| format!("{n} {name}")).collect();
    out.push_str(&format!(
        "{builds_verb} {} build(s); kept {} ({}).\n",
        r.deleted_builds.len(),
        r.kept.len(),
        if classes.is_empty() { "none".to_string() } else { classes.join(", ") }
    ));
    for b in &r.deleted_builds {
        out.push_str(&format!(
            "  build {} commit {} made {}\n",
            b.id,
            b.short_commit(),
            b.created_at.format("%Y-%m-%d %H:%M")
        ));
    }
    out.push_str(&format!(
        "{} {} object(s), {objects_verb} {} bytes.\n",
        if r.dry_run { "Would delete" } else { "Deleted" },
        r.deleted_objects.len(),
        r.freed_bytes
    ));
    for o in &r.deleted_objects {
        out.push_str(&format!("  {} ({} bytes)\n", o.key, o.size));
    }
    if !r.young_objects.is_empty() {
        out.push_str(&format!("Left {} unreferenced object(s) younger than {grace}:\n", r.young_objects.len()));
        for o in &r.young_objects {
            out.push_str(&format!("  {} ({} bytes)\n", o.key, o.size));
        }
    }
}

/// The word a keep reason counts under in the summary line.
fn class(reason: &KeepReason) -> &'static str {
    match reason {
        KeepReason::Pointer { .. } => "pointer",
        KeepReason::Recent { .. } => "recent",
        KeepReason::Young => "young",
        KeepReason::Pinned { .. } => "pinned",
        KeepReason::Rollout { .. } => "rollout",
        KeepReason::Synced { .. } => "synced",
    }
}

/// `--grace`: a duration such as `90s`, `30m`, `1h`, `1d`.
pub fn grace(text: &str) -> Result<Duration> {
    parse_duration(text)
        .ok_or_else(|| usage(format!("`--grace {text}` is not a duration; write it as 90s, 30m, 1h or 1d")))
}

/// Who takes the maintenance lock: this command, actor, host and process.
pub(super) fn holder(project: &Project, command: &str) -> LockHolder {
    holder_as(command, actor(&project.root))
}

/// Who takes the maintenance lock: `command` as `actor`, on this host and process.
pub fn holder_as(command: &str, actor: String) -> LockHolder {
    LockHolder {
        command: command.to_string(),
        actor,
        host: host_name(),
        pid: std::process::id(),
        started_at: Utc::now(),
    }
}

/// The machine's name: the kernel's, else `HOSTNAME`, else `hostname`'s output.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            let out = std::process::Command::new("hostname").output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Runs `work` holding the maintenance lock, and releases it however `work` ends.
pub(super) async fn locked<T>(
    ledger: &dyn Ledger,
    holder: &LockHolder,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let lock = ledger.lock_maintenance(holder).await?;
    let result = work.await;
    match (result, lock.release().await) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), released) => {
            if let Err(release) = released {
                tracing::warn!(error = %release, "failed to release the maintenance lock");
            }
            Err(e)
        }
    }
}

/// Bundles, frame lists, manifests and build records no build in `builds`
/// references, and frames no list in `frames_in_use` names. Staging files and
/// objects outside flowgate's layout are not among them.
pub(super) fn unreferenced<'a>(
    objects: &'a [StoredObject],
    builds: &[Build],
    frames_in_use: &HashSet<Digest>,
) -> Vec<&'a StoredObject> {
    let bundles: HashSet<&Digest> = builds.iter().map(|b| &b.bundle).collect();
    let ids: HashSet<&BuildId> = builds.iter().map(|b| &b.id).collect();
    objects
        .iter()
        .filter(|o| match o.kind() {
            ObjectKind::Bundle(d) | ObjectKind::FrameList(d) | ObjectKind::Manifest(d) => !bundles.contains(&d),
            ObjectKind::Frame(d) => !frames_in_use.contains(&d),
            ObjectKind::BuildRecord(id) => !ids.contains(&id),
            ObjectKind::Staging | ObjectKind::Other => false,
        })
        .collect()
}

/// The frames named by every frame list that stays: the list of a bundle of
/// `builds`, or one younger than `grace` (its build may not be in the ledger
/// yet, and the frames it shares with older bundles must outlive them).
pub(super) async fn frames_in_use(
    store: &ArtifactStore,
    objects: &[StoredObject],
    builds: &[Build],
    grace: Duration,
    now: SystemTime,
) -> Result<HashSet<Digest>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    let bundles: HashSet<&Digest> = builds.iter().map(|b| &b.bundle).collect();
    let young = |o: &StoredObject| now.duration_since(o.last_modified).map_or(true, |age| age < grace);
    let lists: Vec<Digest> = objects
        .iter()
        .filter_map(|o| match o.kind() {
            ObjectKind::FrameList(d) if bundles.contains(&d) || young(o) => Some(d),
            _ => None,
        })
        .collect();
    let named: Vec<Option<Vec<flowgate_bundle::FrameRef>>> = futures::stream::iter(lists)
        .map(|digest| async move { store.bundle_frames(&digest).await })
        .buffer_unordered(flowgate_store::FRAMES_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(named.into_iter().flatten().flatten().map(|frame| frame.digest).collect())
}

/// (old enough to delete, younger than `grace`).
pub(super) fn split_by_age(
    objects: Vec<&StoredObject>,
    grace: Duration,
    now: SystemTime,
) -> (Vec<&StoredObject>, Vec<&StoredObject>) {
    objects.into_iter().partition(|o| now.duration_since(o.last_modified).is_ok_and(|age| age >= grace))
}

/// Build records, then bundles (frame lists), then frames, then manifests: a
/// build writes them in the opposite order (manifest, frames, list, record), so
/// what an interrupted deletion leaves is what an interrupted build leaves, and
/// a bundle in the store still means its frames and manifest are there.
pub(super) fn deletion_order(mut objects: Vec<&StoredObject>) -> Vec<&StoredObject> {
    objects.sort_by_key(|o| match o.kind() {
        ObjectKind::BuildRecord(_) => 0,
        ObjectKind::Bundle(_) | ObjectKind::FrameList(_) => 1,
        ObjectKind::Frame(_) => 2,
        ObjectKind::Manifest(_) => 3,
        ObjectKind::Staging | ObjectKind::Other => 4,
    });
    objects
}
