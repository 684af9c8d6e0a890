-- podium schema v8 (PostgreSQL): audit texts stored once.
--
-- A decision's explanation (every rule of the room and why it lost, a few KB) is the same for every
-- occupant the same rules decide the same way, and an occupant's inputs stay the same from one
-- decision to the next: both are stored once in `audit_texts`, keyed by their digest (the first 64
-- bits of their SHA-256, as a signed integer), and each decision row refers to them. `decisions.inputs` and
-- `decisions.explanation` stay for rows written before this version; new rows leave them empty.
-- `decisions_full` reads every row with its texts whichever way they were stored.
CREATE TABLE audit_texts (
    id      BIGINT  PRIMARY KEY,
    body    TEXT    NOT NULL
);

ALTER TABLE decisions ADD COLUMN inputs_id BIGINT REFERENCES audit_texts (id);
ALTER TABLE decisions ADD COLUMN explanation_id BIGINT REFERENCES audit_texts (id);

CREATE VIEW decisions_full AS
SELECT d.id, d.at, d.room, d.nick, d.real_jid, d.user_id, d.user_name, d.user_email, d.user_group,
       d.previous, d.granted, d.rule_ids, d.reasons, d.cause, d.instance, d.dry_run,
       COALESCE(i.body, d.inputs) AS inputs,
       COALESCE(e.body, d.explanation) AS explanation
FROM decisions d
LEFT JOIN audit_texts i ON i.id = d.inputs_id
LEFT JOIN audit_texts e ON e.id = d.explanation_id;
