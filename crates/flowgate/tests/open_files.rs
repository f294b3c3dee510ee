//! A tree with more directories than the limit on open files still builds, and
//! gives the same bundle: packing keeps a handle on as many directories as the
//! limit allows (flowgate raises its soft limit to the hard one at start) and
//! reaches the others from their nearest open ancestor. Before the handle budget,
//! both tests failed with "Too many open files" (the first one only without the
//! raise of the soft limit).

use std::path::Path;

use flowgate_testkit::GitProject;

fn project_with_300_directories() -> GitProject {
    let p = GitProject::example();
    for i in 0..300 {
        p.write(&format!("lib/many/d{i:03}/m.py"), &format!("N = {i}\n"));
    }
    p.commit("300 directories");
    p
}

/// `flowgate build --json` under the shell's `ulimit` arguments.
fn build_with_ulimit(p: &GitProject, ulimit: &str) -> serde_json::Value {
    let bin = env!("CARGO_BIN_EXE_flowgate");
    let script = format!("ulimit {ulimit} && exec \"$0\" build --json");
    let built = p.run_in(Path::new("/bin/sh"), p.path(), &["-c", &script, bin], &[]).success().json();
    let files = built["build"]["file_count"].as_u64().unwrap_or_else(|| panic!("no file_count in {built}"));
    assert!(files > 300, "the 300 new files are in the bundle: {built}");
    built
}

#[test]
fn a_tree_with_more_directories_than_the_soft_open_files_limit_builds() {
    let p = project_with_300_directories();
    build_with_ulimit(&p, "-Sn 64");
}

#[test]
fn a_tree_with_more_directories_than_the_hard_open_files_limit_builds_the_same_bundle() {
    let p = project_with_300_directories();
    let limited = build_with_ulimit(&p, "-n 300");
    std::fs::remove_dir_all(p.path().join(".flowgate")).unwrap();
    let unlimited = p.run(Path::new(env!("CARGO_BIN_EXE_flowgate")), &["build", "--json"]).success().json();
    assert_eq!(limited["build"]["bundle"], unlimited["build"]["bundle"]);
}
