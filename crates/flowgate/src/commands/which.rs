//! `flowgate which FLOW_RUN_ID --env ENV`: the build a Prefect flow run actually
//! executed. A run's `deployment_version` is fixed when the run is created, so it
//! is wrong for a run created before a release and executed after it; the truth
//! is the record `flowgate pull` left on the run, else the run's `flow_version`
//! (the MD5 of the entrypoint file at execution) matched against build manifests.

use anyhow::Result;
use flowgate_config::{SelectedEnv, TemplateVars};
use flowgate_core::{Build, BuildId, Digest, FlowKey, Manifest};
use flowgate_ledger::Ledger;
use flowgate_prefect::{PrefectClient, PrefectError, PullRecord, RunDetail, ServerDeployment};
use flowgate_store::ArtifactStore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::deploy::Target;
use super::local_bundle;
use super::moves::pointers_by_flow;
use crate::cli::WhichArgs;
use crate::client::ServerClient;
use crate::exit::usage;
use crate::printer::Printer;
use crate::project::Project;

/// What `which --json` prints, and a server answers for a run in a protected env.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Which {
    flow_run: String,
    flow_run_name: String,
    state: String,
    env: String,
    #[schema(value_type = Option<String>)]
    flow: Option<FlowKey>,
    deployment: Option<String>,
    deployment_version: Option<String>,
    flow_version: Option<String>,
    /// `pull-record`, `flow-version` or `ambiguous`.
    determined_by: String,
    #[schema(value_type = Option<String>)]
    build: Option<BuildId>,
    commit: Option<String>,
    branch: Option<String>,
    image: Option<String>,
    #[schema(value_type = Option<String>)]
    bundle: Option<Digest>,
    /// False when the run's `deployment_version` names another build than the one it ran.
    deployment_version_agrees: Option<bool>,
    /// With a pull record: whether `flow_version` matches that build's entrypoint MD5.
    flow_version_matches: Option<bool>,
    /// Every build whose entrypoint MD5 equals `flow_version` (more than one: ambiguous).
    candidates: Vec<Candidate>,
}

/// The run was found, but nothing tells which build it executed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Undetermined(pub String);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct Candidate {
    #[schema(value_type = String)]
    build: BuildId,
    commit: String,
}

pub async fn run(project: &Project, args: WhichArgs, printer: Printer) -> Result<()> {
    let env = project.select_env(args.env.env.as_deref())?;
    let id = args.flow_run_id.trim();
    let which: Which = match ServerClient::from_env().await? {
        Some(server) => {
            let project = project.config.project_name();
            server.get(&format!("/projects/{project}/envs/{}/flow-runs/{id}", env.ledger_name)).await?
        }
        None => {
            let ledger = project.ledger().await?;
            which(project, ledger.as_ref(), &env, id).await?
        }
    };
    printer.result(&which, |out| render(&which, out))
}

