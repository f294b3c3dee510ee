//! Fills a ledger through the public `flowgate-ledger` API with flows × envs ×
//! revisions releases: a handful of recorded builds, then one revision level at a
//! time in large `apply` batches, optionally from several writers on disjoint
//! pointers (PostgreSQL serves them concurrently; SQLite has one writer anyway).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::{TimeZone as _, Utc};
use flowgate_core::{Build, BuildId, Digest, EnvName, FlowKey, Images, Move, MoveKind};
use flowgate_ledger::Ledger;

/// The shape of a populated ledger.
#[derive(Debug, Clone, Copy)]
pub struct LedgerSpec {
    pub flows: usize,
    pub envs: usize,
    pub revisions: u32,
    pub builds: usize,
}

impl LedgerSpec {
    pub fn releases(&self) -> u64 {
        (self.flows * self.envs) as u64 * u64::from(self.revisions)
    }
}

pub fn flow_keys(n: usize) -> Vec<FlowKey> {
    (0..n).map(|i| format!("flow-{i:04}").parse().expect("a valid flow key")).collect()
}

pub fn env_names(n: usize) -> Vec<EnvName> {
    (0..n).map(|i| format!("env-{i:02}").parse().expect("a valid env name")).collect()
}

/// The builds every move points at: distinct bundles, no images.
pub fn builds(n: usize) -> Vec<Build> {
    (0..n)
        .map(|i| {
            let bundle = Digest::of(format!("flowgate-bench-bundle-{i}").as_bytes());
            let images = Images::new();
            Build {
                id: Build::derive_id(&bundle, &images, &Default::default()),
                bundle,
                bundle_size: 1_000_000 + i as u64,
                file_count: 100,
                images,
                commit: bundle.to_hex()[..40].to_string(),
                branch: Some("main".to_string()),
                dirty: false,
                author: "Bench <bench@example.invalid>".to_string(),
                created_at: Utc.timestamp_opt(1_704_067_200 + i as i64 * 3600, 0).single().expect("a valid time"),
                settings: None,
            }
        })
        .collect()
}

/// Record the builds and apply every release; returns the time it took.
pub async fn populate(ledger: Arc<dyn Ledger>, spec: LedgerSpec, writers: usize, batch: usize) -> Result<Duration> {
    let start = Instant::now();
    let builds = builds(spec.builds);
    for build in &builds {
        ledger.record_build(build.clone()).await.with_context(|| format!("Failed to record build `{}`", build.id))?;
    }
    let ids: Arc<Vec<BuildId>> = Arc::new(builds.into_iter().map(|b| b.id).collect());
    let pointers: Vec<(FlowKey, EnvName)> = env_names(spec.envs)
        .into_iter()
        .flat_map(|env| flow_keys(spec.flows).into_iter().map(move |flow| (flow, env.clone())))
        .collect();
    let writers = writers.clamp(1, pointers.len().max(1));
    let chunk = pointers.len().div_ceil(writers);
    let mut tasks = Vec::new();
    for (w, part) in pointers.chunks(chunk).enumerate() {
        let (ledger, ids, part) = (ledger.clone(), ids.clone(), part.to_vec());
        tasks.push(tokio::spawn(async move { write_part(ledger.as_ref(), &part, &ids, spec, batch, w == 0).await }));
    }
    for task in tasks {
        task.await.context("A ledger writer task panicked")??;
    }
    Ok(start.elapsed())
}

async fn write_part(
    ledger: &dyn Ledger,
    part: &[(FlowKey, EnvName)],
    ids: &[BuildId],
    spec: LedgerSpec,
    batch: usize,
    report: bool,
) -> Result<()> {
    let started = Instant::now();
    for revision in 1..=i64::from(spec.revisions) {
        let moves: Vec<Move> = part
            .iter()
            .enumerate()
            .map(|(p, (flow, env))| Move {
                flow: flow.clone(),
                env: env.clone(),
                expected: (revision > 1).then_some(revision - 1),
                build: ids[(p + revision as usize) % ids.len()].clone(),
                kind: MoveKind::Release,
                actor: "bench".to_string(),
                reason: None,
                audit: Default::default(),
            })
            .collect();
        for chunk in moves.chunks(batch.max(1)) {
            ledger.apply(chunk).await.with_context(|| format!("Failed to apply revision {revision} moves"))?;
        }
        if report && (revision % 10 == 0 || revision == i64::from(spec.revisions)) {
            eprintln!("    revision {revision}/{} ({:.1} s)", spec.revisions, started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn populates_every_pointer_to_the_last_revision() {
        let url: flowgate_ledger::LedgerUrl = "sqlite::memory:".parse().unwrap();
        let ledger: Arc<dyn Ledger> = Arc::from(
            flowgate_ledger::open(&url, std::path::Path::new("."), &flowgate_ledger::ProjectClaim::named("bench"))
                .await
                .unwrap(),
        );
        let spec = LedgerSpec { flows: 7, envs: 3, revisions: 4, builds: 3 };
        populate(ledger.clone(), spec, 2, 5).await.unwrap();
        let pointers = ledger.pointers(None).await.unwrap();
        assert_eq!(pointers.len(), 21);
        assert!(pointers.iter().all(|p| p.revision == 4), "{pointers:?}");
        let history = ledger.history(&flow_keys(7)[6], &env_names(3)[2], None).await.unwrap();
        assert_eq!(history.len(), 4);
        assert_eq!(spec.releases(), 84);
    }
}
