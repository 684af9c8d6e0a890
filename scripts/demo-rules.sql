-- Rules for the demo started by scripts/run (a fresh database each run).
INSERT INTO rules (room, who, media, effect, priority, note)
VALUES ('*', 'everyone', 'audio', 'allow', 0, 'demo: everyone may speak');
INSERT INTO rules (room, who, who_value, media, effect, priority, note)
VALUES ('*', 'role', 'moderator', 'all', 'allow', 10, 'demo: moderators send anything');
INSERT INTO rules (room, who, who_value, media, effect, priority, note)
VALUES ('*', 'group', 'acme', 'video', 'allow', 5, 'demo: acme shows cameras');
INSERT INTO rules (room, who, who_value, media, effect, priority, enabled, note)
VALUES ('*', 'group', 'acme', 'screen', 'allow', 5, 0, 'demo: acme shares screens');
