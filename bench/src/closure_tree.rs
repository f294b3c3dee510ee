//! The generated repository of the closure benchmark (issue 16, benchmark 1):
//! 2,000 Python modules in packages and 200 flows, deterministic from the
//! seed, committed in git twice, in two directories that differ only in
//! `flowgate.toml`: in `with/` the env `qa` has a `prefect_api_url`, so a
//! build resolves the flows' deployment settings and records each flow's code
//! closure; in `without/` it has none, so a build resolves no settings and
//! computes no closure.
//!
//! The modules: a `shared` package of 40 utilities (each importing a few
//! earlier ones), a namespace package `nsp.plugins` (no `__init__.py` at any
//! level) of 20, and 20 packages `pkg_NN`, each with an `__init__.py` (an
//! `__all__` and a relative import), top-level modules and a `sub` package.
//! A module imports a few siblings before it (`from . import m_003`, `from
//! .m_001 import helper`, `from ..m_002 import helper` in `sub`), a shared
//! utility or two, sometimes another package's API module (its first five)
//! or a plugin, sometimes inside a function or an `if TYPE_CHECKING:` block,
//! then carries the generated Python of the build benchmark's tree (imports of
//! the standard library and third-party packages, classes, tasks,
//! docstrings, f-strings) up to a log-uniform size of 300 B–24 KB. Each flow
//! imports one to three modules of one package and a shared utility; two
//! flows also call `importlib.import_module(name)`, so they depend on the
//! whole bundle.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::content::{self, Kind};
use crate::rng::Rng;

/// Bump when the generator changes, so cached trees are regenerated.
const GENERATOR_VERSION: u32 = 1;
const PACKAGES: usize = 20;
const SHARED: usize = 40;
const PLUGINS: usize = 20;
/// The modules of a package other packages import.
const API: usize = 5;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct ClosureSpec {
    /// Python modules, `__init__.py` files included, flows not.
    pub modules: usize,
    pub flows: usize,
    pub seed: u64,
}

/// The two generated projects and what they hold.
#[derive(Debug, Clone)]
pub struct ClosureTrees {
    /// Settings (and so closures) resolved for every flow.
    pub with: PathBuf,
    /// The same files but `flowgate.toml`: no env with a Prefect server.
    pub without: PathBuf,
    pub modules: usize,
    pub bytes: u64,
}

/// The project's modules: path and the Python it holds.
fn modules(spec: &ClosureSpec) -> Vec<(String, String)> {
    let scale = spec.modules as f64 / 2_000.0;
    let shared = ((SHARED as f64 * scale).round() as usize).max(2);
    let plugins = ((PLUGINS as f64 * scale).round() as usize).max(1);
    let packages = ((PACKAGES as f64 * scale).round() as usize).max(1);
    // Each package: `__init__.py`, top-level modules, `sub/__init__.py` and sub-modules.
    let rest = spec.modules.saturating_sub(shared + 1 + plugins);
    let mut out = Vec::new();
    out.push(("shared/__init__.py".to_string(), "\"\"\"Shared utilities.\"\"\"\n".to_string()));
    for k in 0..shared {
        let mut rng = Rng::derive(spec.seed, out.len() as u64);
        let mut head = String::new();
        for _ in 0..rng.below(3).min(k as u64) {
            let _ = writeln!(head, "from shared.util_{:02} import helper as h{}", rng.below(k as u64), out.len());
        }
        out.push((format!("shared/util_{k:02}.py"), body(&mut rng, &head)));
    }
    for k in 0..plugins {
        let mut rng = Rng::derive(spec.seed, out.len() as u64);
        let head = format!("from shared.util_{:02} import helper as shared_helper\n", rng.below(shared as u64));
        out.push((format!("nsp/plugins/p_{k:02}.py"), body(&mut rng, &head)));
    }
    for p in 0..packages {
        let count = rest / packages + usize::from(p < rest % packages);
        let subs = count / 3;
        let tops = count - subs - 2;
        out.push((
            format!("pkg_{p:02}/__init__.py"),
            format!("\"\"\"Package {p}.\"\"\"\n\nfrom .m_000 import helper\n\n__all__ = [\"m_000\", \"m_001\", \"helper\"]\n"),
        ));
        out.push((format!("pkg_{p:02}/sub/__init__.py"), String::new()));
        for i in 0..tops + subs {
            let mut rng = Rng::derive(spec.seed, out.len() as u64);
            let mut head = String::new();
            let (path, sibling) = if i < tops {
                (format!("pkg_{p:02}/m_{i:03}.py"), i)
            } else {
                (format!("pkg_{p:02}/sub/s_{:03}.py", i - tops), i - tops)
            };
            // The API modules import only shared utilities; the others their
            // siblings before them, and sometimes another package's API.
            if i >= API {
                for _ in 0..1 + rng.below(3) {
                    let j = rng.below(sibling.max(1) as u64);
                    let line = match (i < tops, rng.below(3)) {
                        (true, 0) => format!("from . import m_{j:03}"),
                        (true, _) => format!("from .m_{j:03} import helper as h_{j}"),
                        (false, 0) => format!("from ..m_{:03} import helper as up_{j}", rng.below(tops as u64)),
                        (false, _) if sibling > 0 => format!("from .s_{j:03} import helper as s_{j}"),
                        (false, _) => format!("from .. import m_{:03}", rng.below(API as u64)),
                    };
                    let _ = writeln!(head, "{line}");
                }
                if rng.below(10) == 0 {
                    let q = rng.below(packages as u64);
                    let _ = writeln!(head, "import pkg_{q:02}.m_{:03}", rng.below(API as u64));
                }
                if rng.below(20) == 0 {
                    let _ = writeln!(head, "import nsp.plugins.p_{:02}", rng.below(plugins as u64));
                }
            }
            for _ in 0..1 + rng.below(2) {
                let _ = writeln!(head, "from shared.util_{:02} import helper as u{}", rng.below(shared as u64), i);
            }
            if rng.below(10) == 0 {
                let q = rng.below(packages as u64);
                let _ = write!(
                    head,
                    "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg_{q:02}.m_{:03} import helper as typed\n",
                    rng.below(API as u64)
                );
            }
            if rng.below(5) == 0 {
                let _ = write!(
                    head,
                    "\n\ndef lazy_helper(value):\n    from shared.util_{:02} import helper as late\n\n    return late(value)\n",
                    rng.below(shared as u64)
                );
            }
            out.push((path, body(&mut rng, &head)));
        }
    }
    out
}

