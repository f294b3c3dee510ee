-- Which flowgate server replica drives a rollout, and until when (issue 13):
-- replicas sharing one ledger each ask for the lease before they step a
-- rollout and renew it while they drive; a replica that dies stops renewing,
-- and once `expires_at_ms` has passed another takes the lease over. A row is
-- bookkeeping, not history: it says nothing a rollout's own row does not.
-- Times are milliseconds since the Unix epoch, UTC, on the replicas' clocks.
-- Append-only: a released migration is never edited.
CREATE TABLE rollout_leases (
    project       TEXT NOT NULL,
    rollout_id    TEXT NOT NULL,
    holder        TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (project, rollout_id)
);
