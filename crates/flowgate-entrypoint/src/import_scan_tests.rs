//! The token-level reading against the parser-based one: the same answer for
//! every file it answers, and no answer (the parser then reads the file) for
//! what it cannot vouch for, syntax errors first.

use super::scan as fast;
use crate::closure_scan::{parse, Anchor, Import, Scan};

/// The scan with its lists sorted: the order of imports and dynamic uses is
/// not part of the answer (the closure sorts them).
fn sorted(mut scan: Scan) -> Scan {
    scan.imports.sort();
    scan.all.sort();
    scan.dynamic.sort();
    scan
}

/// The fast reading answers, and answers what the parser does.
#[track_caller]
fn same(source: &str) -> Scan {
    let expected = sorted(parse("m.py", source));
    let got = fast("m.py", source).unwrap_or_else(|| panic!("the fast reading gave up ({}) on:\n{source}", why()));
    let got = sorted(got);
    assert_eq!(got, expected, "on:\n{source}");
    got
}

/// Where the fast reading last gave up.
fn why() -> String {
    crate::import_lex::WHY.with(|why| why.get()).map_or("?".into(), |at| at.to_string())
}

/// The fast reading gives up (the parser reads the file instead).
#[track_caller]
fn unsure(source: &str) {
    assert!(fast("m.py", source).is_none(), "the fast reading answered:\n{source}");
}

fn module(name: &str) -> Import {
    Import::Module { level: 0, name: name.into(), anchor: Anchor::Package }
}

fn from(level: usize, module: &str, names: &[&str]) -> Import {
    Import::From { level, module: module.into(), names: names.iter().map(|n| n.to_string()).collect() }
}

#[test]
fn strings_and_comments_that_say_import_are_not_imports() {
    let scan = same(
        "\"\"\"Module doc.\n\nimport fake\nfrom fake import x\n\"\"\"\n\
         import real  # import commented\n\
         text = 'import nope'\n\
         other = \"from nope import x\"\n\
         raw = r'import \\d' + \"x\"\n\
         # import commented_out\n\
         def f():\n    '''import in a docstring'''\n    return f\"{'import nope'}\"\n\
         long = '''\nfrom a import b\n'''\n",
    );
    assert_eq!(scan.imports, vec![module("real")]);
}

#[test]
fn continuations_parentheses_and_semicolons() {
    let scan = same(
        "import a, \\\n    b.c as d\n\
         from pkg.sub import (one,\n    two as deux,  # comment\n    three,\n)\n\
         from other import x, y as z\n\
         import e; import f; x = 1;\n\
         from . import (sibling)\n\
         from .. import up\n\
         from ...far.away import thing\n\
         from .rel import *\n",
    );
    assert_eq!(sorted(scan).imports, {
        let mut expected = vec![
            module("a"),
            module("b.c"),
            from(0, "pkg.sub", &["one", "two", "three"]),
            from(0, "other", &["x", "y"]),
            module("e"),
            module("f"),
            from(1, "", &["sibling"]),
            from(2, "", &["up"]),
            from(3, "far.away", &["thing"]),
            from(1, "rel", &["*"]),
        ];
        expected.sort();
        expected
    });
}

#[test]
fn conditional_and_function_level_imports_count() {
    same(
        "from typing import TYPE_CHECKING\n\
         if TYPE_CHECKING:\n    from lib.types import Config\nelse:\n    Config = None\n\
         try:\n    import fast\nexcept ImportError:  # no fast\n    fast = None\n\
         try: import ujson as json\nexcept ImportError: import json\n\
         def f():\n    import lazy\n\n    class Inner:\n        from deep import thing\n    return lazy\n\
         async def g():\n    async with x as y:\n        import inside_async\n\
         if x: import inline_if\n\
         while False:\n    import in_loop\n\
         with open('f') as handle:\n    import in_with\n",
    );
}

#[test]
fn all_at_module_level_only() {
    let scan = same(
        "__all__ = ['a', \"b\", 'c' 'd', ('e'), f'x', b'y', name, *rest]\n\
         __all__ += ('g',)\n\
         __all__ = __all__ + ['h'] + other.__all__\n\
         __all__: list[str] = ['i']\n\
         if True:\n    __all__.extend(['nope'])\n    __all__ = ['j']\n\
         def f():\n    __all__ = ['not_top']\n\
         class C:\n    __all__ = ['not_top_either']\n\
         x = __all__ = ['k']\n\
         __all__ = 'l', 'm'\n\
         __all__ = ['n'] if x else ['o']\n\
         __all__ = [s for s in ['p']]\n",
    );
    assert_eq!(scan.all, ["a", "b", "cd", "e", "g", "h", "i", "j", "k", "l", "m"]);
}

