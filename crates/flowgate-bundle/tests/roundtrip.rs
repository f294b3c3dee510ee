//! Packing then installing gives back the same files and exec bits; the manifest
//! read back from the archive equals the one scanned; a second install is a lookup.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{archive_file, pack, paths_of, write_tree};
use flowgate_bundle::{
    manifest_from_json, manifest_to_json, read_manifest, scan, write_archive, BundleError, Cache, Limits, PackOptions,
};

const FILES: &[(&str, &[u8], bool)] = &[
    ("flows/etl.py", b"from prefect import flow\n", false),
    ("bin/run.sh", b"#!/bin/sh\necho hi\n", true),
    ("lib/a/b/c.py", b"C = 3\n", false),
    ("empty", b"", false),
];

#[test]
fn pack_then_install_gives_the_same_files_and_exec_bits() {
    let src = tempfile::tempdir().unwrap();
    let mut files = FILES.to_vec();
    let big: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    files.push(("data/big.bin", &big, false)); // larger than a frame: cut into three
    write_tree(src.path(), &files, 0o600, 0o700);
    let (bytes, packed, manifest) = pack(src.path(), &paths_of(&files), &PackOptions::default());
    let work = tempfile::tempdir().unwrap();
    let (archive, digest) = archive_file(work.path(), &bytes);
    assert_eq!(digest, packed.digest);

    let cache = Cache::new(work.path().join("cache"));
    assert!(cache.lookup(&digest).is_none());
    let dir = cache.install(&digest, &archive, &Limits::default()).unwrap();
    assert_eq!(dir, work.path().join("cache").join(digest.to_hex()));
    for (path, content, exec) in &files {
        let full = dir.join(path);
        assert_eq!(fs::read(&full).unwrap(), *content, "{path}");
        let mode = fs::metadata(&full).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, if *exec { 0o755 } else { 0o644 }, "{path}");
    }
    assert_eq!(cache.lookup(&digest), Some(dir.clone()));
    // Only the digest directory is in the cache: the temp dir was renamed, not copied.
    assert_eq!(common::listing(&work.path().join("cache")), vec![digest.to_hex()]);

    // A second install is a lookup, even if the archive is gone.
    fs::remove_file(&archive).unwrap();
    assert_eq!(cache.install(&digest, &archive, &Limits::default()).unwrap(), dir);

    // The manifest read back from the archive is the one scanned (md5 included).
    let (archive, _) = archive_file(work.path(), &bytes);
    assert_eq!(read_manifest(&archive, &digest, &Limits::default()).unwrap(), manifest);
}

/// Unpacking while the bytes arrive gives the same directory as installing the
/// file; bytes that do not hash to the digest install nothing, even though
/// every entry was unpacked before the end showed it.
#[test]
fn an_archive_installs_from_a_stream_only_if_it_hashes_to_its_digest() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), FILES, 0o644, 0o755);
    let (bytes, packed, _) = pack(src.path(), &paths_of(FILES), &PackOptions::default());
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::new(work.path().join("cache"));

    let wrong = flowgate_core::Digest::of(b"another bundle");
    let err = cache.install_from_reader(&wrong, &bytes[..], &Limits::default()).unwrap_err();
    assert!(matches!(err, BundleError::DigestMismatch { .. }), "{err:?}");
    assert!(common::listing(&work.path().join("cache")).is_empty(), "nothing is left of the unverified unpack");
    let cut = cache.install_from_reader(&packed.digest, &bytes[..bytes.len() - 3], &Limits::default());
    assert!(cut.is_err(), "a truncated stream installs nothing");
    assert!(common::listing(&work.path().join("cache")).is_empty());

    let dir = cache.install_from_reader(&packed.digest, &bytes[..], &Limits::default()).unwrap();
    assert_eq!(dir, cache.path_of(&packed.digest));
    for (path, content, _) in FILES {
        assert_eq!(fs::read(dir.join(path)).unwrap(), *content, "{path}");
    }
    assert_eq!(common::listing(&work.path().join("cache")), vec![packed.digest.to_hex()]);
}

#[test]
fn md5_is_kept_for_python_files_only_and_matches_a_known_value() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("a.py", b"abc", false), ("a.txt", b"abc", false)], 0o644, 0o755);
    let scanned = scan(src.path(), &["a.py".into(), "a.txt".into()], &PackOptions::default()).unwrap();
    // RFC 1321 test suite: MD5("abc").
    assert_eq!(scanned.manifest.files[0].md5.as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
    assert_eq!(scanned.manifest.files[0].blake3, flowgate_core::Digest::of(b"abc"));
    assert_eq!(scanned.manifest.files[1].md5, None);
    let json = String::from_utf8(flowgate_bundle::manifest_to_json(&scanned.manifest)).unwrap();
    assert_eq!(json.matches("md5").count(), 1, "no md5 key for a file without one: {json}");
}

#[test]
fn manifest_json_round_trips_and_rejects_unsafe_paths() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), FILES, 0o644, 0o755);
    let (_, _, manifest) = pack(src.path(), &paths_of(FILES), &PackOptions::default());
    let json = manifest_to_json(&manifest);
    assert_eq!(manifest_from_json(&json).unwrap(), manifest);
    let hostile = String::from_utf8(json).unwrap().replace("lib/a/b/c.py", "../../c.py");
    let err = manifest_from_json(hostile.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("`../../c.py`"), "{err}");
    assert!(manifest_from_json(b"{").is_err());
}

