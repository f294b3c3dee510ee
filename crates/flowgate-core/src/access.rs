//! Who may do what on a flowgate server: roles, each optionally scoped to one
//! env, and the rule that decides whether a set of grants allows an action.
//! Pure, so the server and its tests read the same rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{EnvName, IdError};

/// What an identity may do. Every role may read (`viewer`'s right); `releaser`
/// moves pointers, `approver` approves, `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Releaser,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Releaser, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Releaser => "releaser",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// True when holding `self` gives the rights of `needed`.
    pub fn includes(self, needed: Role) -> bool {
        self == needed || self == Role::Admin || needed == Role::Viewer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role, on every env (`releaser`) or on one (`releaser:qa`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    pub role: Role,
    /// None: every env.
    pub env: Option<EnvName>,
}

impl Grant {
    /// True when this grant allows an action needing `needed`, on `env` when
    /// the action is on one env (None: an action on no single env, such as
    /// listing projects, which only an unscoped grant or a viewer right allows).
    pub fn allows(&self, needed: Role, env: Option<&EnvName>) -> bool {
        let env_ok = match (&self.env, env) {
            (None, _) => true,
            (Some(scope), Some(env)) => scope == env,
            // A scoped grant still lets its holder read what is not one env's.
            (Some(_), None) => needed == Role::Viewer,
        };
        env_ok && self.role.includes(needed)
    }
}

/// True when any of `grants` allows the action.
pub fn allowed(grants: &[Grant], needed: Role, env: Option<&EnvName>) -> bool {
    grants.iter().any(|g| g.allows(needed, env))
}

/// True when any of `grants` gives `needed` on at least one env: for actions
/// that prepare moves without making one (registering a build), which a
/// releaser of any env may take.
pub fn allowed_somewhere(grants: &[Grant], needed: Role) -> bool {
    grants.iter().any(|g| g.role.includes(needed))
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env {
            None => write!(f, "{}", self.role),
            Some(env) => write!(f, "{}:{env}", self.role),
        }
    }
}

/// A grant that is not `ROLE` or `ROLE:ENV`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("unknown role `{0}`: use viewer, releaser, approver or admin, optionally as ROLE:ENV")]
    UnknownRole(String),
    #[error("grant `{grant}`: {source}")]
    Env { grant: String, source: IdError },
}

impl FromStr for Grant {
    type Err = GrantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (role, env) = match s.split_once(':') {
            Some((role, env)) => (role, Some(env)),
            None => (s, None),
        };
        let role = Role::ALL
            .into_iter()
            .find(|r| r.as_str() == role)
            .ok_or_else(|| GrantError::UnknownRole(role.to_string()))?;
        let env = env
            .map(|e| e.parse::<EnvName>())
            .transpose()
            .map_err(|source| GrantError::Env { grant: s.to_string(), source })?;
        Ok(Grant { role, env })
    }
}

impl Serialize for Grant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Grant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Grant {
        s.parse().unwrap()
    }

    #[test]
    fn grants_parse_and_print_back() {
        for text in ["viewer", "releaser:qa", "approver:prod", "admin"] {
            assert_eq!(g(text).to_string(), text);
        }
        assert_eq!("owner".parse::<Grant>().unwrap_err(), GrantError::UnknownRole("owner".into()));
        assert!(matches!("releaser:../x".parse::<Grant>(), Err(GrantError::Env { .. })));
    }

    #[test]
    fn every_role_by_every_need_on_its_env_another_env_and_no_env() {
        let qa: EnvName = "qa".parse().unwrap();
        let prod: EnvName = "prod".parse().unwrap();
        use Role::*;
        // (grant, needed, on qa, on prod, on no single env)
        let table = [
            ("viewer", Viewer, true, true, true),
            ("viewer", Releaser, false, false, false),
            ("releaser", Releaser, true, true, true),
            ("releaser", Approver, false, false, false),
            ("releaser", Viewer, true, true, true),
            ("approver", Approver, true, true, true),
            ("approver", Releaser, false, false, false),
            ("admin", Admin, true, true, true),
            ("admin", Releaser, true, true, true),
            ("releaser:qa", Releaser, true, false, false),
            ("releaser:qa", Viewer, true, false, true),
            ("approver:prod", Approver, false, true, false),
            ("admin:qa", Admin, true, false, false),
            ("viewer:qa", Viewer, true, false, true),
        ];
        for (grant, needed, on_qa, on_prod, on_none) in table {
            let grant = g(grant);
            let got = (grant.allows(needed, Some(&qa)), grant.allows(needed, Some(&prod)), grant.allows(needed, None));
            assert_eq!(got, (on_qa, on_prod, on_none), "{grant} needing {needed}");
        }
        assert!(allowed(&[g("viewer"), g("releaser:qa")], Releaser, Some(&qa)));
        assert!(!allowed(&[], Viewer, None));
    }
}
