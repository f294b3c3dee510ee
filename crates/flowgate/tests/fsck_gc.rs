//! Issue 5: `flowgate gc` keeps every class of needed build (pointer, last N
//! revisions, young, pinned, in a running rollout) and deletes the rest with
//! their objects, never an object younger than the grace period; `--dry-run`
//! changes nothing. `flowgate fsck` finds a missing bundle, a flipped byte, a
//! pointer to an unknown build and a history gap (crafted in SQL), and
//! `--repair` deletes only staging leftovers and orphans. On PostgreSQL a
//! second maintenance run exits 4 naming the holder.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use common::{ledger_dump, run, state};
use flowgate_bundle::{scan, write_archive, PackOptions};
use flowgate_core::{Build, FlowKey, Images};
use flowgate_ledger::{Ledger, LedgerUrl, LockHolder};
use flowgate_store::ArtifactStore;
use flowgate_testkit::GitProject;
use serde_json::Value;

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

fn ledger_url(p: &GitProject) -> String {
    let toml = p.read("flowgate.toml");
    let line = toml.lines().find(|l| l.starts_with("ledger = ")).map(|l| l[10..l.len() - 1].to_string());
    line.unwrap_or_else(|| common::LEDGER_URL.to_string())
}

async fn ledger(p: &GitProject) -> Box<dyn Ledger> {
    let url: LedgerUrl = ledger_url(p).parse().unwrap();
    flowgate_ledger::open(&url, p.path()).await.unwrap()
}

fn store(p: &GitProject) -> ArtifactStore {
    ArtifactStore::open("file://.flowgate/artifacts", p.path()).unwrap()
}

fn artifacts(p: &GitProject) -> PathBuf {
    p.path().join(".flowgate/artifacts")
}

/// What `flowgate build` does, for a bundle of one file saying `n`, with
/// chosen images and time: builds of one `n` share a bundle.
fn craft(p: &GitProject, n: u32, image: &str, days_old: i64, record: bool) -> Build {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.py"), format!("n = {n}\n")).unwrap();
    let opts = PackOptions::default();
    let scanned = scan(dir.path(), &["f.py".to_string()], &opts).unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let packed = write_archive(dir.path(), &scanned.manifest, file.as_file_mut(), &opts).unwrap();
    let images: Images = [("etl-daily".parse::<FlowKey>().unwrap(), image.to_string())].into_iter().collect();
    let build = Build {
        id: Build::derive_id(&packed.digest, &images),
        bundle: packed.digest,
        bundle_size: packed.size,
        file_count: 1,
        images,
        commit: p.git(&["rev-parse", "HEAD"]).trim().to_string(),
        branch: Some("main".into()),
        dirty: false,
        author: "Crafted <crafted@example.com>".into(),
        created_at: Utc::now() - chrono::Duration::days(days_old),
    };
    let s = store(p);
    block_on(async {
        s.put_manifest(&build.bundle, &scanned.manifest).await.unwrap();
        s.put_bundle(&build.bundle, file.path()).await.unwrap();
        if record {
            ledger(p).await.record_build(&build).await.unwrap();
            s.put_build(&build).await.unwrap();
        }
    });
    build
}

/// Sets the modification time of every file under the store `age` back.
fn age_store(p: &GitProject, age: Duration) {
    for (path, _) in p.tree_listing(".flowgate/artifacts") {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }
}

fn keys(p: &GitProject) -> BTreeSet<String> {
    let root = artifacts(p);
    p.tree_listing(".flowgate/artifacts").into_iter().map(|(f, _)| relative(&root, &f)).collect()
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap().to_string_lossy().into_owned()
}

fn objects_of(b: &Build) -> [String; 3] {
    let hex = b.bundle.to_hex();
    [format!("builds/{}.json", b.id), format!("bundles/{hex}.tar.zst"), format!("manifests/{hex}.json")]
}

fn ids(doc: &Value, field: &str) -> BTreeSet<String> {
    doc[field].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_string()).collect()
}

