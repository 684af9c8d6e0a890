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
--   podium_bridge_muc           nil jicofo's bridge MUC ("brewery", jicofo's bridge.brewery-jid), e.g.
--                                   "jvbbrewery@internal.auth.meet.example": where force-mute is enforced
--   podium_block_p2p            true refuse peer-to-peer Jingle in rooms where someone may not send
--   podium_max_ssrcs_per_user   20  the most SSRCs one occupant may signal (jicofo's max-ssrcs-per-user)
--   podium_max_ssrc_groups_per_user 20 the most ssrc-groups one occupant may signal (jicofo's
--                                   max-ssrc-groups-per-user); keep both equal to jicofo's settings
--   podium_max_p2p_sessions     16  the most peer-to-peer sessions the module tracks per room (two per pair
--                                   of occupants); further session-initiates are refused
--   podium_av_moderation_component nil Jitsi's A/V moderation component (avmoderation.<domain>): a
--                                   moderator's approval there ("Ask to unmute") is reported to podium,
--                                   which turns it into a grant (rules.approval_minutes)
--   podium_moderation_ui        { "audio", "video", "screen" } kinds an occupant's client is told about
--                                   with Jitsi's A/V moderation messages, sent from
--                                   podium_av_moderation_component (which stock clients discover): a
--                                   refused kind shows as "moderation on, not approved" (the stock UI
--                                   asks to raise a hand), a grant as "approved". { } turns this off;
--                                   { "audio", "video" } for a jitsi-meet without desktop moderation
--   podium_main_muc             nil only on Jitsi's breakout-room MUC: the main MUC (jitsi-meet's main_muc);
--                                   each breakout room is reported with its main room, whose rules it
--                                   follows unless a rule names it (podium's xmpp.breakout_muc)
--   podium_client_hosts         nil the client VirtualHosts where Jingle between people must come through a
--                                   MUC that loads this module (or from jicofo); nil: every VirtualHost
--
-- Enforcement (see README "What is enforced, and where"): participant -> jicofo Jingle is filtered so
-- jicofo, the bridge and other clients never learn sources an occupant may not send; a grant replays
-- them to jicofo in the participant's name, a revoke removes them and force-mutes the endpoint at the
-- bridge. The client is told whenever a kind it sends is withheld (the mute IQ jicofo would send) and,
-- with podium_moderation_ui, shown it as Jitsi's A/V moderation (README "What the participant sees").
--
-- Protocol: docs/protocol.md (namespace urn:podium:0). Pure logic: podium.lib.lua (busted specs).

local st = require "util.stanza";
local modulemanager = require "core.modulemanager";
local jid_bare = require "util.jid".bare;
local jid_host = require "util.jid".host;
local jid_node = require "util.jid".node;
local jid_resource = require "util.jid".resource;
local jid_prep = require "util.jid".prep;

local json = require "util.json";
local base64_decode = require "util.encodings".base64.decode;
local hmac_sha256 = require "util.hashes".hmac_sha256;
local uuid = require "util.uuid".generate;
local random_bytes = require "util.random".bytes;
local hex = require "util.hex".encode;

local podium = module:require "podium";
local jingle = module:require "podium_jingle";
local guard = module:require "podium_guard";

local xmlns_podium = podium.xmlns;

local podium_component = module:get_option_string("podium_component");
local default_list = module:get_option_array("podium_default_permissions", {});
local focus_jids = {};
for focus_jid in module:get_option_set("podium_focus_jids", {}) do
	focus_jids[jid_prep(focus_jid) or focus_jid] = true;
end
local inspectors = module:get_option_set("podium_inspectors", {});
local snapshot_page_max = module:get_option_number("podium_snapshot_page", 500, 1);
local bridge_muc = module:get_option_string("podium_bridge_muc");
local block_p2p = module:get_option_boolean("podium_block_p2p", true);
local max_ssrcs = module:get_option_number("podium_max_ssrcs_per_user", jingle.default_max_ssrcs, 1);
local max_ssrc_groups = module:get_option_number("podium_max_ssrc_groups_per_user", jingle.default_max_groups, 0);
local max_p2p_sessions = module:get_option_number("podium_max_p2p_sessions", 16, 0);
local main_muc_host = module:get_option_string("podium_main_muc");
local av_moderation_host = module:get_option_string("podium_av_moderation_component");
local moderation_ui_list = module:get_option_array("podium_moderation_ui", { "audio", "video", "screen" });

if not podium_component then
	module:log("error", "podium_component is not set: add podium_component = \"podium.<domain>\" under this Component");
	return;
end

local default_permissions, default_error = podium.parse_media_list(default_list);
if not default_permissions then
	module:log("error", "podium_default_permissions: %s; failing closed (nothing may be sent)", default_error);
	default_permissions = podium.parse_media_list({});
end

local moderation_ui, moderation_ui_error = podium.parse_media_list(moderation_ui_list);
if not moderation_ui then
	module:log("error", "podium_moderation_ui: %s; clients are not sent A/V moderation messages", moderation_ui_error);
	moderation_ui = podium.parse_media_list({});
end
if not av_moderation_host then
	moderation_ui = podium.parse_media_list({});
end

local muc = module:depends("muc");
-- Jingle sessions by sid, one index for every host this module is loaded on (the main and the breakout
-- MUC): jicofo finds a session by its sid alone, whichever room the request came through.
local state = podium.new_state(default_permissions, module:shared("/*/podium/sids"));

module:log("info", "podium component %s; default permissions %s", podium_component,
	podium.format_set(default_permissions));
if bridge_muc then
	bridge_muc = jid_prep(bridge_muc) or bridge_muc;
else
	module:log("warn", "podium_bridge_muc is not set: revoked endpoints are not force-muted at the bridge");
end

--- What is governed ----------------------------------------------------------------------------

-- In 0.12 occupant.nick is the full occupant JID (room@muc/nick).
local function nick_of(occupant)
	return jid_resource(occupant.nick);
end

-- The occupant with this occupant JID, read where the room keeps it: Prosody 0.12's
-- room:get_occupant_by_nick returns a copy (two tables, muc.lib.lua), and each Jingle IQ looks up its
-- sender and its recipient. Only read, never changed or kept; a MUC without `_occupants` is asked.
local function peek_occupant(room, occupant_jid)
	local occupants = rawget(room, "_occupants");
	if type(occupants) ~= "table" then return room:get_occupant_by_nick(occupant_jid); end
	return occupant_jid ~= nil and occupants[occupant_jid] or nil;
end

local function is_governed(room, occupant)
	if podium.is_healthcheck_room(room.jid) then return false; end
	-- The nick matters only without podium_focus_jids (is_focus).
	local nick = next(focus_jids) == nil and nick_of(occupant) or nil;
	return not podium.is_focus(nick, occupant.bare_jid, focus_jids);
end

-- Calls setup(host) once the host exists: now, or when Prosody activates it.
local function when_active(host, setup)
	if prosody.hosts[host] then
		setup(host);
	else
		module:hook_global("host-activated", function (activated)
			if activated == host then setup(host); end
		end);
	end
end

--- Links without Nagle's algorithm ----------------------------------------------------------------------

-- Prosody 0.12 keeps Nagle's algorithm on for every connection (server_epoll's `nagle`, off only with
-- network_settings = { nagle = false }, for all of them). On podium's connection that makes each report
-- wait until podium has acknowledged the previous one, and podium acknowledges late (delayed ACK) when
-- it has nothing to answer: a join waited about 20 ms before podium heard of it. jicofo's connection
-- carries what the module releases and withdraws, and every participant's Jingle, the same way. So
-- Nagle is turned off on these connections alone: podium's when it logs in and, after a reload of this
-- module, at its next request (podium does the same on its side); jicofo's (podium_focus_jids) when it
-- binds a resource, and those bound before this module loaded. Once per connection: the sessions done
-- are remembered weakly.
local unbuffered_sessions = setmetatable({}, { __mode = "k" });

local function without_nagle(session, whose)
	if unbuffered_sessions[session] then return; end
	unbuffered_sessions[session] = true;
	local conn = session.conn;
	local ok, set, err = pcall(conn and conn.setoption, conn, "tcp-nodelay", true);
	if ok and set then
		module:log("debug", "Nagle's algorithm off on %s connection", whose);
	else
		module:log("warn", "cannot turn Nagle's algorithm off on %s connection (%s): stanzas may wait up to "
			.. "40 ms; set network_settings = { nagle = false }", whose, tostring(ok and err or set));
	end
end

-- Prosody reads a connection 4 KB at a time (network_default_read_size) and runs its other
-- connections and its timers between reads, so a <permissions/> of 1,000 decisions (150 KB) took some
-- 40 reads, interleaved with the clients told of the batch before and jicofo's answers. podium's
-- connection is read in chunks of a whole <permissions/> instead (podium keeps each under 256 KB;
-- Prosody's limit for a component's stanza is 512 KB): what podium sent at once is carried out in one
-- turn, and Prosody serves its other connections between chunks as before.
local podium_read_size = 256 * 1024;

local function read_whole(session)
	local conn = session.conn;
	local ok, err = pcall(conn and conn.set_mode, conn, podium_read_size);
	if not ok then
		module:log("warn", "cannot read podium's connection in chunks of %d bytes: %s", podium_read_size, tostring(err));
	end
end

-- Both, once per connection: when podium logs in and, after a reload of this module, at its next request.
local function tune_podium_link(session)
	if unbuffered_sessions[session] then return; end
	without_nagle(session, "podium's");
	read_whole(session);
end

when_active(podium_component, function (host)
	module:context(host):hook("component-authenticated", function (event)
		tune_podium_link(event.session);
	end);
end);

local function unbuffer_focus_sessions(host)
	module:context(host):hook("resource-bind", function (event)
		local session = event.session;
		if focus_jids[jid_bare(session.full_jid or "")] then without_nagle(session, "jicofo's"); end
	end);
	local accounts = prosody.hosts[host].sessions or {};
	for focus_jid in pairs(focus_jids) do
		local account = jid_host(focus_jid) == host and accounts[jid_node(focus_jid)];
		for _, session in pairs(account and account.sessions or {}) do
			without_nagle(session, "jicofo's");
		end
	end
end

--- Breakout rooms --------------------------------------------------------------------------------------

-- On Jitsi's breakout MUC (podium_main_muc set): breakout room JID -> its main room's JID, found once;
-- and the breakout rooms already warned about (listed by no main room).
local main_rooms, unlisted = {}, {};

local function main_room_of(room)
	if not main_muc_host then return nil; end
	local known = main_rooms[room.jid];
	if known then return known; end
	local main_host = prosody.hosts[main_muc_host];
	local main_muc = main_host and main_host.modules.muc;
	if not main_muc then return nil; end
	-- Rooms in memory first; a main room Prosody swapped out (muc_room_cache_size) is looked for among
	-- all rooms once, not on every presence of an unlisted room.
	local main_room = podium.main_room_among(main_muc.each_room(true), room.jid)
		or (not unlisted[room.jid] and podium.main_room_among(main_muc.each_room(false), room.jid)) or nil;
	if main_room then
		main_rooms[room.jid], unlisted[room.jid] = main_room, nil;
	elseif not unlisted[room.jid] then
		unlisted[room.jid] = true;
		module:log("warn", "breakout room %s is listed by no room of %s; it is governed as a room of its own",
			room.jid, main_muc_host);
	end
	return main_room;
end

--- Enforcement ---------------------------------------------------------------------------------------

