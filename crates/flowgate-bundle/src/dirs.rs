//! Stat'ing and opening many files fast: every directory on the way to a selected
//! file is opened once, relative to its parent and refusing symbolic links (a
//! symlinked directory could lead outside the root), and each file is then stat'ed
//! and opened relative to its directory's handle, so the kernel resolves one name
//! per file instead of the whole path.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use crate::BundleError;

/// Handles of the root and of every directory that holds a selected file;
/// `None` for a directory that does not exist (only when missing files are skipped).
#[derive(Debug)]
pub(crate) struct Dirs {
    root: OwnedFd,
    dirs: HashMap<String, Option<OwnedFd>>,
}

impl Dirs {
    /// Opens `root` and every ancestor directory of `selected` (relative,
    /// `/`-separated, checked paths). A missing directory is an error unless
    /// `skip_missing`; one that is not a real directory always is.
    pub fn open(root: &Path, selected: &[&str], skip_missing: bool) -> Result<Self, BundleError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_fd =
            rustix::fs::open(root, flags, Mode::empty()).map_err(|e| BundleError::io("open", root)(e.into()))?;
        let mut wanted: Vec<&str> =
            selected.iter().flat_map(|p| p.match_indices('/').map(move |(i, _)| &p[..i])).collect();
        // Sorted, a parent comes before its children.
        wanted.sort_unstable();
        wanted.dedup();
        let mut dirs: HashMap<String, Option<OwnedFd>> = HashMap::with_capacity(wanted.len());
        for dir in wanted {
            let (parent, name) = match dir.rsplit_once('/') {
                Some((parent, name)) => (dirs.get(parent).and_then(|fd| fd.as_ref().map(AsFd::as_fd)), name),
                None => (Some(root_fd.as_fd()), dir),
            };
            let opened = match parent {
                // The parent is missing, so is this one.
                None => None,
                Some(parent) => match rustix::fs::openat(parent, name, flags | OFlags::NOFOLLOW, Mode::empty()) {
                    Ok(fd) => Some(fd),
                    Err(e) => {
                        classify(root, dir, e.into(), skip_missing)?;
                        None
                    }
                },
            };
            dirs.insert(dir.to_string(), opened);
        }
        Ok(Self { root: root_fd, dirs })
    }

    /// The stat of `path` itself (a symbolic link is not followed); `NotFound`
    /// when it or a directory on its way is missing.
    pub fn stat(&self, path: &str) -> io::Result<Stat> {
        let (dir, name) = self.parent_of(path)?;
        Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// `path` opened for reading; a symbolic link is refused, not followed.
    pub fn open_file(&self, path: &str) -> io::Result<File> {
        let (dir, name) = self.parent_of(path)?;
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
        Ok(File::from(rustix::fs::openat(dir, name, flags, Mode::empty())?))
    }

    /// The handle of the directory holding `path`, and its last component.
    fn parent_of<'p>(&self, path: &'p str) -> io::Result<(BorrowedFd<'_>, &'p str)> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (self.dirs.get(parent).and_then(|fd| fd.as_ref().map(AsFd::as_fd)), name),
            None => (Some(self.root.as_fd()), path),
        };
        Ok((dir.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?, name))
    }
}

/// Why a directory on the way to a selected file could not be opened: missing
/// (fine when skipping missing files), not a real directory, or unreadable.
fn classify(root: &Path, dir: &str, error: io::Error, skip_missing: bool) -> Result<(), BundleError> {
    let full = root.join(dir);
    match fs::symlink_metadata(&full) {
        Err(e) if skip_missing && crate::scan::is_missing(&e) => Ok(()),
        Err(e) => Err(BundleError::io("read the metadata of", &full)(e)),
        Ok(meta) if meta.file_type().is_dir() => Err(BundleError::io("open", &full)(error)),
        Ok(_) => Err(BundleError::Unsupported {
            path: dir.to_string(),
            reason: "it is on the way to a selected file but is not a directory (a symbolic link?)".to_string(),
        }),
    }
}
