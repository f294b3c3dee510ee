//! The release ledger: which build each flow runs in each environment, and the
//! append-only history of every move. One trait, two backends (SQLite, the
//! embedded default, and PostgreSQL for teams), both passing one test suite.
//! One database serves many projects: every row is keyed by its project, and
//! a handle is scoped to the project it was opened for (see [`open`]).

mod backend;
mod codec;
mod codec_gates;
mod error;
mod ledger_gc;
mod ledger_impl;
mod ledger_leases;
mod ledger_moves;
mod ledger_previews;
mod ledger_provenance;
mod ledger_rollouts;
mod lock;
mod outbox;
mod postgres;
mod projects;
mod rollout;
mod sql;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod tokens;
mod url;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use flowgate_core::{
    Approval, Build, BuildId, EnvName, Event, FlowKey, Move, Pointer, ProjectName, Provenance, Release, Revision,
    Verified,
};
use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};

use crate::ledger_impl::SqlLedger;

pub use crate::error::{BoxError, LedgerError};
pub use crate::ledger_previews::PreviewRecord;
pub use crate::lock::{LockHolder, MaintenanceLock};
pub use crate::outbox::{DeliveryRecord, OutboxRecord, PendingEvent};
pub use crate::projects::{ProjectClaim, ProjectRecord};
pub use crate::rollout::{RolloutLease, RolloutRecord, RolloutStatus, UnknownRolloutStatus};
pub use crate::tokens::TokenRecord;
pub use crate::url::LedgerUrl;
pub use flowgate_core::inventory::{builds_named, Inventory, LedgerProblem, Pin, ReleaseRef};
/// gc's retention rule, pure, in the core beside the other rules.
pub use flowgate_core::retention;

/// At most this many builds come back from [`Ledger::find_builds`]: enough for a
/// caller to list the candidates of an ambiguous prefix.
pub const FIND_LIMIT: u32 = 50;

/// [`Ledger::builds_by_id`] asks for at most this many ids in one statement
/// (SQLite allows 32,766 parameters; PostgreSQL 65,535).
pub const IDS_PER_STATEMENT: usize = 500;

/// What [`Ledger::record_build`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedBuild {
    /// The build as stored: the first one recorded under its id wins.
    pub build: Build,
    /// True when this call inserted it.
    pub created: bool,
}

