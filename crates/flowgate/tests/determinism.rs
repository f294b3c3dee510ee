//! The same committed tree gives the same bundle digest and build id whatever the
//! checkout looks like on disk (mtimes, permission bits under another umask, the
//! order files were written in); one changed byte or one exec bit changes it.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::run;
use flowgate_testkit::GitProject;

fn build(p: &GitProject) -> (String, String) {
    let doc = run(p, &["build", "--json"]).success().json();
    let field = |key: &str| doc["build"][key].as_str().unwrap_or_else(|| panic!("no `{key}` in {doc}")).to_string();
    (field("bundle"), field("id"))
}

/// Checks out every tracked file one by one in reverse order, under umask 077,
/// then gives each file its own old mtime and a 0600/0640 mode (keeping the
/// owner's exec bit, which git tracks).
fn odd_checkout(p: &GitProject) {
    let listing = p.git(&["ls-tree", "-r", "--name-only", "HEAD"]);
    let mut files: Vec<&str> = listing.lines().collect();
    files.reverse();
    for file in &files {
        let status = Command::new("sh")
            .current_dir(p.path())
            .args(["-c", "umask 077 && git checkout HEAD -- \"$1\"", "sh", file])
            .status()
            .expect("run sh");
        assert!(status.success(), "checkout of `{file}` failed");
    }
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for (i, file) in files.iter().enumerate() {
        let path = p.path().join(file);
        let handle = std::fs::File::options().write(true).open(&path).unwrap();
        handle.set_modified(base + Duration::from_secs(i as u64 * 7919)).unwrap();
        let exec = std::fs::metadata(&path).unwrap().permissions().mode() & 0o100;
        let mode = if i % 2 == 0 { 0o600 } else { 0o640 } | exec;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    assert_eq!(p.git(&["status", "--porcelain", "--untracked-files=no"]), "", "the odd checkout is clean");
}

#[test]
fn same_tree_in_two_differently_checked_out_clones_gives_the_same_bundle_and_build() {
    let origin = GitProject::example();
    // A nested directory and an executable file make mode and order matter.
    origin.write("lib/deep/nested/util.py", "def util():\n    return 1\n");
    origin.write("scripts/run.sh", "#!/bin/sh\necho run\n");
    std::fs::set_permissions(origin.path().join("scripts/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    origin.commit("More files");

    let plain = origin.clone_repo(true);
    let odd = origin.clone_repo(false);
    odd_checkout(&odd);
    let mode = |p: &GitProject, f: &str| std::fs::metadata(p.path().join(f)).unwrap().permissions().mode() & 0o777;
    assert_ne!(mode(&plain, "lib/common.py"), mode(&odd, "lib/common.py"), "the clones differ on disk");
    assert_eq!(mode(&odd, "scripts/run.sh") & 0o100, 0o100, "git restored the exec bit");

    let (plain_bundle, plain_id) = build(&plain);
    let (odd_bundle, odd_id) = build(&odd);
    assert_eq!(odd_bundle, plain_bundle, "bundle digests differ between clones");
    assert_eq!(odd_id, plain_id, "build ids differ between clones");
    // The stat index of a second build must not change the answer either.
    assert_eq!(build(&odd), (plain_bundle.clone(), plain_id.clone()));

    // One changed byte, committed: another digest.
    let text = odd.read("lib/common.py");
    odd.write("lib/common.py", &text.replacen("v1", "v2", 1));
    odd.commit("One byte");
    let (byte_bundle, _) = build(&odd);
    assert_ne!(byte_bundle, plain_bundle, "a changed byte kept the digest");

    // Flip an exec bit (content unchanged), committed: another digest again.
    std::fs::set_permissions(odd.path().join("lib/common.py"), std::fs::Permissions::from_mode(0o755)).unwrap();
    odd.commit("Exec bit");
    assert_eq!(odd.git(&["ls-files", "--stage", "lib/common.py"]).split(' ').next(), Some("100755"));
    let (exec_bundle, _) = build(&odd);
    assert_ne!(exec_bundle, byte_bundle, "an exec bit flip kept the digest");

    // And the same flip made in the plain clone agrees with it.
    plain.git(&["pull", "-q", odd.path().to_str().unwrap(), "main"]);
    let listing = |p: &GitProject| p.git(&["ls-files", "--stage"]);
    assert_eq!(listing(&plain), listing(&odd));
    let (plain_exec_bundle, _) = build(&plain);
    assert_eq!(plain_exec_bundle, exec_bundle);
}
