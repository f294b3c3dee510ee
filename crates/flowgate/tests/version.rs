//! `flowgate --version` names the version and the commit the binary was built
//! from (build.rs), so a bug report or a worker's log says exactly which code ran.

use std::path::Path;
use std::process::Command;

fn version_line(flag: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate")).arg(flag).output().expect("run the flowgate binary");
    assert!(out.status.success(), "`flowgate {flag}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `flowgate X.Y.Z (commit <12 hex>[-dirty])` split into (version, sha, dirty).
fn parse(line: &str) -> Result<(&str, &str, bool), String> {
    let err = || format!("`{line}` is not `flowgate X.Y.Z (commit <12 hex>[-dirty])`");
    let rest = line.strip_prefix("flowgate ").and_then(|r| r.strip_suffix(")\n")).ok_or_else(err)?;
    let (version, commit) = rest.split_once(" (commit ").ok_or_else(err)?;
    let numeric = version.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if version.split('.').count() != 3 || !numeric {
        return Err(err());
    }
    let (sha, dirty) = match commit.strip_suffix("-dirty") {
        Some(sha) => (sha, true),
        None => (commit, false),
    };
    if sha.len() != 12 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(err());
    }
    Ok((version, sha, dirty))
}

#[test]
fn the_parser_accepts_only_the_documented_shape() {
    assert_eq!(parse("flowgate 0.1.0 (commit 0123456789ab)\n"), Ok(("0.1.0", "0123456789ab", false)));
    assert_eq!(parse("flowgate 1.22.3 (commit 0123456789ab-dirty)\n"), Ok(("1.22.3", "0123456789ab", true)));
    for bad in [
        "flowgate 0.1.0\n",
        "flowgate 0.1.0 (commit unknown)\n",
        "flowgate 0.1 (commit 0123456789ab)\n",
        "flowgate 0.1.0 (commit 0123456789AB)\n",
        "flowgate 0.1.0 (commit 0123456789a)\n",
        "flowgate 0.1.0 (commit 0123456789ab-dirt)\n",
    ] {
        assert!(parse(bad).is_err(), "accepted `{bad}`");
    }
}

#[test]
fn version_names_the_crate_version_and_the_commit_of_this_checkout() {
    let line = version_line("--version");
    assert_eq!(version_line("-V"), line, "`-V` and `--version` differ");
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(head) = head else {
        // A source archive without git: build.rs has nothing to read unless the
        // builder sets FLOWGATE_BUILD_COMMIT.
        assert!(line.ends_with("(commit unknown)\n") || parse(&line).is_ok(), "unexpected `{line}`");
        return;
    };
    let (version, sha, _dirty) = parse(&line).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert!(
        head.starts_with(sha),
        "`flowgate --version` names commit `{sha}`, the checkout is at `{head}` (did HEAD move after the build?)"
    );
}
