//! The deployments the ledger wants on one env's Prefect server, and the plan
//! and sync that get them there: the bridge between the ledger, the builds'
//! recorded settings, the env's placement and flowgate-prefect.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use flowgate_bundle::Cache;
use flowgate_config::{AuthScheme, SelectedEnv};
use flowgate_core::{Build, BuildId, DeploymentSettings, FlowKey, Move, Pointer, Revision};
use flowgate_ledger::Ledger;
use flowgate_prefect::{
    work_pool_of, DesiredDeployment, Placement, Plan, PrefectAuth, PrefectClient, PrefectError, PruneScope,
    SyncOptions, SyncReport,
};
use flowgate_store::ArtifactStore;

use super::{local_bundle, settings};
use crate::exit::usage;
use crate::project::Project;

/// The work pool type used to create a missing pool when no layer sets `work_pool_type`.
pub const DEFAULT_POOL_TYPE: &str = "process";

/// An env with a Prefect server, and a client for it.
pub struct Target {
    pub env: SelectedEnv,
    pub client: PrefectClient,
    /// The build records the plans of this target decoded (a record never
    /// changes once recorded): a release plans before it moves and again when
    /// it syncs, and a large project's build (settings and closures of every
    /// flow) costs more to decode than the rest of a re-release.
    builds: Mutex<HashMap<BuildId, Arc<Build>>>,
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
        Ok(Some(Self { env: env.clone(), client, builds: Mutex::default() }))
    }

    /// The build record `id`, decoded once per target; `None` when the ledger has none.
    async fn build(&self, ledger: &dyn Ledger, id: &BuildId) -> Result<Option<Arc<Build>>> {
        if let Some(build) = self.builds.lock().expect("build memo").get(id) {
            return Ok(Some(build.clone()));
        }
        let Some(build) = ledger.build(id).await? else { return Ok(None) };
        let build = Arc::new(build);
        self.builds.lock().expect("build memo").insert(id.clone(), build.clone());
        Ok(Some(build))
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

/// One desired deployment per pointer given, from its build's recorded settings
/// and the env's placement. A pointer whose build does not deploy its flow in
/// this env wants no deployment.
async fn desired_at(project: &Project, ledger: &dyn Ledger, target: &Target, pointers: &[Pointer]) -> Result<Desired> {
    let env = &target.env;
    let store = project.store()?;
    let placement = Placement {
        project: project.config.project_name().clone(),
        env: env.ledger_name.clone(),
        name_prefix: env.name_prefix.clone(),
        store_url: store.url().to_string(),
        // Only an env a server protects imposes a pool over each build's own.
        work_pool: env.config.placed_work_pool.clone(),
    };
    let mut pools: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Desired { deployments: Vec::new(), revisions: Vec::new(), missing_pools: BTreeMap::new() };
    // Flows share builds, and a build's record (settings and closures of every
    // flow) is read and decoded once, not once per flow (nor once per plan).
    for pointer in pointers {
        let build = target
            .build(ledger, &pointer.build)
            .await?
            .with_context(|| format!("The ledger points `{}` at unknown build `{}`", pointer.flow, pointer.build))?;
        let build = build.as_ref();
        let Some(mut settings) = settings_of(project, &store, build, &pointer.flow, env).await? else { continue };
        if env.preview.is_some_and(|p| !p.schedules) {
            // A preview's deployments exist to be run by hand, not on the schedules of the env it copies.
            settings.paused = Some(true);
        }
        let wanted_type = settings.work_pool_type.clone().unwrap_or_else(|| DEFAULT_POOL_TYPE.to_string());
        let pool_type = match work_pool_of(&settings, &placement) {
            None => wanted_type, // assemble names the missing pool
            Some(work_pool) => {
                if !pools.contains_key(work_pool) {
                    let found = match target.client.read_work_pool(work_pool).await {
                        Ok(pool) => Some(pool.pool_type),
                        Err(PrefectError::WorkPoolMissing { .. }) => None,
                        Err(e) => {
                            return Err(e).context(format!(
                                "Failed to read work pool `{work_pool}` of env `{}`",
                                env.config_name
                            ))
                        }
                    };
                    pools.insert(work_pool.to_string(), found);
                }
                match &pools[work_pool] {
                    Some(t) => t.clone(),
                    None => {
                        out.missing_pools.entry(work_pool.to_string()).or_insert_with(|| wanted_type.clone());
                        wanted_type
                    }
                }
            }
        };
        let deployment = flowgate_prefect::assemble(build, &pointer.flow, &settings, &placement, &pool_type)
            .map_err(|e| usage(e.to_string()))?;
        out.deployments.push(deployment);
        out.revisions.push((pointer.flow.clone(), pointer.revision));
    }
    Ok(out)
}

/// The settings `build` carries for `flow` in `env`. A build made before builds
/// carried settings is deployed with the working tree's config (and its own
/// entrypoint file), as flowgate did then. `None`: the build does not deploy the
/// flow in this env (for an old build: the working tree no longer configures it).
async fn settings_of(
    project: &Project,
    store: &ArtifactStore,
    build: &Build,
    flow: &FlowKey,
    env: &SelectedEnv,
) -> Result<Option<DeploymentSettings>> {
    if let Some(recorded) = &build.settings {
        if !recorded.envs().any(|e| e == env.config_name) {
            return Err(not_carried(build, env));
        }
        return Ok(recorded.get(&env.config_name, flow).cloned());
    }
    if project.config.flow(flow).is_none() {
        return Ok(None);
    }
    let cache = Cache::new(local_bundle::cache_dir(None)?);
    let (dir, _) = local_bundle::ensure(&cache, store, &build.bundle).await?;
    let origin = format!("build {}", build.id);
    let read = |path: &str| {
        std::fs::read_to_string(dir.join(path))
            .with_context(|| format!("Failed to read `{path}` of flow `{flow}` from build `{}`", build.id))
    };
    let settings = settings::resolve(&project.config, flow, env, &build.commit, build.branch.as_deref(), || {
        settings::read_signature(&project.config, flow, &origin, &dir, read)
    })?;
    Ok(Some(settings))
}

/// Refuses, before anything moves, moves to builds that cannot be deployed in
/// `env`: a build whose commit gave the env no Prefect server carries no
/// settings for it. A ledger-only env deploys nothing, so any build may go there.
pub async fn refuse_uncarried(ledger: &dyn Ledger, env: &SelectedEnv, moves: &[Move]) -> Result<()> {
    if env.is_ledger_only() {
        return Ok(());
    }
    let mut checked = Vec::new();
    for mv in moves.iter().filter(|m| m.env == env.ledger_name) {
        if checked.contains(&mv.build) {
            continue;
        }
        let build = ledger.build(&mv.build).await?.with_context(|| format!("Unknown build `{}`", mv.build))?;
        if build.settings.as_ref().is_some_and(|s| !s.envs().any(|e| e == env.config_name)) {
            return Err(not_carried(&build, env).context("Nothing moved"));
        }
        checked.push(mv.build.clone());
    }
    Ok(())
}

fn not_carried(build: &Build, env: &SelectedEnv) -> anyhow::Error {
    let known: Vec<&str> = build.settings.iter().flat_map(|s| s.envs()).collect();
    usage(format!(
        "Build `{}` carries no deployment settings for env `{}`: its commit's `flowgate.toml` gave a Prefect server to {}. Make a build from a commit whose config defines `{}`",
        build.id,
        env.config_name,
        if known.is_empty() { "no env".to_string() } else { format!("`{}` only", known.join("`, `")) },
        env.config_name
    ))
}

/// The plan for the env: desired against what the server has now.
pub async fn plan(project: &Project, ledger: &dyn Ledger, target: &Target) -> Result<(Plan, Desired)> {
    let desired = desired(project, ledger, target).await?;
    plan_desired(project, target, desired).await
}

/// The tags every managed deployment of env `ledger_name` carries: a filter
/// for its deployments alone on a shared server.
pub fn env_tags(ledger_name: &impl std::fmt::Display) -> [String; 2] {
    [flowgate_prefect::MANAGED_TAG.to_string(), format!("{}{ledger_name}", flowgate_prefect::spec::ENV_TAG_PREFIX)]
}

async fn plan_desired(project: &Project, target: &Target, desired: Desired) -> Result<(Plan, Desired)> {
    let names: Vec<String> = desired.deployments.iter().map(|d| d.name.clone()).collect();
    // This env's deployments (what prune and adoption look at) and whatever
    // holds a wanted name: not the other envs' and projects' on a shared server.
    let actual = target
        .client
        .read_deployments_tagged(&env_tags(&target.env.ledger_name), &names)
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
