//! Writing TOML text by hand, so generated files keep a readable layout and
//! comments: quoted strings, keys, and JSON values as inline TOML.

use serde_json::Value as Json;

/// A TOML basic string with every needed escape.
pub(crate) fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key: bare when TOML allows it, else quoted.
pub(crate) fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_string()
    } else {
        string(k)
    }
}

/// A JSON value as an inline TOML value (nulls must have been removed).
pub(crate) fn inline(value: &Json) -> String {
    match value {
        Json::Null => string(""),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => string(s),
        Json::Array(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Json::Object(map) if map.is_empty() => "{}".to_string(),
        Json::Object(map) => format!(
            "{{ {} }}",
            map.iter().map(|(k, v)| format!("{} = {}", key(k), inline(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `name = [` one inline table per line `]`, for schedules and pull steps.
pub(crate) fn table_array(out: &mut String, name: &str, items: &[serde_json::Map<String, Json>]) {
    if items.is_empty() {
        out.push_str(&format!("{name} = []\n"));
        return;
    }
    out.push_str(&format!("{name} = [\n"));
    for item in items {
        out.push_str(&format!("    {},\n", inline(&Json::Object(item.clone()))));
    }
    out.push_str("]\n");
}

/// The commented env section both `init` variants end with.
pub(crate) const ENVS_SECTION: &str = r#"
# The personal env: the default of every command, one per developer (ledger name
# `dev-<user>`, deployments named `dev-<user>-<flow>`).
[envs.dev]
# prefect_api_url = "http://127.0.0.1:4200/api"     # without it the env is ledger-only

# A shared env; pass `--env prod` (or set FLOWGATE_ENV) to act on it.
# [envs.prod]
# prefect_api_url = "https://prefect.example.com/api"
# prefect_auth = { env = "PREFECT_API_KEY", scheme = "bearer" }   # names a variable, never the secret
# policy = { branches = ["main"], after = "qa", soak = "2h", min_successful_runs = 3, approval = 1 }
# rollout = { waves = [["*"]], verify = { runs = 1, timeout = "1h" } }
"#;
