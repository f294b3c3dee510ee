//! Issue 17, deliverable 3: pulls from object storage. The bench tree is packed
//! and stored as frames in an S3 store (`moto_server`, the S3 server the tests
//! use), and `flowgate pull BUILD --store s3://…` runs as a worker would, through
//! the test kit's proxy delaying every request by 20 ms (a round trip to a
//! cloud region rather than to loopback). Beside it, the baseline fetches the
//! same archive as one object through the same proxy (`curl`) and unpacks it
//! with `tar -x --zstd`.
//!
//! - cold: an empty cache (no frames, nothing unpacked) against the baseline;
//! - one file away: the cache holds the frames of a build whose commit changed
//!   one file less (pulled before), so only the frames around that file are
//!   fetched, against a warm pull: the same build's frames all cached, nothing
//!   unpacked (what a fresh container with a frame cache on a volume does).
//!
//! The proxy forwards each request on a fresh connection and relays a response
//! once it has all of it, for both sides alike.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use flowgate_core::{Build, BuildId, Digest, Images};
use flowgate_store::ArtifactStore;
use flowgate_testkit::faults::{Fault, FaultProxy};
use flowgate_testkit::moto::Moto;

use crate::frames::Scratch;
use crate::report::{Row, Target};
use crate::timing::{measure_interleaved, Case, Plan};
use crate::tree::Tree;
use crate::Ctx;

const BUCKET: &str = "flowgate-bench";
const LATENCY: Duration = Duration::from_millis(20);

/// One stored build: its id and bundle digest.
struct Stored {
    id: BuildId,
    digest: Digest,
}

