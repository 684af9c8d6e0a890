-- podium schema v6 (SQLite): breakout rooms. The live view says which name rules match for each
-- occupant: the room's local part, or main/breakout for a breakout room (see README "Where rules apply").
ALTER TABLE occupants ADD COLUMN room_name TEXT NOT NULL DEFAULT '';
