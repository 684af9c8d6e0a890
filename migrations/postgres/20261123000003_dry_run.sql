-- podium schema v3 (PostgreSQL): dry-run, as in migrations/sqlite/.
ALTER TABLE rules ADD COLUMN dry_run BIGINT NOT NULL DEFAULT 0;
ALTER TABLE decisions ADD COLUMN dry_run BIGINT NOT NULL DEFAULT 0;