/// The desired state of every (flow, env) pointer and its history, of one
/// project: a handle reads and writes only the rows of [`Ledger::project`]
/// (build ids may repeat across projects; a build recorded by one project is
/// unknown to another).
///
/// Times are stored with millisecond precision: what comes back is the value
/// given, truncated to the millisecond.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// The project this handle is scoped to (the claim it was opened with).
    fn project(&self) -> &ProjectName;

    /// Every project recorded in the database, by name.
    async fn projects(&self) -> Result<Vec<ProjectRecord>, LedgerError>;

    /// Insert if absent (keyed by project and build id). Returns the stored build (the first
    /// one recorded wins: its commit, author, time) and whether it was new. Also
    /// remembers `build.commit` as a commit that produced this build id, so
    /// commit-prefix lookups find it.
    async fn record_build(&self, build: Build) -> Result<RecordedBuild, LedgerError>;

    async fn build(&self, id: &BuildId) -> Result<Option<Build>, LedgerError>;

    /// The builds among `ids` that the ledger has, sorted by id, read in one
    /// statement per [`IDS_PER_STATEMENT`] distinct ids (never one per build).
    /// With `settings` false they come without their deployment settings
    /// (`settings: None`), which are most of a build's bytes: for callers that
    /// show commits, not settings.
    async fn builds_by_id(&self, ids: &[BuildId], settings: bool) -> Result<Vec<Build>, LedgerError>;

    /// Newest first (by build time).
    async fn builds(&self, limit: u32) -> Result<Vec<Build>, LedgerError>;

    /// Builds whose id starts with `prefix`, or produced by a commit whose sha
    /// starts with `prefix` (case-insensitive); deduplicated, newest first, at
    /// most [`FIND_LIMIT`]. An empty or non-hex prefix matches nothing. Callers
    /// resolve ambiguity.
    async fn find_builds(&self, prefix: &str) -> Result<Vec<Build>, LedgerError>;

    /// Current pointers, of one env or all; ordered by (env, flow).
    async fn pointers(&self, env: Option<&EnvName>) -> Result<Vec<Pointer>, LedgerError>;

    async fn pointer(&self, flow: &FlowKey, env: &EnvName) -> Result<Option<Pointer>, LedgerError>;

    /// Apply all moves in one transaction: each compare-and-swaps its (flow, env)
    /// pointer from `mv.expected` to `mv.next_revision()` and appends a release
    /// that keeps `mv.audit` (gates, override reason, rollout id).
    /// All or nothing: a pointer not at its expected revision gives
    /// [`LedgerError::Conflict`] (with the revision found now), an unrecorded
    /// build [`LedgerError::UnknownBuild`], and nothing changes. Returns the
    /// appended releases in the order given. The moves' events (see
    /// [`flowgate_core::events::for_releases`]) are written to the outbox in
    /// the same transaction.
    async fn apply(&self, moves: &[Move]) -> Result<Vec<Release>, LedgerError>;

    /// Releases of one pointer, newest first; `limit` None = all.
    async fn history(&self, flow: &FlowKey, env: &EnvName, limit: Option<u32>) -> Result<Vec<Release>, LedgerError>;

    /// The whole history in `env` of each of `flows` (as [`Ledger::history`]
    /// gives it), read in one statement per [`IDS_PER_STATEMENT`] flows; a
    /// flow never released there is absent.
    async fn histories(&self, flows: &[FlowKey], env: &EnvName)
        -> Result<BTreeMap<FlowKey, Vec<Release>>, LedgerError>;

    /// Records that each `(flow, revision)` of `env` now is on that env's Prefect
    /// server, in one transaction. A cell's recorded revision never goes
    /// backwards: recording an older revision than the one stored is ignored.
    async fn record_synced(&self, env: &EnvName, synced: &[(FlowKey, Revision)]) -> Result<(), LedgerError>;

    /// The last synced revision of every flow of `env` that was ever synced, by flow.
    async fn synced(&self, env: &EnvName) -> Result<Vec<(FlowKey, Revision)>, LedgerError>;

    /// Records an approval if absent, keyed by (env, build, flow, actor) where
    /// flow `None` means every flow: approving again keeps the first record
    /// (its reason and time) and returns false; true when this call inserted
    /// it, and then its `approval.given` event is written to the outbox in
    /// the same transaction. An unrecorded build gives [`LedgerError::UnknownBuild`] and nothing
    /// changes.
    async fn record_approval(&self, a: &Approval) -> Result<bool, LedgerError>;

    /// Every approval of `build` for `env`, per-flow and all-flow alike,
    /// oldest first (then by flow, then actor). Gate evaluation decides which apply.
    async fn approvals(&self, env: &EnvName, build: &BuildId) -> Result<Vec<Approval>, LedgerError>;

    /// [`Ledger::approvals`] of each of `builds`, read in one statement per
    /// [`IDS_PER_STATEMENT`] builds; a build without approvals is absent.
    async fn approvals_of(
        &self,
        env: &EnvName,
        builds: &[BuildId],
    ) -> Result<BTreeMap<BuildId, Vec<Approval>>, LedgerError>;

    /// Stores a new rollout: `r`'s id, env, actor and body, with status
    /// running, version 1 and created/updated now (`r`'s other fields are
    /// ignored); returns it as stored. One active rollout per env, enforced by
    /// the database: if `r.env` has one, [`LedgerError::RolloutActive`] names
    /// it; an id an earlier rollout has gives [`LedgerError::RolloutIdTaken`].
    /// Of concurrent starts in one env exactly one wins. Either error changes
    /// nothing.
    async fn start_rollout(&self, r: &RolloutRecord) -> Result<RolloutRecord, LedgerError>;

    async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, LedgerError>;

    /// The running rollout of `env`, if any (there is at most one).
    async fn active_rollout(&self, env: &EnvName) -> Result<Option<RolloutRecord>, LedgerError>;

    /// Rollouts of one env or all, newest first (by creation time, then id
    /// descending), at most `limit`.
    async fn rollouts(&self, env: Option<&EnvName>, limit: u32) -> Result<Vec<RolloutRecord>, LedgerError>;

    /// Every running rollout of the project, by env (at most one per env).
    async fn active_rollouts(&self) -> Result<Vec<RolloutRecord>, LedgerError>;

    /// Takes or renews the lease on driving rollout `id` for `holder`, until
    /// `now + ttl`: granted when nobody holds it, when `holder` does already,
    /// or when the holder's lease ended (a replica that died). True when
    /// `holder` holds it now. Replicas asking at once get one grant. `now` is
    /// the caller's clock: replicas' clocks must agree to well within `ttl`.
    async fn lease_rollout(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<bool, LedgerError>;

    /// Who holds the lease on driving rollout `id`, and until when; None when
    /// no server replica ever drove it.
    async fn rollout_lease(&self, id: &str) -> Result<Option<RolloutLease>, LedgerError>;

    /// Ends `holder`'s lease on `id` at once, so another replica need not wait
    /// for it to run out; nothing when someone else holds it.
    async fn end_rollout_lease(&self, id: &str, holder: &str) -> Result<(), LedgerError>;

    /// One rollout transition, in one transaction: compare-and-swaps the row
    /// `next.id` from version `next.version - 1` to `next.version`, writing
    /// `next`'s status, body and updated_at (id, env, actor and created_at
    /// never change), then applies `moves` exactly as [`Ledger::apply`] does.
    /// All or nothing: a row not at that version gives
    /// [`LedgerError::RolloutMoved`] (with the version found now, None when
    /// there is no such rollout); making it running while another rollout runs
    /// in its env gives [`LedgerError::RolloutActive`]; a move fails as in
    /// `apply`. Returns the appended releases in the order given. The moves'
    /// events and `events` (the step's own, see
    /// [`flowgate_core::events::for_rollout_step`]) are written to the outbox
    /// in the same transaction.
    async fn transition_rollout(
        &self,
        next: &RolloutRecord,
        moves: &[Move],
        events: &[Event],
    ) -> Result<Vec<Release>, LedgerError>;

    /// Writes events that no change of the ledger carries (a refusal by the
    /// gates, drift found) to the outbox, in one transaction; an event whose
    /// id is stored already is skipped. An event of another project is
    /// refused and nothing is written.
    async fn record_events(&self, events: &[Event]) -> Result<(), LedgerError>;

    /// Pins `pin.build` so gc keeps it. Insert if absent: pinning again keeps
    /// the first pin (its actor, reason and time) and returns false. An
    /// unrecorded build gives [`LedgerError::UnknownBuild`] and nothing changes.
    async fn pin(&self, pin: &Pin) -> Result<bool, LedgerError>;

    /// Removes the pin of `build`; false when it had none.
    async fn unpin(&self, build: &BuildId) -> Result<bool, LedgerError>;

    /// Every pin, oldest first.
    async fn pins(&self) -> Result<Vec<Pin>, LedgerError>;

    /// Records that a server registered `build` for `registrar`, as verified
    /// (once per request id: a retry adds nothing). An unrecorded build gives
    /// [`LedgerError::UnknownBuild`] and nothing changes.
    async fn record_provenance(&self, build: &BuildId, registrar: &Verified) -> Result<(), LedgerError>;

    /// Every verified registration of `build`, oldest first; empty for builds
    /// registered in direct mode.
    async fn provenance(&self, build: &BuildId) -> Result<Vec<Provenance>, LedgerError>;

    /// Every build, pointer, release (reduced to flow, env, revision, build),
    /// pin, build a running rollout names and release each (flow, env) was
    /// last synced at, read as one consistent snapshot: what gc computes its
    /// keep set from and fsck checks.
    async fn inventory(&self) -> Result<Inventory, LedgerError>;

    /// Deletes the build rows of `ids` (and their commit aliases) in one
    /// transaction, returning the builds deleted (ids not recorded are
    /// skipped). Releases and approvals keep naming them. Checked inside the
    /// transaction: if a pointer, a pin, a running rollout or the release a
    /// (flow, env) was last synced at names any of them,
    /// [`LedgerError::BuildInUse`] names it and nothing is deleted.
    /// Keeping recent releases' builds is the caller's decision.
    async fn delete_builds(&self, ids: &[BuildId]) -> Result<Vec<Build>, LedgerError>;

    /// Takes the maintenance lock `gc` and `fsck` hold while they run, or fails
    /// at once with [`LedgerError::MaintenanceLocked`] naming the holder.
    /// PostgreSQL: a session advisory lock; SQLite: a row with a stale-holder
    /// rule (see [`MaintenanceLock`]).
    async fn lock_maintenance(&self, holder: &LockHolder) -> Result<MaintenanceLock, LedgerError>;

    /// Opens a preview env, or reopens the one of the same env name with the
    /// record's branch, placement, build, actor and expiry (its first creation
    /// time is kept).
    async fn open_preview(&self, preview: &PreviewRecord) -> Result<(), LedgerError>;

    /// Every preview env of the project, open and closed, oldest first.
    async fn previews(&self) -> Result<Vec<PreviewRecord>, LedgerError>;

    /// Marks the open preview `env` closed at `at`; false when none is open.
    /// Its releases stay: the history of a closed preview is kept.
    async fn close_preview(&self, env: &EnvName, at: DateTime<Utc>) -> Result<bool, LedgerError>;
}

