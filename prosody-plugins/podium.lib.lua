-- podium.lib.lua: the pure parts of mod_podium (no hooks, no sending), tested with busted.
--
-- Held permissions per occupant, option parsing, what is governed, and the podium protocol's
-- elements (see docs/protocol.md; the Rust side is src/protocol/).

local st = require "util.stanza";
local jid = require "util.jid";

local xmlns_podium = "urn:podium:0";
local media_kinds = { "audio", "video", "screen" };
local healthcheck_prefix = "__jicofo-health-check";

local aliases = { camera = "video"; desktop = "screen"; screenshare = "screen" };

-- A set of media kinds is a table { audio = true|false, video = ..., screen = ... }.
-- Where a set is compared on every presence (podium's `sending`), it is a number: audio 1, video 2,
-- screen 4 (and Prosody runs on Lua 5.1 to 5.4, so sets are intersected by a table, not by `&`).
local kind_bits = { audio = 1; video = 2; screen = 4 };
local both_bits = {}; -- both_bits[a * 8 + b]: the kinds in both a and b
for a = 0, 7 do
	for b = 0, 7 do
		local r = 0;
		for _, bit in ipairs({ 1, 2, 4 }) do
			if a % (2 * bit) >= bit and b % (2 * bit) >= bit then r = r + bit; end
		end
		both_bits[a * 8 + b] = r;
	end
end

-- Parses a list such as { "audio", "video" } (or "all"); returns the set, or nil and an error.
local function parse_media_list(list)
	local set = { audio = false; video = false; screen = false };
	for _, word in ipairs(list) do
		word = tostring(word):lower();
		word = aliases[word] or word;
		if word == "all" then
			set.audio, set.video, set.screen = true, true, true;
		elseif set[word] ~= nil then
			set[word] = true;
		elseif word ~= "none" then
			return nil, ("unknown media kind %q (expected audio, video, screen or all)"):format(word);
		end
	end
	return set;
end

local function copy_set(set)
	return { audio = set.audio; video = set.video; screen = set.screen };
end

local function format_set(set)
	local out = {};
	for _, kind in ipairs(media_kinds) do
		if set[kind] then out[#out + 1] = kind; end
	end
	return #out > 0 and table.concat(out, ",") or "none";
end

-- Reads audio/video/screen attributes ("true"/"false"/"1"/"0"), all required.
local function read_media_attrs(tag)
	local set = {};
	for _, kind in ipairs(media_kinds) do
		local value = tag.attr[kind];
		if value == "true" or value == "1" then
			set[kind] = true;
		elseif value == "false" or value == "0" then
			set[kind] = false;
		elseif value == nil then
			return nil, ("missing '%s' attribute"):format(kind);
		else
			return nil, ("invalid '%s' attribute %q (expected true or false)"):format(kind, value);
		end
	end
	return set;
end

local function media_attrs(set, attr)
	attr = attr or {};
	for _, kind in ipairs(media_kinds) do
		attr[kind] = set[kind] and "true" or "false";
	end
	return attr;
end

-- jicofo's health checks create rooms named __jicofo-health-check-*; they are never governed.
-- Checked on every Jingle IQ and presence: the room JID's node is found in place, no substring built.
local function is_healthcheck_room(room_jid)
	if type(room_jid) ~= "string" then return false; end
	local at = room_jid:find("@", 1, true);
	-- The node is what precedes the first "@" (a room JID has no resource).
	return at ~= nil and at > #healthcheck_prefix and room_jid:find(healthcheck_prefix, 1, true) == 1;
end

-- The focus (jicofo) is identified by its bare JID when podium_focus_jids is set, else by nick "focus"
-- (the nick jicofo always uses; lib-jitsi-meet makes the same assumption in strophe.jingle.js).
local function is_focus(nick, real_bare_jid, focus_jids)
	if next(focus_jids) ~= nil then
		return focus_jids[real_bare_jid] == true;
	end
	return nick == "focus";
end

--- Held state ------------------------------------------------------------------------------------

local state_mt = {};
state_mt.__index = state_mt;

-- rooms[room_jid][nick] = { real_jid = …, held = set, origin = "default"|"podium", media = …, joined = n,
-- watch = the kinds whose `sending` podium asked for (bits, nil for none) }
-- Indexes: sids[sid] = record (every Jingle session with jicofo belongs to one occupant),
-- real_jids[real_jid] = number of records for that full JID.
-- `sids` may be a table shared with other states (one per MUC host), so that a session is known as one
-- occupant's wherever the request comes from.
-- joins[room_jid] = the last join sequence number given in the room: every new record takes the next,
-- so podium can order a queue by arrival after its own restart without trusting anything the client
-- chose (its nick); it starts again when the room empties.
local function new_state(default_permissions, sids)
	return setmetatable({ rooms = {}; sids = sids or {}; real_jids = {}; joins = {}; default = copy_set(default_permissions) },
		state_mt);
end

function state_mt:unindex(record)
	local media = record.media;
	if media and media.sid and self.sids[media.sid] == record then
		self.sids[media.sid] = nil;
	end
	local n = (self.real_jids[record.real_jid] or 1) - 1;
	self.real_jids[record.real_jid] = n > 0 and n or nil;
end

-- Records the occupant's current Jingle session id, forgetting its previous one.
function state_mt:set_sid(record, sid)
	local media = record.media;
	if media.sid and self.sids[media.sid] == record then
		self.sids[media.sid] = nil;
	end
	media.sid = sid;
	if sid then self.sids[sid] = record; end
end

-- True when any governed occupant of the room may not send every kind.
function state_mt:is_restricted(room_jid)
	for _, record in pairs(self.rooms[room_jid] or {}) do
		if not (record.held.audio and record.held.video and record.held.screen) then
			return true;
		end
	end
	return false;
end

-- Records an occupant; returns its record and whether it is new. A nick now used by another real JID
-- starts again from the default: a decision never passes from one person to the next.
function state_mt:track(room_jid, nick, real_jid)
	local room = self.rooms[room_jid];
	if not room then
		room = {};
		self.rooms[room_jid] = room;
	end
	local record = room[nick];
	if record and record.real_jid == real_jid then
		return record, false;
	end
	if record then self:unindex(record); end
	local joined = (self.joins[room_jid] or 0) + 1;
	self.joins[room_jid] = joined;
	record = { real_jid = real_jid; held = copy_set(self.default); origin = "default"; joined = joined };
	room[nick] = record;
	self.real_jids[real_jid] = (self.real_jids[real_jid] or 0) + 1;
	return record, true;
end

function state_mt:get(room_jid, nick)
	local room = self.rooms[room_jid];
	return room and room[nick];
end

function state_mt:forget(room_jid, nick)
	local room = self.rooms[room_jid];
	if not room then return nil; end
	local record = room[nick];
	room[nick] = nil;
	if record then self:unindex(record); end
	if next(room) == nil then
		self.rooms[room_jid] = nil;
		self.joins[room_jid] = nil;
	end
	return record;
end

function state_mt:forget_room(room_jid)
	for _, record in pairs(self.rooms[room_jid] or {}) do
		self:unindex(record);
	end
	self.rooms[room_jid] = nil;
	self.joins[room_jid] = nil;
end

-- Applies podium's decision when the occupant JID still belongs to the real JID it was made for, with
-- the kinds whose `sending` podium wants reported from now on (`watch`, bits; nil or 0 for none).
function state_mt:apply(occupant_jid, real_jid, set, watch)
	local node, host, nick = jid.split(occupant_jid);
	if not nick then return false; end
	local record = self:get(jid.join(node, host), nick);
	if not record or record.real_jid ~= real_jid then
		return false;
	end
	local previous = record.held;
	record.held = copy_set(set);
	record.origin = "podium";
	record.watch = watch ~= 0 and watch or nil;
	return true, record, previous;
end

--- Held state across a reload of the module --------------------------------------------------------
--
-- Prosody 0.12 hands what the old instance's module.save returned to the new instance's
-- module.restore (core/modulemanager.lua do_reload_module), in the same Lua state: the tables are the
-- old instance's own. The new instance may run other code (an upgrade), so nothing is adopted before
-- it is checked against the shape this code reads. saved_format names that shape: raise it whenever a
-- saved table changes (a record, its media and sources, a conference, a P2P session, an IQ in flight).
local saved_format = 1;

local function is_set(set)
	return type(set) == "table" and type(set.audio) == "boolean" and type(set.video) == "boolean"
		and type(set.screen) == "boolean";
end

local function is_mute(mute)
	return type(mute) == "table" and type(mute.audio) == "boolean" and type(mute.video) == "boolean";
end

local function is_count(value)
	return math.type(value) == "integer" and value > 0;
end

local function optional(value, kind)
	return value == nil or type(value) == kind;
end

local source_media = { audio = true; video = true };
local kind_names = { audio = true; video = true; screen = true };

-- ssrc -> source, each keyed by its own SSRC, with the kind and media every plan reads.
local function check_sources(sources, where)
	if type(sources) ~= "table" then return where .. " is not a table"; end
	for ssrc, source in pairs(sources) do
		if type(ssrc) ~= "string" or type(source) ~= "table" or source.ssrc ~= ssrc
			or not kind_names[source.kind] or not source_media[source.media] then
			return ("%s[%s] is not a source"):format(where, tostring(ssrc));
		end
	end
	return nil;
end

-- media.groups: a list of groups, each { semantics, media, ssrcs = list, seq, index } at its index;
-- media.group_by_key: key -> one of them.
local function check_groups(media, where)
	for index, group in pairs(media.groups) do
		if type(group) ~= "table" or group.index ~= index or type(group.ssrcs) ~= "table"
			or type(group.semantics) ~= "string" or not source_media[group.media] or math.type(group.seq) ~= "integer" then
			return ("%s.groups[%s] is not a group"):format(where, tostring(index));
		end
	end
	for key, group in pairs(media.group_by_key) do
		if type(key) ~= "string" or type(group) ~= "table" or media.groups[group.index] ~= group then
			return ("%s.group_by_key[%s] is not a known group"):format(where, tostring(key));
		end
	end
	return nil;
end

-- media.requests: the participant's requests in flight, each { id, sender, added, removed, at }.
local function check_requests(requests, where)
	for i, request in pairs(requests) do
		if type(request) ~= "table" or type(request.id) ~= "string" or type(request.sender) ~= "string"
			or type(request.added) ~= "table" or type(request.removed) ~= "table" or type(request.at) ~= "number" then
			return ("%s.requests[%s] is not a request"):format(where, tostring(i));
		end
	end
	return nil;
end

-- An occupant's media (podium_jingle.lib.lua new_media): every field of `template` (a fresh
-- new_media()) with the same type, the session's strings, and sources and groups of the shapes above.
local function check_media(media, template, where)
	if type(media) ~= "table" then return where .. " is not a table"; end
	for key, value in pairs(template) do
		if type(media[key]) ~= type(value) then return ("%s.%s is not a %s"):format(where, key, type(value)); end
	end
	for _, key in ipairs({ "sid", "focus", "focus_occupant", "bridge_session", "ending" }) do
		if not optional(media[key], "string") then return ("%s.%s is not a string"):format(where, key); end
	end
	for _, key in ipairs({ "requests", "told" }) do
		if not optional(media[key], "table") then return ("%s.%s is not a table"):format(where, key); end
	end
	return check_sources(media.forwarded, where .. ".forwarded")
		or check_sources(media.withheld, where .. ".withheld")
		or (media.kept ~= nil and check_sources(media.kept, where .. ".kept"))
		or check_groups(media, where)
		or (media.requests ~= nil and check_requests(media.requests, where)) or nil;
end

-- What read_presence, presence_changed and the reports keep in a record, by type (all optional).
local presence_fields = {
	sending = "string"; hand = "boolean"; features = "table"; features_key = "string"; source_info = "string";
	legacy_screen = "boolean"; declared = "table"; reported = "boolean"; reported_role = "string";
	reported_affiliation = "string"; reported_sending = "string"; reported_hand = "boolean";
	reported_features = "string"; watch = "number";
};

local origins = { default = true; podium = true };

local function check_record(record, template, where)
	if type(record) ~= "table" then return where .. " is not a table"; end
	if type(record.real_jid) ~= "string" then return where .. ".real_jid is not a string"; end
	if not is_set(record.held) then return where .. ".held is not a set of three booleans"; end
	if not origins[record.origin] then return where .. ".origin is neither default nor podium"; end
	if not is_count(record.joined) then return where .. ".joined is not a positive integer"; end
	if not optional(record.moderation_ui, "table") then return where .. ".moderation_ui is not a table"; end
	if record.identity ~= false and not optional(record.identity, "table") then
		return where .. ".identity is not a stanza";
	end
	for key, kind in pairs(presence_fields) do
		if not optional(record[key], kind) then return ("%s.%s is not a %s"):format(where, key, kind); end
	end
	if record.watch ~= nil and (math.type(record.watch) ~= "integer" or record.watch < 1 or record.watch > 7) then
		return where .. ".watch is not a set of kinds";
	end
	if record.media ~= nil then return check_media(record.media, template, where .. ".media"); end
	return nil;
end

-- conferences: room_jid -> { meeting_id, endpoints = nick -> { bridge, jicofo = mute, applied = mute } }
local function check_conferences(conferences, meeting_rooms)
	if type(conferences) ~= "table" or type(meeting_rooms) ~= "table" then return "conferences are not tables"; end
	for room_jid, conference in pairs(conferences) do
		if type(room_jid) ~= "string" or type(conference) ~= "table" or type(conference.meeting_id) ~= "string"
			or type(conference.endpoints) ~= "table" then
			return ("conference %s is not a conference"):format(tostring(room_jid));
		end
		for nick, endpoint in pairs(conference.endpoints) do
			if type(nick) ~= "string" or type(endpoint) ~= "table" or not optional(endpoint.bridge, "string")
				or not is_mute(endpoint.jicofo) or (endpoint.applied ~= nil and not is_mute(endpoint.applied)) then
				return ("endpoint %s of %s is not an endpoint"):format(tostring(nick), room_jid);
			end
		end
	end
	for meeting_id, room_jid in pairs(meeting_rooms) do
		if type(meeting_id) ~= "string" or type(room_jid) ~= "string" then return "meeting_rooms is not a map of strings"; end
	end
	return nil;
end

-- p2p_sessions: room_jid -> sid -> { a, b, a_real, b_real } (occupant JIDs and real JIDs).
local function check_p2p_sessions(p2p_sessions)
	if type(p2p_sessions) ~= "table" then return "p2p_sessions is not a table"; end
	for room_jid, sessions in pairs(p2p_sessions) do
		if type(room_jid) ~= "string" or type(sessions) ~= "table" then return "p2p_sessions is not a map of rooms"; end
		for sid, session in pairs(sessions) do
			if type(sid) ~= "string" or type(session) ~= "table" or type(session.a) ~= "string"
				or type(session.b) ~= "string" or type(session.a_real) ~= "string" or type(session.b_real) ~= "string" then
				return ("P2P session %s in %s is not a session"):format(tostring(sid), room_jid);
			end
		end
	end
	return nil;
end

-- injected: id -> { purpose, at, … } (IQs the module sent, whose answers it consumes).
local function check_injected(injected)
	if type(injected) ~= "table" then return "injected is not a table"; end
	for id, entry in pairs(injected) do
		if type(id) ~= "string" or type(entry) ~= "table" or type(entry.purpose) ~= "string"
			or type(entry.at) ~= "number" then
			return ("injected %s is not an entry"):format(tostring(id));
		end
	end
	return nil;
end

-- Whether `saved` (what module.save returned) is what this code saves: nil when it is, else the first
-- reason it is not. `template` is a fresh new_media(). Every table is walked once.
local function check_saved(saved, template)
	if type(saved) ~= "table" then return "nothing was saved"; end
	if saved.format ~= saved_format then
		return ("saved format %s, this module reads %d"):format(tostring(saved.format), saved_format);
	end
	if type(saved.rooms) ~= "table" or type(saved.joins) ~= "table" then return "rooms are not tables"; end
	for room_jid, room in pairs(saved.rooms) do
		if type(room_jid) ~= "string" or type(room) ~= "table" then return "rooms is not a map of rooms"; end
		if next(room) ~= nil and not is_count(saved.joins[room_jid]) then return ("the joins of %s are not counted"):format(room_jid); end
		for nick, record in pairs(room) do
			if type(nick) ~= "string" then return ("a nick of %s is not a string"):format(room_jid); end
			local problem = check_record(record, template, ("%s/%s"):format(room_jid, nick));
			if problem then return problem; end
		end
	end
	if math.type(saved.injected_count) ~= "integer" or saved.injected_count < 0 then
		return "injected_count is not a count";
	end
	return check_conferences(saved.conferences, saved.meeting_rooms) or check_p2p_sessions(saved.p2p_sessions)
		or check_injected(saved.injected);
end

-- Takes the checked rooms of `saved` as this state's: records are indexed again (real JIDs, and sids in
-- the index shared with the other MUC host, unless a session there already claims one: that record
-- then keeps no session, and its Jingle is refused until jicofo invites it again). Returns the number
-- of records taken and of sessions dropped.
function state_mt:adopt(saved)
	local records, dropped = 0, 0;
	for room_jid, room in pairs(saved.rooms) do
		if next(room) ~= nil then
			self.rooms[room_jid], self.joins[room_jid] = room, saved.joins[room_jid];
			for _, record in pairs(room) do
				records = records + 1;
				self.real_jids[record.real_jid] = (self.real_jids[record.real_jid] or 0) + 1;
				local sid = record.media and record.media.sid;
				if sid and self.sids[sid] ~= nil and self.sids[sid] ~= record then
					record.media.sid, dropped = nil, dropped + 1;
				elseif sid then
					self.sids[sid] = record;
				end
			end
		end
	end
	return records, dropped;
