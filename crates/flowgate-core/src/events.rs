//! Notifications: what happened to a project's envs, as the ledger's outbox
//! stores it and webhooks carry it. Each event's id is derived from what
//! happened (the moved pointers' revisions, the approval's key, the rollout's
//! version, the drift found), so writing the same fact twice gives the same id:
//! the outbox keeps one row, and receivers get it as the delivery's
//! idempotency key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::gates::{Approval, Gate, GateResult, GateStatus};
use crate::ids::{BuildId, EnvName, FlowKey, ProjectName, Revision};
use crate::release::Release;
use crate::rollout::{RolloutBody, WaveOutcome};

/// What kind of thing happened; a webhook subscribes to some or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "release")]
    Release,
    #[serde(rename = "promote")]
    Promote,
    #[serde(rename = "rollback")]
    Rollback,
    #[serde(rename = "gate.refused")]
    GateRefused,
    #[serde(rename = "approval.requested")]
    ApprovalRequested,
    #[serde(rename = "approval.given")]
    ApprovalGiven,
    #[serde(rename = "rollout.wave_passed")]
    WavePassed,
    #[serde(rename = "rollout.wave_failed")]
    WaveFailed,
    #[serde(rename = "rollout.rolled_back")]
    AutomaticRollback,
    #[serde(rename = "drift.found")]
    DriftFound,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Release,
        EventKind::Promote,
        EventKind::Rollback,
        EventKind::GateRefused,
        EventKind::ApprovalRequested,
        EventKind::ApprovalGiven,
        EventKind::WavePassed,
        EventKind::WaveFailed,
        EventKind::AutomaticRollback,
        EventKind::DriftFound,
    ];

    /// The stored name, the `type` of a delivery's body and of a webhook's `events` list.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Release => "release",
            EventKind::Promote => "promote",
            EventKind::Rollback => "rollback",
            EventKind::GateRefused => "gate.refused",
            EventKind::ApprovalRequested => "approval.requested",
            EventKind::ApprovalGiven => "approval.given",
            EventKind::WavePassed => "rollout.wave_passed",
            EventKind::WaveFailed => "rollout.wave_failed",
            EventKind::AutomaticRollback => "rollout.rolled_back",
            EventKind::DriftFound => "drift.found",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown event `{s}`: expected one of {}", known.join(", "))
        })
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened in one env of one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Derived from what happened: the same fact always gets the same id.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub project: ProjectName,
    pub env: EnvName,
    pub at: DateTime<Utc>,
    /// Who acted (for a rollout's waves, who started it; for drift, nobody).
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// The flows it concerns, in the order they were given.
    pub flows: Vec<EventFlow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// What a reader needs beyond the flows: refused gates, a wave's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One flow an event concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFlow {
    pub flow: FlowKey,
    pub build: Option<BuildId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_build: Option<BuildId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// Per flow: the gates that refused it, or the fields that drifted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl EventFlow {
    fn of(flow: &FlowKey, build: Option<&BuildId>) -> Self {
        EventFlow { flow: flow.clone(), build: build.cloned(), previous_build: None, revision: None, notes: Vec::new() }
    }
}