/// A module: a docstring, `head` (its project imports), a `helper`, then the
/// generated Python of the build benchmark up to a log-uniform size.
fn body(rng: &mut Rng, head: &str) -> String {
    let size = rng.log_uniform(300, 24_000) as usize;
    let generated = content::generate(Kind::Python, rng, size);
    let generated = String::from_utf8(generated).expect("generated Python is text");
    // The generator cuts its text at `size`: keep whole blocks (whole lines
    // when there is none), so every module is valid Python.
    let end = generated.rfind("\n\n@").or_else(|| generated.rfind('\n')).unwrap_or(0);
    // `from __future__` must open a module: the imports above come first here.
    let generated = generated[..end].replacen("from __future__ import annotations\n", "", 1);
    format!("{head}\n\ndef helper(value):\n    return value\n\n\n{generated}")
}

/// Whether flow `i` calls `importlib.import_module(name)` (two in 200).
pub fn is_dynamic(i: usize) -> bool {
    i % 100 == 7
}

/// The flows: path and source; flow `i` imports from package `i % packages`.
fn flows(spec: &ClosureSpec, modules: &[(String, String)]) -> Vec<(String, String)> {
    let packages = modules
        .iter()
        .filter(|(p, _)| p.starts_with("pkg_") && p.ends_with("/__init__.py") && !p.contains("/sub/"))
        .count();
    let shared: Vec<&str> = modules.iter().map(|(p, _)| p.as_str()).filter(|p| p.starts_with("shared/util_")).collect();
    let dotted = |path: &str| path.trim_end_matches(".py").replace('/', ".");
    (0..spec.flows)
        .map(|i| {
            let mut rng = Rng::derive(spec.seed ^ 0xf10, i as u64);
            let mut head = String::from("from prefect import flow\n\n");
            let prefix = format!("pkg_{:02}/m_", i % packages.max(1));
            let tops: Vec<&str> = modules.iter().map(|(p, _)| p.as_str()).filter(|p| p.starts_with(&prefix)).collect();
            for _ in 0..1 + rng.below(3) {
                let module = tops[rng.below(tops.len() as u64) as usize];
                let _ = writeln!(head, "from {} import helper as h{}", dotted(module), rng.below(1000));
            }
            let _ = writeln!(head, "import {}", dotted(shared[rng.below(shared.len() as u64) as usize]));
            let dynamic = is_dynamic(i);
            if dynamic {
                head.push_str("import importlib\n");
            }
            let _ = write!(
                head,
                "\n\n@flow(name=\"flow-{i:03}\")\ndef flow_{i:03}(days: int = 1, label: str = \"x\") -> int:\n    \"\"\"Flow {i}.\"\"\"\n"
            );
            if dynamic {
                head.push_str("    importlib.import_module(label)\n");
            }
            head.push_str("    return days\n");
            (format!("flows/flow_{i:03}.py"), head)
        })
        .collect()
}

