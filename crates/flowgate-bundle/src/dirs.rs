//! Stat'ing and opening many files fast: every directory on the way to a selected
//! file is opened once, relative to its parent and refusing symbolic links (a
//! symlinked directory could lead outside the root), and each file is then stat'ed
//! and opened relative to its directory's handle, so the kernel resolves one name
//! per file instead of the whole path. Handles stay within the limit on open
//! files: past a budget, a directory is not kept open, and files under it are
//! reached by opening its path one component at a time from the nearest kept
//! ancestor (slower, equally safe).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use crate::BundleError;

/// Open files left for everything else (the files being read, the archive, the
/// ledger, the store) when directory handles would use up the limit.
const SPARE_FILES: u64 = 256;

/// A directory on the way to a selected file.
#[derive(Debug)]
enum Handle {
    Open(OwnedFd),
    /// It does not exist (only when missing files are skipped).
    Missing,
    /// Not kept open: the handle budget was spent.
    Unopened,
}

/// Handles of the root and of the directories that hold selected files.
#[derive(Debug)]
pub(crate) struct Dirs {
    root: OwnedFd,
    dirs: HashMap<String, Handle>,
}

impl Dirs {
    /// Opens `root` and every ancestor directory of `selected` (relative,
    /// `/`-separated, checked paths). A missing directory is an error unless
    /// `skip_missing`; one that is not a real directory always is.
    pub fn open(root: &Path, selected: &[&str], skip_missing: bool) -> Result<Self, BundleError> {
        Self::open_within(root, selected, skip_missing, handle_budget())
    }

