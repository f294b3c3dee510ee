//! Hostile and damaged bundles, hand-crafted with raw tar headers: each is refused
//! with an error naming the entry (or the bundle), and the cache is left empty.

mod common;

use common::{archive_file, end_of_archive, listing, pack, raw_entry, zstd};
use flowgate_bundle::{BundleError, Cache, Limits, PackOptions};
use flowgate_core::Digest;

/// Installs `compressed` under its own digest (or `digest`), expects a refusal whose
/// message contains `needle`, and checks nothing is left in the cache.
fn refused(compressed: &[u8], digest: Option<Digest>, needle: &str) -> BundleError {
    refused_under(compressed, digest, needle, &Limits::default())
}

fn refused_under(compressed: &[u8], digest: Option<Digest>, needle: &str, limits: &Limits) -> BundleError {
    let work = tempfile::tempdir().unwrap();
    let (archive, own) = archive_file(work.path(), compressed);
    let digest = digest.unwrap_or(own);
    let cache_root = work.path().join("cache");
    let cache = Cache::new(cache_root.clone());
    let err = cache.install(&digest, &archive, limits).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(needle), "`{needle}` not in: {text}");
    assert_eq!(listing(&cache_root), Vec::<String>::new(), "the cache is not empty after: {text}");
    assert!(cache.lookup(&digest).is_none());
    err
}

fn one_entry(entry: Vec<u8>) -> Vec<u8> {
    let mut tar = entry;
    tar.extend(end_of_archive());
    zstd(&tar)
}

#[test]
fn parent_directory_paths_are_refused() {
    let err = refused(&one_entry(raw_entry(b"../x", b'0', 2, b"", b"hi")), None, "`../x`");
    assert!(err.to_string().contains("path leaves the bundle"), "{err}");
    refused(&one_entry(raw_entry(b"a/../../x", b'0', 2, b"", b"hi")), None, "`a/../../x`");
}

#[test]
fn absolute_paths_are_refused() {
    refused(&one_entry(raw_entry(b"/etc/x", b'0', 2, b"", b"hi")), None, "`/etc/x`");
}

#[test]
fn links_and_special_files_are_refused() {
    refused(&one_entry(raw_entry(b"evil", b'2', 0, b"/etc/passwd", b"")), None, "`evil`");
    refused(&one_entry(raw_entry(b"evil", b'2', 0, b"../../outside", b"")), None, "symbolic links");
    refused(&one_entry(raw_entry(b"hard", b'1', 0, b"../../etc/passwd", b"")), None, "`hard`");
    refused(&one_entry(raw_entry(b"tty", b'3', 0, b"", b"")), None, "`tty`");
    refused(&one_entry(raw_entry(b"disk", b'4', 0, b"", b"")), None, "device nodes");
    refused(&one_entry(raw_entry(b"pipe", b'6', 0, b"", b"")), None, "`pipe`");
    refused(&one_entry(raw_entry(b"sparse", b'S', 0, b"", b"")), None, "`sparse`");
}

#[test]
fn a_pax_path_is_checked_like_any_other() {
    let record = b"19 path=../../evil\n";
    let mut tar = raw_entry(b"PaxHeader", b'x', record.len() as u64, b"", record);
    tar.extend(raw_entry(b"innocent", b'0', 2, b"", b"hi"));
    tar.extend(end_of_archive());
    refused(&zstd(&tar), None, "`../../evil`");
}

#[test]
fn a_million_entries_are_refused_at_the_limit() {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(0);
    header.set_entry_type(tar::EntryType::Regular);
    for i in 0..1_000_000u32 {
        header.as_mut_bytes()[..8].copy_from_slice(format!("{i:08}").as_bytes());
        header.set_cksum();
        std::io::Write::write_all(&mut encoder, header.as_bytes()).unwrap();
    }
    std::io::Write::write_all(&mut encoder, &end_of_archive()).unwrap();
    let compressed = encoder.finish().unwrap();
    assert!(compressed.len() < 8 << 20, "the bomb is small: {} bytes", compressed.len());
    // The default cap (200,000) works the same way, but would make this test create
    // 200,000 files before refusing; a lower cap keeps it fast.
    let limits = Limits { max_entries: 10_000, ..Limits::default() };
    let err = refused_under(&compressed, None, "`00010000`", &limits);
    assert!(err.to_string().contains("more than 10000 entries"), "{err}");
}

