-- mod_podium_visitor: keeps a Jitsi visitor Prosody ("vnode") from becoming a way around mod_podium.
--
-- jicofo registers one Jingle handler on its main connection and on every visitor-node connection, and
-- finds the session by sid alone (jicofo XmppServices.kt `jingleHandler`, JingleIqRequestHandler.kt). A
-- main-room participant who also connects (anonymously) to a visitor node could send its own main
-- session's source-add to jicofo there, where mod_podium never sees it. Visitors never send media
-- (jicofo refuses their sources, JVB their endpoints' sources), so on a visitor node nothing that could
-- add or name a source reaches jicofo. And since nobody there may send media, Jingle to anyone else on
-- the node comes only from jicofo (directly, or as an occupant of a MUC on this Prosody): no peer-to-peer
-- offers to visitors.
--
-- Load it on every VirtualHost of each visitor Prosody (jicofo's auth host and the visitors' host); the
-- easiest is the global modules_enabled there:
--
--   modules_enabled = { ...; "podium_visitor" }
--   podium_focus_jids = { "focus@auth.meet.example" }
--
-- Options (read once, at load):
--   podium_focus_jids   (required) jicofo's bare JIDs, as on the main Prosody's MUC
--
-- Pure logic: podium_guard.lib.lua (busted specs).

local st = require "util.stanza";
local jid_bare = require "util.jid".bare;
local jid_host = require "util.jid".host;
local jid_prep = require "util.jid".prep;

local guard = module:require "podium_guard";

local focus_jids = {};
for focus_jid in module:get_option_set("podium_focus_jids", {}) do
	focus_jids[jid_prep(focus_jid) or focus_jid] = true;
end

if next(focus_jids) == nil then
	module:log("error", "podium_focus_jids is not set: add jicofo's JID (focus@auth.<domain>); "
		.. "Jingle on this visitor node is not checked");
	return;
end

-- Whether `from` is jicofo: its own JID, or its occupant JID in a room of a MUC on this Prosody.
local function is_focus(from)
	if not from then return false; end
	if focus_jids[jid_bare(from)] then return true; end
	local host_session = prosody.hosts[jid_host(from)];
	local muc = host_session and host_session.modules.muc;
	local room = muc and muc.get_room_from_jid(jid_bare(from));
	local occupant = room and room:get_occupant_by_nick(from);
	return occupant ~= nil and focus_jids[occupant.bare_jid] == true;
end

-- Why IQ `stanza` may not be delivered here: condition, text; nil when it may.
local function refusal(stanza)
	if stanza.attr.type ~= "set" then return nil; end
	if focus_jids[jid_bare(stanza.attr.to)] then
		local text = guard.visitor_refusal(stanza);
		if text then return "forbidden", text; end
		return nil;
	end
	if guard.jingle_shape(stanza) and not is_focus(stanza.attr.from) then
		return "not-allowed", "on a visitor node, Jingle comes only from the focus";
	end
	return nil;
end

local function on_iq(event)
	local ok, condition, text = pcall(refusal, event.stanza);
	if not ok then
		module:log("error", "checking an IQ on a visitor node: %s", tostring(condition));
		condition, text = "internal-server-error", "podium could not check this";
	end
	if not condition then return nil; end
	module:log("info", "refused an IQ from %s to %s on a visitor node (%s)", tostring(event.stanza.attr.from),
		tostring(event.stanza.attr.to), condition);
	-- Routed, not origin.send: the sender may be behind the visitor MUC.
	module:send(st.error_reply(event.stanza, condition == "forbidden" and "auth" or "cancel", condition, text));
	return true;
end

-- Above mod_iq's delivery to the client's session (0): nothing refused reaches jicofo or a visitor.
module:hook("iq/full", on_iq, 10);