-- What carrying out one <permissions/> from podium did, counted while it runs (nil otherwise): the
-- batch is logged in one line at info, each occupant's part at debug. An edit can change hundreds of
-- occupants at once; outside a batch (a presence, a Jingle request), each action is logged at info.
local batch_tally;

local function new_batch_tally()
	return { decisions = 0; gone = 0; withdrawn = 0; withdrawn_from = 0; released = 0; released_to = 0;
		mute_iqs = 0; clients = 0; bridge = 0; bridge_requests = 0; force_mutes = {} };
end

-- Logs an action at debug inside a batch (counting it under `counter`, if any, `amount` times), at
-- info outside.
local function log_action(counter, amount, format, ...)
	if batch_tally then
		if counter then batch_tally[counter] = batch_tally[counter] + amount; end
		module:log("debug", format, ...);
	else
		module:log("info", format, ...);
	end
end

-- IQs this module sent and whose answer it consumes (so it never reaches a client or jicofo):
-- id -> { purpose, record, batch, at }. Unanswered entries are dropped after a minute.
local injected = {};
local remember_request; -- defined with the answers below
local regain_kept; -- defined with enforcement below
local injected_count = 0;

local function inject(stanza, purpose, entry)
	injected_count = injected_count + 1;
	-- Unguessable: the answer is matched by its id alone (consume_injected_answer), and anyone in
	-- the room can address an answer to an occupant.
	local id = ("podium-%s-%d-%s"):format(purpose, injected_count, hex(random_bytes(4)));
	stanza.attr.id = id;
	entry = entry or {};
	entry.purpose, entry.at = purpose, os.time();
	injected[id] = entry;
	module:send(stanza);
	return id;
end

module:add_timer(30, function ()
	local cutoff = os.time() - 60;
	for id, entry in pairs(injected) do
		if entry.at < cutoff then injected[id] = nil; end
	end
	return 30;
end);

local function media_of(record)
	local media = record.media;
	if not media then
		media = jingle.new_media();
		record.media = media;
	end
	return media;
end

-- Who signalled each SSRC of a room (forwarded or withheld): room_jid -> { by_ssrc = ssrc -> nick,
-- count, limit }, so that checking a participant's sources costs the same in a room of 2 or of 200.
-- An entry is believed only while that occupant still holds the SSRC; stale ones (sources removed,
-- sessions reset, occupants gone) are dropped by rebuilding the index from the occupants once the
-- entries could outnumber twice the live ones, which keeps the work per source constant on average and
-- the index bounded by the room.
local ssrc_owners = {};

local function rebuild_ssrc_owners(room_jid)
	local by_ssrc, count, occupants = {}, 0, 0;
	for nick, record in pairs(state.rooms[room_jid] or {}) do
		occupants = occupants + 1;
		local media = record.media;
		if media then
			for ssrc in pairs(media.forwarded) do by_ssrc[ssrc], count = nick, count + 1; end
			for ssrc in pairs(media.withheld) do by_ssrc[ssrc], count = nick, count + 1; end
		end
	end
	local owners = { by_ssrc = by_ssrc; count = count; limit = 2 * (count + occupants) + 64 };
	ssrc_owners[room_jid] = owners;
	return owners;
end

-- Records that `nick` now holds these sources (a list of { ssrc }).
local function index_ssrcs(room_jid, nick, sources)
	local owners = ssrc_owners[room_jid] or rebuild_ssrc_owners(room_jid);
	for _, source in ipairs(sources) do
		if owners.by_ssrc[source.ssrc] == nil then owners.count = owners.count + 1; end
		owners.by_ssrc[source.ssrc] = nick;
	end
	if owners.count > owners.limit then rebuild_ssrc_owners(room_jid); end
end

-- The occupant that uses an SSRC in a room (forwarded or withheld), or nil.
local function ssrc_owner(room_jid, ssrc)
	local owners = ssrc_owners[room_jid];
	local nick = owners and owners.by_ssrc[ssrc];
	if not nick then return nil; end
	local record = state:get(room_jid, nick);
	local media = record and record.media;
	if media and (media.forwarded[ssrc] or media.withheld[ssrc]) then return nick; end
	owners.by_ssrc[ssrc], owners.count = nil, owners.count - 1;
	return nil;
end