/// Open the ledger a URL names, bring its schema up to date and register
/// `project`'s claim on its name: `sqlite://PATH` (relative to `base_dir`
/// unless absolute; parent directories and the file are created),
/// `sqlite::memory:` (tests), `postgres://...` or `postgresql://...`. Errors
/// name the URL with any password redacted.
///
/// The handle is scoped to `project.name`. A name not recorded yet is
/// recorded with the claim's repository; the first project recorded in a
/// database also takes over the rows from before projects (a ledger made by
/// an earlier release). A name recorded from another repository (root
/// commits, or else remotes, known on both sides and different) is
/// [`LedgerError::ProjectCollision`], and nothing is written. A claim without
/// a root commit or remote never collides.
pub async fn open(url: &LedgerUrl, base_dir: &Path, project: &ProjectClaim) -> Result<Box<dyn Ledger>, LedgerError> {
    Ok(match Opened::open(url, base_dir, project).await? {
        Opened::Sqlite(ledger) => Box::new(ledger),
        Opened::Postgres(ledger) => Box::new(ledger),
    })
}

/// A ledger database shared by every project in it, as a server holds it:
/// opened (and migrated) once, then scoped to a project per request without
/// registering anything, and the API tokens that give rights in it.
#[derive(Debug)]
pub struct LedgerDatabase {
    database: Database,
}

