-- What each (flow, env) pointer revision was last pushed to that env's Prefect
-- server. Append-only migration: a released migration is never edited.
-- `revision` only ever advances; a cell is "pending sync" while its pointer's
-- revision is newer than the one recorded here.

CREATE TABLE sync_state (
    flow         TEXT COLLATE "C" NOT NULL,
    env          TEXT COLLATE "C" NOT NULL,
    revision     BIGINT NOT NULL,
    synced_at_ms BIGINT NOT NULL,
    PRIMARY KEY (flow, env)
);
