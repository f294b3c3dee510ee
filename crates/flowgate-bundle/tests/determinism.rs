//! The same files, paths and exec bits give the same bytes, whatever the mtimes,
//! permissions or creation order; any change of content or exec bit changes them.

mod common;

use std::fs::File;
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

/// A file to write: path, content, executable.
type OwnedFile = (String, Vec<u8>, bool);

/// A tree that spans several frames: runs of small files that cross frame
/// boundaries, a file larger than two frames, a file exactly one frame long, a
/// long path (PAX header) and an empty file. The content is generated, the same
/// on every machine.
fn multi_frame_tree() -> Vec<OwnedFile> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut text = |len: usize| {
        let mut out = Vec::with_capacity(len + 32);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(format!("row {} value {}\n", x % 1000, x % 97).as_bytes());
        }
        out.truncate(len);
        out
    };
    let mut files = Vec::new();
    for i in 0..40 {
        files.push((format!("a/small-{i:02}.csv"), text(150_000 + i * 1_000), i % 7 == 0));
    }
    files.push(("b/exactly-one-frame.bin".to_string(), text(4 << 20), false));
    files.push(("c/large.csv".to_string(), text((9 << 20) + 12_345), false));
    // A file name longer than ustar's 100 bytes: a PAX header carries it.
    files.push((format!("d/{}.py", "long-file-name".repeat(9)), text(700), false));
    files.push(("e/empty".to_string(), Vec::new(), false));
    files
}

fn packed_multi_frame_tree() -> (Vec<u8>, flowgate_bundle::Packed, Vec<OwnedFile>) {
    let files = multi_frame_tree();
    let dir = tempfile::tempdir().unwrap();
    let borrowed: Vec<(&str, &[u8], bool)> = files.iter().map(|(p, c, x)| (p.as_str(), c.as_slice(), *x)).collect();
    write_tree(dir.path(), &borrowed, 0o644, 0o755);
    let (bytes, packed, _) = pack(dir.path(), &paths_of(&borrowed), &PackOptions::default());
    (bytes, packed, files)
}

/// The uncompressed size of each zstd frame of `archive`, in order.
fn frame_sizes(archive: &[u8]) -> Vec<u64> {
    let mut rest = archive;
    let mut sizes = Vec::new();
    while !rest.is_empty() {
        let len = zstd::zstd_safe::find_frame_compressed_size(rest).expect("a whole zstd frame");
        let content = zstd::zstd_safe::get_frame_content_size(&rest[..len]).unwrap().expect("frames carry their size");
        sizes.push(content);
        rest = &rest[len..];
    }
    sizes
}

/// The archive is cut into frames exactly where the format says (see
/// `flowgate-bundle/src/read.rs`): that is what makes the bytes independent of
/// threads, and a change here changes every digest.
#[test]
fn frames_are_cut_where_the_format_says() {
    const FRAME: u64 = 4 << 20;
    let (bytes, _, mut files) = packed_multi_frame_tree();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    // ustar header, or PAX header + record block + ustar header for the long name.
    let header = |path: &str| if path.len() > 100 { 3 * 512 } else { 512 };
    let padded = |len: u64| len.div_ceil(512) * 512;
    let mut expected = Vec::new();
    let (mut group, mut group_cost) = (0u64, 0u64);
    // A group of small files ends after an entry with probability cost / 1 MiB, drawn from its path's BLAKE3.
    let ends_group = |path: &str, cost: u64| {
        let draw = u64::from_le_bytes(blake3::hash(path.as_bytes()).as_bytes()[..8].try_into().unwrap());
        u128::from(draw) * u128::from(flowgate_bundle::FRAME_TARGET) < u128::from(cost) << 64
    };
    let mut content_cuts = 0;
    for (path, content, _) in &files {
        let size = content.len() as u64;
        let cost = 512 + padded(size);
        if group_cost > 0 && (size > FRAME || group_cost + cost > FRAME) {
            expected.push(group);
            (group, group_cost) = (0, 0);
        }
        if size > FRAME {
            let mut left = size;
            let mut first = true;
            while left > 0 {
                let piece = left.min(FRAME);
                left -= piece;
                let lead = if first { header(path) } else { 0 };
                let pad = if left == 0 { padded(size) - size } else { 0 };
                expected.push(lead + piece + pad);
                first = false;
            }
        } else {
            group += header(path) + padded(size);
            group_cost += cost;
            if ends_group(path, cost) {
                expected.push(group);
                (group, group_cost) = (0, 0);
                content_cuts += 1;
            }
        }
    }
    if group > 0 {
        expected.push(group);
    }
    expected.push(1024);
    assert_eq!(frame_sizes(&bytes), expected);
    assert!(expected.len() >= 6, "the tree spans several frames: {expected:?}");
    assert!(content_cuts >= 2, "the tree has groups ended by content: {expected:?}");
}