#[test]
fn loader_calls_literal_and_dynamic() {
    let scan = same(
        "import importlib\nimport importlib.util\nimport runpy\nimport builtins\n\
         from importlib import import_module as load\n\
         def f(name, path, code):\n\
         \x20   importlib.import_module('lib.literal')\n\
         \x20   importlib.import_module(name)\n\
         \x20   load('.relative', package='lib')\n\
         \x20   load('.own', __name__)\n\
         \x20   load('.pkg', package=__package__)\n\
         \x20   load('.unknown', package=pkg)\n\
         \x20   __import__('lib.dunder', fromlist=['sub', other])\n\
         \x20   __import__('lib.positional', globals(), locals(), ('a', 'b'))\n\
         \x20   __import__(name)\n\
         \x20   exec('import lib.in_exec')\n\
         \x20   exec(code)\n\
         \x20   builtins.eval(code)\n\
         \x20   eval('1 + 1')\n\
         \x20   exec('import x\\nimportlib.import_module(y)')\n\
         \x20   runpy.run_path(path)\n\
         \x20   runpy.run_module('tool')\n\
         \x20   importlib.util.spec_from_file_location('m', path)\n\
         \x20   x = importlib.import_module(  # a comment\n        name  ,\n    )\n\
         \x20   self.exec(code)\n\
         \x20   f().exec(code)\n\
         \x20   return [exec(c) for c in code]\n\
         def exec_all(): pass\n\
         def exec(x): pass\n",
    );
    assert!(scan.dynamic.len() >= 8, "{:?}", scan.dynamic);
}

#[test]
fn a_name_bound_to_a_loader_after_its_call_is_left_to_the_parser() {
    unsure("def f(x):\n    return load(x)\n\nfrom importlib import import_module as load\n");
    same("def f(x):\n    return load(x)\n\nfrom somewhere import other as load\n");
}

#[test]
fn calls_inside_f_strings() {
    same("x = f\"{len(y)!r:>{width}} {a['k']} {b:%Y-%m-%d} {c:#x} {{literal}}\"\n");
    unsure("import importlib\nx = f\"{importlib.import_module(n)}\"\n");
    unsure("x = f\"{exec(code)}\"\n");
}

#[test]
fn decorators_classes_lambdas_and_annotations() {
    same(
        "@dataclass(frozen=True)\nclass A(Base, metaclass=M):\n    x: int = 1\n    y: 'B | None' = None\n\n\
         \x20   @property\n    def f(self, *args, a=lambda: 0, b: int = 3, **kw) -> dict[str, int]:\n\
         \x20       return {k: v for k, v in kw.items() if k not in ()}\n\
         def g(a, /, b, *, c): ...\n\
         k = lambda x, y=1, *z: (x, y, z)\n\
         s = x[1:2, ::3, ...]\n\
         t = a if b else c\n\
         u = not a and b or c is not None\n\
         v = [*a, *b]; w = {**d}\n\
         (p, q), r = 1, 2\n\
         n, = [1]\n\
         print(*a, sep='', end='')\n\
         if (m := re.match(p, s)) is not None: pass\n\
         match = re.match(p, s)\n\
         type = 3\n\
         print(type(x))\n\
         assert x, 'message'\n\
         del a[0], b\n\
         raise E from None\n\
         z = yield from gen()\n\
         for i, in pairs: pass\n\
         x = 0x1F + 1e-5 + 1_000 + .5 + 5. + 2j\n\
         y = -x ** 2 @ m\n\
         global g1, g2\n",
    );
}

