//! The same files, paths and exec bits give the same bytes, whatever the mtimes,
//! permissions or creation order; any change of content or exec bit changes them.

mod common;

use std::fs::File;
use std::io::Write;
use std::time::{Duration, SystemTime};

use common::{pack, paths_of, write_tree};
use flowgate_bundle::PackOptions;

const FILES: &[(&str, &[u8], bool)] = &[
    ("flows/etl.py", b"from prefect import flow\n@flow\ndef etl():\n    pass\n", false),
    ("flows/report.py", b"print('report')\n", false),
    ("bin/run.sh", b"#!/bin/sh\necho hi\n", true),
    ("pyproject.toml", b"[project]\nname = 'acme'\n", false),
    ("lib/deep/nested/util.py", b"X = 1\n", false),
    ("empty.txt", b"", false),
];

fn set_mtime(path: &std::path::Path, secs_ago: u64) {
    let when = SystemTime::now() - Duration::from_secs(secs_ago);
    File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

#[test]
fn same_files_give_identical_bytes_whatever_the_metadata() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_tree(a.path(), FILES, 0o644, 0o755);
    // Reverse creation order, a different "umask" (permissions), and old mtimes.
    let reversed: Vec<_> = FILES.iter().rev().cloned().collect();
    write_tree(b.path(), &reversed, 0o600, 0o700);
    for (path, _, _) in FILES {
        set_mtime(&b.path().join(path), 86_400 * 400);
    }
    // Extra files that are not selected must not matter either.
    std::fs::write(b.path().join("untracked.log"), b"noise").unwrap();

    let (bytes_a, packed_a, manifest_a) = pack(a.path(), &paths_of(FILES), &PackOptions::default());
    let mut selection = paths_of(FILES);
    selection.reverse();
    let (bytes_b, packed_b, manifest_b) = pack(b.path(), &selection, &PackOptions::default());
    assert_eq!(manifest_a, manifest_b);
    assert_eq!(packed_a, packed_b);
    assert!(bytes_a == bytes_b, "archives differ");
    assert_eq!(flowgate_core::Digest::of(&bytes_a), packed_a.digest, "the digest is BLAKE3 of the stored bytes");
    assert_eq!(packed_a.size, bytes_a.len() as u64);
}

#[test]
fn one_changed_byte_or_exec_bit_changes_the_digest() {
    let base = tempfile::tempdir().unwrap();
    write_tree(base.path(), FILES, 0o644, 0o755);
    let (_, original, _) = pack(base.path(), &paths_of(FILES), &PackOptions::default());

    let changed = tempfile::tempdir().unwrap();
    write_tree(changed.path(), FILES, 0o644, 0o755);
    std::fs::write(changed.path().join("flows/report.py"), b"print('reporT')\n").unwrap();
    let (_, other, _) = pack(changed.path(), &paths_of(FILES), &PackOptions::default());
    assert_ne!(original.digest, other.digest);

    let exec = tempfile::tempdir().unwrap();
    let flipped: Vec<_> =
        FILES.iter().map(|(p, c, x)| (*p, *c, if *p == "flows/etl.py" { true } else { *x })).collect();
    write_tree(exec.path(), &flipped, 0o644, 0o755);
    let (_, exec_packed, manifest) = pack(exec.path(), &paths_of(FILES), &PackOptions::default());
    assert!(manifest.get("flows/etl.py").unwrap().executable);
    assert_ne!(original.digest, exec_packed.digest);
}

#[test]
fn entries_are_sorted_regular_files_with_fixed_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{}long.py", "very-long-directory-name/".repeat(12));
    let mut files: Vec<(&str, &[u8], bool)> = FILES.to_vec();
    files.push((&long, b"long = True\n", false));
    write_tree(dir.path(), &files, 0o664, 0o775);
    let (bytes, _, _) = pack(dir.path(), &paths_of(&files), &PackOptions::default());
    let tar_bytes = zstd::decode_all(&bytes[..]).unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
        assert_eq!((h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()), (0, 0, 0));
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let expected_mode = if path == "bin/run.sh" { 0o755 } else { 0o644 };
        assert_eq!(h.mode().unwrap(), expected_mode, "{path}");
        seen.push(path);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert!(seen.contains(&long), "the long path survives through its PAX header");
    assert_eq!(seen.len(), files.len());
}

/// Our digests rely on zstd's streaming multithreaded output not depending on the
/// number of workers (>= 1): pin it on input spanning several zstd jobs.
#[test]
fn zstd_workers_do_not_change_the_bytes() {
    let mut data = Vec::with_capacity(32 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while data.len() < 32 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!("line {} value {}\n", x % 1000, x % 97);
        data.extend_from_slice(line.as_bytes());
    }
    let compress = |workers: u32| {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), flowgate_bundle::ZSTD_LEVEL).unwrap();
        enc.multithread(workers).unwrap();
        enc.include_checksum(true).unwrap();
        for chunk in data.chunks(1 << 16) {
            enc.write_all(chunk).unwrap();
        }
        enc.finish().unwrap()
    };
    let one = compress(1);
    for workers in [2, 3, 4] {
        assert!(compress(workers) == one, "{workers} workers gave other bytes than 1");
    }
}
