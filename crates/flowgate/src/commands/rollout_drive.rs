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
use flowgate_core::rollout::{rollback_moves, Phase, Replaced, RolloutBody, Source, WaveOutcome};
use flowgate_core::{Audit, FlowKey, Move, MoveKind, Pointer};
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
    pub(super) ledger: Box<dyn Ledger>,
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

    /// One step of the rollout, ending in at most one ledger transition.
    pub async fn step(&self, record: RolloutRecord) -> Result<(RolloutRecord, Step)> {
        let body = body_of(&record)?;
        if !record.status.is_active() || body.phase == Phase::Done {
            return Ok((record.clone(), Step::Finished(record.status)));
        }
        match body.phase {
            Phase::Release => self.release(record, body).await,
            Phase::Sync => self.sync(record, body).await,
            Phase::Verify => self.verify(record, body).await,
            Phase::SyncRollBack => self.sync_roll_back(record, body).await,
            Phase::Done => unreachable!("handled above"),
        }
    }

    async fn release(&self, record: RolloutRecord, mut body: RolloutBody) -> Result<(RolloutRecord, Step)> {
        let current = self.pointers().await?;
        let index = body.wave;
        let kind = match &body.source {
            Source::Env(from) => MoveKind::Promote { from: from.clone() },
            Source::Build(_) => MoveKind::Release,
        };
        let mut moves = Vec::new();
        for flow in &mut body.waves[index].flows {
            let now = current.get(&flow.flow);
            if now.is_some_and(|p| p.build == flow.build) {
                continue; // already there: nothing to move, nothing to verify or undo
            }
            flow.replaced = now.map(|p| Replaced { revision: p.revision, build: p.build.clone() });
            let expected = now.map(|p| p.revision);
            let env = &self.env.ledger_name;
            let mv =
                Move::new(&flow.flow, env, expected, &flow.build, kind.clone(), &self.actor, body.reason.as_deref())
                    .with_audit(Audit {
                        gates: flow.gates.clone(),
                        override_reason: body.override_reason.clone(),
                        rollout: Some(record.id.clone()),
                    });
            flow.released_revision = Some(mv.next_revision());
            moves.push(mv);
        }
        body.waves[index].released_at = Some(Utc::now());
        body.phase = Phase::Sync;
        let count = moves.len();
        let record = self.transition(record, RolloutStatus::Running, &body, &moves).await?;
        Ok((record, Step::Progressed(format!("wave {}/{}: released {count} flow(s)", index + 1, body.waves.len()))))
    }

    async fn sync(&self, record: RolloutRecord, mut body: RolloutBody) -> Result<(RolloutRecord, Step)> {
        self.push().await?;
        let index = body.wave;
        let total = body.waves.len();
        if body.verify.is_some() && self.target.is_some() {
            body.waves[index].verify_started_at = Some(Utc::now());
            body.phase = Phase::Verify;
            let record = self.transition(record, RolloutStatus::Running, &body, &[]).await?;
            return Ok((record, Step::Progressed(format!("wave {}/{total}: synced; verifying", index + 1))));
        }
        self.pass_wave(record, body, "synced (no verification configured)").await
    }

    pub(super) async fn pass_wave(
        &self,
        record: RolloutRecord,
        mut body: RolloutBody,
        how: &str,
    ) -> Result<(RolloutRecord, Step)> {
        let index = body.wave;
        let total = body.waves.len();
        body.waves[index].outcome = Some(WaveOutcome::Passed);
        body.wave += 1;
        let (status, phase) = if body.wave == total {
            (RolloutStatus::Succeeded, Phase::Done)
        } else {
            (RolloutStatus::Running, Phase::Release)
        };
        body.phase = phase;
        let record = self.transition(record, status, &body, &[]).await?;
        Ok((record, Step::Progressed(format!("wave {}/{total}: {how}; passed", index + 1))))
    }

    /// Rolls the wave back to the builds it replaced, in the same transition
    /// that records the failure; the sync of that comes next.
    pub(super) async fn fail_wave(
        &self,
        record: RolloutRecord,
        mut body: RolloutBody,
        reasons: Vec<String>,
    ) -> Result<(RolloutRecord, Step)> {
        let index = body.wave;
        let current = self.pointers().await?;
        let (moves, notes) =
            rollback_moves(&record.id, &self.env.ledger_name, &body.waves[index], &current, &self.actor);
        body.waves[index].outcome = Some(if moves.is_empty() { WaveOutcome::Failed } else { WaveOutcome::RolledBack });
        let mut failure = format!("wave {} failed verification:\n  {}", index + 1, reasons.join("\n  "));
        for note in notes {
            failure.push_str(&format!("\n  {note}"));
        }
        body.failure = Some(failure);
        body.phase = Phase::SyncRollBack;
        let count = moves.len();
        let record = self.transition(record, RolloutStatus::Running, &body, &moves).await?;
        Ok((record, Step::Progressed(format!("wave {}: failed verification; rolled back {count} flow(s)", index + 1))))
    }

    async fn sync_roll_back(&self, record: RolloutRecord, mut body: RolloutBody) -> Result<(RolloutRecord, Step)> {
        self.push().await?;
        body.phase = Phase::Done;
        let record = self.transition(record, RolloutStatus::Failed, &body, &[]).await?;
        Ok((record, Step::Finished(RolloutStatus::Failed)))
    }

    pub async fn abort(&self, record: RolloutRecord, reason: Option<&str>) -> Result<RolloutRecord> {
        let mut body = body_of(&record)?;
        body.failure =
            Some(format!("aborted by {}{}", self.actor, reason.map(|r| format!(": {r}")).unwrap_or_default()));
        body.phase = Phase::Done;
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

    pub(super) async fn transition(
        &self,
        record: RolloutRecord,
        status: RolloutStatus,
        body: &RolloutBody,
        moves: &[Move],
    ) -> Result<RolloutRecord> {
        let next = RolloutRecord {
            status,
            version: record.version + 1,
            body: serde_json::to_value(body).context("encode the rollout")?,
            updated_at: Utc::now(),
            ..record
        };
        self.ledger.transition_rollout(&next, moves).await?;
        Ok(next)
    }
}

fn is_rollout_moved(err: &anyhow::Error) -> bool {
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
