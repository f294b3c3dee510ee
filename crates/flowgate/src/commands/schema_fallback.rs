//! The fallback for a flow whose parameter schema the static reader cannot
//! derive (a third-party type, a model it refuses): with `[project] python`,
//! `build` imports the flow with the project's own Python and asks Prefect's
//! `parameter_schema`, exactly what `prefect deploy` sends. The result is
//! recorded with the build, so no later move runs Python.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use flowgate_entrypoint::FlowSignature;
use serde_json::Value;

/// How long importing the flow and deriving its schema may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Loads the flow as Prefect's engine does (from the bundle root, with
/// `python_path` on `sys.path`) and prints its name, description and schema.
const SCRIPT: &str = r#"
import json, os, sys
root, entrypoint, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
os.chdir(root)
sys.path[:0] = [os.path.join(root, p) for p in paths] + [root]
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema
flow = load_flow_from_entrypoint(entrypoint)
json.dump({
    "flow_name": flow.name,
    "description": flow.description,
    "schema": parameter_schema(flow).model_dump_for_openapi(),
}, sys.stdout)
"#;

/// The signature of `function` in `entrypoint` (as Prefect takes it: a file
/// path or a module) under `root`, derived by `python`.
pub fn derive(python: &str, root: &Path, entrypoint: &str, python_path: &[String]) -> Result<FlowSignature> {
    let function = entrypoint.rsplit_once(':').map_or("", |(_, f)| f).to_string();
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(root)
        .arg(entrypoint)
        .arg(serde_json::to_string(python_path)?)
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env("DO_NOT_TRACK", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("Failed to run the project's Python `{python}` (`[project] python`)"))?;
    // Read while the child runs: a schema larger than the pipe would block it.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{python}` took over {}s to import `{entrypoint}` and derive its parameter schema",
                TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        bail!("`{python}` failed to import `{entrypoint}` and derive its parameter schema ({status}): {last}");
    }
    let answer: Value = serde_json::from_str(&stdout)
        .with_context(|| format!("`{python}` printed no schema for `{entrypoint}`: {}", stdout.trim()))?;
    let flow_name = answer["flow_name"].as_str().context("the derived flow has no name")?.to_string();
    Ok(FlowSignature {
        flow_name,
        function,
        parameter_schema: answer["schema"].clone(),
        description: answer["description"].as_str().map(str::to_string),
    })
}
