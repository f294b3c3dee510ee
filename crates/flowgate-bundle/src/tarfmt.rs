//! The bytes of our tar dialect: ustar headers with fixed metadata, a PAX `path`
//! record only when a path does not fit ustar, and the parser for those records.

use tar::{EntryType, Header};

pub(crate) const BLOCK: u64 = 512;

/// Zero bytes that round `len` up to a whole block.
pub(crate) fn padding(len: u64) -> usize {
    ((BLOCK - len % BLOCK) % BLOCK) as usize
}

/// Appends the header block(s) of one regular file to `out`.
pub(crate) fn file_header(path: &str, size: u64, executable: bool, out: &mut Vec<u8>) {
    let mut header = Header::new_ustar();
    if header.set_path(path).is_err() {
        // Too long for ustar's name + prefix: a PAX record carries the real path and
        // the ustar name holds a truncated one that readers ignore.
        let record = pax_record("path", path.as_bytes());
        let mut pax = Header::new_ustar();
        set_raw_name(&mut pax, b"././@PaxHeader");
        finish(&mut pax, record.len() as u64, 0o644, EntryType::XHeader);
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(&record);
        out.resize(out.len() + padding(record.len() as u64), 0);
        header = Header::new_ustar();
        set_raw_name(&mut header, path.as_bytes());
    }
    let mode = if executable { 0o755 } else { 0o644 };
    finish(&mut header, size, mode, EntryType::Regular);
    out.extend_from_slice(header.as_bytes());
}

fn set_raw_name(header: &mut Header, name: &[u8]) {
    let n = name.len().min(100);
    header.as_mut_bytes()[..n].copy_from_slice(&name[..n]);
}

fn finish(header: &mut Header, size: u64, mode: u32, kind: EntryType) {
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(kind);
    header.set_cksum();
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
pub(crate) fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// One PAX record as (key, value).
pub(crate) type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Parses PAX records; `Err` says what is malformed.
pub(crate) fn parse_pax(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, &'static str> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ').ok_or("a PAX record has no length")?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a PAX record has a malformed length")?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("a PAX record has a wrong length");
        }
        let body = &data[space + 1..len - 1];
        let eq = body.iter().position(|b| *b == b'=').ok_or("a PAX record has no `=`")?;
        records.push((&body[..eq], &body[eq + 1..]));
        data = &data[len..];
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        for value_len in [0, 1, 5, 90, 95, 96, 97, 990, 995, 9990] {
            let value = vec![b'a'; value_len];
            let record = pax_record("path", &value);
            let parsed = parse_pax(&record).unwrap();
            assert_eq!(parsed, vec![(&b"path"[..], &value[..])], "value length {value_len}");
        }
    }

    #[test]
    fn malformed_pax_is_refused() {
        for bad in [&b"5 a=b"[..], b"99 path=x\n", b"x path=x\n", b"7 pathx\n"] {
            assert!(parse_pax(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn long_paths_get_a_pax_header_and_short_ones_do_not() {
        let mut short = Vec::new();
        file_header("flows/etl.py", 10, false, &mut short);
        assert_eq!(short.len(), 512);
        let long_path = format!("{}/x.py", "d".repeat(300));
        let mut long = Vec::new();
        file_header(&long_path, 10, true, &mut long);
        assert_eq!(long.len(), 512 * 3);
        assert_eq!(Header::from_byte_slice(&long[..512]).entry_type(), EntryType::XHeader);
    }
}