/// `flowgate.toml`: every flow with its Prefect name, description and
/// parameter schema set (so settings need no reading of the entrypoints,
/// which the build checks read on both sides anyway), and the env `qa`, with
/// a Prefect server in `with/` only. Nothing listens on port 9 and a build
/// never contacts the server.
fn config(spec: &ClosureSpec, with_server: bool) -> String {
    let mut out = String::from("[project]\nname = \"closure-bench\"\n");
    for i in 0..spec.flows {
        let _ = write!(
            out,
            "\n[flows.flow-{i:03}]\nentrypoint = \"flows/flow_{i:03}.py:flow_{i:03}\"\nflow_name = \"flow-{i:03}\"\n\
             description = \"Flow {i}.\"\nparameter_schema = {{ type = \"object\", properties = {{ days = {{ type = \"integer\" }} }} }}\n"
        );
    }
    out.push_str("\n[envs.qa]\nname_prefix = \"qa-\"\n");
    if with_server {
        out.push_str("prefect_api_url = \"http://127.0.0.1:9/api\"\n");
    }
    out
}

/// Both projects for `spec` under `work`, generated and committed unless
/// complete ones are there already.
pub fn ensure(work: &Path, spec: &ClosureSpec) -> Result<ClosureTrees> {
    let name = format!("closure-v{GENERATOR_VERSION}-{}m-{}f-s{}", spec.modules, spec.flows, spec.seed);
    let root = work.join(&name);
    let marker = work.join(format!("{name}.complete"));
    let modules = modules(spec);
    let flows = flows(spec, &modules);
    let trees = ClosureTrees {
        with: root.join("with"),
        without: root.join("without"),
        modules: modules.len(),
        bytes: modules.iter().chain(&flows).map(|(_, text)| text.len() as u64).sum(),
    };
    if marker.exists() {
        return Ok(trees);
    }
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("Failed to remove `{}`", root.display()))?;
    }
    for (dir, with_server) in [(&trees.with, true), (&trees.without, false)] {
        let fixed = [
            ("flowgate.toml".to_string(), config(spec, with_server)),
            (".gitignore".to_string(), ".flowgate/\n".to_string()),
            ("pyproject.toml".to_string(), "[project]\nname = \"closure-bench\"\nversion = \"0.1.0\"\n".to_string()),
        ];
        for (path, text) in fixed.iter().chain(&modules).chain(&flows) {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().context("a file has a directory")?)?;
            std::fs::write(&path, text).with_context(|| format!("Failed to write `{}`", path.display()))?;
        }
        crate::git::init_and_commit(dir, "Generated closure benchmark project")?;
    }
    std::fs::write(&marker, b"").with_context(|| format!("Failed to write `{}`", marker.display()))?;
    Ok(trees)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ClosureSpec = ClosureSpec { modules: 2_000, flows: 200, seed: 42 };

    #[test]
    fn two_thousand_modules_in_packages_and_a_namespace_package() {
        let modules = modules(&SPEC);
        assert_eq!(modules.len(), 2_000);
        let paths: std::collections::BTreeSet<&str> = modules.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths.len(), modules.len(), "paths are unique");
        assert!(paths.iter().any(|p| p.starts_with("nsp/plugins/")));
        assert!(!paths.iter().any(|p| p.starts_with("nsp/") && p.ends_with("__init__.py")));
        let texts: Vec<&str> = modules.iter().map(|(_, t)| t.as_str()).collect();
        for needle in ["from . import m_", "from ..m_", "import nsp.plugins.p_", "if TYPE_CHECKING:", "def lazy_helper"]
        {
            assert!(texts.iter().any(|t| t.contains(needle)), "no module has `{needle}`");
        }
        let flows = flows(&SPEC, &modules);
        assert_eq!(flows.len(), 200);
        assert_eq!(flows.iter().filter(|(_, t)| t.contains("import_module(label)")).count(), 2);
    }

    #[test]
    fn generation_is_deterministic_from_the_seed() {
        let a = modules(&SPEC);
        assert_eq!(a, modules(&SPEC));
        assert_ne!(a, modules(&ClosureSpec { seed: 43, ..SPEC }));
    }

    #[test]
    fn the_config_differs_only_by_the_server() {
        let with = config(&SPEC, true);
        let without = config(&SPEC, false);
        assert_eq!(with.replace("prefect_api_url = \"http://127.0.0.1:9/api\"\n", ""), without);
        assert_eq!(with.matches("[flows.").count(), 200);
    }
}
