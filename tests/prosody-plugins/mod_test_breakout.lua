-- Test-only: stands in for jitsi-meet's mod_muc_breakout_rooms in podium's integration tests.
--
-- Load it on the breakout MUC, with test_main_muc naming the main MUC. It keeps the contract podium's
-- module relies on, as jitsi-meet's module does (resources/prosody-plugins/mod_muc_breakout_rooms.lua):
--   * a moderator of a main room creates a breakout room; the main room lists it in
--     room._data.breakout_rooms (breakout room JID -> subject);
--   * a breakout room no main room lists is destroyed before anyone can join it;
--   * a main room's affiliations count in its breakout rooms (its moderators moderate there too).
-- Jitsi's clients ask over a JSON message on the virtual host; here a moderator sends
--   <message to='breakout.<domain>'><add xmlns='urn:podium:test:breakout' main='room@main-muc' name='b1'/>
-- and gets <added jid='b1@breakout.<domain>'/> back once the room is listed. Never load this in production.

local st = require "util.stanza";

local xmlns = "urn:podium:test:breakout";
local main_muc_host = module:get_option_string("test_main_muc");

local function main_muc()
	local host = prosody.hosts[main_muc_host];
	return host and host.modules.muc;
end

local function main_room_of(breakout_jid)
	local muc = main_muc();
	if not muc then return nil; end
	for room in muc.each_room(true) do
		if room._data.breakout_rooms and room._data.breakout_rooms[breakout_jid] then
			return room;
		end
	end
end

module:hook("message/host", function (event)
	local stanza = event.stanza;
	local add = stanza:get_child("add", xmlns);
	if not add then return nil; end
	local muc = main_muc();
	local main_room = muc and muc.get_room_from_jid(add.attr.main or "");
	local occupant = main_room and main_room:get_occupant_by_real_jid(stanza.attr.from);
	if not occupant or occupant.role ~= "moderator" then
		event.origin.send(st.error_reply(stanza, "auth", "forbidden", "only a moderator of the main room"));
		return true;
	end
	local breakout_jid = add.attr.name .. "@" .. module.host;
	main_room._data.breakout_rooms = main_room._data.breakout_rooms or {};
	main_room._data.breakout_rooms[breakout_jid] = add.attr.subject or add.attr.name;
	event.origin.send(st.message({ from = module.host; to = stanza.attr.from })
		:tag("added", { xmlns = xmlns; jid = breakout_jid }));
	return true;
end);

module:hook("muc-room-pre-create", function (event)
	local room = event.room;
	if not main_room_of(room.jid) then
		module:log("info", "breakout room %s is listed by no main room; refused", room.jid);
		event.origin.send(st.error_reply(event.stanza, "cancel", "not-allowed", "no such breakout room"));
		return true;
	end
	-- Affiliations are the main room's (so its moderators moderate here, and nobody else owns the
	-- breakout room by creating it).
	room.get_affiliation = function (_, jid)
		local main_room = main_room_of(room.jid);
		return main_room and main_room:get_affiliation(jid) or "none";
	end;
end, 10);
