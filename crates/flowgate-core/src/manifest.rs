//! The manifest of a bundle: every file with its size, hash and executable bit.
//! It is what `diff` compares and what later proves which code a run executed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::Digest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative path with `/` separators, never starting with `/`, never with `..`.
    pub path: String,
    pub size: u64,
    /// BLAKE3 of the file's bytes.
    pub blake3: Digest,
    /// MD5 of the file's bytes, hex, for the flows' entrypoint files (a build keeps
    /// it for those only; a manifest read back from an archive has one for every
    /// [`keeps_md5`] file): Prefect reports `flow_version` as the MD5 of the
    /// entrypoint file, so keeping it lets `which` match a run to a build. Other
    /// files have none (it would cost a second hash of every byte for nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    pub executable: bool,
}

/// Whether a manifest entry at `path` may carry an MD5: entrypoints are Python files.
pub fn keeps_md5(path: &str) -> bool {
    path.ends_with(".py")
}

/// Files sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }

    /// Whether this (recorded) manifest describes `archived`, the manifest read back
    /// from the bundle: the same files with the same sizes, hashes and modes, and
    /// the same MD5 wherever this one keeps an MD5 (it may keep fewer).
    pub fn describes(&self, archived: &Manifest) -> bool {
        self.files.len() == archived.files.len()
            && self.files.iter().zip(&archived.files).all(|(kept, read)| {
                kept.path == read.path
                    && kept.size == read.size
                    && kept.blake3 == read.blake3
                    && kept.executable == read.executable
                    && (kept.md5.is_none() || kept.md5 == read.md5)
            })
    }
}

/// What changed between two manifests, each list sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

impl ManifestDiff {
    pub fn between(old: &Manifest, new: &Manifest) -> Self {
        let old_by_path: BTreeMap<&str, &ManifestEntry> = old.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let new_by_path: BTreeMap<&str, &ManifestEntry> = new.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut diff = Self::default();
        for (path, entry) in &new_by_path {
            match old_by_path.get(path) {
                None => diff.added.push(path.to_string()),
                Some(before) if before.blake3 != entry.blake3 || before.executable != entry.executable => {
                    diff.modified.push(path.to_string())
                }
                Some(_) => {}
            }
        }
        diff.removed = old_by_path.keys().filter(|p| !new_by_path.contains_key(*p)).map(|p| p.to_string()).collect();
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8]) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            size: content.len() as u64,
            blake3: Digest::of(content),
            md5: None,
            executable: false,
        }
    }

    #[test]
    fn diff_lists_added_removed_and_modified() {
        let old = Manifest { files: vec![entry("a.py", b"1"), entry("b.py", b"2"), entry("c.py", b"3")] };
        let new = Manifest { files: vec![entry("a.py", b"1"), entry("b.py", b"changed"), entry("d.py", b"4")] };
        let diff = ManifestDiff::between(&old, &new);
        assert_eq!(diff.added, vec!["d.py"]);
        assert_eq!(diff.removed, vec!["c.py"]);
        assert_eq!(diff.modified, vec!["b.py"]);
        assert!(ManifestDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn get_finds_by_path() {
        let m = Manifest { files: vec![entry("a.py", b"1"), entry("b.py", b"2")] };
        assert_eq!(m.get("b.py").unwrap().size, 1);
        assert!(m.get("z.py").is_none());
    }

    #[test]
    fn a_manifest_with_fewer_md5s_describes_its_archive_but_a_wrong_md5_or_file_does_not() {
        let with_md5 = |mut e: ManifestEntry, md5: &str| {
            e.md5 = Some(md5.into());
            e
        };
        let archived = Manifest {
            files: vec![with_md5(entry("a.py", b"1"), "c4ca4238a0b923820dcc509a6f75849b"), entry("b.csv", b"2")],
        };
        assert!(archived.describes(&archived));
        let fewer = Manifest { files: vec![entry("a.py", b"1"), entry("b.csv", b"2")] };
        assert!(fewer.describes(&archived));
        assert!(!archived.describes(&fewer), "an MD5 the archive does not confirm");
        let wrong_md5 = Manifest {
            files: vec![with_md5(entry("a.py", b"1"), "00000000000000000000000000000000"), entry("b.csv", b"2")],
        };
        assert!(!wrong_md5.describes(&archived));
        let other_bytes = Manifest { files: vec![entry("a.py", b"9"), entry("b.csv", b"2")] };
        assert!(!other_bytes.describes(&archived));
        let missing_file = Manifest { files: vec![entry("a.py", b"1")] };
        assert!(!missing_file.describes(&archived));
        let mut executable = fewer.clone();
        executable.files[1].executable = true;
        assert!(!executable.describes(&archived));
    }
}
