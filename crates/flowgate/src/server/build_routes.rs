//! Registering a build through the server, in two requests: the bundle's
//! bytes (`PUT .../bundles/DIGEST`), streamed to a temp file while they are
//! hashed, bounded, checked against DIGEST and read back as a flowgate bundle
//! before anything is stored; then the build record (`POST .../builds`), whose
//! id must be the one its content derives and whose bundle must be stored.
//! The server records who registered it, as verified: a CI job's claims are
//! the build's provenance.

use std::io::Write as _;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;
use flowgate_core::{Build, Digest, Provenance, Role};
use flowgate_store::ArtifactStore;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Identity};
use super::body::ApiJson;
use super::error::{ApiError, ErrorBody};
use super::ledger_routes::{one_build, readable_project, BuildRef};
use super::AppState;

/// What the server did with an uploaded bundle.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StoredBundle {
    #[schema(value_type = String)]
    pub digest: Digest,
    pub size: u64,
    pub file_count: u64,
    /// False when the store had it already.
    pub uploaded: bool,
}

/// Uploads a bundle (`tar.zst`, as `flowgate build` packs it) for a build to
/// be registered. The body is streamed, bounded by the server's
/// `bundle_limit` and hashed: stored only when it hashes to DIGEST and reads
/// as a flowgate bundle. Needs `releaser` on at least one env.
#[utoipa::path(
    put, path = "/api/v1/projects/{project}/bundles/{digest}", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("digest" = String, Path, description = "The bundle's BLAKE3 digest, 64 hex characters"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = OK, body = StoredBundle),
        (status = BAD_REQUEST, body = ErrorBody, description = "A malformed digest, a body that hashes to another, or no bundle"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on any env"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project, or the server has no artifact store"),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody, description = "A body over the server's bundle limit"),
    ),
)]
pub async fn put_bundle(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, digest)): Path<(String, String)>,
    body: Body,
) -> Result<Json<StoredBundle>, ApiError> {
    let id = caller.request_id.clone();
    readable_project(&caller, &state, &project).await?;
    caller.require_somewhere(Role::Releaser)?;
    let expected: Digest = digest.parse().map_err(|e| ApiError::bad_request(id.clone(), format!("digest: {e}")))?;
    let store = project_store(&caller, &state, &project)?;
    let (file, actual, size) = receive(&caller, body, state.bundle_limit).await?;
    if actual != expected {
        return Err(ApiError::bad_request(
            id,
            format!("the body hashes to `{actual}`, not `{expected}`: nothing was stored"),
        ));
    }
    let path = file.path().to_path_buf();
    let manifest = tokio::task::spawn_blocking(move || {
        flowgate_bundle::read_manifest(&path, &expected, &flowgate_bundle::Limits::default())
    })
    .await
    .map_err(|e| ApiError::internal(id.clone(), &e.into()))?
    .map_err(|e| ApiError::bad_request(id.clone(), format!("the body is not a flowgate bundle: {e}")))?;
    // The manifest first, as `flowgate build` stores it: a stored bundle proves its manifest is there.
    store.put_manifest(&expected, &manifest).await.map_err(|e| ApiError::internal(id.clone(), &e.into()))?;
    let upload =
        store.put_bundle(&expected, file.path()).await.map_err(|e| ApiError::internal(id.clone(), &e.into()))?;
    Ok(Json(StoredBundle {
        digest: expected,
        size,
        file_count: manifest.files.len() as u64,
        uploaded: upload.is_created(),
    }))
}

/// The body into a temp file, hashed as it arrives; 413 past `limit` bytes.
async fn receive(caller: &Caller, body: Body, limit: u64) -> Result<(tempfile::NamedTempFile, Digest, u64), ApiError> {
    let id = &caller.request_id;
    let failed =
        |e: std::io::Error| ApiError::internal(id.clone(), &anyhow::Error::from(e).context("spool the bundle"));
    let mut file = tempfile::NamedTempFile::new().map_err(failed)?;
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(id.clone(), format!("the body was cut off: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::payload_too_large(id.clone(), limit as usize));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(failed)?;
    }
    file.flush().map_err(failed)?;
    Ok((file, Digest::from_bytes(*hasher.finalize().as_bytes()), size))
}

/// `flowgate build --json`'s build, as the server recorded it, with every
/// verified registration of it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub build: Build,
    /// False when the ledger had this build already (its first record stays).
    pub recorded: bool,
    pub provenance: Vec<Provenance>,
}

