-- podium schema v2 (PostgreSQL): which podium instance decided; several share this database.
ALTER TABLE decisions ADD COLUMN instance TEXT NOT NULL DEFAULT '';
