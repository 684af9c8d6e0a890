-- podium schema v5 (PostgreSQL): caps and requests on rules, manual grants, and podium's live view,
-- as in migrations/sqlite/. Grant edits NOTIFY like rule edits.
ALTER TABLE rules ADD COLUMN cap BIGINT;

CREATE TABLE grants (
    id          BIGSERIAL PRIMARY KEY,
    room        TEXT NOT NULL,
    who         TEXT NOT NULL,
    who_value   TEXT,
    media       TEXT NOT NULL DEFAULT 'all',
    expires_at  TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    note        TEXT,
    created_at  TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);

CREATE TRIGGER grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();

CREATE TABLE occupants (
    instance        TEXT NOT NULL,
    room            TEXT NOT NULL,
    nick            TEXT NOT NULL,
    real_jid        TEXT NOT NULL,
    role            TEXT NOT NULL,
    affiliation     TEXT NOT NULL,
    user_id         TEXT,
    user_name       TEXT,
    user_email      TEXT,
    user_group      TEXT,
    claims          TEXT NOT NULL DEFAULT '{}',
    services        TEXT NOT NULL DEFAULT '',
    joined_at       TEXT NOT NULL,
    hand_raised_at  TEXT,
    permissions     TEXT NOT NULL,
    reasons         TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (instance, room, nick)
);

CREATE TABLE queue (
    instance        TEXT   NOT NULL,
    room            TEXT   NOT NULL,
    media           TEXT   NOT NULL,
    position        BIGINT NOT NULL,
    nick            TEXT   NOT NULL,
    real_jid        TEXT   NOT NULL,
    rule_id         BIGINT NOT NULL,
    waiting_for     TEXT   NOT NULL,
    hand_raised_at  TEXT,
    joined_at       TEXT   NOT NULL,
    PRIMARY KEY (instance, room, media, waiting_for, position)
);

ALTER TABLE decisions ADD COLUMN inputs TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN explanation TEXT NOT NULL DEFAULT '';
