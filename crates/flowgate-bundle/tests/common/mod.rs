//! Helpers shared by the integration tests: writing trees, packing them, and
//! hand-crafting raw (hostile) tar archives that no well-behaved writer would make.
#![allow(dead_code)]

use std::fs::{self, File, Permissions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flowgate_bundle::{scan, write_archive, PackOptions, Packed};
use flowgate_core::{Digest, Manifest};

/// Writes `(path, content, executable)` files under `root` in the given order,
/// with the given permission bits for plain and executable files.
pub fn write_tree(root: &Path, files: &[(&str, &[u8], bool)], plain_mode: u32, exec_mode: u32) {
    for (path, content, exec) in files {
        let full = root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, content).unwrap();
        let mode = if *exec { exec_mode } else { plain_mode };
        fs::set_permissions(&full, Permissions::from_mode(mode)).unwrap();
    }
}

pub fn paths_of(files: &[(&str, &[u8], bool)]) -> Vec<String> {
    files.iter().map(|(p, _, _)| p.to_string()).collect()
}

/// Scans and packs `paths` under `root`; returns the archive bytes, digest and manifest.
pub fn pack(root: &Path, paths: &[String], opts: &PackOptions) -> (Vec<u8>, Packed, Manifest) {
    let scanned = scan(root, paths, opts).unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let packed = write_archive(root, &scanned.manifest, &mut out, opts).unwrap();
    out.seek(SeekFrom::Start(0)).unwrap();
    let mut bytes = Vec::new();
    out.read_to_end(&mut bytes).unwrap();
    (bytes, packed, scanned.manifest)
}

/// One raw tar entry: the name and link name are copied as raw bytes, so nothing
/// sanitizes them; `kind` is the type flag byte.
pub fn raw_entry(name: &[u8], kind: u8, size: u64, link: &[u8], data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_mut_bytes()[..name.len()].copy_from_slice(name);
    header.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

pub fn end_of_archive() -> Vec<u8> {
    vec![0; 1024]
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// Writes `bytes` as an archive file in `dir` and returns its path and true digest.
pub fn archive_file(dir: &Path, bytes: &[u8]) -> (std::path::PathBuf, Digest) {
    let path = dir.join("bundle.tar.zst");
    fs::write(&path, bytes).unwrap();
    (path, Digest::of(bytes))
}

/// Names of everything directly inside `dir` (hidden temp dirs included).
pub fn listing(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    File::open(path).unwrap().read_to_end(&mut out).unwrap();
    out
}
