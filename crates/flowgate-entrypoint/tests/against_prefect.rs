//! The schema flowgate derives must equal what Prefect 3.9.1 itself derives by
//! importing the same file: every fixture, every top-level function.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowgate_entrypoint::{read_flow, EntrypointError};
use serde_json::Value;

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

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "py"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_fixture_matches_what_prefect_derives() {
    let python = prefect_python();
    let files = fixtures();
    assert!(files.len() >= 6, "expected the fixture set, found {files:?}");
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prefect_oracle.py");
    let output = Command::new(&python)
        .arg(&oracle)
        .args(&files)
        .env("PREFECT_HOME", tempfile::tempdir().expect("temp dir").path())
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env("DO_NOT_TRACK", "1")
        .output()
        .expect("run Prefect's python");
    assert!(output.status.success(), "the Prefect oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    let expected: Value = serde_json::from_slice(&output.stdout).expect("oracle prints JSON");

    let mut compared = 0;
    let mut mismatches = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read fixture");
        let label = file.file_name().unwrap().to_string_lossy().to_string();
        let functions = expected[file.to_string_lossy().as_ref()]
            .as_object()
            .unwrap_or_else(|| panic!("oracle has no entry for `{}`", file.display()));
        for (function, want) in functions {
            let got = read_flow(&label, &source, function);
            compared += 1;
            match (want, got) {
                (Value::Null, Err(EntrypointError::NotAFlow { .. })) => {}
                (Value::Null, other) => {
                    mismatches.push(format!("{label}:{function}: Prefect says not a flow, flowgate says {other:?}"))
                }
                (want, Ok(got)) => {
                    if want["flow_name"] != Value::String(got.flow_name.clone()) {
                        mismatches.push(format!(
                            "{label}:{function}: flow name {} != {:?}",
                            want["flow_name"], got.flow_name
                        ));
                    }
                    let description = got.description.clone().map_or(Value::Null, Value::String);
                    if want["description"] != description {
                        mismatches
                            .push(format!("{label}:{function}: description {} != {description}", want["description"]));
                    }
                    if want["schema"] != got.parameter_schema {
                        mismatches.push(format!(
                            "{label}:{function}: schema differs\n prefect:  {}\n flowgate: {}",
                            want["schema"], got.parameter_schema
                        ));
                    }
                }
                (_, Err(error)) => mismatches.push(format!("{label}:{function}: flowgate failed: {error}")),
            }
        }
    }
    assert!(compared >= 15, "only {compared} functions compared");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
