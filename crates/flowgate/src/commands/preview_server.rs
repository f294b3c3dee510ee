//! A preview's deployments on its Prefect server: exactly the project's own,
//! tagged with the preview's env and named with its prefix (what `sync --prune`
//! would take as the env's), deleted when the preview closes.

use anyhow::{Context as _, Result};
use flowgate_prefect::{PruneScope, Subject};

use super::deploy::Target;
use crate::project::Project;

/// Deletes the preview env's deployments; returns their names.
pub async fn delete_deployments(project: &Project, target: &Target) -> Result<Vec<String>> {
    let env = &target.env;
    // Only this env's managed deployments, in one filtered read: a preview's
    // deployments always carry its env tag (it is newer than the tag).
    let actual = target
        .client
        .read_deployments_tagged(&super::deploy::env_tags(&env.ledger_name), &[])
        .await
        .with_context(|| format!("Failed to read the deployments of preview `{}`", env.ledger_name))?;
    let scope = PruneScope {
        project: project.config.project_name().clone(),
        env: env.ledger_name.clone(),
        name_prefix: env.name_prefix.clone(),
    };
    let mut deleted = Vec::new();
    for candidate in flowgate_prefect::plan(&[], &actual, &scope).prune {
        let subject = Subject::deployment(&candidate.flow_name, env.ledger_name.as_str(), &candidate.name);
        target.client.delete_deployment(&candidate.id, &subject).await.with_context(|| {
            format!("Failed to delete deployment `{}` of preview `{}`", candidate.name, env.ledger_name)
        })?;
        deleted.push(candidate.name);
    }
    Ok(deleted)
}
