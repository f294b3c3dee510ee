//! The ledger's queries, written once for both backends: `$n` placeholders,
//! `ON CONFLICT` and row-count compare-and-swap mean the same in SQLite and
//! PostgreSQL, so one text serves both drivers. Every query of a data table is
//! scoped to one project: `$1` is always the handle's project. The `dump_*`
//! queries serve `testing` only (except `dump_builds`, which the inventory
//! reads too).

pub(crate) const INSERT_BUILD: &str = "INSERT INTO builds \
    (project, id, bundle, bundle_size, file_count, images, commit_sha, branch, dirty, author, created_at_ms, settings) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (project, id) DO NOTHING";
pub(crate) const INSERT_BUILD_COMMIT: &str =
    "INSERT INTO build_commits (project, build_id, commit_sha) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

const BUILD_COLUMNS: &str =
    "id, bundle, bundle_size, file_count, images, commit_sha, branch, dirty, author, created_at_ms, settings";

pub(crate) fn select_build() -> String {
    format!("SELECT {BUILD_COLUMNS} FROM builds WHERE project = $1 AND id = $2")
}
/// A build's row without its settings text (`NULL` in its place), and whether
/// it has settings: what recording an existing build needs to read.
pub(crate) const SELECT_BUILD_BRIEF: &str = "SELECT id, bundle, bundle_size, file_count, images, commit_sha, \
    branch, dirty, author, created_at_ms, CAST(NULL AS TEXT), settings IS NOT NULL \
    FROM builds WHERE project = $1 AND id = $2";
/// `count` placeholders from `$first` on, for an `IN (…)` list.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// The builds of `count` ids (`$2`..), sorted by id; the settings column is
/// `NULL` unless `settings`.
pub(crate) fn select_builds_by_id(count: usize, settings: bool) -> String {
    let columns =
        if settings { BUILD_COLUMNS.to_string() } else { BUILD_COLUMNS.replace(", settings", ", CAST(NULL AS TEXT)") };
    format!("SELECT {columns} FROM builds WHERE project = $1 AND id IN ({}) ORDER BY id", placeholders(2, count))
}
pub(crate) fn select_builds() -> String {
    format!("SELECT {BUILD_COLUMNS} FROM builds WHERE project = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2")
}
/// `$2`..`$3` is a prefix range (see `codec::hex_prefix_range`); `UNION` dedups.
pub(crate) fn find_builds() -> String {
    format!(
        "SELECT {BUILD_COLUMNS} FROM builds WHERE project = $1 AND id >= $2 AND id < $3 \
         UNION \
         SELECT {BUILD_COLUMNS} FROM builds WHERE project = $1 AND id IN \
             (SELECT build_id FROM build_commits WHERE project = $1 AND commit_sha >= $2 AND commit_sha < $3) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $4"
    )
}

pub(crate) const BUILD_EXISTS: &str = "SELECT COUNT(*) FROM builds WHERE project = $1 AND id = $2";

const POINTER_COLUMNS: &str = "flow, env, revision, build_id, updated_at_ms";

pub(crate) fn select_pointers_all() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers WHERE project = $1 ORDER BY env, flow")
}
pub(crate) fn select_pointers_env() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers WHERE project = $1 AND env = $2 ORDER BY env, flow")
}
pub(crate) fn select_pointer() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers WHERE project = $1 AND flow = $2 AND env = $3")
}
pub(crate) const INSERT_POINTER: &str = "INSERT INTO pointers (project, flow, env, revision, build_id, updated_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project, flow, env) DO NOTHING";
/// The compare-and-swap: moves the pointer only if it is still at `$7`.
pub(crate) const ADVANCE_POINTER: &str = "UPDATE pointers SET revision = $4, build_id = $5, updated_at_ms = $6 \
    WHERE project = $1 AND flow = $2 AND env = $3 AND revision = $7";