end

-- After a reload from a state this code cannot read: the Jingle sessions with jicofo that can still
-- be told from it, as { room_jid, nick, real_jid, sid, focus, focus_occupant, bridge_session } (all
-- strings), so that they can be ended and jicofo invites each participant again. Walks whatever shape
-- it is given without raising; anything that is not a string there is skipped.
local function session_handles(saved)
	local handles = {};
	local rooms = type(saved) == "table" and saved.rooms;
	if type(rooms) ~= "table" then return handles; end
	for room_jid, room in pairs(rooms) do
		for nick, record in pairs(type(room_jid) == "string" and type(room) == "table" and room or {}) do
			local media = type(nick) == "string" and type(record) == "table" and record.media;
			local handle = type(media) == "table" and {
				room_jid = room_jid; nick = nick; real_jid = record.real_jid; sid = media.sid; focus = media.focus;
				focus_occupant = media.focus_occupant; bridge_session = media.bridge_session;
			};
			if handle and type(handle.real_jid) == "string" and type(handle.sid) == "string"
				and type(handle.focus) == "string" and type(handle.focus_occupant) == "string"
				and type(handle.bridge_session) == "string" then
				handles[#handles + 1] = handle;
			end
		end
	end
	return handles;
end

--- Protocol elements -------------------------------------------------------------------------------

-- <held audio video screen origin/>: one element per combination (eight sets, two origins), built once
-- and shared by every report (a report only serialises it; nothing changes an element once sent).
local held_tags = {};

local function held_tag(record)
	local held = record.held;
	local key = (held.audio and 1 or 0) + (held.video and 2 or 0) + (held.screen and 4 or 0)
		+ (record.origin == "podium" and 8 or 0);
	local tag = held_tags[key];
	if tag and tag.attr.origin == record.origin then return tag; end
	tag = st.stanza("held", media_attrs(held, { xmlns = xmlns_podium; origin = record.origin }));
	if record.origin == "podium" or record.origin == "default" then held_tags[key] = tag; end
	return tag;
end

--- What podium reads from presence ----------------------------------------------------------------

-- Each presence the room broadcasts is read once, into the occupant's record, building only what
-- changed: lib-jitsi-meet resends its whole presence for every mute toggle, and Prosody pays for every
-- table and string twice (allocation and collection). Only what podium reads is reported
-- (src/protocol/presence.rs), and only when it changed (presence_changed).
local xmlns_jitmeet_video = "http://jitsi.org/jitmeet/video";
local max_features, max_reported_text = 16, 4096;

-- The text of an element that holds text only: the stanza's own string when there is one text node
-- (nothing is built); nil with child elements, or beyond max_reported_text bytes.
local function plain_text(tag)
	if #tag.tags > 0 then return nil; end
	local text = tag[1];
	if #tag ~= 1 then text = tag:get_text(); end
	if #text > max_reported_text then return nil; end
	return text;
end

-- What lib-jitsi-meet's <SourceInfo> JSON (source name -> { muted, videoType }, SignalingLayerImpl.ts)
-- says: `sending`, the kinds with an unmuted source as podium's attribute ("audio video", in
-- media_kinds order; <endpoint>-a<n> is audio, -v<n> a camera, or a screen when its videoType is
-- desktop), and `declared`, the source names it declares screenshares (name -> "screen"), or nil
-- when there is none.
-- podium's `sending` text for each set of kinds (audio 1, video 2, screen 4): chosen, not built, on
-- every mute toggle.
local sending_texts = {
	[0] = ""; "audio"; "video"; "audio video"; "screen"; "audio screen"; "video screen"; "audio video screen";
};
local sending_bits = {};
for bits = 0, 7 do sending_bits[sending_texts[bits]] = bits; end

