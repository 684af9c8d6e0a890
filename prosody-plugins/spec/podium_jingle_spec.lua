-- busted specs for podium_jingle.lib.lua: source filtering, grant and revoke batches, Colibri2 and mute
-- IQ shapes. Fixtures follow the shapes lib-jitsi-meet sends (research: real-client.md).
package.path = "./?.lua;./?.lib.lua;/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local xml = require "util.xml";
local st = require "util.stanza";
local jingle = dofile("podium_jingle.lib.lua");

local ssma = "urn:xmpp:jingle:apps:rtp:ssma:0";

-- A track: `count` SSRCs from `first`, all named `name`; simulcast (3 primaries + RTX) when count is 6.
local function track(name, first, count, video_type)
	local out = {};
	for i = 0, count - 1 do
		out[#out + 1] = ([[<source xmlns='%s' ssrc='%d' name='%s'%s><parameter name='msid' value='%s-track'/></source>]])
			:format(ssma, first + i, name, video_type and (" videoType='" .. video_type .. "'") or "", name);
	end
	if count == 6 then
		local f = first;
		out[#out + 1] = ("<ssrc-group xmlns='%s' semantics='FID'><source ssrc='%d'/><source ssrc='%d'/></ssrc-group>"):format(ssma, f, f + 3);
		out[#out + 1] = ("<ssrc-group xmlns='%s' semantics='SIM'><source ssrc='%d'/><source ssrc='%d'/><source ssrc='%d'/></ssrc-group>")
			:format(ssma, f, f + 1, f + 2);
		out[#out + 1] = ("<ssrc-group xmlns='%s' semantics='FID'><source ssrc='%d'/><source ssrc='%d'/></ssrc-group>"):format(ssma, f + 1, f + 4);
		out[#out + 1] = ("<ssrc-group xmlns='%s' semantics='FID'><source ssrc='%d'/><source ssrc='%d'/></ssrc-group>"):format(ssma, f + 2, f + 5);
	end
	return table.concat(out);
end

local function jingle_iq(action, audio, video)
	local contents = {};
	if audio then
		contents[#contents + 1] = "<content name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>"
			.. audio .. "</description></content>";
	end
	if video then
		contents[#contents + 1] = "<content name='video'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>"
			.. video .. "</description></content>";
	end
	return xml.parse(("<iq xmlns='jabber:client' type='set' id='x'><jingle xmlns='urn:xmpp:jingle:1' action='%s' sid='s1'>%s</jingle></iq>")
		:format(action, table.concat(contents)));
end

local function ssrcs_in(payload)
	local sources, groups = jingle.read_sources(payload);
	local list = {};
	for _, source in ipairs(sources) do list[#list + 1] = source.ssrc .. ":" .. source.kind; end
	return list, #groups;
end

local allow_all = { audio = true; video = true; screen = true };
local audio_only = { audio = true; video = false; screen = false };
local no_screen = { audio = true; video = true; screen = false };

describe("read_sources", function ()
	it("tells audio, camera and screenshare apart", function ()
		local payload = jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 10, 1),
			track("b-v0", 20, 6, "camera") .. track("b-v1", 30, 6, "desktop")));
		local sources, groups = jingle.read_sources(payload);
		assert.equal(13, #sources);
		assert.equal(8, #groups);
		assert.equal("audio", sources[1].kind);
		assert.equal("video", sources[2].kind);
		assert.equal("screen", sources[8].kind);
		assert.same({ "20", "23" }, groups[1].ssrcs);
	end);
	it("believes presence when Jingle says nothing (older clients)", function ()
		local payload = jingle.jingle_of(jingle_iq("source-add", nil, track("b-v0", 20, 2)));
		local sources = jingle.read_sources(payload, { ["b-v0"] = "screen" });
		assert.equal("screen", sources[1].kind);
		assert.equal("screen", sources[2].kind);
	end);
	it("refuses an invalid ssrc", function ()
		local payload = jingle.jingle_of(jingle_iq("source-add", "<source xmlns='" .. ssma .. "' ssrc='0'/>"));
		local sources, err = jingle.read_sources(payload);
		assert.is_nil(sources);
		assert.equal('invalid ssrc "0"', err);
	end);
	it("refuses what would make one participant's kept state unbounded (review 14)", function ()
		-- 200 parameters of 1 KB on one source: kept and replayed on every grant before.
		local parameters = {};
		for i = 1, 200 do
			parameters[i] = ("<parameter name='p%d' value='%s'/>"):format(i, ("x"):rep(1000));
		end
		local fat = ("<source xmlns='%s' ssrc='11' name='b-a0'>%s</source>"):format(ssma, table.concat(parameters));
		local sources, err = jingle.read_sources(jingle.jingle_of(jingle_iq("source-add", fat)));
		assert.is_nil(sources);
		assert.equal("the parameters of ssrc 11 exceed 1024 bytes", err);
		-- One SSRC listed 5,000 times in a group: every member is a signalled SSRC, so the group
		-- checks passed and the module kept the whole list.
		local members = ("<source ssrc='20'/>"):rep(5000);
		local group = ("<ssrc-group xmlns='%s' semantics='SIM'>%s</ssrc-group>"):format(ssma, members);
		sources, err = jingle.read_sources(jingle.jingle_of(jingle_iq("source-add", nil, track("b-v0", 20, 1) .. group)));
		assert.is_nil(sources);
		assert.equal("an <ssrc-group> lists more than 32 sources", err);
		-- What lib-jitsi-meet sends still reads.
		assert.equal(13, #jingle.read_sources(jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 10, 1),
			track("b-v0", 20, 6, "camera") .. track("b-v1", 30, 6, "desktop")))));
	end);
end);

describe("unify_kinds", function ()
	it("gives a whole track the strictest kind of its sources", function ()
		-- One simulcast layer claims desktop: the camera track is treated as a screenshare.
		local video = track("b-v0", 20, 6, "camera"):gsub("ssrc='21' name='b%-v0' videoType='camera'",
			"ssrc='21' name='b-v9' videoType='desktop'");
		local payload = jingle.jingle_of(jingle_iq("session-accept", nil, video));
		local sources, groups = jingle.read_sources(payload);
		assert.equal("video", sources[1].kind);
		jingle.unify_kinds(sources, groups);
		for _, source in ipairs(sources) do assert.equal("screen", source.kind); end
	end);
end);

describe("check_sources", function ()
	local function check(video, owner)
		local payload = jingle.jingle_of(jingle_iq("source-add", nil, video));
		local sources, problem = jingle.read_sources(payload);
		if not sources then return problem; end
		return jingle.check_sources(sources, "b", owner or function () return nil; end);
	end
	it("accepts the endpoint's own new sources, not ones it already signalled", function ()
		assert.is_nil(check(track("b-v0", 20, 6, "camera")));
		assert.equal("SSRC is already used: 20.", check(track("b-v0", 20, 6, "camera"), function () return "b"; end));
	end);
	it("refuses a name that claims another endpoint", function ()
		assert.equal('source name "a-v0" does not belong to endpoint "b"', check(track("a-v0", 20, 1)));
		assert.equal('source name "bob-v0" does not belong to endpoint "b"', check(track("bob-v0", 20, 1)));
		assert.equal('source name "b-x-v0" does not belong to endpoint "b"', check(track("b-x-v0", 20, 1)));
		-- Kept for the conference: a name of 200,000 digits passed before (review 14b).
		local long = "b-v" .. ("1"):rep(200000);
		local source = ("<source xmlns='%s' ssrc='20' name='%s'/>"):format(ssma, long);
		assert.equal(('source name %q does not belong to endpoint "b"'):format(long), check(source));
		assert.is_nil(check(track("b-v123456789", 20, 1)));
	end);
	it("refuses an SSRC another participant uses, or one listed twice", function ()
		assert.equal("SSRC is already used: 20.",
			check(track("b-v0", 20, 1), function () return "a"; end));
		assert.equal("ssrc 20 is listed twice", check(track("b-v0", 20, 1) .. track("b-v0", 20, 1)));
	end);
	it("refuses an SSRC listed twice in a removal too, even under two media", function ()
		-- jicofo keys sources by SSRC and media: it would read two sources where the module reads one.
		local payload = jingle.jingle_of(jingle_iq("source-remove", nil, track("b-v0", 20, 1)))
		payload:tag("content", { name = "audio" })
			:tag("description", { xmlns = "urn:xmpp:jingle:apps:rtp:1"; media = "audio" })
				:tag("source", { xmlns = "urn:xmpp:jingle:apps:rtp:ssma:0"; ssrc = "20" }):up():up():up();
		assert.same({ nil, "ssrc 20 is listed twice" }, { jingle.read_sources(payload) });
	end);
	it("counts withheld sources toward jicofo's 20-SSRC limit, so every withheld one can be replayed", function ()
		local payload = jingle.jingle_of(jingle_iq("source-add", nil, track("b-v1", 40, 6, "desktop")));
		local sources = jingle.read_sources(payload);
		local nobody = function () return nil; end;
		assert.is_nil(jingle.check_sources(sources, "b", nobody, 14));
		assert.equal("SSRC limit (20) exceeded.", jingle.check_sources(sources, "b", nobody, 15));
	end);
end);

describe("withhold", function ()
	it("removes refused sources and every group naming them", function ()
		local iq = jingle_iq("session-accept", track("b-a0", 10, 1), track("b-v0", 20, 6, "camera"));
		local payload = jingle.jingle_of(iq);
		local sources, groups = jingle.read_sources(payload);
		local media = jingle.new_media();
		local summary = jingle.withhold(payload, media, sources, groups, audio_only);
		assert.same({ kept = 1; withheld = 6; kinds = { video = true }; added = { "10" } }, summary);
		local left, group_count = ssrcs_in(payload);
		assert.same({ "10:audio" }, left);
		assert.equal(0, group_count);
		assert.equal(6, jingle.count(media.withheld));
		assert.equal(1, jingle.count(media.forwarded));
		assert.equal(4, #media.groups);
		-- The rest of the stanza is untouched.
		assert.equal("video", payload.tags[2].attr.name);
	end);
	it("keeps the camera and drops a screenshare source-add entirely", function ()
		local media = jingle.new_media();
		local accept = jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 10, 1), track("b-v0", 20, 6, "camera")));
		local s, g = jingle.read_sources(accept);
		jingle.withhold(accept, media, s, g, no_screen);
		local add = jingle.jingle_of(jingle_iq("source-add", nil, track("b-v1", 30, 6, "desktop")));
		s, g = jingle.read_sources(add);
		local summary = jingle.withhold(add, media, s, g, no_screen);
		assert.equal(6, summary.withheld);
		assert.is_false(jingle.has_sources(add));
		assert.equal(7, jingle.count(media.forwarded));
	end);
end);

describe("forget_added", function ()
	it("takes back what jicofo refused, and the groups naming it", function ()
		local media = jingle.new_media();
		local payload = jingle.jingle_of(jingle_iq("source-add", nil, track("b-v0", 20, 6, "camera")));
		local s, g = jingle.read_sources(payload);
		local summary = jingle.withhold(payload, media, s, g, allow_all);
		assert.equal(6, #summary.added);
		jingle.forget_added(media, summary.added);
		assert.equal(0, jingle.count(media.forwarded));
		for _, group in ipairs(media.groups) do assert.is_false(group.forwarded); end
		-- Sending them again counts them as new.
		s, g = jingle.read_sources(jingle.jingle_of(jingle_iq("source-add", nil, track("b-v0", 20, 6, "camera"))));
		assert.equal(6, #jingle.withhold(payload, media, s, g, allow_all).added);
	end);
end);

describe("plan_change", function ()
	local function withheld_camera()
		local media = jingle.new_media();
		local payload = jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 10, 1), track("b-v0", 20, 6, "camera")));
		local s, g = jingle.read_sources(payload);
		jingle.withhold(payload, media, s, g, audio_only);
		return media;
	end
	it("replays the withheld camera with its groups, names and msid intact", function ()
		local media = withheld_camera();
		local add, remove = jingle.plan_change(media, allow_all);
		assert.is_true(jingle.is_empty(remove));
		assert.equal(6, #add.sources);
		assert.equal(4, #add.groups);
		local replay = jingle.jingle_for("source-add", "s2", add);
		assert.equal("s2", replay.attr.sid);
		local sources, groups = jingle.read_sources(replay);
		assert.equal(6, #sources);
		assert.equal(4, #groups);
		assert.equal("b-v0", sources[1].name);
		assert.equal("camera", sources[1].video_type);
		assert.equal("msid\0b-v0-track\0", sources[1].parameters);
		local first = replay.tags[1].tags[1]:get_child("source", ssma);
		assert.same({ name = "msid"; value = "b-v0-track" }, first.tags[1].attr);
		assert.equal(7, jingle.count(media.forwarded));
		-- Nothing left to do a second time.
		add = jingle.plan_change(media, allow_all);
		assert.is_true(jingle.is_empty(add));
	end);
	it("withdraws what is revoked, with its groups", function ()
		local media = withheld_camera();
		jingle.plan_change(media, allow_all);
		local add, remove = jingle.plan_change(media, { audio = false; video = true; screen = true });
		assert.is_true(jingle.is_empty(add));
		assert.equal(1, #remove.sources);
		assert.equal("10", remove.sources[1].ssrc);
		assert.equal(0, #remove.groups);
		local _, camera_gone = jingle.plan_change(media, { audio = false; video = false; screen = true });
		assert.equal(6, #camera_gone.sources);
		assert.equal(4, #camera_gone.groups);
		assert.equal(7, jingle.count(media.withheld));
	end);
	it("withholds again when jicofo refuses the replay", function ()
		local media = withheld_camera();
		local add = jingle.plan_change(media, allow_all);
		jingle.undo_add(media, add);
		assert.equal(6, jingle.count(media.withheld));
		local again = jingle.plan_change(media, allow_all);
		assert.equal(6, #again.sources);
		assert.equal(4, #again.groups);
	end);
end);

describe("reclassify (a camera switched to the screen in presence only)", function ()
	-- A 2021 client's camera: six nameless SSRCs (no source names, no videoType).
	local function nameless_camera()
		return (track("x", 10, 6):gsub(" name='x'", ""));
	end

	it("turns a forwarded camera into a refused screenshare and back, with its groups", function ()
		local media = jingle.new_media();
		local payload = jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 1, 1), nameless_camera()));
		local sources, groups = jingle.read_sources(payload, nil, "b");
		jingle.withhold(payload, media, sources, groups, no_screen);
		assert.equal(7, jingle.count(media.forwarded));
		assert.is_false(jingle.sends_only_refused_screen(media));

		-- Presence: "b-v0" is now the screen (replaceTrack; no Jingle).
		assert.is_true(jingle.reclassify(media, { ["b-v0"] = "screen" }, "b"));
		local add, remove = jingle.plan_change(media, no_screen);
		assert.equal(6, #remove.sources);
		assert.equal(4, #remove.groups);
		assert.is_true(jingle.is_empty(add));
		assert.is_true(jingle.sends_only_refused_screen(media));
		-- Nothing changes while presence says the same.
		assert.is_false(jingle.reclassify(media, { ["b-v0"] = "screen" }, "b"));

		-- Back to the camera: released with all four groups.
		assert.is_true(jingle.reclassify(media, {}, "b"));
		add, remove = jingle.plan_change(media, no_screen);
		assert.equal(6, #add.sources);
		assert.equal(4, #add.groups);
		assert.is_true(jingle.is_empty(remove));
		assert.is_false(jingle.sends_only_refused_screen(media));
	end);

	it("never lowers what Jingle says, and the strictest kind of a track wins", function ()
		local media = jingle.new_media();
		local payload = jingle.jingle_of(jingle_iq("source-add", nil,
			track("b-v0", 20, 6, "camera") .. track("b-v1", 40, 6, "desktop")));
		local sources, groups = jingle.read_sources(payload, nil, "b");
		jingle.withhold(payload, media, sources, groups, allow_all);
		assert.is_false(jingle.reclassify(media, {}, "b"), "b-v1 stays a screen without presence");
		assert.is_true(jingle.reclassify(media, { ["b-v0"] = "screen" }, "b"));
		for _, source in pairs(media.forwarded) do assert.equal("screen", source.kind); end
	end);
end);

describe("strip_removal", function ()
	it("answers locally for sources jicofo never saw", function ()
		local media = jingle.new_media();
		local accept = jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 10, 1), track("b-v0", 20, 6, "camera")));
		local s, g = jingle.read_sources(accept);
		jingle.withhold(accept, media, s, g, audio_only);
		local removal = jingle.jingle_of(jingle_iq("source-remove", nil, track("b-v0", 20, 6, "camera")));
		s, g = jingle.read_sources(removal);
		assert.equal(0, jingle.strip_removal(removal, media, s, g));
		assert.equal(0, jingle.count(media.withheld));
		assert.equal(0, #media.groups);
		local audio_removal = jingle.jingle_of(jingle_iq("source-remove", track("b-a0", 10, 1)));
		s, g = jingle.read_sources(audio_removal);
		assert.equal(1, jingle.strip_removal(audio_removal, media, s, g));
		assert.equal(0, jingle.count(media.forwarded));
	end);
end);

describe("bridge and client messages", function ()
	it("force-mutes audio, and video only when camera and screen are both refused", function ()
		assert.same({ audio = false; video = false }, jingle.force_mute_for(allow_all));
		assert.same({ audio = true; video = false }, jingle.force_mute_for({ audio = false; video = true; screen = false }));
		assert.same({ audio = false; video = false }, jingle.force_mute_for(no_screen));
		assert.same({ audio = false; video = true }, jingle.force_mute_for({ audio = true; video = false; screen = false }));
	end);
	it("rewrites an endpoint's force-mute", function ()
		local request = xml.parse("<conference-modify xmlns='jitsi:colibri2' meeting-id='m'><endpoint id='b'>"
			.. "<force-mute video='true'/></endpoint></conference-modify>");
		local endpoint = request.tags[1];
		assert.same({ audio = false; video = true }, jingle.read_force_mute(endpoint.tags[1]));
		jingle.set_force_mute(endpoint, { audio = true; video = true });
		assert.equal(1, #endpoint.tags);
		assert.same({ audio = true; video = true }, jingle.read_force_mute(endpoint:get_child("force-mute", "jitsi:colibri2")));
		assert.same({ xmlns = "jitsi:colibri2"; audio = "true" }, jingle.force_mute_tag({ audio = true; video = false }).attr);
	end);
	it("builds the mute IQ jicofo would send", function ()
		local iq = jingle.mute_iq("screen", "m1", "r@conference.localhost/focus", "bob@localhost/x");
		assert.is_truthy(st.is_stanza(iq));
		assert.same({ id = "m1"; type = "set"; from = "r@conference.localhost/focus"; to = "bob@localhost/x" }, iq.attr);
		local mute = iq:get_child("mute", "http://jitsi.org/jitmeet/desktop");
		assert.equal("r@conference.localhost/focus", mute.attr.actor);
		assert.equal("true", mute:get_text());
	end);
end);

describe("check_shape", function ()
	local rtp, ssma_ns = "urn:xmpp:jingle:apps:rtp:1", "urn:xmpp:jingle:apps:rtp:ssma:0";
	local function parse(jingle_xml)
		return jingle.jingle_of(xml.parse("<iq xmlns='jabber:client' type='set' id='x'>" .. jingle_xml .. "</iq>"));
	end
	local function shape(xml_text, action)
		return jingle.check_shape(parse(("<jingle xmlns='urn:xmpp:jingle:1' action='%s' sid='s'>%s</jingle>")
			:format(action or "source-add", xml_text)));
	end
	local function video(inner, media)
		return ("<content name='video'><description xmlns='%s' media='%s'>%s</description></content>")
			:format(rtp, media or "video", inner);
	end
	local function recorded(name)
		local file = assert(io.open("spec/fixtures/" .. name, "r"));
		-- Pretty-printed for reading; a client sends no whitespace between elements.
		local text = file:read("a"):gsub("<!%-%-.-%-%->", ""):gsub(">%s+<", "><");
		file:close();
		return jingle.jingle_of(xml.parse(text));
	end
	local camera = track("b-v0", 20, 6, "camera");

	it("accepts every recorded lib-jitsi-meet shape, 2021 and current", function ()
		local expected = {
			["2021-04-session-accept-default.xml"] = { 7, 4 };
			["2021-05-session-accept-sourceNameSignaling.xml"] = { 7, 4 };
			["2021-07-source-add-camera.xml"] = { 6, 4 };
			["2021-08-source-remove-camera.xml"] = { 6, 4 };
			["2021-09-source-add-desktop.xml"] = { 6, 4 };
			["current-session-accept.xml"] = { 7, 4 };
			["current-source-add-desktop.xml"] = { 6, 4 };
			["current-session-accept-to-jicofo.xml"] = { 7, 4 };
		};
		for name, counts in pairs(expected) do
			local payload = recorded(name);
			assert.is_nil(jingle.check_shape(payload), name);
			local sources, groups = jingle.read_sources(payload);
			assert.same(counts, { #sources, #groups }, name);
		end
		local desktop = jingle.read_sources(recorded("current-source-add-desktop.xml"));
		assert.equal("screen", desktop[1].kind);
	end);

	it("accepts what lib-jitsi-meet sends around the sources", function ()
		assert.is_nil(shape("<content name='video'><description xmlns='" .. rtp .. "' media='video'>" .. camera
			.. "<payload-type id='100' name='VP8'><parameter name='x' value='1'/></payload-type></description>"
			.. "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u'/></content>"
			.. "<group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'><content name='video'/></group>",
			"session-accept"));
		-- A data content (no description), its transport in the Jingle namespace (no ICE parameters).
		assert.is_nil(shape("<content name='data'><transport><sctpmap xmlns='urn:xmpp:jingle:transports:dtls-sctp:1'"
			.. " number='5000' protocol='webrtc-datachannel' streams='0'/></transport></content>", "session-accept"));
		-- An element lib-jitsi-meet might add one day, as a leaf where it adds such things.
		assert.is_nil(shape(video(camera .. "<future-thing xmlns='urn:x' a='1'/>")));
	end);

	it("refuses the parser-differential source-add (an empty first description, a source hidden in the second)", function ()
		local poc = "<content name='audio'><description xmlns='" .. rtp .. "' media='audio'/>"
			.. "<description xmlns='" .. rtp .. "' media='audio'><description xmlns='urn:x'/>"
			.. "<source xmlns='" .. ssma_ns .. "' ssrc='4242' name='b-a0'/></description></content>";
		assert.equal("more than one <description> in <content>", shape(poc));
	end);

	it("refuses every element named like a source-bearing one outside its one place, in any namespace", function ()
		local wrong = {
			-- a source directly in <content> (jicofo reads content-level sources)
			{ "<content name='video'><description xmlns='" .. rtp .. "' media='video'/><source xmlns='" .. ssma_ns
				.. "' ssrc='5'/></content>", "<source xmlns='" .. ssma_ns .. "'> is not allowed in <content>" };
			-- <content> in another namespace (jicofo matches it by local name)
			{ "<content xmlns='urn:x' name='video'>" .. video(camera):sub(23),
				"<content xmlns='urn:x'> is not allowed in <jingle>" };
			-- a source wrapped in an unknown element (jicofo reads through it)
			{ video("<x xmlns='urn:x'>" .. camera .. "</x>"), "unknown <x xmlns='urn:x'> in <description> has children" };
			-- a description wrapped in an unknown element
			{ "<content name='video'><x xmlns='urn:x'><description xmlns='" .. rtp .. "' media='video'>" .. camera
				.. "</description></x></content>", "unknown <x xmlns='urn:x'> in <content> has children" };
			-- an empty element that would end <content> early in jicofo's parser
			{ "<content name='video'><content xmlns='urn:x'/>" .. video(camera):sub(23),
				"<content xmlns='urn:x'> is not allowed in <content>" };
			-- a description in another namespace
			{ "<content name='video'><description xmlns='urn:x'/></content>",
				"<description xmlns='urn:x'> is not allowed in <content>" };
			-- a parameter in the wrong place or namespace
			{ video("<parameter name='msid' value='x'/>"), "<parameter xmlns='" .. rtp .. "'> is not allowed in <description>" };
			{ video(track("b-v0", 20, 1):gsub("<parameter ", "<parameter xmlns='urn:x' ")),
				"<parameter xmlns='urn:x'> is not allowed in <source>" };
			-- an ssrc-group outside a description, or in another namespace
			{ "<content name='video'><ssrc-group xmlns='" .. ssma_ns .. "' semantics='FID'/></content>",
				"<ssrc-group xmlns='" .. ssma_ns .. "'> is not allowed in <content>" };
			{ video("<ssrc-group xmlns='urn:x' semantics='FID'><source ssrc='20'/></ssrc-group>"),
				"<ssrc-group xmlns='urn:x'> is not allowed in <description>" };
			-- a source in another namespace inside the description
			{ video("<source xmlns='urn:x' ssrc='20'/>"), "<source xmlns='urn:x'> is not allowed in <description>" };
			-- something nested in a source or a group member
			{ video(track("b-v0", 20, 1):gsub("</source>", "<source ssrc='21'/></source>")),
				"<source xmlns='" .. ssma_ns .. "'> is not allowed in <source>" };
			{ video(track("b-v0", 20, 2) .. "<ssrc-group xmlns='" .. ssma_ns .. "' semantics='FID'><source ssrc='20'>"
				.. "<x xmlns='urn:x'/></source><source ssrc='21'/></ssrc-group>"), "<source> has children" };
			-- anything unknown directly in <jingle>
			{ video(camera) .. "<x xmlns='urn:x'/>", "<x xmlns='urn:x'> is not allowed in <jingle>" };
			-- a nested <jingle>
			{ video(camera .. "<jingle xmlns='urn:x'/>"), "<jingle xmlns='urn:x'> is not allowed in <description>" };
		};
		for _, case in ipairs(wrong) do
			assert.equal(case[2], shape(case[1]), case[1]);
		end
	end);

	it("accepts jicofo's trace context echoed in <jingle>, as a leaf with its three attributes, once", function ()
		local trace = "<traceparent xmlns='jitsi:opentelemetry' trace_id='00000000000000000000000000000000'"
			.. " parent_id='0000000000000000' trace_flags='00'/>";
		assert.is_nil(shape(trace .. video(camera), "session-accept"));
		assert.equal("more than one <traceparent> in <jingle>", shape(trace .. trace .. video(camera), "session-accept"));
		assert.equal("<traceparent> has children", shape("<traceparent xmlns='jitsi:opentelemetry'>" .. video(camera)
			.. "</traceparent>", "session-accept"));
		assert.equal('attribute "ssrc" is not allowed on <traceparent>',
			shape("<traceparent xmlns='jitsi:opentelemetry' ssrc='5'/>" .. video(camera), "session-accept"));
		assert.equal("<traceparent xmlns='urn:x'> is not allowed in <jingle>",
			shape("<traceparent xmlns='urn:x'/>" .. video(camera), "session-accept"));
	end);

	-- jicofo reads the trace context of every participant Jingle before handling it: Smack's
	-- TraceParentProvider fails the whole stanza on a missing attribute, OpenTelemetry's
	-- TraceFlags.fromHex throws on anything but two lowercase hex digits (the request is then dropped
	-- unanswered). Only what lib-jitsi-meet echoes passes.
	it("refuses a trace context jicofo cannot read: missing attributes, values not lowercase hex, text", function ()
		local function trace(trace_id, parent_id, trace_flags, text)
			local attrs = "";
			if trace_id then attrs = attrs .. (" trace_id='%s'"):format(trace_id); end
			if parent_id then attrs = attrs .. (" parent_id='%s'"):format(parent_id); end
			if trace_flags then attrs = attrs .. (" trace_flags='%s'"):format(trace_flags); end
			return ("<traceparent xmlns='jitsi:opentelemetry'%s>%s</traceparent>"):format(attrs, text or "");
		end
		local id, parent = ("0"):rep(32), ("0"):rep(16);
		assert.is_nil(shape(trace(("4bf92f3577b34da6a3ce929d0e0e4736"), "00f067aa0ba902b7", "01") .. video(camera),
			"source-add"));
		for _, bad in ipairs({
			trace(nil, nil, nil), trace(id, parent, nil), trace(nil, parent, "00"), trace(id, nil, "00"),
			trace(id, parent, "0"), trace(id, parent, "zz"), trace(id, parent, "0A"), trace(id, parent, "000"),
			trace(id, parent, " 0"), trace(id:sub(2), parent, "00"), trace(id, parent .. "0", "00"),
			trace(id:upper():gsub("0", "A"), parent, "00"), trace(id, parent, "00", "x"),
		}) do
			local problem = shape(bad .. video(camera), "source-add");
			assert.is_string(problem, bad);
			assert.truthy(problem:find("traceparent", 1, true), problem);
		end
	end);

	it("refuses an IQ with anything beside its one <jingle>", function ()
		local one = xml.parse("<iq xmlns='jabber:client' type='set' id='x'><jingle xmlns='urn:xmpp:jingle:1' action='source-add'/></iq>");
		assert.is_nil(jingle.check_iq(one));
		local two = xml.parse("<iq xmlns='jabber:client' type='set' id='x'><jingle xmlns='urn:xmpp:jingle:1' action='source-add'/>"
			.. "<jingle xmlns='urn:xmpp:jingle:1' action='source-add'><content name='audio'/></jingle></iq>");
		assert.equal("a Jingle IQ carries exactly one <jingle>", jingle.check_iq(two));
		local other = xml.parse("<iq xmlns='jabber:client' type='set' id='x'><x xmlns='urn:x'/>"
			.. "<jingle xmlns='urn:xmpp:jingle:1' action='source-add'/></iq>");
		assert.equal("a Jingle IQ carries exactly one <jingle>", jingle.check_iq(other));
	end);

	it("refuses attributes jicofo would read differently", function ()
		assert.equal("prefixed attribute on <description>", shape("<content name='video'><description xmlns='" .. rtp
			.. "' xmlns:p='urn:x' p:media='video'>" .. camera .. "</description></content>"));
		assert.equal("prefixed attribute on <source>", shape(video(track("b-v0", 20, 1)
			:gsub("<source ", "<source xmlns:p='urn:x' p:ssrc='4242' "))));
		assert.equal('attribute "rid" is not allowed on <source>', shape(video(track("b-v0", 20, 1)
			:gsub("<source ", "<source rid='1' "))));
		assert.equal('attribute "semantics" is not allowed on <source>', shape(video(track("b-v0", 20, 2)
			.. "<ssrc-group xmlns='" .. ssma_ns .. "' semantics='FID'><source ssrc='20' semantics='x'/>"
			.. "<source ssrc='21'/></ssrc-group>")));
	end);

	it("refuses values in another case, and semantics jicofo does not take", function ()
		assert.equal('content media "VIDEO" is not one lib-jitsi-meet sends', shape(video(camera, "VIDEO")));
		assert.equal('videoType "Desktop" is not camera or desktop', shape(video(track("b-v1", 30, 1, "Desktop"))));
		assert.equal('ssrc-group semantics "fid" is not FID or SIM', shape(video(track("b-v0", 20, 2)
			.. "<ssrc-group xmlns='" .. ssma_ns .. "' semantics='fid'><source ssrc='20'/><source ssrc='21'/></ssrc-group>")));
		assert.equal('ssrc-group semantics "nil" is not FID or SIM', shape(video(track("b-v0", 20, 1)
			.. "<ssrc-group xmlns='" .. ssma_ns .. "'><source ssrc='20'/></ssrc-group>")));
		assert.equal("empty <ssrc-group>", shape(video(track("b-v0", 20, 1)
			.. "<ssrc-group xmlns='" .. ssma_ns .. "' semantics='SIM'/>")));
	end);

	it("refuses a content whose media type jicofo cannot read, even without sources", function ()
		-- jicofo fails the whole request on it (EndpointSourceSet.fromJingle, MediaType.parseString), and
		-- would take nothing of what the module forwarded (found by tests/jingle_differential.rs).
		local function jingle_shape(inner)
			return jingle.check_shape(parse(("<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s'>%s</jingle>")
				:format(inner)));
		end
		local empty_audio = ("<content name='audio'><description xmlns='%s' media=''/></content>"):format(rtp);
		assert.equal('content media "" is not one lib-jitsi-meet sends', jingle_shape(empty_audio .. video(camera)));
		local no_media = ("<content name='audio'><description xmlns='%s'/></content>"):format(rtp);
		assert.equal('content media "nil" is not one lib-jitsi-meet sends', jingle_shape(no_media .. video(camera)));
		assert.equal('content media "x" is not one lib-jitsi-meet sends', jingle_shape("<content name='x'/>" .. video(camera)));
		assert.equal('content media "data" is not one lib-jitsi-meet sends', shape(video(camera, "data")));
		assert.is_nil(jingle_shape("<content name='data'/>" .. video(camera)));
		-- lib-jitsi-meet's data channel content when jicofo offers SCTP (found by the shared yardstick,
		-- whose session-accept carries one): accepted, but it may carry no sources.
		local data = ("<content name='data'><description xmlns='%s' media='application'/></content>"):format(rtp);
		assert.is_nil(jingle_shape(data .. video(camera)));
		assert.equal('sources under media "application" (expected audio or video)',
			shape(video(camera, "application")));
	end);

	it("refuses text between the elements that carry sources, even whitespace", function ()
		-- jicofo's JingleIQProvider fails the whole IQ on text directly in <jingle>: it would take
		-- nothing of what the module forwarded (found by tests/jingle_differential.rs).
		local function jingle_shape(inner)
			return jingle.check_shape(parse(("<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s'>%s</jingle>")
				:format(inner)));
		end
		assert.equal("text in <jingle>", jingle_shape(video(camera) .. "x"));
		assert.equal("text in <jingle>", jingle_shape("\n  " .. video(camera)));
		assert.equal("text in <description>", shape(video(camera .. " ")));
		assert.equal("text in <source>", shape(video(("<source xmlns='%s' ssrc='5' name='b-v0'>x</source>"):format(ssma_ns))));
		assert.is_nil(shape(video(camera)));
	end);

	it("reads an SSRC as Java's Long.parseLong does, or refuses it", function ()
		local function ssrc_shape(text)
			return shape(video(("<source xmlns='%s' ssrc='%s' name='b-v0'/>"):format(ssma_ns, text)));
		end
		-- Lua's tonumber reads these; parseLong does not.
		for _, text in ipairs({ "0x10", " 5", "5 ", "1e3", "5.0", "0x1p4", "inf", "nan", "", "٤" }) do
			assert.equal(("invalid ssrc %q"):format(text), ssrc_shape(text), text);
		end
		-- Out of jicofo's range 1..0xFFFFFFFF.
		for _, text in ipairs({ "0", "-5", "4294967296", "99999999999999999999", "9999999999", "+4294967296",
			"00004294967296", "+0", "-0", "+-5" }) do
			assert.equal(("invalid ssrc %q"):format(text), ssrc_shape(text), text);
		end
		-- parseLong reads a plus sign and leading zeros: the module reads the same number.
		for text, canonical in pairs({ ["+5"] = "5"; ["0005"] = "5"; ["4294967295"] = "4294967295";
			["1000000000"] = "1000000000"; ["+04294967295"] = "4294967295"; ["999999999"] = "999999999";
			["00000000000000000000042"] = "42" }) do
			assert.is_nil(ssrc_shape(text), text);
			local sources = jingle.read_sources(parse(("<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s'>%s</jingle>")
				:format(video(("<source xmlns='%s' ssrc='%s' name='b-v0'/>"):format(ssma_ns, text)))));
			assert.equal(canonical, sources[1].ssrc);
		end
		-- A group member too.
		assert.equal('invalid ssrc "0x14"', shape(video(track("b-v0", 20, 2) .. "<ssrc-group xmlns='" .. ssma_ns
			.. "' semantics='FID'><source ssrc='0x14'/><source ssrc='21'/></ssrc-group>")));
	end);
end);

describe("check_groups (jicofo's max-ssrc-groups-per-user, and only the sender's own SSRCs)", function ()
	local function request(video)
		local payload = jingle.jingle_of(jingle_iq("source-add", nil, video));
		return payload, jingle.read_sources(payload);
	end
	local function group(semantics, ...)
		local members = {};
		for _, ssrc in ipairs({ ... }) do members[#members + 1] = ("<source ssrc='%d'/>"):format(ssrc); end
		return ("<ssrc-group xmlns='%s' semantics='%s'>%s</ssrc-group>"):format(ssma, semantics, table.concat(members));
	end
	it("refuses a group naming an SSRC the sender never signalled, here or before", function ()
		local media = jingle.new_media();
		local _, sources, groups = request(group("FID", 7001, 7002));
		assert.equal("An SSRC group contains an SSRC, which hasn't been signaled as a source: [7001, 7002].",
			jingle.check_groups(media, sources, groups));
		-- Signalled in the same request: fine; signalled before (even withheld): fine.
		local payload;
		payload, sources, groups = request(track("b-v0", 20, 2) .. group("FID", 20, 21));
		assert.is_nil(jingle.check_groups(media, sources, groups));
		jingle.withhold(payload, media, sources, groups, audio_only);
		_, sources, groups = request(group("SIM", 21, 20));
		assert.is_nil(jingle.check_groups(media, sources, groups));
		_, sources, groups = request(group("SIM", 21, 20, 22));
		assert.equal("An SSRC group contains an SSRC, which hasn't been signaled as a source: [21, 20, 22].",
			jingle.check_groups(media, sources, groups));
	end);
	it("counts kept and withheld groups toward the limit, a known group once", function ()
		local media = jingle.new_media();
		local payload, sources, groups = request(track("b-v0", 20, 6, "camera"));
		assert.is_nil(jingle.check_groups(media, sources, groups, 4));
		jingle.withhold(payload, media, sources, groups, audio_only);
		assert.equal(4, #media.groups);
		-- The same four again are not new; one more is past a limit of 4.
		local _;
		_, sources, groups = request(group("FID", 20, 23) .. group("SIM", 20, 21, 22));
		assert.is_nil(jingle.check_groups(media, sources, groups, 4));
		_, sources, groups = request(group("FID", 21, 20));
		assert.equal("ssrc-group limit (4) exceeded.", jingle.check_groups(media, sources, groups, 4));
		-- The defaults are jicofo's (reference.conf).
		assert.equal(20, jingle.default_max_groups);
		assert.equal(20, jingle.default_max_ssrcs);
	end);
	it("forgets the groups of a removed source, as jicofo does", function ()
		local media = jingle.new_media();
		local payload, sources, groups = request(track("b-v0", 20, 6, "camera"));
		jingle.withhold(payload, media, sources, groups, allow_all);
		local removal = jingle.jingle_of(jingle_iq("source-remove", nil, track("b-v0", 20, 1)));
		local s, g = jingle.read_sources(removal);
		assert.equal(1, jingle.strip_removal(removal, media, s, g));
		-- FID(20,23) and SIM(20,21,22) named 20; FID(21,24) and FID(22,25) stay.
		assert.equal(2, #media.groups);
		for _, kept in ipairs(media.groups) do assert.is_nil(kept.ssrcs[1] == "20" or nil); end
	end);
end);

describe("work per stanza", function ()
	-- 40 source-adds of 250 groups each (the issue's measurement), into one occupant's tables with the
	-- caps lifted: the last stanzas must cost about what the first ones cost. The old linear scan per
	-- inserted group made the 40th stanza ~40 times dearer than the first.
	local function stanza(first)
		local out = {};
		for i = 0, 249 do
			local a = first + 2 * i;
			out[#out + 1] = ("<ssrc-group xmlns='%s' semantics='FID'><source ssrc='%d'/><source ssrc='%d'/></ssrc-group>")
				:format(ssma, a, a + 1);
		end
		return jingle.jingle_of(jingle_iq("source-add", nil, table.concat(out)));
	end
	it("stays flat as the group tables fill", function ()
		local media = jingle.new_media();
		local costs = {};
		for n = 1, 40 do
			local payload = stanza(1000000 + n * 1000);
			-- The module's own work, without the collector's (which grows with all the live data of the
			-- process, whatever the module does per stanza).
			collectgarbage("collect");
			collectgarbage("stop");
			local started = os.clock();
			local sources, groups = jingle.read_sources(payload);
			if jingle.check_groups then jingle.check_groups(media, sources, groups, math.huge); end
			jingle.withhold(payload, media, sources, groups, allow_all);
			costs[n] = os.clock() - started;
			collectgarbage("restart");
		end
		assert.equal(10000, #media.groups);
		local function sum(from, to)
			local total = 0;
			for i = from, to do total = total + costs[i]; end
			return total;
		end
		local first, last = sum(2, 6), sum(36, 40);
		assert.is_true(last < 4 * first + 0.005, ("first five %.4fs, last five %.4fs"):format(first, last));
	end);
end);

describe("work per source's parameters", function ()
	-- lib-jitsi-meet sends one <parameter> (msid), older clients four; jicofo takes any number. A
	-- source with thousands of them (a stanza at Prosody's size limit, or beyond where an operator
	-- raised it) must cost time linear in their number, not quadratic (a string grown pair by pair); since review 14
	-- such a source is refused as soon as they pass 1 KB.
	local function cost(count)
		local parameters = {};
		for i = 1, count do parameters[i] = "<parameter name='m' value='x'/>"; end
		local payload = jingle.jingle_of(jingle_iq("source-add",
			("<source xmlns='%s' ssrc='5' name='n-a0'>%s</source>"):format(ssma, table.concat(parameters))));
		collectgarbage("collect");
		collectgarbage("stop");
		local started = os.clock();
		local sources, err = jingle.read_sources(payload);
		local spent = os.clock() - started;
		collectgarbage("restart");
		assert.is_nil(sources); -- over max_parameter_bytes: refused once the limit is passed
		assert.equal("the parameters of ssrc 5 exceed 1024 bytes", err);
		return spent;
	end
	it("reads them in time linear in their number", function ()
		local few, many = cost(2000), cost(16000);
		assert.is_true(many < 24 * few + 0.005, ("2,000: %.4fs, 16,000: %.4fs"):format(few, many));
	end);
	it("keeps them as the client sent them", function ()
		local payload = jingle.jingle_of(jingle_iq("source-add", ("<source xmlns='%s' ssrc='5' name='n-a0'>"
			.. "<parameter name='cname' value='c'/><parameter name='msid' value='s t'/><parameter/></source>"):format(ssma)));
		local sources = jingle.read_sources(payload);
		assert.equal("cname\0c\0msid\0s t\0\0\0", sources[1].parameters);
	end);
end);

describe("work per source-remove", function ()
	-- One occupant with 4,000 FID groups over 8,000 video SSRCs (caps lifted, as an operator may set
	-- podium_max_ssrc_groups_per_user): a source-remove naming 200 of them must cost about what one
	-- naming a single source costs, not 200 walks over every group (one walk over the occupant's
	-- groups per stanza at most).
	local groups_count = 4000;
	local function filled()
		local out = {};
		for i = 0, groups_count - 1 do
			local a = 1000 + 2 * i;
			out[#out + 1] = ("<source xmlns='%s' ssrc='%d'/><source xmlns='%s' ssrc='%d'/>"):format(ssma, a, ssma, a + 1);
			out[#out + 1] = ("<ssrc-group xmlns='%s' semantics='FID'><source ssrc='%d'/><source ssrc='%d'/></ssrc-group>")
				:format(ssma, a, a + 1);
		end
		local payload = jingle.jingle_of(jingle_iq("source-add", nil, table.concat(out)));
		local media = jingle.new_media();
		local sources, groups = jingle.read_sources(payload);
		jingle.withhold(payload, media, sources, groups, allow_all);
		assert.equal(groups_count, #media.groups);
		return media;
	end
	local function removal_cost(count)
		local media = filled();
		local out = {};
		for i = 0, count - 1 do
			out[#out + 1] = ("<source xmlns='%s' ssrc='%d'/>"):format(ssma, 1000 + 2 * i);
		end
		local payload = jingle.jingle_of(jingle_iq("source-remove", nil, table.concat(out)));
		local sources, groups = jingle.read_sources(payload);
		collectgarbage("collect");
		collectgarbage("stop");
		local started = os.clock();
		assert.equal(1, jingle.strip_removal(payload, media, sources, groups));
		local cost = os.clock() - started;
		collectgarbage("restart");
		assert.equal(groups_count - count, #media.groups);
		return cost;
	end
	it("walks the occupant's groups once, whatever the number of sources removed", function ()
		local one, many = removal_cost(1), removal_cost(200);
		assert.is_true(many < 20 * one + 0.005, ("one source %.4fs, 200 sources %.4fs"):format(one, many));
	end);
end);

describe("self_unmute_kind", function ()
	local me = "r@c/bob";
	local function unmute(namespace, text, jid)
		return st.iq({ type = "set"; to = "r@c/focus"; id = "1" })
			:tag("mute", { xmlns = namespace; jid = jid or me }):text(text):up();
	end
	it("reads lib-jitsi-meet's self-unmute, desktop as screen", function ()
		assert.equal("audio", jingle.self_unmute_kind(unmute("http://jitsi.org/jitmeet/audio", "false"), me));
		assert.equal("video", jingle.self_unmute_kind(unmute("http://jitsi.org/jitmeet/video", "false"), me));
		assert.equal("screen", jingle.self_unmute_kind(unmute("http://jitsi.org/jitmeet/desktop", "false"), me));
	end);
	it("ignores a mute, someone else's unmute and other namespaces", function ()
		assert.is_nil(jingle.self_unmute_kind(unmute("http://jitsi.org/jitmeet/audio", "true"), me));
		assert.is_nil(jingle.self_unmute_kind(unmute("http://jitsi.org/jitmeet/audio", "false", "r@c/alice"), me));
		assert.is_nil(jingle.self_unmute_kind(unmute("urn:example", "false"), me));
		assert.is_nil(jingle.self_unmute_kind(st.iq({ type = "set"; id = "2" }), me));
	end);
end);

describe("what a grant or revoke builds", function ()
	-- The batches of one occupant with audio and a simulcast camera (6 SSRCs, 4 groups), all allowed.
	local function camera_batch()
		local media = jingle.new_media();
		local payload = jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 10, 1), track("b-v0", 20, 6, "camera")));
		local s, g = jingle.read_sources(payload);
		jingle.withhold(payload, media, s, g, audio_only);
		local add = jingle.plan_change(media, allow_all);
		return media, add;
	end
	-- The same <jingle>, built with util.stanza's checked builder (what the module sent before).
	local function checked_jingle(action, sid, batch, ssrc_only)
		local jingle_tag = st.stanza("jingle", { xmlns = "urn:xmpp:jingle:1"; action = action; sid = sid });
		for _, media in ipairs({ "audio", "video" }) do
			local content
			for _, item in ipairs(batch.sources) do
				if item.media == media then content = content or item.content; end
			end
			for _, item in ipairs(batch.groups) do
				if item.media == media then content = content or item.content; end
			end
			if content then
				jingle_tag:tag("content", { name = content })
					:tag("description", { xmlns = "urn:xmpp:jingle:apps:rtp:1"; media = media });
				for _, source in ipairs(batch.sources) do
					if source.media == media then
						if ssrc_only then
							jingle_tag:tag("source", { xmlns = ssma; ssrc = source.ssrc }):up();
						else
							jingle_tag:tag("source", { xmlns = ssma; ssrc = source.ssrc; name = source.name;
								videoType = source.video_type });
							for name, value in (source.parameters or ""):gmatch("(%Z*)%z(%Z*)%z") do
								jingle_tag:tag("parameter", { name = name; value = value }):up();
							end
							jingle_tag:up();
						end
					end
				end
				for _, group in ipairs(batch.groups) do
					if group.media == media then
						jingle_tag:tag("ssrc-group", { xmlns = ssma; semantics = group.semantics });
						for _, ssrc in ipairs(group.ssrcs) do jingle_tag:tag("source", { ssrc = ssrc }):up(); end
						jingle_tag:up();
					end
				end
				jingle_tag:up():up();
			end
		end
		return jingle_tag;
	end
	-- Bytes allocated by one call of f(), averaged over 100 whose results are kept (the collector held
	-- meanwhile).
	local results = {};
	local function allocated(f)
		for i = 1, 100 do results[i] = false; end
		collectgarbage(); collectgarbage("stop");
		local before = collectgarbage("count");
		for i = 1, 100 do results[i] = f(); end
		local bytes = (collectgarbage("count") - before) * 1024 / #results;
		collectgarbage("restart");
		return bytes;
	end
	-- A stanza as text with each element's attributes in name order (util.stanza writes them in the
	-- order of the attribute table, which says nothing about the XML).
	local function canonical(stanza)
		local keys = {};
		for key in pairs(stanza.attr) do keys[#keys + 1] = key; end
		table.sort(keys);
		local out = { "<", stanza.name };
		for _, key in ipairs(keys) do out[#out + 1] = (" %s='%s'"):format(key, stanza.attr[key]); end
		out[#out + 1] = ">";
		for _, child in ipairs(stanza) do
			out[#out + 1] = type(child) == "table" and canonical(child) or child;
		end
		out[#out + 1] = "</" .. stanza.name .. ">";
		return table.concat(out);
	end

	it("replays sources and groups as util.stanza builds them, to the byte", function ()
		local _, add = camera_batch();
		local built = jingle.iq_set("r@c/b", "focus@localhost/f", jingle.jingle_for("source-add", "s2", add));
		local checked = st.iq({ type = "set"; from = "r@c/b"; to = "focus@localhost/f"; id = "" })
			:add_child(checked_jingle("source-add", "s2", add));
		assert.equal(canonical(checked), canonical(built));
		assert.is_truthy(st.is_stanza(built));
		assert.equal(canonical(built), canonical(st.clone(built)));
		assert.equal(canonical(built), canonical(st.deserialize(st.preserialize(built))));
		local sources, groups = jingle.read_sources(jingle.jingle_of(built));
		assert.equal(6, #sources);
		assert.equal(4, #groups);
	end);
	-- What mod_podium's withdraw() sends: the sources without their groups.
	local function camera_removal()
		local media = camera_batch();
		local _, remove = jingle.plan_change(media, audio_only);
		return { sources = remove.sources; groups = {} };
	end
	it("names the SSRCs alone in a source-remove (jicofo removes by SSRC)", function ()
		local remove = camera_removal();
		assert.equal(6, #remove.sources);
		local built = jingle.jingle_for("source-remove", "s2", remove, true);
		assert.equal(canonical(checked_jingle("source-remove", "s2", remove, true)), canonical(built));
		local description = built:get_child("content"):get_child("description", "urn:xmpp:jingle:apps:rtp:1");
		for source in description:childtags("source", ssma) do
			assert.same({ "ssrc", "xmlns" }, (function ()
				local keys = {};
				for key in pairs(source.attr) do keys[#keys + 1] = key; end
				table.sort(keys);
				return keys;
			end)());
		end
	end);
	it("builds a camera's source-remove in under 4 KB (11.5 KB with util.stanza's builder and every field)", function ()
		local remove = camera_removal();
		local bytes = allocated(function ()
			return jingle.iq_set("r@conference.localhost/b102bb02", "focus@localhost/focus",
				jingle.jingle_for("source-remove", "s2", remove, true));
		end);
		assert.is_true(bytes < 4096, ("%d bytes"):format(bytes));
	end);
	it("builds the mute IQ as util.stanza does", function ()
		local checked = st.iq({ type = "set"; id = "m1"; from = "r@c/focus"; to = "bob@localhost/x" })
			:tag("mute", { xmlns = "http://jitsi.org/jitmeet/video"; actor = "r@c/focus" }):text("true"):up();
		assert.equal(canonical(checked), canonical(jingle.mute_iq("video", "m1", "r@c/focus", "bob@localhost/x")));
	end);
end);

-- Kilobytes the Lua heap grew by while `fn` ran (the collector stopped), after one call to warm up.
local function kilobytes_built(fn)
	fn();
	collectgarbage("collect");
	collectgarbage("stop");
	local before = collectgarbage("count");
	fn();
	local built = collectgarbage("count") - before;
	collectgarbage("restart");
	return built;
end

describe("what checking a request builds (Prosody pays every table twice, issue 13)", function ()
	local function recorded(name)
		local file = assert(io.open("spec/fixtures/" .. name, "r"));
		local text = file:read("a"):gsub("<!%-%-.-%-%->", ""):gsub(">%s+<", "><");
		file:close();
		return jingle.jingle_of(xml.parse(text));
	end

	it("checks a session-accept's shape building nothing", function ()
		local payload = recorded("current-session-accept.xml");
		assert.is_nil(jingle.check_shape(payload));
		assert.equal(0, kilobytes_built(function () jingle.check_shape(payload); end));
	end);

	it("still refuses a prefixed attribute after hundreds of plain attribute names", function ()
		local rtp = "urn:xmpp:jingle:apps:rtp:1";
		local names = {};
		for i = 1, 300 do names[#names + 1] = ("a%d='1'"):format(i); end
		local function shape(description_attrs)
			return jingle.check_shape(jingle.jingle_of(xml.parse(("<iq xmlns='jabber:client' type='set' id='x'>"
				.. "<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s'><content name='video'>"
				.. "<description xmlns='%s' media='video'><payload-type %s/>%s</description></content></jingle></iq>")
				:format(rtp, description_attrs, track("b-v0", 20, 1)))));
		end
		assert.is_nil(shape(table.concat(names, " ")));
		assert.equal("prefixed attribute on <payload-type>", shape("xmlns:p='urn:x' p:a1='1'"));
		assert.equal("prefixed attribute on <payload-type>", shape("xmlns:p='urn:x' p:a299='1'"));
	end);

	it("reclassifies without a screenshare building nothing, every video source a camera again", function ()
		local media = jingle.new_media();
		local payload = jingle.jingle_of(jingle_iq("session-accept", track("b-a0", 1, 1), track("b-v0", 20, 6)));
		local sources, groups = jingle.read_sources(payload, { ["b-v0"] = "screen" }, "b");
		jingle.unify_kinds(sources, groups);
		jingle.withhold(payload, media, sources, groups, allow_all);
		for _, source in pairs(media.forwarded) do
			if source.media == "video" then assert.equal("screen", source.kind); end
		end
		local changed;
		assert.equal(0, kilobytes_built(function () changed = jingle.reclassify(media, nil, "b"); end));
		assert.is_false(changed, "the warm-up call made them cameras already");
		for _, source in pairs(media.forwarded) do
			assert.equal(source.media == "video" and "video" or "audio", source.kind);
		end
		-- And back: a declared screenshare takes the whole track, as before.
		assert.is_true(jingle.reclassify(media, { ["b-v0"] = "screen" }, "b"));
		for _, source in pairs(media.forwarded) do
			assert.equal(source.media == "video" and "screen" or "audio", source.kind);
		end
	end);
end);

describe("the cache of plain attribute names (review 14)", function ()
	local function parse_jingle_with_source_attribute(name)
		return xml.parse(("<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s'><content name='video'>"
			.. "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'><source xmlns='%s' ssrc='1' %s='x'/>"
			.. "</description></content></jingle>"):format(ssma, name));
	end

	-- check_shape remembers attribute names it has seen without a namespace prefix, for the life of the
	-- module. A participant chooses those names: a request with one long name (on <jingle>, which takes
	-- any plain attribute, or on a <source>, which is refused), sent 256 times with different names,
	-- must not pin up to 256 stanzas' worth of memory in Prosody.
	it("keeps no long name a participant sent", function ()
		local fresh = dofile("podium_jingle.lib.lua");
		local long = ("a"):rep(64 * 1024);
		collectgarbage("collect");
		local before = collectgarbage("count");
		for i = 1, 256 do
			local payload = xml.parse(("<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s' %s%d='x'/>")
				:format(long, i));
			assert.is_nil(fresh.check_shape(payload));
			payload = parse_jingle_with_source_attribute(long .. "b" .. i);
			assert.is_not_nil(fresh.check_shape(payload));
		end
		collectgarbage("collect");
		collectgarbage("collect");
		local grown_kib = collectgarbage("count") - before;
		assert.is_true(grown_kib < 1024, ("%.0f KiB kept after the requests"):format(grown_kib));
	end);
end);
