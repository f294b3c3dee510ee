//! Projects: one database serves many repositories, each `[project] name` its
//! own rows. Opening registers the opener's claim on its name (the repository
//! it comes from) and scopes the handle to it; two repositories claiming one
//! name are told so instead of merged.

use chrono::{DateTime, Utc};
use flowgate_core::ProjectName;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::backend::Backend;
use crate::codec;
use crate::error::LedgerError;
use crate::ledger_impl::SqlLedger;
use crate::sql;

/// Who opens the ledger: the project of the current flowgate.toml, and the repository it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectClaim {
    pub name: ProjectName,
    /// The repository's first (root) commit, when known (git rev-list --max-parents=0 HEAD).
    pub root_commit: Option<String>,
    /// The `origin` remote URL, when known.
    pub remote: Option<String>,
}

impl ProjectClaim {
    /// A claim on `name` alone, without a repository: it never collides (tests,
    /// benches, and reading a project recorded by another checkout).
    ///
    /// # Panics
    /// When `name` is not a valid project name.
    pub fn named(name: &str) -> Self {
        let name = name.parse().unwrap_or_else(|e| panic!("ProjectClaim::named({name:?}): {e}"));
        Self { name, root_commit: None, remote: None }
    }
}

/// A project recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub name: ProjectName,
    pub root_commit: Option<String>,
    pub remote: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `projects` columns: root_commit, remote.
type RepositoryRow = (Option<String>, Option<String>);
/// `projects` columns: name, root_commit, remote, created_at_ms.
type ProjectRow = (String, Option<String>, Option<String>, i64);

/// What a recorded project makes of a claim on its name.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Another repository: refuse.
    Collision,
    /// The same repository (as far as anyone knows), and the record already
    /// knows everything the claim does that it could learn.
    Known,
    /// The same repository, and the claim knows what the record does not.
    Fill,
}

/// Two repositories differ when both root commits are known and differ, or,
/// when either root commit is unknown, both remotes are known and differ.
fn judge(recorded: &RepositoryRow, claim: &ProjectClaim) -> Verdict {
    let (root, remote) = recorded;
    let differ = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
    let collides = if root.is_some() && claim.root_commit.is_some() {
        differ(root, &claim.root_commit)
    } else {
        differ(remote, &claim.remote)
    };
    let learns = |recorded: &Option<String>, claimed: &Option<String>| recorded.is_none() && claimed.is_some();
    if collides {
        Verdict::Collision
    } else if learns(root, &claim.root_commit) || learns(remote, &claim.remote) {
        Verdict::Fill
    } else {
        Verdict::Known
    }
}

fn collision(recorded: RepositoryRow, claim: &ProjectClaim) -> LedgerError {
    let (recorded_root, recorded_remote) = recorded;
    LedgerError::ProjectCollision {
        name: claim.name.to_string(),
        recorded_root,
        recorded_remote,
        claimed_root: claim.root_commit.clone(),
        claimed_remote: claim.remote.clone(),
    }
}

