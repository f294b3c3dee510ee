//! A tree with more directories than the soft limit on open files still builds:
//! packing holds a handle on every directory at once, so flowgate raises its soft
//! limit to the hard one at start (without that, this test fails with "Too many
//! open files").

use std::path::Path;

use flowgate_testkit::GitProject;

#[test]
fn a_tree_with_more_directories_than_the_soft_open_files_limit_builds() {
    let p = GitProject::example();
    for i in 0..300 {
        p.write(&format!("lib/many/d{i:03}/m.py"), &format!("N = {i}\n"));
    }
    p.commit("300 directories");
    let bin = env!("CARGO_BIN_EXE_flowgate");
    let script = "ulimit -Sn 64 && exec \"$0\" build --json";
    let built = p.run_in(Path::new("/bin/sh"), p.path(), &["-c", script, bin], &[]).success().json();
    let files = built["build"]["file_count"].as_u64().unwrap_or_else(|| panic!("no file_count in {built}"));
    assert!(files > 300, "the 300 new files are in the bundle: {built}");
}
