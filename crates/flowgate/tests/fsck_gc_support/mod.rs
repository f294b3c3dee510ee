//! Fixtures of the `gc` and `fsck` tests (fsck_gc.rs, fsck_gc_lock.rs): direct
//! access to a project's ledger and local store, builds crafted the way
//! `flowgate build` makes them (with chosen images and age), ageing the store's
//! files, and readers of the commands' JSON.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use flowgate_bundle::{scan, write_archive, PackOptions};
use flowgate_core::{Build, FlowKey, Images};
use flowgate_ledger::testing::TestLedger;
use flowgate_ledger::LedgerUrl;
use flowgate_store::ArtifactStore;
use flowgate_testkit::GitProject;
use serde_json::Value;

use crate::common;

pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

pub fn ledger_url(p: &GitProject) -> String {
    let toml = p.read("flowgate.toml");
    let line = toml.lines().find(|l| l.starts_with("ledger = ")).map(|l| l[10..l.len() - 1].to_string());
    line.unwrap_or_else(|| common::LEDGER_URL.to_string())
}

pub async fn ledger(p: &GitProject) -> TestLedger {
    let url: LedgerUrl = ledger_url(p).parse().unwrap();
    let claim = common::project_claim(p.path()).unwrap();
    flowgate_ledger::testing::open(&url, p.path(), &claim).await.unwrap()
}

pub fn store(p: &GitProject) -> ArtifactStore {
    ArtifactStore::open("file://.flowgate/artifacts", p.path()).unwrap()
}

pub fn artifacts(p: &GitProject) -> PathBuf {
    p.path().join(".flowgate/artifacts")
}

/// What `flowgate build` does, for a bundle of one file saying `n`, with
/// chosen images and time: builds of one `n` share a bundle.
pub fn craft(p: &GitProject, n: u32, image: &str, days_old: i64, record: bool) -> Build {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.py"), format!("n = {n}\n")).unwrap();
    let opts = PackOptions::default();
    let scanned = scan(dir.path(), &["f.py".to_string()], &opts).unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let packed = write_archive(dir.path(), &scanned.manifest, file.as_file_mut(), &opts).unwrap();
    let images: Images = [("etl-daily".parse::<FlowKey>().unwrap(), image.to_string())].into_iter().collect();
    let build = Build {
        id: Build::derive_id(&packed.digest, &images, &Default::default()),
        bundle: packed.digest,
        bundle_size: packed.size,
        file_count: 1,
        images,
        commit: p.git(&["rev-parse", "HEAD"]).trim().to_string(),
        branch: Some("main".into()),
        dirty: false,
        author: "Crafted <crafted@example.com>".into(),
        created_at: Utc::now() - chrono::Duration::days(days_old),
        settings: None,
    };
    let s = store(p);
    block_on(async {
        s.put_manifest(&build.bundle, &scanned.manifest).await.unwrap();
        s.put_bundle(&build.bundle, file.path()).await.unwrap();
        if record {
            ledger(p).await.record_build(build.clone()).await.unwrap();
            s.put_build(&build).await.unwrap();
        }
    });
    build
}

/// Sets the modification time of every file under the store `age` back.
pub fn age_store(p: &GitProject, age: Duration) {
    for (path, _) in p.tree_listing(".flowgate/artifacts") {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }
}

pub fn keys(p: &GitProject) -> BTreeSet<String> {
    let root = artifacts(p);
    p.tree_listing(".flowgate/artifacts").into_iter().map(|(f, _)| relative(&root, &f)).collect()
}

pub fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap().to_string_lossy().into_owned()
}

/// A build's record, its bundle's frame list and manifest (its frames, which
/// bundles share, are [`frame_keys`]).
pub fn objects_of(b: &Build) -> [String; 3] {
    let hex = b.bundle.to_hex();
    [format!("builds/{}.json", b.id), format!("bundles/{hex}.frames"), format!("manifests/{hex}.json")]
}

/// The keys of the frames a stored bundle lists.
pub fn frame_keys(p: &GitProject, b: &Build) -> BTreeSet<String> {
    let list = std::fs::read_to_string(artifacts(p).join(format!("bundles/{}.frames", b.bundle.to_hex()))).unwrap();
    list.lines().skip(1).map(|line| format!("frames/{}.zst", line.split(' ').next().unwrap())).collect()
}

/// `keys` without the frames.
pub fn no_frames(keys: BTreeSet<String>) -> BTreeSet<String> {
    keys.into_iter().filter(|k| !k.starts_with("frames/")).collect()
}

/// Every frame in the store is listed by a bundle in the store: nothing
/// unreferenced stays, nothing referenced went.
pub fn assert_frames_counted(p: &GitProject) {
    let root = artifacts(p);
    let stored = keys(p);
    let mut listed = BTreeSet::new();
    for list in stored.iter().filter(|k| k.ends_with(".frames")) {
        let text = std::fs::read_to_string(root.join(list)).unwrap();
        listed.extend(text.lines().skip(1).map(|line| format!("frames/{}.zst", line.split(' ').next().unwrap())));
    }
    let frames: BTreeSet<String> = stored.into_iter().filter(|k| k.starts_with("frames/")).collect();
    assert_eq!(frames, listed, "the frames in the store are exactly those its lists name");
}

pub fn ids(doc: &Value, field: &str) -> BTreeSet<String> {
    doc[field].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_string()).collect()
}

pub fn set(items: &[&Build]) -> BTreeSet<String> {
    items.iter().map(|b| b.id.to_string()).collect()
}

pub fn problems(doc: &Value) -> Vec<(String, String)> {
    let list = doc["problems"].as_array().unwrap();
    list.iter().map(|p| (p["kind"].as_str().unwrap().to_string(), p["message"].as_str().unwrap().to_string())).collect()
}

pub fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}
