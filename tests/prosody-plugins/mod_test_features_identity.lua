-- Test-only: stands in for jitsi-meet's mod_features_identity on the XMPP domain in podium's
-- integration tests. A component announces itself with
--   module:context(<domain>):fire_event("jitsi-add-identity", { name = "av_moderation"; host = module.host })
-- and this adds a disco#info identity (category component, type = name, name = host) to the domain,
-- where lib-jitsi-meet (xmpp _processDiscoInfoIdentities) and jicofo discover Jitsi's components.
-- Loaded with the global modules. Never load this in production.

module:hook("jitsi-add-identity", function (event)
	module:add_identity("component", event.name, event.host);
end);
