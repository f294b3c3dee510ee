//! The deployments the ledger wants on one env's Prefect server, and the plan
//! and sync that get them there: the bridge between the ledger, the config, the
//! builds' own entrypoint files and flowgate-prefect.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use flowgate_bundle::Cache;
use flowgate_config::{AuthScheme, SelectedEnv, TemplateVars};
use flowgate_core::{FlowKey, Move, Pointer, Revision};
use flowgate_ledger::Ledger;
use flowgate_prefect::{
    DeploymentInput, DesiredDeployment, Plan, PrefectAuth, PrefectClient, PrefectError, PruneScope, SyncOptions,
    SyncReport,
};
use serde_json::Value;

use super::local_bundle;
use super::schedules::schedule_of;
use crate::exit::usage;
use crate::project::{user_name, Project};

/// The work pool type used to create a missing pool when no layer sets `work_pool_type`.
pub const DEFAULT_POOL_TYPE: &str = "process";

/// An env with a Prefect server, and a client for it.
pub struct Target {
    pub env: SelectedEnv,
    pub client: PrefectClient,
}

impl Target {
    /// `None` for a ledger-only env (no `prefect_api_url`). The secret comes from
    /// the variable `prefect_auth.env` names; a missing variable is a usage error.
    pub fn of(env: &SelectedEnv) -> Result<Option<Self>> {
        let Some(url) = env.config.prefect_api_url.as_deref() else { return Ok(None) };
        let auth = match &env.config.prefect_auth {
            None => None,
            Some(auth) => {
                let secret = std::env::var(&auth.env).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                    usage(format!(
                        "The variable `{}` named by `prefect_auth` of env `{}` is not set; export it with the Prefect credentials",
                        auth.env, env.config_name
                    ))
                })?;
                Some(match auth.scheme {
                    AuthScheme::Bearer => PrefectAuth::Bearer(secret),
                    AuthScheme::Basic => PrefectAuth::Basic(secret),
                })
            }
        };
        let client = PrefectClient::new(url, auth)?;
        Ok(Some(Self { env: env.clone(), client }))
    }
}

/// What the ledger wants on the server, and the pointer revisions it stands for.
pub struct Desired {
    pub deployments: Vec<DesiredDeployment>,
    pub revisions: Vec<(FlowKey, Revision)>,
    /// Work pools the server lacks, with the type they would be created as.
    pub missing_pools: BTreeMap<String, String>,
}

/// One desired deployment per pointer of the env whose flow is still configured.
pub async fn desired(project: &Project, ledger: &dyn Ledger, target: &Target) -> Result<Desired> {
    let pointers = ledger.pointers(Some(&target.env.ledger_name)).await?;
    desired_at(project, ledger, target, &pointers).await
}