#[test]
fn a_file_changed_after_the_scan_is_named() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), FILES, 0o644, 0o755);
    let scanned = scan(src.path(), &paths_of(FILES), &PackOptions::default()).unwrap();
    fs::write(src.path().join("lib/a/b/c.py"), b"C = 4\n").unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let err = write_archive(src.path(), &scanned.manifest, &mut out, &PackOptions::default()).unwrap_err();
    assert!(matches!(err, BundleError::Changed { .. }), "{err:?}");
    assert!(err.to_string().contains("`lib/a/b/c.py`"), "{err}");
}

#[test]
fn scan_refuses_symlinks_directories_bad_paths_and_oversize_files() {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), FILES, 0o644, 0o755);
    std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
    let opts = PackOptions::default();
    for (path, needle) in
        [("link", "symbolic link"), ("lib", "directory"), ("../x", "leaves"), ("/etc/passwd", "absolute")]
    {
        let err = scan(src.path(), &[path.to_string()], &opts).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("`{path}`")) && text.contains(needle), "{text}");
    }
    std::os::unix::fs::symlink("/etc", src.path().join("etc")).unwrap();
    let err = scan(src.path(), &["etc/passwd".into()], &opts).unwrap_err();
    assert!(err.to_string().contains("`etc`"), "{err}");
    let err = scan(src.path(), &["empty".into(), "empty".into()], &opts).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    let small = PackOptions { limits: Limits { max_file_bytes: 4, ..Limits::default() }, ..PackOptions::default() };
    let err = scan(src.path(), &["bin/run.sh".into()], &small).unwrap_err();
    assert!(matches!(err, BundleError::TooLarge { .. }) && err.to_string().contains("`bin/run.sh`"), "{err}");
}

// Property tests (issue 5): any tree of files, named with unicode and spaces,
// nested, empty or executable, packs and installs back to the same contents and
// normalized modes, and packs to the same bytes from a copy made another way.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

/// One path component: letters, digits, spaces, dots, dashes and some non-ASCII
/// (accents, CJK, an emoji); never `.` or `..`, which no bundle may hold.
fn component() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._~é中😀-]{1,12}".prop_filter("`.` and `..` are not names", |c| c != "." && c != "..")
}

/// A path of one to four components.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..=4).prop_map(|parts| parts.join("/"))
}

/// Empty files are drawn often; others up to 3 KiB of any bytes.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![1 => Just(Vec::new()), 3 => prop::collection::vec(any::<u8>(), 0..3072)]
}

/// Files by path, with no path that is also a directory of another file.
fn tree() -> impl Strategy<Value = BTreeMap<String, (Vec<u8>, bool)>> {
    prop::collection::btree_map(path(), (content(), any::<bool>()), 1..16).prop_map(|mut files| {
        let paths: Vec<String> = files.keys().cloned().collect();
        files.retain(|p, _| !paths.iter().any(|other| other.starts_with(&format!("{p}/"))));
        files
    })
}

/// Every regular file under `root` with its bytes and permission bits; panics on
/// anything else (a link, a device), which an install must never make.
fn installed(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            installed(root, &entry.path(), out);
        } else {
            assert!(kind.is_file(), "`{}` is neither a file nor a directory", entry.path().display());
            let relative = entry.path().strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            out.insert(relative, (fs::read(entry.path()).unwrap(), mode));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_tree_round_trips_and_packs_to_the_same_bytes(
        files in tree(),
        plain_mode in prop::sample::select(vec![0o600u32, 0o640, 0o644, 0o664]),
        exec_mode in prop::sample::select(vec![0o700u32, 0o711, 0o755, 0o775]),
    ) {
        let listed: Vec<(&str, &[u8], bool)> =
            files.iter().map(|(p, (bytes, exec))| (p.as_str(), bytes.as_slice(), *exec)).collect();
        let a = tempfile::tempdir().unwrap();
        write_tree(a.path(), &listed, 0o644, 0o755);
        let (bytes, packed, manifest) = pack(a.path(), &paths_of(&listed), &PackOptions::default());

        // A second copy, written in reverse order with other permission bits and
        // selected in reverse order, packs to the very same bytes.
        let b = tempfile::tempdir().unwrap();
        let reversed: Vec<_> = listed.iter().rev().cloned().collect();
        write_tree(b.path(), &reversed, plain_mode, exec_mode);
        let (again, packed_again, _) = pack(b.path(), &paths_of(&reversed), &PackOptions::default());
        prop_assert!(bytes == again, "two packs of the same tree differ");
        prop_assert_eq!(&packed, &packed_again);

        let work = tempfile::tempdir().unwrap();
        let (archive, digest) = archive_file(work.path(), &bytes);
        prop_assert_eq!(digest, packed.digest);
        prop_assert_eq!(read_manifest(&archive, &digest, &Limits::default()).unwrap(), manifest);
        let dir = Cache::new(work.path().join("cache")).install(&digest, &archive, &Limits::default()).unwrap();
        let mut got = BTreeMap::new();
        installed(&dir, &dir, &mut got);
        let want: BTreeMap<String, (Vec<u8>, u32)> = files
            .iter()
            .map(|(p, (bytes, exec))| (p.clone(), (bytes.clone(), if *exec { 0o755 } else { 0o644 })))
            .collect();
        prop_assert_eq!(got, want);
    }
}
