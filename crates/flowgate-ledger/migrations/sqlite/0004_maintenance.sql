-- Pins, garbage collection and the maintenance lock (issue 5). Append-only: a
-- released migration is never edited. Times are milliseconds since the Unix epoch, UTC.

-- `flowgate gc` deletes builds that history still names: a release keeps naming
-- its build (and the build it replaced) after that build's row and bundle are
-- gone, because history is never rewritten. SQLite cannot drop a foreign key,
-- so `releases` and `approvals` are rebuilt without their references to
-- `builds`, same columns in the same order. `pointers`, `pins` and
-- `build_commits` keep theirs: gc never deletes a build a pointer or a pin names,
-- and deletes a build's commit aliases with it.
CREATE TABLE releases_0004 (
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
    PRIMARY KEY (flow, env, revision)
);
INSERT INTO releases_0004 (flow, env, revision, build_id, previous_build_id, kind, kind_detail, actor, reason,
                           created_at_ms, gates, override_reason, rollout_id)
    SELECT flow, env, revision, build_id, previous_build_id, kind, kind_detail, actor, reason,
           created_at_ms, gates, override_reason, rollout_id
    FROM releases;
DROP TABLE releases;
ALTER TABLE releases_0004 RENAME TO releases;

CREATE TABLE approvals_0004 (
    env           TEXT    NOT NULL,
    build_id      TEXT    NOT NULL,
    flow          TEXT    NOT NULL DEFAULT '', -- '' = every flow of the env
    actor         TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (env, build_id, flow, actor)
);
INSERT INTO approvals_0004 (env, build_id, flow, actor, reason, created_at_ms)
    SELECT env, build_id, flow, actor, reason, created_at_ms FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_0004 RENAME TO approvals;

-- `flowgate pin`: builds gc must keep, with who pinned them and why.
CREATE TABLE pins (
    build_id      TEXT    NOT NULL PRIMARY KEY REFERENCES builds (id),
    actor         TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

-- Who holds the maintenance lock of `flowgate gc` and `flowgate fsck`: at most
-- one row. On SQLite the row is the lock itself, taken under the write lock; a
-- holder whose process is gone from this host, or whose lease ran out without
-- being renewed, is stale and may be replaced. `token` tells a holder its own row.
CREATE TABLE maintenance_lock (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    token         TEXT    NOT NULL,
    command       TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
