//! Pins image tags to manifest digests through a registry's HTTP API (the OCI
//! distribution spec), for `flowgate build` with `[project] pin_images = true`:
//! `HEAD /v2/<repository>/manifests/<tag>` accepting OCI and Docker manifests
//! and indexes, read `Docker-Content-Digest` (or GET the manifest and hash it),
//! anonymously, with Basic credentials from the Docker config, or with a
//! bearer token fetched from the realm a 401 names. Plain http only for
//! loopback registries and those in `FLOWGATE_INSECURE_REGISTRIES`.

pub mod auth;
pub mod reference;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use flowgate_core::{FlowKey, Images};
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest as _, Sha256};

use self::auth::{Challenge, Credentials, DockerConfig};
use self::reference::{check_digest, ImageRef};
use crate::exit::usage;
use crate::project::vars;

/// Every manifest kind a tag may name: a single-platform manifest or a
/// multi-platform index, OCI or Docker; the digest is of whichever it is.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";
/// How long connecting to a registry (or its token server) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest manifest read when it must be hashed here (the spec's limit).
const MANIFEST_MAX: usize = 4 * 1024 * 1024;

/// Why a tag could not be pinned. Every variant names the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Failed to reach the registry `{registry}` (`{url}`)")]
    Unreachable {
        registry: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("The registry `{registry}` has no manifest for tag `{tag}` of `{repository}`")]
    NotFound { registry: String, repository: String, tag: String },
    #[error("The registry `{registry}` refused access to `{repository}` ({status}); {hint}")]
    Denied { registry: String, repository: String, status: StatusCode, hint: String },
    #[error("The registry `{registry}` answered `{request}` with {status}{detail}")]
    Status { registry: String, request: String, status: StatusCode, detail: String },
    #[error("The registry `{registry}` answered `{request}` with something that is not an image manifest: {why}")]
    Garbage { registry: String, request: String, why: String },
    #[error("The token server `{realm}` of the registry `{registry}` gave no token: {why}")]
    Token { registry: String, realm: String, why: String },
}

/// `images` with every tag replaced by `name@sha256:…` (the name as written,
/// tag dropped); references already given by digest are kept as they are.
/// Each distinct image is resolved once, however many flows share it.
pub async fn pin_images(images: Images) -> Result<Images> {
    let mut flows_of: BTreeMap<String, Vec<FlowKey>> = BTreeMap::new();
    for (flow, image) in &images {
        flows_of.entry(image.clone()).or_default().push(flow.clone());
    }
    let mut resolver = None;
    let mut pinned: BTreeMap<String, String> = BTreeMap::new();
    for (image, flows) in &flows_of {
        let what = describe(image, flows);
        let reference = ImageRef::parse(image).map_err(|e| usage(format!("Cannot pin {what}: {e}")))?;
        if reference.digest.is_some() {
            pinned.insert(image.clone(), image.clone());
            continue;
        }
        let resolver = match &mut resolver {
            Some(resolver) => resolver,
            None => resolver.insert(Resolver::new()?),
        };
        let digest = resolver.digest(&reference).await.with_context(|| format!("Failed to pin {what} to a digest"))?;
        tracing::debug!(%image, %digest, "pinned");
        pinned.insert(image.clone(), reference.pinned(&digest));
    }
    Ok(images.into_iter().map(|(flow, image)| (flow, pinned[&image].clone())).collect())
}

/// "image `x` of flow `a`" / "image `x` of flows `a`, `b`".
fn describe(image: &str, flows: &[FlowKey]) -> String {
    let names: Vec<String> = flows.iter().map(|f| format!("`{f}`")).collect();
    let noun = if flows.len() == 1 { "flow" } else { "flows" };
    format!("image `{image}` of {noun} {}", names.join(", "))
}

/// Asks registries for digests; remembers what authorized each repository.
#[derive(Debug)]
struct Resolver {
    http: reqwest::Client,
    docker: DockerConfig,
    insecure: Vec<String>,
    /// The `Authorization` value that worked, per (API host, repository).
    authorized: HashMap<(String, String), String>,
}

impl Resolver {
    fn new() -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("flowgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("Failed to set up the registry client")?;
        let insecure = insecure_registries(std::env::var(vars::INSECURE_REGISTRIES).ok().as_deref());
        Ok(Self { http, docker: DockerConfig::load()?, insecure, authorized: HashMap::new() })
    }

