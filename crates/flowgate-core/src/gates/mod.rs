//! Gates: the rules a move into a guarded env must pass. The verdict is a pure
//! function of (policy, build, ledger history, run outcomes, approvals, now), so
//! every rule is table-tested with plain values.
//!
//! [`evaluate`] yields one [`GateResult`] per gate the policy sets, in the order
//! of the policy keys: `freeze`, `branches`, `provenance`, `after`, `soak`,
//! `min_successful_runs`, `max_failure_rate`, `approval`, `compatible_parameters`. Gates the policy does
//! not set yield nothing, so no policy gives an empty verdict, which passes.
//! [`Verdict::outcome`] folds the results into pass, refuse or wait.
//!
//! The gates, each documented where it is decided:
//! - `freeze`, `branches`, `provenance`, `approval`: what the target env alone says ([`local`]).
//! - `after`, `soak`: the ledger history of the upstream envs ([`history`]).
//! - `min_successful_runs`, `max_failure_rate`: upstream flow runs ([`runs`]).
//! - `compatible_parameters`: what the target env sends the flow ([`parameters`]).

mod history;
mod local;
mod parameters;
mod runs;
mod text;
mod verdict;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::build::Build;
use crate::ids::{BuildId, EnvName, FlowKey};
use crate::policy::Policy;
use crate::release::Release;

pub use parameters::ParameterUse;
pub use verdict::{Outcome, Verdict};

/// A gate, named in JSON, in the ledger and on screen as the policy key that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Gate {
    Freeze,
    Branches,
    Provenance,
    After,
    Soak,
    MinSuccessfulRuns,
    MaxFailureRate,
    Approval,
    CompatibleParameters,
}

impl Gate {
    /// Every gate, in the order [`evaluate`] reports them.
    pub const ALL: [Gate; 9] = [
        Gate::Freeze,
        Gate::Branches,
        Gate::Provenance,
        Gate::After,
        Gate::Soak,
        Gate::MinSuccessfulRuns,
        Gate::MaxFailureRate,
        Gate::Approval,
        Gate::CompatibleParameters,
    ];

    /// The policy key: `min_successful_runs`, `freeze`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Freeze => "freeze",
            Gate::Branches => "branches",
            Gate::Provenance => "provenance",
            Gate::After => "after",
            Gate::Soak => "soak",
            Gate::MinSuccessfulRuns => "min_successful_runs",
            Gate::MaxFailureRate => "max_failure_rate",
            Gate::Approval => "approval",
            Gate::CompatibleParameters => "compatible_parameters",
        }
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so `{:<20}` lines gates up in tables.
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for Gate {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What one gate said about one move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateResult {
    pub gate: Gate,
    #[serde(flatten)]
    pub status: GateStatus,
    /// One sentence a person reads: what was required and what was found.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum GateStatus {
    Pass,
    /// Not now and not by waiting: a person must act (another build, an approval).
    Refuse,
    /// Not yet: passes by itself later; `until` when that time is known.
    Wait {
        until: Option<DateTime<Utc>>,
    },
}

/// An approval recorded by `flowgate approve`: `actor` approves `build` for
/// `env`, for one flow or (flow `None`) for every flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub env: EnvName,
    pub build: BuildId,
    pub flow: Option<FlowKey>,
    pub actor: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// How a flowgate server verified `actor`; None in direct mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::Verified>,
}

/// How one Prefect flow run ended, as far as gates care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Completed,
    Failed,
    /// The run never got to the flow's code, e.g. its pull step failed; counts
    /// as a failure, like `Failed`.
    Crashed,
    Cancelled,
    /// Scheduled, pending, running, paused or any state Prefect adds later.
    Unfinished,
}

impl RunState {
    /// Maps a Prefect `state_type` (`COMPLETED`, `FAILED`, `CRASHED`,
    /// `CANCELLED`, `CANCELLING`, …). Anything else has not finished yet.
    pub fn from_prefect(state_type: &str) -> Self {
        let is = |name: &str| state_type.eq_ignore_ascii_case(name);
        if is("COMPLETED") {
            RunState::Completed
        } else if is("FAILED") {
            RunState::Failed
        } else if is("CRASHED") {
            RunState::Crashed
        } else if is("CANCELLED") || is("CANCELLING") {
            RunState::Cancelled
        } else {
            RunState::Unfinished
        }
    }

    /// Failed and crashed runs: what `max_failure_rate` counts against a build.
    pub fn is_failure(self) -> bool {
        matches!(self, RunState::Failed | RunState::Crashed)
    }
}

/// One flow run of the build in an upstream env.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub env: EnvName,
    pub flow_run_id: String,
    /// The run's name as Prefect shows it (`clever-fox`).
    pub name: String,
    pub state: RunState,
}

/// Everything a gate may look at for one move of one (flow, env) pointer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateInput<'a> {
    pub policy: &'a Policy,
    pub flow: &'a FlowKey,
    /// The env the move goes into.
    pub env: &'a EnvName,
    /// The build the move points at; `build.branch` is the branch gate's input.
    pub build: &'a Build,
    /// Actor of the move.
    pub releaser: &'a str,
    /// History of this flow in each env of `policy.after` (releases, any order;
    /// empty vec or missing key = never released there). Releases of other
    /// flows are ignored.
    pub upstream: &'a BTreeMap<EnvName, Vec<Release>>,
    /// Flow runs of this flow's deployments in the upstream envs that ran this
    /// build (caller confirms per run). Runs of envs outside `policy.after` are
    /// ignored, and a run listed twice counts once.
    pub runs: &'a [RunOutcome],
    /// Approvals recorded for this build in this env (any flow; evaluate keeps
    /// those with flow `None` or this flow).
    pub approvals: &'a [Approval],
    /// The build's verified registrations through a flowgate server.
    pub provenance: &'a [crate::Provenance],
    /// True on a flowgate server: `branches` believes only the refs of CI jobs
    /// that registered the build (their verified `ref` claims), never the
    /// branch name a client wrote into the build record.
    pub verified_branches: bool,
    /// What `compatible_parameters` reads; empty when the policy does not set it.
    pub parameters: ParameterEvidence<'a>,
    pub now: DateTime<Utc>,
}

/// The new build's parameter schema for the flow, how it differs from the
/// schema the env runs, and every parameter set the env sends the flow.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ParameterEvidence<'a> {
    pub schema: Option<&'a serde_json::Value>,
    pub changes: &'a [crate::contract::ParameterChange],
    pub uses: &'a [ParameterUse],
}

/// Evaluates every gate `input.policy` sets, in policy-key order (see the
/// module docs); gates the policy does not set yield no result.
pub fn evaluate(input: &GateInput<'_>) -> Verdict {
    let policy = input.policy;
    let mut results = Vec::new();
    if !policy.freeze.is_empty() {
        results.push(local::freeze(input));
    }
    if !policy.branches.is_empty() {
        results.push(local::branches(input));
    }
    if let Some(rule) = &policy.provenance {
        results.push(local::provenance(input, rule));
    }
    if !policy.after.is_empty() {
        results.push(history::after(input));
    }
    if let Some(soak) = policy.soak {
        results.push(history::soak(input, soak));
    }
    if policy.min_successful_runs > 0 {
        results.push(runs::min_successful_runs(input, policy.min_successful_runs));
    }
    if let Some(max) = policy.max_failure_rate {
        results.push(runs::max_failure_rate(input, max));
    }
    if policy.approvals > 0 {
        results.push(local::approval(input, policy.approvals));
    }
    if policy.compatible_parameters {
        results.push(parameters::compatible_parameters(input));
    }
    Verdict { results }
}
