//! The domain core of flowgate: what a build, a release and a pointer are, and the
//! pure rules that decide how pointers move. No I/O lives here, so every rule is
//! testable with plain values (`cargo tree -p flowgate-core -e normal` shows it).

pub mod access;
pub mod access_rules;
pub mod build;
pub mod contract;
pub mod events;
pub mod gates;
pub mod ids;
pub mod inventory;
pub mod manifest;
pub mod moves;
pub mod policy;
pub mod release;
pub mod retention;
pub mod rollout;
pub mod rollout_step;
pub mod settings;
pub mod status;
#[cfg(test)]
mod test_fixtures;
pub mod verified;

pub use access::{Grant, GrantError, Role};
pub use access_rules::{grants_for, AccessRule, RuleError};
pub use build::{Build, Images};
pub use contract::{ChangeKind, ParameterChange};
pub use events::{Event, EventFlow, EventKind};
pub use gates::{evaluate, Approval, Gate, GateInput, GateResult, GateStatus, Outcome, RunOutcome, RunState, Verdict};
pub use ids::{BuildId, Digest, EnvName, FlowKey, IdError, ProjectName, Revision};
pub use manifest::{Manifest, ManifestDiff, ManifestEntry};
pub use moves::{plan_promote, plan_release, plan_rollback, Intent, MoveError};
pub use policy::{parse_duration, FreezeWindow, Policy, ProvenanceRule};
pub use release::{Audit, Move, MoveKind, Pointer, Release};
pub use settings::{BuildSettings, CollisionStrategy, ConcurrencyLimit, DeploymentSettings, FlowCode};
pub use status::{StatusMatrix, StatusRow};
pub use verified::{AuthMethod, Provenance, Verified};
