//! The pull cache: `<root>/<digest-hex>/` holds one unpacked bundle. A bundle
//! becomes visible there only by the rename of a fully written, verified temp dir,
//! so a lookup is a stat and a half-unpacked bundle is never seen.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flowgate_core::Digest;

use crate::options::Limits;
use crate::walk::{walk, walk_stream, Visitor};
use crate::BundleError;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `digest` is (or would be) unpacked.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.to_hex())
    }

    /// The directory of an installed bundle: a stat, nothing more.
    pub fn lookup(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.path_of(digest);
        path.is_dir().then_some(path)
    }

    /// Verifies `archive` hashes to `digest` before unpacking anything, unpacks it into
    /// a temp dir inside the cache root under `limits` and the safety rules, and renames
    /// it into place (if another process won the race, theirs is used). On any error
    /// nothing is left behind.
    pub fn install(&self, digest: &Digest, archive: &Path, limits: &Limits) -> Result<PathBuf, BundleError> {
        let _span = tracing::info_span!("install", digest = %digest, archive = %archive.display()).entered();
        self.install_with(digest, |unpacker| walk(archive, digest, limits, unpacker))
    }

    /// Unpacks the archive `reader` yields as it arrives (a download in
    /// progress), hashing it on the way, into a temp dir that becomes the
    /// bundle's directory only if the bytes hashed to `digest`; otherwise the
    /// temp dir is removed and nothing is installed. The same limits and safety
    /// rules as [`Cache::install`] apply to every entry.
    pub fn install_from_reader(
        &self,
        digest: &Digest,
        reader: impl std::io::Read,
        limits: &Limits,
    ) -> Result<PathBuf, BundleError> {
        let _span = tracing::info_span!("install_streaming", digest = %digest).entered();
        self.install_with(digest, |unpacker| walk_stream(reader, digest, limits, unpacker))
    }

    fn install_with(
        &self,
        digest: &Digest,
        unpack: impl FnOnce(&mut Unpacker<'_>) -> Result<(), BundleError>,
    ) -> Result<PathBuf, BundleError> {
        if let Some(existing) = self.lookup(digest) {
            return Ok(existing);
        }
        fs::create_dir_all(&self.root).map_err(BundleError::io("create the cache directory", &self.root))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{}-", digest.short()))
            .tempdir_in(&self.root)
            .map_err(BundleError::io("create a temporary directory in", &self.root))?;
        let mut unpacker = Unpacker { root: tmp.path(), bundle: digest.short(), made_dirs: HashSet::new() };
        unpack(&mut unpacker)?;
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o755))
            .map_err(BundleError::io("set permissions of", tmp.path()))?;
        let dest = self.path_of(digest);
        match fs::rename(tmp.path(), &dest) {
            Ok(()) => {
                // The directory now lives at `dest`; nothing is left for the guard to remove.
                let _ = tmp.keep();
                tracing::info!(path = %dest.display(), "bundle installed");
                Ok(dest)
            }
            // Someone else installed the same digest first: theirs is as good as ours.
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => Err(BundleError::io("move the unpacked bundle to", &dest)(e)),
        }
    }
}

/// Writes entries under a fresh directory; paths were checked by the walker.
struct Unpacker<'a> {
    root: &'a Path,
    bundle: String,
    made_dirs: HashSet<PathBuf>,
}

impl Unpacker<'_> {
    fn make_dir(&mut self, dir: &Path, entry: &str) -> Result<(), BundleError> {
        if dir.as_os_str().is_empty() || self.made_dirs.contains(dir) {
            return Ok(());
        }
        let full = self.root.join(dir);
        fs::create_dir_all(&full).map_err(|e| conflict(entry, &self.bundle, e, &full))?;
        self.made_dirs.insert(dir.to_path_buf());
        Ok(())
    }
}

/// A path that collides with an earlier entry (a file where a directory must be,
/// or the reverse) is the bundle's fault, and is refused by name.
fn conflict(entry: &str, bundle: &str, e: io::Error, full: &Path) -> BundleError {
    match e.kind() {
        io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory => {
            BundleError::Refused {
                entry: entry.to_string(),
                bundle: bundle.to_string(),
                reason: "the path collides with another entry".into(),
            }
        }
        _ => BundleError::io("create", full)(e),
    }
}

impl Visitor for Unpacker<'_> {
    type File = (File, PathBuf);

    fn dir(&mut self, path: &str) -> Result<(), BundleError> {
        self.make_dir(Path::new(path), path)
    }

    fn open(&mut self, path: &str, executable: bool, _size: u64) -> Result<Self::File, BundleError> {
        if let Some(parent) = Path::new(path).parent() {
            self.make_dir(parent, path)?;
        }
        let full = self.root.join(path);
        let mode = if executable { 0o755 } else { 0o644 };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&full)
            .map_err(|e| conflict(path, &self.bundle, e, &full))?;
        // The umask may have cleared bits: set the mode exactly.
        file.set_permissions(Permissions::from_mode(mode)).map_err(BundleError::io("set permissions of", &full))?;
        Ok((file, full))
    }

    fn write(&mut self, (file, full): &mut Self::File, chunk: &[u8]) -> Result<(), BundleError> {
        file.write_all(chunk).map_err(BundleError::io("write", full.as_path()))
    }

    fn close(&mut self, _path: &str, _file: Self::File) -> Result<(), BundleError> {
        Ok(())
    }
}
