-- A log of the rows each rule or grant edit changed, so podium reads those rows, not every rule
-- (issue 13, point 4: 10,000 rules took most of the 200 ms from a global edit to its first change).
--
-- Every trigger that moves `rules_version` also writes the ids it changed here, under the version it
-- moved to (an UPDATE that changes a row's id writes both ids). podium reads the version, then the
-- entries after the version it holds, then only those rows. Whenever the entries do not cover every
-- version in between (pruned, or the version moved by something that writes no entry, such as an
-- older migration), podium reads every row, as it does at start-up. The triggers keep the last 4,096
-- versions; a podium further behind reads every row.
--
-- `row_id` NULL stands for the whole table.
CREATE TABLE rule_changes (
    version INTEGER NOT NULL,
    -- 'rules' or 'grants'
    tbl     TEXT    NOT NULL,
    row_id  INTEGER
);
CREATE INDEX rule_changes_version ON rule_changes (version);

DROP TRIGGER rules_inserted;
DROP TRIGGER rules_updated;
DROP TRIGGER rules_deleted;
DROP TRIGGER grants_inserted;
DROP TRIGGER grants_updated;
DROP TRIGGER grants_deleted;

CREATE TRIGGER rules_inserted AFTER INSERT ON rules
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
    INSERT INTO rule_changes (version, tbl, row_id)
        SELECT version, 'rules', NEW.id FROM rules_version WHERE id = 1;
    DELETE FROM rule_changes
        WHERE version <= (SELECT version FROM rules_version WHERE id = 1) - 4096;
END;

CREATE TRIGGER rules_updated AFTER UPDATE ON rules
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
    INSERT INTO rule_changes (version, tbl, row_id)
        SELECT version, 'rules', NEW.id FROM rules_version WHERE id = 1
        UNION ALL
        SELECT version, 'rules', OLD.id FROM rules_version WHERE id = 1 AND OLD.id IS NOT NEW.id;
    DELETE FROM rule_changes
        WHERE version <= (SELECT version FROM rules_version WHERE id = 1) - 4096;
END;

CREATE TRIGGER rules_deleted AFTER DELETE ON rules
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
    INSERT INTO rule_changes (version, tbl, row_id)
        SELECT version, 'rules', OLD.id FROM rules_version WHERE id = 1;
    DELETE FROM rule_changes
        WHERE version <= (SELECT version FROM rules_version WHERE id = 1) - 4096;
END;

CREATE TRIGGER grants_inserted AFTER INSERT ON grants
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
    INSERT INTO rule_changes (version, tbl, row_id)
        SELECT version, 'grants', NEW.id FROM rules_version WHERE id = 1;
    DELETE FROM rule_changes
        WHERE version <= (SELECT version FROM rules_version WHERE id = 1) - 4096;
END;

CREATE TRIGGER grants_updated AFTER UPDATE ON grants
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
    INSERT INTO rule_changes (version, tbl, row_id)
        SELECT version, 'grants', NEW.id FROM rules_version WHERE id = 1
        UNION ALL
        SELECT version, 'grants', OLD.id FROM rules_version WHERE id = 1 AND OLD.id IS NOT NEW.id;
    DELETE FROM rule_changes
        WHERE version <= (SELECT version FROM rules_version WHERE id = 1) - 4096;
END;

CREATE TRIGGER grants_deleted AFTER DELETE ON grants
BEGIN
    UPDATE rules_version SET version = version + 1 WHERE id = 1;
    INSERT INTO rule_changes (version, tbl, row_id)
        SELECT version, 'grants', OLD.id FROM rules_version WHERE id = 1;
    DELETE FROM rule_changes
        WHERE version <= (SELECT version FROM rules_version WHERE id = 1) - 4096;
END;
