//! Errors of the Prefect client, plan and sync, as sentences that name the value.

use std::fmt;

/// What a request was about, so a refusal names the flow, env and deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub flow: Option<String>,
    pub env: Option<String>,
    pub deployment: Option<String>,
}

impl Subject {
    pub fn deployment(flow: &str, env: &str, deployment: &str) -> Self {
        Self { flow: Some(flow.into()), env: Some(env.into()), deployment: Some(deployment.into()) }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(d) = &self.deployment {
            parts.push(format!("deployment `{d}`"));
        }
        if let Some(flow) = &self.flow {
            parts.push(format!("flow `{flow}`"));
        }
        if let Some(env) = &self.env {
            parts.push(format!("env `{env}`"));
        }
        if parts.is_empty() {
            f.write_str("the request")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrefectError {
    #[error("Invalid Prefect API URL `{url}`")]
    InvalidUrl { url: String, source: url::ParseError },

    #[error("Failed to build the HTTP client for `{url}`")]
    Client { url: String, source: reqwest::Error },

    #[error("Failed to reach the Prefect server at `{url}` ({method} `{path}`) after {attempts} attempt(s)")]
    Transport { url: String, method: String, path: String, attempts: u32, source: reqwest::Error },

    #[error("Prefect server at `{url}` refused the credentials for {method} `{path}` (HTTP {status})")]
    Unauthorized { url: String, method: String, path: String, status: u16 },

    #[error("Prefect rejected {method} `{path}` for {subject}: HTTP {status}: {detail}")]
    Rejected { method: String, path: String, status: u16, subject: Box<Subject>, detail: String },

    #[error("Work pool `{pool}` does not exist on the Prefect server; create it or ask flowgate to create work pools")]
    WorkPoolMissing { pool: String },

    #[error("Failed to decode Prefect's answer to {method} `{path}`")]
    Decode { method: String, path: String, source: serde_json::Error },

    #[error("No default job template is known for work pool type `{pool_type}` (needed to create work pool `{pool}`)")]
    UnknownPoolType { pool: String, pool_type: String },

    #[error("Refusing to sync env `{env}` of project `{project}`: {conflicts}; nothing was written. Give the flow another deployment name (`deployment_name`, or the env's `name_prefix`) or remove the other deployment")]
    NotOwned { project: String, env: String, conflicts: Conflicts },

    #[error("Refusing to prune every flowgate deployment of env `{env}` ({count} of them): nothing would be left")]
    PruneEverything { env: String, count: usize },
}

/// The deployments a sync would write but does not own, as one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<crate::owner::Conflict>);

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Turns Prefect's error body into a readable reason. A 422 lists each failing
/// field location (`body.bogus: Extra inputs are not permitted`).
pub(crate) fn describe_detail(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.trim().chars().take(500).collect();
    };
    let items = value.get("exception_detail").or_else(|| value.get("detail"));
    match items {
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .map(|item| {
                let loc = item
                    .get("loc")
                    .and_then(|l| l.as_array())
                    .map(|l| {
                        l.iter()
                            .filter(|p| p.as_str() != Some("body"))
                            .map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string()))
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .unwrap_or_default();
                let msg = item.get("msg").and_then(|m| m.as_str()).unwrap_or("invalid");
                format!("field `{loc}`: {msg}")
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => body.trim().chars().take(500).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_detail_names_each_field() {
        let body = r#"{"exception_message":"Invalid request received.","exception_detail":[{"type":"extra_forbidden","loc":["body","bogus"],"msg":"Extra inputs are not permitted","input":1},{"loc":["body","schedules",0,"schedule"],"msg":"Field required"}]}"#;
        assert_eq!(
            describe_detail(body),
            "field `bogus`: Extra inputs are not permitted; field `schedules.0.schedule`: Field required"
        );
        assert_eq!(describe_detail(r#"{"detail":"Work pool not found."}"#), "Work pool not found.");
        assert_eq!(describe_detail("plain text"), "plain text");
    }

    #[test]
    fn subject_names_deployment_flow_and_env() {
        let s = Subject::deployment("etl", "qa", "qa-etl");
        assert_eq!(s.to_string(), "deployment `qa-etl`, flow `etl`, env `qa`");
        assert_eq!(Subject::default().to_string(), "the request");
    }
}
