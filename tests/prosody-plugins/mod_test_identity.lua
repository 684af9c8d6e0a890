-- Test-only: stands in for Jitsi token auth in podium's integration tests.
--
-- Jitsi's token/util.lib.lua sets session.jitsi_meet_context_user and .jitsi_meet_context_group from a
-- verified JWT. Here any account named "token-<id>" gets user id <id>, name "Token <id>", an email,
-- group "acme", a department claim ("sales" when <id> starts with "sales", else "support") and
-- the feature screen-sharing (true for sales) when it binds a resource, so the tests see exactly what a token-authenticated session
-- carries, without minting JWTs. Never load this in production.

local jid_split = require "util.jid".split;

module:hook("resource-bind", function (event)
	local session = event.session;
	local username = jid_split(session.full_jid);
	local id = username and username:match("^token%-(.+)$");
	if not id then return; end
	session.jitsi_meet_context_user = {
		id = id; name = "Token " .. id; email = id .. "@example.com";
		department = id:match("^sales") and "sales" or "support";
	};
	session.jitsi_meet_context_group = "acme";
	session.jitsi_meet_context_features = { ["screen-sharing"] = id:match("^sales") ~= nil };
end);