fn set(items: &[&Build]) -> BTreeSet<String> {
    items.iter().map(|b| b.id.to_string()).collect()
}

#[test]
fn gc_keeps_pointer_recent_young_pinned_and_rollout_builds_and_deletes_the_rest() {
    let p = GitProject::example();
    run(&p, &["status"]).success();
    let [o1, o2, o3, o4] = [1, 2, 3, 4].map(|n| craft(&p, n, "img:a", 10, true));
    let o5 = craft(&p, 2, "img:b", 10, true); // shares o2's bundle
    let (o6, o7, young) =
        (craft(&p, 6, "img:a", 10, true), craft(&p, 7, "img:a", 10, true), craft(&p, 8, "img:a", 0, true));
    for b in [&o1, &o2, &o3, &o4] {
        run(&p, &["release", "etl-daily", "--env", "qa", "--build", b.id.as_str()]).success();
    }
    run(&p, &["pin", o5.id.as_str(), "--reason", "audit"]).success();
    run(&p, &["rollout", "start", "--to", "prod", "--build", o6.id.as_str(), "--detach"]).success();
    age_store(&p, Duration::from_secs(7200));
    let gc = ["gc", "--keep-last", "2", "--keep-days", "1", "--grace", "1h", "--json"];

    let before = state(&p);
    let dry = run(&p, &[&gc[..], &["--dry-run"][..]].concat()).success().json();
    assert_eq!(state(&p), before, "--dry-run changed the ledger or the store");
    assert_eq!(ids(&dry, "deleted_builds"), set(&[&o1, &o2, &o7]), "{dry:#}");

    let done = run(&p, &gc).success().json();
    assert_eq!(ids(&done, "deleted_builds"), set(&[&o1, &o2, &o7]), "{done:#}");
    assert_eq!(done["deleted_objects"], dry["deleted_objects"]);
    let kept: Vec<(String, Vec<String>)> = done["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let reasons = k["reasons"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap().to_string());
            (k["build"].as_str().unwrap().to_string(), reasons.collect())
        })
        .collect();
    let expect = |b: &Build, r: &[&str]| (b.id.to_string(), r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut expected = vec![
        expect(&o3, &["recent"]),
        expect(&o4, &["pointer", "recent"]),
        expect(&o5, &["pinned"]),
        expect(&o6, &["rollout"]),
        expect(&young, &["young"]),
    ];
    expected.sort();
    assert_eq!(kept, expected);

    // o1 and o7 lose every object; o2 only its record: o5 still needs the shared bundle.
    let mut gone: BTreeSet<String> = [&o1, &o7].iter().flat_map(|b| objects_of(b)).collect();
    gone.insert(objects_of(&o2)[0].clone());
    let deleted: BTreeSet<String> =
        done["deleted_objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(deleted, gone);
    let left = keys(&p);
    assert!(gone.iter().all(|k| !left.contains(k)), "{left:?}");
    for b in [&o3, &o4, &o5, &o6, &young] {
        assert!(objects_of(b).iter().all(|k| left.contains(k)), "objects of kept build {} went: {left:?}", b.id);
    }
    let freed: u64 = done["deleted_objects"].as_array().unwrap().iter().map(|o| o["size"].as_u64().unwrap()).sum();
    assert_eq!(done["freed_bytes"].as_u64(), Some(freed));
    assert!(freed > 0);

    // History keeps naming deleted builds, and every reader copes.
    let history = run(&p, &["history", "etl-daily", "--env", "qa", "--json"]).success().json();
    let named: Vec<&str> = history.as_array().unwrap().iter().map(|r| r["build"].as_str().unwrap()).collect();
    assert_eq!(named, vec![o4.id.as_str(), o3.id.as_str(), o2.id.as_str(), o1.id.as_str()]);
    run(&p, &["history", "etl-daily", "--env", "qa"]).success();
    run(&p, &["status"]).success();
    run(&p, &["diff", "qa", "prod"]).success();
    run(&p, &["fsck"]).success();
    let again = run(&p, &gc).success().json();
    assert!(again["deleted_builds"].as_array().unwrap().is_empty() && again["freed_bytes"] == 0, "{again:#}");
}

#[test]
fn gc_never_deletes_an_object_younger_than_the_grace_period() {
    let p = GitProject::example();
    run(&p, &["status"]).success();
    let old = craft(&p, 1, "img:a", 10, true);
    let orphan = craft(&p, 2, "img:a", 10, false);
    let fresh = craft(&p, 3, "img:a", 0, true);
    let gc = ["gc", "--keep-last", "0", "--keep-days", "0", "--grace", "1h", "--json"];

    // Everything was just written: the old build's row goes, no object does;
    // the build made now is kept whole, as if its `flowgate build` were still running.
    let first = run(&p, &gc).success().json();
    assert_eq!(ids(&first, "deleted_builds"), set(&[&old]), "{first:#}");
    assert_eq!(first["freed_bytes"], 0, "{first:#}");
    let young: BTreeSet<String> =
        first["young_objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    let mut expected: BTreeSet<String> = objects_of(&old).into_iter().collect();
    expected.extend(objects_of(&orphan)[1..].iter().cloned());
    assert_eq!(young, expected);
    assert_eq!(first["kept"][0]["build"].as_str(), Some(fresh.id.as_str()));
    assert!(young.iter().all(|k| keys(&p).contains(k)));

    // Two hours later they are garbage; the kept build's objects stay.
    age_store(&p, Duration::from_secs(7200));
    let second = run(&p, &gc).success().json();
    let deleted: BTreeSet<String> =
        second["deleted_objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(deleted, expected);
    assert_eq!(keys(&p), objects_of(&fresh).into_iter().collect());
    run(&p, &["fsck"]).success();
}

fn problems(doc: &Value) -> Vec<(String, String)> {
    let list = doc["problems"].as_array().unwrap();
    list.iter().map(|p| (p["kind"].as_str().unwrap().to_string(), p["message"].as_str().unwrap().to_string())).collect()
}

fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn fsck_finds_missing_and_damaged_bundles_and_repair_removes_only_leftovers_and_orphans() {
    let p = GitProject::example();
    let b1 = run(&p, &["build", "--json"]).success().json()["build"].clone();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    p.write("lib/common.py", "MARKER = \"v2\"\n");
    p.commit("v2");
    let b2 = run(&p, &["build", "--json"]).success().json()["build"].clone();
    let bundle = |b: &Value| artifacts(&p).join(format!("bundles/{}.tar.zst", b["bundle"].as_str().unwrap()));
    let clean = run(&p, &["fsck", "--json"]).success().json();
    assert_eq!((clean["consistent"].as_bool(), clean["checked"]["builds"].as_u64()), (Some(true), Some(2)));

    let saved = std::fs::read(bundle(&b1)).unwrap();
    std::fs::remove_file(bundle(&b1)).unwrap();
    let missing = run(&p, &["fsck", "--json"]).expect_code(1);
    let found = problems(&missing.json());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "missing_bundle");
    assert!(found[0].1.contains(b1["id"].as_str().unwrap()), "{found:?}");
    assert!(missing.stderr.contains("fsck found 1 problem(s)"), "{}", missing.stderr);
    std::fs::write(bundle(&b1), saved).unwrap();

    // A flipped byte, leftovers of killed uploads and orphans, old and new.
    flip_byte(&bundle(&b2));
    let root = artifacts(&p);
    let orphan = craft(&p, 9, "img:a", 10, false);
    std::fs::write(root.join("bundles/0123.tar.zst#4242"), b"half a bundle").unwrap();
    age_store(&p, Duration::from_secs(7200));
    std::fs::write(root.join("manifests/0123.json#77"), b"{").unwrap();
    let young_orphan = craft(&p, 10, "img:a", 10, false);
    std::fs::write(root.join("README"), b"not flowgate's").unwrap();
    let text = run(&p, &["fsck"]).expect_code(1);
    assert!(text.stdout.contains(&format!("PROBLEM  build `{}`", b2["id"].as_str().unwrap())), "{}", text.stdout);
    assert!(text.stdout.contains("leftover bundles/0123.tar.zst#4242"), "{}", text.stdout);

    let ledger_before = ledger_dump(&p).unwrap();
    let damaged = std::fs::read(bundle(&b2)).unwrap();
    let repaired = run(&p, &["fsck", "--repair", "--json"]).expect_code(1).json();
    let found = problems(&repaired);
    assert_eq!(found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["corrupt_bundle"], "{found:?}");
    let deleted: BTreeSet<String> =
        repaired["repaired"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    let mut expected: BTreeSet<String> = objects_of(&orphan)[1..].iter().cloned().collect();
    expected.insert("bundles/0123.tar.zst#4242".into());
    assert_eq!(deleted, expected, "only old leftovers and orphans go");
    let left = keys(&p);
    assert!(objects_of(&young_orphan)[1..].iter().all(|k| left.contains(k)), "{left:?}");
    assert!(left.contains("manifests/0123.json#77") && left.contains("README"), "{left:?}");
    assert_eq!(ledger_dump(&p).unwrap(), ledger_before, "--repair never writes the ledger");
    assert!(std::fs::read(bundle(&b2)).unwrap() == damaged, "--repair never rewrites a referenced bundle");
    assert_eq!(repaired["unknown"][0]["key"], "README");

    flip_byte(&bundle(&b2));
    let ok = run(&p, &["fsck", "--json"]).success().json();
    assert_eq!(ok["consistent"], true, "{ok:#}");
}

/// On SQLite the lock is a row: held while its process lives (exit 4 naming
/// it), taken over at once when that process is gone from this host (a gc
/// killed with SIGKILL must not block the fsck that checks up on it).
#[test]
fn on_sqlite_a_live_holder_blocks_and_a_dead_one_does_not() {
    let p = GitProject::example();
    run(&p, &["status"]).success();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string());
    let Ok(host) = host else { return eprintln!("skipping: no /proc on this system") };
    let holder = |pid| LockHolder {
        command: "gc".into(),
        actor: "cron".into(),
        host: host.clone(),
        pid,
        started_at: Utc::now(),
    };
    block_on(async {
        let ledger = ledger(&p).await;
        let live = ledger.lock_maintenance(&holder(std::process::id())).await.unwrap();
        let out = run(&p, &["fsck"]).expect_code(4);
        assert!(out.stderr.contains(&format!("`gc` run by `cron` on host `{host}`")), "{}", out.stderr);
        live.release().await.unwrap();
        // A pid above Linux's pid_max: no such process. Dropped, not released, as a kill leaves it.
        drop(ledger.lock_maintenance(&holder(4_194_304 + 17)).await.unwrap());
    });
    run(&p, &["fsck"]).success();
    run(&p, &["gc", "--keep-last", "1", "--keep-days", "1"]).success();
}

const SERVER_VAR: &str = "FLOWGATE_TEST_POSTGRES_URL";
const SKIP_VAR: &str = "FLOWGATE_SKIP_POSTGRES";

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .map_err(|e| format!("`psql` could not run: {e}"))?;
    out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Polls `sql` (one value) until it prints `expected`, for at most 30 s.
fn wait_for(url: &str, sql: &str, expected: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("psql").args(["-X", "-A", "-t", "-d", url, "-c", sql]).output().unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "`{sql}` did not give {expected} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A database of its own on the test server, dropped however the test ends.
struct Database {
    server: String,
    url: String,
    name: String,
}

impl Database {
    fn create() -> Option<Self> {
        let server = std::env::var(SERVER_VAR).unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("flowgate_fsck_gc_{}", std::process::id());
        if let Err(e) = psql(&server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
            if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
                eprintln!("skipping: PostgreSQL at `{server}` is unreachable ({e}) and {SKIP_VAR}=1");
                return None;
            }
            panic!(
                "PostgreSQL at `{server}` is unreachable: {e}. Start it, point {SERVER_VAR} at it, or set {SKIP_VAR}=1"
            );
        }
        psql(&server, &format!("CREATE DATABASE {name}")).unwrap();
        let (scheme, rest) = server.split_once("://").unwrap();
        let authority = rest.split(['/', '?']).next().unwrap();
        Some(Self { url: format!("{scheme}://{authority}/{name}"), server, name })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

#[test]
fn on_postgres_a_second_maintenance_run_exits_4_and_fsck_finds_a_crafted_pointer_and_gap() {
    let Some(db) = Database::create() else { return };
    let p = GitProject::example();
    let toml = p.read("flowgate.toml").replacen("[project]\n", &format!("[project]\nledger = \"{}\"\n", db.url), 1);
    p.write("flowgate.toml", &toml);
    p.commit("PostgreSQL ledger");
    run(&p, &["build"]).success();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    p.write("lib/common.py", "MARKER = \"v2\"\n");
    p.commit("v2");
    run(&p, &["build"]).success();
    run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    run(&p, &["fsck"]).success();

    // A run holding the lock (here: this test, as `gc` would) makes gc and fsck exit 4 naming it.
    let holder = LockHolder {
        command: "gc".into(),
        actor: "night-job@example.com".into(),
        host: "ci-runner-7".into(),
        pid: 4242,
        started_at: Utc::now(),
    };
    block_on(async {
        let ledger = ledger(&p).await;
        let lock = ledger.lock_maintenance(&holder).await.unwrap();
        for args in [&["gc", "--keep-last", "1", "--keep-days", "0"][..], &["fsck", "--repair"]] {
            let out = run(&p, args).expect_code(4);
            assert!(
                out.stderr.contains("`gc` run by `night-job@example.com` on host `ci-runner-7` (pid 4242)"),
                "{}",
                out.stderr
            );
        }
        lock.release().await.unwrap();
    });

    // Two real gc processes: the first takes the lock and then waits on a table
    // this test holds locked; the second exits 4 naming the first; the first
    // then finishes.
    let mut blocker = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut script = blocker.stdin.take().unwrap();
    script.write_all(b"BEGIN;\nLOCK TABLE builds IN ACCESS EXCLUSIVE MODE;\n").unwrap();
    script.flush().unwrap();
    let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
        WHERE c.relname = 'builds' AND l.mode = 'AccessExclusiveLock' AND l.granted";
    wait_for(&db.url, held, "1");
    let gc = |actor: &str| {
        Command::new(common::bin())
            .current_dir(p.path())
            .args(["gc", "--keep-last", "1", "--keep-days", "0", "--grace", "0s"])
            .env("FLOWGATE_ACTOR", actor)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = gc("first@example.com");
    wait_for(&db.url, "SELECT count(*) FROM maintenance_lock", "1");
    let second = gc("second@example.com").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("maintenance lock is held by `gc` run by `first@example.com` on host `"), "{stderr}");
    script.write_all(b"COMMIT;\n").unwrap();
    drop(script);
    assert!(blocker.wait().unwrap().success());
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));

    // A pointer to a build the ledger never recorded, and a hole in a history, crafted in SQL.
    psql(&db.url, "ALTER TABLE pointers DROP CONSTRAINT pointers_build_id_fkey").unwrap();
    psql(&db.url, "UPDATE pointers SET build_id = 'ffff0000000000000000' WHERE flow = 'report' AND env = 'qa'")
        .unwrap();
    psql(&db.url, "DELETE FROM releases WHERE flow = 'cleanup' AND env = 'qa' AND revision = 1").unwrap();
    let before = block_on(async { ledger(&p).await.dump().await.unwrap() });
    let out = run(&p, &["fsck", "--repair", "--json"]).expect_code(1).json();
    let kinds: Vec<String> = problems(&out).into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, ["history_gap", "pointer_to_unknown_build", "pointer_not_at_latest_release"], "{out:#}");
    assert!(problems(&out)[1].1.contains("`ffff0000000000000000`"), "{out:#}");
    assert_eq!(block_on(async { ledger(&p).await.dump().await.unwrap() }), before, "fsck never writes the ledger");
}
