-- podium schema 20261208000002 (PostgreSQL): the database refuses rule rows podium cannot read, as in
-- migrations/sqlite/ (same constraint names, same tests). PostgreSQL's column types already refuse
-- `priority = 'high'`; the constraints add the spellings of `who`, `media` and `effect`, 0/1 for
-- `enabled` and `dry_run`, and a cap of 0 or more. (PostgreSQL rounds `cap = 2.5` to 3 on the way in:
-- no constraint sees the 2.5.)
--
-- An existing row the constraints refuse is moved, with its reason and the time, to
-- `rules_rejected` first, so adding the constraints cannot fail on it and no row is lost; such a row
-- was never in force (podium skipped it). `enabled`/`dry_run` values other than 0 become 1 (podium
-- read any value but 0 as "on"). The table is locked for writes meanwhile, so no row can slip in
-- between the move and the constraints; the constraints are added (and checked against every row) in
-- the same transaction, which on a rules table of any realistic size takes milliseconds.

LOCK TABLE rules IN SHARE ROW EXCLUSIVE MODE;

-- Statement triggers move rules_version (and NOTIFY) even for no row: touch the table only when
-- there is something to change, so an upgrade that changes nothing moves nothing.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM rules WHERE enabled NOT IN (0, 1)) THEN
        UPDATE rules SET enabled = 1 WHERE enabled NOT IN (0, 1);
    END IF;
    IF EXISTS (SELECT 1 FROM rules WHERE dry_run NOT IN (0, 1)) THEN
        UPDATE rules SET dry_run = 1 WHERE dry_run NOT IN (0, 1);
    END IF;
END
$$;

CREATE TABLE rules_rejected (
    id          BIGINT PRIMARY KEY,
    room        TEXT,
    who         TEXT,
    who_value   TEXT,
    media       TEXT,
    effect      TEXT,
    priority    BIGINT,
    enabled     BIGINT,
    note        TEXT,
    created_at  TEXT,
    updated_at  TEXT,
    dry_run     BIGINT,
    not_before  TEXT,
    not_after   TEXT,
    schedule    TEXT,
    time_zone   TEXT,
    cap         BIGINT,
    -- why the upgrade moved the row here
    reason      TEXT NOT NULL,
    moved_at    TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);

WITH verdicts AS (
    SELECT id, CASE
        WHEN NOT (lower(btrim(who, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) || chr(8195) || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202) || chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288)))
                  IN ('everyone', '*', 'role', 'affiliation', 'user', 'group', 'email', 'claim',
                      'jid', 'domain', 'service'))
            THEN 'who ' || quote_literal(who) || ' is not one of everyone, role, affiliation, user, group, email, claim, jid, domain, service'
        WHEN NOT (replace(replace(replace(replace(replace(replace(replace(replace(replace(
                      ',' || replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(lower(media), chr(133), ','), chr(160), ','), chr(5760), ','), chr(8192), ','), chr(8193), ','), chr(8194), ','), chr(8195), ','), chr(8196), ','), chr(8197), ','), chr(8198), ','), chr(8199), ','), chr(8200), ','), chr(8201), ','), chr(8202), ','), chr(8232), ','), chr(8233), ','), chr(8239), ','), chr(8287), ','), chr(12288), ','),
                      ' ', ','), chr(9), ','), chr(10), ','), chr(11), ','), chr(12), ','),
                      chr(13), ','), ',', ',,') || ',',
                      ',audio,', ''), ',video,', ''), ',camera,', ''), ',screen,', ''), ',desktop,', ''),
                      ',screenshare,', ''), ',all,', ''), ',none,', ''), ',', '') = ''
                  AND replace(replace(
                      ',' || replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(lower(media), chr(133), ','), chr(160), ','), chr(5760), ','), chr(8192), ','), chr(8193), ','), chr(8194), ','), chr(8195), ','), chr(8196), ','), chr(8197), ','), chr(8198), ','), chr(8199), ','), chr(8200), ','), chr(8201), ','), chr(8202), ','), chr(8232), ','), chr(8233), ','), chr(8239), ','), chr(8287), ','), chr(12288), ','),
                      ' ', ','), chr(9), ','), chr(10), ','), chr(11), ','), chr(12), ','),
                      chr(13), ','), ',', ',,') || ',',
                      ',none,', ''), ',', '') <> '')
            THEN 'media ' || quote_literal(media) || ' is not audio, video, screen, all or a list of them'
        WHEN NOT (lower(btrim(effect, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) || chr(8195) || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202) || chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288)))
                  IN ('allow', 'deny', 'request'))
            THEN 'effect ' || quote_literal(effect) || ' is not allow, deny or request'
        WHEN NOT (cap IS NULL OR cap >= 0)
            THEN 'cap ' || cap || ' is not NULL or a whole number, 0 or more'
    END AS reason
    FROM rules
)
INSERT INTO rules_rejected (id, room, who, who_value, media, effect, priority, enabled, note,
    created_at, updated_at, dry_run, not_before, not_after, schedule, time_zone, cap, reason)
