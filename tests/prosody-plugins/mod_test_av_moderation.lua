-- Test-only: stands in for jitsi-meet's A/V moderation component (mod_av_moderation_component) in
-- podium's integration tests. Load it as the component itself, with muc_component naming the MUC:
--
--   Component "avmoderation.localhost" "test_av_moderation"
--       muc_component = "conference.localhost"
--
-- It keeps the behaviour podium's module observes (resources/prosody-plugins/mod_av_moderation_component.lua):
-- a moderator's <av_moderation jidToWhitelist='room@muc/nick' mediaType='audio|video'/> puts the
-- occupant on the room's whitelist and tells the occupant it was approved with a json-message;
-- jidToBlacklist takes it off and tells the occupant it was removed. A sender who is not a moderator of
-- the room gets an error (jitsi-meet's handler returns false and Prosody answers the unhandled message
-- with an error too; seen with jitsi-meet's own component, TEST_JITSI_PLUGINS). Unlike here, jitsi-meet
-- also answers the moderator's approval or withdrawal with that error while A/V moderation is off
-- (its handler sends the approval, then falls through to return false). Jitsi finds
-- the room from the client's web session; here the room is the one the target occupant is in.
-- <av_moderation enable='true|false'/> (no occupant named) finds the room from the web session, as
-- jitsi-meet does, and tells every occupant. mediaType is audio, video or desktop (screenshare), as in
-- current jitsi-meet.
-- Never load this in production.

local st = require "util.stanza";
local jid_split = require "util.jid".split;
local json = require "util.json";

local muc_host = module:get_option_string("muc_component");

-- lib-jitsi-meet and jicofo find the component by a disco#info identity of the XMPP domain
-- (category component, type av_moderation, name = its address: lib-jitsi-meet xmpp
-- _processDiscoInfoIdentities); jitsi-meet's component asks mod_features_identity for it, as here
-- (mod_test_features_identity). The domain is the MUC's without its first label. From a timer, so
-- that at start-up the domain's modules are loaded whatever order Prosody activates hosts in.
local main_domain = muc_host:match("^[^.]+%.(.+)$");
module:add_timer(0, function ()
	module:context(main_domain):fire_event("jitsi-add-identity", { name = "av_moderation"; host = module.host });
end);

-- The occupant JID as the MUC knows it: a tenant's virtual room@conference.<tenant>.<domain>/nick is
-- [tenant]room@conference.<domain>/nick here (jitsi-meet's component rewrites it the same way).
local function internal(occupant_jid)
	local node, host, nick = jid_split(occupant_jid);
	if not node or not nick then return nil; end
	if host ~= muc_host then
		local prefix, base = muc_host:match("^([^.]+)%.(.+)$");
		local tenant = host:sub(1, #prefix + 1) == prefix .. "." and host:sub(-#base - 1) == "." .. base
			and host:sub(#prefix + 2, -#base - 2);
		if not tenant or tenant == "" then return nil; end
		node, host = "[" .. tenant .. "]" .. node, muc_host;
	end
	return node .. "@" .. host, node .. "@" .. host .. "/" .. nick;
end

local function tell(to, body)
	module:send(st.message({ from = module.host; to = to })
		:tag("json-message", { xmlns = "http://jitsi.org/jitmeet" }):text(json.encode(body)):up());
end

-- The room of the sender's web session (mod_jitsi_session; tests/prosody-plugins/mod_test_jitsi_session).
local function web_session_room(session)
	local name = session and session.jitsi_web_query_room;
	if not name then return nil; end
	local prefix = session.jitsi_web_query_prefix;
	local node = (prefix and prefix ~= "") and ("[" .. prefix .. "]" .. name) or name;
	local host = prosody.hosts[muc_host];
	return host and host.modules.muc.get_room_from_jid(node .. "@" .. muc_host);
end

-- <av_moderation enable='true|false' mediaType='...'/> turns A/V moderation of a kind on or off in
-- the room of the moderator's web session, as jitsi-meet's component does: every occupant is told
-- { type = "av_moderation", enabled, room, actor, mediaType }.
local function on_enable(event, command, media)
	local room = web_session_room(event.origin);
	local moderator = room and room:get_occupant_by_real_jid(event.stanza.attr.from);
	if not moderator or moderator.role ~= "moderator" then
		event.origin.send(st.error_reply(event.stanza, "auth", "forbidden", "not a moderator of the room"));
		return true;
	end
	local enabled = command.attr.enable == "true";
	-- jitsi-meet answers nothing to turning on what is on, or off when nothing is on ("out of sync").
	if enabled and room.av_moderation and room.av_moderation[media] then return true; end
	if not enabled and not room.av_moderation then return true; end
	room.av_moderation = room.av_moderation or {};
	room.av_moderation[media] = enabled and {} or nil;
	if not next(room.av_moderation) then room.av_moderation = nil; end
	for _, occupant in room:each_occupant() do
		tell(occupant.jid, {
			type = "av_moderation"; enabled = enabled; room = room.jid; actor = moderator.nick; mediaType = media;
		});
	end
	return true;
end

local media_types = { audio = true; video = true; desktop = true };

module:hook("message/host", function (event)
	local stanza = event.stanza;
	local command = stanza:get_child("av_moderation");
	if not command or stanza.attr.type == "error" then return nil; end
	if command.attr.enable ~= nil and media_types[command.attr.mediaType] then
		return on_enable(event, command, command.attr.mediaType);
	end
	local room_jid, target = internal(command.attr.jidToWhitelist or command.attr.jidToBlacklist or "");
	local media = command.attr.mediaType;
	local host = prosody.hosts[muc_host];
	local room = room_jid and host and host.modules.muc.get_room_from_jid(room_jid);
	local moderator = room and room:get_occupant_by_real_jid(stanza.attr.from);
	if not moderator or moderator.role ~= "moderator" or not media_types[media] then
		event.origin.send(st.error_reply(stanza, "auth", "forbidden", "not a moderator of the room"));
		return true;
	end
	local occupant = room:get_occupant_by_nick(target);
	if not occupant then return true; end
	room.av_moderation = room.av_moderation or {};
	local whitelist = room.av_moderation[media] or {};
	room.av_moderation[media] = whitelist;
	if command.attr.jidToWhitelist then
		whitelist[target] = true;
		tell(occupant.jid, { type = "av_moderation"; room = room.jid; approved = true; mediaType = media });
	else
		whitelist[target] = nil;
		tell(occupant.jid, { type = "av_moderation"; room = room.jid; removed = true; mediaType = media });
	end
	return true;
end);
