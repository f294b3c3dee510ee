//! `flowgate preview up|down|list`: an ephemeral env per branch. `up` places
//! `preview-<branch>` like another env (its Prefect server and work pools,
//! its own name prefix and env tag), releases the branch's build there for
//! the flows whose code, settings or image differ from what that env runs,
//! with the deployments paused unless `--schedules`, and records the preview
//! with its expiry. `down` (and `gc` once it expired) deletes exactly the
//! preview's deployments; its releases stay in the ledger's history.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use flowgate_config::{PreviewPlacement, SelectedEnv};
use flowgate_core::{parse_duration, plan_release, EnvName, FlowKey, Intent};
use flowgate_ledger::{Ledger, PreviewRecord};
use serde::Serialize;

use super::deploy::Target;
use super::moves::{apply_moves, pointers_by_flow, render_moves, Apply, Moved};
use super::unchanged::keep_unchanged;
use crate::cli::{PreviewBranchArgs, PreviewCommand, PreviewListArgs, PreviewUpArgs};
use crate::client::ServerClient;
use crate::exit::usage;
use crate::git::Repo;
use crate::printer::{table, Printer};
use crate::project::{actor, Project};
use crate::refs::resolve_build;

pub async fn run(project: &Project, command: PreviewCommand, printer: Printer) -> Result<()> {
    if ServerClient::from_env().await?.is_some() {
        return Err(usage(
            "`flowgate preview` works in direct mode (the ledger and the Prefect server themselves); unset FLOWGATE_SERVER",
        ));
    }
    match command {
        PreviewCommand::Up(args) => up(project, args, printer).await,
        PreviewCommand::Down(args) => down(project, args, printer).await,
        PreviewCommand::List(args) => list(project, args, printer).await,
    }
}

/// What `preview up --json` prints.
#[derive(Serialize)]
struct Opened {
    preview: PreviewRecord,
    /// The moves and sync in the preview env, as `release` prints them.
    released: Moved,
}

async fn up(project: &Project, args: PreviewUpArgs, printer: Printer) -> Result<()> {
    let repo = Repo::discover(&project.root).ok();
    let branch = branch_of(repo.as_ref(), &args.branch)?;
    let ttl = parse_duration(&args.ttl).ok_or_else(|| {
        usage(format!("--ttl `{}` is not a duration; write it like `90m`, `12h`, `7d` or `1d12h`", args.ttl))
    })?;
    let from = project.select_env(args.from.as_deref())?;
    if from.is_ledger_only() {
        return Err(usage(format!(
            "Env `{}` has no `prefect_api_url`: a preview is placed like an env with a Prefect server; pass --from ENV",
            from.config_name
        )));
    }
    let env = preview_env(&from, &preview_name(&branch)?, args.schedules);
    let ledger = project.ledger().await?;
    let wanted = args.build.as_deref().unwrap_or(&branch);
    let build = resolve_build(ledger.as_ref(), repo.as_ref(), wanted).await.with_context(|| {
        format!("Preview of branch `{branch}` needs a build of `{wanted}`; run `flowgate build` there")
    })?;
    let carried: Vec<FlowKey> = project
        .all_flows()
        .into_iter()
        .filter(|f| build.settings.as_ref().is_some_and(|s| s.get(&from.config_name, f).is_some()))
        .collect();
    let intent = Intent { actor: actor(&project.root), reason: Some(format!("preview of branch `{branch}`")) };
    // The flows whose code differs from what `from` runs (a flow at this very
    // build there is no move at all), and those the preview already has.
    let in_from = pointers_by_flow(ledger.as_ref(), &from.ledger_name).await?;
    let against_from = plan_release(&carried, &from.ledger_name, &build.id, &in_from, &intent);
    let (differing, _) = keep_unchanged(ledger.as_ref(), &from, against_from, &in_from).await?;
    let current = pointers_by_flow(ledger.as_ref(), &env.ledger_name).await?;
    let flows: Vec<FlowKey> =
        carried.into_iter().filter(|f| differing.iter().any(|m| &m.flow == f) || current.contains_key(f)).collect();
    let moves = plan_release(&flows, &env.ledger_name, &build.id, &current, &intent);
    let how = Apply { create_work_pools: args.create_work_pools, ..Apply::default() };
    let (released, sync_failure) = apply_moves(project, ledger.as_ref(), &env, moves, &current, &how).await?;
    let now = Utc::now();
    let preview = PreviewRecord {
        env: env.ledger_name.clone(),
        branch: branch.clone(),
        from_env: from.ledger_name.clone(),
        from_config: from.config_name.clone(),
        build: build.id.clone(),
        actor: intent.actor.clone(),
        created_at: now,
        expires_at: now + chrono::Duration::from_std(ttl).context("--ttl is too long")?,
        closed_at: None,
    };
    ledger.open_preview(&preview).await?;
    let opened = Opened { preview, released };
    let printed = printer.result(&opened, |out| render_opened(out, &opened, &from, args.schedules));
    match sync_failure {
        Some(err) => Err(err),
        None => printed,
    }
}

fn render_opened(out: &mut String, opened: &Opened, from: &SelectedEnv, schedules: bool) {
    let p = &opened.preview;
    out.push_str(&format!(
        "Preview `{}` of branch `{}` at build {}, placed like `{}`; expires {}.\n",
        p.env,
        p.branch,
        p.build,
        from.config_name,
        rfc3339(p.expires_at)
    ));
    if opened.released.moves.is_empty() {
        out.push_str(&format!(
            "Every flow of the build runs as it does in `{}`: nothing to preview.\n",
            from.config_name
        ));
    }
    render_moves(out, &opened.released);
    if let Some(sync) = &opened.released.sync {
        super::sync::render(out, sync);
    }
    if !schedules {
        out.push_str("Its deployments are paused (pass --schedules to run their schedules).\n");
    }
}