/// `POST .../builds`: the build record `flowgate build` made.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    build: Build,
}

/// Registers a build whose bundle the store holds. Its id must be the one its
/// bundle, images and settings derive; the server sets its time, and records
/// the verified caller as its provenance. Needs `releaser` on at least one env.
#[utoipa::path(
    post, path = "/api/v1/projects/{project}/builds", security(("api_token" = [])),
    params(("project" = String, Path, description = "The project's name")),
    request_body = RegisterRequest,
    responses(
        (status = OK, body = Registered),
        (status = BAD_REQUEST, body = ErrorBody, description = "A build whose id, bundle or file count does not hold, named"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = FORBIDDEN, body = ErrorBody, description = "No `releaser` right on any env"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project, or the server has no artifact store"),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody, description = "A body over 64 KiB"),
    ),
)]
pub async fn register(
    caller: Caller,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(asked): ApiJson<RegisterRequest>,
) -> Result<Json<Registered>, ApiError> {
    let id = caller.request_id.clone();
    let ledger = readable_project(&caller, &state, &project).await?;
    caller.require_somewhere(Role::Releaser)?;
    let store = project_store(&caller, &state, &project)?;
    let mut build = asked.build;
    let refused = |why: String| ApiError::bad_request(id.clone(), format!("build `{}`: {why}", build.id));
    let Some(settings) = &build.settings else {
        return Err(refused("it carries no deployment settings; build it with this flowgate".into()));
    };
    let derived = Build::derive_id(&build.bundle, &build.images, settings);
    if derived != build.id {
        return Err(refused(format!("its bundle, images and settings give the id `{derived}`")));
    }
    if build.commit.len() < 40 || !build.commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refused(format!("commit `{}` is not a full commit sha", build.commit)));
    }
    // A CI job registers only what it built: the commit its verified `sha`
    // names. So a registration's claims say which ref built this code.
    if let Identity::Oidc(job) = &caller.identity {
        if let Some(sha) = job.claims.get("sha").filter(|sha| **sha != build.commit) {
            return Err(ApiError::forbidden(
                id.clone(),
                format!(
                    "`{}` is a CI job of commit `{sha}`: it may not register a build of commit `{}`",
                    caller.subject, build.commit
                ),
            ));
        }
    }
    let internal = |e: flowgate_store::StoreError| ApiError::internal(id.clone(), &e.into());
    match store.bundle_size(&build.bundle).await.map_err(internal)? {
        Some(size) if size == build.bundle_size => {}
        Some(size) => return Err(refused(format!("its bundle is {size} bytes, not {}", build.bundle_size))),
        None => {
            return Err(refused(format!(
                "bundle `{}` is not stored: upload it first (PUT /api/v1/projects/{project}/bundles/{})",
                build.bundle, build.bundle
            )))
        }
    }
    let files = store.manifest(&build.bundle).await.map_err(internal)?.files.len() as u64;
    if files != build.file_count {
        return Err(refused(format!("its bundle holds {files} files, not {}", build.file_count)));
    }
    build.created_at = Utc::now();
    // The store's record first, as `flowgate build` writes it: a build the
    // ledger knows must be pullable by id on a worker.
    store.put_build(&build).await.map_err(internal)?;
    let ledger_failed = |e: flowgate_ledger::LedgerError| ApiError::internal(id.clone(), &e.into());
    let recorded = ledger.record_build(build).await.map_err(ledger_failed)?;
    ledger.record_provenance(&recorded.build.id, &caller.verified()).await.map_err(ledger_failed)?;
    let provenance = ledger.provenance(&recorded.build.id).await.map_err(ledger_failed)?;
    Ok(Json(Registered { build: recorded.build, recorded: recorded.created, provenance }))
}

