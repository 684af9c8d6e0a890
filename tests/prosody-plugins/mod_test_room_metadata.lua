-- Test-only: stands in for the part of jitsi-meet's mod_room_metadata_component that its A/V
-- moderation component relies on: every conference room carries room.jitsiMetadata (a table), where
-- turning A/V moderation on or off records startMuted. Loaded with the global modules only when the
-- tests run with jitsi-meet's own modules (TEST_JITSI_PLUGINS, tests/common/prosody.rs); the MUC is
-- test_room_metadata_muc. Never load this in production.

local muc_host = module:get_option_string("test_room_metadata_muc");

local function setup(host_module)
	host_module:hook("muc-room-created", function (event)
		event.room.jitsiMetadata = event.room.jitsiMetadata or {};
	end, 1);
end

if prosody.hosts[muc_host] then
	setup(module:context(muc_host));
else
	prosody.events.add_handler("host-activated", function (host)
		if host == muc_host then setup(module:context(host)); end
	end);
end
