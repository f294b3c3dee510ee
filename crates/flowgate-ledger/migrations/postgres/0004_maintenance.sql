-- Pins, garbage collection and the maintenance lock (issue 5). Append-only: a
-- released migration is never edited. Times are milliseconds since the Unix
-- epoch, UTC; keys use the "C" collation, as in 0001.

-- `flowgate gc` deletes builds that history still names: a release keeps naming
-- its build (and the build it replaced) after that build's row and bundle are
-- gone, because history is never rewritten. `pointers`, `pins` and
-- `build_commits` keep their references: gc never deletes a build a pointer or
-- a pin names, and deletes a build's commit aliases with it.
ALTER TABLE releases DROP CONSTRAINT releases_build_id_fkey;
ALTER TABLE releases DROP CONSTRAINT releases_previous_build_id_fkey;
ALTER TABLE approvals DROP CONSTRAINT approvals_build_id_fkey;

-- `flowgate pin`: builds gc must keep, with who pinned them and why.
CREATE TABLE pins (
    build_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES builds (id),
    actor         TEXT   NOT NULL,
    reason        TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Who holds the maintenance lock of `flowgate gc` and `flowgate fsck`: at most
-- one row. On PostgreSQL the lock itself is a session advisory lock (released
-- by the server when the holder's connection ends, however it ends); the row is
-- written while holding it, so a refused command can name the holder.
-- `token` tells a holder its own row.
CREATE TABLE maintenance_lock (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    token         TEXT   NOT NULL,
    command       TEXT   NOT NULL,
    actor         TEXT   NOT NULL,
    host          TEXT   NOT NULL,
    pid           BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
