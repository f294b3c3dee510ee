//! The verify phase of a rollout: trigger the wave's verification runs (with
//! idempotency keys, so a restarted driver asks Prefect for the same runs) or
//! collect the deployments' own runs of the new build, then judge the wave.

use anyhow::{Context as _, Result};
use chrono::Utc;
use flowgate_core::rollout::{judge, verification_key, Judgement, RolloutBody, VerifyPlan, VerifyRun};
use flowgate_ledger::{RolloutRecord, RolloutStatus};

use super::gates::deployment_of;
use super::rollout_drive::{Driver, Step};

impl Driver<'_> {
    pub(super) async fn verify(&self, record: RolloutRecord, mut body: RolloutBody) -> Result<(RolloutRecord, Step)> {
        let target = self.target.as_ref().context("verification needs the env's Prefect server")?;
        let verify = body.verify.clone().context("verify phase without a verify plan")?;
        let index = body.wave;
        if !verify.trigger {
            return self.watch_own_runs(record, body, &verify).await;
        }
        // Trigger missing runs first; each is stored before any is watched.
        let mut created = 0;
        for flow in body.waves[index].flows.iter_mut().filter(|f| f.released_revision.is_some()) {
            if flow.runs.len() >= verify.runs as usize {
                continue;
            }
            let build =
                self.ledger.build(&flow.build).await?.with_context(|| format!("unknown build {}", flow.build))?;
            let deployment = deployment_of(self.project, target, &flow.flow, &build).await?.with_context(|| {
                format!("flow `{}` has no deployment in `{}` to verify", flow.flow, self.env.config_name)
            })?;
            for n in flow.runs.len() as u32..verify.runs {
                let key = verification_key(&record.id, index, &flow.flow, n);
                let tags = vec![format!("flowgate-rollout:{}", record.id)];
                let run = target
                    .client
                    .create_verification_run(&deployment, &verify.parameters, &key, &tags)
                    .await
                    .with_context(|| format!("Failed to create a verification run of `{}`", flow.flow))?;
                flow.runs.push(VerifyRun {
                    key,
                    flow_run_id: run.id.clone(),
                    name: run.name.clone(),
                    state: run.state_type().to_string(),
                });
                created += 1;
            }
        }
        if created > 0 {
            let record = self.transition(record, RolloutStatus::Running, &body, &[]).await?;
            return Ok((
                record,
                Step::Progressed(format!("wave {}: triggered {created} verification run(s)", index + 1)),
            ));
        }
        let mut changed = false;
        for run in body.waves[index].flows.iter_mut().flat_map(|f| f.runs.iter_mut()) {
            if matches!(run.state.as_str(), "COMPLETED" | "FAILED" | "CRASHED" | "CANCELLED") {
                continue;
            }
            let seen = target
                .client
                .read_flow_run(&run.flow_run_id)
                .await
                .with_context(|| format!("Failed to read verification run `{}`", run.flow_run_id))?;
            let state = seen.state_type().to_string();
            if state != run.state {
                run.state = state;
                changed = true;
            }
        }
        match judge(&body.waves[index], &verify, Utc::now()) {
            Judgement::Pass => self.pass_wave(record, body, "verification runs completed").await,
            Judgement::Fail(reasons) => self.fail_wave(record, body, reasons).await,
            Judgement::Pending => {
                let record =
                    if changed { self.transition(record, RolloutStatus::Running, &body, &[]).await? } else { record };
                let states: Vec<String> = body.waves[index]
                    .flows
                    .iter()
                    .flat_map(|f| f.runs.iter().map(move |r| format!("{} {}", f.flow, r.state)))
                    .collect();
                Ok((record, Step::Waiting(format!("wave {}: waiting for runs ({})", index + 1, states.join(", ")))))
            }
        }
    }

    /// `verify.trigger = false`: the wave is judged by the deployments' own runs
    /// (schedules, events, people) of the new build, found by the build's tag and
    /// confirmed per run, as the gates count upstream runs.
    async fn watch_own_runs(
        &self,
        record: RolloutRecord,
        mut body: RolloutBody,
        verify: &VerifyPlan,
    ) -> Result<(RolloutRecord, Step)> {
        let target = self.target.as_ref().context("verification needs the env's Prefect server")?;
        let index = body.wave;
        let mut changed = false;
        for flow in body.waves[index].flows.iter_mut().filter(|f| f.released_revision.is_some()) {
            let build =
                self.ledger.build(&flow.build).await?.with_context(|| format!("unknown build {}", flow.build))?;
            let Some(deployment) = deployment_of(self.project, target, &flow.flow, &build).await? else { continue };
            let runs: Vec<VerifyRun> = target
                .client
                .runs_of_build(&deployment, &flow.build)
                .await
                .with_context(|| format!("Failed to read the runs of `{}`", flow.flow))?
                .into_iter()
                .map(|r| VerifyRun { key: String::new(), flow_run_id: r.id, name: r.name, state: r.state_type })
                .collect();
            if runs != flow.runs {
                flow.runs = runs;
                changed = true;
            }
        }
        match judge(&body.waves[index], verify, Utc::now()) {
            Judgement::Pass => self.pass_wave(record, body, "the deployments' own runs completed").await,
            Judgement::Fail(reasons) => self.fail_wave(record, body, reasons).await,
            Judgement::Pending => {
                let record =
                    if changed { self.transition(record, RolloutStatus::Running, &body, &[]).await? } else { record };
                Ok((record, Step::Waiting(format!("wave {}: waiting for the deployments' own runs", index + 1))))
            }
        }
    }
}