impl LedgerDatabase {
    /// Opens the database `url` names (see [`open`]) and brings its schema up to date.
    pub async fn open(url: &LedgerUrl, base_dir: &Path) -> Result<Self, LedgerError> {
        Ok(Self { database: Database::open(url, base_dir, None).await? })
    }

    /// Every project recorded in the database, by name.
    pub async fn projects(&self) -> Result<Vec<ProjectRecord>, LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => projects::read_projects(pool).await,
            Database::Postgres(pool) => projects::read_projects(pool).await,
        }
    }

    /// The ledger of the recorded project `name`, or None when the database
    /// has no such project. Reads only: a server never registers a project
    /// (a project's first `flowgate` command in its checkout does).
    pub async fn project(&self, name: &ProjectName) -> Result<Option<Box<dyn Ledger>>, LedgerError> {
        let known = match &self.database {
            Database::Sqlite(pool) => projects::is_recorded(pool, name).await?,
            Database::Postgres(pool) => projects::is_recorded(pool, name).await?,
        };
        Ok(known.then(|| -> Box<dyn Ledger> {
            match &self.database {
                Database::Sqlite(pool) => Box::new(SqlLedger { pool: pool.clone(), project: name.clone() }),
                Database::Postgres(pool) => Box::new(SqlLedger { pool: pool.clone(), project: name.clone() }),
            }
        }))
    }

    /// Records a new API token. A name taken before, even by a revoked token,
    /// is [`LedgerError::TokenNameTaken`] and nothing changes.
    pub async fn create_token(&self, token: &TokenRecord) -> Result<(), LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => tokens::Tokens(pool).create(token).await,
            Database::Postgres(pool) => tokens::Tokens(pool).create(token).await,
        }
    }

    /// Every token, by name, revoked and expired ones included.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => tokens::Tokens(pool).list().await,
            Database::Postgres(pool) => tokens::Tokens(pool).list().await,
        }
    }

    /// The token whose secret hashes to `secret_hash`, valid or not.
    pub async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>, LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => tokens::Tokens(pool).by_hash(secret_hash).await,
            Database::Postgres(pool) => tokens::Tokens(pool).by_hash(secret_hash).await,
        }
    }

    /// Claims up to `limit` unsettled events due at `now` for the deliverer
    /// `holder` until `until` (see the outbox's rules in the migration
    /// `0012_outbox.sql`): those nobody holds, whose claim ran out, or that
    /// `holder` holds already; oldest due first, with each webhook's attempts.
    pub async fn claim_events(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => outbox::Outbox(pool).claim(holder, now, until, limit).await,
            Database::Postgres(pool) => outbox::Outbox(pool).claim(holder, now, until, limit).await,
        }
    }

    /// Records one webhook's attempts at `event_id` so far.
    pub async fn record_delivery(&self, event_id: &str, delivery: &DeliveryRecord) -> Result<(), LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => outbox::Outbox(pool).record_attempt(event_id, delivery).await,
            Database::Postgres(pool) => outbox::Outbox(pool).record_attempt(event_id, delivery).await,
        }
    }

    /// Gives `holder`'s claim on `event_id` back: settled at `settled` when
    /// every webhook is done with it, else due again at `due`. Nothing when
    /// `holder` no longer holds it.
    pub async fn release_event(
        &self,
        event_id: &str,
        holder: &str,
        due: DateTime<Utc>,
        settled: Option<DateTime<Utc>>,
    ) -> Result<(), LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => outbox::Outbox(pool).release(event_id, holder, due, settled).await,
            Database::Postgres(pool) => outbox::Outbox(pool).release(event_id, holder, due, settled).await,
        }
    }

    /// The newest `limit` events of every project, settled or not, with their deliveries.
    pub async fn outbox_events(&self, limit: u32) -> Result<Vec<OutboxRecord>, LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => outbox::Outbox(pool).list(limit).await,
            Database::Postgres(pool) => outbox::Outbox(pool).list(limit).await,
        }
    }

    /// Revokes the token `name` now; false when there is no such token or it
    /// was revoked already.
    pub async fn revoke_token(&self, name: &str, at: chrono::DateTime<chrono::Utc>) -> Result<bool, LedgerError> {
        match &self.database {
            Database::Sqlite(pool) => tokens::Tokens(pool).revoke(name, at).await,
            Database::Postgres(pool) => tokens::Tokens(pool).revoke(name, at).await,
        }
    }
}