/// An id from the parts that make an event what it is.
fn derive_id(kind: EventKind, project: &ProjectName, parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [kind.as_str(), project.as_str()].iter().chain(parts) {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    format!("ev_{}", &hasher.finalize().to_hex()[..32])
}

/// The events of applied moves: one per env, kind and rollout, in the order
/// of their first move, each listing its moves. Written by the ledger in the
/// moves' own transaction.
pub fn for_releases(project: &ProjectName, releases: &[Release]) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    for r in releases {
        let kind = match r.kind {
            crate::MoveKind::Release => EventKind::Release,
            crate::MoveKind::Promote { .. } => EventKind::Promote,
            crate::MoveKind::Rollback { .. } => EventKind::Rollback,
        };
        let flow = EventFlow {
            revision: Some(r.revision),
            previous_build: r.previous_build.clone(),
            notes: r.audit.override_reason.iter().map(|why| format!("GATES OVERRIDDEN: {why}")).collect(),
            ..EventFlow::of(&r.flow, Some(&r.build))
        };
        let same = |e: &&mut Event| e.env == r.env && e.kind == kind && e.rollout == r.audit.rollout;
        match events.iter_mut().find(same) {
            Some(event) => event.flows.push(flow),
            None => events.push(Event {
                id: String::new(),
                kind,
                project: project.clone(),
                env: r.env.clone(),
                at: r.created_at,
                actor: Some(r.actor.clone()),
                reason: r.reason.clone(),
                flows: vec![flow],
                rollout: r.audit.rollout.clone(),
                detail: None,
            }),
        }
    }
    for event in &mut events {
        let moved: Vec<String> =
            event.flows.iter().map(|f| format!("{}@{}", f.flow, f.revision.unwrap_or(0))).collect();
        let mut parts = vec![event.env.as_str()];
        parts.extend(moved.iter().map(String::as_str));
        event.id = derive_id(event.kind, project, &parts);
    }
    events
}

/// An approval recorded for the first time.
pub fn approval_given(project: &ProjectName, a: &Approval) -> Event {
    let flow = a.flow.as_ref().map(FlowKey::as_str).unwrap_or("*");
    Event {
        id: derive_id(EventKind::ApprovalGiven, project, &[a.env.as_str(), a.build.as_str(), flow, &a.actor]),
        kind: EventKind::ApprovalGiven,
        project: project.clone(),
        env: a.env.clone(),
        at: a.created_at,
        actor: Some(a.actor.clone()),
        reason: Some(a.reason.clone()),
        flows: a.flow.iter().map(|f| EventFlow::of(f, Some(&a.build))).collect(),
        rollout: None,
        detail: Some(format!("build {}{}", a.build, if a.flow.is_none() { " for every flow" } else { "" })),
    }
}

/// One flow's move that the gates refused: the build it would have moved to
/// and every gate result.
#[derive(Debug)]
pub struct Refused<'a> {
    pub flow: &'a FlowKey,
    pub build: &'a str,
    pub gates: &'a [GateResult],
}

/// The events of moves refused by the gates of `env`: a `gate.refused` naming
/// every refused flow with its failing gates, and an `approval.requested`
/// naming those the approval gate holds back, when there are any. The refusal
/// changes nothing else, so these are written in their own transaction.
pub fn gate_refused(
    project: &ProjectName,
    env: &EnvName,
    actor: &str,
    at: DateTime<Utc>,
    refused: &[Refused<'_>],
) -> Vec<Event> {
    let failing = |gates: &[GateResult]| -> Vec<String> {
        gates.iter().filter(|g| g.status != GateStatus::Pass).map(|g| format!("{}: {}", g.gate, g.detail)).collect()
    };
    let flow_of = |r: &Refused<'_>| EventFlow {
        notes: failing(r.gates),
        ..EventFlow::of(r.flow, r.build.parse::<BuildId>().ok().as_ref())
    };
    let stamp = at.timestamp_millis().to_string();
    let mut keyed: Vec<String> = refused.iter().map(|r| format!("{}@{}", r.flow, r.build)).collect();
    keyed.push(stamp);
    let parts: Vec<&str> = std::iter::once(env.as_str()).chain(keyed.iter().map(String::as_str)).collect();
    let event = |kind: EventKind, flows: Vec<EventFlow>, detail: String| Event {
        id: derive_id(kind, project, &parts),
        kind,
        project: project.clone(),
        env: env.clone(),
        at,
        actor: Some(actor.to_string()),
        reason: None,
        flows,
        rollout: None,
        detail: Some(detail),
    };
    let mut events = vec![event(
        EventKind::GateRefused,
        refused.iter().map(flow_of).collect(),
        format!("refused by the gates of {env}"),
    )];
    let awaiting: Vec<EventFlow> = refused
        .iter()
        .filter(|r| r.gates.iter().any(|g| g.gate == Gate::Approval && g.status != GateStatus::Pass))
        .map(flow_of)
        .collect();
    if !awaiting.is_empty() {
        events.push(event(EventKind::ApprovalRequested, awaiting, format!("an approval for {env} is needed")));
    }
    events
}

