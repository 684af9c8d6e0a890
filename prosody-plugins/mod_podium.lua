-- mod_podium: tells podium about every MUC occupant, and holds the media permissions podium decides.
--
-- podium (https://github.com/…/podium) decides from SQL rules who may send audio, camera and
-- screenshare in each room. This module is its hand inside Prosody: it forwards every occupant's
-- join, presence change and leave to the podium component, answers podium's snapshot and inspect
-- queries, and holds the permissions podium sends, accepting them only from the configured component.
-- Until podium decides for an occupant, podium_default_permissions apply (default: nothing: fail
-- closed). While podium is away, held decisions stay.
--
-- Load it on the MUC component (Jitsi's conference host), and declare podium's component:
--
--   Component "conference.meet.example" "muc"
--       modules_enabled = { "podium" }
--       podium_component = "podium.meet.example"
--       podium_focus_jids = { "focus@auth.meet.example" }
--
--   Component "podium.meet.example"
--       component_secret = "a long random secret, also in podium's config"
--
-- Options (read once, at load):
--   podium_component            (required) the podium component's domain; the only sender of policy
--   podium_default_permissions  { } media an occupant may send before podium decides: audio, video, screen
--   podium_focus_jids           { } jicofo's bare JIDs; when empty, the occupant with nick "focus" is jicofo
--   podium_inspectors           { } bare JIDs (users or components) allowed to read held permissions
--   podium_snapshot_page        500 the most occupants one snapshot page may carry
--
-- Protocol: docs/protocol.md (namespace urn:podium:0). Pure logic: podium.lib.lua (busted specs).

local st = require "util.stanza";
local jid_bare = require "util.jid".bare;
local jid_host = require "util.jid".host;
local jid_node = require "util.jid".node;
local jid_resource = require "util.jid".resource;
local jid_prep = require "util.jid".prep;

local podium = module:require "podium";

local xmlns_podium = podium.xmlns;
local xmlns_muc_user = "http://jabber.org/protocol/muc#user";

local podium_component = module:get_option_string("podium_component");
local default_list = module:get_option_array("podium_default_permissions", {});
local focus_jids = {};
for focus_jid in module:get_option_set("podium_focus_jids", {}) do
	focus_jids[jid_prep(focus_jid) or focus_jid] = true;
end
local inspectors = module:get_option_set("podium_inspectors", {});
local snapshot_page_max = module:get_option_number("podium_snapshot_page", 500, 1);

if not podium_component then
	module:log("error", "podium_component is not set: add podium_component = \"podium.<domain>\" under this Component");
	return;
end

local default_permissions, default_error = podium.parse_media_list(default_list);
if not default_permissions then
	module:log("error", "podium_default_permissions: %s; failing closed (nothing may be sent)", default_error);
	default_permissions = podium.parse_media_list({});
end

local muc = module:depends("muc");
local state = podium.new_state(default_permissions);

module:log("info", "podium component %s; default permissions %s", podium_component,
	podium.format_set(default_permissions));

--- What is governed ----------------------------------------------------------------------------

-- In 0.12 occupant.nick is the full occupant JID (room@muc/nick).
local function nick_of(occupant)
	return jid_resource(occupant.nick);
end

local function is_governed(room, occupant)
	if podium.is_healthcheck_room(room.jid) then return false; end
	return not podium.is_focus(nick_of(occupant), occupant.bare_jid, focus_jids);
end

--- Occupant reports ----------------------------------------------------------------------------

-- A MUC hook must never raise: an error would cut Prosody's presence handling short (the broadcast,
-- muc-occupant-left, a room's destruction). Errors are logged and contained.
local function contained(name, handler)
	return function (event)
		local ok, err = pcall(handler, event);
		if not ok then
			module:log("error", "%s: %s", name, tostring(err));
		end
	end
end

-- <occupant nick real-jid> with identity, held permissions and the MUC presence (with its muc#user
-- item, as the room computes it for someone who may see real JIDs).
local function occupant_tag(room, occupant, record, presence)
	local tag = st.stanza("occupant", { xmlns = xmlns_podium; nick = nick_of(occupant); ["real-jid"] = record.real_jid });
	local identity = podium.identity_tag(prosody.full_sessions[occupant.jid]);
	if identity then tag:add_child(identity); end
	tag:add_child(podium.held_tag(record));
	if presence then
		local copy = st.clone(presence);
		copy.attr.xmlns = "jabber:client";
		copy:add_child(room:build_item_list(occupant, st.stanza("x", { xmlns = xmlns_muc_user }), false));
		tag:add_child(copy);
	end
	return tag;
end

local function report(kind, room, tag)
	tag.attr.event = kind;
	tag.attr.room = room.jid;
	module:send(st.message({ from = module.host; to = podium_component; type = "normal" }):add_child(tag));
end

-- Fired once per presence the room broadcasts (0.12 muc.lib.lua publicise_occupant_status): joins,
-- presence updates, role and affiliation changes, leaves, kicks and room destruction all pass here.
-- event.stanza is the base presence about to be broadcast; it is cloned, never changed.
module:hook("muc-broadcast-presence", contained("muc-broadcast-presence", function (event)
	local room, occupant = event.room, event.occupant;
	if not is_governed(room, occupant) then return; end
	local nick = nick_of(occupant);
	-- No role: leave, kick, room destruction. An unavailable presence with the role still set: the old
	-- nick of a nick change (muc.lib.lua handle_normal_presence keeps the role on the old occupant).
	if occupant.role == nil or event.stanza.attr.type == "unavailable" then
		local record = state:forget(room.jid, nick);
		if record then
			report("left", room, occupant_tag(room, occupant, record, nil));
		end
		return;
	end
	local real_jid = occupant.jid;
	if not real_jid then return; end
	local record, is_new = state:track(room.jid, nick, real_jid);
	report(is_new and "joined" or "changed", room, occupant_tag(room, occupant, record, event.stanza));
end));

-- A leave is normally seen above; this catches any path that skips the broadcast.
module:hook("muc-occupant-left", contained("muc-occupant-left", function (event)
	local room, occupant = event.room, event.occupant;
	local nick = nick_of(occupant);
	local record = state:forget(room.jid, nick);
	if record then
		report("left", room, occupant_tag(room, occupant, record, nil));
	end
end));

module:hook("muc-room-destroyed", function (event)
	state:forget_room(event.room.jid);
end);

--- Queries and decisions from podium -------------------------------------------------------------

local function is_podium(event)
	local from = event.stanza.attr.from;
	return event.origin.type == "component" and jid_node(from) == nil and jid_host(from) == podium_component;
end

local function refuse(event, text)
	module:log("warn", "refused %s from %s: %s", event.stanza.tags[1].name, tostring(event.stanza.attr.from), text);
	event.origin.send(st.error_reply(event.stanza, "auth", "forbidden", text));
	return true;
end

-- Every governed occupant of every room: the rooms in memory, and the rooms this module tracks, which
-- Prosody may have swapped to disk (muc_room_cache_size) with their occupants; get_room_from_jid
-- brings those back. Occupants that joined before this module loaded are tracked here too.
local function occupied_rooms()
	local room_jids = {};
	for room in muc.each_room(true) do
		room_jids[room.jid] = true;
	end
	for room_jid in pairs(state.rooms) do
		room_jids[room_jid] = true;
	end
	local rooms, by_jid = {}, {};
	for room_jid in pairs(room_jids) do
		local room = not podium.is_healthcheck_room(room_jid) and muc.get_room_from_jid(room_jid);
		if room then
			local occupants = {};
			for _, occupant in room:each_occupant() do
				if occupant.jid and occupant.role and is_governed(room, occupant) then
					occupants[#occupants + 1] = occupant;
				end
			end
			if #occupants > 0 then
				rooms[#rooms + 1] = room_jid;
				by_jid[room_jid] = { room = room; occupants = occupants };
			end
		else
			state:forget_room(room_jid);
		end
	end
	return rooms, by_jid;
end

module:hook("iq-get/host/" .. xmlns_podium .. ":snapshot", function (event)
	if not is_podium(event) then
		return refuse(event, "only the podium component may ask for a snapshot");
	end
	local request = event.stanza.tags[1];
	local max = math.min(tonumber(request.attr.max) or snapshot_page_max, snapshot_page_max);
	if max < 1 then max = 1; end
	local room_jids, by_jid = occupied_rooms();
	local page, next_room = podium.snapshot_page(room_jids, request.attr.after, max, function (room_jid)
		return #by_jid[room_jid].occupants;
	end);
	local reply = st.reply(event.stanza):tag("snapshot", { xmlns = xmlns_podium; next = next_room });
	for _, room_jid in ipairs(page) do
		local entry = by_jid[room_jid];
		reply:tag("room", { jid = room_jid });
		for _, occupant in ipairs(entry.occupants) do
			local record = state:track(room_jid, nick_of(occupant), occupant.jid);
			reply:add_child(occupant_tag(entry.room, occupant, record, occupant:get_presence()));
		end
		reply:up();
	end
	event.origin.send(reply);
	return true;
end);

module:hook("iq-set/host/" .. xmlns_podium .. ":permissions", function (event)
	if not is_podium(event) then
		return refuse(event, "only the podium component may set permissions");
	end
	local entries, err = podium.parse_permissions(event.stanza.tags[1]);
	if not entries then
		event.origin.send(st.error_reply(event.stanza, "modify", "bad-request", err));
		return true;
	end
	local applied = 0;
	local reply = st.reply(event.stanza):tag("applied", { xmlns = xmlns_podium });
	for _, entry in ipairs(entries) do
		if state:apply(entry.jid, entry.real_jid, entry.set) then
			applied = applied + 1;
			module:log("debug", "holding %s for %s", podium.format_set(entry.set), entry.jid);
		else
			reply:tag("gone", { jid = entry.jid }):up();
		end
	end
	reply.tags[1].attr.count = tostring(applied);
	event.origin.send(reply);
	return true;
end);

module:hook("iq-get/host/" .. xmlns_podium .. ":inspect", function (event)
	local from = event.stanza.attr.from;
	if not is_podium(event) and not inspectors:contains(jid_bare(from)) then
		return refuse(event, "only podium and podium_inspectors may inspect held permissions");
	end
	local room_jid = event.stanza.tags[1].attr.room;
	if not room_jid then
		event.origin.send(st.error_reply(event.stanza, "modify", "bad-request", "inspect needs a 'room'"));
		return true;
	end
	local reply = st.reply(event.stanza):tag("inspect", { xmlns = xmlns_podium; room = room_jid });
	for nick, record in pairs(state.rooms[room_jid] or {}) do
		reply:tag("occupant", podium.media_attrs(record.held, {
			jid = room_jid .. "/" .. nick; ["real-jid"] = record.real_jid; origin = record.origin;
		})):up();
	end
	event.origin.send(reply);
	return true;
end);

-- Any other request in podium's namespace is answered, never left hanging.
module:hook("iq/host", function (event)
	local payload = event.stanza.tags[1];
	if payload and payload.attr.xmlns == xmlns_podium and (event.stanza.attr.type == "get" or event.stanza.attr.type == "set") then
		local name = payload.name;
		if name ~= "snapshot" and name ~= "permissions" and name ~= "inspect" then
			event.origin.send(st.error_reply(event.stanza, "cancel", "feature-not-implemented",
				("unknown podium request '%s'"):format(name)));
			return true;
		end
	end
end, 1); -- above mod_iq's dispatcher (priority 0), which would answer service-unavailable

-- Tell podium this module starts with no held state (first load, or a reload with mod_muc): podium
-- resyncs, as after a reconnect. If podium is not connected yet, Prosody bounces this harmlessly and
-- podium resyncs when it connects.
-- From a timer, so that at start-up every host is activated before it is routed.
module:add_timer(0, function ()
	module:send(st.message({ from = module.host; to = podium_component; type = "normal" })
		:tag("reset", { xmlns = xmlns_podium }):up());
end);
