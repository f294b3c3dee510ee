//! OpenID Connect identities on `flowgate serve`, against a real local issuer
//! (flowgate_testkit::oidc: keys made by openssl, discovery and JWKS served on
//! 127.0.0.1, tokens with GitHub Actions' claims). A verified job gets the
//! roles of the access rules its claims match; every forgery is 401 with the
//! one answer a missing credential gets.

mod common;

use base64::Engine as _;
use common::server::Server;
use flowgate_testkit::oidc::{now, Issuer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const AUDIENCE: &str = "flowgate-test";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The server's config: the issuer, and two rules for `acme/flows`.
fn config(dir: &std::path::Path, issuer: &str) -> String {
    let path = dir.join("server.toml");
    let text = format!(
        "ledger = \"sqlite://{}\"\n\n[[oidc]]\nissuer = \"{issuer}\"\naudience = \"{AUDIENCE}\"\n\n\
         [[access]]\nissuer = \"{issuer}\"\nclaims = {{ repository = \"acme/flows\", ref = \"refs/heads/main\" }}\n\
         roles = [\"releaser:prod\", \"viewer\"]\n\n\
         [[access]]\nissuer = \"{issuer}\"\nclaims = {{ repository = \"acme/flows\" }}\nroles = [\"releaser:qa\"]\n",
        dir.join("ledger.db").display()
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The 401 body without its request id, which differs per request.
fn refusal(server: &Server, token: Option<&str>, case: &str) -> Value {
    refusal_with_id(server, token, case).0
}

/// The 401 body without its request id, and that id.
fn refusal_with_id(server: &Server, token: Option<&str>, case: &str) -> (Value, String) {
    let (status, mut body) = server.get("/api/v1/whoami", token);
    assert_eq!(status, 401, "{case}: {body}");
    let id = body["error"]["request_id"].as_str().expect("a request id").to_string();
    body["error"]["request_id"] = Value::Null;
    (body, id)
}

#[test]
fn a_verified_job_gets_the_roles_its_claims_match_and_every_forgery_is_refused() {
    let issuer = Issuer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--config", &config(dir.path(), issuer.url())]);
    let main = issuer.github_claims(AUDIENCE, "acme/flows", "refs/heads/main", SHA);

    // A job on main: its verified claims are its identity, two rules match.
    let (status, me) = server.get("/api/v1/whoami", Some(&issuer.mint(&main)));
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["kind"].as_str(), me["issuer"].as_str()), (Some("oidc"), Some(issuer.url())), "{me}");
    assert_eq!(me["subject"], "repo:acme/flows:ref:refs/heads/main");
    for (claim, value) in [("repository", "acme/flows"), ("ref", "refs/heads/main"), ("sha", SHA), ("run_id", "4242")] {
        assert_eq!(me["claims"][claim], value, "{me}");
    }
    assert_eq!(me["grants"], json!(["releaser:prod", "viewer", "releaser:qa"]));
    // A feature branch of the same repository: the qa rule only.
    let feature = issuer.github_claims(AUDIENCE, "acme/flows", "refs/heads/feature/x", SHA);
    let (_, me) = server.get("/api/v1/whoami", Some(&issuer.mint(&feature)));
    assert_eq!(me["grants"], json!(["releaser:qa"]), "{me}");
    // Another repository: verified, but no rule gives it a role.
    let other = issuer.github_claims(AUDIENCE, "acme/other", "refs/heads/main", SHA);
    let other = issuer.mint(&other);
    assert_eq!(server.get("/api/v1/whoami", Some(&other)).1["grants"], json!([]));
    let (status, body) = server.get("/api/v1/projects", Some(&other));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`viewer`"), "{body}");

    // Every forgery is the answer to no credential at all.
    let baseline = refusal(&server, None, "no credential");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = main.clone();
        edit(&mut claims);
        claims
    };
    let expired = with(&|c| {
        c["exp"] = json!(now() - 600);
        c["nbf"] = json!(now() - 1200);
        c["iat"] = json!(now() - 1200);
    });
    let not_yet = with(&|c| c["nbf"] = json!(now() + 600));
    let wrong_audience = with(&|c| c["aud"] = json!("another-service"));
    let wrong_issuer = with(&|c| c["iss"] = json!(format!("{}/other", issuer.url())));
    let good = issuer.mint(&main);
    let segments: Vec<&str> = good.split('.').collect();
    let header_none = b64(json!({"alg": "none", "typ": "JWT", "kid": issuer.kid()}).to_string().as_bytes());
    let alg_none = format!("{header_none}.{}.", segments[1]);
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(issuer.kid());
    let with_public_key = EncodingKey::from_secret(&issuer.public_key_pem()).unwrap();
    let hmac_with_public_key = jsonwebtoken::encode(&hs256, &main, &with_public_key).unwrap();
    let promoted = with(&|c| c["repository"] = json!("acme/flows-admin"));
    let tampered = format!("{}.{}.{}", segments[0], b64(promoted.to_string().as_bytes()), segments[2]);
    // (case, token, why the server's debug log says it was refused)
    let cases = [
        ("expired", issuer.mint(&expired), "ExpiredSignature"),
        ("not yet valid", issuer.mint(&not_yet), "ImmatureSignature"),
        ("wrong audience", issuer.mint(&wrong_audience), "InvalidAudience"),
        ("wrong issuer", issuer.mint(&wrong_issuer), "no [[oidc]] entry trusts its issuer"),
        ("unknown key id", issuer.mint_naming(&main, "key-unknown"), "publishes no key `key-unknown`"),
        ("alg none", alg_none, "unknown variant `none`"),
        ("HS256 signed with the public key", hmac_with_public_key, "HS256 is not accepted"),
        ("tampered payload", tampered, "InvalidSignature"),
    ];
    for (case, token, why) in &cases {
        let (body, id) = refusal_with_id(&server, Some(token), case);
        assert_eq!(body, baseline, "{case}");
        let log = server.log();
        let line = log.lines().find(|l| l.contains(&id) && l.contains("ID token refused"));
        assert!(line.is_some_and(|l| l.contains(why)), "{case}: refused, but not because {why}: {line:?}");
    }
    assert_eq!(refusal(&server, Some("ey.not.a-token"), "not a token"), baseline);

    // Forged key ids do not make the server hammer the issuer.
    let fetches = issuer.jwks_fetches();
    for n in 0..10 {
        refusal(&server, Some(&issuer.mint_naming(&main, &format!("forged-{n}"))), "forged key id");
    }
    assert!(issuer.jwks_fetches() <= fetches + 1, "{} fetches for 10 forged key ids", issuer.jwks_fetches() - fetches);

    // The issuer rotates its key: new tokens verify once the server refetches
    // (an unknown key id refetches at most every 5 s); the old key is gone.
    let old = issuer.mint(&main);
    issuer.rotate();
    std::thread::sleep(std::time::Duration::from_millis(5_200));
    let (status, me) = server.get("/api/v1/whoami", Some(&issuer.mint(&main)));
    assert_eq!(status, 200, "a token of the new key: {me}");
    assert_eq!(refusal(&server, Some(&old), "the rotated-out key"), baseline);

    // No token, forged or good, reaches the server's log, even at -vvv.
    let log = server.log();
    assert!(log.contains("request"), "the server logged nothing:\n{log}");
    let mut every: Vec<(&str, String)> = cases.iter().map(|(case, token, _)| (*case, token.clone())).collect();
    every.extend([("good", good.clone()), ("old", old.clone())]);
    for (case, token) in &every {
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(!log.contains(token.as_str()), "{case}: the token is in the log");
        assert!(signature.len() < 16 || !log.contains(signature), "{case}: its signature is in the log");
    }
}

