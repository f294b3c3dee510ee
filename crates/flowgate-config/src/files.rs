//! Which git-tracked files go into a bundle: `include` and `exclude` globs.

use crate::schema::Config;

impl Config {
    /// The tracked paths (`/`-separated, relative to the project root) that the
    /// bundle holds: those matching `include` (all when it is absent or empty)
    /// and not matching `exclude`, in the order given. A pattern also matches
    /// everything below a directory it matches, so `exclude = ["**/tests"]`
    /// leaves out whole test directories. `*` does not cross `/`; `**` does.
    pub fn select_files(&self, tracked: &[String]) -> Vec<String> {
        tracked
            .iter()
            .filter(|path| {
                let included = self.include.as_ref().is_none_or(|set| matches_or_parent(set, path));
                included && !matches_or_parent(&self.exclude, path)
            })
            .cloned()
            .collect()
    }
}

fn matches_or_parent(set: &globset::GlobSet, path: &str) -> bool {
    if set.is_match(path) {
        return true;
    }
    path.match_indices('/').any(|(i, _)| set.is_match(&path[..i]))
}
