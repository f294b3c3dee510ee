//! Reading a bundle safely: the whole object is checked against its digest before
//! any entry is parsed, then every entry passes the safety rules before a visitor
//! (unpack to disk, or manifest) sees its bytes. The bytes parsed are hashed again
//! on the way, so a file swapped after the first check is caught before success.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use flowgate_core::Digest;
use tar::EntryType;

use crate::options::Limits;
use crate::tarfmt::parse_pax;
use crate::{paths, BundleError};

/// Trailing zeros after the end-of-archive block that are tolerated (tar pads to records).
const MAX_TRAILING_ZEROS: u64 = 1 << 20;

/// What is done with the entries of a bundle, one at a time in archive order.
pub(crate) trait Visitor {
    type File;
    fn dir(&mut self, path: &str) -> Result<(), BundleError>;
    fn open(&mut self, path: &str, executable: bool, size: u64) -> Result<Self::File, BundleError>;
    fn write(&mut self, file: &mut Self::File, chunk: &[u8]) -> Result<(), BundleError>;
    fn close(&mut self, path: &str, file: Self::File) -> Result<(), BundleError>;
}

/// Verifies `archive` against `digest`, then feeds its entries to `visitor`.
pub(crate) fn walk(
    archive: &Path,
    digest: &Digest,
    limits: &Limits,
    visitor: &mut impl Visitor,
) -> Result<(), BundleError> {
    let mut file = File::open(archive).map_err(BundleError::io("open", archive))?;
    let actual = hash_file(&mut file).map_err(BundleError::io("read", archive))?;
    if actual != *digest {
        return Err(BundleError::DigestMismatch { expected: *digest, actual });
    }
    file.seek(SeekFrom::Start(0)).map_err(BundleError::io("read", archive))?;
    walk_stream(file, digest, limits, visitor)
}

/// Feeds the entries of the archive `reader` yields to `visitor`, hashing it
/// as it goes: a mismatch with `digest` is found at the end, so the caller
/// must treat what `visitor` did as unverified until this returns `Ok`.
pub(crate) fn walk_stream(
    reader: impl Read,
    digest: &Digest,
    limits: &Limits,
    visitor: &mut impl Visitor,
) -> Result<(), BundleError> {
    let archive = Path::new("the archive");
    let bundle = digest.short();
    let reader = HashingReader { inner: reader, hasher: blake3::Hasher::new() };
    let decoder = zstd::stream::read::Decoder::new(reader).map_err(BundleError::io("read", archive))?;
    let mut tar = tar::Archive::new(decoder);
    walk_entries(&mut tar, &bundle, limits, visitor)?;

    let mut decoder = tar.into_inner();
    check_trailer(&mut decoder, &bundle)?;
    let mut reader = decoder.finish().into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(BundleError::io("read", archive))?;
    let reread = Digest::from_bytes(*reader.hasher.finalize().as_bytes());
    if reread != *digest {
        return Err(BundleError::DigestMismatch { expected: *digest, actual: reread });
    }
    Ok(())
}

