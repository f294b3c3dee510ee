//! The server drives the rollouts of the envs it protects. Every replica runs
//! this loop against the shared ledger; before it steps a rollout it takes the
//! rollout's lease (`Ledger::lease_rollout`), and renews it after each step,
//! so one replica drives each rollout at a time. A replica killed mid-rollout
//! stops renewing; once its lease has run out (`LEASE`) another replica takes
//! the rollout over and goes on from the body the ledger holds. Every step is
//! safe to repeat (see `commands/rollout_drive.rs`): verification runs are
//! created with idempotency keys, so a takeover never triggers one twice.

use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use flowgate_core::ProjectName;
use flowgate_ledger::{Ledger, RolloutRecord};

use super::move_routes::server_project;
use super::AppState;
use crate::commands::rollout_drive::{is_rollout_moved, Driver, Step};
use crate::project::Project;

/// How long a replica's lease on a rollout lasts without renewal: a dead
/// replica's rollouts wait at most this long (plus a tick) for another one.
pub const LEASE: Duration = Duration::from_secs(15);

/// How often a replica looks for rollouts to drive when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);

/// The most steps one rollout takes in one turn, so one rollout cannot keep
/// a replica from the others (a wave is a handful of steps).
const STEPS_PER_TURN: usize = 16;

/// Drives rollouts until the process ends.
pub async fn drive_forever(state: AppState) {
    tracing::info!(replica = %state.replica, "driving the rollouts of protected envs");
    loop {
        if let Err(err) = drive_once(&state).await {
            tracing::warn!(replica = %state.replica, "driving rollouts failed: {err:#}");
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = state.rollouts_changed.notified() => {}
        }
    }
}

/// One look at every protected env's active rollout.
async fn drive_once(state: &AppState) -> Result<()> {
    for project in state.protected.keys() {
        let name: ProjectName = project.parse()?;
        let Some(ledger) = state.database.project(&name).await? else { continue };
        let seen = server_project(state, project).map_err(anyhow::Error::msg)?;
        for record in ledger.active_rollouts().await? {
            // An env this server does not protect is driven in direct mode.
            if seen.config.env(record.env.as_str()).is_none() {
                continue;
            }
            let Some(ledger) = state.database.project(&name).await? else { continue };
            let id = record.id.clone();
            if let Err(err) = take_turn(state, &seen, ledger, record).await {
                tracing::warn!(replica = %state.replica, rollout = %id, "rollout step failed: {err:#}");
            }
        }
    }
    Ok(())
}

/// Steps `record` while this replica holds its lease, until it waits on
/// verification runs, ends, or has had its turn.
async fn take_turn(state: &AppState, project: &Project, ledger: Box<dyn Ledger>, record: RolloutRecord) -> Result<()> {
    let replica = state.replica.as_ref();
    if !ledger.lease_rollout(&record.id, replica, Utc::now(), LEASE).await? {
        return Ok(());
    }
    let env = project.select_env(Some(record.env.as_str()))?;
    let actor = record.actor.clone();
    let driver = Driver::new(project, ledger, env, actor)?;
    let mut record = record;
    for _ in 0..STEPS_PER_TURN {
        let (next, step) = match driver.step(record.clone()).await {
            Ok(done) => done,
            // Aborted or stepped elsewhere meanwhile: look again next tick.
            Err(err) if is_rollout_moved(&err) => return Ok(()),
            Err(err) => return Err(err),
        };
        record = next;
        match step {
            Step::Progressed(note) => {
                tracing::info!(replica, rollout = %record.id, "{note}");
                if !driver.ledger.lease_rollout(&record.id, replica, Utc::now(), LEASE).await? {
                    return Ok(());
                }
            }
            Step::Waiting(_) => return Ok(()),
            Step::Finished(status) => {
                tracing::info!(replica, rollout = %record.id, status = status.as_str(), "rollout ended");
                driver.ledger.end_rollout_lease(&record.id, replica).await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// This replica's name in leases: `--replica`, else the host and process id.
pub fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
    format!("{}-{}", host.as_deref().unwrap_or("flowgate"), std::process::id())
}
