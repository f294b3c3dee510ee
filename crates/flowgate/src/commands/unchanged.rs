//! `release --all` and `promote` move only the flows a build changes: a flow
//! whose env runs a build that gives it the same code (its closure digest),
//! the same recorded deployment settings and the same image keeps its
//! revision, its soak and its deployment. `--force` moves them all.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use flowgate_config::SelectedEnv;
use flowgate_core::{Build, BuildId, FlowKey, Move, Pointer};
use flowgate_ledger::Ledger;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A flow the move left where it was.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Unchanged {
    pub flow: FlowKey,
    /// The build the env keeps running.
    pub build: String,
    /// The build that was asked for.
    pub asked: String,
    /// Why nothing moved.
    pub reason: String,
}

/// Splits `moves` into those that change what a flow runs in `env` and the
/// flows they would leave as they are.
pub async fn keep_unchanged(
    ledger: &dyn Ledger,
    env: &SelectedEnv,
    moves: Vec<Move>,
    current: &BTreeMap<FlowKey, Pointer>,
) -> Result<(Vec<Move>, Vec<Unchanged>)> {
    let mut builds: HashMap<BuildId, Option<Build>> = HashMap::new();
    let mut kept = Vec::new();
    let mut unchanged = Vec::new();
    for mv in moves {
        let Some(pointer) = current.get(&mv.flow) else {
            kept.push(mv);
            continue;
        };
        for id in [&pointer.build, &mv.build] {
            if !builds.contains_key(id) {
                builds.insert(id.clone(), ledger.build(id).await?);
            }
        }
        let (Some(running), Some(asked)) = (&builds[&pointer.build], &builds[&mv.build]) else {
            kept.push(mv);
            continue;
        };
        match same_flow(running, asked, &env.config_name, &mv.flow) {
            Some(reason) => unchanged.push(Unchanged {
                flow: mv.flow.clone(),
                build: running.id.to_string(),
                asked: asked.id.to_string(),
                reason,
            }),
            None => kept.push(mv),
        }
    }
    Ok((kept, unchanged))
}

/// Why `flow` runs the same in `env` at both builds, or `None` when it may
/// not: a build without a recorded code digest counts as changed.
fn same_flow(running: &Build, asked: &Build, env: &str, flow: &FlowKey) -> Option<String> {
    let was = running.settings.as_ref()?.get(env, flow)?;
    let will = asked.settings.as_ref()?.get(env, flow)?;
    let code = was.code.as_ref()?;
    (was == will && running.image_for(flow) == asked.image_for(flow)).then(|| {
        format!(
            "same code ({} files, digest {}), settings and image as the running build",
            code.files,
            &code.digest[..code.digest.len().min(12)]
        )
    })
}

/// One line per flow left where it was.
pub fn render_unchanged(out: &mut String, unchanged: &[Unchanged]) {
    for u in unchanged {
        out.push_str(&format!("unchanged {}: keeps build {} ({}); --force moves it\n", u.flow, u.build, u.reason));
    }
}
