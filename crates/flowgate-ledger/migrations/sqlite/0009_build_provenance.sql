-- Who registered a build through a flowgate server, as the server verified
-- them (issue 13): one row per registration, so a build first registered by a
-- job on a feature branch and again by a job on main carries both. `verified`
-- is JSON of flowgate_core::Verified; for a CI job its claims hold the
-- repository, ref and sha a policy's `provenance` checks. Times are
-- milliseconds since the Unix epoch, UTC. Append-only: a released migration
-- is never edited.
CREATE TABLE build_provenance (
    project        TEXT NOT NULL,
    build_id       TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    verified       TEXT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project, build_id, request_id)
);
