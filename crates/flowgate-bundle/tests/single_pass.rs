//! The single-pass writer (`plan` then `Plan::write`) gives the same bytes and
//! manifest as `scan` then `write_archive`, reads each file once, teaches the index
//! so the next plan knows the manifest and digest, and can leave out deleted files;
//! a first build (nothing in the index) stats as it writes, under the same rules.

mod common;

use std::fs;
use std::time::Duration;

use common::{pack, paths_of, write_tree};
use flowgate_bundle::{plan, BundleError, Limits, PackOptions};

fn tree() -> Vec<(String, Vec<u8>, bool)> {
    let mut files: Vec<(String, Vec<u8>, bool)> = (0..300)
        .map(|i| (format!("pkg{}/m{i}.py", i % 5), format!("X = {i}\n").repeat(i % 40 + 1).into_bytes(), i % 9 == 0))
        .collect();
    // Larger than a frame (4 MiB), so it is cut into two, between groups of small files.
    files.push(("pkg2/big.csv".into(), (0..5_000_000u32).map(|i| (i % 251) as u8).collect(), false));
    files.push(("README.md".into(), b"# readme\n".to_vec(), false));
    files
}

#[test]
fn one_pass_gives_the_bytes_and_manifest_of_two_passes() {
    let src = tempfile::tempdir().unwrap();
    let owned = tree();
    let files: Vec<(&str, &[u8], bool)> = owned.iter().map(|(p, c, x)| (p.as_str(), &c[..], *x)).collect();
    write_tree(src.path(), &files, 0o644, 0o755);
    let paths = paths_of(&files);
    let (bytes, packed, manifest) = pack(src.path(), &paths, &PackOptions::default());

    let cache = tempfile::tempdir().unwrap();
    let opts = PackOptions { index_path: Some(cache.path().join("index")), ..PackOptions::default() };
    let planned = plan(src.path(), &paths, &opts).unwrap();
    assert_eq!(planned.unknown(), paths.len() as u64);
    assert!(planned.known_manifest().is_none());
    assert!(planned.known_archive().is_none());
    let mut out = tempfile::tempfile().unwrap();
    let (scanned, one_pass) = planned.write(&mut out).unwrap();
    assert_eq!(one_pass, packed);
    assert_eq!(scanned.manifest, manifest);
    assert_eq!(scanned.hashed, paths.len() as u64);
    let mut written = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Seek::rewind(&mut out).map(|()| out).unwrap(), &mut written).unwrap();
    assert_eq!(written, bytes);

    // Files written within the racy window are not trusted from stats: wait it out.
    std::thread::sleep(Duration::from_millis(2_200));
    let mut out = tempfile::tempfile().unwrap();
    let (again, _) = plan(src.path(), &paths, &opts).unwrap().write(&mut out).unwrap();
    assert_eq!(again.hashed, paths.len() as u64, "racy files were hashed again");
    let next = plan(src.path(), &paths, &opts).unwrap();
    assert_eq!(next.unknown(), 0);
    let known = next.known_manifest().unwrap();
    assert_eq!(known, manifest);
    assert_eq!(next.known_digest(&known), Some(packed.digest));
    assert_eq!(next.known_archive(), Some(packed.digest), "the plan's own key matches the manifest's");
    assert_eq!(next.file_count(), paths.len() as u64);

    // A vouched-for file whose content changes under the writer is caught by name.
    let target = src.path().join("pkg2/big.csv");
    let planned = plan(src.path(), &paths, &opts).unwrap();
    let mut content = fs::read(&target).unwrap();
    content[10] ^= 1;
    let mtime = fs::metadata(&target).unwrap().modified().unwrap();
    fs::write(&target, &content).unwrap();
    fs::File::options().write(true).open(&target).unwrap().set_modified(mtime).unwrap();
    let err = planned.write(&mut tempfile::tempfile().unwrap()).unwrap_err();
    assert!(matches!(&err, BundleError::Changed { path } if path == "pkg2/big.csv"), "{err}");
}

#[test]
fn missing_files_are_left_out_only_when_asked() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("a.py", b"a", false), ("b.py", b"b", false)], 0o644, 0o755);
    let paths: Vec<String> = ["a.py", "b.py", "gone.py", "gone_dir/c.py"].map(String::from).to_vec();
    let err = plan(src.path(), &paths, &PackOptions::default()).unwrap_err();
    assert!(err.to_string().contains("`") && err.to_string().contains("gone"), "{err}");
    let opts = PackOptions { skip_missing: true, ..PackOptions::default() };
    let (scanned, _) = plan(src.path(), &paths, &opts).unwrap().write(&mut tempfile::tempfile().unwrap()).unwrap();
    let kept: Vec<&str> = scanned.manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(kept, ["a.py", "b.py"]);
}

/// With nothing in the index (a first build) the plan leaves the stat to the
/// writer; the writer still refuses what the plan would have, by name.
#[test]
fn a_first_build_stats_while_writing_and_still_refuses_links_and_oversized_trees() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("a.py", &[b'a'; 600], false), ("b.py", &[b'b'; 600], false)], 0o644, 0o755);
    std::os::unix::fs::symlink("/etc/passwd", src.path().join("link.py")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let opts = PackOptions { index_path: Some(cache.path().join("index")), ..PackOptions::default() };
    let linked = ["a.py", "b.py", "link.py"].map(String::from).to_vec();
    let err = plan(src.path(), &linked, &opts).unwrap().write(&mut tempfile::tempfile().unwrap()).unwrap_err();
    assert!(matches!(&err, BundleError::Unsupported { path, .. } if path == "link.py"), "{err}");

    let small = Limits { max_total_bytes: 1_000, ..Limits::default() };
    let opts = PackOptions { limits: small, ..opts };
    let paths = ["a.py", "b.py"].map(String::from).to_vec();
    let err = plan(src.path(), &paths, &opts).unwrap().write(&mut tempfile::tempfile().unwrap()).unwrap_err();
    assert!(matches!(&err, BundleError::TooLarge { .. }), "{err}");
    assert!(!cache.path().join("index").exists(), "a refused build teaches the index nothing");
}

#[test]
fn a_cancelled_write_stops_with_cancelled_and_leaves_the_index_alone() {
    let src = tempfile::tempdir().unwrap();
    let owned = tree();
    let files: Vec<(&str, &[u8], bool)> = owned.iter().map(|(p, c, x)| (p.as_str(), &c[..], *x)).collect();
    write_tree(src.path(), &files, 0o644, 0o755);
    let cache = tempfile::tempdir().unwrap();
    let index = cache.path().join("index");
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = PackOptions { index_path: Some(index.clone()), cancel: Some(cancel), ..PackOptions::default() };
    let mut out = tempfile::tempfile().unwrap();
    let result = plan(src.path(), &paths_of(&files), &opts).unwrap().write(&mut out);
    assert!(matches!(result, Err(BundleError::Cancelled)), "{result:?}");
    assert!(!index.exists(), "a cancelled write taught the index");
}
