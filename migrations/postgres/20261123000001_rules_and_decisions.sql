-- podium schema v1 (PostgreSQL): the same tables and meaning as migrations/sqlite/, for several
-- podium instances (one per Prosody shard) sharing one rule store.
--
-- `rules` is written by admins with plain SQL; every INSERT, UPDATE, DELETE or TRUNCATE moves
-- `rules_version` and sends NOTIFY podium_rules (payload: the new version), so every podium listening
-- re-reads the rules at once. Integer columns are BIGINT: podium reads them as 64-bit everywhere.

CREATE TABLE rules (
    id          BIGSERIAL PRIMARY KEY,
    -- '*' for every room, an exact room name (the local part of the room JID), or a glob with * and ?
    room        TEXT   NOT NULL DEFAULT '*',
    -- everyone | role | affiliation | user | group | jid
    who         TEXT   NOT NULL DEFAULT 'everyone',
    who_value   TEXT,
    -- audio | video | screen | a comma list of them | all
    media       TEXT   NOT NULL DEFAULT 'all',
    -- allow | deny
    effect      TEXT   NOT NULL,
    -- the highest priority among matching rules wins; deny wins a tie
    priority    BIGINT NOT NULL DEFAULT 0,
    -- 0 turns the rule off without deleting it
    enabled     BIGINT NOT NULL DEFAULT 1,
    note        TEXT,
    created_at  TEXT   NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    updated_at  TEXT   NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);

CREATE TABLE rules_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO rules_version (id, version) VALUES (1, 0);

CREATE FUNCTION podium_rules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_version BIGINT;
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1 RETURNING version INTO new_version;
    PERFORM pg_notify('podium_rules', new_version::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();

CREATE TABLE decisions (
    id          BIGSERIAL PRIMARY KEY,
    -- UTC, RFC 3339
    at          TEXT NOT NULL,
    room        TEXT NOT NULL,
    nick        TEXT NOT NULL,
    real_jid    TEXT NOT NULL,
    user_id     TEXT,
    user_name   TEXT,
    user_email  TEXT,
    user_group  TEXT,
    -- what the occupant could send before and after, e.g. 'audio,video' or 'none'
    previous    TEXT NOT NULL,
    granted     TEXT NOT NULL,
    -- the rule ids that decided, e.g. '3,7' ('' when only the default applied)
    rule_ids    TEXT NOT NULL,
    -- per kind: 'audio: allow by rule 3 (priority 10); video: deny by default; ...'
    reasons     TEXT NOT NULL,
    -- joined | changed | left | rules | resync
    cause       TEXT NOT NULL
);

CREATE INDEX decisions_room_at ON decisions (room, at);
CREATE INDEX decisions_at ON decisions (at);
