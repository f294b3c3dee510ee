-- How a flowgate server verified the actor of an approval or a pin (issue 13):
-- JSON of flowgate_core::Verified (subject, method, issuer, claims, request
-- id). NULL for rows written in direct mode, where nothing verified the actor,
-- and for every row written before this migration. Append-only: a released
-- migration is never edited.
ALTER TABLE approvals ADD COLUMN verified TEXT;
ALTER TABLE pins ADD COLUMN verified TEXT;
