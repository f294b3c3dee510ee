//! The ledger's queries, written once for both backends: `$n` placeholders,
//! `ON CONFLICT` and row-count compare-and-swap mean the same in SQLite and
//! PostgreSQL, so one text serves both drivers. The `dump_*` queries serve
//! `testing` only (except `dump_builds`, which the inventory reads too).

pub(crate) const INSERT_BUILD: &str = "INSERT INTO builds \
    (id, bundle, bundle_size, file_count, images, commit_sha, branch, dirty, author, created_at_ms, settings) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING";
pub(crate) const INSERT_BUILD_COMMIT: &str =
    "INSERT INTO build_commits (build_id, commit_sha) VALUES ($1, $2) ON CONFLICT DO NOTHING";

const BUILD_COLUMNS: &str =
    "id, bundle, bundle_size, file_count, images, commit_sha, branch, dirty, author, created_at_ms, settings";

pub(crate) fn select_build() -> String {
    format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = $1")
}
pub(crate) fn select_builds() -> String {
    format!("SELECT {BUILD_COLUMNS} FROM builds ORDER BY created_at_ms DESC, id DESC LIMIT $1")
}
/// `$1`..`$2` is a prefix range (see `codec::hex_prefix_range`); `UNION` dedups.
pub(crate) fn find_builds() -> String {
    format!(
        "SELECT {BUILD_COLUMNS} FROM builds WHERE id >= $1 AND id < $2 \
         UNION \
         SELECT {BUILD_COLUMNS} FROM builds WHERE id IN \
             (SELECT build_id FROM build_commits WHERE commit_sha >= $1 AND commit_sha < $2) \
         ORDER BY created_at_ms DESC, id DESC LIMIT $3"
    )
}

pub(crate) const BUILD_EXISTS: &str = "SELECT COUNT(*) FROM builds WHERE id = $1";

const POINTER_COLUMNS: &str = "flow, env, revision, build_id, updated_at_ms";

pub(crate) fn select_pointers_all() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers ORDER BY env, flow")
}
pub(crate) fn select_pointers_env() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers WHERE env = $1 ORDER BY env, flow")
}
pub(crate) fn select_pointer() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers WHERE flow = $1 AND env = $2")
}
pub(crate) const INSERT_POINTER: &str = "INSERT INTO pointers (flow, env, revision, build_id, updated_at_ms) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (flow, env) DO NOTHING";
/// The compare-and-swap: moves the pointer only if it is still at `$6`.
pub(crate) const ADVANCE_POINTER: &str = "UPDATE pointers SET revision = $3, build_id = $4, updated_at_ms = $5 \
    WHERE flow = $1 AND env = $2 AND revision = $6";

const RELEASE_COLUMNS: &str = "flow, env, revision, build_id, previous_build_id, kind, kind_detail, actor, reason, \
    created_at_ms, gates, override_reason, rollout_id";

