//! Reading a bundle's manifest back from the archive itself (hashing every file),
//! so a pulled or stored bundle can be checked against what its build recorded.

use std::io::Read;
use std::path::Path;

use flowgate_core::manifest::keeps_md5;
use flowgate_core::{Digest, Manifest, ManifestEntry};
use md5::Digest as _;

use crate::options::Limits;
use crate::walk::{walk, Visitor};
use crate::BundleError;

/// Verifies `archive` against `digest` and returns the manifest of its files.
/// Costs one decompression and one hash of every file; writes nothing.
pub fn read_manifest(archive: &Path, digest: &Digest, limits: &Limits) -> Result<Manifest, BundleError> {
    let _span = tracing::info_span!("read_manifest", digest = %digest).entered();
    let mut collector = Collector { files: Vec::new() };
    walk(archive, digest, limits, &mut collector)?;
    collector.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Manifest { files: collector.files })
}

/// The MD5 (hex) of one file, as `which` compares it with Prefect's `flow_version`
/// when a manifest keeps none for that file.
pub fn md5_hex_of(path: &Path) -> Result<String, BundleError> {
    let mut file = std::fs::File::open(path).map_err(BundleError::io("open", path))?;
    let mut md5 = md5::Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => md5.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BundleError::io("read", path)(e)),
        }
    }
    Ok(hex::encode(md5.finalize()))
}

struct Collector {
    files: Vec<ManifestEntry>,
}

struct Hashing {
    executable: bool,
    size: u64,
    blake3: blake3::Hasher,
    md5: Option<md5::Md5>,
}

impl Visitor for Collector {
    type File = Hashing;

    fn dir(&mut self, _path: &str) -> Result<(), BundleError> {
        Ok(())
    }

    fn open(&mut self, path: &str, executable: bool, size: u64) -> Result<Hashing, BundleError> {
        Ok(Hashing { executable, size, blake3: blake3::Hasher::new(), md5: keeps_md5(path).then(md5::Md5::new) })
    }

    fn write(&mut self, file: &mut Hashing, chunk: &[u8]) -> Result<(), BundleError> {
        file.blake3.update(chunk);
        if let Some(md5) = &mut file.md5 {
            md5.update(chunk);
        }
        Ok(())
    }

    fn close(&mut self, path: &str, file: Hashing) -> Result<(), BundleError> {
        self.files.push(ManifestEntry {
            path: path.to_string(),
            size: file.size,
            blake3: Digest::from_bytes(*file.blake3.finalize().as_bytes()),
            md5: file.md5.map(|m| hex::encode(m.finalize())),
            executable: file.executable,
        });
        Ok(())
    }
}
