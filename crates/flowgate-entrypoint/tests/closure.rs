//! Per-flow code closures of the fixture repositories under
//! `tests/fixtures/closure/<name>/`: each test asserts the exact set of files a
//! flow can load, and the dynamic loads reported with file and line.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use flowgate_entrypoint::{closure_digest, shared_files, Closure, ClosureIndex, DynamicUse};

/// A fixture repository read into memory, as a bundle's file list and contents.
struct Repo {
    files: BTreeSet<String>,
    texts: HashMap<String, String>,
}

impl Repo {
    fn fixture(name: &str) -> Repo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/closure").join(name);
        let mut texts = HashMap::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap().to_str().unwrap().replace('\\', "/");
                    texts.insert(relative, std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        Repo { files: texts.keys().cloned().collect(), texts }
    }

    fn closure(&self, entry: &str, python_path: &[&str], depends: &[&str]) -> Closure {
        let read = |path: &str| self.texts.get(path).cloned();
        let python_path: Vec<String> = python_path.iter().map(|s| s.to_string()).collect();
        let depends: Vec<String> = depends.iter().map(|s| s.to_string()).collect();
        flowgate_entrypoint::closure(&self.files, &read, entry, &python_path, &depends).unwrap()
    }
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

fn dynamic(file: &str, line: usize, what: &str) -> DynamicUse {
    DynamicUse { file: file.into(), line, what: what.into() }
}

const SHARED: &[&str] = &["pyproject.toml", "requirements-dev.txt", "uv.lock"];

fn with_shared(paths: &[&str]) -> BTreeSet<String> {
    set(paths).into_iter().chain(set(SHARED)).collect()
}

#[test]
fn shared_module_is_in_the_closures_of_the_two_flows_that_import_it() {
    let repo = Repo::fixture("shared");
    let read = |path: &str| repo.texts.get(path).cloned();
    let mut index = ClosureIndex::new(&repo.files, &read, &[]);
    let a = index.closure("flows/a.py", &[]).unwrap();
    let b = index.closure("flows/b.py", &[]).unwrap();
    let c = index.closure("flows/c.py", &["sql/**".to_string()]).unwrap();
    assert_eq!(a.files, with_shared(&["flows/a.py", "lib/__init__.py", "lib/common.py"]));
    assert_eq!(b.files, with_shared(&["flows/b.py", "lib/__init__.py", "lib/common.py"]));
    assert_eq!(
        c.files,
        with_shared(&["flows/c.py", "lib/__init__.py", "lib/only_c.py", "sql/daily/load.sql", "sql/report.sql"])
    );
    for closure in [&a, &b, &c] {
        assert!(closure.dynamic.is_empty() && !closure.whole_bundle, "{closure:?}");
    }
}

#[test]
fn shared_files_are_the_packaging_files_at_the_bundle_root() {
    let repo = Repo::fixture("shared");
    assert_eq!(shared_files(&repo.files), set(SHARED));
}

#[test]
fn a_directory_glob_declares_everything_below_it() {
    let repo = Repo::fixture("shared");
    let closure = repo.closure("flows/c.py", &[], &["sql/daily"]);
    assert!(closure.files.contains("sql/daily/load.sql"));
    assert!(!closure.files.contains("sql/report.sql"));
    let read = |_: &str| None;
    let error = flowgate_entrypoint::closure(&repo.files, &read, "flows/c.py", &[], &["sql/[".into()]).unwrap_err();
    assert!(error.to_string().starts_with("The `depends` pattern `sql/[` is not a valid glob"), "{error}");
}

#[test]
fn relative_imports_resolve_inside_packages_and_from_the_entrypoint() {
    let repo = Repo::fixture("relative");
    let closure = repo.closure("flows/run.py", &[], &[]);
    assert_eq!(
        closure.files,
        set(&[
            "flows/helpers.py",
            "flows/run.py",
            "flows/siblings.py",
            "pkg/__init__.py",
            "pkg/common.py",
            "pkg/jobs/__init__.py",
            "pkg/jobs/load.py",
            "pkg/jobs/util.py",
        ])
    );
    assert!(closure.dynamic.is_empty());
}

#[test]
fn star_import_follows_the_packages_all() {
    let repo = Repo::fixture("relative");
    let closure = repo.closure("flows/star.py", &[], &[]);
    assert_eq!(
        closure.files,
        set(&[
            "flows/star.py",
            "pkg/__init__.py",
            "pkg/common.py",
            "pkg/jobs/__init__.py",
            "pkg/jobs/extra.py",
            "pkg/jobs/load.py",
            "pkg/jobs/util.py",
        ])
    );
}

#[test]
fn namespace_package_portions_resolve_across_roots() {
    let repo = Repo::fixture("namespace");
    let closure = repo.closure("flows/ns_flow.py", &["extra"], &[]);
    assert_eq!(closure.files, set(&["extra/ns/more.py", "flows/ns_flow.py", "ns/tools.py"]));
    // Without the root, `ns.more` is nowhere: third-party as far as the bundle knows.
    let closure = repo.closure("flows/ns_flow.py", &[], &[]);
    assert_eq!(closure.files, set(&["flows/ns_flow.py", "ns/tools.py"]));
}

#[test]
fn src_layout_resolves_through_python_path() {
    let repo = Repo::fixture("src_layout");
    let closure = repo.closure("pipelines/run.py", &["src"], &[]);
    assert_eq!(
        closure.files,
        set(&["pipelines/run.py", "src/corelib/__init__.py", "src/corelib/settings.py", "src/corelib/version.py"])
    );
    assert!(closure.dynamic.is_empty());
}

#[test]
fn function_level_type_checking_and_try_imports_count() {
    let repo = Repo::fixture("lazy");
    let closure = repo.closure("flows/lazy.py", &[], &[]);
    assert_eq!(closure.files, set(&["flows/lazy.py", "lib/deep.py", "lib/fast.py", "lib/heavy.py", "lib/types.py"]));
}

#[test]
fn dynamic_import_makes_the_flow_depend_on_the_whole_bundle_with_file_and_line() {
    let repo = Repo::fixture("dynamic");
    let closure = repo.closure("flows/plugins.py", &[], &[]);
    assert_eq!(
        closure.dynamic,
        vec![
            dynamic("flows/plugins.py", 10, "importlib.import_module(name)"),
            dynamic("lib/registry.py", 6, "exec(code)"),
            dynamic("lib/registry.py", 7, "runpy.run_path(path)"),
        ]
    );
    assert!(closure.whole_bundle);
    assert_eq!(closure.files, repo.files);
}

#[test]
fn declared_depends_replace_the_whole_bundle() {
    let repo = Repo::fixture("dynamic");
    let closure = repo.closure("flows/plugins.py", &[], &["plugins/**"]);
    assert!(!closure.whole_bundle);
    assert_eq!(closure.dynamic.len(), 3);
    assert_eq!(closure.files, set(&["flows/plugins.py", "lib/__init__.py", "lib/registry.py", "plugins/alpha.py"]));
}

#[test]
fn literal_dynamic_imports_resolve_like_imports() {
    let repo = Repo::fixture("dynamic");
    let closure = repo.closure("flows/literal.py", &[], &[]);
    assert_eq!(closure.dynamic, vec![]);
    assert_eq!(
        closure.files,
        set(&[
            "flows/literal.py",
            "lib/__init__.py",
            "lib/dunder/__init__.py",
            "lib/dunder/sub.py",
            "lib/in_exec.py",
            "lib/literal.py",
            "lib/relative.py",
        ])
    );
}

#[test]
fn syntax_error_in_an_imported_module_is_counted_and_reported() {
    let repo = Repo::fixture("syntax_error");
    let closure = repo.closure("flows/etl.py", &[], &[]);
    assert!(closure.whole_bundle);
    assert_eq!(closure.dynamic.len(), 1, "{:?}", closure.dynamic);
    let use_ = &closure.dynamic[0];
    assert_eq!((use_.file.as_str(), use_.line), ("lib/broken.py", 4), "{use_:?}");
    assert!(use_.what.starts_with("unreadable: syntax error"), "{use_:?}");
    // Its imports cannot be read, so `lib/after.py` is only there when declared.
    let closure = repo.closure("flows/etl.py", &[], &["lib/after.py"]);
    assert_eq!(closure.files, set(&["flows/etl.py", "lib/__init__.py", "lib/after.py", "lib/broken.py"]));
}

#[test]
fn import_cycle_terminates() {
    let repo = Repo::fixture("cycle");
    let closure = repo.closure("flows/loop.py", &[], &[]);
    assert_eq!(closure.files, set(&["a.py", "b.py", "flows/loop.py"]));
}

#[test]
fn closure_digest_covers_paths_and_hashes_in_path_order() {
    let one = closure_digest([("b.py", "22"), ("a.py", "11")]);
    assert_eq!(one, blake3::hash(b"a.py\x0011\nb.py\x0022\n").to_hex().to_string());
    assert_eq!(one, closure_digest([("a.py", "11"), ("b.py", "22")]));
    assert_ne!(one, closure_digest([("a.py", "11"), ("b.py", "23")]));
    assert_ne!(one, closure_digest([("a.py", "11"), ("c.py", "22")]));
}

/// Closures read through the token-level reading: what a string, a comment
/// or a docstring says is no import; continuations, parenthesised names,
/// semicolons, `if TYPE_CHECKING:` blocks and function-level imports are.
#[test]
fn imports_are_read_past_strings_comments_and_line_breaks() {
    let texts: HashMap<String, String> = [
        (
            "flows/tricky.py",
            "\"\"\"Docs: import lib.in_docstring\"\"\"\nfrom prefect import flow\n\
             import lib.a, \\\n    lib.b\n\
             from lib.c import (\n    one,  # import lib.in_comment\n    two,\n)\n\
             import lib.d; x = 'import lib.in_string'; import lib.e\n\
             from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lib.f import T\n\
             text = f\"{x!r} import lib.in_fstring\"\n\
             raw = r'import lib.in_raw \\d'\n\
             long = \"\"\"\nimport lib.in_triple\n\"\"\"\n\n\
             @flow\ndef tricky():\n    from lib import g\n    return g\n",
        ),
        ("lib/__init__.py", ""),
        ("lib/a.py", ""),
        ("lib/b.py", ""),
        ("lib/c.py", "one = two = 1\n"),
        ("lib/d.py", ""),
        ("lib/e.py", ""),
        ("lib/f.py", "T = int\n"),
        ("lib/g.py", ""),
        ("lib/in_docstring.py", ""),
        ("lib/in_comment.py", ""),
        ("lib/in_string.py", ""),
        ("lib/in_fstring.py", ""),
        ("lib/in_raw.py", ""),
        ("lib/in_triple.py", ""),
    ]
    .into_iter()
    .map(|(path, text)| (path.to_string(), text.to_string()))
    .collect();
    let files: BTreeSet<String> = texts.keys().cloned().collect();
    let read = |path: &str| texts.get(path).cloned();
    let closure = flowgate_entrypoint::closure(&files, &read, "flows/tricky.py", &[], &[]).unwrap();
    assert_eq!(
        closure.files,
        set(&[
            "flows/tricky.py",
            "lib/__init__.py",
            "lib/a.py",
            "lib/b.py",
            "lib/c.py",
            "lib/d.py",
            "lib/e.py",
            "lib/f.py",
            "lib/g.py",
        ])
    );
    assert!(closure.dynamic.is_empty(), "{:?}", closure.dynamic);
}
