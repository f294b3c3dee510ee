-- API tokens of a flowgate server (issue 13): who may call its API. Not scoped
-- to a project: a token's grants ("releaser:qa") hold in every project the
-- server serves. The secret itself is never stored, only its BLAKE3 hash, so a
-- copy of the database lets nobody act. Times are milliseconds since the Unix
-- epoch, UTC. Append-only: a released migration is never edited.
CREATE TABLE api_tokens (
    name          TEXT NOT NULL PRIMARY KEY,
    secret_hash   TEXT NOT NULL UNIQUE,
    -- JSON array of grants, e.g. ["releaser:qa","viewer"].
    grants        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER,
    revoked_at_ms INTEGER
);
