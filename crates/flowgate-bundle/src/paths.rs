//! The one rule for what a path inside a bundle may look like, shared by packing
//! (so we never write what we would refuse) and unpacking (so hostile input stops here).

/// Checks a relative, `/`-separated bundle path; returns why it is refused.
pub(crate) fn check(path: &str, max_len: usize) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.len() > max_len {
        return Err("the path is longer than the limit");
    }
    if path.starts_with('/') {
        return Err("the path is absolute");
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("the path has an empty component"),
            "." => return Err("the path has a `.` component"),
            ".." => return Err("path leaves the bundle"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_plain_relative_paths() {
        assert!(check("flows/etl.py", 4096).is_ok());
        assert!(check("a..b/c.", 4096).is_ok());
    }

    #[test]
    fn refuses_what_could_escape_or_confuse() {
        for bad in ["", "/etc/x", "../x", "a/../../x", "a//b", "./a", "a/", "a\0b"] {
            assert!(check(bad, 4096).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(check("../x", 4096), Err("path leaves the bundle"));
        assert!(check(&"a".repeat(11), 10).is_err());
    }
}
