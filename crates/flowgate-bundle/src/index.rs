//! The stat index, as git keeps one: for each file the stat that was seen when it
//! was last hashed, so a rescan of an unchanged tree only stats. It also remembers
//! which archive digest each manifest produced. It is a cache: a missing or damaged
//! index is an empty one, and a failure to save it only costs time.

use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use flowgate_core::Digest;

const MAGIC: &[u8; 8] = b"FGIDX\0\0\x01";
/// How many manifest -> digest memories are kept (most recent first).
const MAX_ARCHIVES: usize = 64;

/// The parts of a stat that change when a file's content may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

impl FileStat {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The same from a raw `stat` (see `dirs`); `st_dev` is encoded as `Metadata::dev`.
    pub fn of_raw(stat: &rustix::fs::Stat) -> Self {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Self {
            size: stat.st_size as u64,
            mtime_ns: ns(stat.st_mtime, stat.st_mtime_nsec as i64),
            ctime_ns: ns(stat.st_ctime, stat.st_ctime_nsec as i64),
            ino: stat.st_ino,
            dev: stat.st_dev,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hashed {
    pub stat: FileStat,
    pub blake3: Digest,
    pub md5: [u8; 16],
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Sorted by path (byte order), so a lookup is a binary search and loading
    /// builds no hash table.
    pub files: Vec<(String, Hashed)>,
    /// (manifest key, archive digest), most recent first.
    pub archives: Vec<([u8; 32], Digest)>,
}

impl Index {
    pub fn load(path: &Path) -> Self {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the stat index; rehashing");
                return Self::default();
            }
        };
        Self::decode(&bytes).unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "the stat index is damaged; rehashing");
            Self::default()
        })
    }

    /// Writes atomically (temp file + rename); failures are logged, never fatal.
    pub fn save(&self, path: &Path) {
        let _span = tracing::debug_span!("save_index", path = %path.display(), files = self.files.len()).entered();
        let bytes = self.encode();
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let result = fs::create_dir_all(dir).and_then(|()| {
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(&bytes)?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the stat index");
        }
    }

    /// What the index knows of `path`.
    pub fn get(&self, path: &str) -> Option<&Hashed> {
        let at = self.files.binary_search_by(|(p, _)| p.as_str().cmp(path)).ok()?;
        Some(&self.files[at].1)
    }

    pub fn known_archive(&self, key: &[u8; 32]) -> Option<Digest> {
        self.archives.iter().find(|(k, _)| k == key).map(|(_, d)| *d)
    }

    pub fn remember_archive(&mut self, key: [u8; 32], digest: Digest) {
        self.archives.retain(|(k, _)| *k != key);
        self.archives.insert(0, (key, digest));
        self.archives.truncate(MAX_ARCHIVES);
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.files.len() * 128);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.files.len() as u64).to_le_bytes());
        for (path, h) in &self.files {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path.as_bytes());
            for v in [h.stat.size, h.stat.mtime_ns as u64, h.stat.ctime_ns as u64, h.stat.ino, h.stat.dev] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(h.blake3.as_bytes());
            out.extend_from_slice(&h.md5);
        }
        out.extend_from_slice(&(self.archives.len() as u64).to_le_bytes());
        for (key, digest) in &self.archives {
            out.extend_from_slice(key);
            out.extend_from_slice(digest.as_bytes());
        }
        let check = blake3::hash(&out);
        out.extend_from_slice(check.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, check) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if blake3::hash(body).as_bytes() != check {
            return None;
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return None;
        }
        let count = r.u64()?;
        let mut files = Vec::with_capacity(count.min(1 << 20) as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
            let path = String::from_utf8(r.take(len)?.to_vec()).ok()?;
            let stat = FileStat {
                size: r.u64()?,
                mtime_ns: r.u64()? as i64,
                ctime_ns: r.u64()? as i64,
                ino: r.u64()?,
                dev: r.u64()?,
            };
            let blake3 = Digest::from_bytes(r.take(32)?.try_into().ok()?);
            let md5 = r.take(16)?.try_into().ok()?;
            files.push((path, Hashed { stat, blake3, md5 }));
        }
        let count = r.u64()?;
        let mut archives = Vec::new();
        for _ in 0..count.min(MAX_ARCHIVES as u64) {
            let key = r.take(32)?.try_into().ok()?;
            archives.push((key, Digest::from_bytes(r.take(32)?.try_into().ok()?)));
        }
        // Saved sorted and without duplicates; anything else is damage.
        let sorted = files.windows(2).all(|w| w[0].0 < w[1].0);
        (r.0.is_empty() && sorted).then_some(Self { files, archives })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        let mut index = Index::default();
        let stat = FileStat { size: 3, mtime_ns: -5, ctime_ns: 7, ino: 9, dev: 11 };
        index.files.push(("a/b.py".into(), Hashed { stat, blake3: Digest::of(b"x"), md5: [4; 16] }));
        index.files.push(("a/c.py".into(), Hashed { stat, blake3: Digest::of(b"y"), md5: [5; 16] }));
        index.remember_archive([1; 32], Digest::of(b"archive"));
        index
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let bytes = sample().encode();
        let back = Index::decode(&bytes).unwrap();
        assert_eq!(back.files, sample().files);
        assert_eq!(back.get("a/c.py").map(|h| h.blake3), Some(Digest::of(b"y")));
        assert!(back.get("a/b").is_none() && back.get("a/d.py").is_none());
        assert_eq!(back.known_archive(&[1; 32]), Some(Digest::of(b"archive")));
        let mut damaged = bytes.clone();
        damaged[12] ^= 1;
        assert!(Index::decode(&damaged).is_none());
        assert!(Index::decode(&bytes[..bytes.len() - 1]).is_none());
        let mut unsorted = sample();
        unsorted.files.reverse();
        assert!(Index::decode(&unsorted.encode()).is_none(), "an unsorted index is damaged");
    }

    #[test]
    fn remembers_the_most_recent_archives_only() {
        let mut index = Index::default();
        for i in 0..(MAX_ARCHIVES as u8 + 3) {
            index.remember_archive([i; 32], Digest::of(&[i]));
        }
        assert_eq!(index.archives.len(), MAX_ARCHIVES);
        assert!(index.known_archive(&[0; 32]).is_none());
        assert!(index.known_archive(&[MAX_ARCHIVES as u8 + 2; 32]).is_some());
    }
}