#[test]
fn a_bad_server_config_is_exit_2_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    let cases = [
        ("ledger = \"sqlite://x.db\"\nlisten = \"nowhere\"\n", "listen"),
        (
            "ledger = \"sqlite://x.db\"\n[[oidc]]\nissuer = \"http://ci.example\"\naudience = \"a\"\n",
            "http://ci.example",
        ),
        ("[[oidc]]\nissuer = \"https://ci.example\"\naudience = \"a\"\n", "needs a ledger"),
    ];
    for (text, needle) in cases {
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(common::bin())
            .args(["serve", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(needle), "{text}: missing {needle}: {stderr}");
    }
}

/// `flowgate whoami --server URL --json` as a CI job would run it: no stored
/// login, no credential of the machine running the tests, and `vars` set.
fn whoami_in_a_job(url: &str, vars: &[(&str, &str)]) -> flowgate_testkit::Run {
    let mut command = std::process::Command::new(common::bin());
    command.args(["whoami", "--server", url, "--json"]).env("XDG_CONFIG_HOME", "/nonexistent");
    for name in ["FLOWGATE_TOKEN", "FLOWGATE_ID_TOKEN", "FLOWGATE_OIDC_AUDIENCE", "ACTIONS_ID_TOKEN_REQUEST_URL"] {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied());
    flowgate_testkit::Run::from_output(command.output().expect("run flowgate"))
}

