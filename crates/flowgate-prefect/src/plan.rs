//! What sync would do, decided without I/O: desired deployments against the
//! server's, field by field on the fields flowgate manages only.

use flowgate_core::EnvName;
use serde_json::{json, Map, Value};

use crate::api::ServerDeployment;
use crate::schedule::{schedules_match, Schedule};
use crate::spec::{DesiredDeployment, ENV_TAG_PREFIX};

/// One changed field, named as `DeploymentUpdate` names it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: Value,
    pub new: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// No deployment of that name for that flow: `POST /deployments/`.
    Create,
    /// A managed deployment that differs: `PATCH` with exactly these fields.
    Update { id: String, changes: Vec<FieldChange> },
    /// Identical on every managed field: nothing is sent.
    Unchanged { id: String },
    /// A deployment of that name exists without tag `flowgate`: never modified;
    /// sync skips it and reports it.
    Foreign { id: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDeployment {
    pub desired: DesiredDeployment,
    pub action: Action,
}

/// A managed deployment of this env whose flow left the config.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneCandidate {
    pub id: String,
    pub name: String,
    pub flow_name: String,
}

/// Which managed deployments belong to the env being planned.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneScope {
    pub env: EnvName,
    pub name_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub env: EnvName,
    pub deployments: Vec<PlannedDeployment>,
    pub prune: Vec<PruneCandidate>,
}

impl Plan {
    /// True when sync would send no write (pruning aside).
    pub fn is_noop(&self) -> bool {
        self.deployments.iter().all(|d| matches!(d.action, Action::Unchanged { .. } | Action::Foreign { .. }))
    }
}

pub fn plan(desired: &[DesiredDeployment], actual: &[ServerDeployment], scope: &PruneScope) -> Plan {
    let deployments = desired
        .iter()
        .map(|want| {
            let found = actual.iter().find(|have| have.name == want.name && have.flow_name == want.flow_name);
            let action = match found {
                None => Action::Create,
                Some(have) if !have.is_managed() => Action::Foreign { id: have.id.clone() },
                Some(have) => {
                    let changes = diff(want, have);
                    if changes.is_empty() {
                        Action::Unchanged { id: have.id.clone() }
                    } else {
                        Action::Update { id: have.id.clone(), changes }
                    }
                }
            };
            PlannedDeployment { desired: want.clone(), action }
        })
        .collect();
    let env_tag = format!("{ENV_TAG_PREFIX}{}", scope.env);
    let prune = actual
        .iter()
        .filter(|have| have.is_managed() && have.name.starts_with(&scope.name_prefix) && have.tags.contains(&env_tag))
        .filter(|have| !desired.iter().any(|want| want.name == have.name && want.flow_name == have.flow_name))
        .map(|have| PruneCandidate { id: have.id.clone(), name: have.name.clone(), flow_name: have.flow_name.clone() })
        .collect();
    Plan { env: scope.env.clone(), deployments, prune }
}

/// The changed managed fields of one deployment.
pub fn diff(want: &DesiredDeployment, have: &ServerDeployment) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut check = |field: &'static str, old: Value, new: Value, same: bool| {
        if !same {
            changes.push(FieldChange { field, old, new });
        }
    };
    check("version", json!(have.version), json!(want.version), have.version.as_deref() == Some(&want.version));
    check("description", json!(have.description), json!(want.description), have.description == want.description);
    check(
        "entrypoint",
        json!(have.entrypoint),
        json!(want.entrypoint),
        have.entrypoint.as_deref() == Some(&want.entrypoint),
    );
    check(
        "work_pool_name",
        json!(have.work_pool_name),
        json!(want.work_pool),
        have.work_pool_name.as_deref() == Some(&want.work_pool),
    );
    if let Some(queue) = &want.work_queue {
        check(
            "work_queue_name",
            json!(have.work_queue_name),
            json!(queue),
            have.work_queue_name.as_ref() == Some(queue),
        );
    }
    check("parameters", json!(have.parameters), json!(want.parameters), have.parameters == want.parameters);
    let schema = have.parameter_openapi_schema.clone().unwrap_or(Value::Null);
    check(
        "parameter_openapi_schema",
        schema.clone(),
        want.parameter_schema.clone(),
        same_schema(&schema, &want.parameter_schema),
    );
    check(
        "job_variables",
        json!(have.job_variables),
        json!(want.job_variables),
        have.job_variables == want.job_variables,
    );
    let mut have_tags = have.tags.clone();
    have_tags.sort();
    have_tags.dedup();
    check("tags", json!(have.tags), json!(want.tags), have_tags == want.tags);
    let have_steps = have.pull_steps.clone().unwrap_or_default();
    check("pull_steps", json!(have_steps), json!(want.pull_steps), have_steps == want.pull_steps);
    check(
        "schedules",
        json!(have.schedules),
        json!(want.schedules.iter().map(Schedule::create_body).collect::<Vec<_>>()),
        schedules_match(&want.schedules, &have.schedules),
    );
    if let Some(paused) = want.paused {
        check("paused", json!(have.paused), json!(paused), have.paused == paused);
    }
    changes
}

/// An absent schema and an empty object mean the same to the server.
fn same_schema(have: &Value, want: &Value) -> bool {
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(Map::is_empty);
    have == want || (empty(have) && empty(want))
}

/// The `PATCH` body for a list of changes: exactly those fields.
pub fn update_body(changes: &[FieldChange]) -> Value {
    Value::Object(changes.iter().map(|c| (c.field.to_string(), c.new.clone())).collect())
}