const RELEASE_COLUMNS: &str = "flow, env, revision, build_id, previous_build_id, kind, kind_detail, actor, reason, \
    created_at_ms, gates, override_reason, rollout_id, verified";

pub(crate) fn insert_release() -> String {
    format!(
        "INSERT INTO releases (project, {RELEASE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )
}
/// The releases in env `$2` of `count` flows (`$3`..), by flow, newest first.
pub(crate) fn select_histories(count: usize) -> String {
    format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE project = $1 AND env = $2 AND flow IN ({}) \
         ORDER BY flow, revision DESC",
        placeholders(3, count)
    )
}
pub(crate) fn select_history() -> String {
    format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE project = $1 AND flow = $2 AND env = $3 \
         ORDER BY revision DESC LIMIT $4"
    )
}

pub(crate) fn dump_builds() -> String {
    format!("SELECT {BUILD_COLUMNS} FROM builds WHERE project = $1 ORDER BY id")
}
#[cfg(feature = "test-support")]
pub(crate) const DUMP_BUILD_COMMITS: &str =
    "SELECT build_id, commit_sha FROM build_commits WHERE project = $1 ORDER BY build_id, commit_sha";
#[cfg(feature = "test-support")]
pub(crate) fn dump_pointers() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers WHERE project = $1 ORDER BY flow, env")
}
#[cfg(feature = "test-support")]
pub(crate) fn dump_releases() -> String {
    format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE project = $1 ORDER BY flow, env, revision")
}

/// Records a synced revision; never moves a cell's recorded revision backwards
/// (a slower concurrent sync of an older revision loses).
pub(crate) const UPSERT_SYNCED: &str = "INSERT INTO sync_state (project, flow, env, revision, synced_at_ms) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project, flow, env) DO UPDATE \
    SET revision = excluded.revision, synced_at_ms = excluded.synced_at_ms \
    WHERE sync_state.revision <= excluded.revision";
pub(crate) const SELECT_SYNCED: &str =
    "SELECT flow, revision FROM sync_state WHERE project = $1 AND env = $2 ORDER BY flow";
#[cfg(feature = "test-support")]
pub(crate) const DUMP_SYNC_STATE: &str =
    "SELECT flow, env, revision FROM sync_state WHERE project = $1 ORDER BY flow, env";

const APPROVAL_COLUMNS: &str = "env, build_id, flow, actor, reason, created_at_ms, verified";

/// Insert if absent: the first approval of (env, build, flow, actor) wins.
pub(crate) fn insert_approval() -> String {
    format!(
        "INSERT INTO approvals (project, {APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT DO NOTHING"
    )
}
/// The approvals in env `$2` of `count` builds (`$3`..), by build, then as [`select_approvals`].
pub(crate) fn select_approvals_of(count: usize) -> String {
    format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE project = $1 AND env = $2 AND build_id IN ({}) \
         ORDER BY build_id, created_at_ms, flow, actor",
        placeholders(3, count)
    )
}
pub(crate) fn select_approvals() -> String {
    format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE project = $1 AND env = $2 AND build_id = $3 \
         ORDER BY created_at_ms, flow, actor"
    )
}
#[cfg(feature = "test-support")]
pub(crate) fn dump_approvals() -> String {
    format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE project = $1 ORDER BY env, build_id, flow, actor")
}

const ROLLOUT_COLUMNS: &str = "id, env, status, version, actor, body, created_at_ms, updated_at_ms";

