-- podium schema v7 (PostgreSQL): approvals end with their meeting.
--
-- grants.meeting: the Jitsi meeting (the room's meeting id, jitsi-meet's mod_muc_meeting_id, or one
-- mod_podium gives the room) a grant is for. A grant with a meeting counts only while its room holds
-- that meeting, so a moderator's approval (source 'av_moderation', which podium writes with the
-- meeting) ends when the meeting does, even if podium was down then. NULL: any meeting (every admin
-- grant, and an approval an admin extends beyond its meeting).
ALTER TABLE grants ADD COLUMN meeting TEXT;