#[test]
fn a_huge_declared_size_is_refused_before_reading() {
    // 100 GiB declared, no data at all: refused on the header alone.
    let err = refused(&one_entry(raw_entry(b"huge.bin", b'0', 100 << 30, b"", b"")), None, "`huge.bin`");
    assert!(err.to_string().contains("over the limit"), "{err}");
}

#[test]
fn the_running_total_is_limited() {
    let work = tempfile::tempdir().unwrap();
    let mut tar = raw_entry(b"a", b'0', 600, b"", &[1; 600]);
    tar.extend(raw_entry(b"b", b'0', 600, b"", &[2; 600]));
    tar.extend(end_of_archive());
    let (archive, digest) = archive_file(work.path(), &zstd(&tar));
    let cache = Cache::new(work.path().join("cache"));
    let limits = Limits { max_total_bytes: 1000, ..Limits::default() };
    let err = cache.install(&digest, &archive, &limits).unwrap_err();
    assert!(err.to_string().contains("`b`"), "{err}");
    assert!(listing(&work.path().join("cache")).is_empty());
}

#[test]
fn duplicate_paths_are_refused() {
    let mut tar = raw_entry(b"a.py", b'0', 1, b"", b"1");
    tar.extend(raw_entry(b"a.py", b'0', 1, b"", b"2"));
    tar.extend(end_of_archive());
    let err = refused(&zstd(&tar), None, "`a.py`");
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn a_file_where_a_directory_must_be_is_refused() {
    let mut tar = raw_entry(b"a", b'0', 1, b"", b"1");
    tar.extend(raw_entry(b"a/b", b'0', 1, b"", b"2"));
    tar.extend(end_of_archive());
    refused(&zstd(&tar), None, "`a/b`");
}

fn real_bundle() -> (Vec<u8>, Digest) {
    let src = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(src.path().join("data.bin"), &content).unwrap();
    std::fs::write(src.path().join("flow.py"), b"print(1)\n").unwrap();
    let (bytes, packed, _) = pack(src.path(), &["data.bin".into(), "flow.py".into()], &PackOptions::default());
    (bytes, packed.digest)
}

#[test]
fn a_truncated_object_is_refused() {
    let (bytes, digest) = real_bundle();
    let truncated = &bytes[..bytes.len() / 2];
    // Under the digest it was asked for: a mismatch, before any parsing.
    let err = refused(truncated, Some(digest), &digest.short());
    assert!(matches!(err, BundleError::DigestMismatch { .. }), "{err:?}");
    // Even under its own digest, the archive is seen to be cut short.
    let err = refused(truncated, None, "");
    assert!(matches!(err, BundleError::Refused { .. } | BundleError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("`data.bin`"), "{err}");
}

#[test]
fn a_flipped_bit_is_a_digest_mismatch() {
    let (mut bytes, digest) = real_bundle();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    let err = refused(&bytes, Some(digest), &digest.short());
    assert!(matches!(err, BundleError::DigestMismatch { .. }), "{err:?}");
}

#[test]
fn trailing_garbage_and_a_missing_end_marker_are_refused() {
    let (mut bytes, _) = real_bundle();
    bytes.extend_from_slice(b"garbage after the zstd frame");
    refused(&bytes, None, "malformed");

    let no_end = zstd(&raw_entry(b"a.py", b'0', 1, b"", b"1"));
    refused(&no_end, None, "end-of-archive marker is missing");

    let mut data_after_end = raw_entry(b"a.py", b'0', 1, b"", b"1");
    data_after_end.extend(end_of_archive());
    data_after_end.extend(raw_entry(b"hidden.py", b'0', 1, b"", b"2"));
    refused(&zstd(&data_after_end), None, "data after the end of the archive");
}
