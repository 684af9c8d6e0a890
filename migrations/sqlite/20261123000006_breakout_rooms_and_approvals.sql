-- podium schema v6 (SQLite): breakout rooms and A/V-moderation approvals.
--
-- occupants.room_name: the name rules match for each occupant now: the room's local part, or
-- main/breakout for a breakout room (see README "Where rules apply").
ALTER TABLE occupants ADD COLUMN room_name TEXT NOT NULL DEFAULT '';

-- grants.source: who wrote the row. 'sql' for admins and tools; 'av_moderation' for a moderator's
-- approval in Jitsi's A/V moderation, which podium inserts and removes itself when it is withdrawn.
ALTER TABLE grants ADD COLUMN source TEXT NOT NULL DEFAULT 'sql';
