-- podium schema v4 (SQLite): when a rule is in force. not_before / not_after are RFC 3339 times
-- (e.g. 2026-12-01T09:00:00Z); schedule is a weekly schedule such as 'mon-fri 09:00-17:00' in
-- time_zone (IANA, e.g. 'Europe/Berlin'; UTC when NULL). All NULL: always in force.
ALTER TABLE rules ADD COLUMN not_before TEXT;
ALTER TABLE rules ADD COLUMN not_after TEXT;
ALTER TABLE rules ADD COLUMN schedule TEXT;
ALTER TABLE rules ADD COLUMN time_zone TEXT;
