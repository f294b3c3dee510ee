//! Releases, pointers and moves: the ledger's vocabulary.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::gates::GateResult;
use crate::ids::{BuildId, EnvName, FlowKey, Revision};

/// What a move carries besides the pointer change, kept with its release for
/// `history`: the gates evaluated, an override, the rollout it belonged to and,
/// for a move a flowgate server made, the verified identity that asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Audit {
    /// Every gate evaluated for this move, passed or not (empty: no policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// Set when gates were overridden: the reason given with `--override-gates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
    /// The id of the rollout that made this move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// Who asked a flowgate server for the move, as the server verified them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::Verified>,
}

impl Audit {
    pub fn is_empty(&self) -> bool {
        self == &Audit::default()
    }
}

/// Why a pointer moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MoveKind {
    /// `flowgate release`: a build named by the user.
    Release,
    /// `flowgate promote`: the build current in another env.
    Promote { from: EnvName },
    /// `flowgate rollback`: the build of an earlier revision of the same pointer.
    Rollback {
        #[cfg_attr(feature = "openapi", schema(value_type = i64))]
        to_revision: Revision,
    },
}

impl MoveKind {
    pub fn label(&self) -> &'static str {
        match self {
            MoveKind::Release => "release",
            MoveKind::Promote { .. } => "promote",
            MoveKind::Rollback { .. } => "rollback",
        }
    }
}

/// A request to move one (flow, env) pointer. `expected` is the revision the
/// caller read (`None`: no release yet); the ledger applies the move only if the
/// pointer is still there (compare-and-swap), otherwise it reports a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub flow: FlowKey,
    pub env: EnvName,
    pub expected: Option<Revision>,
    pub build: BuildId,
    pub kind: MoveKind,
    pub actor: String,
    pub reason: Option<String>,
    pub audit: Audit,
}

impl Move {
    /// The one way a pointer move is made (release, promote, rollback, a
    /// rollout's wave or its undo): `flow` in `env` from the revision the caller
    /// read (`None`: no release yet) to `build`, by `actor` for `reason`, with
    /// an empty audit ([`Move::with_audit`] adds one).
    pub fn new(
        flow: &FlowKey,
        env: &EnvName,
        expected: Option<Revision>,
        build: &BuildId,
        kind: MoveKind,
        actor: &str,
        reason: Option<&str>,
    ) -> Self {
        Self {
            flow: flow.clone(),
            env: env.clone(),
            expected,
            build: build.clone(),
            kind,
            actor: actor.to_string(),
            reason: reason.map(str::to_string),
            audit: Audit::default(),
        }
    }

    /// The move with `audit` (gates, override reason, rollout) kept with it.
    pub fn with_audit(self, audit: Audit) -> Self {
        Self { audit, ..self }
    }

    /// The revision this move creates.
    pub fn next_revision(&self) -> Revision {
        self.expected.unwrap_or(0) + 1
    }
}

/// One row of history: an applied move. Never updated, never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Release {
    pub flow: FlowKey,
    pub env: EnvName,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub revision: Revision,
    pub build: BuildId,
    pub previous_build: Option<BuildId>,
    #[serde(flatten)]
    pub kind: MoveKind,
    pub actor: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Audit::is_empty")]
    pub audit: Audit,
}

/// Where a (flow, env) pointer stands now: its latest revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub flow: FlowKey,
    pub env: EnvName,
    pub revision: Revision,
    pub build: BuildId,
    pub updated_at: DateTime<Utc>,
}