pub(crate) fn insert_release() -> String {
    format!("INSERT INTO releases ({RELEASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
}
pub(crate) fn select_history() -> String {
    format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE flow = $1 AND env = $2 ORDER BY revision DESC LIMIT $3")
}

pub(crate) fn dump_builds() -> String {
    format!("SELECT {BUILD_COLUMNS} FROM builds ORDER BY id")
}
#[cfg(feature = "test-support")]
pub(crate) const DUMP_BUILD_COMMITS: &str =
    "SELECT build_id, commit_sha FROM build_commits ORDER BY build_id, commit_sha";
#[cfg(feature = "test-support")]
pub(crate) fn dump_pointers() -> String {
    format!("SELECT {POINTER_COLUMNS} FROM pointers ORDER BY flow, env")
}
#[cfg(feature = "test-support")]
pub(crate) fn dump_releases() -> String {
    format!("SELECT {RELEASE_COLUMNS} FROM releases ORDER BY flow, env, revision")
}

/// Records a synced revision; never moves a cell's recorded revision backwards
/// (a slower concurrent sync of an older revision loses).
pub(crate) const UPSERT_SYNCED: &str = "INSERT INTO sync_state (flow, env, revision, synced_at_ms) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (flow, env) DO UPDATE \
    SET revision = excluded.revision, synced_at_ms = excluded.synced_at_ms \
    WHERE sync_state.revision <= excluded.revision";
pub(crate) const SELECT_SYNCED: &str = "SELECT flow, revision FROM sync_state WHERE env = $1 ORDER BY flow";
#[cfg(feature = "test-support")]
pub(crate) const DUMP_SYNC_STATE: &str = "SELECT flow, env, revision FROM sync_state ORDER BY flow, env";

const APPROVAL_COLUMNS: &str = "env, build_id, flow, actor, reason, created_at_ms";

/// Insert if absent: the first approval of (env, build, flow, actor) wins.
pub(crate) fn insert_approval() -> String {
    format!("INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
}
pub(crate) fn select_approvals() -> String {
    format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE env = $1 AND build_id = $2 \
         ORDER BY created_at_ms, flow, actor"
    )
}
#[cfg(feature = "test-support")]
pub(crate) fn dump_approvals() -> String {
    format!("SELECT {APPROVAL_COLUMNS} FROM approvals ORDER BY env, build_id, flow, actor")
}

const ROLLOUT_COLUMNS: &str = "id, env, status, version, actor, body, created_at_ms, updated_at_ms";

pub(crate) fn insert_rollout() -> String {
    format!("INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
}
pub(crate) fn select_rollout() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1")
}
/// Uses the partial unique index: at most one row matches.
pub(crate) fn select_active_rollout() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE env = $1 AND status = 'running'")
}
pub(crate) fn select_rollouts_all() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at_ms DESC, id DESC LIMIT $1")
}
pub(crate) fn select_rollouts_env() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE env = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2")
}
pub(crate) const ROLLOUT_VERSION: &str = "SELECT version FROM rollouts WHERE id = $1";
/// The rollout compare-and-swap: writes the transition only if the row is
/// still at version `$6`.
pub(crate) const ADVANCE_ROLLOUT: &str =
    "UPDATE rollouts SET status = $2, version = $3, body = $4, updated_at_ms = $5 \
    WHERE id = $1 AND version = $6";
#[cfg(feature = "test-support")]
pub(crate) fn dump_rollouts() -> String {
    format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts ORDER BY id")
}

const PIN_COLUMNS: &str = "build_id, actor, reason, created_at_ms";

/// Insert if absent: the first pin of a build (its actor and reason) stays.
pub(crate) fn insert_pin() -> String {
    format!("INSERT INTO pins ({PIN_COLUMNS}) VALUES ($1, $2, $3, $4) ON CONFLICT (build_id) DO NOTHING")
}
pub(crate) const DELETE_PIN: &str = "DELETE FROM pins WHERE build_id = $1";
pub(crate) fn select_pins() -> String {
    format!("SELECT {PIN_COLUMNS} FROM pins ORDER BY created_at_ms, build_id")
}
#[cfg(feature = "test-support")]
pub(crate) fn dump_pins() -> String {
    format!("SELECT {PIN_COLUMNS} FROM pins ORDER BY build_id")
}

pub(crate) const SELECT_RELEASE_REFS: &str =
    "SELECT flow, env, revision, build_id FROM releases ORDER BY flow, env, revision";
/// The release each (flow, env) was last synced at: what its deployment names.
pub(crate) const SELECT_SYNCED_RELEASES: &str = "SELECT s.flow, s.env, s.revision, r.build_id FROM sync_state s \
    JOIN releases r ON r.flow = s.flow AND r.env = s.env AND r.revision = s.revision ORDER BY s.flow, s.env";
pub(crate) const SELECT_RUNNING_BODIES: &str = "SELECT id, body FROM rollouts WHERE status = 'running' ORDER BY id";
pub(crate) const DELETE_BUILD_COMMITS: &str = "DELETE FROM build_commits WHERE build_id = $1";
pub(crate) const DELETE_BUILD: &str = "DELETE FROM builds WHERE id = $1";