fn walk_entries<R: Read>(
    tar: &mut tar::Archive<R>,
    bundle: &str,
    limits: &Limits,
    visitor: &mut impl Visitor,
) -> Result<(), BundleError> {
    let malformed = |reason: String| BundleError::Malformed { bundle: bundle.to_string(), reason };
    let refuse = |entry: &str, reason: String| BundleError::Refused {
        entry: entry.to_string(),
        bundle: bundle.to_string(),
        reason,
    };
    let entries = tar.entries().map_err(|e| malformed(e.to_string()))?.raw(true);
    let mut seen: HashSet<String> = HashSet::new();
    let (mut count, mut total) = (0u64, 0u64);
    let mut pax_path: Option<Vec<u8>> = None;
    let mut last = String::from("(none)");
    let mut buf = vec![0u8; 256 * 1024];
    for item in entries {
        let mut entry = item.map_err(|e| malformed(format!("{e} (after entry `{last}`)")))?;
        let pending = pax_path.take();
        let had_pax = pending.is_some();
        let raw_path = pending.unwrap_or_else(|| entry.path_bytes().into_owned());
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size().map_err(|e| refuse(&name, e.to_string()))?;
        if kind == EntryType::XHeader {
            if had_pax {
                return Err(refuse(&name, "two PAX headers in a row".into()));
            }
            if size > limits.max_path_len as u64 + 64 {
                return Err(refuse(&name, format!("a PAX header of {size} bytes is larger than any path allowed")));
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| refuse(&name, format!("the archive is damaged: {e}")))?;
            if data.len() as u64 != size {
                return Err(refuse(&name, "the PAX header is truncated".into()));
            }
            pax_path = Some(pax_path_of(&data).map_err(|reason| refuse(&name, reason))?);
            continue;
        }
        last = name.clone();
        if let Some(reason) = refused_kind(kind) {
            return Err(refuse(&name, reason));
        }
        count += 1;
        if count > limits.max_entries {
            return Err(refuse(&name, format!("the bundle has more than {} entries", limits.max_entries)));
        }
        let path = std::str::from_utf8(&raw_path).map_err(|_| refuse(&name, "the path is not UTF-8".into()))?;
        let path = if kind == EntryType::Directory { path.strip_suffix('/').unwrap_or(path) } else { path };
        paths::check(path, limits.max_path_len).map_err(|reason| refuse(&name, reason.into()))?;
        if !seen.insert(path.to_string()) {
            return Err(refuse(&name, "the path appears twice".into()));
        }
        if kind == EntryType::Directory {
            if size != 0 {
                return Err(refuse(&name, "a directory entry has content".into()));
            }
            visitor.dir(path)?;
            continue;
        }
        if size > limits.max_file_bytes {
            return Err(refuse(&name, format!("its size {size} is over the limit of {} bytes", limits.max_file_bytes)));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(refuse(
                &name,
                format!("the bundle's files exceed the limit of {} bytes", limits.max_total_bytes),
            ));
        }
        let executable = entry.header().mode().map_err(|e| refuse(&name, e.to_string()))? & 0o100 != 0;
        let mut out = visitor.open(path, executable, size)?;
        let mut copied = 0u64;
        while copied < size {
            let want = buf.len().min((size - copied) as usize);
            let n = match entry.read(&mut buf[..want]) {
                Ok(0) => return Err(refuse(&name, "the archive is truncated".into())),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(refuse(&name, format!("the archive is damaged: {e}"))),
            };
            visitor.write(&mut out, &buf[..n])?;
            copied += n as u64;
        }
        visitor.close(path, out)?;
    }
    if pax_path.is_some() {
        return Err(malformed("a PAX header is not followed by an entry".into()));
    }
    Ok(())
}

fn refused_kind(kind: EntryType) -> Option<String> {
    let reason = match kind {
        EntryType::Regular | EntryType::Directory => return None,
        EntryType::Symlink => "symbolic links are not allowed",
        EntryType::Link => "hard links are not allowed",
        EntryType::Char | EntryType::Block => "device nodes are not allowed",
        EntryType::Fifo => "FIFOs are not allowed",
        EntryType::GNUSparse => "sparse files are not allowed",
        EntryType::GNULongName | EntryType::GNULongLink => "GNU long-name entries are not allowed",
        EntryType::XGlobalHeader => "global PAX headers are not allowed",
        other => return Some(format!("entry type `{}` is not allowed", other.as_byte().escape_ascii())),
    };
    Some(reason.to_string())
}

/// The path of a PAX header that carries exactly one `path` record.
fn pax_path_of(data: &[u8]) -> Result<Vec<u8>, String> {
    let records = parse_pax(data).map_err(str::to_string)?;
    match records.as_slice() {
        [(b"path", value)] => Ok(value.to_vec()),
        _ => Err("a PAX header may hold one `path` record and nothing else".into()),
    }
}

/// After the tar reader saw the first zero block: only zeros (at least one more
/// block) may follow, and the compressed stream must end cleanly.
fn check_trailer(decoder: &mut impl Read, bundle: &str) -> Result<(), BundleError> {
    let malformed = |reason: String| BundleError::Malformed { bundle: bundle.to_string(), reason };
    let mut zeros = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(malformed(format!("the compressed stream is damaged: {e}"))),
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(malformed("there is data after the end of the archive".into()));
        }
        zeros += n as u64;
        if zeros > MAX_TRAILING_ZEROS {
            return Err(malformed("the archive ends in too much padding".into()));
        }
    }
    if zeros < 512 {
        return Err(malformed("the archive is truncated: its end-of-archive marker is missing".into()));
    }
    Ok(())
}

fn hash_file(file: &mut File) -> io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update_rayon(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Digest::from_bytes(*hasher.finalize().as_bytes()))
}

/// Hashes the compressed bytes as the decoder pulls them.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