pub(crate) fn insert_rollout() -> String {
    format!("INSERT INTO rollouts (project, {ROLLOUT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
}
pub(crate) fn select_rollout() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE project = $1 AND id = $2")
}
/// Uses the partial unique index: at most one row matches.
pub(crate) fn select_active_rollout() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE project = $1 AND env = $2 AND status = 'running'")
}
/// Every running rollout of the project, one per env at most.
pub(crate) fn select_active_rollouts() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE project = $1 AND status = 'running' ORDER BY env, id")
}
pub(crate) fn select_rollouts_all() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE project = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2")
}
pub(crate) fn select_rollouts_env() -> String {
    format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE project = $1 AND env = $2 \
         ORDER BY created_at_ms DESC, id DESC LIMIT $3"
    )
}
pub(crate) const ROLLOUT_VERSION: &str = "SELECT version FROM rollouts WHERE project = $1 AND id = $2";
/// The rollout compare-and-swap: writes the transition only if the row is
/// still at version `$7`.
pub(crate) const ADVANCE_ROLLOUT: &str =
    "UPDATE rollouts SET status = $3, version = $4, body = $5, updated_at_ms = $6 \
    WHERE project = $1 AND id = $2 AND version = $7";
#[cfg(feature = "test-support")]
pub(crate) fn dump_rollouts() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE project = $1 ORDER BY id")
}

const PIN_COLUMNS: &str = "build_id, actor, reason, created_at_ms, verified";

/// Insert if absent: the first pin of a build (its actor and reason) stays.
pub(crate) fn insert_pin() -> String {
    format!(
        "INSERT INTO pins (project, {PIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (project, build_id) DO NOTHING"
    )
}
pub(crate) const DELETE_PIN: &str = "DELETE FROM pins WHERE project = $1 AND build_id = $2";
pub(crate) fn select_pins() -> String {
    format!("SELECT {PIN_COLUMNS} FROM pins WHERE project = $1 ORDER BY created_at_ms, build_id")
}
#[cfg(feature = "test-support")]
pub(crate) fn dump_pins() -> String {
    format!("SELECT {PIN_COLUMNS} FROM pins WHERE project = $1 ORDER BY build_id")
}

pub(crate) const SELECT_RELEASE_REFS: &str =
    "SELECT flow, env, revision, build_id FROM releases WHERE project = $1 ORDER BY flow, env, revision";
/// The release each (flow, env) was last synced at: what its deployment names.
pub(crate) const SELECT_SYNCED_RELEASES: &str = "SELECT s.flow, s.env, s.revision, r.build_id FROM sync_state s \
    JOIN releases r ON r.project = s.project AND r.flow = s.flow AND r.env = s.env AND r.revision = s.revision \
    WHERE s.project = $1 ORDER BY s.flow, s.env";
pub(crate) const SELECT_RUNNING_BODIES: &str =
    "SELECT id, body FROM rollouts WHERE project = $1 AND status = 'running' ORDER BY id";
pub(crate) const DELETE_BUILD_PROVENANCE: &str = "DELETE FROM build_provenance WHERE project = $1 AND build_id = $2";
pub(crate) const DELETE_BUILD_COMMITS: &str = "DELETE FROM build_commits WHERE project = $1 AND build_id = $2";
pub(crate) const DELETE_BUILD: &str = "DELETE FROM builds WHERE project = $1 AND id = $2";

/// The projects table, for `open`'s claim and `Ledger::projects`.
pub(crate) const SELECT_PROJECT: &str = "SELECT root_commit, remote FROM projects WHERE name = $1";
pub(crate) const COUNT_PROJECTS: &str = "SELECT COUNT(*) FROM projects";
pub(crate) const INSERT_PROJECT: &str =
    "INSERT INTO projects (name, root_commit, remote, created_at_ms) VALUES ($1, $2, $3, $4)";
/// Fills in what the recorded project did not know (never overwrites).
pub(crate) const FILL_PROJECT: &str = "UPDATE projects SET root_commit = COALESCE(root_commit, $2), \
    remote = COALESCE(remote, $3) WHERE name = $1";
