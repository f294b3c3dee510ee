//! Making the server match a plan: create what is missing, PATCH only changed
//! fields, send nothing for the rest, prune only when asked, and refuse the
//! whole plan when it would write a deployment the project does not own.
//!
//! The writes of a plan are independent of each other, so they are sent side
//! by side, as many at once as the client's adaptive write limit allows (see
//! [`crate::limit`]); the report lists them in the plan's order all the same.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt as _;

use crate::api::WorkPool;
use crate::client::PrefectClient;
use crate::error::{PrefectError, Subject};
use crate::limit;
use crate::plan::{update_body, Action, Plan};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Delete managed deployments of this env that are no longer desired.
    pub prune: bool,
    /// Create missing work pools (with their type's default job template)
    /// instead of failing with [`PrefectError::WorkPoolMissing`].
    pub create_work_pools: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    /// Deployment name with the fields that were sent.
    pub updated: Vec<(String, Vec<&'static str>)>,
    pub unchanged: Vec<String>,
    /// flowgate deployments from before projects that this sync tagged as the project's.
    pub adopted: Vec<String>,
    /// flowgate deployments without a project tag that look like this env's but
    /// that nothing wants; left exactly as they were (see [`Plan::unclaimed`]).
    pub unclaimed: Vec<String>,
    pub pruned: Vec<String>,
    pub created_work_pools: Vec<String>,
}

/// Makes sure `pool` exists; creates it as `pool_type` when `create` is set.
pub async fn ensure_work_pool(
    client: &PrefectClient,
    pool: &str,
    pool_type: &str,
    create: bool,
) -> Result<(WorkPool, bool), PrefectError> {
    match client.read_work_pool(pool).await {
        Ok(found) => Ok((found, false)),
        Err(PrefectError::WorkPoolMissing { .. }) if create => {
            Ok((client.create_work_pool(pool, pool_type).await?, true))
        }
        Err(e) => Err(e),
    }
}

/// Applies `plan`. `pool_type` is used only when a missing pool is created.
/// A plan that would write a deployment the project does not own is refused
/// with [`PrefectError::NotOwned`] before anything is sent.
pub async fn sync(
    client: &PrefectClient,
    plan: &Plan,
    options: &SyncOptions,
    pool_type: &str,
) -> Result<SyncReport, PrefectError> {
    let conflicts = plan.conflicts();
    if !conflicts.is_empty() {
        return Err(PrefectError::NotOwned {
            project: plan.project.to_string(),
            env: plan.env.to_string(),
            conflicts: crate::error::Conflicts(conflicts),
        });
    }
    let mut report =
        SyncReport { unclaimed: plan.unclaimed.iter().map(|c| c.name.clone()).collect(), ..Default::default() };
    let mut pools: Vec<&str> = plan
        .deployments
        .iter()
        .filter(|d| matches!(d.action, Action::Create | Action::Update { .. } | Action::Adopt { .. }))
        .map(|d| d.desired.work_pool.as_str())
        .collect();
    pools.sort();
    pools.dedup();
    for pool in pools {
        let (_, created) = ensure_work_pool(client, pool, pool_type, options.create_work_pools).await?;
        if created {
            report.created_work_pools.push(pool.to_string());
        }
    }
    if options.prune && !plan.prune.is_empty() && plan.deployments.is_empty() {
        return Err(PrefectError::PruneEverything { env: plan.env.to_string(), count: plan.prune.len() });
    }
    // The flows of the deployments to create: the ones the server has are read
    // in one request, and only the others are created, each once.
    let mut flow_names: Vec<&str> =
        plan.deployments.iter().filter(|d| d.action == Action::Create).map(|d| d.desired.flow_name.as_str()).collect();
    flow_names.sort_unstable();
    flow_names.dedup();
    let mut flow_ids: HashMap<String, String> =
        if flow_names.is_empty() { HashMap::new() } else { client.read_flows_named(&flow_names).await? };
    let missing: Vec<&str> = flow_names.into_iter().filter(|name| !flow_ids.contains_key(*name)).collect();
    flow_ids.extend(
        side_by_side(missing, |name| async move { Ok((name.to_string(), client.get_or_create_flow(name).await?.id)) })
            .await?,
    );
    let written = side_by_side(&plan.deployments, |planned| {
        let flow_ids = &flow_ids;
        async move {
            let want = &planned.desired;
            let subject = Subject::deployment(&want.flow_name, want.env.as_str(), &want.name);
            match &planned.action {
                Action::Create => {
                    client.create_deployment(&want.create_body(&flow_ids[want.flow_name.as_str()]), &subject).await?;
                }
                Action::Update { id, changes } | Action::Adopt { id, changes } => {
                    client.update_deployment(id, &update_body(changes), &subject).await?;
                }
                Action::Unchanged { .. } => {}
                Action::Foreign { .. } => unreachable!("a plan with conflicts is refused above"),
            }
            Ok(planned)
        }
    })
    .await?;
    for planned in written {
        let name = planned.desired.name.clone();
        match &planned.action {
            Action::Create => report.created.push(name),
            Action::Update { changes, .. } => report.updated.push((name, changes.iter().map(|c| c.field).collect())),
            Action::Adopt { .. } => report.adopted.push(name),
            Action::Unchanged { .. } => report.unchanged.push(name),
            Action::Foreign { .. } => unreachable!("a plan with conflicts is refused above"),
        }
    }
    if options.prune {
        let pruned = side_by_side(&plan.prune, |candidate| async move {
            let subject = Subject::deployment(&candidate.flow_name, plan.env.as_str(), &candidate.name);
            client.delete_deployment(&candidate.id, &subject).await?;
            Ok(candidate.name.clone())
        })
        .await?;
        report.pruned = pruned;
    }
    Ok(report)
}

/// Runs `write` on every item, as many at once as [`limit::MAX`] (the
/// client's adaptive limit decides how many of those are really in flight),
/// and answers in the items' order. After a write fails no further one starts;
/// those in flight finish, and the first failure in the items' order is returned.
async fn side_by_side<I, T, F, Fut>(items: I, write: F) -> Result<Vec<T>, PrefectError>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = Result<T, PrefectError>>,
{
    let failed = AtomicBool::new(false);
    let answers: Vec<Option<Result<T, PrefectError>>> = futures::stream::iter(items)
        .map(|item| {
            let failed = &failed;
            let pending = write(item);
            async move {
                if failed.load(Ordering::SeqCst) {
                    return None;
                }
                let answer = pending.await;
                if answer.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                Some(answer)
            }
        })
        .buffered(limit::MAX)
        .collect()
        .await;
    answers.into_iter().flatten().collect()
}
