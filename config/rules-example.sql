-- Example rules. Load with:  sqlite3 -cmd '.timeout 5000' /var/lib/podium/podium.db < config/rules-example.sql
-- podium notices the change within a poll interval and re-decides every occupant.

-- Everyone may speak and show a camera, in every room.
INSERT INTO rules (room, who, media, effect, priority, note)
VALUES ('*', 'everyone', 'audio,video', 'allow', 0, 'baseline: talk and camera');

-- Only moderators share their screen.
INSERT INTO rules (room, who, who_value, media, effect, priority, note)
VALUES ('*', 'role', 'moderator', 'screen', 'allow', 10, 'moderators present');

-- Town halls: only owners and the speakers group may send anything.
INSERT INTO rules (room, who, media, effect, priority, note)
VALUES ('townhall-*', 'everyone', 'all', 'deny', 50, 'audience listens');
INSERT INTO rules (room, who, who_value, media, effect, priority, note)
VALUES ('townhall-*', 'affiliation', 'owner', 'all', 'allow', 60, 'hosts');
INSERT INTO rules (room, who, who_value, media, effect, priority, note)
VALUES ('townhall-*', 'group', 'speakers', 'all', 'allow', 60, 'JWT context.group = speakers');

-- Guests from the anonymous domain never send video.
INSERT INTO rules (room, who, who_value, media, effect, priority, note)
VALUES ('*', 'jid', '*@guest.meet.example', 'video,screen', 'deny', 100, 'guests: audio only');

-- Classes: students speak one at a time after raising a hand (the next raised hand gets the floor
-- when the speaker lowers it, leaves, or stays muted for rules.idle_seconds).
INSERT INTO rules (room, who, who_value, media, effect, priority, cap, note)
VALUES ('class-*', 'role', 'participant', 'audio', 'request', 10, 1, 'one speaker at a time');

-- Let one person speak in class-7 for ten minutes, whatever the rules say (a grant).
INSERT INTO grants (room, who, who_value, media, expires_at, granted_by, note)
VALUES ('class-7', 'user', 'u-17', 'audio',
        strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+10 minutes'), 'teacher@meet.example', 'a question');
