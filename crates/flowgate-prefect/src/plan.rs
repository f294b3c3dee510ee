//! What sync would do, decided without I/O: desired deployments against the
//! server's, field by field on the fields flowgate manages only, and only on
//! deployments the project owns (or adopts from before projects existed).

use flowgate_core::{EnvName, ProjectName};
use serde_json::{json, Map, Value};

use crate::api::ServerDeployment;
use crate::owner::{Conflict, Owner};
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
    /// The project's own deployment, and it differs: `PATCH` with exactly these fields.
    Update { id: String, changes: Vec<FieldChange> },
    /// Identical on every managed field: nothing is sent.
    Unchanged { id: String },
    /// A flowgate deployment from before projects, tagged with this env and
    /// named as this project's config names it: sync adopts it (the changes
    /// include the project tag).
    Adopt { id: String, changes: Vec<FieldChange> },
    /// A deployment of that name that another project owns, or no project
    /// (unmanaged, or flowgate's without a project tag and not adoptable):
    /// sync refuses the whole plan before writing anything.
    Foreign { id: String, owner: Owner },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDeployment {
    pub desired: DesiredDeployment,
    pub action: Action,
}

/// A deployment of this project and env that the ledger no longer wants.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneCandidate {
    pub id: String,
    pub name: String,
    pub flow_name: String,
}

/// Which deployments are the planned env's: the project's own, tagged with the
/// env, named with the env's prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneScope {
    pub project: ProjectName,
    pub env: EnvName,
    pub name_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub project: ProjectName,
    pub env: EnvName,
    pub deployments: Vec<PlannedDeployment>,
    /// The project's deployments in this env that nothing wants: `sync --prune` deletes them.
    pub prune: Vec<PruneCandidate>,
    /// flowgate deployments without a project tag, tagged with this env and named
    /// with its prefix, that this project's ledger does not want: they may be
    /// another project's from before projects existed, so they are reported,
    /// never adopted or pruned.
    pub unclaimed: Vec<PruneCandidate>,
}

impl Plan {
    /// True when sync would send no write (pruning aside).
    pub fn is_noop(&self) -> bool {
        self.deployments.iter().all(|d| matches!(d.action, Action::Unchanged { .. } | Action::Foreign { .. }))
    }

    /// The deployments sync would have to write but does not own.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.deployments
            .iter()
            .filter_map(|d| match &d.action {
                Action::Foreign { owner, .. } => Some(Conflict {
                    deployment: d.desired.name.clone(),
                    flow_name: d.desired.flow_name.clone(),
                    owner: owner.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

pub fn plan(desired: &[DesiredDeployment], actual: &[ServerDeployment], scope: &PruneScope) -> Plan {
    let deployments = desired
        .iter()
        .map(|want| {
            let found = actual.iter().find(|have| have.name == want.name && have.flow_name == want.flow_name);
            let action = match found {
                None => Action::Create,
                Some(have) => {
                    let owner = Owner::of(have);
                    let id = have.id.clone();
                    if owner.is(&scope.project) {
                        let changes = diff(want, have);
                        if changes.is_empty() {
                            Action::Unchanged { id }
                        } else {
                            Action::Update { id, changes }
                        }
                    } else if owner.adoptable_in(&want.env) {
                        Action::Adopt { id, changes: diff(want, have) }
                    } else {
                        Action::Foreign { id, owner }
                    }
                }
            };
            PlannedDeployment { desired: want.clone(), action }
        })
        .collect();
    let wanted = |have: &ServerDeployment| desired.iter().any(|w| w.name == have.name && w.flow_name == have.flow_name);
    let env_tag = format!("{ENV_TAG_PREFIX}{}", scope.env);
    let in_scope = |have: &ServerDeployment| have.name.starts_with(&scope.name_prefix) && have.tags.contains(&env_tag);
    let candidate = |have: &ServerDeployment| PruneCandidate {
        id: have.id.clone(),
        name: have.name.clone(),
        flow_name: have.flow_name.clone(),
    };
    let prune = actual
        .iter()
        .filter(|have| Owner::of(have).is(&scope.project) && in_scope(have) && !wanted(have))
        .map(candidate)
        .collect();
    let unclaimed = actual
        .iter()
        .filter(|have| Owner::of(have).adoptable_in(&scope.env) && in_scope(have) && !wanted(have))
        .map(candidate)
        .collect();
    Plan { project: scope.project.clone(), env: scope.env.clone(), deployments, prune, unclaimed }
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
    let limit = want.concurrency_limit.map(|c| u64::from(c.limit));
    check("concurrency_limit", json!(have.limit()), json!(limit), have.limit() == limit);
    let options = want.concurrency_options();
    check(
        "concurrency_options",
        json!(have.concurrency_options),
        options.clone(),
        effective_options(&json!(have.concurrency_options)) == effective_options(&options),
    );
    check(
        "enforce_parameter_schema",
        json!(have.enforces_parameter_schema()),
        json!(want.enforces_parameter_schema()),
        have.enforces_parameter_schema() == want.enforces_parameter_schema(),
    );
    changes
}

/// What concurrency options do: `null` and a missing strategy mean `ENQUEUE`,
/// a missing grace period the server's setting.
fn effective_options(options: &Value) -> (Value, Value) {
    let strategy = options.get("collision_strategy").filter(|s| !s.is_null()).cloned();
    let grace = options.get("grace_period_seconds").cloned().unwrap_or(Value::Null);
    (strategy.unwrap_or_else(|| json!("ENQUEUE")), grace)
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
