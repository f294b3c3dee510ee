-- How a flowgate server verified who asked for a move (issue 13): JSON of
-- flowgate_core::Verified (subject, method, issuer, claims, request id). NULL
-- for moves made in direct mode, where nothing verified the actor, and for
-- every move recorded before this migration. Append-only: a released
-- migration is never edited.
ALTER TABLE releases ADD COLUMN verified TEXT;
