//! `flowgate serve --config FILE`: the server's own settings, in TOML. They
//! name the ledger, the address, the artifact store builds are
//! registered into (and the largest bundle taken), the OpenID Connect issuers whose ID
//! tokens the server accepts, the access rules that give those identities
//! roles, and each project's protected envs: the envs only the server moves,
//! placed, guarded and credentialed here (`[projects.P.envs.E]`, with the keys
//! of `flowgate.toml`'s `[envs.E]` that place and guard an env, and
//! `work_pool`). Flags given on the command line win over the file.
//!
//! ```toml
//! ledger = "postgres://flowgate@db/flowgate"
//! listen = "0.0.0.0:8470"
//! artifacts = "s3://acme-flowgate/artifacts"
//!
//! [[oidc]]
//! issuer = "https://token.actions.githubusercontent.com"
//! audience = "flowgate"
//!
//! [[access]]
//! issuer = "https://token.actions.githubusercontent.com"
//! claims = { repository = "acme/flows", ref = "refs/heads/main" }
//! roles = ["releaser:prod", "releaser:qa"]
//!
//! [projects.acme-flows.envs.prod]
//! prefect_api_url = "https://prefect.internal/api"
//! prefect_auth = { env = "PREFECT_PROD_AUTH", scheme = "basic" }
//! work_pool = "prod-k8s"
//! policy = { branches = ["main"], provenance = { ref = "refs/heads/main" }, approval = true, separate_approver = true }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Result;
use flowgate_config::ProtectedProject;
use flowgate_core::{AccessRule, Grant};
use serde::Deserialize;

use crate::exit::usage;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub ledger: Option<String>,
    pub listen: Option<SocketAddr>,
    /// The artifact store builds are registered into; each project's objects
    /// go under `ARTIFACTS/PROJECT`.
    pub artifacts: Option<String>,
    /// The largest bundle a build registration may upload, in bytes.
    pub bundle_limit: Option<u64>,
    #[serde(default)]
    pub oidc: Vec<OidcIssuer>,
    /// Single sign-on for the dashboard through a reverse proxy.
    pub sso: Option<SsoConfig>,
    #[serde(default)]
    access: Vec<AccessEntry>,
    /// Checked here only for its shape; read by [`flowgate_config::parse_protected_envs`].
    #[serde(default, rename = "projects")]
    _projects: BTreeMap<String, ProjectSection>,
    /// Where notifications go (see `notify::config`).
    #[serde(default)]
    pub webhooks: Vec<super::notify::config::WebhookEntry>,
    /// How hard the server tries to deliver them.
    #[serde(default)]
    pub notify: super::notify::config::NotifyEntry,
    /// Each project's protected envs.
    #[serde(skip)]
    pub protected: Vec<ProtectedProject>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSection {
    #[serde(default, rename = "envs")]
    _envs: Option<toml::Table>,
}

/// An issuer whose ID tokens the server verifies, for one audience.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuer {
    /// The `iss` of its tokens; its keys are found from
    /// `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    /// The `aud` its tokens must carry for this server.
    pub audience: String,
}

/// The issuer name `[[access]]` rules use for people the single sign-on proxy signed in.
pub const SSO_ISSUER: &str = "sso";

/// Single sign-on through a reverse proxy (oauth2-proxy and the like) that
/// signs people in and passes who they are in a header. The header is believed
/// only on connections from `trusted_proxies`: anyone else could send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The proxies' addresses, as the server sees the connection's peer.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The header naming the person (oauth2-proxy: `X-Forwarded-Email`, with
    /// `--pass-user-headers`); it becomes the subject and the `email` claim.
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// A header listing their groups, comma separated (oauth2-proxy:
    /// `X-Forwarded-Groups`); it becomes the `groups` claim, `,a,b,` so a
    /// rule can match one group with `*,a,*`.
    #[serde(default)]
    pub groups_header: Option<String>,
}

fn default_user_header() -> String {
    "X-Forwarded-Email".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessEntry {
    issuer: String,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    roles: Vec<Grant>,
}

impl ServerConfig {
    /// Reads and checks `path`: a bad file is exit 2 naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("Cannot read the server config `{}`: {e}", path.display())))?;
        let mut config: ServerConfig =
            toml::from_str(&text).map_err(|e| usage(format!("Server config `{}`: {e}", path.display())))?;
        config.check().map_err(|e| usage(format!("Server config `{}`: {e}", path.display())))?;
        config.protected = flowgate_config::parse_protected_envs(&path.display().to_string(), &text)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        for issuer in &self.oidc {
            check_issuer_url(&issuer.issuer)?;
            if issuer.audience.is_empty() {
                return Err(format!("[[oidc]] `{}` has an empty audience", issuer.issuer));
            }
        }
        if let Some(sso) = &self.sso {
            if sso.trusted_proxies.is_empty() {
                return Err("[sso] names no `trusted_proxies`: the user header would be believed from no one".into());
            }
            for header in std::iter::once(&sso.user_header).chain(&sso.groups_header) {
                axum::http::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("[sso] `{header}` is not a header name"))?;
            }
        }
        for entry in &self.access {
            let sso = entry.issuer == SSO_ISSUER && self.sso.is_some();
            if !sso && !self.oidc.iter().any(|i| i.issuer == entry.issuer) {
                return Err(format!(
                    "[[access]] names issuer `{}`, which no [[oidc]] entry declares (`{SSO_ISSUER}` needs [sso])",
                    entry.issuer
                ));
            }
            if entry.claims.is_empty() {
                return Err(format!(
                    "[[access]] for `{}` names no claim: every identity that issuer signs for this audience \
                     would match; name at least one (repository, ref, ...)",
                    entry.issuer
                ));
            }
        }
        super::notify::config::check(&self.webhooks, &self.notify)?;
        self.access_rules().map(|_| ())
    }

    /// The access rules, compiled.
    pub fn access_rules(&self) -> Result<Vec<AccessRule>, String> {
        self.access
            .iter()
            .map(|e| AccessRule::new(&e.issuer, &e.claims, e.roles.clone()).map_err(|err| format!("[[access]] {err}")))
            .collect()
    }
}

