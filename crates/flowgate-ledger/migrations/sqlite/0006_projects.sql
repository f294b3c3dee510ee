-- A multi-project ledger (issue 12, item 2): one database serves many
-- repositories, each `[project] name` its own rows. Append-only: a released
-- migration is never edited. Times are milliseconds since the Unix epoch, UTC.
--
-- Every data table gains `project`, first in its primary key and its indexes.
-- Rows from before this migration get project '' (never a valid project
-- name): the first project to open the ledger claims them (flowgate_ledger::open).
-- SQLite cannot alter a primary key, so every table is rebuilt (same columns,
-- `project` first): the new tables are made and filled beside the old ones,
-- the old children are dropped before the old `builds`, and the renames carry
-- the references to `builds_0006` over to `builds`, so no foreign key is ever
-- broken inside the migration's transaction. References to `builds` become
-- (project, build_id) -> builds (project, id); `ON UPDATE CASCADE` lets that
-- claim move a build together with the rows naming it.

-- The projects recorded in this ledger, and the repository each belongs to
-- (its root commit and `origin` remote, NULL when unknown), so two projects
-- with one name are told apart instead of merged.
CREATE TABLE projects (
    name          TEXT    NOT NULL PRIMARY KEY,
    root_commit   TEXT,
    remote        TEXT,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE builds_0006 (
    project       TEXT    NOT NULL DEFAULT '',
    id            TEXT    NOT NULL,
    bundle        TEXT    NOT NULL,
    bundle_size   INTEGER NOT NULL,
    file_count    INTEGER NOT NULL,
    images        TEXT    NOT NULL, -- JSON object: flow key -> pinned image
    commit_sha    TEXT    NOT NULL, -- the first commit recorded for this build
    branch        TEXT,
    dirty         BOOLEAN NOT NULL,
    author        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    settings      TEXT, -- JSON deployment settings; NULL for builds from before 0005
    PRIMARY KEY (project, id)
);
INSERT INTO builds_0006 (project, id, bundle, bundle_size, file_count, images, commit_sha, branch, dirty, author,
                         created_at_ms, settings)
    SELECT '', id, bundle, bundle_size, file_count, images, commit_sha, branch, dirty, author, created_at_ms, settings
    FROM builds;

CREATE TABLE build_commits_0006 (
    project    TEXT NOT NULL DEFAULT '',
    build_id   TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    PRIMARY KEY (project, build_id, commit_sha),
    FOREIGN KEY (project, build_id) REFERENCES builds_0006 (project, id) ON UPDATE CASCADE
);
INSERT INTO build_commits_0006 (project, build_id, commit_sha) SELECT '', build_id, commit_sha FROM build_commits;

CREATE TABLE pointers_0006 (
    project       TEXT    NOT NULL DEFAULT '',
    flow          TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    revision      INTEGER NOT NULL,
    build_id      TEXT    NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project, flow, env),
    FOREIGN KEY (project, build_id) REFERENCES builds_0006 (project, id) ON UPDATE CASCADE
);
INSERT INTO pointers_0006 (project, flow, env, revision, build_id, updated_at_ms)
    SELECT '', flow, env, revision, build_id, updated_at_ms FROM pointers;

-- History keeps naming builds gc deleted (0004): no reference to `builds`.
CREATE TABLE releases_0006 (
    project           TEXT    NOT NULL DEFAULT '',
    flow              TEXT    NOT NULL,
    env               TEXT    NOT NULL,
    revision          INTEGER NOT NULL,
    build_id          TEXT    NOT NULL,
    previous_build_id TEXT,
    kind              TEXT    NOT NULL CHECK (kind IN ('release', 'promote', 'rollback')),
    kind_detail       TEXT, -- promote: the source env; rollback: the target revision
    actor             TEXT    NOT NULL,
    reason            TEXT,
    created_at_ms     INTEGER NOT NULL,
    gates             TEXT, -- JSON array of gate results; NULL when no gate ran
    override_reason   TEXT, -- set when gates were overridden
    rollout_id        TEXT, -- the rollout that made the move
    PRIMARY KEY (project, flow, env, revision)
);
INSERT INTO releases_0006 (project, flow, env, revision, build_id, previous_build_id, kind, kind_detail, actor,
                           reason, created_at_ms, gates, override_reason, rollout_id)
    SELECT '', flow, env, revision, build_id, previous_build_id, kind, kind_detail, actor,
           reason, created_at_ms, gates, override_reason, rollout_id
    FROM releases;

