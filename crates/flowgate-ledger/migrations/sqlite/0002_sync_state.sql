-- What each (flow, env) pointer revision was last pushed to that env's Prefect
-- server. Append-only migration: a released migration is never edited.
-- `revision` only ever advances; a cell is "pending sync" while its pointer's
-- revision is newer than the one recorded here.

CREATE TABLE sync_state (
    flow         TEXT    NOT NULL,
    env          TEXT    NOT NULL,
    revision     INTEGER NOT NULL,
    synced_at_ms INTEGER NOT NULL,
    PRIMARY KEY (flow, env)
);