/// `https://...`, or `http://` on the loopback interface (a test issuer):
/// keys fetched over plain HTTP from elsewhere could be anyone's.
fn check_issuer_url(issuer: &str) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("[[oidc]] issuer `{issuer}` is not a URL: {e}"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("[[oidc]] issuer `{issuer}` must be an https:// URL (http:// only on 127.0.0.1)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, String> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check().map(|_| config)
    }

    const ISSUER: &str =
        "[[oidc]]\nissuer = \"https://token.actions.githubusercontent.com\"\naudience = \"flowgate\"\n";

    #[test]
    fn a_good_file_gives_its_rules() {
        let text = format!(
            "ledger = \"sqlite://server.db\"\n{ISSUER}\n[[access]]\nissuer = \"https://token.actions.githubusercontent.com\"\n\
             claims = {{ repository = \"acme/flows\" }}\nroles = [\"releaser:qa\"]\n"
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.ledger.as_deref(), Some("sqlite://server.db"));
        assert_eq!(config.access_rules().unwrap()[0].grants[0].to_string(), "releaser:qa");
    }

    #[test]
    fn the_readme_example_is_a_good_config() {
        let readme = include_str!("../../../../README.md");
        let section =
            &readme[readme.find("flowgate serve --config server.toml").expect("the README's server section")..];
        let block = section.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block");
        let config = parse(block).unwrap_or_else(|e| panic!("the README's server config: {e}"));
        assert_eq!(config.access_rules().unwrap().len(), 2);
        let protected = flowgate_config::parse_protected_envs("README.md", block).expect("the protected envs");
        assert_eq!(protected[0].envs[0].placed_work_pool.as_deref(), Some("prod-k8s"));
    }

    #[test]
    fn the_readme_single_sign_on_example_is_a_good_config() {
        let readme = include_str!("../../../../README.md");
        let section =
            &readme[readme.find("**Single sign-on through a reverse proxy**").expect("the README's SSO part")..];
        let block = section.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block");
        let block: String = block.lines().map(str::trim_start).collect::<Vec<_>>().join("\n");
        let config = parse(&block).unwrap_or_else(|e| panic!("the README's SSO config: {e}"));
        let sso = config.sso.as_ref().expect("[sso]");
        assert_eq!((sso.user_header.as_str(), sso.trusted_proxies.len()), ("X-Forwarded-Email", 1));
        assert_eq!(config.access_rules().unwrap().len(), 2);
    }

    #[test]
    fn every_mistake_is_named() {
        let gh = "https://token.actions.githubusercontent.com";
        let cases = [
            ("ledgr = \"x\"\n".to_string(), "ledgr"),
            ("[[oidc]]\nissuer = \"http://issuer.example\"\naudience = \"a\"\n".into(), "http://issuer.example"),
            ("[[oidc]]\nissuer = \"not a url\"\naudience = \"a\"\n".into(), "not a url"),
            (format!("{ISSUER}[[access]]\nissuer = \"https://other.example\"\nclaims = {{ a = \"b\" }}\nroles = [\"viewer\"]\n"), "https://other.example"),
            (format!("{ISSUER}[[access]]\nissuer = \"{gh}\"\nroles = [\"viewer\"]\n"), "names no claim"),
            (format!("{ISSUER}[[access]]\nissuer = \"{gh}\"\nclaims = {{ ref = \"[x\" }}\nroles = [\"viewer\"]\n"), "`[x`"),
            (format!("{ISSUER}[[access]]\nissuer = \"{gh}\"\nclaims = {{ ref = \"x\" }}\nroles = [\"owner\"]\n"), "`owner`"),
            ("[[access]]\nissuer = \"sso\"\nclaims = { email = \"*\" }\nroles = [\"viewer\"]\n".into(), "needs [sso]"),
            ("[sso]\ntrusted_proxies = []\n".into(), "no `trusted_proxies`"),
            ("[sso]\ntrusted_proxies = [\"proxy.internal\"]\n".into(), "proxy.internal"),
            ("[sso]\ntrusted_proxies = [\"10.0.0.5\"]\nuser_header = \"X Email\"\n".into(), "`X Email`"),
        ];
        for (text, needle) in cases {
            let err = parse(&text).err().unwrap_or_else(|| panic!("accepted:\n{text}"));
            assert!(err.contains(needle), "missing {needle}: {err}");
        }
    }
}
