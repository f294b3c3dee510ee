//! Resolves a BUILD argument: a build id or unique prefix, a commit sha or
//! prefix, or a git ref resolved in the local repository.

use anyhow::Result;
use flowgate_core::Build;
use flowgate_ledger::Ledger;

use crate::exit::usage;
use crate::git::Repo;

/// Shorter hex prefixes match too much to mean anything.
const MIN_PREFIX: usize = 4;

pub async fn resolve_build(ledger: &dyn Ledger, repo: Option<&Repo>, input: &str) -> Result<Build> {
    let is_hex = !input.is_empty() && input.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex && input.len() >= MIN_PREFIX {
        let candidates = ledger.find_builds(&input.to_ascii_lowercase()).await?;
        if let Some(build) = unique(input, candidates)? {
            return Ok(build);
        }
    }
    if let Some(commit) = repo.and_then(|r| r.resolve_commit(input)) {
        let candidates = ledger.find_builds(&commit).await?;
        return unique(input, candidates)?.ok_or_else(|| {
            usage(format!(
                "No build of commit `{}` (from `{input}`); run `flowgate build` on it first",
                &commit[..12.min(commit.len())]
            ))
        });
    }
    if is_hex && input.len() < MIN_PREFIX {
        return Err(usage(format!("Build prefix `{input}` is too short; give at least {MIN_PREFIX} characters")));
    }
    Err(usage(format!("Unknown build `{input}`: no build id, commit or git ref matches it")))
}

fn unique(input: &str, mut candidates: Vec<Build>) -> Result<Option<Build>> {
    match candidates.len() {
        0 => Ok(None),
        1 => Ok(candidates.pop()),
        n => {
            let listed: Vec<String> = candidates
                .iter()
                .take(5)
                .map(|b| format!("{} (commit {}, {})", b.id, b.short_commit(), b.created_at.format("%Y-%m-%d %H:%M")))
                .collect();
            Err(usage(format!(
                "Build `{input}` is ambiguous: {n} builds match: {}; give more characters",
                listed.join(", ")
            )))
        }
    }
}
