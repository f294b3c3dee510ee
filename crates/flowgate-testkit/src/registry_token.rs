//! The token server of a registry behind bearer-token auth (the scheme of
//! Docker Hub, GHCR and most hosted registries): a self-signed certificate
//! made by `openssl`, which the registry trusts (`rootcertbundle`), and a
//! `/token` endpoint on 127.0.0.1 that checks Basic credentials and answers
//! with a JWT signed by that certificate's key, granting the scope asked.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The `service` the registry names in its challenges and expects as audience.
pub const SERVICE: &str = "flowgate-test-registry";
/// The issuer the registry trusts.
pub const ISSUER: &str = "flowgate-test-token-issuer";

/// A running token server; its thread ends with the test process.
#[derive(Debug)]
pub struct TokenServer {
    port: u16,
    shared: Arc<Shared>,
    cert_path: PathBuf,
}

#[derive(Debug)]
struct Shared {
    private_pem: Vec<u8>,
    /// The certificate, DER in standard base64, for the tokens' `x5c` header.
    cert_der: String,
    /// `user:password` the token endpoint requires.
    credentials: (String, String),
    requests: AtomicUsize,
}

impl TokenServer {
    /// Makes a key and a self-signed certificate in `dir` and serves tokens to
    /// clients presenting `user`/`password`.
    pub fn start(dir: &Path, user: &str, password: &str) -> Self {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        let der = dir.join("token-cert.der");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=flowgate-test-token",
            "-keyout",
            path(&key),
            "-out",
            path(&cert),
        ]);
        openssl(&["x509", "-in", path(&cert), "-outform", "DER", "-out", path(&der)]);
        let shared = Arc::new(Shared {
            private_pem: std::fs::read(&key).expect("token key"),
            cert_der: base64::engine::general_purpose::STANDARD.encode(std::fs::read(&der).expect("certificate")),
            credentials: (user.to_string(), password.to_string()),
            requests: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let port = listener.local_addr().expect("address").port();
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(&serving, stream);
            }
        });
        Self { port, shared, cert_path: cert }
    }

    /// The realm the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry verifies tokens with.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// How many token requests arrived, answered or refused.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// A token granting `actions` on `repository` (none for the API root).
    pub fn mint(&self, repository: Option<&str>, actions: &[&str]) -> String {
        mint(&self.shared, repository, actions)
    }
}

fn mint(shared: &Shared, repository: Option<&str>, actions: &[&str]) -> String {
    let now = crate::oidc::now();
    let access: Vec<Value> =
        repository.map(|name| json!({"type": "repository", "name": name, "actions": actions})).into_iter().collect();
    let claims = json!({
        "iss": ISSUER, "sub": shared.credentials.0, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("token-{now}-{}", shared.requests.load(Ordering::SeqCst)),
        "access": access,
    });
    // The registry verifies the signature with the key of the `x5c` chain,
    // which must lead to a certificate of its `rootcertbundle`.
    let mut header = Header::new(Algorithm::RS256);
    header.x5c = Some(vec![shared.cert_der.clone()]);
    let key = EncodingKey::from_rsa_pem(&shared.private_pem).expect("the generated key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// Answers one `GET /token?service=…&scope=repository:NAME:ACTIONS`.
fn answer(shared: &Shared, mut stream: TcpStream) {
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut header = String::new();
    let mut basic = None;
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                basic = value.trim().strip_prefix("Basic ").map(str::to_string);
            }
        }
        header.clear();
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let (user, password) = &shared.credentials;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if basic.as_deref() != Some(expected.as_str()) {
        ("401 Unauthorized", json!({"details": "incorrect username or password"}))
    } else {
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let scope = query.split('&').find_map(|pair| pair.strip_prefix("scope=")).map(percent_decode);
        // `repository:NAME:pull,push`; NAME may hold `/` but not `:`.
        let granted = scope.as_deref().and_then(|s| s.strip_prefix("repository:")).and_then(|s| s.rsplit_once(':'));
        let token = match granted {
            Some((name, actions)) => mint(shared, Some(name), &actions.split(',').collect::<Vec<_>>()),
            None => mint(shared, None, &[]),
        };
        ("200 OK", json!({ "token": token }))
    };
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("Failed to run `openssl` ({e}); install Debian's `openssl`"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
