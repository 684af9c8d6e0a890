-- podium schema v9 (PostgreSQL): an explanation per rule-set version and room, reasons stored once.
--
-- A decision's explanation is now the rules and grants of its room as they stood (through
-- `audit_texts.head_id`, the part all rooms share: how to read it, rules.default and the rules for
-- every room; then the room's own rules and grants): the same for every occupant of the room until
-- the rules change, so one is stored per rule-set version and room.
-- With the row's reasons (which rule or grant decided each kind) and its inputs it says what
-- `podium explain` says. The per-kind reasons, the same for everyone decided the same way, are
-- stored once too (`reasons_id`; new rows leave `decisions.reasons` empty). The stored inputs leave
-- out the identity the row holds (real JID, user id, group, email), so occupants alike but for who
-- they are share them; `decisions_full` puts it back (JSON null, i.e. absent, drops out). It reads
-- every row with its texts, whichever way it was stored.
ALTER TABLE audit_texts ADD COLUMN head_id BIGINT REFERENCES audit_texts (id);
ALTER TABLE decisions ADD COLUMN reasons_id BIGINT REFERENCES audit_texts (id);

DROP VIEW decisions_full;
CREATE VIEW decisions_full AS
SELECT d.id, d.at, d.room, d.nick, d.real_jid, d.user_id, d.user_name, d.user_email, d.user_group,
       d.previous, d.granted, d.rule_ids, COALESCE(r.body, d.reasons) AS reasons, d.cause,
       d.instance, d.dry_run,
       CASE WHEN i.body IS NULL THEN d.inputs
            ELSE (i.body::jsonb || jsonb_strip_nulls(jsonb_build_object(
                'real_jid', split_part(d.real_jid, '/', 1),
                'user_id', d.user_id, 'group', d.user_group, 'email', d.user_email)))::text
       END AS inputs,
       COALESCE(COALESCE(h.body, '') || e.body, d.explanation) AS explanation
FROM decisions d
LEFT JOIN audit_texts r ON r.id = d.reasons_id
LEFT JOIN audit_texts i ON i.id = d.inputs_id
LEFT JOIN audit_texts e ON e.id = d.explanation_id
LEFT JOIN audit_texts h ON h.id = e.head_id;
