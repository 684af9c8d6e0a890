-- podium schema v3 (SQLite): dry-run. A rule with dry_run = 1 is evaluated and its effect logged and
-- audited as "would grant / would revoke", but not enforced. Audit rows of such would-be changes (and
-- of podium as a whole in dry-run, rules.dry_run in podium.toml) have dry_run = 1.
ALTER TABLE rules ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;
ALTER TABLE decisions ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0;