#[test]
fn a_ci_job_is_the_cli_credential_with_its_own_id_token() {
    let issuer = Issuer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--config", &config(dir.path(), issuer.url())]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let claims = issuer.github_claims("set-per-request", "acme/flows", "refs/heads/main", SHA);
    let request_url = issuer.serve_job_tokens("job-request-token", claims.clone());
    let github = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", request_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "job-request-token"),
        ("FLOWGATE_OIDC_AUDIENCE", AUDIENCE),
    ];

    // GitHub Actions: the CLI asks the job's token for the server's audience.
    let me = whoami_in_a_job(&url, &github).success().json();
    assert_eq!(
        (me["kind"].as_str(), me["subject"].as_str()),
        (Some("oidc"), Some("repo:acme/flows:ref:refs/heads/main"))
    );
    assert_eq!(me["grants"], json!(["releaser:prod", "viewer", "releaser:qa"]), "{me}");

    // Asked for the default audience `flowgate`, which this server does not
    // take: the server refuses it, exit 3.
    let refused = whoami_in_a_job(&url, &github[..2]).expect_code(3);
    assert!(refused.stderr.contains("refused the credential"), "{}", refused.stderr);
    // A request token GitHub does not know: exit 3 saying what the job needs.
    let wrong = [github[0], ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "forged"), github[2]];
    let refused = whoami_in_a_job(&url, &wrong).expect_code(3);
    for needle in ["GitHub Actions gave no ID token", "`flowgate-test`", "id-token: write", "401"] {
        assert!(refused.stderr.contains(needle), "missing {needle}: {}", refused.stderr);
    }
    assert!(!refused.stderr.contains("forged"), "the request token is printed: {}", refused.stderr);

    // GitLab CI: the token the job declared under `id_tokens:`.
    let mut gitlab_claims = claims;
    gitlab_claims["aud"] = json!(AUDIENCE);
    let gitlab = issuer.mint(&gitlab_claims);
    let me = whoami_in_a_job(&url, &[("FLOWGATE_ID_TOKEN", gitlab.as_str())]).success().json();
    assert_eq!(me["kind"], "oidc", "{me}");

    // FLOWGATE_TOKEN wins over the job's token, even when it is refused.
    let bad = format!("fgt_{}", "2".repeat(64));
    whoami_in_a_job(&url, &[("FLOWGATE_ID_TOKEN", gitlab.as_str()), ("FLOWGATE_TOKEN", bad.as_str())]).expect_code(3);
    // Outside CI and without a login: exit 3 naming every way to give one.
    let none = whoami_in_a_job(&url, &[]).expect_code(3);
    for needle in ["FLOWGATE_TOKEN", "FLOWGATE_ID_TOKEN", "id-token: write", "flowgate login"] {
        assert!(none.stderr.contains(needle), "missing {needle}: {}", none.stderr);
    }
}

#[test]
fn jobs_arriving_at_once_on_a_cold_key_cache_cause_one_key_fetch() {
    let issuer = Issuer::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--config", &config(dir.path(), issuer.url())]);
    let token = issuer.mint(&issuer.github_claims(AUDIENCE, "acme/flows", "refs/heads/main", SHA));
    let before = issuer.jwks_fetches();
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..16).map(|_| scope.spawn(|| server.get("/api/v1/whoami", Some(&token)).0)).collect();
        for call in calls {
            assert_eq!(call.join().unwrap(), 200);
        }
    });
    assert_eq!(issuer.jwks_fetches() - before, 1, "16 requests at once on an empty key cache");
}