/// A project's ledger a URL names, opened on its backend: [`open`] boxes it
/// as a `dyn Ledger`, `testing::open` keeps the backend to dump it.
#[derive(Debug)]
enum Opened {
    Sqlite(SqlLedger<sqlx::Sqlite>),
    Postgres(SqlLedger<sqlx::Postgres>),
}

impl Opened {
    async fn open(url: &LedgerUrl, base_dir: &Path, project: &ProjectClaim) -> Result<Self, LedgerError> {
        Ok(match Database::open(url, base_dir, None).await? {
            Database::Sqlite(pool) => Self::Sqlite(SqlLedger::claim(pool, project).await?),
            Database::Postgres(pool) => Self::Postgres(SqlLedger::claim(pool, project).await?),
        })
    }
}

/// The database a URL names, opened with its schema brought up to date (or,
/// for tests of a migration, only up to migration `until`), not yet scoped
/// to a project.
#[derive(Debug)]
enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Database {
    async fn open(url: &LedgerUrl, base_dir: &Path, until: Option<i64>) -> Result<Self, LedgerError> {
        let first = |all: &Migrator, until| Migrator {
            migrations: all.migrations.iter().filter(|m| m.version <= until).cloned().collect(),
            ..Migrator::DEFAULT
        };
        let (sqlite_until, postgres_until);
        let (sqlite_migrator, postgres_migrator) = match until {
            None => (&sqlite::MIGRATOR, &postgres::MIGRATOR),
            Some(until) => {
                sqlite_until = first(&sqlite::MIGRATOR, until);
                postgres_until = first(&postgres::MIGRATOR, until);
                (&sqlite_until, &postgres_until)
            }
        };
        Ok(match url.target() {
            crate::url::Target::SqliteMemory => Self::Sqlite(sqlite::open_memory(sqlite_migrator).await?),
            crate::url::Target::SqliteFile(path) => {
                let path = if path.is_absolute() { path } else { base_dir.join(path) };
                Self::Sqlite(sqlite::open_file(&path, sqlite_migrator).await?)
            }
            crate::url::Target::Postgres => Self::Postgres(postgres::open(url, postgres_migrator).await?),
        })
    }
}