CREATE TABLE sync_state_0006 (
    project      TEXT    NOT NULL DEFAULT '',
    flow         TEXT    NOT NULL,
    env          TEXT    NOT NULL,
    revision     INTEGER NOT NULL,
    synced_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project, flow, env)
);
INSERT INTO sync_state_0006 (project, flow, env, revision, synced_at_ms)
    SELECT '', flow, env, revision, synced_at_ms FROM sync_state;

-- Approvals keep naming builds gc deleted (0004): no reference to `builds`.
CREATE TABLE approvals_0006 (
    project       TEXT    NOT NULL DEFAULT '',
    env           TEXT    NOT NULL,
    build_id      TEXT    NOT NULL,
    flow          TEXT    NOT NULL DEFAULT '', -- '' = every flow of the env
    actor         TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project, env, build_id, flow, actor)
);
INSERT INTO approvals_0006 (project, env, build_id, flow, actor, reason, created_at_ms)
    SELECT '', env, build_id, flow, actor, reason, created_at_ms FROM approvals;

CREATE TABLE rollouts_0006 (
    project       TEXT    NOT NULL DEFAULT '',
    id            TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'aborted')),
    version       INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project, id)
);
INSERT INTO rollouts_0006 (project, id, env, status, version, actor, body, created_at_ms, updated_at_ms)
    SELECT '', id, env, status, version, actor, body, created_at_ms, updated_at_ms FROM rollouts;

CREATE TABLE pins_0006 (
    project       TEXT    NOT NULL DEFAULT '',
    build_id      TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project, build_id),
    FOREIGN KEY (project, build_id) REFERENCES builds_0006 (project, id) ON UPDATE CASCADE
);
INSERT INTO pins_0006 (project, build_id, actor, reason, created_at_ms)
    SELECT '', build_id, actor, reason, created_at_ms FROM pins;

-- The old tables go, children before `builds` (their indexes go with them).
DROP TABLE build_commits;
DROP TABLE pointers;
DROP TABLE pins;
DROP TABLE releases;
DROP TABLE sync_state;
DROP TABLE approvals;
DROP TABLE rollouts;
DROP TABLE builds;

-- Renaming `builds_0006` rewrites the references to it in the new tables.
ALTER TABLE builds_0006 RENAME TO builds;
ALTER TABLE build_commits_0006 RENAME TO build_commits;
ALTER TABLE pointers_0006 RENAME TO pointers;
ALTER TABLE releases_0006 RENAME TO releases;
ALTER TABLE sync_state_0006 RENAME TO sync_state;
ALTER TABLE approvals_0006 RENAME TO approvals;
ALTER TABLE rollouts_0006 RENAME TO rollouts;
ALTER TABLE pins_0006 RENAME TO pins;

-- The indexes of 0001 and 0003, each led by `project`. At most one active
-- rollout per (project, env), enforced by the database itself.
CREATE INDEX builds_by_time ON builds (project, created_at_ms DESC, id DESC);
CREATE INDEX build_commits_by_sha ON build_commits (project, commit_sha);
CREATE INDEX pointers_by_env ON pointers (project, env, flow);
CREATE UNIQUE INDEX rollouts_one_running_per_env ON rollouts (project, env) WHERE status = 'running';
CREATE INDEX rollouts_by_time ON rollouts (project, created_at_ms DESC, id DESC);
CREATE INDEX rollouts_by_env_time ON rollouts (project, env, created_at_ms DESC, id DESC);
