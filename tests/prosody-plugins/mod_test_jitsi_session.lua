-- Test-only: stands in for jitsi-meet's mod_jitsi_session in podium's integration tests.
--
-- Jitsi's web client connects to /xmpp-websocket?room=<room> (or BOSH with the same query), and
-- mod_jitsi_session keeps that room, and the tenant, on the session as session.jitsi_web_query_room
-- and session.jitsi_web_query_prefix. Jitsi's components that take commands without naming a room
-- (A/V moderation's enable and disable, breakout rooms) find the room from there. The tests' clients
-- connect over plain c2s, without a URL, so here the first room a session joins on the conference
-- MUC (test_jitsi_session_muc) is kept instead: the room a web client's URL would have named. A
-- tenant room [tenant]room keeps tenant as the prefix. Loaded with the global modules. Never load
-- this in production.

local jid_split = require "util.jid".split;

local muc_host = module:get_option_string("test_jitsi_session_muc");

module:hook("pre-presence/full", function (event)
	local session, stanza = event.origin, event.stanza;
	if not session or session.jitsi_web_query_room or stanza.attr.type then return; end
	local node, host = jid_split(stanza.attr.to);
	if host ~= muc_host or not node then return; end
	local tenant, room = node:match("^%[([^%]]+)%](.+)$");
	session.jitsi_web_query_room = room or node;
	session.jitsi_web_query_prefix = tenant;
end, 1);