/// The events of one rollout transition from `before` to `after` (version
/// `version` of rollout `id`): a wave's verification passing or failing, and
/// its automatic rollback. Written in the transition's own transaction.
pub fn for_rollout_step(
    project: &ProjectName,
    env: &EnvName,
    id: &str,
    actor: &str,
    at: DateTime<Utc>,
    before: &RolloutBody,
    after: &RolloutBody,
) -> Vec<Event> {
    let mut events = Vec::new();
    for (index, wave) in after.waves.iter().enumerate() {
        let Some(outcome) = wave.outcome else { continue };
        if before.waves.get(index).and_then(|w| w.outcome) == Some(outcome) {
            continue;
        }
        let kinds: &[EventKind] = match outcome {
            WaveOutcome::Passed => &[EventKind::WavePassed],
            WaveOutcome::Failed => &[EventKind::WaveFailed],
            WaveOutcome::RolledBack => &[EventKind::WaveFailed, EventKind::AutomaticRollback],
        };
        let flows: Vec<EventFlow> = wave
            .flows
            .iter()
            .map(|f| EventFlow {
                previous_build: f.replaced.as_ref().map(|r| r.build.clone()),
                revision: f.released_revision,
                notes: f.runs.iter().map(|r| format!("run {} ({}): {}", r.name, r.flow_run_id, r.state)).collect(),
                ..EventFlow::of(&f.flow, Some(&f.build))
            })
            .collect();
        let wave_number = (index + 1).to_string();
        for &kind in kinds {
            let detail = match kind {
                EventKind::WavePassed => format!("wave {wave_number} of {} passed its verification", after.waves.len()),
                EventKind::AutomaticRollback => {
                    format!("wave {wave_number} was rolled back to the builds it replaced")
                }
                // The failure names the wave and every failing run already.
                _ => after
                    .failure
                    .clone()
                    .unwrap_or_else(|| format!("wave {wave_number} of {} failed its verification", after.waves.len())),
            };
            events.push(Event {
                id: derive_id(kind, project, &[env.as_str(), id, &wave_number]),
                kind,
                project: project.clone(),
                env: env.clone(),
                at,
                actor: Some(actor.to_string()),
                reason: after.reason.clone(),
                flows: flows.clone(),
                rollout: Some(id.to_string()),
                detail: Some(detail),
            });
        }
    }
    events
}

/// Drift found in `env`: deployments on its Prefect server that differ from
/// what the ledger wants. Each entry is a flow, the revision the ledger has and
/// the fields that differ; the id is derived from all of them, so reading the
/// same drift again writes nothing new and a new drift notifies again.
pub fn drift_found(
    project: &ProjectName,
    env: &EnvName,
    at: DateTime<Utc>,
    drifted: &[(FlowKey, Option<BuildId>, Revision, Vec<String>)],
) -> Event {
    let keyed: Vec<String> =
        drifted.iter().map(|(flow, _, revision, fields)| format!("{flow}@{revision}:{}", fields.join(","))).collect();
    let parts: Vec<&str> = std::iter::once(env.as_str()).chain(keyed.iter().map(String::as_str)).collect();
    Event {
        id: derive_id(EventKind::DriftFound, project, &parts),
        kind: EventKind::DriftFound,
        project: project.clone(),
        env: env.clone(),
        at,
        actor: None,
        reason: None,
        flows: drifted
            .iter()
            .map(|(flow, build, revision, fields)| EventFlow {
                revision: Some(*revision),
                notes: fields.clone(),
                ..EventFlow::of(flow, build.as_ref())
            })
            .collect(),
        rollout: None,
        detail: Some(format!("{} deployment(s) on the Prefect server of {env} differ from the ledger", drifted.len())),
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
