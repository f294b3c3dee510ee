//! What the `compatible_parameters` gate reads for one move: the new build's
//! parameter schema, how it differs from the schema the env runs, and every
//! parameter set the env sends the flow: the new build's deployment
//! parameters and schedules (what the deployment sends after the move), and
//! from the env's Prefect server the deployment's current parameters and
//! schedules and the parameters of its newest flow runs (what callers send).

use anyhow::{Context as _, Result};
use flowgate_config::SelectedEnv;
use flowgate_core::contract::{compare, ParameterChange};
use flowgate_core::gates::ParameterUse;
use flowgate_core::{Build, FlowKey};
use serde_json::{Map, Value};

use super::deploy::Target;
use super::flow_changes::settings_in;
use super::gates::deployment_of;
use crate::project::Project;

/// How many of the deployment's newest flow runs are read.
const RECENT_RUNS: usize = 50;

/// The gate's evidence for one move, owned (the gate input borrows it).
#[derive(Default)]
pub struct ParameterFacts {
    pub schema: Option<Value>,
    pub changes: Vec<ParameterChange>,
    pub uses: Vec<ParameterUse>,
}

impl ParameterFacts {
    pub fn evidence(&self) -> flowgate_core::gates::ParameterEvidence<'_> {
        flowgate_core::gates::ParameterEvidence {
            schema: self.schema.as_ref(),
            changes: &self.changes,
            uses: &self.uses,
        }
    }
}

/// Gathers the facts for moving `flow` in `env` from `running` (None: never
/// released there) to `build`; `target` is the env's Prefect server, if any.
pub async fn gather(
    project: &Project,
    env: &SelectedEnv,
    target: Option<&Target>,
    flow: &FlowKey,
    build: &Build,
    running: Option<&Build>,
) -> Result<ParameterFacts> {
    let mut facts = ParameterFacts::default();
    let Some(new) = settings_in(build, &env.config_name, flow) else { return Ok(facts) };
    facts.schema = Some(new.parameter_schema.clone());
    let old = running.and_then(|b| settings_in(b, &env.config_name, flow));
    if let Some(old) = old {
        facts.changes = compare(&old.parameter_schema, &new.parameter_schema);
    }
    let mut uses = Uses::default();
    uses.deployment(
        "the new build's deployment parameters",
        &new.parameters,
        new.schedules.iter().cloned().map(Value::Object),
    );
    let (Some(target), Some(running)) = (target, running) else {
        return Ok(ParameterFacts { uses: uses.0, ..facts });
    };
    let Some(id) = deployment_of(project, target, flow, running).await? else {
        return Ok(ParameterFacts { uses: uses.0, ..facts });
    };
    let env_name = &env.config_name;
    let deployment = target
        .client
        .read_deployment(&id)
        .await
        .with_context(|| format!("Failed to read the deployment of `{flow}` in env `{env_name}`"))?;
    uses.deployment(
        "the deployment's parameters on the server",
        &deployment.parameters,
        deployment.schedules.into_iter(),
    );
    let runs = target
        .client
        .recent_flow_runs(&id, RECENT_RUNS)
        .await
        .with_context(|| format!("Failed to read the flow runs of `{flow}` in env `{env_name}`"))?;
    for run in runs {
        uses.add(format!("flow run `{}` ({})", run.name, run.state_type().to_lowercase()), run.parameters, true);
    }
    Ok(ParameterFacts { uses: uses.0, ..facts })
}

/// The parameter sets found so far, each distinct set once (under the first
/// place it was found), so fifty runs of a schedule count as one.
#[derive(Default)]
struct Uses(Vec<ParameterUse>);

impl Uses {
    fn add(&mut self, source: String, parameters: Map<String, Value>, complete: bool) {
        if !self.0.iter().any(|u| u.parameters == parameters && u.complete == complete) {
            self.0.push(ParameterUse { source, parameters, complete });
        }
    }

    /// A deployment's own parameters (which callers complete) and, for each of
    /// its schedules, those merged with the schedule's (all a scheduled run gets).
    fn deployment(&mut self, what: &str, parameters: &Map<String, Value>, schedules: impl Iterator<Item = Value>) {
        self.add(what.to_string(), parameters.clone(), false);
        for (i, schedule) in schedules.enumerate() {
            let mut merged = parameters.clone();
            if let Some(own) = schedule.get("parameters").and_then(Value::as_object) {
                merged.extend(own.clone());
            }
            self.add(format!("{what} with schedule {} ({})", i + 1, describe(&schedule)), merged, true);
        }
    }
}

/// `cron 0 3 * * *`, `interval 3600`: how a schedule reads, from the config's
/// table or the server's schedule object.
fn describe(schedule: &Value) -> String {
    let inner = schedule.get("schedule").unwrap_or(schedule);
    for key in ["cron", "interval", "rrule"] {
        if let Some(value) = inner.get(key) {
            return format!("{key} {}", value.as_str().map_or_else(|| value.to_string(), str::to_string));
        }
    }
    "a schedule".to_string()
}