/// Every verified registration of a build, oldest first: who registered it
/// through the server, and for a CI job its repository, ref and sha.
#[utoipa::path(
    get, path = "/api/v1/projects/{project}/builds/{build}/provenance", security(("api_token" = [])),
    params(
        ("project" = String, Path, description = "The project's name"),
        ("build" = String, Path, description = "A build id or a unique prefix of it"),
    ),
    responses(
        (status = OK, body = Vec<Provenance>, description = "Empty for a build registered in direct mode"),
        (status = BAD_REQUEST, body = ErrorBody, description = "A prefix that is too short or matches several builds"),
        (status = UNAUTHORIZED, body = ErrorBody, description = "No valid API token"),
        (status = NOT_FOUND, body = ErrorBody, description = "No such project, or no such build in it"),
    ),
)]
pub async fn provenance(
    caller: Caller,
    State(state): State<AppState>,
    Path((project, build)): Path<(String, String)>,
) -> Result<Json<Vec<Provenance>>, ApiError> {
    let ledger = readable_project(&caller, &state, &project).await?;
    let build = one_build(&caller, ledger.as_ref(), &project, &build, BuildRef::IdOnly).await?;
    let provenance =
        ledger.provenance(&build.id).await.map_err(|e| ApiError::internal(caller.request_id.clone(), &e.into()))?;
    Ok(Json(provenance))
}

/// The project's artifact store: `ARTIFACTS/PROJECT` under the server's
/// `--artifacts` (each project its own prefix, so one project's gc never
/// removes what another's builds need); 404 when the server has none.
fn project_store(caller: &Caller, state: &AppState, project: &str) -> Result<ArtifactStore, ApiError> {
    let Some(base) = &state.artifacts else {
        return Err(ApiError::not_found(
            caller.request_id.clone(),
            "this server has no artifact store (`--artifacts URL` or `artifacts =`): builds are registered in direct mode"
                .into(),
        ));
    };
    let failed = |e: anyhow::Error| ApiError::internal(caller.request_id.clone(), &e);
    // A local store's project directory is made on first use (an absolute
    // `file://` store must exist, so a mistyped path is not created).
    if let Some(root) = ArtifactStore::open(base, &state.base_dir).map_err(|e| failed(e.into()))?.local_root() {
        let dir = root.join(project);
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed(anyhow::Error::from(e).context(format!("create `{}`", dir.display()))))?;
    }
    ArtifactStore::open(&project_store_url(base, project), &state.base_dir).map_err(|e| failed(e.into()))
}

/// The project's part of the server's store for reading (nothing is made):
/// `None` when the server has no store.
pub fn readable_store(caller: &Caller, state: &AppState, project: &str) -> Result<Option<ArtifactStore>, ApiError> {
    let Some(base) = &state.artifacts else { return Ok(None) };
    let store = ArtifactStore::open(&project_store_url(base, project), &state.base_dir)
        .map_err(|e| ApiError::internal(caller.request_id.clone(), &e.into()))?;
    Ok(Some(store))
}

/// `BASE/PROJECT`, keeping a query string (`s3://b/p?endpoint=...`) at the end.
pub fn project_store_url(base: &str, project: &str) -> String {
    let (path, query) = base.split_once('?').map_or((base, None), |(p, q)| (p, Some(q)));
    let joined = format!("{}/{project}", path.trim_end_matches('/'));
    match query {
        Some(query) => format!("{joined}?{query}"),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::project_store_url;

    #[test]
    fn each_project_gets_a_prefix_of_the_servers_store() {
        assert_eq!(project_store_url("file:///srv/artifacts/", "alpha"), "file:///srv/artifacts/alpha");
        assert_eq!(
            project_store_url("s3://bucket/fg?endpoint=http://x", "alpha"),
            "s3://bucket/fg/alpha?endpoint=http://x"
        );
    }
}
