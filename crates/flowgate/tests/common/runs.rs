//! Running a deployment on a real Prefect worker and reading what it printed,
//! through the server's own API.

use std::time::{Duration, Instant};

use flowgate_testkit::http::{port_of, request};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use serde_json::{json, Value};

/// How long one flow run may take on the worker.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// How many times a call the server answered 503 is tried.
const ATTEMPTS: u32 = 5;

/// One call to the Prefect server's API; panics on a non-2xx answer.
///
/// Prefect on SQLite answers 503 while its database is locked by other tests'
/// writes; such an answer is tried again after a pause, as Prefect's own client does.
pub fn api(server: &PrefectServer, method: &str, path: &str, body: &Value) -> Value {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let mut attempt = 1;
    loop {
        let (status, text) = request(port_of(&server.api_url()), method, &format!("/api{path}"), &[], &body);
        if status == 503 && attempt < ATTEMPTS {
            std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
            attempt += 1;
            continue;
        }
        assert!((200..300).contains(&status), "{method} {path}: HTTP {status}: {text}");
        return serde_json::from_str(&text).unwrap_or(Value::Null);
    }
}

/// Runs deployment `id` on the worker; returns the first log line starting with `marker-`.
pub fn run_marker(server: &PrefectServer, id: &str, worker: &PrefectWorker) -> String {
    let created = api(server, "POST", &format!("/deployments/{id}/create_flow_run"), &json!({}));
    let run_id = created["id"].as_str().expect("run id").to_string();
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let state = api(server, "GET", &format!("/flow_runs/{run_id}"), &Value::Null)["state"]["type"].clone();
        if state == "COMPLETED" {
            break;
        }
        let failed = ["FAILED", "CRASHED", "CANCELLED"].contains(&state.as_str().unwrap_or(""));
        assert!(!failed, "{state}\n--- worker\n{}", worker.log());
        assert!(Instant::now() < deadline, "run stuck in {state}\n--- worker\n{}", worker.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    loop {
        let logs = api(server, "POST", "/logs/filter", &json!({"logs": {"flow_run_id": {"any_": [run_id]}}}));
        let marker =
            logs.as_array().unwrap().iter().filter_map(|l| l["message"].as_str()).find(|m| m.starts_with("marker-"));
        if let Some(marker) = marker {
            return marker.to_string();
        }
        assert!(Instant::now() < deadline, "run `{run_id}` logged no marker\n--- worker\n{}", worker.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}