/// The build flow run `id` of `env` executed, read from the env's Prefect
/// server, `ledger` and the project's store.
pub async fn which(project: &Project, ledger: &dyn Ledger, env: &SelectedEnv, id: &str) -> Result<Which> {
    let client = Target::of(env)?
        .ok_or_else(|| {
            usage(format!(
                "Env `{}` has no `prefect_api_url`: it is ledger-only, no flow runs to look up",
                env.ledger_name
            ))
        })?
        .client;
    let run = client
        .read_run_detail(id)
        .await?
        .ok_or_else(|| usage(format!("No flow run `{id}` on `{}` (env `{}`)", client.api_url(), env.ledger_name)))?;
    let deployment = match &run.deployment_id {
        Some(deployment_id) => match client.read_deployment(deployment_id).await {
            Ok(deployment) => Some(deployment),
            Err(PrefectError::Rejected { status: 404, .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let flow = match &deployment {
        Some(deployment) => flow_of(project, ledger, env, deployment).await?,
        None => None,
    };
    let entry_path = entrypoint_file(project, flow.as_ref(), deployment.as_ref());
    let store = project.store()?;

    let mut which = Which {
        flow_run: run.id.clone(),
        flow_run_name: run.name.clone(),
        state: run.state_type().to_string(),
        env: env.ledger_name.to_string(),
        flow: flow.clone(),
        deployment: deployment.as_ref().map(|d| d.name.clone()),
        deployment_version: run.deployment_version.clone(),
        flow_version: run.flow_version.clone(),
        determined_by: "flow-version".to_string(),
        build: None,
        commit: None,
        branch: None,
        image: None,
        bundle: None,
        deployment_version_agrees: None,
        flow_version_matches: None,
        candidates: Vec::new(),
    };
    let executed = match pull_record(&client, &run).await {
        Some(record) => {
            which.determined_by = "pull-record".to_string();
            let build = find_build(ledger, &store, &record).await?;
            if let (Some(version), Some(path)) = (&run.flow_version, &entry_path) {
                let md5 = match store.manifest(&record.bundle).await {
                    Ok(manifest) => build_md5(&store, &record.bundle, &manifest, path).await.ok(),
                    Err(_) => None,
                };
                which.flow_version_matches = md5.map(|md5| md5.as_deref() == Some(version.as_str()));
            }
            build.map(Ok).unwrap_or_else(|| Err(record))
        }
        None => {
            let version = run.flow_version.as_deref().ok_or_else(|| {
                Undetermined(format!(
                    "Cannot tell which build flow run `{id}` executed: it has no pull record and no `flow_version` \
                     (state `{}`; has it started?)",
                    which.state
                ))
            })?;
            let path = entry_path.as_deref().ok_or_else(|| {
                Undetermined(format!(
                    "Cannot tell which build flow run `{id}` executed: its deployment is not a flow of this project"
                ))
            })?;
            let mut matches = Vec::new();
            for build in candidate_builds(ledger, env, flow.as_ref(), project).await? {
                let manifest = store.manifest(&build.bundle).await?;
                if build_md5(&store, &build.bundle, &manifest, path).await?.as_deref() == Some(version) {
                    matches.push(build);
                }
            }
            which.candidates =
                matches.iter().map(|b| Candidate { build: b.id.clone(), commit: b.commit.clone() }).collect();
            match matches.len() {
                0 => {
                    return Err(Undetermined(format!(
                        "Cannot tell which build flow run `{id}` executed: no build released to `{}` has `{path}` \
                         with MD5 `{version}`, and the run has no pull record",
                        env.ledger_name
                    ))
                    .into())
                }
                1 => Ok(matches.remove(0)),
                _ => {
                    which.determined_by = "ambiguous".to_string();
                    Err(PullRecord { build: matches[0].id.clone(), bundle: matches[0].bundle })
                }
            }
        }
    };
    match executed {
        Ok(build) => {
            which.image = flow.as_ref().and_then(|f| build.image_for(f)).map(str::to_string);
            which.commit = Some(build.commit.clone());
            which.branch = build.branch.clone();
            which.bundle = Some(build.bundle);
            which.build = Some(build.id);
        }
        // A pulled build the ledger and store no longer know, or an ambiguous match.
        Err(record) if which.determined_by == "pull-record" => {
            which.bundle = Some(record.bundle);
            which.build = Some(record.build);
        }
        Err(_) => {}
    }
    if let (Some(build), Some(version)) = (&which.build, &which.deployment_version) {
        which.deployment_version_agrees = Some(build.to_string() == *version);
    }
    Ok(which)
}

pub fn render(w: &Which, out: &mut String) {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    out.push_str(&format!("flow run    {} ({}, {})\n", w.flow_run, w.flow_run_name, w.state));
    if let Some(deployment) = &w.deployment {
        let flow = w.flow.as_ref().map(|f| format!(" (flow `{f}`)")).unwrap_or_default();
        out.push_str(&format!("deployment  {deployment}{flow} in `{}`\n", w.env));
    }
    if w.determined_by == "ambiguous" {
        out.push_str(&format!(
            "build       ambiguous: flow_version `{}` matches {} builds and the run has no pull record:\n",
            or_dash(&w.flow_version),
            w.candidates.len()
        ));
        for c in &w.candidates {
            out.push_str(&format!("  {}  commit {}\n", c.build, &c.commit[..c.commit.len().min(12)]));
        }
        return;
    }
    let how = match w.determined_by.as_str() {
        "pull-record" => "recorded by flowgate pull",
        _ => "matched by flow_version",
    };
    out.push_str(&format!("build       {} ({how})\n", w.build.as_ref().map(|b| b.to_string()).unwrap_or_default()));
    out.push_str(&format!("commit      {}\n", or_dash(&w.commit)));
    out.push_str(&format!("image       {}\n", or_dash(&w.image)));
    out.push_str(&format!("bundle      {}\n", w.bundle.map(|b| b.to_hex()).unwrap_or_else(|| "-".into())));
    if w.deployment_version_agrees == Some(false) {
        out.push_str(&format!(
            "note        the run reports deployment_version `{}`, set when it was created; it executed `{}`\n",
            or_dash(&w.deployment_version),
            w.build.as_ref().map(|b| b.to_string()).unwrap_or_default()
        ));
    }
    if w.flow_version_matches == Some(false) {
        out.push_str(&format!(
            "note        flow_version `{}` differs from the MD5 of the entrypoint in the pulled bundle\n",
            or_dash(&w.flow_version)
        ));
    }
}

/// The labels first; the run's log line if the labels are gone. Reading the
/// logs is best effort: without them the run's `flow_version` still decides.
async fn pull_record(client: &PrefectClient, run: &RunDetail) -> Option<PullRecord> {
    match run.pull_record() {
        Some(record) => Some(record),
        None => client.pull_record_from_logs(&run.id).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "could not read the run's logs");
            None
        }),
    }
}

async fn find_build(ledger: &dyn Ledger, store: &ArtifactStore, record: &PullRecord) -> Result<Option<Build>> {
    if let Some(build) = ledger.build(&record.build).await? {
        return Ok(Some(build));
    }
    Ok(store.build(&record.build).await.ok().flatten())
}

/// The project flow whose deployment in `env` has this deployment's name: by
/// the config, else by the settings the builds the env runs carry (a server
/// has no config of the flows, and a flow may have left the config).
async fn flow_of(
    project: &Project,
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    deployment: &ServerDeployment,
) -> Result<Option<FlowKey>> {
    let configured = project.all_flows().into_iter().find(|flow| {
        project
            .config
            .deployment(flow, env, &TemplateVars::default())
            .is_ok_and(|d| d.deployment_name == deployment.name)
    });
    if configured.is_some() {
        return Ok(configured);
    }
    for (flow, pointer) in pointers_by_flow(ledger, &env.ledger_name).await? {
        let Some(build) = ledger.build(&pointer.build).await? else { continue };
        let carried = build.settings.as_ref().and_then(|s| s.get(&env.config_name, &flow));
        if carried.is_some_and(|s| format!("{}{}", env.name_prefix, s.deployment_name) == deployment.name) {
            return Ok(Some(flow));
        }
    }
    Ok(None)
}

/// The entrypoint's file (the part before `:`), from the deployment, else the config.
fn entrypoint_file(project: &Project, flow: Option<&FlowKey>, deployment: Option<&ServerDeployment>) -> Option<String> {
    let entrypoint = deployment
        .and_then(|d| d.entrypoint.clone())
        .or_else(|| flow.and_then(|f| project.config.flow(f)).map(|f| f.entrypoint.clone()))?;
    let file = entrypoint.rsplit_once(':').map_or(entrypoint.as_str(), |(file, _)| file);
    Some(file.trim_start_matches("./").to_string())
}

/// Builds this (flow, env) has had, newest first, each once; every flow's
/// history in the env when the run's deployment is not one of the project's flows.
async fn candidate_builds(
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    flow: Option<&FlowKey>,
    project: &Project,
) -> Result<Vec<Build>> {
    let flows = match flow {
        Some(flow) => vec![flow.clone()],
        None => {
            let mut flows = project.all_flows();
            let released = pointers_by_flow(ledger, &env.ledger_name).await?.into_keys();
            flows.extend(released.filter(|f| !flows.contains(f)).collect::<Vec<_>>());
            flows
        }
    };
    let mut ids: Vec<BuildId> = Vec::new();
    for flow in &flows {
        for release in ledger.history(flow, &env.ledger_name, None).await? {
            if !ids.contains(&release.build) {
                ids.push(release.build);
            }
        }
    }
    let mut builds = Vec::new();
    for id in ids {
        if let Some(build) = ledger.build(&id).await? {
            builds.push(build);
        }
    }
    Ok(builds)
}

/// The MD5 of `path` in a build: the one its manifest keeps (a build keeps one
/// for each flow's entrypoint), else read from its bundle (an entrypoint that was
/// not one when the build was made); `None` when the build has no such file.
async fn build_md5(store: &ArtifactStore, bundle: &Digest, manifest: &Manifest, path: &str) -> Result<Option<String>> {
    match md5_of(manifest, path) {
        Some(md5) => Ok(Some(md5)),
        None if manifest.get(path).is_some() => local_bundle::file_md5(store, bundle, path).await,
        None => Ok(None),
    }
}

/// The MD5 a manifest keeps for `path`. Read through JSON so it works whether
/// the manifest's `md5` field is a string or an optional one (kept for `*.py` only).
fn md5_of(manifest: &Manifest, path: &str) -> Option<String> {
    let entry = manifest.get(path)?;
    let value = serde_json::to_value(entry).ok()?;
    value.get("md5")?.as_str().map(str::to_ascii_lowercase).filter(|s| !s.is_empty())
}