    /// The manifest digest `reference`'s tag names now.
    async fn digest(&mut self, reference: &ImageRef) -> Result<String, RegistryError> {
        let host = reference.api_host();
        let url = format!(
            "{}://{host}/v2/{}/manifests/{}",
            scheme_for(host, &self.insecure),
            reference.repository,
            reference.tag_or_default()
        );
        let head = self.send(reference, Method::HEAD, &url).await?;
        match head.status() {
            status if status.is_success() => {
                if let Some(digest) = head.headers().get("docker-content-digest") {
                    let text = digest.to_str().unwrap_or_default();
                    return check_digest(text)
                        .map(str::to_string)
                        .map_err(|why| self.garbage(reference, "HEAD", &url, why));
                }
            }
            // Some registries answer HEAD with 405; the GET below asks again.
            StatusCode::METHOD_NOT_ALLOWED => {}
            _ => return Err(self.status_error(reference, "HEAD", &url, head).await),
        }
        let get = self.send(reference, Method::GET, &url).await?;
        if !get.status().is_success() {
            return Err(self.status_error(reference, "GET", &url, get).await);
        }
        let header = get.headers().get("docker-content-digest").and_then(|d| d.to_str().ok()).map(str::to_string);
        let body = read_limited(get).await.map_err(|why| self.garbage(reference, "GET", &url, why))?;
        check_manifest(&body).map_err(|why| self.garbage(reference, "GET", &url, why))?;
        match header {
            Some(digest) => {
                check_digest(&digest).map(str::to_string).map_err(|why| self.garbage(reference, "GET", &url, why))
            }
            None => Ok(format!("sha256:{}", hex::encode(Sha256::digest(&body)))),
        }
    }

    /// One request, authorized as this repository was before; on a 401, the
    /// challenge is answered (Basic credentials or a bearer token) and the
    /// request sent once more.
    async fn send(&mut self, reference: &ImageRef, method: Method, url: &str) -> Result<Response, RegistryError> {
        let key = (reference.api_host().to_string(), reference.repository.clone());
        let known = self.authorized.get(&key).cloned();
        let response = self.request(reference, method.clone(), url, known.as_deref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge =
            response.headers().get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()).and_then(Challenge::parse);
        let authorization = self.authorize(reference, challenge).await?;
        let retried = self.request(reference, method, url, Some(&authorization)).await?;
        if matches!(retried.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(self.denied(reference, retried.status()));
        }
        self.authorized.insert(key, authorization);
        Ok(retried)
    }

    async fn request(
        &self,
        reference: &ImageRef,
        method: Method,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        tracing::debug!(registry = %reference.registry, %method, %url, "registry request");
        let mut request = self.http.request(method, url).header(ACCEPT, MANIFEST_TYPES);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        request.send().await.map_err(|source| RegistryError::Unreachable {
            registry: reference.registry.clone(),
            url: url.to_string(),
            source,
        })
    }

    /// The `Authorization` value that answers `challenge`.
    async fn authorize(&self, reference: &ImageRef, challenge: Option<Challenge>) -> Result<String, RegistryError> {
        let credentials = self.docker.credentials_for(&reference.registry);
        match challenge {
            Some(c) if c.scheme == "bearer" => {
                self.token(reference, &c, credentials).await.map(|token| format!("Bearer {token}"))
            }
            Some(c) if c.scheme == "basic" => match credentials {
                Some(credentials) => Ok(credentials.basic_header()),
                None => Err(self.denied(reference, StatusCode::UNAUTHORIZED)),
            },
            _ => Err(RegistryError::Denied {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                status: StatusCode::UNAUTHORIZED,
                hint: "it sent no Basic or Bearer challenge to answer".into(),
            }),
        }
    }

