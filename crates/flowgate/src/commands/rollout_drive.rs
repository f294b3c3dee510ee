//! Drives a rollout one step at a time. Every step reads the stored body, does
//! its I/O, and ends in one ledger transition (compare-and-swap on the rollout's
//! version, together with the pointer moves of that step), so a driver killed at
//! any moment is restarted by reading the body again:
//!
//! - release: the wave's moves and the next phase commit together, or neither;
//! - sync: pushing the ledger to Prefect is idempotent, so it is simply redone;
//! - verify (`rollout_verify.rs`): runs are created with idempotency keys
//!   derived from the rollout, wave, flow and run number; creating one again
//!   returns the same run.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use chrono::Utc;
use flowgate_config::SelectedEnv;
use flowgate_core::rollout::RolloutBody;
use flowgate_core::rollout_step::{self, Effect, Next, Observed, StepContext, StepStatus};
use flowgate_core::{FlowKey, Move, Pointer};
use flowgate_ledger::{Ledger, LedgerError, RolloutRecord, RolloutStatus};
use flowgate_prefect::SyncOptions;

use super::deploy::{self, Target};
use super::rollout_view;
use crate::exit::usage;
use crate::printer::Printer;
use crate::project::{actor, Project};

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Moved the rollout on; the text says how.
    Progressed(String),
    /// Nothing to do until verification runs move on.
    Waiting(String),
    /// The rollout has ended with this status.
    Finished(RolloutStatus),
}

pub struct Driver<'a> {
    pub(super) project: &'a Project,
    pub(crate) ledger: Box<dyn Ledger>,
    pub(super) env: SelectedEnv,
    pub(super) target: Option<Target>,
    pub(super) actor: String,
    printer: Printer,
}

pub fn body_of(record: &RolloutRecord) -> Result<RolloutBody> {
    serde_json::from_value(record.body.clone())
        .with_context(|| format!("The ledger holds rollout `{}` in a form this flowgate cannot read", record.id))
}

