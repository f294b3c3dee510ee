//! Gates: the rules a move into a guarded env must pass. The verdict is a pure
//! function of (policy, build, ledger history, run outcomes, approvals, now), so
//! every rule is table-tested with plain values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BuildId, EnvName, FlowKey};

/// What one gate said about one move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateResult {
    /// The gate's name as written in the policy: `branches`, `after`, `soak`,
    /// `min_successful_runs`, `max_failure_rate`, `approval`, `freeze`.
    pub gate: String,
    #[serde(flatten)]
    pub status: GateStatus,
    /// One sentence a person reads: what was required and what was found.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GateStatus {
    Pass,
    /// Not now and not by waiting: a person must act (another build, an approval).
    Refuse,
    /// Not yet: passes by itself later; `until` when that time is known.
    Wait { until: Option<DateTime<Utc>> },
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
}
