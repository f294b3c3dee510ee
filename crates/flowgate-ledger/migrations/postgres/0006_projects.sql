-- A multi-project ledger (issue 12, item 2): one database serves many
-- repositories, each `[project] name` its own rows. Append-only: a released
-- migration is never edited. Times are milliseconds since the Unix epoch, UTC;
-- keys use the "C" collation, as in 0001.
--
-- Every data table gains `project`, first in its primary key and its indexes.
-- Rows from before this migration get project '' (never a valid project
-- name): the first project to open the ledger claims them (flowgate_ledger::open).
-- References to `builds` become (project, build_id) -> builds (project, id);
-- `ON UPDATE CASCADE` lets that claim move a build together with the rows
-- naming it.

-- The projects recorded in this ledger, and the repository each belongs to
-- (its root commit and `origin` remote, NULL when unknown), so two projects
-- with one name are told apart instead of merged.
CREATE TABLE projects (
    name          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    root_commit   TEXT,
    remote        TEXT,
    created_at_ms BIGINT NOT NULL
);

-- The references to `builds` go first: its key changes under them.
ALTER TABLE build_commits DROP CONSTRAINT build_commits_build_id_fkey;
ALTER TABLE pointers DROP CONSTRAINT pointers_build_id_fkey;
ALTER TABLE pins DROP CONSTRAINT pins_build_id_fkey;

ALTER TABLE builds ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE builds DROP CONSTRAINT builds_pkey;
ALTER TABLE builds ADD CONSTRAINT builds_pkey PRIMARY KEY (project, id);

ALTER TABLE build_commits ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE build_commits DROP CONSTRAINT build_commits_pkey;
ALTER TABLE build_commits ADD CONSTRAINT build_commits_pkey PRIMARY KEY (project, build_id, commit_sha);
ALTER TABLE build_commits ADD CONSTRAINT build_commits_build_id_fkey
    FOREIGN KEY (project, build_id) REFERENCES builds (project, id) ON UPDATE CASCADE;

ALTER TABLE pointers ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE pointers DROP CONSTRAINT pointers_pkey;
ALTER TABLE pointers ADD CONSTRAINT pointers_pkey PRIMARY KEY (project, flow, env);
ALTER TABLE pointers ADD CONSTRAINT pointers_build_id_fkey
    FOREIGN KEY (project, build_id) REFERENCES builds (project, id) ON UPDATE CASCADE;

-- History and approvals keep naming builds gc deleted (0004): no reference to `builds`.
ALTER TABLE releases ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE releases DROP CONSTRAINT releases_pkey;
ALTER TABLE releases ADD CONSTRAINT releases_pkey PRIMARY KEY (project, flow, env, revision);

ALTER TABLE sync_state ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sync_state DROP CONSTRAINT sync_state_pkey;
ALTER TABLE sync_state ADD CONSTRAINT sync_state_pkey PRIMARY KEY (project, flow, env);

ALTER TABLE approvals ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE approvals DROP CONSTRAINT approvals_pkey;
ALTER TABLE approvals ADD CONSTRAINT approvals_pkey PRIMARY KEY (project, env, build_id, flow, actor);

ALTER TABLE rollouts ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE rollouts DROP CONSTRAINT rollouts_pkey;
ALTER TABLE rollouts ADD CONSTRAINT rollouts_pkey PRIMARY KEY (project, id);

ALTER TABLE pins ADD COLUMN project TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE pins DROP CONSTRAINT pins_pkey;
ALTER TABLE pins ADD CONSTRAINT pins_pkey PRIMARY KEY (project, build_id);
ALTER TABLE pins ADD CONSTRAINT pins_build_id_fkey
    FOREIGN KEY (project, build_id) REFERENCES builds (project, id) ON UPDATE CASCADE;

-- The indexes of 0001 and 0003, each led by `project`. At most one active
-- rollout per (project, env), enforced by the database itself.
DROP INDEX builds_by_time;
CREATE INDEX builds_by_time ON builds (project, created_at_ms DESC, id DESC);
DROP INDEX build_commits_by_sha;
CREATE INDEX build_commits_by_sha ON build_commits (project, commit_sha);
DROP INDEX pointers_by_env;
CREATE INDEX pointers_by_env ON pointers (project, env, flow);
DROP INDEX rollouts_one_running_per_env;
CREATE UNIQUE INDEX rollouts_one_running_per_env ON rollouts (project, env) WHERE status = 'running';
DROP INDEX rollouts_by_time;
CREATE INDEX rollouts_by_time ON rollouts (project, created_at_ms DESC, id DESC);
DROP INDEX rollouts_by_env_time;
CREATE INDEX rollouts_by_env_time ON rollouts (project, env, created_at_ms DESC, id DESC);