#[test]
fn syntax_errors_are_left_to_the_parser() {
    for source in [
        "import lib.after\n\n\ndef go(:\n    pass\n",
        "x = = 1\n",
        "print \"hello\"\n",
        "x = 'unterminated\n",
        "x = (1, 2\n",
        "x = [1, 2)\n",
        "if x\n    pass\n",
        "if x:\npass\n",
        "def f():\n    return 1\n  y = 2\n",
        "x = 1\n    y = 2\n",
        "<<<<<<< HEAD\nx = 1\n=======\nx = 2\n>>>>>>> branch\n",
        "from x import\n",
        "from x import (a,)\nimport\n",
        "import a.\n",
        "from x import a,\n",
        "x = 1 +\n",
        "f(a=)\n",
        "class:\n    pass\n",
        "x = $y\n",
        "if x: if y: pass\n",
        "x = f\"{}\"\n",
        "def f():\n",
        "x = b'a' 'b'\n",
        "x.\n",
        "(a, , b)\n",
    ] {
        unsure(source);
        assert!(
            crate::closure_scan::scan("m.py", Some(source)).dynamic.iter().any(|d| d.what.starts_with("unreadable")),
            "the parser accepts:\n{source}"
        );
    }
}

#[test]
fn what_the_fast_reading_leaves_to_the_parser_though_valid() {
    for source in [
        "match x:\n    case [a, b]:\n        pass\n",
        "type Alias = int\n",
        "if x:\n\tpass\n",
        "café = 1\n",
        "(exec)(code)\n",
        "x = 'a\\x41'\nexec('\\x41')\n",
        "x = 1\r\ny = 2\r",
    ] {
        unsure(source);
    }
    // The parser's answer is what counts, whichever reading gives it.
    assert_eq!(
        crate::closure_scan::scan("m.py", Some("match x:\n    case 1:\n        import a\n")).imports,
        [module("a")]
    );
}

#[test]
fn crlf_line_ends_and_lines_of_dynamic_uses() {
    let scan =
        same("import importlib\r\n\r\n\r\nimportlib.import_module(\r\n    name)\r\nx = '''\r\n'''\r\nexec(c)\r\n");
    let lines: Vec<usize> = scan.dynamic.iter().map(|d| d.line).collect();
    assert_eq!(lines, [4, 8]);
}

#[test]
fn the_fixture_files_read_the_same() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut pending = vec![root];
    let mut count = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "py") {
                let source = std::fs::read_to_string(&path).unwrap();
                let expected = sorted(parse("m.py", &source));
                match fast("m.py", &source) {
                    Some(got) => assert_eq!(sorted(got), expected, "{}", path.display()),
                    None => assert!(
                        expected.dynamic.iter().any(|d| d.what.starts_with("unreadable")),
                        "gave up on a valid file: {}",
                        path.display()
                    ),
                }
                count += 1;
            }
        }
    }
    assert!(count > 40, "{count} fixture files");
}

/// Compares both readings on every `*.py` under `FLOWGATE_SCAN_CORPUS` (a
/// virtual environment's `site-packages` makes a good corpus) and prints what
/// the fast reading gave up on. Run on demand:
/// `FLOWGATE_SCAN_CORPUS=DIR cargo nextest run -p flowgate-entrypoint --release --run-ignored only --no-capture corpus`.
#[test]
#[ignore = "needs a corpus directory, run on demand"]
fn corpus_reads_the_same() {
    let root = std::env::var("FLOWGATE_SCAN_CORPUS").expect("FLOWGATE_SCAN_CORPUS names a directory");
    let mut pending = vec![std::path::PathBuf::from(root)];
    let (mut files, mut gave_up, mut invalid, mut differ) = (0, 0, 0, 0);
    let (mut fast_time, mut parse_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "py") {
                continue;
            }
            let Ok(source) = std::fs::read_to_string(&path) else { continue };
            files += 1;
            let start = std::time::Instant::now();
            let got = fast("m.py", &source);
            fast_time += start.elapsed();
            let start = std::time::Instant::now();
            let expected = sorted(parse("m.py", &source));
            parse_time += start.elapsed();
            let unreadable = expected.dynamic.iter().any(|d| d.what.starts_with("unreadable"));
            match got.map(sorted) {
                None if unreadable => invalid += 1,
                None => {
                    gave_up += 1;
                    println!("gave up ({}): {}", why(), path.display());
                }
                Some(got) if got != expected => {
                    differ += 1;
                    println!("DIFFERS: {}", path.display());
                }
                Some(_) => {}
            }
        }
    }
    println!(
        "{files} files: {differ} differ, {gave_up} valid files left to the parser, {invalid} the parser refuses; \
         fast {fast_time:?}, parser {parse_time:?}"
    );
    assert_eq!(differ, 0);
}
