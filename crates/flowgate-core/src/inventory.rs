//! What `flowgate gc` and `flowgate fsck` decide on: every build, pointer,
//! release and pin, and the builds running rollouts name, read as one snapshot;
//! and the ledger's own consistency checks over it (pure, so they are
//! table-tested without a database).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::{Build, BuildId, EnvName, FlowKey, Pointer, Revision};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A build `flowgate gc` must keep whatever the retention flags say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pin {
    pub build: BuildId,
    pub actor: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// How a flowgate server verified `actor`; None in direct mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::Verified>,
}

/// One release, reduced to what retention and consistency checks read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRef {
    pub flow: FlowKey,
    pub env: EnvName,
    pub revision: Revision,
    pub build: BuildId,
}

/// The ledger as gc and fsck see it, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Every build, by id.
    pub builds: Vec<Build>,
    /// Every pointer, by (env, flow).
    pub pointers: Vec<Pointer>,
    /// Every release, by (flow, env, revision). Releases keep naming builds gc deleted.
    pub releases: Vec<ReleaseRef>,
    /// Every pin, oldest first.
    pub pins: Vec<Pin>,
    /// Every build id a running rollout's body names, with that rollout's id.
    pub rollout_builds: Vec<(BuildId, String)>,
    /// The release each (flow, env) was last synced at, by (flow, env): the
    /// build its Prefect deployment runs until the next sync, whatever the pointer says.
    pub synced: Vec<ReleaseRef>,
}

/// Every string anywhere in a rollout body that is a build id. The body's shape
/// belongs to the domain core and may grow; reading every string keeps a build
/// whatever field names it (a false match only keeps a build longer).
pub fn builds_named(body: &serde_json::Value) -> BTreeSet<BuildId> {
    let mut found = BTreeSet::new();
    let mut stack = vec![body];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(s) => {
                if let Ok(id) = s.parse::<BuildId>() {
                    found.insert(id);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    found
}

/// A way the ledger contradicts itself. Never repaired automatically: history
/// is never rewritten, so a human decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerProblem {
    /// A pointer names a build the ledger has no record of.
    PointerToUnknownBuild { flow: FlowKey, env: EnvName, build: BuildId },
    /// A pointer is not where its newest release put it.
    PointerNotAtLatestRelease {
        flow: FlowKey,
        env: EnvName,
        revision: Revision,
        build: BuildId,
        latest_revision: Revision,
        latest_build: BuildId,
    },
    /// A pointer without any release behind it.
    PointerWithoutHistory { flow: FlowKey, env: EnvName, revision: Revision },
    /// Releases without a pointer.
    HistoryWithoutPointer { flow: FlowKey, env: EnvName, latest_revision: Revision },
    /// The revisions of one (flow, env) are not exactly 1..=n.
    HistoryGap { flow: FlowKey, env: EnvName, missing: Vec<Revision>, latest_revision: Revision },
}

impl fmt::Display for LedgerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerProblem::PointerToUnknownBuild { flow, env, build } => {
                write!(f, "the pointer of `{flow}` in `{env}` names build `{build}`, which the ledger has no record of")
            }
            LedgerProblem::PointerNotAtLatestRelease { flow, env, revision, build, latest_revision, latest_build } => {
                write!(
                    f,
                    "the pointer of `{flow}` in `{env}` is at r{revision} (build `{build}`) but the newest release is \
                     r{latest_revision} (build `{latest_build}`)"
                )
            }
            LedgerProblem::PointerWithoutHistory { flow, env, revision } => {
                write!(f, "the pointer of `{flow}` in `{env}` is at r{revision} but no release of it is recorded")
            }
            LedgerProblem::HistoryWithoutPointer { flow, env, latest_revision } => {
                write!(f, "`{flow}` in `{env}` has releases up to r{latest_revision} but no pointer")
            }
            LedgerProblem::HistoryGap { flow, env, missing, latest_revision } => {
                let shown: Vec<String> = missing.iter().take(10).map(|r| format!("r{r}")).collect();
                let more = if missing.len() > 10 { format!(" and {} more", missing.len() - 10) } else { String::new() };
                write!(
                    f,
                    "the history of `{flow}` in `{env}` (up to r{latest_revision}) is missing {}{more}",
                    shown.join(", ")
                )
            }
        }
    }
}

/// The releases of one (flow, env): its revisions in order and the newest's build.
struct History<'a> {
    revisions: Vec<Revision>,
    latest: &'a ReleaseRef,
}