local function read_source_info(text, decode)
	if not text or text == "" then return "", nil; end
	local ok, info = pcall(decode, text);
	if not ok or type(info) ~= "table" then return "", nil; end
	local declared;
	local audio, video, screen = false, false, false;
	for name, entry in pairs(info) do
		if type(name) == "string" and type(entry) == "table" then
			local desktop = entry.videoType == "desktop";
			if desktop then
				declared = declared or {};
				declared[name] = "screen";
			end
			-- The kind letter of <endpoint>-<letter><digits>, found in place (no substring is built).
			local at = entry.muted == false and name:find("%-[av]%d+$");
			local letter = at and name:byte(at + 1);
			if letter == 97 --[[ a ]] then
				audio = true;
			elseif letter == 118 --[[ v ]] then
				if desktop then screen = true; else video = true; end
			end
		end
	end
	return sending_texts[(audio and 1 or 0) + (video and 2 or 0) + (screen and 4 or 0)], declared;
end

-- Whether two declarations (name -> "screen", or nil) name the same screenshares.
local function same_declared(a, b)
	if a == nil or b == nil then return a == b; end
	for name in pairs(a) do
		if b[name] == nil then return false; end
	end
	for name in pairs(b) do
		if a[name] == nil then return false; end
	end
	return true;
