//! The stat index: a rescan of an unchanged tree reads no file contents (the scan
//! counts the files it opened and read), remembers the archive digest of a manifest,
//! and still notices a content change that kept size and mtime (ctime moves); an
//! entry hashed without an MD5 is read again once its MD5 is wanted.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::sync::Arc;
use std::time::Duration;

use common::write_tree;
use flowgate_bundle::{scan, write_archive, PackOptions};

#[test]
fn an_unchanged_tree_is_rescanned_from_stats_only() {
    let src = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..200).map(|i| format!("pkg{}/mod{i}.py", i % 7)).collect();
    let contents: Vec<Vec<u8>> = names.iter().map(|n| format!("# {n}\nX = 1\n").into_bytes()).collect();
    let files: Vec<(&str, &[u8], bool)> =
        names.iter().zip(&contents).map(|(n, c)| (n.as_str(), &c[..], false)).collect();
    write_tree(src.path(), &files, 0o644, 0o755);
    // Files changed within the last 2 s are "racy" and never trusted from stats alone.
    std::thread::sleep(Duration::from_millis(2_200));

    let cache = tempfile::tempdir().unwrap();
    let opts = PackOptions { index_path: Some(cache.path().join("index.bin")), ..PackOptions::default() };
    let first = scan(src.path(), &names, &opts).unwrap();
    assert_eq!(first.hashed, 200);
    assert!(first.known_digest.is_none());

    let second = scan(src.path(), &names, &opts).unwrap();
    assert_eq!(second.hashed, 0, "an unchanged tree must not be read again");
    assert_eq!(second.manifest, first.manifest);

    let mut out = tempfile::tempfile().unwrap();
    let packed = write_archive(src.path(), &second.manifest, &mut out, &opts).unwrap();
    let third = scan(src.path(), &names, &opts).unwrap();
    assert_eq!(third.known_digest, Some(packed.digest));
    assert_eq!(third.hashed, 0);

    // Same size, mtime put back: only the ctime tells, and it is enough.
    let target = src.path().join(&names[5]);
    let old_mtime = fs::metadata(&target).unwrap().modified().unwrap();
    let changed = contents[5].iter().map(|b| if *b == b'1' { b'2' } else { *b }).collect::<Vec<u8>>();
    assert_eq!(changed.len(), contents[5].len());
    fs::write(&target, &changed).unwrap();
    File::options().write(true).open(&target).unwrap().set_modified(old_mtime).unwrap();
    let fourth = scan(src.path(), &names, &opts).unwrap();
    assert_eq!(fourth.hashed, 1);
    assert_eq!(fourth.manifest.get(&names[5]).unwrap().blake3, flowgate_core::Digest::of(&changed));
    assert_ne!(fourth.manifest, first.manifest);
    assert!(fourth.known_digest.is_none(), "a different manifest has no remembered archive");
}

#[test]
fn a_damaged_index_only_costs_a_rehash() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("a.py", b"a", false), ("b.py", b"b", true)], 0o644, 0o755);
    let cache = tempfile::tempdir().unwrap();
    let index = cache.path().join("nested/index.bin");
    let opts = PackOptions { index_path: Some(index.clone()), ..PackOptions::default() };
    let names = vec!["a.py".to_string(), "b.py".to_string()];
    let clean = scan(src.path(), &names, &PackOptions::default()).unwrap();
    fs::create_dir_all(index.parent().unwrap()).unwrap();
    fs::write(&index, b"FGIDX\0\0\x01 this is not an index").unwrap();
    let scanned = scan(src.path(), &names, &opts).unwrap();
    assert_eq!(scanned.hashed, 2);
    assert_eq!(scanned.manifest, clean.manifest);
}

#[test]
fn md5s_are_kept_for_the_named_files_only_and_an_index_entry_without_one_is_not_trusted_for_one() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("flows/a.py", b"abc", false), ("lib/b.py", b"b = 1\n", false)], 0o644, 0o755);
    std::thread::sleep(Duration::from_millis(2_200));
    let names = vec!["flows/a.py".to_string(), "lib/b.py".to_string()];
    let cache = tempfile::tempdir().unwrap();
    let only = |paths: &[&str]| PackOptions {
        index_path: Some(cache.path().join("index.bin")),
        md5_only_for: Some(Arc::new(paths.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>())),
        ..PackOptions::default()
    };

    let first = scan(src.path(), &names, &only(&["flows/a.py"])).unwrap();
    // RFC 1321 test suite: MD5("abc").
    assert_eq!(first.manifest.files[0].md5.as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
    assert_eq!(first.manifest.files[1].md5, None, "lib/b.py is not named: no MD5 pass over it");
    assert_eq!(first.hashed, 2);

    // lib/b.py becomes an entrypoint: its index entry has no MD5, so it is read again.
    let second = scan(src.path(), &names, &only(&["flows/a.py", "lib/b.py"])).unwrap();
    assert_eq!(second.hashed, 1, "only the file whose MD5 is newly wanted is read");
    // `printf 'b = 1\n' | md5sum`
    assert_eq!(second.manifest.files[1].md5.as_deref(), Some("728e8cdd2bfe2d8fe1cda57e6265b077"));
    assert_eq!(second.manifest.files[0], first.manifest.files[0]);

    // Back to one entrypoint: nothing is read, and the manifest keeps one MD5 again.
    let third = scan(src.path(), &names, &only(&["flows/a.py"])).unwrap();
    assert_eq!(third.hashed, 0);
    assert_eq!(third.manifest, first.manifest);
}