impl<B: Backend> SqlLedger<B>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> bool: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> String: Encode<'q, B> + Decode<'q, B> + Type<B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    for<'q> Option<String>: Encode<'q, B>,
    usize: ColumnIndex<B::Row>,
    for<'n> &'n str: ColumnIndex<B::Row>,
{
    /// Registers `claim` on the migrated database behind `pool` and returns
    /// the ledger scoped to its project.
    ///
    /// In one write transaction: a name not recorded yet is recorded with the
    /// claim's repository, and if it is the first project of the database it
    /// also claims the rows from before projects (project ''); a recorded name
    /// from another repository is [`LedgerError::ProjectCollision`] and
    /// nothing is written; otherwise what the record did not know (its root
    /// commit, its remote) is filled in from the claim. A recorded name that
    /// already knows all it can learn is only read, so opening a known
    /// project never waits for a writer.
    #[tracing::instrument(level = "debug", skip_all, fields(project = %claim.name))]
    pub(crate) async fn claim(pool: Pool<B>, claim: &ProjectClaim) -> Result<Self, LedgerError> {
        let name = claim.name.as_str();
        // Recorded repositories are only ever filled in, never changed, so a
        // verdict from outside the write transaction is final, except "absent".
        let recorded: Option<RepositoryRow> = sqlx::query_as(sql::SELECT_PROJECT)
            .bind(name)
            .fetch_optional(&pool)
            .await
            .map_err(LedgerError::backend("read project"))?;
        match recorded.as_ref().map(|r| (judge(r, claim), r)) {
            Some((Verdict::Collision, r)) => return Err(collision(r.clone(), claim)),
            Some((Verdict::Known, _)) => return Ok(Self { pool, project: claim.name.clone() }),
            Some((Verdict::Fill, _)) | None => {}
        }

        let err = || LedgerError::backend("register project");
        let mut tx = B::begin_write(&pool).await?;
        if let Some(lock) = B::LOCK_FOR_CLAIM {
            sqlx::query(lock).execute(&mut *tx).await.map_err(err())?;
        }
        let recorded: Option<RepositoryRow> =
            sqlx::query_as(sql::SELECT_PROJECT).bind(name).fetch_optional(&mut *tx).await.map_err(err())?;
        match recorded {
            None => {
                let projects: i64 = sqlx::query_scalar(sql::COUNT_PROJECTS).fetch_one(&mut *tx).await.map_err(err())?;
                sqlx::query(sql::INSERT_PROJECT)
                    .bind(name)
                    .bind(&claim.root_commit)
                    .bind(&claim.remote)
                    .bind(Utc::now().timestamp_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(err())?;
                if projects == 0 {
                    for claim_unowned in sql::CLAIM_UNOWNED {
                        sqlx::query(claim_unowned).bind(name).execute(&mut *tx).await.map_err(err())?;
                    }
                    tracing::debug!(project = name, "first project: claimed the rows from before projects");
                }
            }
            Some(r) => match judge(&r, claim) {
                Verdict::Collision => {
                    tx.rollback().await.map_err(err())?;
                    return Err(collision(r, claim));
                }
                Verdict::Known => {}
                Verdict::Fill => {
                    sqlx::query(sql::FILL_PROJECT)
                        .bind(name)
                        .bind(&claim.root_commit)
                        .bind(&claim.remote)
                        .execute(&mut *tx)
                        .await
                        .map_err(err())?;
                }
            },
        }
        tx.commit().await.map_err(LedgerError::backend("commit project"))?;
        Ok(Self { pool, project: claim.name.clone() })
    }

    pub(crate) async fn read_projects(&self) -> Result<Vec<crate::ProjectRecord>, LedgerError> {
        read_projects(&self.pool).await
    }
}

/// True when `name` is recorded in the database behind `pool`: one row read,
/// for the server's lookup on every request.
pub(crate) async fn is_recorded<B: Backend>(pool: &Pool<B>, name: &ProjectName) -> Result<bool, LedgerError>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> &'q str: Encode<'q, B> + Type<B>,
    for<'q> Option<String>: Decode<'q, B> + Type<B>,
    usize: ColumnIndex<B::Row>,
{
    let recorded: Option<RepositoryRow> = sqlx::query_as(sql::SELECT_PROJECT)
        .bind(name.as_str())
        .fetch_optional(pool)
        .await
        .map_err(LedgerError::backend("read project"))?;
    Ok(recorded.is_some())
}

/// Every project recorded in the database behind `pool`, by name.
pub(crate) async fn read_projects<B: Backend>(pool: &Pool<B>) -> Result<Vec<ProjectRecord>, LedgerError>
where
    for<'c> &'c mut B::Connection: Executor<'c, Database = B>,
    for<'q> B::Arguments<'q>: IntoArguments<'q, B>,
    for<'q> i64: Decode<'q, B> + Type<B>,
    for<'q> String: Decode<'q, B> + Type<B>,
    for<'q> Option<String>: Decode<'q, B>,
    usize: ColumnIndex<B::Row>,
{
    let rows: Vec<ProjectRow> =
        sqlx::query_as(sql::SELECT_PROJECTS).fetch_all(pool).await.map_err(LedgerError::backend("list projects"))?;
    rows.into_iter()
        .map(|(name, root_commit, remote, created_at_ms)| {
            Ok(ProjectRecord {
                name: codec::parse("project", &name)?,
                root_commit,
                remote,
                created_at: codec::time(created_at_ms)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(root: Option<&str>, remote: Option<&str>) -> ProjectClaim {
        ProjectClaim {
            root_commit: root.map(Into::into),
            remote: remote.map(Into::into),
            ..ProjectClaim::named("alpha")
        }
    }

    fn row(root: Option<&str>, remote: Option<&str>) -> RepositoryRow {
        (root.map(Into::into), remote.map(Into::into))
    }

    #[test]
    fn root_commits_decide_when_both_are_known() {
        assert_eq!(judge(&row(Some("r1"), Some("x")), &claim(Some("r2"), Some("x"))), Verdict::Collision);
        // Same root, another remote (a moved repository): the same project.
        assert_eq!(judge(&row(Some("r1"), Some("x")), &claim(Some("r1"), Some("y"))), Verdict::Known);
        assert_eq!(judge(&row(Some("r1"), None), &claim(Some("r1"), Some("y"))), Verdict::Fill);
    }

    #[test]
    fn remotes_decide_when_a_root_commit_is_unknown() {
        assert_eq!(judge(&row(None, Some("x")), &claim(Some("r1"), Some("y"))), Verdict::Collision);
        assert_eq!(judge(&row(Some("r1"), Some("x")), &claim(None, Some("y"))), Verdict::Collision);
        assert_eq!(judge(&row(None, Some("x")), &claim(Some("r1"), Some("x"))), Verdict::Fill);
        assert_eq!(judge(&row(None, None), &claim(None, Some("x"))), Verdict::Fill);
        assert_eq!(judge(&row(Some("r1"), None), &claim(None, Some("x"))), Verdict::Fill);
    }

    #[test]
    fn a_claim_without_a_repository_never_collides_nor_fills() {
        for recorded in [row(None, None), row(Some("r1"), None), row(None, Some("x")), row(Some("r1"), Some("x"))] {
            assert_eq!(judge(&recorded, &claim(None, None)), Verdict::Known, "{recorded:?}");
        }
    }

    #[test]
    fn named_claims_carry_no_repository() {
        let c = ProjectClaim::named("bench");
        assert_eq!((c.name.as_str(), c.root_commit, c.remote), ("bench", None, None));
    }
}
