//! The schema flowgate derives must equal what Prefect 3.9.1 itself derives by
//! importing the same entrypoint, for every top-level function of the corpus:
//! the single files of `tests/fixtures/*.py` and the multi-file projects of
//! `tests/fixtures/projects/<name>/` (each with a `fixture.json` naming its
//! entrypoints and python path). Where flowgate cannot be exact it must refuse
//! naming the parameter and line, never derive a different schema; and at least
//! 95% of the flows must be derived exactly.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use flowgate_entrypoint::{read_flow_in, EntrypointError, FlowReader};
use serde_json::{json, Value};

fn prefect_python() -> PathBuf {
    let venv = std::env::var_os("FLOWGATE_PREFECT_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("FLOWGATE_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/flowgate"));
        cache.join("prefect-3.9.1")
    });
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "Prefect's virtual environment is missing at `{}`: run `source scripts/lib.sh && ensure_prefect`",
        venv.display()
    );
    python
}

/// One project of the corpus: its root, python path and entrypoints.
struct Project {
    root: PathBuf,
    python_path: Vec<String>,
    entrypoints: Vec<String>,
}

fn corpus() -> Vec<Project> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut singles: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures directory exists")
        .map(|entry| entry.expect("readable entry").file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with(".py"))
        .collect();
    singles.sort();
    let mut projects = vec![Project { root: dir.clone(), python_path: vec![], entrypoints: singles }];
    let mut roots: Vec<PathBuf> = std::fs::read_dir(dir.join("projects"))
        .expect("projects directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .collect();
    roots.sort();
    for root in roots {
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("fixture.json")).expect("fixture.json"))
                .expect("fixture.json is JSON");
        let strings = |key: &str| -> Vec<String> {
            spec[key].as_array().into_iter().flatten().map(|v| v.as_str().expect("string").to_string()).collect()
        };
        projects.push(Project { python_path: strings("python_path"), entrypoints: strings("entrypoints"), root });
    }
    projects
}

fn oracle(projects: &[Project]) -> Value {
    let spec: Vec<Value> = projects
        .iter()
        .map(|p| json!({"root": p.root, "python_path": p.python_path, "entrypoints": p.entrypoints}))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prefect_oracle.py");
    let output = Command::new(prefect_python())
        .arg(&script)
        .arg(Value::Array(spec).to_string())
        .env("PREFECT_HOME", tempfile::tempdir().expect("temp dir").path())
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env("DO_NOT_TRACK", "1")
        .output()
        .expect("run Prefect's python");
    assert!(output.status.success(), "the Prefect oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("oracle prints JSON")
}

#[test]
fn every_fixture_matches_what_prefect_derives() {
    let projects = corpus();
    let expected = oracle(&projects);

    let (mut flows, mut exact, mut compared) = (0, 0, 0);
    let mut refused = Vec::new();
    let mut mismatches = Vec::new();
    for project in &projects {
        let root = &project.root;
        let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
        for entry in &project.entrypoints {
            let key = format!("{}::{entry}", root.display());
            let functions =
                expected[key.as_str()].as_object().unwrap_or_else(|| panic!("oracle has no entry for `{key}`"));
            for (function, want) in functions {
                let got = read_flow_in(&read, entry, function, &project.python_path);
                let label = format!("{entry}:{function}");
                compared += 1;
                if !want.is_null() {
                    flows += 1;
                }
                match (want, got) {
                    (Value::Null, Err(EntrypointError::NotAFlow { .. })) => {}
                    (Value::Null, other) => {
                        mismatches.push(format!("{label}: Prefect says not a flow, flowgate says {other:?}"))
                    }
                    (want, Ok(got)) => {
                        let mut wrong = Vec::new();
                        if want["flow_name"] != Value::String(got.flow_name.clone()) {
                            wrong.push(format!("flow name {} != {:?}", want["flow_name"], got.flow_name));
                        }
                        let description = got.description.clone().map_or(Value::Null, Value::String);
                        if want["description"] != description {
                            wrong.push(format!("description {} != {description}", want["description"]));
                        }
                        if want["schema"] != got.parameter_schema {
                            wrong.push(format!(
                                "schema differs\n prefect:  {}\n flowgate: {}",
                                want["schema"], got.parameter_schema
                            ));
                        }
                        if wrong.is_empty() {
                            exact += 1;
                        } else {
                            mismatches.push(format!("{label}: {}", wrong.join("; ")));
                        }
                    }
                    (_, Err(error @ EntrypointError::Unsupported { .. })) => refused.push(format!("{label}: {error}")),
                    (_, Err(error)) => mismatches.push(format!("{label}: flowgate failed: {error}")),
                }
            }
        }
    }
    let rate = 100.0 * f64::from(exact) / f64::from(flows.max(1));
    eprintln!(
        "static schema equals Prefect 3.9.1's for {exact} of {flows} flows ({rate:.1}%) across {} entrypoints; \
         {} refused:\n{}",
        projects.iter().map(|p| p.entrypoints.len()).sum::<usize>(),
        refused.len(),
        refused.join("\n")
    );
    assert!(compared >= 50, "only {compared} functions compared");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(rate >= 95.0, "only {rate:.1}% of flows derived exactly");
}

/// The top-level functions of a file, by a plain look at its lines: enough to
/// name every flow (and every non-flow) the corpus defines.
fn top_level_functions(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| line.strip_prefix("async def ").or_else(|| line.strip_prefix("def ")))
        .filter_map(|rest| rest.split('(').next().map(str::to_string))
        .collect()
}

/// A build reads all of a project's flows with one `FlowReader`: each file is
/// read once however many flows import it, and every answer, schema or
/// refusal, is what reading the flow on its own gives.
#[test]
fn one_reader_per_project_reads_each_file_once_and_answers_as_a_reader_per_flow() {
    let (mut answers, mut shared_imports) = (0, 0);
    for project in corpus() {
        let root = &project.root;
        let reads: RefCell<HashMap<String, usize>> = RefCell::default();
        let read = |path: &str| {
            *reads.borrow_mut().entry(path.to_string()).or_default() += 1;
            std::fs::read_to_string(root.join(path)).ok()
        };
        let alone = |path: &str| std::fs::read_to_string(root.join(path)).ok();
        let reader = FlowReader::new(&read);
        for entry in &project.entrypoints {
            let source = std::fs::read_to_string(root.join(entry)).expect("entrypoint is readable");
            for function in top_level_functions(&source) {
                let shared = reader.read_flow(entry, &function, &project.python_path);
                let own = read_flow_in(&alone, entry, &function, &project.python_path);
                assert_eq!(format!("{shared:?}"), format!("{own:?}"), "{entry}:{function}");
                answers += 1;
            }
        }
        let reads = reads.into_inner();
        let twice: Vec<_> = reads.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "read more than once in `{}`: {twice:?}", root.display());
        shared_imports += reads.keys().filter(|p| !project.entrypoints.contains(p)).count();
    }
    assert!(answers >= 50, "only {answers} functions read");
    assert!(shared_imports > 0, "no project of the corpus imports a module of its own");
}
