//! OpenID Connect ID tokens (a GitHub Actions or GitLab CI job's) verified
//! against their issuer's published keys: the discovery document names the
//! JWKS, which is cached and fetched again when a token names a key the cache
//! lacks (the issuer rotated its keys). Only asymmetric signatures are taken;
//! issuer, audience, expiry and not-before are checked. Every refusal is the
//! same to the caller; its reason goes to the server's debug log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::config::OidcIssuer;

/// Algorithms a token may be signed with: public-key ones only, so a key
/// published for verifying can never be used as a shared secret.
const ACCEPTED: [Algorithm; 5] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::ES256, Algorithm::ES384];

/// Keys are fetched again after this long, rotated or not.
const KEYS_TTL: Duration = Duration::from_secs(600);

/// A token naming an unknown key refetches at most this often, so a stream of
/// forged key ids cannot make the server hammer the issuer.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// A verified identity: its issuer, `sub`, and its string claims
/// (`repository`, `ref`, `sha`, `workflow`, `run_id`, `actor`, ...).
#[derive(Debug, Clone)]
pub struct OidcIdentity {
    pub issuer: String,
    pub subject: String,
    pub claims: BTreeMap<String, String>,
}

/// One issuer's verifier and its key cache.
#[derive(Debug)]
pub struct OidcVerifier {
    config: OidcIssuer,
    http: reqwest::Client,
    keys: RwLock<Option<(JwkSet, Instant)>>,
    /// Held while the keys are fetched, so requests that find the cache
    /// lacking at once cause one fetch, not one each.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl OidcVerifier {
    pub fn new(config: OidcIssuer) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { config, http, keys: RwLock::new(None), refresh: tokio::sync::Mutex::new(()) }
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The identity `token` proves, or why it proves none.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let kid = header.kid.ok_or("the token names no key (`kid`)")?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<BTreeMap<String, Value>>(token, &key, &validation)
            .map_err(|e| format!("verification: {e}"))?;
        let claims: BTreeMap<String, String> = data
            .claims
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                _ => None,
            })
            .collect();
        let subject = claims.get("sub").cloned().ok_or("no `sub` claim")?;
        Ok(OidcIdentity { issuer: self.config.issuer.clone(), subject, claims })
    }

    /// The key `kid`, from the cache or, when the cache lacks it or is old, from the issuer.
    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        let jwk = match self.cached(kid).await {
            Cached::Fresh(jwk) => jwk,
            Cached::Stale => {
                let _turn = self.refresh.lock().await;
                // Another request may have fetched the keys while this one waited.
                match self.cached(kid).await {
                    Cached::Fresh(jwk) => jwk,
                    Cached::Stale => {
                        let set = self.fetch_keys().await?;
                        let found = set.find(kid).cloned().map(Box::new);
                        *self.keys.write().await = Some((set, Instant::now()));
                        found
                    }
                }
            }
        };
        let jwk = jwk.ok_or_else(|| format!("the issuer publishes no key `{kid}`"))?;
        DecodingKey::from_jwk(&jwk).map_err(|e| format!("key `{kid}`: {e}"))
    }

    /// What the cache says of `kid`: its key (or that it has none, when the
    /// keys were fetched too recently to ask again), or that they must be fetched.
    async fn cached(&self, kid: &str) -> Cached {
        let keys = self.keys.read().await;
        match keys.as_ref().map(|(set, at)| (set.find(kid).cloned(), at.elapsed())) {
            None => Cached::Stale,
            Some((None, age)) if age >= REFETCH_AT_MOST_EVERY => Cached::Stale,
            Some((Some(_), age)) if age >= KEYS_TTL => Cached::Stale,
            Some((jwk, _)) => Cached::Fresh(jwk.map(Box::new)),
        }
    }

    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        let discovery_url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let discovery: Discovery = self.get_json(&discovery_url).await?;
        self.get_json(&discovery.jwks_uri).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self.http.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let response = response.error_for_status().map_err(|e| format!("GET {url}: {e}"))?;
        response.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

enum Cached {
    /// The cache answers: the key, or None when the issuer published no such
    /// key at the last fetch, which is too recent to fetch again.
    Fresh(Option<Box<jsonwebtoken::jwk::Jwk>>),
    /// The keys must be fetched first.
    Stale,
}

/// The `iss` of a token, read without verifying it: only to choose which
/// issuer's verifier checks it. None when the token is not a JWT.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: BTreeMap<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}