end

-- Whether lib-jitsi-meet's <jitsi_participant_raisedHand> says the hand is up: Date.now() while it
-- is, an empty element (its serialised 0) when it goes down; older clients send true/false.
local function hand_is_up(text)
	return text ~= nil and text:find("%S") ~= nil and not text:find("^%s*0%s*$")
		and not text:find("^%s*false%s*$");
end

-- Reads a presence into the occupant's record: record.sending and record.declared (read_source_info;
-- with a <videoType>desktop</videoType> of a client without source names, its one video track
-- `<nick>-v0` is a screenshare too), record.hand, and record.features (the <features><feature var/>
-- list, at most max_features of at most 256 bytes; jibri, jigasi) with record.features_key. The JSON is
-- decoded only when its text changed. Returns true when record.declared names other screenshares
-- than before (a mute toggle changes the text, not the screenshares).
local function read_presence(record, presence, nick, decode)
	local ns = presence.attr.xmlns;
	local source_info, hand, features, legacy_type, legacy_jitmeet;
	for _, child in ipairs(presence.tags) do
		local name, child_ns = child.name, child.attr.xmlns;
		if child_ns == ns then
			if name == "SourceInfo" then source_info = source_info or child;
			elseif name == "jitsi_participant_raisedHand" then hand = hand or child;
			elseif name == "features" then features = features or child;
			elseif name == "videoType" then legacy_type = legacy_type or child; end
		elseif name == "videoType" and child_ns == xmlns_jitmeet_video then
			legacy_jitmeet = legacy_jitmeet or child;
		end
	end
	local text = source_info and plain_text(source_info) or "";
	local legacy = legacy_type or legacy_jitmeet;
	-- true or nil (not false): a field the record need not hold (see presence_changed).
	local legacy_screen = legacy ~= nil and legacy:get_text() == "desktop" or nil;
	local declared_changed = false;
	if text ~= record.source_info or legacy_screen ~= record.legacy_screen then
		local declared;
		record.sending, declared = read_source_info(text, decode);
		if legacy_screen then
			declared = declared or {};
			declared[nick .. "-v0"] = "screen";
		end
		declared_changed = not same_declared(declared, record.declared);
		record.source_info, record.legacy_screen, record.declared = text, legacy_screen, declared;
	end
	record.hand = hand_is_up(hand and plain_text(hand));
	if features then
		local vars = {};
		for feature in features:childtags("feature") do
			if #vars >= max_features then break; end
			local var = feature.attr.var;
			if type(var) == "string" and #var <= 256 then vars[#vars + 1] = var; end
		end
		-- Each var ends in "\0", which no XML text holds: two lists have one key only when equal.
		local key = #vars > 0 and table.concat(vars, "\0") .. "\0" or "";
		if key ~= record.features_key then record.features, record.features_key = vars, key; end
	elseif record.features_key ~= "" then
		record.features, record.features_key = nil, "";
	end
	return declared_changed;
