-- podium schema v2 (SQLite): which podium instance decided (several instances, one per Prosody
-- shard, may share a rule store; on SQLite there is normally one).
ALTER TABLE decisions ADD COLUMN instance TEXT NOT NULL DEFAULT '';
