//! A real container registry: Debian's `docker-registry` (the OCI distribution
//! server) on a free port of 127.0.0.1 with its storage in a temp dir, started
//! per test and killed however the test ends; optionally behind HTTP Basic auth
//! (an htpasswd file of bcrypt hashes made by `htpasswd -B`) or bearer tokens
//! from a token server of the test kit ([`crate::registry_token`]). Images are pushed
//! over its HTTP API: a config blob, a layer blob, then the manifest.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::http::{exchange, Answer};
use crate::registry_token::TokenServer;

/// The registry binary Debian's `docker-registry` package installs.
pub const BINARY: &str = "docker-registry";
/// How long a started registry may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The media type of the manifests [`Registry::push_image`] pushes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A running registry; dropping it kills the process and removes its storage.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// `user:password` when it requires HTTP Basic auth, or its token server does.
    basic: Option<(String, String)>,
    /// The token server, when it requires bearer tokens.
    token: Option<TokenServer>,
}

impl Registry {
    /// Starts an anonymous registry; panics saying how to install it when missing.
    pub fn start() -> Self {
        Self::spawn(None, false).unwrap_or_else(|e| panic!("{}", missing(&e)))
    }

    /// Like [`Registry::start`], but the test may skip when `docker-registry`
    /// is missing: `None` when [`crate::skip::REGISTRY`] is `1` outside CI, a
    /// panic otherwise (see [`crate::skip`]).
    pub fn start_or_skip() -> Option<Self> {
        Self::start_or_skip_with(None, false)
    }

    /// A registry that answers only requests with HTTP Basic auth as
    /// `user`/`password`; skips as [`Registry::start_or_skip`] does.
    pub fn start_with_basic_auth_or_skip(user: &str, password: &str) -> Option<Self> {
        Self::start_or_skip_with(Some((user.to_string(), password.to_string())), false)
    }

    /// A registry that answers only requests with a bearer token from the
    /// test kit's token server, which gives tokens to `user`/`password`.
    pub fn start_with_token_auth_or_skip(user: &str, password: &str) -> Option<Self> {
        Self::start_or_skip_with(Some((user.to_string(), password.to_string())), true)
    }

    fn start_or_skip_with(basic: Option<(String, String)>, token: bool) -> Option<Self> {
        crate::skip::check_value(crate::skip::REGISTRY);
        match Self::spawn(basic, token) {
            Ok(registry) => Some(registry),
            Err(e) => {
                let hint = "Run `source scripts/lib.sh && \
                            ensure_packages docker-registry:docker-registry htpasswd:apache2-utils`";
                crate::skip::or_fail(crate::skip::REGISTRY, &missing(&e), hint);
                None
            }
        }
    }