/// The bundle format pinned: this tree gives exactly this digest. It changes only
/// when the format does (the tar dialect, where frames are cut, the zstd level,
/// parameters or version), and such a change makes every existing build id point
/// at bytes nobody can produce again: bump `FORMAT_KEY` and say so.
#[test]
fn the_bundle_format_is_pinned() {
    let (bytes, packed, _) = packed_multi_frame_tree();
    assert_eq!(flowgate_core::Digest::of(&bytes), packed.digest);
    assert_eq!(packed.digest.to_string(), "8c5f9267332d15609090ebd463d9a17de65b7138254f772ecbc0ba120493b2f8");
}

/// The compressed zstd frames of `archive`, in order.
fn frames(archive: &[u8]) -> Vec<&[u8]> {
    let mut rest = archive;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let len = zstd::zstd_safe::find_frame_compressed_size(rest).expect("a whole zstd frame");
        frames.push(&rest[..len]);
        rest = &rest[len..];
    }
    frames
}

/// Where groups end is chosen by content: growing one file in the middle of a
/// tree of many changes the frame that holds it (and at most the next), and
/// every other frame is the same bytes in both archives, so a store of frames
/// keeps what the two builds share once.
#[test]
fn editing_one_file_changes_only_the_frames_around_it() {
    let files: Vec<(String, Vec<u8>, bool)> = (0..600)
        .map(|i| {
            let body = format!("# module {i}\n{}", "value = 'abcdefghij' * 3\n".repeat(700 + i % 300));
            (format!("pkg/m{i:03}.py"), body.into_bytes(), false)
        })
        .collect();
    let tree = |edited: Option<usize>| {
        let dir = tempfile::tempdir().unwrap();
        let mut owned = files.clone();
        if let Some(i) = edited {
            owned[i].1.extend_from_slice("extra = 'a line or two more than before'\n".repeat(90).as_bytes());
        }
        let borrowed: Vec<(&str, &[u8], bool)> = owned.iter().map(|(p, c, x)| (p.as_str(), c.as_slice(), *x)).collect();
        write_tree(dir.path(), &borrowed, 0o644, 0o755);
        pack(dir.path(), &paths_of(&borrowed), &PackOptions::default()).0
    };
    let before = tree(None);
    let before_frames = frames(&before);
    assert!(before_frames.len() >= 10, "the tree spans many frames: {}", before_frames.len());
    for edited in [3, 250, 599] {
        let after = tree(Some(edited));
        let new: Vec<&[u8]> = frames(&after).into_iter().filter(|f| !before_frames.contains(f)).collect();
        assert!(
            (1..=2).contains(&new.len()),
            "editing file {edited} rewrote {} of {} frames",
            new.len(),
            before_frames.len()
        );
    }
}

/// Hands out at most 7 bytes a read, so every frame straddles reads.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// A store splits an archive into its frames from the bytes alone: the same
/// frames as zstd finds, in order, each addressed by its BLAKE3, adding up to
/// the archive; a damaged tail is refused, naming where.
#[test]
fn an_archive_splits_into_its_frames_by_their_addresses() {
    let (bytes, packed, _) = packed_multi_frame_tree();
    let expected = frames(&bytes);
    let split = flowgate_bundle::frames_of(&bytes[..]).unwrap();
    assert_eq!(split.len(), expected.len());
    let mut offset = 0u64;
    for (frame, raw) in split.iter().zip(&expected) {
        assert_eq!(frame.offset, offset);
        assert_eq!(frame.size, raw.len() as u64);
        assert_eq!(frame.digest, flowgate_core::Digest::of(raw));
        offset += frame.size;
    }
    assert_eq!(offset, packed.size);
    assert_eq!(packed.frames, split, "the packer lists the same frames as it writes them");
    assert_eq!(flowgate_bundle::frames_of(Trickle(&bytes)).unwrap(), split, "read a few bytes at a time");

    let mut damaged = bytes.clone();
    damaged.extend_from_slice(b"not a frame");
    let err = flowgate_bundle::frames_of(&damaged[..]).unwrap_err().to_string();
    assert!(err.contains(&format!("at byte {}", bytes.len())) && err.contains("zstd frame"), "{err}");
}
