-- podium schema v4 (PostgreSQL): when a rule is in force, as in migrations/sqlite/.
ALTER TABLE rules ADD COLUMN not_before TEXT;
ALTER TABLE rules ADD COLUMN not_after TEXT;
ALTER TABLE rules ADD COLUMN schedule TEXT;
ALTER TABLE rules ADD COLUMN time_zone TEXT;