local function kinds_text(kinds)
	local list = {};
	for _, kind in ipairs(podium.media_kinds) do
		if kinds[kind] then list[#list + 1] = kind; end
	end
	return table.concat(list, ",");
end

-- Conferences at the bridge, learned from jicofo's Colibri2 (research §3.1): room_jid ->
-- { meeting_id, endpoints = { nick -> { bridge = occupant JID of the bridge in the brewery,
--   jicofo = jicofo's own force-mute view, applied = what the bridge was last told } } }
local conferences, meeting_rooms = {}, {};

local function either(a, b)
	return { audio = a.audio or b.audio; video = a.video or b.video };
end

local function same_mute(a, b)
	return a and b and a.audio == b.audio and a.video == b.video;
end

-- The bridge's real JID: JVB checks that Colibri2 comes from the brewery MUC's bare JID (jicoco
-- MucClient), so the module sends to the bridge directly with a brewery `from`, and catches the answer
-- on the brewery host.
local function bridge_real_jid(bridge_occupant)
	local brewery = prosody.hosts[jid_host(bridge_muc)];
	local brewery_muc = brewery and brewery.modules.muc;
	local room = brewery_muc and brewery_muc.get_room_from_jid(bridge_muc);
	local occupant = room and room:get_occupant_by_nick(bridge_occupant);
	return occupant and occupant.jid;
end

-- The force-mute podium wants for an occupant: the kinds it may not send, and its video too when the
-- only video it sends is a screenshare it may not send (a camera switched to the screen in presence
-- only keeps sending on the camera's SSRCs).
local function podium_mute(record)
	local mute = jingle.force_mute_for(record.held);
	local media = record.media;
	if not mute.video and media and jingle.sends_only_refused_screen(media) then
		mute.video = true;
	end
	-- Sources of a revoked kind jicofo would not give up (it refused their source-remove) are stopped
	-- here: a camera or a screenshare only with all of the endpoint's video.
	for _, source in pairs(media and media.kept or {}) do
		if source.kind == "audio" then mute.audio = true; else mute.video = true; end
	end
	return mute;
end

-- One Colibri2 conference-modify to `bridge_jid` with the force-mute of each of `endpoints` ({ nick,
-- record, desired, attempt }): JVB takes several endpoints in one request when none of them creates or
-- changes media, sources or transport (Colibri2ConferenceHandler).
local function send_force_mutes(room_jid, bridge_jid, meeting_id, endpoints)
	local request = st.iq({ type = "get"; from = bridge_muc .. "/podium"; to = bridge_jid; id = "" })
		:tag("conference-modify", { xmlns = jingle.xmlns_colibri2; ["meeting-id"] = meeting_id });
	for _, one in ipairs(endpoints) do
		request:tag("endpoint", { id = one.nick }):add_child(jingle.force_mute_tag(one.desired)):up();
	end
	inject(request:up(), "bridge", { room_jid = room_jid; endpoints = endpoints });
end

-- Inside a batch of podium's decisions, force-mutes wait in batch_tally.force_mutes, one request per
-- room and bridge, the last wish per endpoint; sent when the batch is done.
local function queue_force_mute(room_jid, bridge_jid, meeting_id, one)
	local key = room_jid .. " " .. bridge_jid;
	local request = batch_tally.force_mutes[key];
	if not request then
		request = { room_jid = room_jid; bridge_jid = bridge_jid; meeting_id = meeting_id; endpoints = {};
			by_nick = {} };
		batch_tally.force_mutes[key] = request;
	end
	local index = request.by_nick[one.nick];
	if not index then
		index = #request.endpoints + 1;
		request.by_nick[one.nick] = index;
	end
	request.endpoints[index] = one;
end

local function send_queued_force_mutes(tally)
	for _, request in pairs(tally.force_mutes) do
		send_force_mutes(request.room_jid, request.bridge_jid, request.meeting_id, request.endpoints);
		tally.bridge, tally.bridge_requests = tally.bridge + #request.endpoints, tally.bridge_requests + 1;
	end
	tally.force_mutes = {};
end

-- Tells the bridge the force-mute this endpoint must have: podium's (from what the occupant may send)
-- joined with jicofo's own (podium never lifts a mute jicofo asked for). Inside a batch of podium's
-- decisions it is sent with the batch's others for the room (queue_force_mute), else at once.
-- Returns true when the bridge has that mute or is being told it, false when it cannot be told.
-- `attempt` counts the tries after the bridge refused (see on_bridge_refused).
local function update_bridge(room_jid, nick, record, attempt)
	local conference = conferences[room_jid];
	local endpoint = conference and conference.endpoints[nick];
	if not endpoint then return false; end
	local desired = either(endpoint.jicofo, podium_mute(record));
	if same_mute(endpoint.applied, desired) then return true; end
	local bridge_jid = bridge_real_jid(endpoint.bridge);
	if not bridge_jid then
		module:log("warn", "bridge %s of %s is not in %s; force-mute for %s not sent", endpoint.bridge,
			room_jid, bridge_muc, nick);
		return false;
	end
	endpoint.applied = desired;
	local one = { nick = nick; record = record; desired = desired; attempt = attempt or 1 };
	if batch_tally then
		queue_force_mute(room_jid, bridge_jid, conference.meeting_id, one);
	else
		send_force_mutes(room_jid, bridge_jid, conference.meeting_id, { one });
	end
	log_action(nil, 0, "bridge force-mute for %s in %s: audio=%s video=%s", nick, room_jid,
		tostring(desired.audio), tostring(desired.video));
	return true;
end

-- Peer-to-peer sessions between occupants, room_jid -> sid -> { a = occupant JID, b = occupant JID,
-- a_real, b_real }; kept so a revoke can end them (media would flow around jicofo and the bridge).
-- Bounded per room and per pair (track_p2p_session).
local p2p_sessions = {};

local function end_p2p_sessions(room_jid)
	for sid, session in pairs(p2p_sessions[room_jid] or {}) do
		for _, side in ipairs({ { session.a, session.b_real }, { session.b, session.a_real } }) do
			local terminate = st.iq({ type = "set"; from = side[1]; to = side[2]; id = "" })
				:tag("jingle", { xmlns = jingle.xmlns_jingle; action = "session-terminate"; sid = sid })
					:tag("reason"):tag("decline"):up()
						:tag("text"):text("podium: peer-to-peer media is off while someone in the room may not send")
					:up():up()
				:up();
			inject(terminate, "p2p", {});
		end
		module:log("info", "ended peer-to-peer session %s in %s", sid, room_jid);
	end
	p2p_sessions[room_jid] = nil;
end

-- Everything the module keeps for an occupant that is gone (leave, nick change, kick).
local function forget_enforcement(room_jid, nick)
	local conference = conferences[room_jid];
	if conference then conference.endpoints[nick] = nil; end
	local occupant_jid = room_jid .. "/" .. nick;
	for sid, session in pairs(p2p_sessions[room_jid] or {}) do
		if session.a == occupant_jid or session.b == occupant_jid then
			p2p_sessions[room_jid][sid] = nil;
		end
	end
	if p2p_sessions[room_jid] and next(p2p_sessions[room_jid]) == nil then
		p2p_sessions[room_jid] = nil;
	end
end

local function forget_room_enforcement(room_jid)
	local conference = conferences[room_jid];
	if conference and conference.meeting_id then meeting_rooms[conference.meeting_id] = nil; end
	conferences[room_jid] = nil;
	p2p_sessions[room_jid] = nil;
	ssrc_owners[room_jid] = nil;
end

-- A source-remove of `sources` to jicofo in the occupant's name. Their SSRCs only: jicofo removes a
-- source by its SSRC and tells the others the source as it holds it, drops the groups of removed
-- sources itself, and refuses a whole removal that names a group it does not have
-- (ValidatingConferenceSourceMap.tryToRemove). `single`: a retry naming one SSRC.
local function withdraw(room_jid, nick, record, sources, single)
	local media = record.media;
	local iq = jingle.iq_set(room_jid .. "/" .. nick, media.focus,
		jingle.jingle_for("source-remove", media.sid, { sources = sources; groups = {} }, true));
	inject(iq, "revoke", {
		record = record; room_jid = room_jid; nick = nick; sid = media.sid; sources = sources; single = single;
	});
end

-- Sources jicofo kept after refusing their removal, of a kind the occupant may send again: jicofo
-- has them, so they are forwarded (not replayed) and no longer stopped at the bridge.
function regain_kept(media, held)
	if not media.kept then return; end
	for ssrc, source in pairs(media.kept) do
		if held[source.kind] then
			media.kept[ssrc] = nil;
			if media.withheld[ssrc] == source then
				media.withheld[ssrc], media.forwarded[ssrc] = nil, source;
			end
		end
	end
end

-- Sends jicofo the changes in what the occupant may send: newly refused sources withdrawn, newly
-- allowed ones replayed. Returns the kinds of the sources withdrawn.
local function enforce_jingle(room_jid, nick, record)
	local media = record.media;
	local withdrawn = {};
	if not (media and media.sid and media.focus) then return withdrawn; end
	local occupant_jid = room_jid .. "/" .. nick;
	regain_kept(media, record.held);
	local add, remove = jingle.plan_change(media, record.held);
	for _, source in ipairs(remove.sources) do withdrawn[source.kind] = true; end
	if #remove.sources > 0 then
		withdraw(room_jid, nick, record, remove.sources, false);
		log_action("withdrawn_from", 1, "withdrew %d source(s) of %s from jicofo", #remove.sources, occupant_jid);
		if batch_tally then batch_tally.withdrawn = batch_tally.withdrawn + #remove.sources; end
	end
	if not jingle.is_empty(add) then
		local iq = jingle.iq_set(occupant_jid, media.focus, jingle.jingle_for("source-add", media.sid, add));
		inject(iq, "grant", { record = record; batch = add });
		log_action("released_to", 1, "released %d withheld source(s) of %s to jicofo", #add.sources, occupant_jid);
		if batch_tally then batch_tally.released = batch_tally.released + #add.sources; end
	end
	return withdrawn;
end

-- The mute IQs the module sends a client carry this id prefix; lib-jitsi-meet never answers them, and
-- an answer from any client is consumed here (stateless: nothing is kept per mute IQ, so a counter
-- makes the ids unique; nothing depends on their being unguessable).
local mute_id_prefix = "podium-mute-";
local mute_count = 0;

-- Tells the client as jicofo would, so a stock client mutes the track and shows it (lib-jitsi-meet
-- ChatRoom onMute / onMuteVideo / onMuteDesktop, from the focus occupant only). The kinds told are
-- remembered for this session (media.told), so a withholding is told once.
local function tell_client(room_jid, record, kinds)
	local media = record.media;
	local focus_occupant = (media and media.focus_occupant) or (room_jid .. "/focus");
	local told = media and (media.told or {});
	if media then media.told = told; end
	for _, kind in ipairs(podium.media_kinds) do
		if kinds[kind] then
			mute_count = mute_count + 1;
			module:send(jingle.mute_iq(kind, mute_id_prefix .. mute_count, focus_occupant, record.real_jid));
			if batch_tally then batch_tally.mute_iqs = batch_tally.mute_iqs + 1; end
			if told then told[kind] = true; end
		end
	end
end

-- The kinds of the sources the module withholds from jicofo (at most max_ssrcs of them).
local function withheld_kinds(media)
	local kinds = {};
	for _, source in pairs(media.withheld) do kinds[source.kind] = true; end
	return kinds;
end

-- Tells the client about every kind it sends that the module withholds and it was not told of yet:
-- the sources of a session-accept or source-add the module kept from jicofo, or those a decision
-- refused. Not before podium's first decision: the default often stands for only a moment, and a
-- client never unmutes on the focus's word (lib-jitsi-meet acts on `true` only).
local function tell_withheld(room_jid, record)
	local media = record.media;
	if not media or not media.withheld or record.origin ~= "podium" then return; end
	media.told = media.told or {};
	local news = podium.kinds_to_mute(record.held, withheld_kinds(media), media.told);
	if next(news) then
		tell_client(room_jid, record, news);
		log_action(nil, 0, "told %s in %s to mute %s (withheld)", record.real_jid, room_jid, kinds_text(news));
	end
end

-- Tells the client, as Jitsi's A/V moderation component would, which kinds it may not send (a stock
-- Jitsi Meet then refuses to unmute them and offers to raise a hand) and which it may send again. Only
-- the occupant's own client hears it; jicofo and the other clients do not, and nothing is granted by
-- it: enforcement stays in the module.
local function tell_moderation_ui(room_jid, record)
	if not av_moderation_host or record.origin ~= "podium" or not record.real_jid then return; end
	record.moderation_ui = record.moderation_ui or {};
	for _, body in ipairs(podium.moderation_ui_bodies(record.held, moderation_ui, record.moderation_ui, room_jid)) do
		module:send(st.message({ from = av_moderation_host; to = record.real_jid })
			:tag("json-message", { xmlns = "http://jitsi.org/jitmeet" }):text(json.encode(body)):up());
	end
end

-- Tells the occupant's client what a decision took away (`revoked`) and what the module withholds.
local function tell_occupant_client(room_jid, record, revoked)
	if next(revoked) then tell_client(room_jid, record, revoked); end
	tell_withheld(room_jid, record);
end

-- The clients a batch of podium's decisions has to tell (podium.new_client_queue), told when the turn
-- of Prosody's loop is over (server_epoll runs timers once no connection is ready): by then every batch
-- read in that turn has been carried out (podium's connection is read 256 KB at a time, so what podium
-- sent at once) and jicofo's requests are written. Each client is told what its occupant may not send
-- then; an occupant gone meanwhile is not told. A reload of the module drops what is queued.
local client_queue = podium.new_client_queue();

local function is_current(entry)
	return state:get(entry.room_jid, entry.nick) == entry.record;
end

local client_steps = {
	{ "client", function (entry) tell_occupant_client(entry.room_jid, entry.record, entry.revoked); end };
	{ "client ui", function (entry) tell_moderation_ui(entry.room_jid, entry.record); end };
};

local function tell_queued_clients()
	local tally = new_batch_tally();
	batch_tally = tally;
	local entries = podium.take_client_queue(client_queue, is_current);
	for _, entry in ipairs(entries) do
		for _, step in ipairs(client_steps) do
			local ok, err = pcall(step[2], entry);
			if not ok then
				module:log("error", "enforcing for %s/%s (%s): %s", entry.room_jid, entry.nick, step[1], tostring(err));
			end
		end
	end
	batch_tally = nil;
	module:log(tally.mute_iqs > 0 and "info" or "debug", "told %d client(s) of podium's decisions: %d mute IQ(s)",
		#entries, tally.mute_iqs);
end

local function queue_client_notice(room_jid, nick, record, revoked)
	batch_tally.clients = batch_tally.clients + 1;
	if podium.queue_client(client_queue, record, room_jid, nick, revoked) then
		module:add_timer(0, tell_queued_clients);
	end
end

-- The steps of carrying a decision out, in order: the bridge first (a revoke is muted there before
-- anything else; in a batch of podium's decisions, once per room when the batch is done, in the same
-- turn of Prosody's loop), then jicofo, the client, and running P2P sessions. Each is called with (room_jid,
-- nick, record, revoked), where `revoked` holds the kinds the decision took away.
local enforce_steps = {
	{ "bridge", function (room_jid, nick, record) update_bridge(room_jid, nick, record); end };
	{ "jicofo", function (room_jid, nick, record) enforce_jingle(room_jid, nick, record); end };
	-- Again: what jicofo now has can change the video mute (see podium_mute); sent only if so.
	{ "bridge", function (room_jid, nick, record) update_bridge(room_jid, nick, record); end };
	-- In a batch of podium's decisions, the client and its UI are told when the turn is over
	-- (queue_client_notice).
	{ "client", function (room_jid, nick, record, revoked)
		if batch_tally then return queue_client_notice(room_jid, nick, record, revoked); end
		tell_occupant_client(room_jid, record, revoked);
	end };
	{ "client ui", function (room_jid, _, record)
		if not batch_tally then tell_moderation_ui(room_jid, record); end
	end };
	{ "p2p", function (room_jid, _, _, revoked)
		if next(revoked) and block_p2p and p2p_sessions[room_jid] and state:is_restricted(room_jid) then
			end_p2p_sessions(room_jid);
		end
	end };
};

-- Carries a decision out (enforce_steps). Each step is separate: an error in one is logged and does
-- not keep the others from running. `previous` is what the occupant held before.
local function enforce(room_jid, nick, record, previous)
	local revoked = {};
	for _, kind in ipairs(podium.media_kinds) do
		if previous[kind] and not record.held[kind] then revoked[kind] = true; end
	end
	local failed = 0;
	for _, step in ipairs(enforce_steps) do
		local ok, err = pcall(step[2], room_jid, nick, record, revoked);
		if not ok then
			failed = failed + 1;
			module:log("error", "enforcing for %s/%s (%s): %s", room_jid, nick, step[1], tostring(err));
		end
	end
	return failed == 0;
end

-- Presence changed the kind of an occupant's source with no Jingle (a camera switched to the screen
-- with replaceTrack, or back): jicofo loses a screenshare the occupant may not send, or gets the camera
-- back; the bridge mutes the endpoint's video while that screenshare is all it sends; the client's
-- screenshare is muted as jicofo would mute it.
local function enforce_reclassified(room_jid, nick, record)
	local ok, err = pcall(function ()
		local withdrawn = enforce_jingle(room_jid, nick, record);
		update_bridge(room_jid, nick, record);
		if withdrawn.screen then
			tell_client(room_jid, record, { screen = true });
			module:log("info", "%s/%s switched a track to the screen in presence only; withdrawn", room_jid, nick);
		end
		tell_withheld(room_jid, record);
	end);
	if not ok then
		module:log("error", "enforcing a changed source kind for %s/%s: %s", room_jid, nick, tostring(err));
	end
end

-- A session starts from nothing (jingle.reset_session), and so does what jicofo kept of the last one.
local function reset_session(media, focus)
	jingle.reset_session(media, focus);
	media.kept, media.ending, media.bridge_session, media.told = nil, nil, nil, nil;
end

--- When jicofo or the bridge will not carry a revoke out ----------------------------------------------

local xmlns_focus = "http://jitsi.org/protocol/focus";
-- How often a refused bridge force-mute is sent again, and after how long (seconds) each time.
local bridge_retry_delays = { 0.5, 1, 2 };

-- The text of an error answer. jicofo's Smack writes <text> without the stanzas namespace (it
-- inherits the stanza's: recorded, tests/fixtures/jicofo/source-add-ssrc-of-other.xml), where
-- stanza:get_error() does not look.
local function error_text(stanza)
	local _, _, text = stanza:get_error();
	if text then return text; end
	local error_tag = stanza:get_child("error");
	return error_tag and error_tag:get_child_text("text");
end

-- Ends the occupant's Jingle session with jicofo, when neither jicofo nor the bridge would stop a kind
-- it may not send. jicofo accepts a session-terminate with the bridge session it gave in
-- session-initiate and, with restart='true', drops the session, its sources and its bridge endpoint,
-- then invites the participant again (Participant.onSessionTerminate, JitsiMeetConferenceImpl
-- terminateSession); the new session-accept is filtered like any other. The client is told first, as
-- jicofo tells it when it restarts a session itself.
local function end_session(room_jid, nick, record, why)
	local media = record.media;
	if not (media and media.sid and media.focus) or media.ending == media.sid then return; end
	media.ending = media.sid;
	local occupant_jid = room_jid .. "/" .. nick;
	local focus_occupant = media.focus_occupant or (room_jid .. "/focus");
	local to_client = st.iq({ type = "set"; from = focus_occupant; to = record.real_jid; id = "" })
		:tag("jingle", { xmlns = jingle.xmlns_jingle; action = "session-terminate"; sid = media.sid })
			:tag("reason"):tag("success"):up():tag("text"):text("podium: restarting the session"):up():up()
		:up();
	inject(to_client, "end", {});
	local to_focus = st.iq({ type = "set"; from = occupant_jid; to = media.focus; id = "" })
		:tag("jingle", { xmlns = jingle.xmlns_jingle; action = "session-terminate"; sid = media.sid })
			:tag("reason"):tag("success"):up():up()
			:tag("bridge-session", { xmlns = xmlns_focus; id = media.bridge_session; restart = "true" }):up()
		:up();
	inject(to_focus, "end", { occupant_jid = occupant_jid });
	-- jicofo drops the session's sources with it: none is kept any more (and jicofo's new allocation
	-- for the next session must not carry a mute for them).
	media.kept = nil;
	module:log("warn", "ended the Jingle session %s of %s: %s", media.sid, occupant_jid, why);
end

-- Stops at the bridge what jicofo kept; ends the session when the bridge cannot be told.
local function stop_kept(room_jid, nick, record)
	if not update_bridge(room_jid, nick, record) then
		end_session(room_jid, nick, record, "jicofo kept sources of a revoked kind and the bridge cannot mute them");
	end
end

-- jicofo refused the module's source-remove. Unless the occupant or that session is gone (jicofo drops
-- a session's sources with it), jicofo may still hold those sources: they are asked for one SSRC at a
-- time (jicofo refuses a whole removal for one SSRC it lacks), and what jicofo keeps is stopped at the
-- bridge, or the session is ended.
local function on_revoke_refused(entry, stanza)
	local record, media = entry.record, entry.record.media;
	if state:get(entry.room_jid, entry.nick) ~= record or not media or media.sid ~= entry.sid then return; end
	local refused = {};
	for _, source in ipairs(entry.sources) do
		if media.withheld[source.ssrc] == source and not record.held[source.kind] then
			refused[#refused + 1] = source;
		end
	end
	if #refused == 0 then return; end
	if not entry.single and #refused > 1 then
		for _, source in ipairs(refused) do
			withdraw(entry.room_jid, entry.nick, record, { source }, true);
		end
		return;
	end
	local text = error_text(stanza);
	if text and text:find("does not exist", 1, true) then
		return; -- jicofo's SourceDoesNotExistException: it does not have this one
	end
	media.kept = media.kept or {};
	media.kept[refused[1].ssrc] = refused[1];
	module:log("warn", "jicofo kept source %s (%s) of %s/%s after a revoke", tostring(refused[1].ssrc),
		refused[1].kind, entry.room_jid, entry.nick);
	stop_kept(entry.room_jid, entry.nick, record);
end

-- The bridge refused a force-mute: sent again after a while, a bounded number of times; after that,
-- what jicofo kept of a revoked kind is stopped by ending the session.
local function on_force_mute_refused(room_jid, one)
	local conference = conferences[room_jid];
	local endpoint = conference and conference.endpoints[one.nick];
	if not endpoint then return; end
	endpoint.applied = nil;
	local record = one.record;
	local delay = bridge_retry_delays[one.attempt];
	if delay then
		module:add_timer(delay, function ()
			if state:get(room_jid, one.nick) ~= record then return; end
			if not update_bridge(room_jid, one.nick, record, one.attempt + 1) and record.media
				and next(record.media.kept or {}) then
				end_session(room_jid, one.nick, record, "the bridge cannot mute sources jicofo kept");
			end
		end);
	elseif record and record.media and next(record.media.kept or {}) then
		end_session(room_jid, one.nick, record, "the bridge refused to mute sources jicofo kept");
	else
		module:log("error", "the bridge refused force-mute for %s/%s %d times; giving up", room_jid,
			one.nick, one.attempt);
	end
end

-- A refused request names one endpoint, or several of a batch: each is sent again on its own.
local function on_bridge_refused(entry)
	for _, one in ipairs(entry.endpoints) do
		on_force_mute_refused(entry.room_jid, one);
	end
end

-- The answer to an IQ the module sent. jicofo refusing a replayed source-add means it does not have
-- those sources: they are withheld again.
local function on_injected_answer(entry, stanza)
	if stanza.attr.type ~= "error" then return; end
	local _, condition = stanza:get_error();
	local text = error_text(stanza);
	module:log("warn", "%s request %s refused by %s: %s %s", entry.purpose, stanza.attr.id,
		tostring(stanza.attr.from), tostring(condition), tostring(text or ""));
	if entry.purpose == "grant" and entry.record.media then
		jingle.undo_add(entry.record.media, entry.batch);
	elseif entry.purpose == "revoke" then
		on_revoke_refused(entry, stanza);
	elseif entry.purpose == "bridge" then
		on_bridge_refused(entry);
	elseif entry.purpose == "end" and entry.occupant_jid and condition == "resource-constraint" then
		-- jicofo ended the session but rate-limits restarts (5 s apart): it invites nobody, and the
		-- participant stays without media until its client joins again.
		module:log("warn", "jicofo ended the Jingle session of %s without inviting it again (restart rate-limited)",
			entry.occupant_jid);
	elseif entry.purpose == "end" and entry.occupant_jid then
		module:log("error", "jicofo refused to end the Jingle session of %s: it may keep sending", entry.occupant_jid);
	end
end

local function consume_injected_answer(stanza)
	local type = stanza.attr.type;
	if type ~= "result" and type ~= "error" then return nil; end
	if stanza.attr.id and stanza.attr.id:sub(1, #mute_id_prefix) == mute_id_prefix then return true; end
	local entry = stanza.attr.id and injected[stanza.attr.id];
	if not entry then return nil; end
	injected[stanza.attr.id] = nil;
	on_injected_answer(entry, stanza);
	return true;
end

local function answer_error(event, type, condition, text)
	event.origin.send(st.error_reply(event.stanza, type, condition, text));
	return true;
end

-- A participant's source request in flight to jicofo, by its id: the SSRCs it made forwarded. Should
-- jicofo refuse it (say, its SSRC limit), they are taken back, or a later revoke would name SSRCs
-- jicofo does not have (and jicofo refuses a whole source-remove for one unknown SSRC).
local max_requests_in_flight = 16;

-- A request is known by its id and by the session that sent it, as the MUC's id rewrite binds them
-- (see original_request_id): one of the occupant's sessions, or one that has left since, can reuse
-- another's id, and its answer must not settle the other's request.
local function sender_hash(room, sender)
	return hmac_sha256(room:get_salt(), sender):sub(1, 8);
end

-- What a request added or removed when it is nothing: shared, never written to.
local no_sources = {};

function remember_request(room, media, request, added, removed, terminate)
	local id = request.attr.id;
	added, removed = added or no_sources, removed or no_sources;
	if not id or (#added == 0 and #removed == 0 and not terminate) then return; end
	local requests = media.requests or {};
	media.requests = requests;
	-- An occupant sends from one session: its hash is computed once, not per request.
	local sender = request.attr.from;
	if media.sender ~= sender then
		media.sender, media.sender_hash = sender, sender_hash(room, sender);
	end
	requests[#requests + 1] = {
		id = id; sender = media.sender_hash; added = added; removed = removed;
		terminate = terminate; at = os.time();
	};
end

-- jicofo answers every request (Smack); one still unanswered after a minute never will be (jicofo went
-- away), and no longer counts.
local function too_many_requests(media)
	local requests = media.requests;
	if not requests then return false; end
	local cutoff = os.time() - 60;
	while requests[1] and requests[1].at < cutoff do
		table.remove(requests, 1);
	end
	return #requests >= max_requests_in_flight;
end

-- The participant's own id in jicofo's answer to one of its requests, and the hash naming the session
-- that sent it; nil when the answer is not one. Prosody 0.12's MUC rewrote the request's id to
-- base64(<recipient's real JID> \0 <original id> \0 <first 8 bytes of HMAC-SHA256(room salt, sender's
-- real JID)>) (muc.lib.lua handle_iq_to_occupant, construct_stanza_id), and jicofo answers with that
-- id, from its real JID, to the occupant JID. The first field is therefore jicofo's JID (the answer's
-- `from`), never the participant's. The hash is matched against the one remembered with the request,
-- not against the occupant's sessions now: the answer to a session that left meanwhile still settles
-- its own request, and nobody else's.
local function original_request_id(stanza)
	local recipient, original_id, hash = (base64_decode(stanza.attr.id or "") or "")
		:match("^(%Z+)%z(%Z*)%z(.+)$");
	if not recipient then return nil; end
	local from = stanza.attr.from;
	if recipient ~= from and jid_bare(recipient) ~= from then return nil; end
	return original_id, hash;
end

-- Whether jicofo's answer to a participant's session-terminate means jicofo dropped the session and
-- its sources: a result, or a restart it rate-limits (Participant.onSessionTerminate ends the session
-- first, then answers resource-constraint "rate-limited" and invites nobody; recorded:
-- tests/fixtures/jicofo/session-terminate-restart-again.xml). Any other error (a wrong bridge session)
-- leaves the sources with jicofo.
local function terminate_ended_session(stanza)
	if stanza.attr.type == "result" then return true; end
	local _, condition = stanza:get_error();
	return condition == "resource-constraint";
end

-- jicofo's answer to a participant's request, on its way back through the MUC (before mod_muc
-- restores the original id): the request it answers is settled, a refused one rolled back.
local function on_focus_answer(room, stanza)
	local occupant = peek_occupant(room, stanza.attr.to);
	if not occupant or not is_governed(room, occupant) then return; end
	local record = state:get(room.jid, nick_of(occupant));
	local requests = record and record.media and record.media.requests;
	if not requests then return; end
	-- Only jicofo's own answer to this participant counts; anyone may address an occupant JID.
	if stanza.attr.from ~= record.media.focus then return; end
	local original_id, hash = original_request_id(stanza);
	if not original_id then return; end
	for i, request in ipairs(requests) do
		if request.id == original_id and request.sender == hash then
			table.remove(requests, i);
			-- Nothing in flight (the common case between requests): no empty list kept per occupant.
			if requests[1] == nil then record.media.requests = nil; end
			if request.terminate and terminate_ended_session(stanza) then
				state:set_sid(record, nil);
				reset_session(record.media, nil);
				return;
			end
			if stanza.attr.type == "error" then
				jingle.forget_added(record.media, request.added);
				jingle.restore_removed(record.media, request.removed);
				index_ssrcs(room.jid, nick_of(occupant), request.removed);
				-- A restored source keeps the kind it had; presence may have changed it since.
				if jingle.reclassify(record.media, record.declared, nick_of(occupant)) then
					enforce_reclassified(room.jid, nick_of(occupant), record);
				else
					update_bridge(room.jid, nick_of(occupant), record);
				end
				module:log("info", "jicofo refused a request of %s (%d source(s) added, %d removed)",
					occupant.nick, #request.added, #request.removed);
			end
			return;
		end
	end
end

-- jicofo -> participant Jingle: learn the session (sid, jicofo's JID) and end it with the session.
local function from_focus(room, focus_occupant, occupant, payload, stanza)
	if not is_governed(room, occupant) or not occupant.jid then return nil; end
	local nick = nick_of(occupant);
	local record = state:track(room.jid, nick, occupant.jid);
	local media = media_of(record);
	local action = payload.attr.action;
	if action == "session-initiate" then
		-- A new session (first invite, or a re-invite with a new sid): the participant will list all its
		-- sources again in session-accept.
		reset_session(media, stanza.attr.from);
		state:set_sid(record, payload.attr.sid);
		-- jicofo accepts the session's end only with this id (JitsiMeetConferenceImpl.terminateSession).
		local bridge_session = payload:get_child("bridge-session", xmlns_focus);
		media.bridge_session = bridge_session and bridge_session.attr.id;
		media.focus_occupant = focus_occupant.nick;
		-- jicofo allocated the endpoint before inviting; that allocation was rewritten on the way. Should
		-- the bridge still not have podium's force-mute (say, a decision came in between), say it now.
		update_bridge(room.jid, nick, record);
	elseif action == "session-terminate" then
		if payload.attr.sid == media.sid then
			state:set_sid(record, nil);
			reset_session(media, nil);
		end
	elseif not media.sid and payload.attr.sid and not state.sids[payload.attr.sid] then
		-- A session that started before this module was loaded: jicofo names it in its own Jingle to
		-- the occupant (a source-add about someone else), and only jicofo can send that.
		state:set_sid(record, payload.attr.sid);
		media.focus = media.focus or stanza.attr.from;
		media.focus_occupant = focus_occupant.nick;
	end
	return nil;
end

-- participant -> jicofo Jingle: withhold what the occupant may not send.
local function to_focus(event, room, occupant, focus_occupant, payload)
	if not is_governed(room, occupant) then return nil; end
	local nick = nick_of(occupant);
	local record = state:track(room.jid, nick, occupant.jid);
	local media = media_of(record);
	media.focus = media.focus or focus_occupant.jid; -- learnt here too, e.g. after a module reload
	local action, sid = payload.attr.action, payload.attr.sid;
	if jingle.adding_actions[action] or jingle.removing_actions[action] then
		local problem = jingle.check_iq(event.stanza) or jingle.check_shape(payload);
		if problem then
			module:log("warn", "refused %s from %s: %s", action, occupant.nick, problem);
			return answer_error(event, "modify", "bad-request", problem);
		end
		if too_many_requests(media) then
			return answer_error(event, "wait", "resource-constraint", "too many source requests in flight");
		end
	end
	-- The sid index is shared by every instance of this module (main and breakout MUC): a session
	-- jicofo opened with this person in another room is someone else's here.
	local owner = sid and state.sids[sid];
	if owner and owner ~= record then
		module:log("warn", "%s used another participant's Jingle session %s; refused", occupant.nick, sid);
		return answer_error(event, "auth", "forbidden", "this Jingle session belongs to another participant");
	end
	if sid == nil or sid ~= media.sid then
		-- Not the session jicofo opened with this occupant (sids are learnt from jicofo only): an old
		-- one (jicofo would answer bad-request too), or one jicofo holds for another room or person.
		module:log("info", "refused %s from %s: Jingle session %s is not its session here", tostring(action),
			occupant.nick, tostring(sid));
		return answer_error(event, "modify", "bad-request", "unknown Jingle session");
	end
	if jingle.adding_actions[action] then
		local sources, groups = jingle.read_sources(payload, record.declared, nick);
		if not sources then
			return answer_error(event, "modify", "bad-request", groups);
		end
		jingle.unify_kinds(sources, groups, function (ssrc) return media.forwarded[ssrc] or media.withheld[ssrc]; end);
		local reason = jingle.check_sources(sources, nick, function (ssrc) return ssrc_owner(room.jid, ssrc); end,
			jingle.count(media.forwarded) + jingle.count(media.withheld), max_ssrcs)
			or jingle.check_groups(media, sources, groups, max_ssrc_groups);
		if reason then
			module:log("warn", "refused %s from %s: %s", action, occupant.nick, reason);
			return answer_error(event, "modify", "bad-request", reason);
		end
		local summary = jingle.withhold(payload, media, sources, groups, record.held);
		media.unsorted = true;
		index_ssrcs(room.jid, nick, sources);
		remember_request(room, media, event.stanza, summary.added, nil);
		if summary.withheld > 0 then
			module:log("info", "withheld %d source(s) (%s) of %s in %s", summary.withheld,
				kinds_text(summary.kinds), occupant.nick, action);
			tell_withheld(room.jid, record);
			if (action == "source-add" or action == "addsource") and not jingle.has_sources(payload) then
				event.origin.send(st.reply(event.stanza));
				update_bridge(room.jid, nick, record);
				return true;
			end
		end
	elseif jingle.removing_actions[action] then
		local sources, groups = jingle.read_sources(payload, record.declared, nick);
		if not sources then
			return answer_error(event, "modify", "bad-request", groups);
		end
		if #sources > 0 then
			local remaining, removed = jingle.strip_removal(payload, media, sources, groups);
			if not remaining then
				return answer_error(event, "modify", "bad-request", removed);
			end
			-- A kind none of whose sources is withheld any more is a new withholding when it comes back.
			tell_withheld(room.jid, record);
			if remaining == 0 then
				-- Only sources jicofo never saw: jicofo would answer bad-request; the client gets its result.
				event.origin.send(st.reply(event.stanza));
				return true;
			end
			remember_request(room, media, event.stanza, nil, removed);
		end
	elseif action == "session-terminate" and sid == media.sid then
		-- jicofo may refuse it (a wrong bridge-session id) and keep the session and its sources: the
		-- module forgets them when jicofo confirms. Bounded like source requests, so a flood of them
		-- keeps the list of requests in flight short.
		if too_many_requests(media) then
			return answer_error(event, "wait", "resource-constraint", "too many Jingle requests in flight");
		end
		remember_request(room, media, event.stanza, nil, nil, true);
	end
	-- What jicofo has of this participant changed: the bridge's video mute may follow (a camera
	-- forwarded beside a withheld screenshare lifts it). Nothing is sent when it stands.
	update_bridge(room.jid, nick, record);
	return nil;
end

-- Whether a recorded P2P session is the one between these two occupants (either direction).
local function p2p_between(session, a, b)
	return (session.a == a and session.b == b) or (session.a == b and session.b == a);
end

-- Records a P2P session-initiate between two distinct occupants; returns nil, or the reason to refuse it.
-- State stays bounded by real sessions: one entry per sid (a sid already used by another pair is
-- refused, so nobody can overwrite a session a revoke must end), at most two per pair of occupants (a
-- restart may overlap the old session), at most max_p2p_sessions per room. The walk is bounded by that cap.
local function track_p2p_session(room_jid, sid, from_occupant, to_occupant)
	local sessions = p2p_sessions[room_jid] or {};
	local a, b = from_occupant.nick, to_occupant.nick;
	local known = sessions[sid];
	if known and not p2p_between(known, a, b) then return "this Jingle session id is in use"; end
	if not known then
		local in_room, for_pair = 0, 0;
		for _, session in pairs(sessions) do
			in_room = in_room + 1;
			if p2p_between(session, a, b) then for_pair = for_pair + 1; end
		end
		if in_room >= max_p2p_sessions or for_pair >= 2 then return "too many peer-to-peer sessions"; end
	end
	sessions[sid] = { a = a; b = b; a_real = from_occupant.jid; b_real = to_occupant.jid };
	p2p_sessions[room_jid] = sessions;
end

-- participant <-> participant Jingle (peer-to-peer calls, research §2.6).
local function between_participants(event, room, from_occupant, to_occupant, payload)
	local action, sid = payload.attr.action, payload.attr.sid;
	if from_occupant.nick == to_occupant.nick then
		-- lib-jitsi-meet never calls itself; nothing to record, and nothing to deliver.
		return answer_error(event, "modify", "bad-request", "a Jingle session with oneself");
	end
	-- lib-jitsi-meet keys a session without a sid like any other (strophe.jingle.js onJingle), but the
	-- module could neither record it nor end it on a revoke.
	if not sid then
		return answer_error(event, "modify", "bad-request", "peer-to-peer Jingle needs a sid");
	end
	if action == "session-initiate" then
		if block_p2p and state:is_restricted(room.jid) then
			module:log("info", "refused peer-to-peer session from %s to %s", from_occupant.nick, to_occupant.nick);
			return answer_error(event, "cancel", "not-allowed",
				"peer-to-peer media is off in this room: someone here may not send every kind of media");
		end
		if sid then
			local refused = track_p2p_session(room.jid, sid, from_occupant, to_occupant);
			if refused then
				module:log("warn", "refused peer-to-peer session from %s to %s: %s", from_occupant.nick,
					to_occupant.nick, refused);
				return answer_error(event, "wait", "resource-constraint", refused);
			end
		end
	elseif action == "session-terminate" and sid and p2p_sessions[room.jid] then
		-- Only the session's own two parties end it here (else a third could hide a session from a revoke).
		local session = p2p_sessions[room.jid][sid];
		if session and p2p_between(session, from_occupant.nick, to_occupant.nick) then
			p2p_sessions[room.jid][sid] = nil;
		end
	end
	return nil;
end

-- A participant's self-unmute to jicofo (passed on as ever): its client no longer shows that kind
-- muted, so a kind still withheld is told again (one mute IQ per unmute, only for a kind it sends that
-- the module withholds). Stock clients send it only when the person unmutes after the focus's mute.
local function on_self_unmute(stanza)
	local payload = stanza.tags[1];
	if not payload or payload.name ~= "mute" then return; end
	local room = muc.get_room_from_jid(jid_bare(stanza.attr.to));
	local occupant_jid = room and stanza.attr.from and room:get_occupant_jid(stanza.attr.from);
	local kind = occupant_jid and jingle.self_unmute_kind(stanza, occupant_jid);
	if not kind then return; end
	local occupant, to_occupant = room:get_occupant_by_nick(occupant_jid), room:get_occupant_by_nick(stanza.attr.to);
	if not occupant or not to_occupant or not is_governed(room, occupant) or is_governed(room, to_occupant) then
		return;
	end
	local record = state:get(room.jid, nick_of(occupant));
	local media = record and record.media;
	if not (media and media.told and media.told[kind]) then return; end
	media.told[kind] = nil;
	tell_withheld(room.jid, record);
end

-- Every Jingle IQ of the MUC host, both directions, before mod_muc rewrites ids and JIDs.
local function on_muc_iq(event)
	local stanza = event.stanza;
	if consume_injected_answer(stanza) then return true; end
	local type = stanza.attr.type;
	if type == "result" or type == "error" then
		local room = muc.get_room_from_jid(jid_bare(stanza.attr.to));
		if room then on_focus_answer(room, stanza); end
		return nil;
	end
	if type ~= "set" then return nil; end
	local payload = jingle.jingle_of(stanza);
	if not payload then
		on_self_unmute(stanza);
		return nil;
	end
	local room = muc.get_room_from_jid(jid_bare(stanza.attr.to));
	if not room then return nil; end
	if podium.is_healthcheck_room(room.jid) then
		-- Not governed, but no session of a governed participant may be used from here.
		if payload.attr.sid and state.sids[payload.attr.sid] then
			return answer_error(event, "auth", "forbidden", "this Jingle session belongs to another participant");
		end
		return nil;
	end
	local from_occupant_jid = stanza.attr.from and room:get_occupant_jid(stanza.attr.from);
	local from_occupant = from_occupant_jid and peek_occupant(room, from_occupant_jid);
	local to_occupant = peek_occupant(room, stanza.attr.to);
	if not from_occupant or not to_occupant then return nil; end -- mod_muc answers these
	if not is_governed(room, from_occupant) then
		return from_focus(room, from_occupant, to_occupant, payload, stanza);
	elseif not is_governed(room, to_occupant) then
		return to_focus(event, room, from_occupant, to_occupant, payload);
	end
	return between_participants(event, room, from_occupant, to_occupant, payload);
end

-- Priority 10: above mod_muc's iq/full handler (-2 in Prosody 0.12.3), so the original id, `from` and
-- `to` are seen and a refused stanza never reaches the MUC. An error in here must not let a source
-- through: a participant's source request, or a peer-to-peer offer, is then refused. Only jicofo's own
-- Jingle passes on an error (its session-initiate must reach the participant).
module:hook("iq/full", function (event)
	local ok, handled = pcall(on_muc_iq, event);
	if ok then return handled; end
	module:log("error", "iq/full: %s", tostring(handled));
	local payload = jingle.jingle_of(event.stanza);
	local from_focus_jid = focus_jids[jid_bare(event.stanza.attr.from or "")];
	if event.stanza.attr.type == "set" and payload and not from_focus_jid then
		return answer_error(event, "wait", "internal-server-error", "podium could not check these sources");
	end
	return nil;
end, 10);

--- jicofo's own host -------------------------------------------------------------------------------------

-- jicofo finds a Jingle session by sid alone and never checks the sender
-- (JingleIqRequestHandler), and its full JID is easy to guess. A participant who sent its Jingle
-- straight to jicofo's real JID, not through the room, would pass every check above. On jicofo's host,
-- Jingle to jicofo is therefore accepted only from this MUC host (participants through the room, and
-- this module's own requests), or from the other MUC host mod_podium is loaded on (breakout rooms).
local function guard_focus_host(host)
	module:context(host):hook("iq/full", function (event)
		local stanza = event.stanza;
		if stanza.attr.type ~= "set" or not focus_jids[jid_bare(stanza.attr.to)] then return nil; end
		local from_host = jid_host(stanza.attr.from);
		if not jingle.jingle_of(stanza) or from_host == module.host then return nil; end
		-- The main MUC and the breakout MUC each load this module; either routes participants' Jingle.
		if from_host and modulemanager.is_loaded(from_host, module.name) then return nil; end
		module:log("warn", "refused Jingle sent to jicofo directly by %s", tostring(stanza.attr.from));
		event.origin.send(st.error_reply(stanza, "auth", "forbidden", "Jingle to the focus goes through the conference room"));
		return true;
	end, 10); -- above mod_iq and the delivery to jicofo's session (0)
end

if next(focus_jids) == nil then
	module:log("warn", "podium_focus_jids is not set: jicofo is taken to be the occupant with nick 'focus', and "
		.. "Jingle sent straight to jicofo's JID cannot be checked; set it to jicofo's JID");
else
	local hosts = {};
	for focus_jid in pairs(focus_jids) do hosts[jid_host(focus_jid)] = true; end
	for host in pairs(hosts) do
		when_active(host, guard_focus_host);
		when_active(host, unbuffer_focus_sessions);
	end
end

--- Jingle between clients outside the governed rooms ---------------------------------------------------

-- lib-jitsi-meet takes a P2P session-initiate from any JID while its conference has one other member
-- (strophe.jingle.js onJingle; JitsiConference _onIncomingCallP2P never checks that the sender is one),
-- and Jitsi publishes real JIDs (muc_room_default_public_jids). A participant refused P2P in the room
-- could offer it to the other person's real JID, or through a MUC this module does not load on (the
-- lobby), or hide it from a module that looks for <jingle> where lib-jitsi-meet does not. So on every
-- client host, Jingle to a client comes only through a MUC host that loads this module (where the room's
-- rules apply), or from jicofo; Jingle to jicofo is guard_focus_host's. Checked twice: when a client
-- sends (pre-iq/full on its host, so nothing leaves over s2s either) and on delivery (iq/full, for what
-- arrives from components and other servers). Every instance (main and breakout MUC) hooks the same
-- hosts; the first refusal ends the event, so the second is only a repeat of the same cheap check.
local client_hosts = module:get_option_set("podium_client_hosts");

local function is_governed_host(host)
	return host ~= nil and modulemanager.is_loaded(host, module.name);
end

local error_types = { ["bad-request"] = "modify"; ["not-allowed"] = "cancel"; ["internal-server-error"] = "wait" };

-- Why IQ `stanza` may not reach a client: condition, text; nil when it may.
local function ungoverned_jingle(stanza)
	if stanza.attr.type ~= "set" or not guard.marks_jingle(stanza) then return nil; end
	local from, to = stanza.attr.from, stanza.attr.to;
	-- jicofo's own Jingle, either way, before walking it: jicofo's session-initiate is the biggest stanza
	-- of a conference.
	if focus_jids[jid_bare(to)] or focus_jids[jid_bare(from)] then return nil; end
	local shape = guard.jingle_shape(stanza);
	if not shape then return nil; end
	if shape == "disguised" then
		return "bad-request", "Jingle must be one <jingle xmlns='urn:xmpp:jingle:1'> child of the IQ";
	end
	if is_governed_host(jid_host(from)) or is_governed_host(jid_host(to)) then return nil; end
	return "not-allowed", "Jingle between participants goes through the conference room";
end

-- Fails closed: an error while checking refuses an IQ that a client could take for Jingle.
local function checked(event)
	local ok, condition, text = pcall(ungoverned_jingle, event.stanza);
	if ok then return condition, text; end
	module:log("error", "checking Jingle to a client: %s", tostring(condition));
	for child in event.stanza:childtags() do
		if child.attr.xmlns == guard.xmlns_jingle then return "internal-server-error", "podium could not check this"; end
	end
	return nil;
end

-- Refuses the IQ when checked() says so. On the sender's host the error goes back to its session; on
-- delivery it is routed (module:send), since the sender may be behind a MUC, a component or another server.
local function refuse_ungoverned(event, direction, send)
	local condition, text = checked(event);
	if not condition then return nil; end
	module:log("info", "refused Jingle %s -> %s outside a governed room (%s, %s)", tostring(event.stanza.attr.from),
		tostring(event.stanza.attr.to), direction, condition);
	send(st.error_reply(event.stanza, error_types[condition], condition, text));
	return true;
end

local function refuse_from_client(event)
	return refuse_ungoverned(event, "sent", event.origin.send);
end

local function refuse_to_client(event)
	return refuse_ungoverned(event, "delivered", function (reply) module:send(reply); end);
end

local guarded_client_hosts = {};

local function guard_client_host(host)
	if guarded_client_hosts[host] then return; end
	guarded_client_hosts[host] = true;
	local context = module:context(host);
	-- pre-iq/full fires on the sender's host for stanzas from its clients, before routing.
	context:hook("pre-iq/full", refuse_from_client, 10);
	-- Above mod_iq's delivery to the client's session (0), as guard_focus_host.
	context:hook("iq/full", refuse_to_client, 10);
end

local function is_client_host(host)
	local host_session = prosody.hosts[host];
	return host_session ~= nil and host_session.type == "local";
end

if client_hosts then
	for host in client_hosts do
		when_active(host, guard_client_host);
	end
else
	for host in pairs(prosody.hosts) do
		if is_client_host(host) then guard_client_host(host); end
	end
	module:hook_global("host-activated", function (host)
		if is_client_host(host) then guard_client_host(host); end
	end);
end
module:hook_global("host-deactivated", function (host)
	guarded_client_hosts[host] = nil;
end);

--- The bridge MUC ("brewery"): jicofo <-> JVB Colibri2 ---------------------------------------------------

-- Only jicofo talks to the bridge (podium_focus_jids is required with podium_bridge_muc).
local function may_send_colibri(from)
	return focus_jids[jid_bare(from)] == true;
end

-- Learns conference -> bridge and endpoint -> bridge from jicofo's conference-modify, and rewrites its
-- force-mute for governed endpoints: jicofo sends its own view at allocation (re-invite, bridge move)
-- and in its force-mute updates (research §10), which would otherwise lift podium's.
local function observe_colibri(stanza, request)
	local meeting_id = request.attr["meeting-id"];
	if not meeting_id then return; end
	-- jicofo names a tenant's conference by the room's virtual JID; the main and the breakout MUC each
	-- load this module, and each follows its own rooms' conferences.
	local room_jid = request.attr.name and podium.internal_room_jid(jid_bare(request.attr.name), module.host)
		or meeting_rooms[meeting_id];
	if not room_jid or jid_host(room_jid) ~= module.host then return; end
	meeting_rooms[meeting_id] = room_jid;
	local conference = conferences[room_jid];
	if not conference or conference.meeting_id ~= meeting_id then
		conference = { meeting_id = meeting_id; endpoints = {} };
		conferences[room_jid] = conference;
	end
	for endpoint_tag in request:childtags("endpoint", jingle.xmlns_colibri2) do
		local nick = endpoint_tag.attr.id;
		if nick and endpoint_tag.attr.expire == "true" then
			conference.endpoints[nick] = nil;
		elseif nick then
			local endpoint = conference.endpoints[nick] or { jicofo = { audio = false; video = false } };
			conference.endpoints[nick] = endpoint;
			endpoint.bridge = stanza.attr.to;
			local force_mute = endpoint_tag:get_child("force-mute", jingle.xmlns_colibri2);
			local created = endpoint_tag.attr.create == "true";
			if force_mute then
				endpoint.jicofo = jingle.read_force_mute(force_mute);
			elseif created then
				endpoint.jicofo = { audio = false; video = false };
			end
			local record = state:get(room_jid, nick);
			if record and (force_mute or created) then
				local desired = either(endpoint.jicofo, podium_mute(record));
				if force_mute or desired.audio or desired.video then
					jingle.set_force_mute(endpoint_tag, desired);
				end
				endpoint.applied = desired;
			end
		end
	end
end

local function on_brewery_iq(event)
	local stanza = event.stanza;
	if consume_injected_answer(stanza) then return true; end
	local request = stanza:get_child("conference-modify", jingle.xmlns_colibri2);
	if not request or (stanza.attr.type ~= "get" and stanza.attr.type ~= "set") then return nil; end
	if not may_send_colibri(stanza.attr.from) then
		module:log("warn", "refused Colibri2 from %s: only jicofo talks to the bridge", tostring(stanza.attr.from));
		return answer_error(event, "auth", "forbidden", "only the focus may send Colibri2 requests");
	end
	observe_colibri(stanza, request);
	return nil;
end

local function hook_brewery(host)
	module:context(host):hook("iq/full", function (event)
		local ok, handled = pcall(on_brewery_iq, event);
		if ok then return handled; end
		module:log("error", "brewery iq/full: %s", tostring(handled));
		return nil;
	end, 10); -- above mod_muc's iq/full (-2) on the brewery MUC, as on the conference MUC
	module:log("info", "enforcing force-mute through the bridge MUC %s", bridge_muc);
end

if bridge_muc and next(focus_jids) == nil then
	module:log("error", "podium_bridge_muc needs podium_focus_jids (jicofo's JIDs): without them anyone could "
		.. "pose as jicofo to the bridge; bridge force-mute is off");
	bridge_muc = nil;
end

if bridge_muc then
	when_active(jid_host(bridge_muc), hook_brewery);
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

-- The room's meeting: jitsi-meet's meeting id (mod_muc_meeting_id sets room._data.meetingId when the
-- room is created; jicofo may replace it), else one this module gives the room object for its lifetime.
-- A room destroyed and created again is a new meeting either way. Approvals count only in their meeting.
local own_meeting_ids = setmetatable({}, { __mode = "k" });
local function meeting_of(room)
	local jitsi_id = room._data and room._data.meetingId;
	if type(jitsi_id) == "string" and jitsi_id ~= "" then return jitsi_id; end
	local own = own_meeting_ids[room];
	if not own then
		own = uuid();
		own_meeting_ids[room] = own;
	end
	return own;
end

-- The occupant's affiliation in the room, as XEP-0045 names it.
local function affiliation_of(room, occupant)
	return room:get_affiliation(occupant.bare_jid) or "none";
end

-- <occupant nick real-jid joined meeting> with identity, held permissions and, unless it left, what
-- podium reads of its presence (podium.read_presence: never the client's presence itself, which
-- could nest deep enough to hurt a parser), with role and affiliation as the room computed them.
-- `joined` is the occupant's join sequence number in the room (podium.lib.lua state), podium's queue
-- order after a restart. The identity is read from the session once per record.
local function occupant_tag(room, occupant, record, affiliation)
	-- Every attribute an <occupant/> can get is named here, so the table is built at its final size
	-- (report and add_presence fill in the rest; Lua sizes a constructor by its fields, nil or not).
	local tag = st.stanza("occupant", {
		xmlns = xmlns_podium; nick = nick_of(occupant); ["real-jid"] = record.real_jid;
		joined = record.joined and tostring(record.joined) or nil; meeting = meeting_of(room);
		event = nil; room = nil; ["main-room"] = nil; role = nil; affiliation = nil; sending = nil; hand = nil;
	});
	if record.identity == nil then
		record.identity = podium.identity_tag(prosody.full_sessions[occupant.jid]) or false;
	end
	if record.identity then tag:add_child(record.identity); end
	tag:add_child(podium.held_tag(record));
	if affiliation then podium.add_presence(tag, record, occupant.role, affiliation); end
	return tag;
end

-- Occupant events leave together at the end of the current turn of Prosody's loop, as one message
-- (podium reads every <occupant/> of a message, in order): under load a turn handles many presences,
-- and every message costs Prosody a route and a write. Whatever else the module sends podium goes after
-- what waits (flush_reports first), so podium sees everything in the order it happened.
local pending_reports;
local max_reports_per_message = 64;

local function flush_reports()
	local message = pending_reports;
	if message == nil then return; end
	pending_reports = nil;
	module:send(message);
end

local function report(kind, room, tag)
	tag.attr.event = kind;
	tag.attr.room = room.jid;
	tag.attr["main-room"] = main_room_of(room);
	if pending_reports == nil then
		pending_reports = st.message({ from = module.host; to = podium_component; type = "normal" });
		module:add_timer(0, flush_reports);
	end
	pending_reports:add_direct_child(tag);
	-- A join leaves at once (with what waits before it): until podium decides, the joiner's sources
	-- are withheld from jicofo, and jicofo's session-initiate and the client's accept race the
	-- decision. At the end of the turn, the report waited behind every other event Prosody handled in
	-- it, while the joiner's presence reached jicofo in the same turn (issue 13 point 2).
	if kind == "joined" or #pending_reports.tags >= max_reports_per_message then flush_reports(); end
end

-- After a decision that asks for other kinds' `sending` (record.watch): when podium's view of them is
-- stale (it was not told of a toggle while it did not ask), the occupant is reported now.
local function report_sending_asked(occupant_jid, record)
	if podium.sending_as_told(record) then return; end
	local room = muc.get_room_from_jid(jid_bare(occupant_jid));
	local occupant = room and peek_occupant(room, occupant_jid);
	if not (occupant and occupant.role and occupant.jid) then return; end
	local affiliation = affiliation_of(room, occupant);
	if podium.presence_changed(record, occupant.role, affiliation) then
		report("changed", room, occupant_tag(room, occupant, record, affiliation));
	end
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
		forget_enforcement(room.jid, nick);
		if record then
			report("left", room, occupant_tag(room, occupant, record, nil));
		end
		return;
	end
	local real_jid = occupant.jid;
	if not real_jid then return; end
	local before = state:get(room.jid, nick);
	local record, is_new = state:track(room.jid, nick, real_jid);
	if is_new and before and before.media and jid_bare(before.real_jid) == jid_bare(real_jid) then
		-- The same person on another session (its first one left): jicofo keeps the Jingle session and
		-- its sources, so the module keeps its account of them and enforces the default on them until
		-- podium decides again.
		record.media = before.media;
		-- The new session's client was told nothing yet, and its presence decides source kinds afresh.
		record.media.told, record.media.unsorted = nil, true;
		state:set_sid(record, before.media.sid);
		enforce(room.jid, nick, record, before.held);
	elseif is_new then
		forget_enforcement(room.jid, nick);
	end
	local declared_changed = podium.read_presence(record, event.stanza, nick, json.decode);
	local media = record.media;
	-- A source's kind follows what presence declares (a camera switched to the screen, or back): decided
	-- again when the declaration changed, or when Jingle brought sources since the last time.
	if media and (declared_changed or media.unsorted) then
		media.unsorted = nil;
		if jingle.reclassify(media, record.declared, nick) then
			enforce_reclassified(room.jid, nick, record);
		end
	end
	-- A presence that changes nothing podium reads (lib-jitsi-meet resends presence for stats, audio
	-- levels, …) is not reported again.
	local affiliation = affiliation_of(room, occupant);
	if not podium.presence_changed(record, occupant.role, affiliation) and not is_new then return; end
	report(is_new and "joined" or "changed", room, occupant_tag(room, occupant, record, affiliation));
end));

-- A leave is normally seen above; this catches any path that skips the broadcast.
module:hook("muc-occupant-left", contained("muc-occupant-left", function (event)
	local room, occupant = event.room, event.occupant;
	local nick = nick_of(occupant);
	local record = state:forget(room.jid, nick);
	forget_enforcement(room.jid, nick);
	if record then
		report("left", room, occupant_tag(room, occupant, record, nil));
	end
end));

module:hook("muc-room-destroyed", contained("muc-room-destroyed", function (event)
	state:forget_room(event.room.jid);
	forget_room_enforcement(event.room.jid);
	main_rooms[event.room.jid], unlisted[event.room.jid] = nil, nil;
end));

--- jicofo's health-check rooms ---------------------------------------------------------------------------

-- jicofo's health check (JicofoHealthChecker.check) asks its FocusManager for a conference in a fresh
-- room named `<health.room-name-prefix>-<random>`; only jicofo joins it. Such rooms are not governed, so
-- anyone else in one could hold a conference nobody moderates: everyone but jicofo is kept out.
module:hook("muc-occupant-pre-join", function (event)
	local room, occupant = event.room, event.occupant;
	if not podium.is_healthcheck_room(room.jid) then return nil; end
	if podium.is_focus(nick_of(occupant), occupant.bare_jid, focus_jids) then return nil; end
	module:log("warn", "kept %s out of %s: only jicofo joins health-check rooms", tostring(event.stanza.attr.from),
		room.jid);
	event.origin.send(st.error_reply(event.stanza, "cancel", "not-allowed",
		"this room is reserved for jicofo's health checks", room.jid));
	return true;
end, 20); -- before mod_muc's own pre-join checks (-10 .. 2) and any room creation side effects

--- A moderator's approval in Jitsi's A/V moderation ----------------------------------------------------

-- "Ask to unmute" / "Allow video" in a stock Jitsi Meet client is a message from the moderator's session
-- to the A/V moderation component. It never crosses this MUC, so the module watches that component's
-- messages (before jitsi-meet's handler, which still handles them as ever) and reports an approval from
-- a moderator of the room, about an occupant in it, to podium; podium makes it a grant.
-- Whether a session proves no identity: anonymous authentication (Prosody's "anonymous", jitsi-meet's
-- "jitsi-anonymous"), or jitsi-meet's token auth entered without a token (allow_empty_token), where the
-- session has no session.auth_token. Such a session may belong to anyone, the approved occupant too.
local function is_anonymous_session(full_jid)
	local session = prosody.full_sessions[full_jid];
	if not session then return true; end
	local host = prosody.hosts[session.host];
	local provider = host and host.users and host.users.name or "";
	if provider:find("anonymous", 1, true) then return true; end
	return provider == "token" and session.auth_token == nil;
end

-- A moderator turns Jitsi's A/V moderation of a kind off: jitsi-meet's component finds the room from
-- the sender's web session (mod_jitsi_session) and tells every occupant "enabled: false", after which
-- a stock client lets its user unmute that kind freely. Once the component has spoken (a timer, as it
-- answers after this handler), the occupants podium refuses that kind are told again that moderation
-- is on for them (tell_moderation_ui): what their client shows keeps matching what the module
-- withholds. Only a moderator of the room is heard, so nobody else makes the module send messages.
-- The component tells nobody anything when A/V moderation is off in the room already (it keeps what is
-- on in room.av_moderation, read here before it runs): then the module sends nothing either, or a
-- moderator repeating the command would have it message every refused occupant per stanza. Commands
-- for a room in the same turn share one timer (`av_moderation_off_pending`), so the work per stanza
-- does not grow with the room.
local av_moderation_off_pending = {};

local function on_av_moderation_off(origin, stanza, kind)
	if not moderation_ui[kind] then return; end
	local room_jid = podium.web_session_room_jid(origin.jitsi_web_query_room, origin.jitsi_web_query_prefix,
		module.host);
	local room = room_jid and muc.get_room_from_jid(room_jid);
	local moderator = room and room:get_occupant_by_real_jid(stanza.attr.from);
	if not moderator or moderator.role ~= "moderator" or room.av_moderation == nil then return; end
	local pending = av_moderation_off_pending[room_jid];
	if pending then
		pending[kind] = true;
		return;
	end
	pending = { [kind] = true };
	av_moderation_off_pending[room_jid] = pending;
	module:add_timer(0, function ()
		av_moderation_off_pending[room_jid] = nil;
		for _, record in pairs(state.rooms[room_jid] or {}) do
			local shown = record.moderation_ui;
			local again = false;
			for off in pairs(pending) do
				if shown and shown[off] == "refused" then
					shown[off] = nil;
					again = true;
				end
			end
			if again then tell_moderation_ui(room_jid, record); end
		end
	end);
end

local function on_av_moderation(event)
	local stanza, origin = event.stanza, event.origin;
	if stanza.attr.type == "error" or origin.type ~= "c2s" then return nil; end
	local command = stanza:get_child("av_moderation");
	local off_kind = podium.read_av_moderation_off(command);
	if off_kind then
		on_av_moderation_off(origin, stanza, off_kind);
		return nil;
	end
	local target, media, approved = podium.read_av_moderation(command);
	-- On a multi-tenant Jitsi the client names the occupant by the room's virtual JID.
	local room_jid = target and podium.internal_room_jid(jid_bare(target), module.host);
	local nick = target and jid_resource(target);
	if not room_jid or not nick then return nil; end
	target = room_jid .. "/" .. nick;
	local room = muc.get_room_from_jid(room_jid);
	if not room then return nil; end
	local moderator = room:get_occupant_by_real_jid(stanza.attr.from);
	if not moderator or moderator.role ~= "moderator" then
		module:log("warn", "A/V moderation %s from %s, not a moderator of %s: not reported",
			approved and "approval" or "withdrawal", tostring(stanza.attr.from), room.jid);
		return nil;
	end
	local occupant = room:get_occupant_by_nick(target);
	if not occupant or not occupant.jid or not is_governed(room, occupant) then return nil; end
	flush_reports();
	module:send(st.message({ from = module.host; to = podium_component; type = "normal" })
		:tag("approval", {
			xmlns = xmlns_podium; room = room.jid; nick = nick_of(occupant); ["real-jid"] = occupant.jid;
			media = media; approved = approved and "true" or "false"; by = moderator.jid;
			meeting = meeting_of(room); ["by-anonymous"] = is_anonymous_session(moderator.jid) and "true" or "false";
		}):up());
	return nil;
end

local function hook_av_moderation(host)
	module:context(host):hook("message/host", function (event)
		local ok, err = pcall(on_av_moderation, event);
		if not ok then module:log("error", "A/V moderation message: %s", tostring(err)); end
		return nil;
	end, 10); -- before jitsi-meet's component handler (0), which is left to do its work
	module:log("info", "reporting A/V moderation approvals from %s to podium", host);
end

if av_moderation_host then
	when_active(av_moderation_host, hook_av_moderation);
end

--- Queries and decisions from podium -------------------------------------------------------------

local function is_podium(event)
	local from = event.stanza.attr.from;
	if event.origin.type == "component" and jid_node(from) == nil and jid_host(from) == podium_component then
		tune_podium_link(event.origin);
		return true;
	end
	return false;
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
		reply:tag("room", { jid = room_jid; ["main-room"] = main_room_of(entry.room) });
		for _, occupant in ipairs(entry.occupants) do
			local nick = nick_of(occupant);
			local record = state:track(room_jid, nick, occupant.jid);
			podium.read_presence(record, occupant:get_presence(), nick, json.decode);
			local affiliation = affiliation_of(entry.room, occupant);
			podium.presence_changed(record, occupant.role, affiliation);
			reply:add_child(occupant_tag(entry.room, occupant, record, affiliation));
		end
		reply:up();
	end
	flush_reports();
	event.origin.send(reply);
	return true;
end);

-- Holds and carries out each decision of a <permissions/>; returns how many were applied. The
-- occupants gone meanwhile are listed in the reply.
local function apply_permissions(entries, reply)
	local applied = 0;
	for _, entry in ipairs(entries) do
		local ok, record, previous = state:apply(entry.jid, entry.real_jid, entry.set, entry.watch);
		if ok then
			applied = applied + 1;
			module:log("debug", "holding audio=%s video=%s screen=%s for %s", entry.set.audio, entry.set.video,
				entry.set.screen, entry.jid);
			enforce(jid_bare(entry.jid), jid_resource(entry.jid), record, previous);
			report_sending_asked(entry.jid, record);
		else
			reply:tag("gone", { jid = entry.jid }):up();
		end
	end
	return applied;
end

-- One line for a batch of decisions: what reached jicofo, the clients and the bridge.
local function log_batch(tally)
	local acted = tally.withdrawn_from + tally.released_to + tally.bridge > 0;
	module:log(acted and "info" or "debug", "held %d decision(s) from podium (%d occupant(s) gone): "
		.. "withdrew %d source(s) of %d occupant(s) from jicofo, released %d of %d, sent %d force-mute(s) "
		.. "in %d request(s) to the bridge; %d client(s) to tell at the end of the turn", tally.decisions,
		tally.gone, tally.withdrawn, tally.withdrawn_from, tally.released, tally.released_to, tally.bridge,
		tally.bridge_requests, tally.clients);
end

-- Carrying out a batch of podium's decisions allocates some KB per decision (what jicofo and the
-- client are sent, built, routed and serialised: about 12 KB for a camera's revoke, 24 KB for its
-- grant, most of it in Prosody's routing and util.stanza), and Prosody 0.12's collector charged an edit
-- for 500 occupants more in marking than the work itself. The collector is slowed while one batch is
-- carried out (podium.pcall_collector_slowed): podium sends at most 1,000 decisions per <permissions/>
-- (one slice of its pass over every room), and a bigger batch runs with the collector at its pace. The
-- clients are told at the end of the turn, so a batch allocates what jicofo is sent (a few MB for
-- 1,000 revokes), and the collector takes it up after the batch.
local max_slowed_batch = 1024;

module:hook("iq-set/host/" .. xmlns_podium .. ":permissions", function (event)
	if not is_podium(event) then
		return refuse(event, "only the podium component may set permissions");
	end
	local entries, err = podium.parse_permissions(event.stanza.tags[1]);
	if not entries then
		event.origin.send(st.error_reply(event.stanza, "modify", "bad-request", err));
		return true;
	end
	local reply = st.reply(event.stanza):tag("applied", { xmlns = xmlns_podium });
	local tally = new_batch_tally();
	batch_tally = tally;
	local ok, applied = podium.pcall_collector_slowed(#entries, max_slowed_batch, apply_permissions, entries, reply);
	batch_tally = nil;
	-- Even after an error: these endpoints count as told (endpoint.applied).
	local sent, send_error = pcall(send_queued_force_mutes, tally);
	if not sent then module:log("error", "sending the bridge its force-mutes: %s", tostring(send_error)); end
	if not ok then error(applied, 0); end
	tally.decisions, tally.gone = applied, #entries - applied;
	log_batch(tally);
	reply.tags[1].attr.count = tostring(applied);
	flush_reports();
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
	local conference, p2p = conferences[room_jid], p2p_sessions[room_jid];
	local reply = st.reply(event.stanza):tag("inspect", {
		xmlns = xmlns_podium; room = room_jid;
		["bridge-endpoints"] = tostring(conference and jingle.count(conference.endpoints) or 0);
		["p2p-sessions"] = tostring(p2p and jingle.count(p2p) or 0);
	});
	for nick, record in pairs(state.rooms[room_jid] or {}) do
		local media = record.media;
		reply:tag("occupant", podium.media_attrs(record.held, {
			jid = room_jid .. "/" .. nick; ["real-jid"] = record.real_jid; origin = record.origin;
			session = media and media.sid;
			forwarded = tostring(media and jingle.count(media.forwarded) or 0);
			withheld = tostring(media and jingle.count(media.withheld) or 0);
		})):up();
	end
	flush_reports();
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

--- A reload of this module (or of mod_muc, which reloads it) -------------------------------------------

-- Prosody 0.12 keeps what module.save returns for the next instance's module.restore
-- (core/modulemanager.lua do_reload_module); reloading mod_muc reloads this module too (its
-- module:depends("muc") hooks module-reloaded), and mod_muc keeps its rooms and occupants (it saves
-- them to storage on unload and restores them on demand). Without this, a reload in the middle of a
-- conference would lose every withheld and forwarded source, every sid and every conference at the
-- bridge: a revoke would remove nothing from jicofo, a grant replay nothing, and jicofo's next Colibri2
-- would lift the bridge's force-mute. The rooms map is copied, as module.unload empties it.
function module.save()
	flush_reports();
	local rooms, joins = {}, {};
	for room_jid, room in pairs(state.rooms) do rooms[room_jid] = room; end
	for room_jid, joined in pairs(state.joins) do joins[room_jid] = joined; end
	return {
		format = podium.saved_format; rooms = rooms; joins = joins; conferences = conferences;
		meeting_rooms = meeting_rooms; p2p_sessions = p2p_sessions; injected = injected;
		injected_count = injected_count; own_meeting_ids = own_meeting_ids;
	};
end

-- The sid index is shared with this module on the other MUC host and outlives this instance (a reload):
-- this instance's sessions leave it (module.restore indexes them again).
function module.unload()
	flush_reports();
	for room_jid in pairs(state.rooms) do
		state:forget_room(room_jid);
	end
end

local function copy_into(to, from)
	for key, value in pairs(from) do to[key] = value; end
end

-- Ends a session the previous instance had (see restart_unknown_sessions) in the participant's name.
local function restart_session(handle)
	local record = state:track(handle.room_jid, handle.nick, handle.real_jid);
	local media = media_of(record);
	state:set_sid(record, handle.sid);
	media.focus, media.focus_occupant = handle.focus, handle.focus_occupant;
	media.bridge_session = handle.bridge_session;
	end_session(handle.room_jid, handle.nick, record, "this module was reloaded and lost track of its sources");
end

-- A state this code cannot read (saved by another version, or by none): no decision or source of it is
-- trusted. Every occupant starts from podium_default_permissions until podium's resync decides (the
-- <reset/> below), and every Jingle session that can still be named is ended with a restart: jicofo
-- drops its sources and invites the participant again, and the new session-accept is filtered like a
-- first one. A session that cannot be named stays unknown: its Jingle is refused (to_focus) until
-- jicofo invites the participant again. The conferences at the bridge are kept when their shape is
-- the one this code reads (jicofo names a conference only when it creates it; a re-invite's
-- allocation carries the meeting id alone), with nothing counted as told to the bridge.
local function restart_unknown_sessions(saved, why)
	-- Each walk of the unknown state is guarded: what raises there counts as unreadable.
	local walked, conference_problem = pcall(podium.check_conferences, type(saved) == "table" and saved.conferences,
		type(saved) == "table" and saved.meeting_rooms);
	if walked and not conference_problem then
		copy_into(conferences, saved.conferences);
		copy_into(meeting_rooms, saved.meeting_rooms);
		for _, conference in pairs(conferences) do
			for _, endpoint in pairs(conference.endpoints) do endpoint.applied = nil; end
		end
	end
	local restarted = 0;
	local named, handles = pcall(podium.session_handles, saved);
	for _, handle in ipairs(named and handles or {}) do
		-- A sid the other MUC host's instance holds is that instance's to end.
		if state.sids[handle.sid] == nil then
			restart_session(handle);
			restarted = restarted + 1;
		end
	end
	module:log("warn", "the state of the previous instance cannot be used (%s): %d Jingle session(s) restarted, "
		.. "everyone held at the default until podium resyncs", tostring(why), restarted);
end

function module.restore(saved)
	local walked, problem = pcall(podium.check_saved, saved, jingle.new_media());
	if not walked or problem then
		restart_unknown_sessions(saved, problem);
		return;
	end
	local records, dropped = state:adopt(saved);
	copy_into(conferences, saved.conferences);
	copy_into(meeting_rooms, saved.meeting_rooms);
	copy_into(p2p_sessions, saved.p2p_sessions);
	copy_into(injected, saved.injected);
	injected_count = saved.injected_count;
	for room, meeting_id in pairs(type(saved.own_meeting_ids) == "table" and saved.own_meeting_ids or {}) do
		if type(meeting_id) == "string" then own_meeting_ids[room] = meeting_id; end
	end
	-- SSRC collisions are checked against every restored source from the first request on.
	for room_jid in pairs(state.rooms) do rebuild_ssrc_owners(room_jid); end
	module:log("info", "kept across the reload: %d occupant(s), %d conference(s) at the bridge; %d session(s) "
		.. "claimed elsewhere dropped", records, jingle.count(conferences), dropped);
end

-- Tell podium this module (re)started: podium resyncs, as after a reconnect, and corrects whatever the
-- module holds (nothing after a first load, the previous instance's state after a reload). If podium
-- is not connected yet, Prosody bounces this harmlessly and podium resyncs when it connects.
-- From a timer, so that at start-up every host is activated before it is routed.
module:add_timer(0, function ()
	flush_reports();
	module:send(st.message({ from = module.host; to = podium_component; type = "normal" })
		:tag("reset", { xmlns = xmlns_podium }):up());
end);
