//! Making the server match a plan: create what is missing, PATCH only changed
//! fields, send nothing for the rest, prune only when asked, and refuse the
//! whole plan when it would write a deployment the project does not own.

use crate::api::WorkPool;
use crate::client::PrefectClient;
use crate::error::{PrefectError, Subject};
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
    for planned in &plan.deployments {
        let want = &planned.desired;
        let subject = Subject::deployment(&want.flow_name, want.env.as_str(), &want.name);
        match &planned.action {
            Action::Create => {
                let flow = client.get_or_create_flow(&want.flow_name).await?;
                client.create_deployment(&want.create_body(&flow.id), &subject).await?;
                report.created.push(want.name.clone());
            }
            Action::Update { id, changes } => {
                client.update_deployment(id, &update_body(changes), &subject).await?;
                report.updated.push((want.name.clone(), changes.iter().map(|c| c.field).collect()));
            }
            Action::Adopt { id, changes } => {
                client.update_deployment(id, &update_body(changes), &subject).await?;
                report.adopted.push(want.name.clone());
            }
            Action::Unchanged { .. } => report.unchanged.push(want.name.clone()),
            Action::Foreign { .. } => unreachable!("a plan with conflicts is refused above"),
        }
    }
    if options.prune {
        for candidate in &plan.prune {
            let subject = Subject::deployment(&candidate.flow_name, plan.env.as_str(), &candidate.name);
            client.delete_deployment(&candidate.id, &subject).await?;
            report.pruned.push(candidate.name.clone());
        }
    }
    Ok(report)
}
