-- Preview environments (issue 16): an env opened for a branch by `flowgate
-- preview up`, placed like another env (`from_env`; `from_config` names its
-- table in flowgate.toml), running `build_id`, until `expires_at_ms` or until
-- `preview down` (or gc, once expired) closes it. A closed row stays: the
-- env's history stays in `releases`, and this says whose it was. `up` on the
-- same branch again reopens the row.
-- Times are milliseconds since the Unix epoch, UTC.
-- Append-only: a released migration is never edited.
CREATE TABLE previews (
    project       TEXT NOT NULL,
    env           TEXT NOT NULL,
    branch        TEXT NOT NULL,
    from_env      TEXT NOT NULL,
    from_config   TEXT NOT NULL,
    build_id      TEXT NOT NULL,
    actor         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    closed_at_ms  BIGINT,
    PRIMARY KEY (project, env)
);
