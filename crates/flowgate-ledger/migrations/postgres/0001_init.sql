-- The ledger schema (PostgreSQL). Append-only: a released migration is never edited.
-- Times are milliseconds since the Unix epoch, UTC. Keys use the "C" collation so
-- ordering and prefix ranges are bytewise, the same as in SQLite.

CREATE TABLE builds (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    bundle        TEXT    NOT NULL,
    bundle_size   BIGINT  NOT NULL,
    file_count    BIGINT  NOT NULL,
    images        TEXT    NOT NULL, -- JSON object: flow key -> pinned image
    commit_sha    TEXT COLLATE "C" NOT NULL, -- the first commit recorded for this build
    branch        TEXT,
    dirty         BOOLEAN NOT NULL,
    author        TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX builds_by_time ON builds (created_at_ms DESC, id DESC);

-- Every commit that produced a build (same tree, several commits).
CREATE TABLE build_commits (
    build_id   TEXT COLLATE "C" NOT NULL REFERENCES builds (id),
    commit_sha TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (build_id, commit_sha)
);
CREATE INDEX build_commits_by_sha ON build_commits (commit_sha);

-- The current revision of each (flow, env): what `status` reads, and nothing else.
CREATE TABLE pointers (
    flow          TEXT COLLATE "C" NOT NULL,
    env           TEXT COLLATE "C" NOT NULL,
    revision      BIGINT NOT NULL,
    build_id      TEXT COLLATE "C" NOT NULL REFERENCES builds (id),
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (flow, env)
);
CREATE INDEX pointers_by_env ON pointers (env, flow);

-- Append-only history. The primary key (flow, env, revision) is the history
-- index: newest-first reads walk it backwards.
CREATE TABLE releases (
    flow              TEXT COLLATE "C" NOT NULL,
    env               TEXT COLLATE "C" NOT NULL,
    revision          BIGINT NOT NULL,
    build_id          TEXT COLLATE "C" NOT NULL REFERENCES builds (id),
    previous_build_id TEXT COLLATE "C" REFERENCES builds (id),
    kind              TEXT   NOT NULL CHECK (kind IN ('release', 'promote', 'rollback')),
    kind_detail       TEXT, -- promote: the source env; rollback: the target revision
    actor             TEXT   NOT NULL,
    reason            TEXT,
    created_at_ms     BIGINT NOT NULL,
    PRIMARY KEY (flow, env, revision)
);
