//! The Prefect side of a rollout's verify phase, as effects the state machine
//! asks for: create verification runs (with idempotency keys, so a restarted
//! driver asks Prefect for the same runs), read their states, or collect the
//! deployments' own runs of the new build.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use flowgate_core::rollout::{RolloutBody, VerifyRun};
use flowgate_core::rollout_step::RunRequest;
use flowgate_core::{BuildId, FlowKey};
use flowgate_ledger::RolloutRecord;

use super::deploy::Target;
use super::gates::deployment_of;
use super::rollout_drive::{body_of, Driver};

impl Driver<'_> {
    fn server(&self) -> Result<&Target> {
        self.target.as_ref().context("verification needs the env's Prefect server")
    }

    /// Creates each requested run on the flow's deployment (its build's name for it).
    pub(super) async fn trigger_runs(
        &self,
        record: &RolloutRecord,
        requests: Vec<RunRequest>,
    ) -> Result<Vec<(FlowKey, VerifyRun)>> {
        let target = self.server()?;
        let body: RolloutBody = body_of(record)?;
        let verify = body.verify.context("verification runs asked for without a verify plan")?;
        let tags = vec![format!("flowgate-rollout:{}", record.id)];
        let mut created = Vec::new();
        for request in requests {
            let deployment = self.deployment(&request.flow, &request.build).await?.with_context(|| {
                format!("flow `{}` has no deployment in `{}` to verify", request.flow, self.env.config_name)
            })?;
            let run = target
                .client
                .create_verification_run(&deployment, &verify.parameters, &request.key, &tags)
                .await
                .with_context(|| format!("Failed to create a verification run of `{}`", request.flow))?;
            let state = run.state_type().to_string();
            created.push((request.flow, VerifyRun { key: request.key, flow_run_id: run.id, name: run.name, state }));
        }
        Ok(created)
    }

    /// The state type of each run, by flow run id.
    pub(super) async fn read_runs(&self, ids: Vec<String>) -> Result<BTreeMap<String, String>> {
        let target = self.server()?;
        let mut states = BTreeMap::new();
        for id in ids {
            let seen = target
                .client
                .read_flow_run(&id)
                .await
                .with_context(|| format!("Failed to read verification run `{id}`"))?;
            states.insert(id, seen.state_type().to_string());
        }
        Ok(states)
    }

    /// `verify.trigger = false`: the deployments' own runs (schedules, events,
    /// people) of each flow's build, found by the build's tag and confirmed per
    /// run, as the gates count upstream runs. A flow without a deployment is left out.
    pub(super) async fn read_own_runs(
        &self,
        flows: Vec<(FlowKey, BuildId)>,
    ) -> Result<BTreeMap<FlowKey, Vec<VerifyRun>>> {
        let target = self.server()?;
        let mut own = BTreeMap::new();
        for (flow, build) in flows {
            let Some(deployment) = self.deployment(&flow, &build).await? else { continue };
            let runs: Vec<VerifyRun> = target
                .client
                .runs_of_build(&deployment, &build)
                .await
                .with_context(|| format!("Failed to read the runs of `{flow}`"))?
                .into_iter()
                .map(|r| VerifyRun { key: String::new(), flow_run_id: r.id, name: r.name, state: r.state_type })
                .collect();
            own.insert(flow, runs);
        }
        Ok(own)
    }

    async fn deployment(&self, flow: &FlowKey, build: &BuildId) -> Result<Option<String>> {
        let target = self.server()?;
        let build = self.ledger.build(build).await?.with_context(|| format!("unknown build {build}"))?;
        deployment_of(self.project, target, flow, &build).await
    }
}
