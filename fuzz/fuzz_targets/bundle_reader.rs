//! Arbitrary bytes as a bundle, through the call `flowgate pull` makes
//! (`Cache::install`: verify the digest, unpack into a temp dir, rename into the
//! cache). The digest given is the input's own, as a hostile store and build
//! record would give it, so every input reaches the decompressor and tar reader.
//!
//! It must never panic, and whatever the input it may write only inside the cache:
//! a refused bundle leaves the cache empty, an accepted one leaves exactly one
//! directory of regular files and directories whose contents and exec bits are
//! what `read_manifest` reads from the same archive.
//!
//! The first input byte picks the form: odd = the rest is a tar stream that the
//! harness compresses first (so mutations reach tar parsing instead of dying in
//! zstd's checksum), even = the rest is the archive as stored.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flowgate_bundle::{read_manifest, Cache, Limits};
use flowgate_core::Digest;
use libfuzzer_sys::fuzz_target;

/// The limits `pull` uses, scaled down so a decompression bomb costs the fuzzer
/// milliseconds instead of gigabytes; the checks that enforce them are the same.
const LIMITS: Limits =
    Limits { max_entries: 2_000, max_total_bytes: 32 << 20, max_file_bytes: 16 << 20, max_path_len: 4096 };

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else { return };
    let archive_bytes = if form & 1 == 1 { zstd::encode_all(rest, 1).expect("zstd in memory") } else { rest.to_vec() };

    // base/input/bundle.tar.zst and base/a/b/cache: an entry escaping the cache by
    // up to three `..` would land inside `base`, where the listing below sees it.
    let base = tempfile::Builder::new().prefix("flowgate-fuzz-").tempdir_in(scratch()).expect("temp dir");
    let input = base.path().join("input");
    fs::create_dir(&input).expect("input dir");
    let archive = input.join("bundle.tar.zst");
    fs::write(&archive, &archive_bytes).expect("write archive");
    let digest = Digest::of(&archive_bytes);
    let cache_root = base.path().join("a/b/cache");
    let cache = Cache::new(cache_root.clone());

    let outcome = cache.install(&digest, &archive, &LIMITS);
    // Errors must render (they name entries taken from the input).
    if let Err(e) = &outcome {
        let _ = e.to_string();
    }

    let mut everything = Vec::new();
    list(base.path(), &mut everything);
    let installed = cache.path_of(&digest);
    for path in &everything {
        // The input file, the directories leading to it and to the cache root, and
        // (only when the install succeeded) the installed bundle.
        let allowed = path == &archive
            || input.starts_with(path)
            || cache_root.starts_with(path)
            || (outcome.is_ok() && path.starts_with(&installed));
        assert!(allowed, "`{}` was written outside the cache (outcome {outcome:?})", path.display());
    }

    if let Ok(dir) = outcome {
        assert_eq!(dir, installed);
        let manifest = read_manifest(&archive, &digest, &LIMITS).expect("an installed bundle's manifest reads back");
        let mut on_disk = BTreeMap::new();
        files(&dir, &dir, &mut on_disk);
        let expected: BTreeMap<String, (Digest, u32)> = manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), (f.blake3, if f.executable { 0o755 } else { 0o644 })))
            .collect();
        assert_eq!(on_disk, expected, "the installed files differ from the archive's manifest");
    }
});

/// A RAM-backed directory when there is one: the fuzzer makes thousands of trees a second.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Every path under `dir` (not following links).
fn list(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("dir entry");
        out.push(entry.path());
        if entry.file_type().expect("file type").is_dir() {
            list(&entry.path(), out);
        }
    }
}

/// Every regular file under `dir` with its BLAKE3 and permission bits; anything
/// but a file or directory (a link, a FIFO) is a failure.
fn files(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Digest, u32)>) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("dir entry");
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            files(root, &entry.path(), out);
            continue;
        }
        assert!(kind.is_file(), "`{}` is neither a file nor a directory", entry.path().display());
        let relative = entry.path().strip_prefix(root).expect("under root").to_str().expect("UTF-8 path").to_string();
        let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
        out.insert(relative, (Digest::of(&fs::read(entry.path()).expect("read file")), mode));
    }
}
