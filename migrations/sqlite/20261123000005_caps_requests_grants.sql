-- podium schema v5 (SQLite): caps and requests on rules, manual grants, and podium's live view.
--
-- rules.cap: at most this many occupants of one room hold each of the rule's kinds through capped
-- rules; the others wait in `queue`. NULL: no cap. rules.effect may now be 'request': the occupant
-- must raise a hand (and then wait for a free slot of the cap, or for a grant).
ALTER TABLE rules ADD COLUMN cap INTEGER;

-- Temporary grants admins, moderators' tools or podium itself insert. A grant in force allows its
-- kinds over every rule. Edits move rules_version like rule edits.
CREATE TABLE grants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- as rules.room: '*', an exact room name or a glob
    room        TEXT    NOT NULL,
    -- as rules.who: user | email | jid | domain | group | claim | role | affiliation | everyone | service
    who         TEXT    NOT NULL,
    who_value   TEXT,
    -- audio | video | screen | a comma list | all
    media       TEXT    NOT NULL DEFAULT 'all',
    -- RFC 3339; the grant ends then (podium re-decides at that moment)
    expires_at  TEXT    NOT NULL,
    -- who granted: an admin's name, a tool, a moderator's JID
    granted_by  TEXT    NOT NULL,
    note        TEXT,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TRIGGER grants_inserted AFTER INSERT ON grants
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER grants_updated AFTER UPDATE ON grants
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER grants_deleted AFTER DELETE ON grants
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
END;

-- podium's view of the occupants it governs, written by podium (read it, do not edit it): what
-- `podium explain` evaluates, and what admins query. One row per occupant per instance.
CREATE TABLE occupants (
    instance        TEXT    NOT NULL,
    room            TEXT    NOT NULL,
    nick            TEXT    NOT NULL,
    real_jid        TEXT    NOT NULL,
    role            TEXT    NOT NULL,
    affiliation     TEXT    NOT NULL,
    user_id         TEXT,
    user_name       TEXT,
    user_email      TEXT,
    user_group      TEXT,
    -- JSON object of the other token claims ('user.<key>' / 'features.<key>' → value)
    claims          TEXT    NOT NULL DEFAULT '{}',
    -- trusted services, e.g. 'jibri'
    services        TEXT    NOT NULL DEFAULT '',
    -- RFC 3339, as podium saw them (a client's own raisedHand timestamp is not believed)
    joined_at       TEXT    NOT NULL,
    hand_raised_at  TEXT,
    -- what the occupant may send now, e.g. 'audio,video' or 'none'
    permissions     TEXT    NOT NULL,
    reasons         TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    PRIMARY KEY (instance, room, nick)
);

-- Who waits for a capped or requested kind, in order (position 1 is next). Rewritten by podium for
-- a room whenever its queue moves.
CREATE TABLE queue (
    instance        TEXT    NOT NULL,
    room            TEXT    NOT NULL,
    media           TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    nick            TEXT    NOT NULL,
    real_jid        TEXT    NOT NULL,
    rule_id         INTEGER NOT NULL,
    -- 'slot' (waiting for a cap to free) or 'approval' (a request rule without a cap: a moderator or
    -- an admin must grant)
    waiting_for     TEXT    NOT NULL,
    hand_raised_at  TEXT,
    joined_at       TEXT    NOT NULL,
    PRIMARY KEY (instance, room, media, waiting_for, position)
);

-- The explanation stored with every decision change: the inputs used and why other rules lost.
ALTER TABLE decisions ADD COLUMN inputs TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN explanation TEXT NOT NULL DEFAULT '';
