//! The pure rules that turn a user's intent (release, promote, rollback) into
//! pointer moves, given what the ledger holds now.

use std::collections::BTreeMap;

use crate::ids::{BuildId, EnvName, FlowKey, Revision};
use crate::release::{Move, MoveKind, Pointer, Release};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("flow `{flow}` has no release in `{env}` to promote from")]
    NothingToPromote { flow: FlowKey, env: EnvName },
    #[error("`{env}` has no releases to promote from")]
    EmptySource { env: EnvName },
    #[error("flow `{flow}` has no earlier revision in `{env}` to roll back to")]
    NothingToRollBack { flow: FlowKey, env: EnvName },
    #[error("flow `{flow}` has no revision {revision} in `{env}` (latest is {latest})")]
    UnknownRevision { flow: FlowKey, env: EnvName, revision: Revision, latest: Revision },
    #[error("revision {revision} of flow `{flow}` in `{env}` is the current one; nothing to roll back")]
    AlreadyCurrent { flow: FlowKey, env: EnvName, revision: Revision },
    #[error("cannot promote `{env}` into itself")]
    SameEnv { env: EnvName },
}

/// Who moves and why: the same for every move of one command.
#[derive(Debug, Clone)]
pub struct Intent {
    pub actor: String,
    pub reason: Option<String>,
}

fn make_move(
    flow: &FlowKey,
    env: &EnvName,
    current: Option<&Pointer>,
    build: &BuildId,
    kind: MoveKind,
    intent: &Intent,
) -> Move {
    Move::new(flow, env, current.map(|p| p.revision), build, kind, &intent.actor, intent.reason.as_deref())
}

/// Moves that point each flow at `build` in `env`. Flows already there are left
/// out: releasing the current build again records nothing.
pub fn plan_release(
    flows: &[FlowKey],
    env: &EnvName,
    build: &BuildId,
    current: &BTreeMap<FlowKey, Pointer>,
    intent: &Intent,
) -> Vec<Move> {
    flows
        .iter()
        .filter(|flow| current.get(*flow).is_none_or(|p| &p.build != build))
        .map(|flow| make_move(flow, env, current.get(flow), build, MoveKind::Release, intent))
        .collect()
}

/// Moves that make `to` run exactly the builds current in `from`, for `flows`
/// (every flow released in `from` when empty). Never builds anything.
pub fn plan_promote(
    flows: &[FlowKey],
    from: &EnvName,
    to: &EnvName,
    source: &BTreeMap<FlowKey, Pointer>,
    target: &BTreeMap<FlowKey, Pointer>,
    intent: &Intent,
) -> Result<Vec<Move>, MoveError> {
    if from == to {
        return Err(MoveError::SameEnv { env: from.clone() });
    }
    let selected: Vec<FlowKey> = if flows.is_empty() {
        if source.is_empty() {
            return Err(MoveError::EmptySource { env: from.clone() });
        }
        source.keys().cloned().collect()
    } else {
        flows.to_vec()
    };
    let mut moves = Vec::new();
    for flow in &selected {
        let Some(src) = source.get(flow) else {
            return Err(MoveError::NothingToPromote { flow: flow.clone(), env: from.clone() });
        };
        let current = target.get(flow);
        if current.is_some_and(|p| p.build == src.build) {
            continue;
        }
        let kind = MoveKind::Promote { from: from.clone() };
        moves.push(make_move(flow, to, current, &src.build, kind, intent));
    }
    Ok(moves)
}

