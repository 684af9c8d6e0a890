-- A log of the rows each rule or grant edit changed, so podium reads those rows, not every rule
-- (issue 13, point 4; as in migrations/sqlite/).
--
-- The statement triggers now see the rows a statement changed (transition tables), write their ids
-- here under the version they move `rules_version` to, and NOTIFY as before. A statement that
-- changes no row moves nothing. TRUNCATE writes a NULL id: the whole table. The version row is
-- locked until the edit commits, so versions are given in commit order and a reader never sees a
-- later version before an earlier one. The triggers keep the last 4,096 versions.
CREATE TABLE rule_changes (
    version BIGINT NOT NULL,
    -- 'rules' or 'grants'
    tbl     TEXT   NOT NULL,
    row_id  BIGINT
);
CREATE INDEX rule_changes_version ON rule_changes (version);

DROP TRIGGER rules_changed ON rules;
DROP TRIGGER grants_changed ON grants;

-- Transition tables exist only for the event the trigger is for: each branch reads its own.
CREATE OR REPLACE FUNCTION podium_rules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_version BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
    END IF;
    UPDATE rules_version SET version = version + 1 WHERE id = 1 RETURNING version INTO new_version;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO rule_changes (version, tbl, row_id)
            SELECT new_version, TG_TABLE_NAME, id FROM new_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO rule_changes (version, tbl, row_id)
            SELECT new_version, TG_TABLE_NAME, id FROM new_rows
            UNION
            SELECT new_version, TG_TABLE_NAME, id FROM old_rows;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO rule_changes (version, tbl, row_id)
            SELECT new_version, TG_TABLE_NAME, id FROM old_rows;
    ELSE
        INSERT INTO rule_changes (version, tbl, row_id) VALUES (new_version, TG_TABLE_NAME, NULL);
    END IF;
    DELETE FROM rule_changes WHERE version <= new_version - 4096;
    PERFORM pg_notify('podium_rules', new_version::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER rules_inserted AFTER INSERT ON rules
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();
CREATE TRIGGER rules_updated AFTER UPDATE ON rules
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();
CREATE TRIGGER rules_deleted AFTER DELETE ON rules
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();
CREATE TRIGGER rules_truncated AFTER TRUNCATE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();

CREATE TRIGGER grants_inserted AFTER INSERT ON grants
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();
CREATE TRIGGER grants_updated AFTER UPDATE ON grants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();
CREATE TRIGGER grants_deleted AFTER DELETE ON grants
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();
CREATE TRIGGER grants_truncated AFTER TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION podium_rules_changed();