SELECT r.id, r.room, r.who, r.who_value, r.media, r.effect, r.priority, r.enabled, r.note,
    r.created_at, r.updated_at, r.dry_run, r.not_before, r.not_after, r.schedule, r.time_zone, r.cap,
    v.reason
FROM rules r JOIN verdicts v ON v.id = r.id
WHERE v.reason IS NOT NULL;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM rules_rejected) THEN
        DELETE FROM rules WHERE id IN (SELECT id FROM rules_rejected);
    END IF;
END
$$;

ALTER TABLE rules
    ADD CONSTRAINT "who is a kind the README lists: everyone, role, user, ..." CHECK (
        lower(btrim(who, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) || chr(8195) || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202) || chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288)))
        IN ('everyone', '*', 'role', 'affiliation', 'user', 'group', 'email', 'claim', 'jid',
            'domain', 'service')),
    ADD CONSTRAINT "media is audio, video, screen, all or a list of them" CHECK (
        replace(replace(replace(replace(replace(replace(replace(replace(replace(
            ',' || replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(lower(media), chr(133), ','), chr(160), ','), chr(5760), ','), chr(8192), ','), chr(8193), ','), chr(8194), ','), chr(8195), ','), chr(8196), ','), chr(8197), ','), chr(8198), ','), chr(8199), ','), chr(8200), ','), chr(8201), ','), chr(8202), ','), chr(8232), ','), chr(8233), ','), chr(8239), ','), chr(8287), ','), chr(12288), ','),
            ' ', ','), chr(9), ','), chr(10), ','), chr(11), ','), chr(12), ','),
            chr(13), ','), ',', ',,') || ',',
            ',audio,', ''), ',video,', ''), ',camera,', ''), ',screen,', ''), ',desktop,', ''),
            ',screenshare,', ''), ',all,', ''), ',none,', ''), ',', '') = ''
        AND replace(replace(
            ',' || replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(lower(media), chr(133), ','), chr(160), ','), chr(5760), ','), chr(8192), ','), chr(8193), ','), chr(8194), ','), chr(8195), ','), chr(8196), ','), chr(8197), ','), chr(8198), ','), chr(8199), ','), chr(8200), ','), chr(8201), ','), chr(8202), ','), chr(8232), ','), chr(8233), ','), chr(8239), ','), chr(8287), ','), chr(12288), ','),
            ' ', ','), chr(9), ','), chr(10), ','), chr(11), ','), chr(12), ','),
            chr(13), ','), ',', ',,') || ',',
            ',none,', ''), ',', '') <> ''),
    ADD CONSTRAINT "effect is allow, deny or request" CHECK (
        lower(btrim(effect, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) || chr(8195) || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202) || chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288)))
        IN ('allow', 'deny', 'request')),
    ADD CONSTRAINT "enabled is 0 or 1" CHECK (enabled IN (0, 1)),
    ADD CONSTRAINT "dry_run is 0 or 1" CHECK (dry_run IN (0, 1)),
    ADD CONSTRAINT "cap is NULL or a whole number, 0 or more" CHECK (cap IS NULL OR cap >= 0);