/// The move that rolls one pointer back to `to_revision`, or to the newest
/// earlier revision whose build differs from the current one. `history` is the
/// pointer's releases, in any order. Rollback appends; it never rewrites.
pub fn plan_rollback(
    flow: &FlowKey,
    env: &EnvName,
    history: &[Release],
    to_revision: Option<Revision>,
    intent: &Intent,
) -> Result<Move, MoveError> {
    let mut sorted: Vec<&Release> = history.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    let Some(latest) = sorted.last() else {
        return Err(MoveError::NothingToRollBack { flow: flow.clone(), env: env.clone() });
    };
    let target = match to_revision {
        Some(revision) => {
            let found = sorted.iter().find(|r| r.revision == revision).ok_or_else(|| MoveError::UnknownRevision {
                flow: flow.clone(),
                env: env.clone(),
                revision,
                latest: latest.revision,
            })?;
            if found.revision == latest.revision {
                return Err(MoveError::AlreadyCurrent { flow: flow.clone(), env: env.clone(), revision });
            }
            *found
        }
        None => *sorted
            .iter()
            .rev()
            .find(|r| r.build != latest.build)
            .ok_or_else(|| MoveError::NothingToRollBack { flow: flow.clone(), env: env.clone() })?,
    };
    let kind = MoveKind::Rollback { to_revision: target.revision };
    Ok(Move::new(flow, env, Some(latest.revision), &target.build, kind, &intent.actor, intent.reason.as_deref()))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::release::Audit;

    fn flow(s: &str) -> FlowKey {
        s.parse().unwrap()
    }
    fn env(s: &str) -> EnvName {
        s.parse().unwrap()
    }
    fn build(n: u8) -> BuildId {
        format!("{:020x}", n).parse().unwrap()
    }
    fn intent() -> Intent {
        Intent { actor: "alice".into(), reason: None }
    }
    fn pointer(f: &str, e: &str, revision: Revision, b: u8) -> Pointer {
        Pointer { flow: flow(f), env: env(e), revision, build: build(b), updated_at: Utc::now() }
    }
    fn release(revision: Revision, b: u8) -> Release {
        Release {
            flow: flow("etl"),
            env: env("qa"),
            revision,
            build: build(b),
            previous_build: None,
            kind: MoveKind::Release,
            actor: "alice".into(),
            reason: None,
            created_at: Utc::now(),
            audit: Audit::default(),
        }
    }

    #[test]
    fn release_skips_flows_already_on_the_build_and_expects_current_revision() {
        let current = BTreeMap::from([(flow("a"), pointer("a", "qa", 3, 1)), (flow("b"), pointer("b", "qa", 1, 2))]);
        let moves = plan_release(&[flow("a"), flow("b"), flow("c")], &env("qa"), &build(1), &current, &intent());
        let summary: Vec<_> = moves.iter().map(|m| (m.flow.as_str(), m.expected)).collect();
        assert_eq!(summary, vec![("b", Some(1)), ("c", None)]);
        assert_eq!(moves[1].next_revision(), 1);
    }

    #[test]
    fn promote_copies_source_builds_and_refuses_missing_flows() {
        let source = BTreeMap::from([(flow("a"), pointer("a", "qa", 2, 5)), (flow("b"), pointer("b", "qa", 1, 6))]);
        let target = BTreeMap::from([(flow("a"), pointer("a", "prod", 4, 5))]);
        let moves = plan_promote(&[], &env("qa"), &env("prod"), &source, &target, &intent()).unwrap();
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].build, build(6));
        assert_eq!(moves[0].kind, MoveKind::Promote { from: env("qa") });
        let err = plan_promote(&[flow("z")], &env("qa"), &env("prod"), &source, &target, &intent()).unwrap_err();
        assert!(matches!(err, MoveError::NothingToPromote { .. }));
        let err = plan_promote(&[], &env("qa"), &env("qa"), &source, &target, &intent()).unwrap_err();
        assert!(matches!(err, MoveError::SameEnv { .. }));
    }

    #[test]
    fn rollback_goes_to_the_newest_different_build() {
        let history = vec![release(1, 1), release(2, 2), release(3, 2)];
        let mv = plan_rollback(&flow("etl"), &env("qa"), &history, None, &intent()).unwrap();
        assert_eq!((mv.build.clone(), mv.expected), (build(1), Some(3)));
        assert_eq!(mv.kind, MoveKind::Rollback { to_revision: 1 });
    }

    #[test]
    fn rollback_to_a_named_revision_and_its_errors() {
        let history = vec![release(1, 1), release(2, 2), release(3, 3)];
        let mv = plan_rollback(&flow("etl"), &env("qa"), &history, Some(2), &intent()).unwrap();
        assert_eq!(mv.build, build(2));
        let err = plan_rollback(&flow("etl"), &env("qa"), &history, Some(9), &intent()).unwrap_err();
        assert!(err.to_string().contains("no revision 9"), "{err}");
        let err = plan_rollback(&flow("etl"), &env("qa"), &history, Some(3), &intent()).unwrap_err();
        assert!(matches!(err, MoveError::AlreadyCurrent { .. }));
        let err = plan_rollback(&flow("etl"), &env("qa"), &[release(1, 1)], None, &intent()).unwrap_err();
        assert!(matches!(err, MoveError::NothingToRollBack { .. }));
    }
}