impl Inventory {
    /// The ledger's own consistency: every pointer names a recorded build and
    /// sits at its newest release, and every history is gap-free from r1.
    /// Problems come out ordered by (flow, env).
    pub fn check(&self) -> Vec<LedgerProblem> {
        let known: BTreeSet<&BuildId> = self.builds.iter().map(|b| &b.id).collect();
        let mut histories: BTreeMap<(&FlowKey, &EnvName), History<'_>> = BTreeMap::new();
        for r in &self.releases {
            let h = histories.entry((&r.flow, &r.env)).or_insert(History { revisions: Vec::new(), latest: r });
            h.revisions.push(r.revision);
            if r.revision >= h.latest.revision {
                h.latest = r;
            }
        }
        let pointers: BTreeMap<(&FlowKey, &EnvName), &Pointer> =
            self.pointers.iter().map(|p| ((&p.flow, &p.env), p)).collect();
        let mut problems = Vec::new();
        let keys: BTreeSet<(&FlowKey, &EnvName)> = histories.keys().chain(pointers.keys()).copied().collect();
        for key @ (flow, env) in keys {
            let (flow, env) = (flow.clone(), env.clone());
            match (pointers.get(&key), histories.get(&key)) {
                (Some(p), history) => {
                    if !known.contains(&p.build) {
                        let build = p.build.clone();
                        problems.push(LedgerProblem::PointerToUnknownBuild {
                            flow: flow.clone(),
                            env: env.clone(),
                            build,
                        });
                    }
                    match history {
                        None => problems.push(LedgerProblem::PointerWithoutHistory { flow, env, revision: p.revision }),
                        Some(h) => {
                            if (h.latest.revision, &h.latest.build) != (p.revision, &p.build) {
                                problems.push(LedgerProblem::PointerNotAtLatestRelease {
                                    flow: flow.clone(),
                                    env: env.clone(),
                                    revision: p.revision,
                                    build: p.build.clone(),
                                    latest_revision: h.latest.revision,
                                    latest_build: h.latest.build.clone(),
                                });
                            }
                            problems.extend(gap(flow, env, h));
                        }
                    }
                }
                (None, Some(h)) => {
                    let latest_revision = h.latest.revision;
                    problems.push(LedgerProblem::HistoryWithoutPointer {
                        flow: flow.clone(),
                        env: env.clone(),
                        latest_revision,
                    });
                    problems.extend(gap(flow, env, h));
                }
                (None, None) => unreachable!("every key comes from a pointer or a history"),
            }
        }
        problems
    }
}

/// The revisions missing from 1..=latest (the primary key rules out duplicates).
fn gap(flow: FlowKey, env: EnvName, h: &History<'_>) -> Option<LedgerProblem> {
    let present: BTreeSet<Revision> = h.revisions.iter().copied().collect();
    let latest_revision = h.latest.revision;
    let missing: Vec<Revision> = (1..=latest_revision).filter(|r| !present.contains(r)).collect();
    let below_one = present.iter().any(|r| *r < 1);
    (!missing.is_empty() || below_one).then_some(LedgerProblem::HistoryGap { flow, env, missing, latest_revision })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{build, id, pointer, release};

    #[test]
    fn a_consistent_ledger_has_no_problems_even_when_history_names_deleted_builds() {
        let inv = Inventory {
            builds: vec![build(2, 0)],
            pointers: vec![pointer("etl", "qa", 2, 2)],
            releases: vec![release("etl", "qa", 1, 1), release("etl", "qa", 2, 2)],
            ..Default::default()
        };
        assert_eq!(inv.check(), vec![]);
    }

    #[test]
    fn every_kind_of_problem_is_found_and_named() {
        let inv = Inventory {
            builds: vec![build(1, 0), build(2, 0)],
            pointers: vec![pointer("a", "qa", 1, 9), pointer("b", "qa", 1, 1), pointer("c", "qa", 1, 1)],
            releases: vec![
                release("a", "qa", 1, 9),
                release("b", "qa", 1, 1),
                release("b", "qa", 2, 2),
                release("d", "qa", 1, 1),
                release("d", "qa", 4, 2),
            ],
            ..Default::default()
        };
        let problems = inv.check();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                format!("the pointer of `a` in `qa` names build `{}`, which the ledger has no record of", id(9)),
                format!(
                    "the pointer of `b` in `qa` is at r1 (build `{}`) but the newest release is r2 (build `{}`)",
                    id(1),
                    id(2)
                ),
                "the pointer of `c` in `qa` is at r1 but no release of it is recorded".to_string(),
                "`d` in `qa` has releases up to r4 but no pointer".to_string(),
                "the history of `d` in `qa` (up to r4) is missing r2, r3".to_string(),
            ]
        );
        let json = serde_json::to_value(&problems[4]).unwrap();
        assert_eq!(json["kind"], "history_gap");
        assert_eq!(json["missing"], serde_json::json!([2, 3]));
    }

    #[test]
    fn builds_named_finds_ids_anywhere_in_a_body() {
        let body = serde_json::json!({
            "source": {"build": format!("{:020x}", 1)},
            "waves": [{"flows": [{"build": format!("{:020x}", 2), "replaced": {"revision": 1, "build": format!("{:020x}", 3)}}]}],
            "reason": "not an id", "short": "abc",
        });
        assert_eq!(builds_named(&body), [id(1), id(2), id(3)].into_iter().collect());
    }
}