pub async fn run(ctx: &Ctx, tree: &Tree) -> Result<(Vec<Row>, Vec<String>)> {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let proxy =
        FaultProxy::start(&format!("127.0.0.1:{}", moto.port()), 100, 1).only(&[Fault::Latency]).with_latency(LATENCY);
    for (key, value) in [
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
    ] {
        std::env::set_var(key, value);
    }
    // Stored directly, without the delay: the setup is not measured.
    std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint());
    let url = format!("s3://{BUCKET}/store");
    let store = ArtifactStore::open(&url, &ctx.work)?;
    let scratch = Scratch::copy(tree, &ctx.work)?;
    let opts = flowgate_bundle::PackOptions::default();
    let (first, whole) = store_build(&store, &scratch, &opts, "pull-first").await?;
    upload_whole(&moto.endpoint(), &first.digest, &whole).await?;
    scratch.edit(scratch.paths.len() / 2, 1)?;
    let (second, _) = store_build(&store, &scratch, &opts, "pull-second").await?;
    let frames = |d: Digest| {
        let store = store.clone();
        async move { store.bundle_frames(&d).await.map(|f| f.unwrap_or_default()) }
    };
    let (first_frames, second_frames) = (frames(first.digest).await?, frames(second.digest).await?);
    let new: Vec<&flowgate_bundle::FrameRef> =
        second_frames.iter().filter(|f| !first_frames.iter().any(|g| g.digest == f.digest)).collect();

    let work = ctx.work.join("pull-s3");
    let caches = ["cold", "warm", "near"].map(|name| work.join(name));
    let untar = work.join("untar");
    let archive = work.join("whole.tar.zst");
    std::fs::create_dir_all(&work)?;
    let pull = |cache: &Path, build: &Stored| {
        let mut cmd = ctx.flowgate_in(&work, &["pull", build.id.as_str(), "--store", &url, "--cache"]);
        cmd.arg(cache).env("AWS_ENDPOINT_URL", proxy.url());
        cmd
    };
    // Prime the warm and near caches with every frame of the first build.
    for cache in &caches[1..] {
        let _ = std::fs::remove_dir_all(cache);
        let out = pull(cache, &first).output()?;
        ensure!(out.status.success(), "priming pull failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let proxied_object = format!("{}/{BUCKET}/whole/{}.tar.zst", proxy.url(), first.digest.to_hex());
    let runs = ctx.runs(7);
    let timings = measure_interleaved(
        Plan { warmup: 1, runs },
        vec![
            Case::new("flowgate pull, cold", || remove(&caches[0]), || pull(&caches[0], &first)),
            Case::new(
                "one GET of the archive + tar -x --zstd",
                || {
                    remove(&untar)?;
                    let _ = std::fs::remove_file(&archive);
                    Ok(std::fs::create_dir_all(&untar)?)
                },
                || {
                    let mut cmd = Command::new("sh");
                    cmd.arg("-c")
                        // Signed as flowgate's requests are (moto refuses anonymous GETs).
                        .arg(
                            "curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench -o \"$1\" \"$2\" \
                             && tar -x --zstd -f \"$1\" -C \"$3\"",
                        )
                        .arg("sh")
                        .arg(&archive)
                        .arg(&proxied_object)
                        .arg(&untar);
                    cmd
                },
            ),
            Case::new(
                "flowgate pull, one file away from a cached build",
                || {
                    remove(&caches[2].join(second.digest.to_hex()))?;
                    for frame in &new {
                        let _ = std::fs::remove_file(frame_path(&caches[2], &frame.digest));
                    }
                    Ok(())
                },
                || pull(&caches[2], &second),
            ),
            Case::new(
                "flowgate pull, warm (every frame cached)",
                || remove(&caches[1].join(first.digest.to_hex())),
                || pull(&caches[1], &first),
            ),
        ],
    )?;
    let rows = vec![
        Row::new("pull from S3 at 20 ms a request, cold", &timings[0], &timings[1], Target::Ratio(1.2)),
        Row::new("pull from S3 one file away from a cached build", &timings[2], &timings[3], Target::Ratio(3.0)),
    ];
    let notes = vec![format!(
        "pull from S3: moto_server behind the test kit's proxy (20 ms before every request); the bundle has {} \
         frames ({} bytes), the build one file away {} new frame(s); {} requests went through the proxy",
        first_frames.len(),
        first_frames.iter().map(|f| f.size).sum::<u64>(),
        new.len(),
        proxy.stats().requests
    )];
    Ok((rows, notes))
}

/// Packs the scratch tree, stores its frames and a build record; returns the
/// build and the archive file (for the baseline's whole object).
async fn store_build(
    store: &ArtifactStore,
    scratch: &Scratch,
    opts: &flowgate_bundle::PackOptions,
    author: &str,
) -> Result<(Stored, tempfile::NamedTempFile)> {
    let (packed, file) = scratch.pack(opts)?;
    store.put_bundle_frames(&packed.digest, file.path(), &packed.frames).await?;
    let images = Images::default();
    let build = Build {
        id: Build::derive_id(&packed.digest, &images, &Default::default()),
        bundle: packed.digest,
        bundle_size: packed.size,
        file_count: scratch.paths.len() as u64,
        images,
        commit: "0".repeat(40),
        branch: Some("main".into()),
        dirty: false,
        author: author.into(),
        created_at: chrono::Utc::now(),
        settings: None,
    };
    store.put_build(&build).await?;
    Ok((Stored { id: build.id, digest: packed.digest }, file))
}

/// The baseline's object: the same archive, whole.
async fn upload_whole(endpoint: &str, digest: &Digest, file: &tempfile::NamedTempFile) -> Result<()> {
    let url = format!("{endpoint}/{BUCKET}/whole/{}.tar.zst", digest.to_hex());
    let body = tokio::fs::read(file.path()).await?;
    let answer = reqwest::Client::new().put(&url).body(body).send().await.context("Failed to reach moto_server")?;
    ensure!(answer.status().is_success(), "PUT {url}: {}", answer.status());
    Ok(())
}

fn frame_path(cache: &Path, digest: &Digest) -> PathBuf {
    cache.join(".frames").join(format!("{}.zst", digest.to_hex()))
}

fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
