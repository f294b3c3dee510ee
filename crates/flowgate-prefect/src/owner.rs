//! Who owns a deployment on a Prefect server that many projects share: a
//! flowgate project (its `flowgate-project:<name>` tag), flowgate from before
//! projects existed (tag `flowgate` without a project tag), or nobody flowgate
//! knows. A project writes only deployments it owns or can adopt unambiguously.

use std::fmt;

use flowgate_core::{EnvName, ProjectName};

use crate::api::ServerDeployment;
use crate::spec::{ENV_TAG_PREFIX, MANAGED_TAG};

/// Prefix of the tag naming the project a deployment belongs to.
pub const PROJECT_TAG_PREFIX: &str = "flowgate-project:";

/// `flowgate-project:<name>`.
pub fn project_tag(project: &ProjectName) -> String {
    format!("{PROJECT_TAG_PREFIX}{project}")
}

/// The owner a deployment's tags declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Tagged `flowgate-project:<name>` (the first such tag when there are several).
    Project(String),
    /// Tagged `flowgate` but no project: synced before projects existed. `env`
    /// is its `flowgate-env:` tag, if any.
    Unclaimed { env: Option<String> },
    /// Not tagged `flowgate`: made by hand, by `prefect deploy` or another tool.
    Unmanaged,
}

impl Owner {
    pub fn of(deployment: &ServerDeployment) -> Self {
        if let Some(project) = deployment.tags.iter().find_map(|t| t.strip_prefix(PROJECT_TAG_PREFIX)) {
            return Self::Project(project.to_string());
        }
        if deployment.tags.iter().any(|t| t == MANAGED_TAG) {
            let env = deployment.tags.iter().find_map(|t| t.strip_prefix(ENV_TAG_PREFIX)).map(str::to_string);
            return Self::Unclaimed { env };
        }
        Self::Unmanaged
    }

    pub fn is(&self, project: &ProjectName) -> bool {
        matches!(self, Self::Project(p) if p == project.as_str())
    }

    /// A deployment synced before projects existed, tagged with `env`: the
    /// project whose config wants that (flow, name) in that env adopts it.
    pub fn adoptable_in(&self, env: &EnvName) -> bool {
        matches!(self, Self::Unclaimed { env: Some(e) } if e == env.as_str())
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Project(p) => write!(f, "flowgate project `{p}`"),
            Self::Unclaimed { env: Some(env) } => {
                write!(f, "no project (a flowgate deployment of env `{env}` without a `{PROJECT_TAG_PREFIX}` tag)")
            }
            Self::Unclaimed { env: None } => {
                write!(
                    f,
                    "no project (a flowgate deployment without `{PROJECT_TAG_PREFIX}` and `{ENV_TAG_PREFIX}` tags)"
                )
            }
            Self::Unmanaged => write!(f, "no project (it has no `{MANAGED_TAG}` tag: not managed by flowgate)"),
        }
    }
}

/// One deployment a sync would have to write but does not own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub deployment: String,
    pub flow_name: String,
    pub owner: Owner,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deployment `{}/{}` belongs to {}", self.flow_name, self.deployment, self.owner)
    }
}
