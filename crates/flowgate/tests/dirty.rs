//! Which uncommitted changes make a build dirty: only changes to paths the bundle
//! takes (git-tracked ∩ include − exclude), including staged deletions.

use std::path::Path;

use flowgate_testkit::GitProject;

fn flowgate() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_flowgate"))
}

#[test]
fn changes_outside_the_bundle_do_not_make_it_dirty() {
    let p = GitProject::example();
    // `flows/tests/**` is excluded by the example's `exclude = ["**/tests/**"]`.
    p.write("flows/tests/test_etl.py", "def test_changed():\n    pass\n");
    let built = p.run(flowgate(), &["build", "--json"]).success().json();
    assert_eq!(built["build"]["dirty"], false, "{built}");
}

#[test]
fn a_staged_deletion_of_a_bundled_file_is_dirty() {
    let p = GitProject::example();
    p.git(&["rm", "-q", "lib/common.py"]);
    let refused = p.run(flowgate(), &["build"]).expect_code(2);
    assert!(refused.stderr.contains("`lib/common.py`"), "{}", refused.stderr);
    let built = p.run(flowgate(), &["build", "--allow-dirty", "--json"]).success().json();
    assert_eq!(built["build"]["dirty"], true, "{built}");
}

#[test]
fn an_edit_to_a_bundled_file_is_dirty() {
    let p = GitProject::example();
    p.write("lib/common.py", "MARKER = \"edited\"\n");
    p.run(flowgate(), &["build"]).expect_code(2);
}