impl<'a> Driver<'a> {
    pub async fn open(project: &'a Project, env: Option<&str>, printer: Printer) -> Result<Driver<'a>> {
        let env = project.select_env(env)?;
        let target = Target::of(&env)?;
        Ok(Driver { project, ledger: project.ledger().await?, target, env, actor: actor(&project.root), printer })
    }

    /// A driver for a flowgate server: the project as the server sees it, the
    /// project's ledger and one of its protected envs; moves are made as
    /// `actor`, the verified caller who started the rollout.
    pub fn new(project: &'a Project, ledger: Box<dyn Ledger>, env: SelectedEnv, actor: String) -> Result<Driver<'a>> {
        let target = Target::of(&env)?;
        Ok(Driver { project, ledger, target, env, actor, printer: Printer { json: false, quiet: true } })
    }

    pub async fn active(&self) -> Result<RolloutRecord> {
        self.ledger.active_rollout(&self.env.ledger_name).await?.ok_or_else(|| {
            usage(format!("`{}` has no active rollout; start one with `flowgate rollout start`", self.env.ledger_name))
        })
    }

    pub async fn active_or_latest(&self) -> Result<RolloutRecord> {
        if let Some(active) = self.ledger.active_rollout(&self.env.ledger_name).await? {
            return Ok(active);
        }
        self.ledger.rollouts(Some(&self.env.ledger_name), 1).await?.into_iter().next().ok_or_else(|| {
            usage(format!("`{}` has no rollouts; start one with `flowgate rollout start`", self.env.ledger_name))
        })
    }

    /// Steps until the rollout ends, sleeping `interval` seconds while
    /// verification runs are pending. A concurrent driver's transition is not an
    /// error here: the body is read again and driving goes on from there.
    pub async fn watch(&self, mut record: RolloutRecord, interval: u64) -> Result<()> {
        let mut last_wait = String::new();
        loop {
            let (next, step) = match self.step(record.clone()).await {
                Ok(done) => done,
                Err(err) if is_rollout_moved(&err) => {
                    record = self.reload(&record.id).await?;
                    continue;
                }
                Err(err) => return Err(err),
            };
            record = next;
            match &step {
                Step::Progressed(what) => self.printer.note(what),
                Step::Waiting(what) => {
                    if *what != last_wait {
                        self.printer.note(what);
                        last_wait = what.clone();
                    }
                    tokio::time::sleep(Duration::from_secs(interval.max(1))).await;
                }
                Step::Finished(_) => return finish_step(&record, &step, self.printer),
            }
        }
    }

    async fn reload(&self, id: &str) -> Result<RolloutRecord> {
        self.ledger.rollout(id).await?.with_context(|| format!("rollout `{id}` vanished from the ledger"))
    }

    /// One step of the rollout, ending in at most one ledger transition. The
    /// state machine (`flowgate_core::rollout_step`) decides; this performs the
    /// effects it asks for and stores the transition it returns.
    pub async fn step(&self, record: RolloutRecord) -> Result<(RolloutRecord, Step)> {
        let body = body_of(&record)?;
        let mut seen = Observed::default();
        loop {
            let cx = StepContext {
                rollout: &record.id,
                env: &self.env.ledger_name,
                actor: &self.actor,
                has_server: self.target.is_some(),
                now: Utc::now(),
            };
            match rollout_step::step(&cx, &body, record.status.is_active(), &seen)? {
                Next::Finished => return Ok((record.clone(), Step::Finished(record.status))),
                Next::Perform(effect) => self.perform(&record, effect, &mut seen).await?,
                Next::Transition { body, status, moves, note, finished } => {
                    let status = match status {
                        StepStatus::Running => RolloutStatus::Running,
                        StepStatus::Succeeded => RolloutStatus::Succeeded,
                        StepStatus::Failed => RolloutStatus::Failed,
                    };
                    let record = self.transition(record, status, &body, &moves).await?;
                    let step = if finished { Step::Finished(status) } else { Step::Progressed(note) };
                    return Ok((record, step));
                }
                Next::Wait { body: changed, note } => {
                    let record = match changed {
                        Some(body) => self.transition(record, RolloutStatus::Running, &body, &[]).await?,
                        None => record,
                    };
                    return Ok((record, Step::Waiting(note)));
                }
            }
        }
    }

    async fn perform(&self, record: &RolloutRecord, effect: Effect, seen: &mut Observed) -> Result<()> {
        match effect {
            Effect::ReadPointers => seen.pointers = Some(self.pointers().await?),
            Effect::Sync => {
                self.push().await?;
                seen.synced = true;
            }
            Effect::TriggerRuns(requests) => seen.created = Some(self.trigger_runs(record, requests).await?),
            Effect::ReadRuns(ids) => seen.states = Some(self.read_runs(ids).await?),
            Effect::ReadOwnRuns(flows) => seen.own_runs = Some(self.read_own_runs(flows).await?),
        }
        Ok(())
    }

    pub async fn abort(&self, record: RolloutRecord, reason: Option<&str>) -> Result<RolloutRecord> {
        let body = rollout_step::abort(&body_of(&record)?, &self.actor, reason);
        self.transition(record, RolloutStatus::Aborted, &body, &[]).await
    }

    async fn push(&self) -> Result<()> {
        let Some(target) = &self.target else { return Ok(()) };
        let options = SyncOptions { prune: false, create_work_pools: false };
        deploy::sync(self.project, self.ledger.as_ref(), target, &options).await.map(|_| ())
    }

    async fn pointers(&self) -> Result<BTreeMap<FlowKey, Pointer>> {
        Ok(self.ledger.pointers(Some(&self.env.ledger_name)).await?.into_iter().map(|p| (p.flow.clone(), p)).collect())
    }

    async fn transition(
        &self,
        record: RolloutRecord,
        status: RolloutStatus,
        body: &RolloutBody,
        moves: &[Move],
    ) -> Result<RolloutRecord> {
        let events = flowgate_core::events::for_rollout_step(
            self.ledger.project(),
            &record.env,
            &record.id,
            &record.actor,
            Utc::now(),
            &body_of(&record)?,
            body,
        );
        let next = RolloutRecord {
            status,
            version: record.version + 1,
            body: serde_json::to_value(body).context("encode the rollout")?,
            updated_at: Utc::now(),
            ..record
        };
        self.ledger.transition_rollout(&next, moves, &events).await?;
        Ok(next)
    }
}

/// True when a rollout transition lost its compare-and-swap.
pub fn is_rollout_moved(err: &anyhow::Error) -> bool {
    err.chain().any(|c| matches!(c.downcast_ref::<LedgerError>(), Some(LedgerError::RolloutMoved { .. })))
}

/// Prints where the rollout stands after a step; a failed or aborted rollout is
/// an error (exit 1) that names the failing runs.
pub fn finish_step(record: &RolloutRecord, step: &Step, printer: Printer) -> Result<()> {
    let body = body_of(record)?;
    let view = rollout_view::StatusView { rollout: record, body: &body };
    match step {
        Step::Finished(RolloutStatus::Failed) | Step::Finished(RolloutStatus::Aborted) => {
            if printer.json {
                printer.result(&view, |_| {})?;
            }
            bail!(
                "Rollout {} {}: {}",
                record.id,
                record.status.as_str(),
                body.failure.as_deref().unwrap_or("no reason recorded")
            )
        }
        Step::Progressed(what) | Step::Waiting(what) if !printer.json => printer.result(&view, |out| {
            out.push_str(what);
            out.push('\n');
            rollout_view::render_status(out, record, &body);
        }),
        _ => printer.result(&view, |out| rollout_view::render_status(out, record, &body)),
    }
}