    /// [`Dirs::open`], keeping at most `budget` directory handles.
    fn open_within(root: &Path, selected: &[&str], skip_missing: bool, budget: u64) -> Result<Self, BundleError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_fd =
            rustix::fs::open(root, flags, Mode::empty()).map_err(|e| BundleError::io("open", root)(e.into()))?;
        let mut wanted: Vec<&str> =
            selected.iter().flat_map(|p| p.match_indices('/').map(move |(i, _)| &p[..i])).collect();
        // Sorted, a parent comes before its children.
        wanted.sort_unstable();
        wanted.dedup();
        let mut dirs: HashMap<String, Handle> = HashMap::with_capacity(wanted.len());
        for (i, dir) in wanted.into_iter().enumerate() {
            let (parent, name) = match dir.rsplit_once('/') {
                Some((parent, name)) => match &dirs[parent] {
                    Handle::Open(fd) => (Ok(fd.as_fd()), name),
                    // The parent is missing or unopened, so is this one.
                    Handle::Missing => (Err(Handle::Missing), name),
                    Handle::Unopened => (Err(Handle::Unopened), name),
                },
                None => (Ok(root_fd.as_fd()), dir),
            };
            let handle = match parent {
                Err(handle) => handle,
                Ok(_) if i as u64 >= budget => Handle::Unopened,
                Ok(parent) => match open_dir(parent, name) {
                    Ok(fd) => Handle::Open(fd),
                    Err(e) => {
                        classify(root, dir, e, skip_missing)?;
                        Handle::Missing
                    }
                },
            };
            dirs.insert(dir.to_string(), handle);
        }
        Ok(Self { root: root_fd, dirs })
    }

    /// The stat of `path` itself (a symbolic link is not followed); `NotFound`
    /// when it or a directory on its way is missing.
    pub fn stat(&self, path: &str) -> io::Result<Stat> {
        self.in_parent(path, |dir, name| Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?))
    }

    /// `path` opened for reading; a symbolic link is refused, not followed.
    pub fn open_file(&self, path: &str) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
        self.in_parent(path, |dir, name| Ok(File::from(rustix::fs::openat(dir, name, flags, Mode::empty())?)))
    }

    /// Calls `f` with the handle of the directory holding `path` and its last
    /// component; an unopened directory is opened for the call, from its nearest
    /// open ancestor, one component at a time, refusing symbolic links.
    fn in_parent<T>(&self, path: &str, f: impl FnOnce(BorrowedFd<'_>, &str) -> io::Result<T>) -> io::Result<T> {
        let Some((dir, name)) = path.rsplit_once('/') else { return f(self.root.as_fd(), path) };
        match self.dirs.get(dir) {
            Some(Handle::Open(fd)) => f(fd.as_fd(), name),
            Some(Handle::Unopened) => {
                let (base, rest) = self.nearest_open(dir);
                let mut opened: Option<OwnedFd> = None;
                for component in rest.split('/') {
                    let next = open_dir(opened.as_ref().map_or(base, AsFd::as_fd), component)?;
                    opened = Some(next);
                }
                f(opened.as_ref().map_or(base, AsFd::as_fd), name)
            }
            Some(Handle::Missing) | None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    /// The nearest ancestor of `dir` that is open (the root at worst), and the
    /// rest of the way from it.
    fn nearest_open<'p>(&self, dir: &'p str) -> (BorrowedFd<'_>, &'p str) {
        let mut end = dir.len();
        while let Some(slash) = dir[..end].rfind('/') {
            if let Some(Handle::Open(fd)) = self.dirs.get(&dir[..slash]) {
                return (fd.as_fd(), &dir[slash + 1..]);
            }
            end = slash;
        }
        (self.root.as_fd(), dir)
    }
}

/// One directory opened relative to `parent` as a handle for lookups, refusing a
/// symbolic link.
fn open_dir(parent: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    Ok(rustix::fs::openat(parent, name, flags, Mode::empty())?)
}

/// How many directory handles may be kept: the limit on open files (as the
/// binary raised it) less [`SPARE_FILES`].
fn handle_budget() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(u64::MAX, |limit| limit.saturating_sub(SPARE_FILES))
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, content) in [("top.txt", "t"), ("a/b/c/deep.txt", "deep"), ("a/b/mid.txt", "mid"), ("z/z.txt", "z")]
        {
            let full = root.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, content).unwrap();
        }
        std::os::unix::fs::symlink(root.path().join("a/b"), root.path().join("link")).unwrap();
        root
    }

    fn read(dirs: &Dirs, path: &str) -> String {
        let mut out = String::new();
        dirs.open_file(path).unwrap().read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn past_the_budget_directories_are_reached_from_their_nearest_open_ancestor() {
        let root = tree();
        let selected = ["a/b/c/deep.txt", "a/b/mid.txt", "top.txt", "z/z.txt"];
        for budget in [0, 1, 2, u64::MAX] {
            let dirs = Dirs::open_within(root.path(), &selected, false, budget).unwrap();
            let open = dirs.dirs.values().filter(|h| matches!(h, Handle::Open(_))).count() as u64;
            assert_eq!(open, budget.min(4), "budget {budget}");
            for (path, content) in
                [("a/b/c/deep.txt", "deep"), ("a/b/mid.txt", "mid"), ("top.txt", "t"), ("z/z.txt", "z")]
            {
                assert_eq!(read(&dirs, path), content, "budget {budget}: {path}");
                assert_eq!(dirs.stat(path).unwrap().st_size, content.len() as i64, "budget {budget}: {path}");
            }
        }
    }

    #[test]
    fn an_unopened_way_still_refuses_symbolic_links_and_reports_missing_directories() {
        let root = tree();
        let dirs = Dirs::open_within(root.path(), &["a/b/mid.txt", "gone/x.txt"], true, 0).unwrap();
        assert_eq!(dirs.stat("gone/x.txt").unwrap_err().kind(), io::ErrorKind::NotFound);
        // "link" is a symbolic link to a/b: selected after planning, it must not be followed.
        let mut dirs = dirs;
        dirs.dirs.insert("link".to_string(), Handle::Unopened);
        assert!(dirs.open_file("link/mid.txt").is_err(), "a symbolic link on the way is followed");
        assert!(dirs.stat("link/mid.txt").is_err(), "a symbolic link on the way is followed");
        assert_eq!(read(&dirs, "a/b/mid.txt"), "mid");
    }
}
