-- Gates, approvals and rollouts (issue 4). Append-only: a released migration is
-- never edited. Times are milliseconds since the Unix epoch, UTC.

-- The audit of each release: NULL when the move carried none.
ALTER TABLE releases ADD COLUMN gates TEXT; -- JSON array of gate results; NULL when no gate ran
ALTER TABLE releases ADD COLUMN override_reason TEXT; -- set when gates were overridden
ALTER TABLE releases ADD COLUMN rollout_id TEXT; -- the rollout that made the move

-- `flowgate approve`: one row per (env, build, flow, actor); the first one recorded wins.
CREATE TABLE approvals (
    env           TEXT    NOT NULL,
    build_id      TEXT    NOT NULL REFERENCES builds (id),
    flow          TEXT    NOT NULL DEFAULT '', -- '' = every flow of the env
    actor         TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (env, build_id, flow, actor)
);

-- Durable rollouts. `version` is the compare-and-swap counter of transitions;
-- `body` is the rollout's JSON state, owned by the domain core.
CREATE TABLE rollouts (
    id            TEXT    NOT NULL PRIMARY KEY,
    env           TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'aborted')),
    version       INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
-- At most one active rollout per env, enforced by the database itself.
CREATE UNIQUE INDEX rollouts_one_running_per_env ON rollouts (env) WHERE status = 'running';
CREATE INDEX rollouts_by_time ON rollouts (created_at_ms DESC, id DESC);
CREATE INDEX rollouts_by_env_time ON rollouts (env, created_at_ms DESC, id DESC);
