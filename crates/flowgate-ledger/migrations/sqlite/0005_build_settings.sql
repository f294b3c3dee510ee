-- The deployment settings a build carries: every env's deployment of every flow,
-- resolved from the commit's `flowgate.toml` when the build was made (JSON, see
-- flowgate_core::BuildSettings). NULL for builds recorded before this migration:
-- those are deployed with the settings of the working tree, as before.
-- Append-only migration: a released migration is never edited.

ALTER TABLE builds ADD COLUMN settings TEXT;
