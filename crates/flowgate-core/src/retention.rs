//! Which builds `flowgate gc` keeps, as a pure function of an [`Inventory`]:
//! every pointer's build, the builds of the last N revisions of every
//! (flow, env), builds created since a cutoff, pinned builds, builds a
//! running rollout names and builds Prefect deployments run (the release each
//! (flow, env) was last synced at). Everything else may be deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{Build, BuildId, EnvName, FlowKey, Revision};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::inventory::Inventory;

/// Why a build is kept; a build may have several reasons.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeepReason {
    /// A pointer names it now.
    Pointer {
        flow: FlowKey,
        env: EnvName,
    },
    /// One of the last N revisions of (flow, env) released it.
    Recent {
        flow: FlowKey,
        env: EnvName,
        revision: Revision,
    },
    /// Created at or after the cutoff.
    Young,
    Pinned {
        actor: String,
        reason: String,
    },
    /// A running rollout names it.
    Rollout {
        id: String,
    },
    /// The Prefect deployment of (flow, env) runs it: the release it was last
    /// synced at (a move not yet synced has not replaced it there).
    Synced {
        flow: FlowKey,
        env: EnvName,
        revision: Revision,
    },
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Every kept build with its reasons, by id.
    pub keep: BTreeMap<BuildId, Vec<KeepReason>>,
    /// The builds nothing keeps, by id.
    pub delete: Vec<Build>,
}

/// Decides which builds of `inventory` to keep: `keep_last` revisions per
/// (flow, env) (counted back from the newest), builds created at or after
/// `keep_since`, and every pointer's, pinned and rollout build.
pub fn plan(inventory: &Inventory, keep_last: u32, keep_since: DateTime<Utc>) -> RetentionPlan {
    let mut keep: BTreeMap<BuildId, Vec<KeepReason>> = BTreeMap::new();
    let mut add = |id: &BuildId, reason: KeepReason| keep.entry(id.clone()).or_default().push(reason);
    for p in &inventory.pointers {
        add(&p.build, KeepReason::Pointer { flow: p.flow.clone(), env: p.env.clone() });
    }
    let mut newest: HashMap<(&FlowKey, &EnvName), Revision> = HashMap::new();
    for r in &inventory.releases {
        let latest = newest.entry((&r.flow, &r.env)).or_insert(r.revision);
        *latest = (*latest).max(r.revision);
    }
    for r in &inventory.releases {
        let latest = newest[&(&r.flow, &r.env)];
        if r.revision > latest - Revision::from(keep_last) {
            add(&r.build, KeepReason::Recent { flow: r.flow.clone(), env: r.env.clone(), revision: r.revision });
        }
    }
    for b in inventory.builds.iter().filter(|b| b.created_at >= keep_since) {
        add(&b.id, KeepReason::Young);
    }
    for pin in &inventory.pins {
        add(&pin.build, KeepReason::Pinned { actor: pin.actor.clone(), reason: pin.reason.clone() });
    }
    for (build, rollout) in &inventory.rollout_builds {
        add(build, KeepReason::Rollout { id: rollout.clone() });
    }
    for s in &inventory.synced {
        add(&s.build, KeepReason::Synced { flow: s.flow.clone(), env: s.env.clone(), revision: s.revision });
    }
    // Only recorded builds are kept or deleted: releases and rollouts may name
    // builds deleted long ago.
    let recorded: HashSet<&BuildId> = inventory.builds.iter().map(|b| &b.id).collect();
    keep.retain(|id, _| recorded.contains(id));
    for reasons in keep.values_mut() {
        reasons.sort();
        reasons.dedup();
    }
    let delete = inventory.builds.iter().filter(|b| !keep.contains_key(&b.id)).cloned().collect();
    RetentionPlan { keep, delete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Pin;
    use crate::test_fixtures::{at, build, id, pointer, release};

    /// Builds 1..=9 made on days 1..=9; `etl` in qa released 1,2,3,4 (now at 4),
    /// `report` released 5 then 1 (now at 1); 6 pinned, 7 in a running rollout.
    fn inventory() -> Inventory {
        Inventory {
            builds: (1..=9).map(|n| build(n, n as i64)).collect(),
            pointers: vec![pointer("etl", "qa", 4, 4), pointer("report", "qa", 2, 1)],
            releases: vec![
                release("etl", "qa", 1, 1),
                release("etl", "qa", 2, 2),
                release("etl", "qa", 3, 3),
                release("etl", "qa", 4, 4),
                release("report", "qa", 1, 5),
                release("report", "qa", 2, 1),
            ],
            pins: vec![Pin {
                build: id(6),
                actor: "alice".into(),
                reason: "audit".into(),
                created_at: at(0),
                verified: None,
            }],
            rollout_builds: vec![(id(7), "prod-1".into()), (id(99), "prod-1".into())],
            synced: vec![],
        }
    }

    fn kept(plan: &RetentionPlan) -> Vec<u64> {
        plan.keep.keys().map(|k| u64::from_str_radix(k.as_str(), 16).unwrap()).collect()
    }

    #[test]
    fn keeps_each_class_and_deletes_the_rest() {
        let inv = inventory();
        // keep_last 2: etl r3, r4 (builds 3, 4); report r1, r2 (builds 5, 1). Young: day >= 9.
        let plan = plan(&inv, 2, at(9));
        assert_eq!(kept(&plan), vec![1, 3, 4, 5, 6, 7, 9]);
        assert_eq!(plan.delete.iter().map(|b| b.id.clone()).collect::<Vec<_>>(), vec![id(2), id(8)]);
        let etl = "etl".parse::<FlowKey>().unwrap();
        let qa = "qa".parse::<EnvName>().unwrap();
        assert_eq!(
            plan.keep[&id(4)],
            vec![
                KeepReason::Pointer { flow: etl.clone(), env: qa.clone() },
                KeepReason::Recent { flow: etl, env: qa, revision: 4 }
            ]
        );
        assert_eq!(plan.keep[&id(6)], vec![KeepReason::Pinned { actor: "alice".into(), reason: "audit".into() }]);
        assert_eq!(plan.keep[&id(7)], vec![KeepReason::Rollout { id: "prod-1".into() }]);
        assert_eq!(plan.keep[&id(9)], vec![KeepReason::Young]);
        assert!(!plan.keep.contains_key(&id(99)), "an unrecorded build named by a rollout is neither kept nor deleted");
    }

    #[test]
    fn keep_last_zero_keeps_only_pointers_pins_rollouts_and_young() {
        let plan = plan(&inventory(), 0, at(100));
        assert_eq!(kept(&plan), vec![1, 4, 6, 7]);
        assert_eq!(plan.delete.len(), 5);
    }

    #[test]
    fn the_build_a_deployment_was_last_synced_at_is_kept() {
        let mut inv = inventory();
        // `etl` moved to r4 but qa's Prefect server still runs r2.
        inv.synced = vec![release("etl", "qa", 2, 2)];
        let plan = plan(&inv, 0, at(100));
        assert_eq!(kept(&plan), vec![1, 2, 4, 6, 7]);
        let (etl, qa) = ("etl".parse().unwrap(), "qa".parse().unwrap());
        assert_eq!(plan.keep[&id(2)], vec![KeepReason::Synced { flow: etl, env: qa, revision: 2 }]);
    }

    #[test]
    fn a_generous_policy_deletes_nothing() {
        let plan = plan(&inventory(), 100, at(0));
        assert!(plan.delete.is_empty());
        assert_eq!(plan.keep.len(), 9);
    }
}
