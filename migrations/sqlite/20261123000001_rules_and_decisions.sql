-- podium schema v1 (SQLite).
--
-- `rules` is written by admins with plain SQL; podium re-reads it when `rules_version` moves
-- (the triggers below move it for every INSERT, UPDATE and DELETE, from any process).
-- `decisions` is podium's audit log: one row per change of an occupant's permissions.
--
-- Later rule kinds (caps, queues, time windows, request/approve) extend this without a rewrite:
-- new nullable columns on `rules` (e.g. active windows) and new tables keyed by rule id.

CREATE TABLE rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- '*' for every room, an exact room name (the local part of the room JID), or a glob with * and ?
    room        TEXT    NOT NULL DEFAULT '*',
    -- everyone | role | affiliation | user | group | jid
    who         TEXT    NOT NULL DEFAULT 'everyone',
    -- role: moderator|participant|visitor; affiliation: owner|admin|member|none|outcast;
    -- user: JWT context.user.id; group: JWT context.group; jid: real bare JID glob
    who_value   TEXT,
    -- audio | video | screen | a comma list of them | all
    media       TEXT    NOT NULL DEFAULT 'all',
    -- allow | deny
    effect      TEXT    NOT NULL,
    -- the highest priority among matching rules wins; deny wins a tie
    priority    INTEGER NOT NULL DEFAULT 0,
    -- 0 turns the rule off without deleting it
    enabled     INTEGER NOT NULL DEFAULT 1,
    note        TEXT,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE rules_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO rules_version (id, version) VALUES (1, 0);

CREATE TRIGGER rules_inserted AFTER INSERT ON rules
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER rules_updated AFTER UPDATE ON rules
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER rules_deleted AFTER DELETE ON rules
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
END;

CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- UTC, RFC 3339
    at          TEXT    NOT NULL,
    room        TEXT    NOT NULL,
    nick        TEXT    NOT NULL,
    real_jid    TEXT    NOT NULL,
    user_id     TEXT,
    user_name   TEXT,
    user_email  TEXT,
    user_group  TEXT,
    -- what the occupant could send before and after, e.g. 'audio,video' or 'none'
    previous    TEXT    NOT NULL,
    granted     TEXT    NOT NULL,
    -- the rule ids that decided, e.g. '3,7' ('' when only the default applied)
    rule_ids    TEXT    NOT NULL,
    -- per kind: 'audio: allow by rule 3 (priority 10); video: deny by default; ...'
    reasons     TEXT    NOT NULL,
    -- joined | changed | left | rules | resync
    cause       TEXT    NOT NULL
);

CREATE INDEX decisions_room_at ON decisions (room, at);
CREATE INDEX decisions_at ON decisions (at);