end

-- Whether what podium reads of an occupant (its role and affiliation, and what read_presence kept)
-- differs from what podium was last told; remembered when it does.
-- Kept as fields of the record, not a table of its own: one table fewer per occupant for the collector;
-- and no more fields than needed (a record of up to 16 fields takes half the memory of one of 17): an
-- occupant in the room always has a role, so a record never reported has none.
--
-- `sending` is reported for every kind until podium's first decision for the occupant (a podium in dry
-- run decides nothing), then only for the kinds podium asked for in its decisions (record.watch, the
-- kinds held through a cap's slot, which go idle when kept quiet): lib-jitsi-meet resends its presence
-- for every mute toggle, and podium reads `sending` nowhere else (docs/protocol.md).
local function sending_mask(record)
	if record.origin ~= "podium" then return 7; end
	return record.watch or 0;
end

-- The `sending` text podium is to be told now.
local function sending_to_report(record)
	return sending_texts[both_bits[(sending_bits[record.sending or ""] or 0) * 8 + sending_mask(record)]];
end

-- Whether podium's view of the kinds it reads `sending` for (what it was told last) is current.
local function sending_as_told(record)
	local mask = sending_mask(record);
	return both_bits[(sending_bits[record.sending or ""] or 0) * 8 + mask]
		== both_bits[(sending_bits[record.reported_sending or ""] or 0) * 8 + mask];
end

local function presence_changed(record, role, affiliation)
	if record.reported_role ~= nil and record.reported_role == role and record.reported_affiliation == affiliation
		and sending_as_told(record) and record.reported_hand == record.hand
		and record.reported_features == record.features_key then
		return false;
	end
	record.reported_role, record.reported_affiliation = role, affiliation;
	record.reported_sending, record.reported_hand = sending_to_report(record), record.hand;
	record.reported_features = record.features_key;
	return true;
end

-- Adds what podium reads of the presence (read_presence) to an <occupant/> being built.
local function add_presence(tag, record, role, affiliation)
	local attr = tag.attr;
	attr.role, attr.affiliation = role, affiliation;
	local sending = sending_to_report(record);
	if sending ~= "" then attr.sending = sending; end
	if record.hand then attr.hand = "true"; end
	local features = record.features;
	if features then
		for _, var in ipairs(features) do
			tag:tag("feature", { var = var }):up();
		end
	end
	return tag;
end

-- A token claim as an attribute value: Prosody's util.stanza raises an error on invalid UTF-8 or control
-- characters, and a JWT may carry either. Control characters are dropped; invalid UTF-8 drops the value.
local function claim_text(value)
	if value == nil or type(value) == "table" then return nil; end
	local text = tostring(value):gsub("%c", "");
	if utf8.len(text) == nil then return nil; end
	return text;
end

local max_claims, max_claim_length = 32, 256;
local named_user_claims = { id = true; name = true; email = true };

-- Adds <claim name='<prefix>.<key>' value/> for each plain claim of a token table (strings, numbers,
-- booleans; nested tables are skipped), in key order, at most max_claims in all.
local function add_claims(tag, prefix, claims, count)
	if type(claims) ~= "table" then return count; end
	local keys = {};
	for key, value in pairs(claims) do
		local plain = type(value) == "string" or type(value) == "number" or type(value) == "boolean";
		if type(key) == "string" and key:match("^[%w_%-%.]+$") and #key <= 64 and plain
			and not (prefix == "user" and named_user_claims[key]) then
			keys[#keys + 1] = key;
		end
	end
	table.sort(keys);
	for _, key in ipairs(keys) do
		if count >= max_claims then break; end
		local value = claim_text(claims[key]);
		if value and #value <= max_claim_length then
			tag:tag("claim", { name = prefix .. "." .. key; value = value }):up();
			count = count + 1;
		end
	end
	return count;
end

-- <identity/> from what Jitsi token auth put on the session (context.user, context.group,
-- context.features); nil when there is nothing.
local function identity_tag(session)
	if not session then return nil; end
	local user, group = session.jitsi_meet_context_user, session.jitsi_meet_context_group;
	local features = session.jitsi_meet_context_features;
	if type(user) ~= "table" and group == nil and type(features) ~= "table" then return nil; end
	user = type(user) == "table" and user or {};
	local tag = st.stanza("identity", {
		xmlns = xmlns_podium;
		id = claim_text(user.id); name = claim_text(user.name); email = claim_text(user.email);
		group = claim_text(group);
	});
	local count = add_claims(tag, "user", user, 0);
	add_claims(tag, "features", features, count);
	return tag;
end

-- Parses <permissions/>: all entries or none (a malformed entry refuses the whole batch).
local function parse_permissions(payload)
	local entries = {};
	for child in payload:childtags() do
		if child.name ~= "occupant" then
			return nil, ("unknown child '%s' in permissions"):format(child.name);
		end
		local occupant_jid, real_jid = child.attr.jid, child.attr["real-jid"];
		if not occupant_jid or not jid.resource(occupant_jid) then
			return nil, "occupant needs a full occupant JID in 'jid'";
		end
		if not real_jid or not jid.prep(real_jid) then
			return nil, "occupant needs 'real-jid'";
		end
		local set, err = read_media_attrs(child);
		if not set then return nil, err; end
		local watch = 0;
		for word in (child.attr["report-sending"] or ""):gmatch("[^ ]+") do
			local bit = kind_bits[word];
			if not bit then return nil, ("invalid 'report-sending' kind %q"):format(word); end
			if watch % (2 * bit) < bit then watch = watch + bit; end
		end
		entries[#entries + 1] = { jid = jid.prep(occupant_jid); real_jid = real_jid; set = set; watch = watch };
	end
	return entries;
end

-- Chooses the rooms of one snapshot page: sorted room JIDs after `after`, whole rooms, stopping once
-- `max` occupants are in. `count_of(room_jid)` says how many occupants a room contributes.
-- Returns the page's room JIDs and the `next` cursor (nil on the last page).
local function snapshot_page(room_jids, after, max, count_of)
	table.sort(room_jids);
	local page, total = {}, 0;
	for _, room_jid in ipairs(room_jids) do
		if after == nil or room_jid > after then
			if total >= max and #page > 0 then
				return page, page[#page];
			end
			page[#page + 1] = room_jid;
			total = total + count_of(room_jid);
		end
	end
	return page, nil;
end

-- The main room of a breakout room: the room among `main_rooms` (an iterator over Jitsi's main MUC
-- rooms) whose breakout list names `breakout_jid`. jitsi-meet's mod_muc_breakout_rooms keeps that list
-- on the main room, as room._data.breakout_rooms (breakout room JID -> subject), and refuses to create
-- a breakout room no main room lists.
local function main_room_among(main_rooms, breakout_jid)
	for room in main_rooms do
		local data = room._data;
		local breakout_rooms = data and data.breakout_rooms;
		if type(breakout_rooms) == "table" and breakout_rooms[breakout_jid] ~= nil then
			return room.jid;
		end
	end
	return nil;
end

-- Jitsi's A/V moderation command (jitsi-meet mod_av_moderation_component; lib-jitsi-meet
-- AVModeration): <av_moderation jidToWhitelist='room@muc/nick' mediaType='audio'/> approves,
-- jidToBlacklist withdraws. Returns the occupant JID, podium's kind and whether it is an approval, or
-- nil for anything else (enabling or disabling moderation, an unknown mediaType).
local av_media = { audio = "audio"; video = "video"; desktop = "screen" };

local function read_av_moderation(command)
	if not command then return nil; end
	local media = av_media[command.attr.mediaType];
	if not media then return nil; end
	if command.attr.jidToWhitelist then
		return command.attr.jidToWhitelist, media, true;
	elseif command.attr.jidToBlacklist then
		return command.attr.jidToBlacklist, media, false;
	end
	return nil;
end

-- <av_moderation enable='false' mediaType='audio|video|desktop'/>: a moderator turning Jitsi's A/V
-- moderation of a kind off (lib-jitsi-meet AVModeration.enable). Returns podium's kind, or nil for
-- anything else.
local function read_av_moderation_off(command)
	if not command or command.attr.enable ~= "false" then return nil; end
	return av_media[command.attr.mediaType];
end

-- The room a Jitsi web session is in, as jitsi-meet's components find it for commands that name no
-- room (util.lib.lua get_room_by_name_and_subdomain): the session's room name (`name`, mod_jitsi_session's
-- jitsi_web_query_room) on `muc_host`, as [tenant]name when the session names a tenant (`prefix`) other
-- than the main domain. nil without a room name.
local function web_session_room_jid(name, prefix, muc_host)
	if type(name) ~= "string" or name == "" then return nil; end
	local base = muc_host:match("^[^.]+%.(.+)$");
	if type(prefix) == "string" and prefix ~= "" and prefix ~= base then
		name = "[" .. prefix .. "]" .. name;
	end
	return name .. "@" .. muc_host;
end

-- What the participant is told, so that what its client shows matches what the module withholds.
--
-- Mute IQs (what jicofo sends, and a stock client obeys: it mutes the track and shows it muted): the
-- kinds to tell now, given what the occupant may send (`held`), the kinds it has sources of that the
-- module withholds (`withheld`) and the kinds it was told of already (`told`, updated in place). A kind
-- is told once per withholding: again only after it was allowed, or after no source of it was withheld
-- any more (a screenshare stopped, then started again), never for a kind the client does not send.
local function kinds_to_mute(held, withheld, told)
	local news = {};
	for _, kind in ipairs(media_kinds) do
		if held[kind] or not withheld[kind] then
			told[kind] = nil;
		elseif not told[kind] then
			told[kind], news[kind] = true, true;
		end
	end
	return news;
end

-- Jitsi's A/V moderation messages (jitsi-meet mod_av_moderation_component; lib-jitsi-meet
-- AVModeration._onMessage), which drive a stock client's "you may not unmute; raise your hand" UI,
-- for one occupant: given what it may send (`held`), the kinds shown (`kinds`, a set) and what its
-- client was told so far (`shown`: kind -> "refused" | "approved", updated in place), the json-message
-- bodies to send now, in order. A refused kind is `enabled` (moderation on: not approved) the first
-- time, `removed` after an approval; an allowed kind that was refused is `approved`. A kind never
-- refused is never mentioned, so a stock client without A/V moderation in the room behaves as before.
local av_media_type = { audio = "audio"; video = "video"; screen = "desktop" };

local function moderation_ui_bodies(held, kinds, shown, room_jid)
	local bodies = {};
	for _, kind in ipairs(media_kinds) do
		local body;
		if not kinds[kind] then
			body = nil;
		elseif not held[kind] and shown[kind] ~= "refused" then
			body = shown[kind] == "approved" and { removed = true } or { enabled = true };
			shown[kind] = "refused";
		elseif held[kind] and shown[kind] == "refused" then
			body = { approved = true };
			shown[kind] = "approved";
		end
		if body then
			body.type, body.room, body.mediaType = "av_moderation", room_jid, av_media_type[kind];
			bodies[#bodies + 1] = body;
		end
	end
	return bodies;
end

-- What a batch of podium's decisions has to tell the occupants' own clients (mute IQs, A/V moderation
-- messages), kept until the turn of Prosody's loop is over: jicofo's source-removes and source-adds of
-- every decision podium sent meanwhile are written first (an edit for 500 occupants wrote a mute IQ on
-- a client's connection, 0.12-0.14 ms of Prosody's CPU each, between each batch's jicofo requests and
-- the next batch's). One entry per occupant record, whatever the number of decisions for it: the kinds
-- the decisions revoked, merged.
local function new_client_queue()
	return { records = {}; entries = {} };
end

-- Queues telling the client of `record` (occupant `nick` in `room_jid`) about the decision just carried
-- out; `revoked` is the set of kinds it took away. Returns true when the queue was empty before.
local function queue_client(queue, record, room_jid, nick, revoked)
	local entry = queue.records[record];
	if not entry then
		entry = { record = record; room_jid = room_jid; nick = nick; revoked = {} };
		queue.records[record] = entry;
		queue.entries[#queue.entries + 1] = entry;
	end
	for kind in pairs(revoked) do entry.revoked[kind] = true; end
	return #queue.entries == 1;
end

-- Empties the queue; returns its entries in the order queued, each `revoked` left with the kinds the
-- occupant still may not send (a kind granted again since is not muted), and without the entries
-- `is_current(entry)` refuses (the occupant left, or its nick went to someone else).
local function take_client_queue(queue, is_current)
	local entries = queue.entries;
	queue.records, queue.entries = {}, {};
	local out = {};
	for _, entry in ipairs(entries) do
		if is_current(entry) then
			for kind in pairs(entry.revoked) do
				if entry.record.held[kind] then entry.revoked[kind] = nil; end
			end
			out[#out + 1] = entry;
		end
	end
	return out;
end

-- The room JID this MUC (`muc_host`) holds for a conference jicofo names `name`. On a multi-tenant
-- Jitsi (mod_muc_domain_mapper) jicofo knows a tenant's room by its virtual JID,
-- room@conference.<tenant>.<domain>, which the MUC holds as [tenant]room@conference.<domain> (the rewrite
-- of jitsi-meet's internal_room_jid_match_rewrite). Returns nil for a name on any other host.
local function internal_room_jid(name, muc_host)
	local node, host = name:match("^([^@/]+)@([^/]+)");
	if not node then return nil; end
	if host == muc_host then return node .. "@" .. host; end
	local prefix, base = muc_host:match("^([^.]+)%.(.+)$");
	if not prefix then return nil; end
	local tenant = host:match("^" .. prefix:gsub("%p", "%%%0") .. "%.([^.]+)%." .. base:gsub("%p", "%%%0") .. "$");
	if not tenant then return nil; end
	return ("[%s]%s@%s"):format(tenant, node, muc_host);
end

-- Calls f(...) in pcall with Lua's incremental collector slowed to a crawl (step multiplier 1) when
-- `count` (work items, say decisions) is at most `max_count`; its own multiplier is restored
-- afterwards, also when f fails. Prosody 0.12's collector (pause 105%, step multiplier 500, five times
-- Lua's default) takes a step of marking for every few KB allocated and starts a new cycle as soon as
-- one ends, so a bounded burst of short-lived stanzas paid more in marking (about 10 ms per MB on a
-- 40 MB heap) than in building them; slowed, the cycle under way is only stretched by what f allocated
-- (its garbage is swept in the collector's next cycles, as any other). Unlike stopping and restarting
-- the collector, this keeps its debt and its pause between cycles: a restart sets the debt to zero,
-- which starts a new cycle at once, and one per call made each join cost Prosody more.
-- Returns pcall's results.
local function pcall_collector_slowed(count, max_count, f, ...)
	local previous = count <= max_count and collectgarbage("setstepmul", 1);
	local results = table.pack(pcall(f, ...));
	if previous then collectgarbage("setstepmul", previous); end
	return table.unpack(results, 1, results.n);
end

return {
	xmlns = xmlns_podium;
	media_kinds = media_kinds;
	parse_media_list = parse_media_list;
	format_set = format_set;
	read_media_attrs = read_media_attrs;
	media_attrs = media_attrs;
	is_healthcheck_room = is_healthcheck_room;
	is_focus = is_focus;
	new_state = new_state;
	saved_format = saved_format;
	check_saved = check_saved;
	check_conferences = check_conferences;
	session_handles = session_handles;
	held_tag = held_tag;
	identity_tag = identity_tag;
	read_presence = read_presence;
	presence_changed = presence_changed;
	sending_as_told = sending_as_told;
	add_presence = add_presence;
	claim_text = claim_text;
	parse_permissions = parse_permissions;
	snapshot_page = snapshot_page;
	main_room_among = main_room_among;
	read_av_moderation = read_av_moderation;
	read_av_moderation_off = read_av_moderation_off;
	web_session_room_jid = web_session_room_jid;
	internal_room_jid = internal_room_jid;
	pcall_collector_slowed = pcall_collector_slowed;
	kinds_to_mute = kinds_to_mute;
	new_client_queue = new_client_queue;
	queue_client = queue_client;
	take_client_queue = take_client_queue;
	moderation_ui_bodies = moderation_ui_bodies;
};