    /// A bearer token from the challenge's realm, for its service and scope
    /// (pull of this repository when it names none), asked with the Docker
    /// config's credentials when there are some.
    async fn token(
        &self,
        reference: &ImageRef,
        challenge: &Challenge,
        credentials: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let realm = challenge.param("realm").unwrap_or_default();
        let fail =
            |why: String| RegistryError::Token { registry: reference.registry.clone(), realm: realm.to_string(), why };
        let mut url = reqwest::Url::parse(realm).map_err(|e| fail(format!("the realm is not a URL ({e})")))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(fail("the realm is not an http(s) URL".into()));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let authority = url.port().map_or(host.clone(), |port| format!("{host}:{port}"));
        if credentials.is_some() && url.scheme() == "http" && scheme_for(&authority, &self.insecure) == "https" {
            let why =
                "it is plain http, and credentials go only over https (or to a host in FLOWGATE_INSECURE_REGISTRIES)";
            return Err(fail(why.into()));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            let scope = challenge
                .param("scope")
                .map_or_else(|| format!("repository:{}:pull", reference.repository), str::to_string);
            query.append_pair("scope", &scope);
        }
        tracing::debug!(registry = %reference.registry, realm, "token request");
        let mut request = self.http.get(url);
        if let Some(credentials) = credentials {
            request = request.header(AUTHORIZATION, credentials.basic_header());
        }
        let response = request.send().await.map_err(|e| fail(format!("failed to reach it ({})", error_chain(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let hint = if credentials.is_some() { "" } else { "; no credentials for it in the Docker config" };
            return Err(fail(format!("it answered {status}{hint}")));
        }
        let body = read_limited(response).await.map_err(&fail)?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| fail(format!("its answer is not JSON ({e})")))?;
        ["token", "access_token"]
            .iter()
            .find_map(|field| doc.get(*field).and_then(|t| t.as_str()).filter(|t| !t.is_empty()))
            .map(str::to_string)
            .ok_or_else(|| fail("its answer has no `token`".into()))
    }

    fn denied(&self, reference: &ImageRef, status: StatusCode) -> RegistryError {
        let hint = match self.docker.credentials_for(&reference.registry) {
            Some(c) => {
                format!(
                    "the credentials of `{}` for `{}` in the Docker config were refused",
                    c.username, reference.registry
                )
            }
            None => format!(
                "there are no credentials for `{}` in the Docker config (`$DOCKER_CONFIG/config.json` or \
                 `~/.docker/config.json`; `docker login` writes them)",
                reference.registry
            ),
        };
        RegistryError::Denied {
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            status,
            hint,
        }
    }

    async fn status_error(&self, reference: &ImageRef, method: &str, url: &str, response: Response) -> RegistryError {
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return RegistryError::NotFound {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                tag: reference.tag_or_default().to_string(),
            };
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return self.denied(reference, status);
        }
        let body = read_limited(response).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
        RegistryError::Status {
            registry: reference.registry.clone(),
            request: format!("{method} {url}"),
            status,
            detail: if text.is_empty() { String::new() } else { format!(": {text}") },
        }
    }

    fn garbage(&self, reference: &ImageRef, method: &str, url: &str, why: String) -> RegistryError {
        RegistryError::Garbage { registry: reference.registry.clone(), request: format!("{method} {url}"), why }
    }
}

/// The body, refused past [`MANIFEST_MAX`].
async fn read_limited(mut response: Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| format!("reading the answer failed ({})", error_chain(&e)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MANIFEST_MAX {
            return Err(format!("the answer is larger than {MANIFEST_MAX} bytes"));
        }
    }
    Ok(body)
}

/// A manifest or index is a JSON object with `"schemaVersion": 2`.
fn check_manifest(body: &[u8]) -> Result<(), String> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        let start: String =
            String::from_utf8_lossy(&body[..body.len().min(60)]).split_whitespace().collect::<Vec<_>>().join(" ");
        if start.is_empty() {
            "the answer is empty".to_string()
        } else {
            format!("the answer is not JSON (it starts `{start}`)")
        }
    })?;
    match doc.get("schemaVersion").and_then(serde_json::Value::as_u64) {
        Some(2) => Ok(()),
        Some(other) => Err(format!("its `schemaVersion` is {other}, not 2")),
        None => Err("the JSON has no `schemaVersion`".into()),
    }
}

/// `e` and its sources, for errors folded into one message.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The hosts of `FLOWGATE_INSECURE_REGISTRIES`: comma-separated, `host` or `host:port`.
fn insecure_registries(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_string).collect()
}

/// `http` for loopback registries and those listed as insecure (by host, or
/// host and port), `https` for every other.
fn scheme_for(host: &str, insecure: &[String]) -> &'static str {
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || insecure.iter().any(|i| i == host || i == bare) {
        "http"
    } else {
        "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_listed_registries() {
        let none: Vec<String> = vec![];
        assert_eq!(scheme_for("127.0.0.1:5000", &none), "http");
        assert_eq!(scheme_for("127.1.2.3", &none), "http");
        assert_eq!(scheme_for("localhost:5000", &none), "http");
        assert_eq!(scheme_for("[::1]:5000", &none), "http");
        assert_eq!(scheme_for("ghcr.io", &none), "https");
        assert_eq!(scheme_for("registry-1.docker.io", &none), "https");
        assert_eq!(scheme_for("10.0.0.5:5000", &none), "https");
        let listed = insecure_registries(Some(" registry.lan:5000 , build-cache ,"));
        assert_eq!(listed, ["registry.lan:5000", "build-cache"]);
        assert_eq!(scheme_for("registry.lan:5000", &listed), "http");
        assert_eq!(scheme_for("registry.lan:5001", &listed), "https");
        assert_eq!(scheme_for("build-cache:443", &listed), "http");
    }

    #[test]
    fn only_v2_json_counts_as_a_manifest() {
        assert!(check_manifest(br#"{"schemaVersion":2,"mediaType":"x"}"#).is_ok());
        assert_eq!(check_manifest(b"").unwrap_err(), "the answer is empty");
        assert!(check_manifest(b"<html><body>oops</body></html>").unwrap_err().contains("starts `<html>"));
        assert!(check_manifest(br#"{"schemaVersion":1}"#).unwrap_err().contains("is 1"));
        assert!(check_manifest(b"[]").unwrap_err().contains("no `schemaVersion`"));
    }

    #[test]
    fn describe_names_every_flow() {
        let flows: Vec<FlowKey> = vec!["a".parse().unwrap(), "b".parse().unwrap()];
        assert_eq!(describe("x:1", &flows[..1]), "image `x:1` of flow `a`");
        assert_eq!(describe("x:1", &flows), "image `x:1` of flows `a`, `b`");
    }
}