async fn down(project: &Project, args: PreviewBranchArgs, printer: Printer) -> Result<()> {
    let repo = Repo::discover(&project.root).ok();
    let branch = branch_of(repo.as_ref(), &args)?;
    let name = preview_name(&branch)?;
    let ledger = project.ledger().await?;
    let open = ledger.previews().await?.into_iter().find(|p| p.env == name && p.closed_at.is_none());
    let Some(preview) = open else {
        // Closing twice (a merge after gc closed an expired preview) is no error.
        let none = Closed { env: name, branch, deleted: Vec::new(), open: false };
        return printer.result(&none, |out| {
            out.push_str(&format!("Branch `{}` has no open preview: nothing to close.\n", none.branch));
        });
    };
    let closed = close(project, ledger.as_ref(), &preview, Utc::now()).await?;
    printer.result(&closed, |out| render_closed(out, &closed))
}

/// What closing a preview did.
#[derive(Serialize, serde::Deserialize)]
pub struct Closed {
    pub env: EnvName,
    pub branch: String,
    /// The deployments deleted on the Prefect server.
    pub deleted: Vec<String>,
    /// False when there was no open preview to close.
    pub open: bool,
}

pub fn render_closed(out: &mut String, closed: &Closed) {
    out.push_str(&format!(
        "Closed preview `{}` of branch `{}`: deleted {} deployment{}{}{}; its history stays in the ledger.\n",
        closed.env,
        closed.branch,
        closed.deleted.len(),
        if closed.deleted.len() == 1 { "" } else { "s" },
        if closed.deleted.is_empty() { "" } else { " " },
        closed.deleted.join(", ")
    ));
}

/// Deletes the preview's deployments on its server (only this project's,
/// tagged with the preview's env and named with its prefix), then marks it closed.
pub async fn close(
    project: &Project,
    ledger: &dyn Ledger,
    preview: &PreviewRecord,
    at: DateTime<Utc>,
) -> Result<Closed> {
    let from = project.select_env(Some(&preview.from_config))?;
    let env = preview_env(&from, &preview.env, false);
    let mut deleted = Vec::new();
    if let Some(target) = Target::of(&env)? {
        deleted = super::preview_server::delete_deployments(project, &target).await?;
    }
    ledger.close_preview(&preview.env, at).await?;
    Ok(Closed { env: preview.env.clone(), branch: preview.branch.clone(), deleted, open: true })
}

async fn list(project: &Project, args: PreviewListArgs, printer: Printer) -> Result<()> {
    let ledger = project.ledger().await?;
    let previews: Vec<PreviewRecord> =
        ledger.previews().await?.into_iter().filter(|p| args.all || p.closed_at.is_none()).collect();
    let now = Utc::now();
    printer.result(&previews, |out| {
        let rows: Vec<Vec<String>> = previews
            .iter()
            .map(|p| {
                let state = match (p.closed_at, p.expired(now)) {
                    (Some(at), _) => format!("closed {}", rfc3339(at)),
                    (None, true) => format!("expired {} (gc closes it)", rfc3339(p.expires_at)),
                    (None, false) => format!("open until {}", rfc3339(p.expires_at)),
                };
                vec![p.env.to_string(), p.branch.clone(), p.from_env.to_string(), p.build.to_string(), state]
            })
            .collect();
        if rows.is_empty() {
            out.push_str("No previews.\n");
        } else {
            table(out, &["ENV", "BRANCH", "FROM", "BUILD", "STATE"], &rows);
        }
    })
}

/// `--branch`, else the branch checked out.
fn branch_of(repo: Option<&Repo>, args: &PreviewBranchArgs) -> Result<String> {
    match (&args.branch, repo) {
        (Some(branch), _) => Ok(branch.clone()),
        (None, Some(repo)) => {
            repo.current_branch().ok_or_else(|| usage("HEAD is detached: name the preview's branch with --branch"))
        }
        (None, None) => Err(usage("Not in a git repository: name the preview's branch with --branch")),
    }
}

/// `preview-<branch>`: lowercase letters, digits and `-`, at most 63 characters.
pub fn preview_name(branch: &str) -> Result<EnvName> {
    let slug = flowgate_config::sanitize_user(branch);
    let name: String = format!("preview-{slug}").chars().take(63).collect();
    name.trim_end_matches('-')
        .parse()
        .map_err(|e| usage(format!("Branch `{branch}` gives no usable preview env name: {e}")))
}

/// The preview env `name`, placed like `from`: its server, credentials and
/// pools, with the deployments named `<name>-…` and tagged with `name`.
pub fn preview_env(from: &SelectedEnv, name: &EnvName, schedules: bool) -> SelectedEnv {
    SelectedEnv {
        ledger_name: name.clone(),
        name_prefix: format!("{name}-"),
        personal: false,
        preview: Some(PreviewPlacement { schedules }),
        ..from.clone()
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::preview_name;

    #[test]
    fn a_branch_becomes_a_valid_env_name() {
        assert_eq!(preview_name("feature/Add-Orders").unwrap().as_str(), "preview-feature-add-orders");
        assert_eq!(preview_name("x".repeat(80).as_str()).unwrap().as_str().len(), 63);
        assert_eq!(preview_name("///").unwrap().as_str(), "preview-unknown");
    }
}
