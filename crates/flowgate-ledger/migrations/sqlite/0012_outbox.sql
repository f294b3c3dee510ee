-- Notifications (issue 14): every event is written to the outbox in the same
-- transaction as the change it tells of (moves, approvals, rollout steps), so
-- a server killed after the commit still delivers it. `id` is derived from
-- what happened and is the deliveries' idempotency key: writing the same fact
-- again adds nothing. `body` is the event's JSON.
-- A server replica claims an event (`claimed_by` until `claimed_until_ms`)
-- while it delivers it, so replicas do not post it at once; `settled_at_ms` is
-- set when every webhook that wants it has it or gave up; until then
-- `due_at_ms` is when a webhook's next attempt is due. Each webhook's
-- attempts are a row of `outbox_deliveries`, keyed by the webhook's name.
-- Times are milliseconds since the Unix epoch, UTC.
-- Append-only: a released migration is never edited.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    project          TEXT NOT NULL,
    env              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    due_at_ms        BIGINT NOT NULL,
    settled_at_ms    BIGINT,
    claimed_by       TEXT,
    claimed_until_ms BIGINT
);
CREATE INDEX outbox_unsettled ON outbox (due_at_ms) WHERE settled_at_ms IS NULL;

CREATE TABLE outbox_deliveries (
    event_id           TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    hook               TEXT NOT NULL,
    attempts           BIGINT NOT NULL,
    next_attempt_at_ms BIGINT,
    delivered_at_ms    BIGINT,
    last_error         TEXT,
    PRIMARY KEY (event_id, hook)
);
