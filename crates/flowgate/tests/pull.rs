//! `flowgate pull`: inside a project (BUILD through the ledger) and as a worker
//! runs it (no project: absolute store URL, build id and digest), the cache
//! lookup on a second pull, and refusals of a wrong digest and a tampered bundle.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{bin, run};
use flowgate_testkit::GitProject;

/// Every file under `dir`, relative path → bytes.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The committed tree of HEAD, less the files the example excludes (`**/tests/**`).
fn committed_tree(p: &GitProject) -> BTreeMap<String, Vec<u8>> {
    p.git(&["ls-tree", "-r", "--name-only", "HEAD"])
        .lines()
        .filter(|f| !f.contains("/tests/"))
        .map(|f| (f.to_string(), p.git(&["show", &format!("HEAD:{f}")]).into_bytes()))
        .collect()
}

fn entries_named(dir: &Path, digest: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(digest))
        .collect()
}

#[test]
fn pull_inside_the_project_and_on_a_worker() {
    let p = GitProject::example();
    let built = run(&p, &["build", "--json"]).success().json();
    let id = built["build"]["id"].as_str().unwrap().to_string();
    let digest = built["build"]["bundle"].as_str().unwrap().to_string();

    // Inside the project: BUILD is a git ref; the text output is the directory.
    let pulled = run(&p, &["pull", "HEAD"]).success();
    let dir = PathBuf::from(pulled.stdout.trim_end());
    assert!(dir.starts_with(p.cache_dir()), "{}", dir.display());
    let expected = committed_tree(&p);
    assert!(expected.contains_key("flowgate.toml") && !expected.keys().any(|f| f.contains("tests")));
    assert_eq!(files_under(&dir), expected);

    // A second pull is a cache lookup of the same directory.
    let again = run(&p, &["pull", "HEAD", "--json"]).success().json();
    assert_eq!(again["cached"].as_bool(), Some(true), "{again}");
    assert_eq!(again["path"].as_str(), Some(dir.to_str().unwrap()));
    assert_eq!(again["build"].as_str(), Some(id.as_str()));

    // A worker: no project, an absolute store URL, the full build id and its digest.
    let worker = tempfile::tempdir().unwrap();
    let worker_cache = tempfile::tempdir().unwrap();
    let store = format!("file://{}", p.path().join(".flowgate/artifacts").display());
    let worker_dir = worker.path().to_str().unwrap();
    let cache = worker_cache.path().to_str().unwrap();
    let args = ["-C", worker_dir, "pull", &id, "--store", &store, "--digest", &digest, "--cache", cache, "--json"];
    let on_worker = p.run_in(bin(), worker.path(), &args, &[]).success().json();
    assert_eq!(on_worker["cached"].as_bool(), Some(false), "{on_worker}");
    let worker_path = PathBuf::from(on_worker["path"].as_str().unwrap());
    assert!(worker_path.starts_with(worker_cache.path()));
    assert_eq!(files_under(&worker_path), expected);
    assert_eq!(std::fs::read_dir(worker.path()).unwrap().count(), 0, "the worker's directory stays empty");

    // A wrong digest is refused before anything is fetched.
    let wrong = "0".repeat(64);
    let other_cache = tempfile::tempdir().unwrap();
    let other = other_cache.path().to_str().unwrap();
    let args = ["-C", worker_dir, "pull", &id, "--store", &store, "--digest", &wrong, "--cache", other];
    let refused = p.run_in(bin(), worker.path(), &args, &[]).expect_code(2);
    assert!(refused.stderr.contains(&format!("`{digest}`")), "{}", refused.stderr);
    assert!(refused.stderr.contains(&wrong), "{}", refused.stderr);
    assert!(entries_named(other_cache.path(), &digest).is_empty());

    // A tampered frame is refused, names the bundle, and leaves no directory for it.
    let artifacts = p.path().join(".flowgate/artifacts");
    let list = std::fs::read_to_string(artifacts.join(format!("bundles/{digest}.frames"))).unwrap();
    let first_frame = list.lines().nth(1).unwrap().split(' ').next().unwrap().to_string();
    let bundle = artifacts.join(format!("frames/{first_frame}.zst"));
    let mut bytes = std::fs::read(&bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let mut permissions = std::fs::metadata(&bundle).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&bundle, permissions).unwrap();
    std::fs::write(&bundle, bytes).unwrap();
    let args = ["-C", worker_dir, "pull", &id, "--store", &store, "--digest", &digest, "--cache", other];
    let tampered = p.run_in(bin(), worker.path(), &args, &[]);
    assert_eq!(tampered.code, 1, "{}", tampered.stderr);
    assert!(tampered.stderr.contains(&format!("`{}`", &digest[..12])), "names the bundle: {}", tampered.stderr);
    assert!(entries_named(other_cache.path(), &digest).is_empty(), "the cache has a directory for the tampered bundle");
    // Inside the project the cached copy made before the tampering still serves.
    let cached = run(&p, &["pull", &id[..8], "--json"]).success().json();
    assert_eq!(cached["cached"].as_bool(), Some(true));
}
