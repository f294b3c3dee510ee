//! `flowgate serve`: an HTTP API over one ledger database, for every project
//! in it. It reads the ledger, records approvals and pins and registers
//! builds, and moves the pointers of the envs it protects (syncing their
//! Prefect servers with credentials only it holds), as the verified caller,
//! and drives their rollouts (replicas sharing a ledger take turns by lease). Every request gets an id (the `x-request-id` response header, and
//! the `request_id` of an error body); every route but the health check needs
//! an API token whose grants allow it.

mod auth;
mod body;
mod build_routes;
pub mod config;
mod error;
mod ledger_routes;
mod maintenance_routes;
mod move_routes;
pub mod notify;
mod oidc;
mod openapi;
mod pages;
mod rollout_driver;
mod rollout_routes;
mod routes;
mod sync_routes;
mod write_routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use flowgate_config::EnvConfig;
use flowgate_core::AccessRule;
use flowgate_ledger::LedgerDatabase;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{new_secret, secret_hash};
pub use build_routes::{Registered, StoredBundle};
pub use oidc::OidcVerifier;
pub use rollout_driver::default_replica_name;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub database: Arc<LedgerDatabase>,
    /// The OpenID Connect issuers whose ID tokens are accepted.
    pub oidc: Arc<Vec<OidcVerifier>>,
    /// The roles those identities get.
    pub access: Arc<Vec<AccessRule>>,
    /// Single sign-on for the dashboard through a trusted reverse proxy.
    pub sso: Option<Arc<config::SsoConfig>>,
    /// The artifact store builds are registered into (each project under
    /// `ARTIFACTS/PROJECT`); None: builds are registered in direct mode only.
    pub artifacts: Option<String>,
    /// What relative store paths are relative to.
    pub base_dir: std::path::PathBuf,
    /// The largest bundle upload taken, in bytes.
    pub bundle_limit: u64,
    /// Whether the dashboard's session cookie is marked `Secure` (not when
    /// the server listens on loopback, where a browser reaches it over plain HTTP).
    pub secure_cookies: bool,
    /// Each project's protected envs: the only envs this server moves.
    pub protected: Arc<BTreeMap<String, Vec<EnvConfig>>>,
    /// This replica's name in rollout leases.
    pub replica: Arc<str>,
    /// Woken when a rollout starts, so a replica drives it without waiting a tick.
    pub rollouts_changed: Arc<tokio::sync::Notify>,
}

/// A request's id: 16 random bytes in hex, made when the request arrives.
#[derive(Debug, Clone, Default)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> Self {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            // An id finds log lines and is no secret: the time and a counter will do.
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            return Self(format!("{:x}-{n}", chrono::Utc::now().timestamp_micros()));
        }
        Self(hex::encode(bytes))
    }
}

/// Every route with its OpenAPI description: the one list of what is served.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::health))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(routes::whoami))
        .routes(routes!(routes::projects))
        .routes(routes!(routes::status))
        .routes(routes!(ledger_routes::history))
        .routes(routes!(ledger_routes::diff))
        .routes(routes!(ledger_routes::builds, build_routes::register))
        .routes(routes!(ledger_routes::build))
        .routes(routes!(ledger_routes::shown))
        .routes(routes!(write_routes::approve))
        .routes(routes!(write_routes::pins, write_routes::pin))
        .routes(routes!(write_routes::unpin))
        .routes(routes!(build_routes::put_bundle))
        .routes(routes!(build_routes::provenance))
        .routes(routes!(move_routes::release))
        .routes(routes!(move_routes::promote))
        .routes(routes!(move_routes::rollback))
        .routes(routes!(sync_routes::plan))
        .routes(routes!(sync_routes::sync))
        .routes(routes!(sync_routes::matrix))
        .routes(routes!(sync_routes::which))
        .routes(routes!(rollout_routes::start))
        .routes(routes!(rollout_routes::current))
        .routes(routes!(rollout_routes::abort))
        .routes(routes!(maintenance_routes::gc))
        .routes(routes!(maintenance_routes::fsck))
}

pub fn router(state: AppState) -> Router {
    let (routes, _document) = api_router().split_for_parts();
    routes
        .merge(pages::router(&state))
        .fallback(routes::no_such_route)
        .layer(axum::extract::DefaultBodyLimit::max(body::BODY_LIMIT))
        .layer(axum::middleware::from_fn(with_request_id))
        .with_state(state)
}

/// Gives the request its id, logs it with its outcome (never its headers:
/// they carry the credential) and returns the id in `x-request-id`.
async fn with_request_id(mut request: Request, next: Next) -> Response {
    let id = RequestId::new();
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    tracing::info!(request_id = %id.0, %method, %path, status = response.status().as_u16(), "request");
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Serves `state` on `listen` until SIGINT or SIGTERM; prints the bound
/// address first (`listening on http://ADDR`), so port 0 can be used.
pub async fn serve(listen: SocketAddr, state: AppState, notifier: Option<notify::Notifier>) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("Failed to listen on `{listen}`"))?;
    let bound = listener.local_addr().context("Failed to read the bound address")?;
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{bound}")?;
        stdout.flush()?;
    }
    if !state.protected.is_empty() {
        tokio::spawn(rollout_driver::drive_forever(state.clone()));
    }
    if let Some(notifier) = notifier {
        tokio::spawn(notify::deliver_forever(notifier));
    }
    // The peer's address tells a trusted single sign-on proxy from anyone else.
    let service = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown()).await.context("The server failed")?;
    Ok(())
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
