//! A rollout as the ledger stores it: a row with a status, a compare-and-swap
//! version and an opaque JSON body. The body's meaning (waves, phases) belongs
//! to the domain core; the ledger only guarantees one active rollout per env and
//! that every transition is one transaction.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use flowgate_core::EnvName;
use serde::{Deserialize, Serialize};

/// Where a rollout stands. Only `Running` is active; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    Running,
    Succeeded,
    Failed,
    Aborted,
}

impl RolloutStatus {
    pub const ALL: [RolloutStatus; 4] =
        [RolloutStatus::Running, RolloutStatus::Succeeded, RolloutStatus::Failed, RolloutStatus::Aborted];

    /// The stored and printed name (the `status` column's values).
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Succeeded => "succeeded",
            RolloutStatus::Failed => "failed",
            RolloutStatus::Aborted => "aborted",
        }
    }

    /// True while the rollout holds its env: no other rollout may start there.
    pub fn is_active(self) -> bool {
        self == RolloutStatus::Running
    }
}

impl fmt::Display for RolloutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no rollout status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rollout status `{0}`: expected running, succeeded, failed or aborted")]
pub struct UnknownRolloutStatus(pub String);

impl FromStr for RolloutStatus {
    type Err = UnknownRolloutStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RolloutStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownRolloutStatus(s.into()))
    }
}

/// One stored rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Chosen by the caller when it starts the rollout; never changes.
    pub id: String,
    /// The env the rollout promotes into; never changes.
    pub env: EnvName,
    pub status: RolloutStatus,
    /// 1 when started, one more on every transition: the compare-and-swap
    /// counter that makes a concurrent driver's stale transition fail.
    pub version: i64,
    /// Who started it; never changes.
    pub actor: String,
    /// The rollout's state as the domain core encodes it.
    pub body: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text_and_json() {
        for status in RolloutStatus::ALL {
            assert_eq!(status.as_str().parse::<RolloutStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::Value::from(status.as_str()));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(status.is_active(), status == RolloutStatus::Running);
        }
        let err = "Running".parse::<RolloutStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown rollout status `Running`: expected running, succeeded, failed or aborted");
    }
}

/// Which server replica drives a rollout, and until when it may without
/// renewing (see [`crate::Ledger::lease_rollout`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutLease {
    /// The replica's name, as it asked.
    pub holder: String,
    /// After this, another replica may take the lease over.
    pub expires_at: DateTime<Utc>,
}