pub(crate) const SELECT_PROJECTS: &str = "SELECT name, root_commit, remote, created_at_ms FROM projects ORDER BY name";
/// Claims the rows from before migration 0006 (project ''). `builds` goes
/// first: its key change cascades to `build_commits`, `pointers` and `pins`,
/// whose foreign keys would otherwise refuse either order.
pub(crate) const CLAIM_UNOWNED: [&str; 8] = [
    "UPDATE builds SET project = $1 WHERE project = ''",
    "UPDATE build_commits SET project = $1 WHERE project = ''",
    "UPDATE pointers SET project = $1 WHERE project = ''",
    "UPDATE pins SET project = $1 WHERE project = ''",
    "UPDATE releases SET project = $1 WHERE project = ''",
    "UPDATE sync_state SET project = $1 WHERE project = ''",
    "UPDATE approvals SET project = $1 WHERE project = ''",
    "UPDATE rollouts SET project = $1 WHERE project = ''",
];
/// Every project that has a row anywhere, recorded or not (a dump shows all).
#[cfg(feature = "test-support")]
pub(crate) const DUMP_PROJECT_NAMES: &str = "SELECT name FROM projects UNION SELECT project FROM builds \
    UNION SELECT project FROM build_commits UNION SELECT project FROM pointers \
    UNION SELECT project FROM releases UNION SELECT project FROM sync_state \
    UNION SELECT project FROM approvals UNION SELECT project FROM rollouts \
    UNION SELECT project FROM pins ORDER BY 1";

/// A registration is recorded once per request (a retried request writes nothing new).
pub(crate) const INSERT_PROVENANCE: &str = "INSERT INTO build_provenance \
    (project, build_id, request_id, verified, recorded_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
pub(crate) const SELECT_PROVENANCE: &str = "SELECT verified, recorded_at_ms FROM build_provenance \
    WHERE project = $1 AND build_id = $2 ORDER BY recorded_at_ms, request_id";
#[cfg(feature = "test-support")]
pub(crate) const DUMP_PROVENANCE: &str = "SELECT build_id, request_id, verified, recorded_at_ms FROM build_provenance \
    WHERE project = $1 ORDER BY build_id, recorded_at_ms, request_id";

/// Takes the lease on driving rollout `$2` for `$3` until `$4`: inserted when
/// nobody ever held it, else updated only when `$3` holds it already or the
/// holder's lease ended before `$5` (now). One row changed means granted.
pub(crate) const LEASE_ROLLOUT: &str = "INSERT INTO rollout_leases (project, rollout_id, holder, expires_at_ms) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (project, rollout_id) DO UPDATE \
    SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
    WHERE rollout_leases.holder = excluded.holder OR rollout_leases.expires_at_ms <= $5";
pub(crate) const SELECT_ROLLOUT_LEASE: &str =
    "SELECT holder, expires_at_ms FROM rollout_leases WHERE project = $1 AND rollout_id = $2";
/// Gives the lease back early (a replica that stops cleanly), if still held.
pub(crate) const END_ROLLOUT_LEASE: &str =
    "UPDATE rollout_leases SET expires_at_ms = 0 WHERE project = $1 AND rollout_id = $2 AND holder = $3";

/// Opens preview `$2` of project `$1`, or reopens it (keeping `created_at_ms`).
pub(crate) const UPSERT_PREVIEW: &str = "INSERT INTO previews \
    (project, env, branch, from_env, from_config, build_id, actor, created_at_ms, expires_at_ms, closed_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) \
    ON CONFLICT (project, env) DO UPDATE SET branch = excluded.branch, from_env = excluded.from_env, \
    from_config = excluded.from_config, build_id = excluded.build_id, actor = excluded.actor, \
    expires_at_ms = excluded.expires_at_ms, closed_at_ms = NULL";
pub(crate) const SELECT_PREVIEWS: &str = "SELECT env, branch, from_env, from_config, build_id, actor, \
    created_at_ms, expires_at_ms, closed_at_ms FROM previews WHERE project = $1 ORDER BY created_at_ms, env";
pub(crate) const CLOSE_PREVIEW: &str =
    "UPDATE previews SET closed_at_ms = $3 WHERE project = $1 AND env = $2 AND closed_at_ms IS NULL";
