//! How a rollout reads on a terminal and in `--json`.

use flowgate_core::rollout::{Phase, RolloutBody, Source, WaveOutcome};
use flowgate_core::FlowKey;
use flowgate_ledger::{RolloutLease, RolloutRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::printer::table;

#[derive(Serialize)]
pub struct StatusView<'a> {
    pub rollout: &'a RolloutRecord,
    pub body: &'a RolloutBody,
}

/// A rollout as a flowgate server answers for it: `rollout status --json`,
/// with the replica driving it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RolloutView {
    #[schema(value_type = Object)]
    pub rollout: RolloutRecord,
    /// Its waves, phase, moves and verification runs.
    #[schema(value_type = Object)]
    pub body: RolloutBody,
    /// The server replica that drives it, and until when its lease runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub driver: Option<RolloutLease>,
}

pub fn render_status(out: &mut String, record: &RolloutRecord, body: &RolloutBody) {
    let source = match &body.source {
        Source::Env(env) => format!("the builds of `{env}`"),
        Source::Build(build) => format!("build {build}"),
    };
    out.push_str(&format!(
        "Rollout {} into `{}`: {} ({}), {source}, started by {} at {}\n",
        record.id,
        record.env,
        record.status.as_str(),
        phase_word(body),
        record.actor,
        record.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
    ));
    if let Some(reason) = &body.override_reason {
        out.push_str(&format!("GATES OVERRIDDEN: {reason}\n"));
    }
    render_waves(out, body);
    if let Some(failure) = &body.failure {
        out.push_str(failure);
        out.push('\n');
    }
}

/// Where the rollout stands: `wave 2: verifying`, `done`.
pub fn phase_word(body: &RolloutBody) -> String {
    let wave = (body.wave + 1).min(body.waves.len());
    match body.phase {
        Phase::Release => format!("wave {wave}: to release"),
        Phase::Sync => format!("wave {wave}: to sync"),
        Phase::Verify => format!("wave {wave}: verifying"),
        Phase::SyncRollBack => format!("wave {wave}: rolled back, to sync"),
        Phase::Done => "done".to_string(),
    }
}

pub fn render_waves(out: &mut String, body: &RolloutBody) {
    let mut rows = Vec::new();
    for (i, wave) in body.waves.iter().enumerate() {
        let outcome = match wave.outcome {
            Some(WaveOutcome::Passed) => "passed",
            Some(WaveOutcome::Failed) => "failed",
            Some(WaveOutcome::RolledBack) => "rolled back",
            None if i == body.wave && body.phase != Phase::Done => "in progress",
            None => "pending",
        };
        for flow in &wave.flows {
            let runs: Vec<String> = flow.runs.iter().map(|r| format!("{} {}", r.name, r.state)).collect();
            rows.push(vec![
                format!("{}", i + 1),
                flow.flow.to_string(),
                flow.replaced.as_ref().map_or_else(|| "-".into(), |r| r.build.to_string()),
                flow.build.to_string(),
                flow.released_revision.map_or_else(|| "-".into(), |r| format!("r{r}")),
                outcome.to_string(),
                if runs.is_empty() { "-".into() } else { runs.join(", ") },
            ]);
        }
    }
    table(out, &["WAVE", "FLOW", "FROM", "TO", "REVISION", "WAVE STATE", "VERIFICATION RUNS"], &rows);
}

pub fn render_left_out(out: &mut String, left_out: &[FlowKey]) {
    if !left_out.is_empty() {
        let names: Vec<&str> = left_out.iter().map(FlowKey::as_str).collect();
        out.push_str(&format!("Not in any wave (left out): {}\n", names.join(", ")));
    }
}