/// One desired deployment per pointer given whose flow is still configured.
async fn desired_at(project: &Project, ledger: &dyn Ledger, target: &Target, pointers: &[Pointer]) -> Result<Desired> {
    let env = &target.env;
    let store = project.store()?;
    let store_url = store.url().to_string();
    let cache = Cache::new(local_bundle::cache_dir(None)?);
    let user = flowgate_config::sanitize_user(&user_name());
    let mut pools: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Desired { deployments: Vec::new(), revisions: Vec::new(), missing_pools: BTreeMap::new() };
    for pointer in pointers {
        let Some(flow_config) = project.config.flow(&pointer.flow) else { continue };
        let build = ledger
            .build(&pointer.build)
            .await?
            .with_context(|| format!("The ledger points `{}` at unknown build `{}`", pointer.flow, pointer.build))?;
        let mut vars = TemplateVars::for_build(&build.commit, build.branch.as_deref(), &pointer.flow);
        vars.user = Some(user.clone());
        let resolved = project.config.deployment(&pointer.flow, env, &vars)?;
        let work_pool = resolved.work_pool.clone().ok_or_else(|| {
            usage(format!(
                "Flow `{}` has no `work_pool` in env `{}`; set one in `flowgate.toml`",
                pointer.flow, env.config_name
            ))
        })?;
        let wanted_type = resolved.work_pool_type.clone().unwrap_or_else(|| DEFAULT_POOL_TYPE.to_string());
        if !pools.contains_key(&work_pool) {
            let found = match target.client.read_work_pool(&work_pool).await {
                Ok(pool) => Some(pool.pool_type),
                Err(PrefectError::WorkPoolMissing { .. }) => None,
                Err(e) => {
                    return Err(e)
                        .context(format!("Failed to read work pool `{work_pool}` of env `{}`", env.config_name))
                }
            };
            pools.insert(work_pool.clone(), found);
        }
        let pool_type = match &pools[&work_pool] {
            Some(t) => t.clone(),
            None => {
                out.missing_pools.entry(work_pool.clone()).or_insert_with(|| wanted_type.clone());
                wanted_type
            }
        };
        let needs_source =
            resolved.flow_name.is_none() || resolved.parameter_schema.is_none() || resolved.description.is_none();
        let signature = if needs_source {
            let (dir, _) = local_bundle::ensure(&cache, &store, &build.bundle).await?;
            let path = flow_config.entrypoint_path();
            let source = std::fs::read_to_string(dir.join(path)).with_context(|| {
                format!("Failed to read `{path}` of flow `{}` from build `{}`", pointer.flow, build.id)
            })?;
            let label = format!("{path} (build {})", build.id);
            Some(flowgate_entrypoint::read_flow(&label, &source, flow_config.entrypoint_function()).with_context(|| {
                format!("Failed to derive the Prefect flow of `{}`; set `flow_name` and `parameter_schema` in `[flows.{}]` to skip", pointer.flow, pointer.flow)
            })?)
        } else {
            None
        };
        let flow_name = match (&resolved.flow_name, &signature) {
            (Some(name), _) => name.clone(),
            (None, Some(sig)) => sig.flow_name.clone(),
            (None, None) => unreachable!("the entrypoint is read when flow_name is not configured"),
        };
        let parameter_schema = match (&resolved.parameter_schema, &signature) {
            (Some(schema), _) => Value::Object(schema.clone()),
            (None, Some(sig)) => sig.parameter_schema.clone(),
            (None, None) => unreachable!("the entrypoint is read when parameter_schema is not configured"),
        };
        let description =
            resolved.description.clone().or_else(|| signature.as_ref().and_then(|s| s.description.clone()));
        let schedules = resolved
            .schedules
            .iter()
            .map(|s| {
                schedule_of(s).with_context(|| {
                    format!("Invalid schedule of flow `{}` in env `{}`", pointer.flow, env.config_name)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.deployments.push(DesiredDeployment::new(DeploymentInput {
            project: project.config.project_name().clone(),
            env: env.ledger_name.clone(),
            flow_name,
            deployment_name: resolved.deployment_name.clone(),
            build: build.id.clone(),
            digest: build.bundle,
            store_url: store_url.clone(),
            entrypoint: resolved.entrypoint.clone(),
            work_pool,
            pool_type,
            work_queue: resolved.work_queue.clone(),
            parameters: resolved.parameters.clone(),
            parameter_schema,
            schedules,
            job_variables: resolved.job_variables.clone(),
            image: build.image_for(&pointer.flow).map(str::to_string),
            tags: resolved.tags.clone(),
            description,
            extra_pull_steps: resolved.pull.iter().cloned().map(Value::Object).collect(),
            paused: resolved.paused,
            pull_command: None,
        }));
        out.revisions.push((pointer.flow.clone(), pointer.revision));
    }
    Ok(out)
}

/// The plan for the env: desired against what the server has now.
pub async fn plan(project: &Project, ledger: &dyn Ledger, target: &Target) -> Result<(Plan, Desired)> {
    let desired = desired(project, ledger, target).await?;
    plan_desired(project, target, desired).await
}

async fn plan_desired(project: &Project, target: &Target, desired: Desired) -> Result<(Plan, Desired)> {
    let names: Vec<String> = desired.deployments.iter().map(|d| d.name.clone()).collect();
    let actual = target
        .client
        .read_deployments(&names)
        .await
        .with_context(|| format!("Failed to read the deployments of env `{}`", target.env.config_name))?;
    let scope = PruneScope {
        project: project.config.project_name().clone(),
        env: target.env.ledger_name.clone(),
        name_prefix: target.env.name_prefix.clone(),
    };
    Ok((flowgate_prefect::plan(&desired.deployments, &actual, &scope), desired))
}

/// Plans and applies; on success records the synced revisions in the ledger.
pub async fn sync(
    project: &Project,
    ledger: &dyn Ledger,
    target: &Target,
    options: &SyncOptions,
) -> Result<(Plan, SyncReport)> {
    let env = &target.env.config_name;
    let (plan, desired) = plan(project, ledger, target).await?;
    // One type for the whole env: the type the first missing pool wants (pools
    // are created only when asked; an existing pool keeps its own type).
    let pool_type = desired.missing_pools.values().next().map_or(DEFAULT_POOL_TYPE, String::as_str);
    let report = flowgate_prefect::sync(&target.client, &plan, options, pool_type).await.map_err(|e| {
        let hint = if matches!(e, PrefectError::WorkPoolMissing { .. }) {
            " (pass --create-work-pools to create it)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!("Failed to sync env `{env}` to Prefect{hint}"))
    })?;
    ledger.record_synced(&target.env.ledger_name, &desired.revisions).await?;
    Ok((plan, report))
}

/// Refuses `moves` before they are applied when the sync after them would have
/// to write a deployment another project (or no project) owns: the same check
/// sync makes, made while nothing has changed yet. A server that cannot be
/// read is not a refusal: the move goes ahead and its sync reports the failure.
pub async fn refuse_foreign(project: &Project, ledger: &dyn Ledger, target: &Target, moves: &[Move]) -> Result<()> {
    let mut pointers = ledger.pointers(Some(&target.env.ledger_name)).await?;
    for mv in moves.iter().filter(|m| m.env == target.env.ledger_name) {
        let moved = Pointer {
            flow: mv.flow.clone(),
            env: mv.env.clone(),
            revision: mv.next_revision(),
            build: mv.build.clone(),
            updated_at: chrono::Utc::now(),
        };
        match pointers.iter_mut().find(|p| p.flow == mv.flow) {
            Some(p) => *p = moved,
            None => pointers.push(moved),
        }
    }
    let planned = match desired_at(project, ledger, target, &pointers).await {
        Ok(desired) => plan_desired(project, target, desired).await,
        Err(err) => Err(err),
    };
    let plan = match planned {
        Ok((plan, _)) => plan,
        Err(err) => {
            tracing::debug!(error = %format!("{err:#}"), "could not plan before moving; the sync will report it");
            return Ok(());
        }
    };
    let conflicts = plan.conflicts();
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(anyhow::Error::new(PrefectError::NotOwned {
        project: plan.project.to_string(),
        env: plan.env.to_string(),
        conflicts: flowgate_prefect::Conflicts(conflicts),
    })
    .context("Nothing moved"))
}