    fn spawn(basic: Option<(String, String)>, token: bool) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("flowgate-registry-").tempdir()?;
        let port = crate::free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let token = match (&basic, token) {
            (Some((user, password)), true) => Some(TokenServer::start(dir.path(), user, password)),
            _ => None,
        };
        if let Some(server) = &token {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                server.realm(),
                crate::registry_token::SERVICE,
                crate::registry_token::ISSUER,
                server.cert_path().display()
            ));
        } else if let Some((user, password)) = &basic {
            let htpasswd = dir.path().join("htpasswd");
            write_htpasswd(&htpasswd, user, password)?;
            config
                .push_str(&format!("auth:\n  htpasswd:\n    realm: flowgate-test\n    path: {}\n", htpasswd.display()));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(BINARY).arg("serve").arg(&config_path).stdout(Stdio::null()).stderr(log).spawn()?;
        let mut registry = Self { child, port, dir, basic, token };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("`{BINARY}` exited ({status}) before listening:\n{}", registry.log());
            }
            assert!(Instant::now() < deadline, "`{BINARY}` did not listen on port {port} within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Listening is not yet answering: wait for the API root.
        while registry.get("/v2/").status == 0 {
            assert!(Instant::now() < deadline, "`{BINARY}` did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The token server, for a registry behind bearer-token auth.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// What the registry wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A Docker config directory (what `DOCKER_CONFIG` names) whose
    /// `config.json` holds this registry's credentials as `auths.<host>.auth`.
    pub fn docker_config(&self) -> tempfile::TempDir {
        let (user, password) = self.basic.as_ref().expect("a registry with basic auth");
        docker_config_with(&self.host(), user, password)
    }

    /// Pushes a small image (a config blob, one layer holding `seed`, and an
    /// OCI manifest) as `name:tag`; returns the manifest digest the registry
    /// answered with (`sha256:<hex>`), checked against the manifest's bytes.
    pub fn push_image(&self, name: &str, tag: &str, seed: &str) -> String {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Labels": { "seed": seed } },
            "rootfs": { "type": "layers", "diff_ids": [] },
        })
        .to_string();
        let layer = format!("layer of {name}:{tag} ({seed})");
        let config_digest = self.push_blob(name, config.as_bytes());
        let layer_digest = self.push_blob(name, layer.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        })
        .to_string();
        let answer = self.send(
            "PUT",
            &format!("/v2/{name}/manifests/{tag}"),
            &[("Content-Type", OCI_MANIFEST)],
            manifest.as_bytes(),
        );
        assert_eq!(answer.status, 201, "pushing the manifest of `{name}:{tag}` failed: {}", answer.body);
        let digest = answer.header("docker-content-digest").expect("a Docker-Content-Digest header").to_string();
        assert_eq!(digest, sha256_digest(manifest.as_bytes()), "the registry's digest of the manifest");
        digest
    }

    /// Uploads one blob (POST to start, PUT with its digest to finish); returns its digest.
    fn push_blob(&self, name: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let started = self.send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], b"");
        assert_eq!(started.status, 202, "starting a blob upload to `{name}` failed: {}", started.body);
        let location = started.header("location").expect("an upload location");
        // The location may be absolute (`http://host/v2/...`) or a path.
        let path = location.find("/v2/").map_or(location, |at| &location[at..]);
        let separator = if path.contains('?') { '&' } else { '?' };
        let finish = format!("{path}{separator}digest={digest}");
        let done = self.send("PUT", &finish, &[("Content-Type", "application/octet-stream")], bytes);
        assert_eq!(done.status, 201, "finishing the blob upload to `{name}` failed: {}", done.body);
        digest
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, &[], b"")
    }

    /// One request, with this registry's Basic credentials when it has them.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let auth = match (&self.token, &self.basic) {
            // A token for the repository the path names (`/v2/<name>/blobs/…`), as a client would ask.
            (Some(server), _) => {
                let name = path.strip_prefix("/v2/").and_then(|rest| {
                    ["/blobs/", "/manifests/", "/tags/"].iter().find_map(|kind| rest.split_once(kind)).map(|(n, _)| n)
                });
                Some(format!("Bearer {}", server.mint(name, &["pull", "push"])))
            }
            (None, Some((user, password))) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            (None, None) => None,
        };
        let mut all = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("Authorization", auth));
        }
        exchange(self.port, method, path, &all, body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Docker config directory whose `config.json` has `user:password` for `host`
/// as `auths.<host>.auth` (base64), the form `docker login` writes.
pub fn docker_config_with(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("flowgate-docker-config-").tempdir().expect("temp dir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write config.json");
    dir
}

/// `sha256:<hex>` of `bytes`, as registries name manifests and blobs.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_of(&Sha256::digest(bytes)))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An htpasswd file with one bcrypt entry (the registry accepts no other hash).
fn write_htpasswd(path: &Path, user: &str, password: &str) -> std::io::Result<()> {
    let output = Command::new("htpasswd").args(["-nbB", user, password]).output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "`htpasswd -nbB` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    std::fs::write(path, output.stdout)
}

/// Why the registry could not start, with what provides the missing piece.
fn missing(e: &std::io::Error) -> String {
    format!(
        "`{BINARY}` could not start a registry ({e}); scripts/test installs it (Debian package `docker-registry`) \
         and `htpasswd` (package `apache2-utils`)"
    )
}
