-- The ledger schema (SQLite). Append-only: a released migration is never edited.
-- Times are milliseconds since the Unix epoch, UTC.

CREATE TABLE builds (
    id            TEXT    NOT NULL PRIMARY KEY,
    bundle        TEXT    NOT NULL,
    bundle_size   INTEGER NOT NULL,
    file_count    INTEGER NOT NULL,
    images        TEXT    NOT NULL, -- JSON object: flow key -> pinned image
    commit_sha    TEXT    NOT NULL, -- the first commit recorded for this build
    branch        TEXT,
    dirty         BOOLEAN NOT NULL,
    author        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX builds_by_time ON builds (created_at_ms DESC, id DESC);

-- Every commit that produced a build (same tree, several commits).
CREATE TABLE build_commits (
    build_id   TEXT NOT NULL REFERENCES builds (id),
    commit_sha TEXT NOT NULL,
    PRIMARY KEY (build_id, commit_sha)
);
CREATE INDEX build_commits_by_sha ON build_commits (commit_sha);

-- The current revision of each (flow, env): what `status` reads, and nothing else.
CREATE TABLE pointers (
    flow          TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    revision      INTEGER NOT NULL,
    build_id      TEXT    NOT NULL REFERENCES builds (id),
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (flow, env)
);
CREATE INDEX pointers_by_env ON pointers (env, flow);

-- Append-only history. The primary key (flow, env, revision) is the history
-- index: newest-first reads walk it backwards.
CREATE TABLE releases (
    flow              TEXT    NOT NULL,
    env               TEXT    NOT NULL,
    revision          INTEGER NOT NULL,
    build_id          TEXT    NOT NULL REFERENCES builds (id),
    previous_build_id TEXT    REFERENCES builds (id),
    kind              TEXT    NOT NULL CHECK (kind IN ('release', 'promote', 'rollback')),
    kind_detail       TEXT, -- promote: the source env; rollback: the target revision
    actor             TEXT    NOT NULL,
    reason            TEXT,
    created_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (flow, env, revision)
);
