-- busted specs for podium.lib.lua, the pure part of mod_podium. Runs against Prosody's own util.*.
package.path = "./?.lua;./?.lib.lua;/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local st = require "util.stanza";
local podium = dofile("podium.lib.lua");

local none = { audio = false; video = false; screen = false };
local all = { audio = true; video = true; screen = true };

describe("parse_media_list", function ()
	it("reads kinds, aliases, all and none", function ()
		assert.same(none, podium.parse_media_list({}));
		assert.same(all, podium.parse_media_list({ "all" }));
		assert.same({ audio = true; video = true; screen = false }, podium.parse_media_list({ "Audio", "camera" }));
		assert.same({ audio = false; video = false; screen = true }, podium.parse_media_list({ "desktop", "none" }));
	end);
	it("refuses unknown kinds", function ()
		local set, err = podium.parse_media_list({ "audio", "smell" });
		assert.is_nil(set);
		assert.equal('unknown media kind "smell" (expected audio, video, screen or all)', err);
	end);
end);

describe("format_set", function ()
	it("lists kinds in order, none when empty", function ()
		assert.equal("none", podium.format_set(none));
		assert.equal("audio,video,screen", podium.format_set(all));
		assert.equal("audio,screen", podium.format_set({ audio = true; video = false; screen = true }));
	end);
end);

describe("read_media_attrs", function ()
	it("needs all three booleans", function ()
		assert.same(all, podium.read_media_attrs(st.stanza("x", { audio = "true"; video = "1"; screen = "true" })));
		local set, err = podium.read_media_attrs(st.stanza("x", { audio = "true"; video = "true" }));
		assert.is_nil(set);
		assert.equal("missing 'screen' attribute", err);
		set, err = podium.read_media_attrs(st.stanza("x", { audio = "yes"; video = "true"; screen = "true" }));
		assert.is_nil(set);
		assert.equal([[invalid 'audio' attribute "yes" (expected true or false)]], err);
	end);
end);

describe("what is governed", function ()
	it("skips jicofo health-check rooms", function ()
		assert.is_true(podium.is_healthcheck_room("__jicofo-health-check-1a2b@conference.localhost"));
		assert.is_false(podium.is_healthcheck_room("standup@conference.localhost"));
		-- Only the node counts, and only its start.
		assert.is_true(podium.is_healthcheck_room("__jicofo-health-check@conference.localhost"));
		assert.is_false(podium.is_healthcheck_room("x__jicofo-health-check-1@conference.localhost"));
		assert.is_false(podium.is_healthcheck_room("__jicofo-health-chec@k.conference.localhost"));
		assert.is_false(podium.is_healthcheck_room("__jicofo-health-check.conference.localhost"));
		assert.is_false(podium.is_healthcheck_room(nil));
	end);
	it("knows the focus by nick, or by JID when configured", function ()
		assert.is_true(podium.is_focus("focus", "focus@auth.localhost", {}));
		assert.is_false(podium.is_focus("alice", "alice@localhost", {}));
		local focus_jids = { ["focus@auth.localhost"] = true };
		assert.is_true(podium.is_focus("focus", "focus@auth.localhost", focus_jids));
		-- an impostor using the nick "focus" is governed once jicofo's JID is configured
		assert.is_false(podium.is_focus("focus", "mallory@localhost", focus_jids));
	end);
end);

describe("held state", function ()
	local room = "r@conference.localhost";

	it("starts an occupant at the default, and applies decisions for the right real JID only", function ()
		local state = podium.new_state({ audio = true; video = false; screen = false });
		local record, is_new = state:track(room, "alice", "alice@localhost/a");
		assert.is_true(is_new);
		assert.equal("default", record.origin);
		assert.same({ audio = true; video = false; screen = false }, record.held);

		assert.is_true(state:apply(room .. "/alice", "alice@localhost/a", all));
		assert.same(all, state:get(room, "alice").held);
		assert.equal("podium", state:get(room, "alice").origin);

		-- a decision made for someone else is not applied
		assert.is_false(state:apply(room .. "/alice", "mallory@localhost/m", none));
		assert.same(all, state:get(room, "alice").held);
		-- nor for an occupant that is not there
		assert.is_false(state:apply(room .. "/bob", "bob@localhost/b", all));
	end);

	it("keeps a decision across presence updates but not across a change of person", function ()
		local state = podium.new_state(none);
		state:track(room, "alice", "alice@localhost/a");
		state:apply(room .. "/alice", "alice@localhost/a", all);
		local _, is_new = state:track(room, "alice", "alice@localhost/a");
		assert.is_false(is_new);
		assert.same(all, state:get(room, "alice").held);
		local record
		record, is_new = state:track(room, "alice", "mallory@localhost/m");
		assert.is_true(is_new);
		assert.same(none, record.held);
	end);

	it("indexes Jingle sessions and real JIDs, and drops them with the occupant", function ()
		local state = podium.new_state(none);
		local alice = state:track(room, "alice", "alice@localhost/a");
		alice.media = { forwarded = {}; withheld = {}; groups = {} };
		state:set_sid(alice, "s1");
		assert.equal(alice, state.sids.s1);
		state:set_sid(alice, "s2"); -- a re-invite
		assert.is_nil(state.sids.s1);
		assert.equal(alice, state.sids.s2);
		assert.equal(1, state.real_jids["alice@localhost/a"]);
		-- the nick passes to someone else: the old session and JID go
		state:track(room, "alice", "mallory@localhost/m");
		assert.is_nil(state.sids.s2);
		assert.is_nil(state.real_jids["alice@localhost/a"]);
		local bob = state:track(room, "bob", "bob@localhost/b");
		bob.media = { forwarded = {}; withheld = {}; groups = {} };
		state:set_sid(bob, "s3");
		state:forget_room(room);
		assert.is_nil(state.sids.s3);
		assert.is_nil(next(state.real_jids));
	end);

	it("shares one session index between states (the main and the breakout MUC)", function ()
		local sids = {};
		local main, breakout = podium.new_state(none, sids), podium.new_state(none, sids);
		local in_lecture = main:track(room, "bob", "bob@localhost/b");
		in_lecture.media = { forwarded = {}; withheld = {}; groups = {} };
		main:set_sid(in_lecture, "lecture-sid");
		local in_breakout = breakout:track("b1@breakout.localhost", "bob", "bob@localhost/b");
		in_breakout.media = { forwarded = {}; withheld = {}; groups = {} };
		-- the breakout state sees the lecture's session as another occupant's
		assert.equal(in_lecture, breakout.sids["lecture-sid"]);
		assert.are_not.equal(in_breakout, breakout.sids["lecture-sid"]);
		-- forgetting the breakout room leaves the lecture's session alone
		breakout:set_sid(in_breakout, "breakout-sid");
		breakout:forget_room("b1@breakout.localhost");
		assert.is_nil(sids["breakout-sid"]);
		assert.equal(in_lecture, sids["lecture-sid"]);
	end);

	it("calls a room restricted while anyone may not send every kind", function ()
		local state = podium.new_state(all);
		state:track(room, "alice", "alice@localhost/a");
		assert.is_false(state:is_restricted(room));
		state:track(room, "bob", "bob@localhost/b");
		local ok, record, previous = state:apply(room .. "/bob", "bob@localhost/b", { audio = true; video = true; screen = false });
		assert.is_true(ok);
		assert.same(all, previous);
		assert.is_false(record.held.screen);
		assert.is_true(state:is_restricted(room));
	end);

	it("does not share the default table between occupants", function ()
		local state = podium.new_state(none);
		local a = state:track(room, "a", "a@localhost/x");
		a.held.audio = true;
		assert.same(none, state:track(room, "b", "b@localhost/y").held);
	end);

	it("numbers joins per room in arrival order, whatever the nicks, and starts again when it empties", function ()
		local state = podium.new_state(none);
		assert.equal(1, state:track(room, "zed", "z@localhost/z").joined);
		assert.equal(2, state:track(room, "aaa", "a@localhost/a").joined);
		assert.equal(1, state:track("other@conference.localhost", "bob", "b@localhost/b").joined);
		-- a presence update keeps the number; another person on the nick is a new arrival
		assert.equal(1, state:track(room, "zed", "z@localhost/z").joined);
		assert.equal(3, state:track(room, "zed", "m@localhost/m").joined);
		state:forget(room, "zed");
		assert.equal(4, state:track(room, "mia", "mia@localhost/m").joined);
		state:forget(room, "aaa");
		state:forget(room, "mia");
		assert.equal(1, state:track(room, "ann", "ann@localhost/a").joined);
		state:forget_room(room);
		assert.is_nil(state.joins[room]);
	end);

	it("forgets occupants and empty rooms", function ()
		local state = podium.new_state(none);
		state:track(room, "alice", "alice@localhost/a");
		assert.is_not_nil(state:forget(room, "alice"));
		assert.is_nil(state.rooms[room]);
		assert.is_nil(state:forget(room, "alice"));
		state:track(room, "bob", "bob@localhost/b");
		state:forget_room(room);
		assert.is_nil(state:get(room, "bob"));
	end);
end);

describe("protocol elements", function ()
	it("writes held permissions", function ()
		local tag = podium.held_tag({ held = { audio = true; video = false; screen = false }; origin = "podium" });
		assert.equal("held", tag.name);
		assert.equal("urn:podium:0", tag.attr.xmlns);
		assert.same({ "true", "false", "false", "podium" }, { tag.attr.audio, tag.attr.video, tag.attr.screen, tag.attr.origin });
	end);

	it("shares one held element per set and origin, built once (every report carries one)", function ()
		local function held(audio, video, screen, origin)
			return podium.held_tag({ held = { audio = audio; video = video; screen = screen }; origin = origin });
		end
		local first = held(true, false, true, "podium");
		assert.equal(first, held(true, false, true, "podium"));
		assert.are_not.equal(first, held(true, false, true, "default"));
		assert.are_not.equal(first, held(true, true, true, "podium"));
		local default = held(false, false, false, "default");
		assert.same({ "false", "false", "false", "default" },
			{ default.attr.audio, default.attr.video, default.attr.screen, default.attr.origin });
		assert.same({ "true", "false", "true", "podium" },
			{ first.attr.audio, first.attr.video, first.attr.screen, first.attr.origin });
	end);

	it("writes the server-known identity, and nothing without one", function ()
		assert.is_nil(podium.identity_tag(nil));
		assert.is_nil(podium.identity_tag({}));
		local tag = podium.identity_tag({ jitsi_meet_context_user = { id = "u1"; name = "Alice" }; jitsi_meet_context_group = "acme" });
		assert.equal("u1", tag.attr.id);
		assert.equal("Alice", tag.attr.name);
		assert.equal("acme", tag.attr.group);
		assert.is_nil(tag.attr.email);
	end);

	it("carries other user and feature claims, bounded", function ()
		local tag = podium.identity_tag({
			jitsi_meet_context_user = { id = "u1"; department = "sales"; level = 3; nested = { x = 1 }; ["bad key"] = "x" };
			jitsi_meet_context_features = { ["screen-sharing"] = true; recording = false };
		});
		local claims = {};
		for claim in tag:childtags("claim") do claims[claim.attr.name] = claim.attr.value; end
		assert.same({
			["user.department"] = "sales"; ["user.level"] = "3";
			["features.screen-sharing"] = "true"; ["features.recording"] = "false";
		}, claims);
		local many = {};
		for i = 1, 100 do many["k" .. i] = "v"; end
		local bounded = podium.identity_tag({ jitsi_meet_context_user = many });
		assert.equal(32, #bounded.tags);
	end);

	it("cleans token claims that util.stanza would refuse", function ()
		assert.equal("Alice", podium.claim_text("Al\1ice"));
		assert.is_nil(podium.claim_text("\255\254"));
		assert.equal("42", podium.claim_text(42));
		assert.is_nil(podium.claim_text({}));
		local tag = podium.identity_tag({ jitsi_meet_context_user = { id = "u\0"; name = "\255bad" } });
		assert.equal("u", tag.attr.id);
		assert.is_nil(tag.attr.name);
		-- and the element serialises without an error
		assert.is_string(tostring(tag));
	end);

	it("parses a permissions batch all or nothing", function ()
		local payload = st.stanza("permissions", { xmlns = "urn:podium:0" })
			:tag("occupant", { jid = "r@conference.localhost/alice"; ["real-jid"] = "alice@localhost/a";
				audio = "true"; video = "false"; screen = "false" }):up();
		local entries = podium.parse_permissions(payload);
		assert.equal(1, #entries);
		assert.equal("r@conference.localhost/alice", entries[1].jid);
		assert.is_true(entries[1].set.audio);

		payload:tag("occupant", { jid = "r@conference.localhost"; ["real-jid"] = "b@localhost/b";
			audio = "true"; video = "true"; screen = "true" }):up();
		local none_parsed, err = podium.parse_permissions(payload);
		assert.is_nil(none_parsed);
		assert.equal("occupant needs a full occupant JID in 'jid'", err);

		local bad = st.stanza("permissions", { xmlns = "urn:podium:0" }):tag("grant"):up();
		assert.is_nil((podium.parse_permissions(bad)));
	end);

	it("reads the kinds podium asks sending for", function ()
		local function watch_of(value)
			local payload = st.stanza("permissions", { xmlns = "urn:podium:0" })
				:tag("occupant", { jid = "r@c/alice"; ["real-jid"] = "alice@h/a"; audio = "true"; video = "true";
					screen = "true"; ["report-sending"] = value }):up();
			local entries, err = podium.parse_permissions(payload);
			return entries and entries[1].watch, err;
		end
		assert.equal(0, watch_of(nil));
		assert.equal(2, watch_of("video"));
		assert.equal(5, watch_of("audio screen"));
		assert.equal(2, watch_of("video video"));
		assert.same({ nil, "invalid 'report-sending' kind \"all\"" }, { watch_of("all") });
	end);
end);

describe("read_presence", function ()
	local json = require "util.json";
	local function presence_with(source_info)
		return st.presence({ from = "r@conference.localhost/n" })
			:tag("stats-id"):text("x"):up()
			:text_tag("SourceInfo", source_info)
			:text_tag("nick", "Alice", { xmlns = "http://jabber.org/protocol/nick" });
	end

	it("keeps what podium reads: sending kinds, screens declared, hand, features", function ()
		local record = {};
		local presence = presence_with('{"n-a0":{"muted":false},"n-v0":{"muted":true},'
			.. '"n-v1":{"muted":false,"videoType":"desktop"}}')
			:text_tag("jitsi_participant_raisedHand", "1700000000")
			:tag("features"):tag("feature", { var = "http://jitsi.org/protocol/jibri" }):up()
				:tag("feature"):up():up()
			:tag("custom", { xmlns = "urn:x" }):tag("a"):tag("a"):up():up():up();
		assert.is_true(podium.read_presence(record, presence, "n", json.decode));
		assert.equal("audio screen", record.sending);
		assert.same({ ["n-v1"] = "screen" }, record.declared);
		assert.is_true(record.hand);
		assert.same({ "http://jitsi.org/protocol/jibri" }, record.features);
	end);

	it("reads sending kinds as podium did: unmuted sources named -a<n> or -v<n> only", function ()
		local cases = {
			{ '{"e1-a0":{"muted":false},"e1-v0":{"muted":true,"videoType":"camera"},'
				.. '"e1-v1":{"muted":false,"videoType":"desktop"}}', "audio screen" },
			{ '{"e1-v0":{"muted":false}}', "video" },
			{ '{"e1-a0":{},"e1-x":{"muted":false},"e1-a":{"muted":false},"a0":{"muted":false}}', "" },
			{ "not json", "" },
			{ "[1,2]", "" },
		};
		for _, case in ipairs(cases) do
			local record = {};
			podium.read_presence(record, presence_with(case[1]), "e1", json.decode);
			assert.equal(case[2], record.sending, case[1]);
		end
	end);

	it("decodes SourceInfo again only when its text changed", function ()
		local record, decoded = {}, 0;
		local function decode(text) decoded = decoded + 1; return json.decode(text); end
		local presence = presence_with('{"n-a0":{"muted":false}}');
		-- No screenshare declared, as before the first presence.
		assert.is_false(podium.read_presence(record, presence, "n", decode));
		assert.equal("audio", record.sending);
		assert.is_false(podium.read_presence(record, presence_with('{"n-a0":{"muted":false}}'), "n", decode));
		assert.equal(1, decoded);
		-- A mute toggle: other sending kinds, the same (no) screenshares.
		assert.is_false(podium.read_presence(record, presence_with('{"n-a0":{"muted":true}}'), "n", decode));
		assert.equal(2, decoded);
		assert.equal("", record.sending);
		assert.is_true(podium.read_presence(record,
			presence_with('{"n-a0":{"muted":true},"n-v1":{"muted":false,"videoType":"desktop"}}'), "n", decode));
		assert.equal("screen", record.sending);
	end);

	it("takes a legacy <videoType>desktop</videoType> for the first video track", function ()
		local record = {};
		local presence = st.presence():text_tag("videoType", "desktop", { xmlns = "http://jitsi.org/jitmeet/video" });
		assert.is_true(podium.read_presence(record, presence, "n", json.decode));
		assert.same({ ["n-v0"] = "screen" }, record.declared);
		assert.is_true(podium.read_presence(record, st.presence(), "n", json.decode));
		assert.is_nil(record.declared);
	end);

	it("drops text with element children, oversized text, and a lowered hand", function ()
		local record = {};
		local presence = st.presence():tag("SourceInfo"):text('{"n-a0":{"muted":false}}'):tag("b"):up():up()
			:text_tag("jitsi_participant_raisedHand", ("9"):rep(5000));
		podium.read_presence(record, presence, "n", json.decode);
		assert.equal("", record.sending);
		assert.is_false(record.hand);
		for _, lowered in ipairs({ "", "0", "false", " " }) do
			podium.read_presence(record, st.presence():text_tag("jitsi_participant_raisedHand", lowered), "n", json.decode);
			assert.is_false(record.hand, lowered);
		end
	end);

	it("bounds the features it keeps", function ()
		local presence = st.presence():tag("features");
		for i = 1, 40 do presence:tag("feature", { var = "urn:f:" .. i }):up(); end
		local record = {};
		podium.read_presence(record, presence:up(), "n", json.decode);
		assert.equal(16, #record.features);
	end);

	it("tells features apart whatever their text (a var may hold a space)", function ()
		local function with_features(vars)
			local presence = st.presence():tag("features");
			for _, var in ipairs(vars) do presence:tag("feature", { var = var }):up(); end
			return presence:up();
		end
		local record = {};
		podium.read_presence(record, with_features({ "urn:a urn:b" }), "n", json.decode);
		assert.same({ "urn:a urn:b" }, record.features);
		podium.read_presence(record, with_features({ "urn:a", "urn:b" }), "n", json.decode);
		assert.same({ "urn:a", "urn:b" }, record.features);
		podium.read_presence(record, with_features({ "urn:a", "urn:b", "" }), "n", json.decode);
		assert.same({ "urn:a", "urn:b", "" }, record.features);
		podium.read_presence(record, with_features({ "" }), "n", json.decode);
		assert.same({ "" }, record.features);
		podium.read_presence(record, with_features({}), "n", json.decode);
		assert.same({}, record.features);
	end);
end);

describe("presence_changed and add_presence", function ()
	it("tells podium only what changed, in podium's attributes", function ()
		local record = { sending = "audio"; hand = false; features_key = "" };
		assert.is_true(podium.presence_changed(record, "participant", "none"));
		assert.is_false(podium.presence_changed(record, "participant", "none"));
		assert.is_true(podium.presence_changed(record, "moderator", "none"));
		record.sending = "audio video";
		assert.is_true(podium.presence_changed(record, "moderator", "none"));
		record.hand, record.features = true, { "urn:f" };
		local tag = podium.add_presence(st.stanza("occupant", { xmlns = "urn:podium:0" }), record, "moderator", "owner");
		assert.same({ xmlns = "urn:podium:0"; role = "moderator"; affiliation = "owner"; sending = "audio video";
			hand = "true" }, tag.attr);
		assert.equal("urn:f", tag:get_child("feature").attr.var);
	end);

	it("reports sending only for the kinds podium asked for, once podium decided", function ()
		local state = podium.new_state({ audio = false; video = false; screen = false });
		local record = state:track("r@c", "alice", "alice@h/x");
		record.sending, record.hand, record.features_key = "audio video", false, "";
		-- Until podium's first decision, every kind (a podium in dry run decides nothing).
		assert.is_true(podium.presence_changed(record, "participant", "none"));
		assert.equal("audio video", record.reported_sending);
		record.sending = "video";
		assert.is_true(podium.presence_changed(record, "participant", "none"), "a mute toggle before a decision");

		-- podium's decision asks for no kind: mute toggles are no longer reported.
		local every_kind = { audio = true; video = true; screen = true };
		assert.is_true((state:apply("r@c/alice", "alice@h/x", every_kind, 0)));
		assert.is_true(podium.sending_as_told(record), "nothing podium reads changed");
		record.sending = "audio video";
		assert.is_false(podium.presence_changed(record, "participant", "none"));
		record.sending = "";
		assert.is_false(podium.presence_changed(record, "participant", "none"));
		local tag = podium.add_presence(st.stanza("occupant", { xmlns = "urn:podium:0" }), record, "participant", "none");
		assert.is_nil(tag.attr.sending);

		-- Asked for video (a slot holder): podium last heard "video" but it is quiet now: reported.
		assert.is_true((state:apply("r@c/alice", "alice@h/x", every_kind, 2)));
		assert.is_false(podium.sending_as_told(record));
		assert.is_true(podium.presence_changed(record, "participant", "none"));
		assert.equal("", record.reported_sending);
		record.sending = "audio";
		assert.is_false(podium.presence_changed(record, "participant", "none"), "audio is not asked for");
		record.sending = "audio video";
		assert.is_true(podium.presence_changed(record, "participant", "none"), "video is");
		tag = podium.add_presence(st.stanza("occupant", { xmlns = "urn:podium:0" }), record, "participant", "none");
		assert.equal("video", tag.attr.sending);
		record.sending = "video screen";
		assert.is_false(podium.presence_changed(record, "participant", "none"));
	end);
end);

describe("snapshot_page", function ()
	local counts = { ["a@c"] = 2; ["b@c"] = 2; ["c@c"] = 1 };
	local function count_of(room) return counts[room]; end

	it("pages whole rooms in JID order", function ()
		local page, next_room = podium.snapshot_page({ "c@c", "a@c", "b@c" }, nil, 3, count_of);
		assert.same({ "a@c", "b@c" }, page);
		assert.equal("b@c", next_room);
		page, next_room = podium.snapshot_page({ "c@c", "a@c", "b@c" }, next_room, 3, count_of);
		assert.same({ "c@c" }, page);
		assert.is_nil(next_room);
	end);

	it("always makes progress with a tiny page size", function ()
		local page, next_room = podium.snapshot_page({ "a@c", "b@c" }, nil, 1, count_of);
		assert.same({ "a@c" }, page);
		assert.equal("a@c", next_room);
	end);

	it("is empty and final without rooms", function ()
		local page, next_room = podium.snapshot_page({}, nil, 10, count_of);
		assert.same({}, page);
		assert.is_nil(next_room);
	end);
end);

describe("main_room_among", function ()
	local function rooms(list)
		local i = 0;
		return function () i = i + 1; return list[i]; end;
	end
	local lecture = { jid = "lecture@conference.localhost";
		_data = { breakout_rooms = { ["6f1c@breakout.localhost"] = "Breakout room #1" } } };
	local other = { jid = "other@conference.localhost"; _data = {} };
	local odd = { jid = "odd@conference.localhost"; _data = { breakout_rooms = "not a table" } };

	it("finds the main room whose breakout list names the room", function ()
		assert.equal("lecture@conference.localhost",
			podium.main_room_among(rooms({ other, odd, lecture }), "6f1c@breakout.localhost"));
	end);
	it("is nil for a breakout room no main room lists", function ()
		assert.is_nil(podium.main_room_among(rooms({ other, odd, lecture }), "9a2b@breakout.localhost"));
		assert.is_nil(podium.main_room_among(rooms({}), "6f1c@breakout.localhost"));
	end);
end);

describe("internal_room_jid", function ()
	it("keeps a room of this MUC and rewrites a tenant's virtual JID", function ()
		assert.equal("lecture@conference.meet.example",
			podium.internal_room_jid("lecture@conference.meet.example", "conference.meet.example"));
		assert.equal("[acme]lecture@conference.meet.example",
			podium.internal_room_jid("lecture@conference.acme.meet.example", "conference.meet.example"));
	end);
	it("is nil for any other host", function ()
		assert.is_nil(podium.internal_room_jid("b1@breakout.meet.example", "conference.meet.example"));
		assert.is_nil(podium.internal_room_jid("x@conference.a.b.meet.example", "conference.meet.example"));
		assert.is_nil(podium.internal_room_jid("x@conference.acme.meet-example", "conference.meet.example"));
		assert.is_nil(podium.internal_room_jid("conference.meet.example", "conference.meet.example"));
	end);
end);

describe("read_av_moderation", function ()
	local function command(attr) return st.stanza("av_moderation", attr); end

	it("reads approvals and withdrawals, desktop as screen", function ()
		assert.same({ "r@c/bob", "audio", true },
			{ podium.read_av_moderation(command({ jidToWhitelist = "r@c/bob"; mediaType = "audio" })) });
		assert.same({ "r@c/bob", "screen", true },
			{ podium.read_av_moderation(command({ jidToWhitelist = "r@c/bob"; mediaType = "desktop" })) });
		assert.same({ "r@c/bob", "video", false },
			{ podium.read_av_moderation(command({ jidToBlacklist = "r@c/bob"; mediaType = "video" })) });
	end);
	it("ignores enabling moderation, unknown kinds and nothing", function ()
		assert.is_nil(podium.read_av_moderation(command({ enable = "true"; mediaType = "audio" })));
		assert.is_nil(podium.read_av_moderation(command({ jidToWhitelist = "r@c/bob"; mediaType = "smell" })));
		assert.is_nil(podium.read_av_moderation(command({ jidToWhitelist = "r@c/bob" })));
		assert.is_nil(podium.read_av_moderation(nil));
	end);
end);

describe("read_av_moderation_off", function ()
	local function command(attr) return st.stanza("av_moderation", attr); end
	it("reads a moderator turning moderation of a kind off, desktop as screen", function ()
		assert.equal("audio", podium.read_av_moderation_off(command({ enable = "false"; mediaType = "audio" })));
		assert.equal("screen", podium.read_av_moderation_off(command({ enable = "false"; mediaType = "desktop" })));
	end);
	it("ignores turning it on, approvals, unknown kinds and nothing", function ()
		assert.is_nil(podium.read_av_moderation_off(command({ enable = "true"; mediaType = "audio" })));
		assert.is_nil(podium.read_av_moderation_off(command({ jidToWhitelist = "r@c/bob"; mediaType = "audio" })));
		assert.is_nil(podium.read_av_moderation_off(command({ enable = "false"; mediaType = "smell" })));
		assert.is_nil(podium.read_av_moderation_off(nil));
	end);
end);

describe("web_session_room_jid", function ()
	it("finds the room as jitsi-meet's components do", function ()
		assert.equal("class@conference.meet.example",
			podium.web_session_room_jid("class", nil, "conference.meet.example"));
		assert.equal("class@conference.meet.example",
			podium.web_session_room_jid("class", "", "conference.meet.example"));
		assert.equal("class@conference.meet.example",
			podium.web_session_room_jid("class", "meet.example", "conference.meet.example"));
		assert.equal("[acme]class@conference.meet.example",
			podium.web_session_room_jid("class", "acme", "conference.meet.example"));
	end);
	it("is nil without a room name", function ()
		assert.is_nil(podium.web_session_room_jid(nil, "acme", "conference.meet.example"));
		assert.is_nil(podium.web_session_room_jid("", nil, "conference.meet.example"));
	end);
end);



describe("kinds_to_mute", function ()
	local only_audio = { audio = true; video = false; screen = false };
	it("tells each withheld kind once per withholding", function ()
		local told = {};
		assert.same({ video = true }, podium.kinds_to_mute(only_audio, { audio = true; video = true }, told));
		-- Another stanza withholding more of the same kind tells nothing.
		assert.same({}, podium.kinds_to_mute(only_audio, { video = true }, told));
		assert.same({ screen = true }, podium.kinds_to_mute(only_audio, { video = true; screen = true }, told));
	end);
	it("never tells a kind the client does not send or may send", function ()
		assert.same({}, podium.kinds_to_mute(only_audio, {}, {}));
		assert.same({}, podium.kinds_to_mute(all, { audio = true; video = true; screen = true }, {}));
	end);
	it("tells again after the kind was allowed, or no longer withheld", function ()
		local told = {};
		podium.kinds_to_mute(only_audio, { video = true; screen = true }, told);
		-- The screenshare stopped (nothing of it withheld), then started again.
		assert.same({}, podium.kinds_to_mute(only_audio, { video = true }, told));
		assert.same({ screen = true }, podium.kinds_to_mute(only_audio, { video = true; screen = true }, told));
		-- The camera was granted, then refused again.
		assert.same({}, podium.kinds_to_mute({ audio = true; video = true; screen = false }, { screen = true }, told));
		assert.same({ video = true }, podium.kinds_to_mute(only_audio, { video = true; screen = true }, told));
	end);
end);

describe("moderation_ui_bodies", function ()
	local function media_types(bodies)
		local list = {};
		for _, body in ipairs(bodies) do
			assert.equal("av_moderation", body.type);
			assert.equal("r@c", body.room);
			list[#list + 1] = body.mediaType .. ":" .. (body.enabled and "enabled" or body.approved and "approved"
				or body.removed and "removed" or "?");
		end
		return list;
	end
	it("says moderation is on for refused kinds, approved on a grant, removed on a revoke", function ()
		local shown = {};
		assert.same({ "video:enabled", "desktop:enabled" },
			media_types(podium.moderation_ui_bodies({ audio = true; video = false; screen = false }, all, shown, "r@c")));
		assert.same({}, media_types(podium.moderation_ui_bodies({ audio = true; video = false; screen = false }, all,
			shown, "r@c")));
		assert.same({ "video:approved" },
			media_types(podium.moderation_ui_bodies({ audio = true; video = true; screen = false }, all, shown, "r@c")));
		assert.same({ "audio:enabled", "video:removed" },
			media_types(podium.moderation_ui_bodies(none, all, shown, "r@c")));
	end);
	it("never mentions a kind always allowed, or one not shown", function ()
		assert.same({}, media_types(podium.moderation_ui_bodies(all, all, {}, "r@c")));
		assert.same({ "audio:enabled" }, media_types(podium.moderation_ui_bodies(none,
			{ audio = true; video = false; screen = false }, {}, "r@c")));
	end);
end);

describe("pcall_collector_slowed", function ()
	-- The step multiplier, read by setting it back.
	local function stepmul()
		local value = collectgarbage("setstepmul", 0);
		collectgarbage("setstepmul", value);
		return value;
	end
	-- KB the heap grew by while f churned through 7 MB of short-lived tables.
	local function growth()
		local before = collectgarbage("count");
		for _ = 1, 40000 do local _ = { 1, 2, 3, 4, 5, 6, 7, 8 }; end
		return collectgarbage("count") - before;
	end
	local mode;
	setup(function ()
		-- Prosody 0.12's settings (util.startup default_gc_params).
		mode = collectgarbage("incremental", 105, 500, 0);
	end);
	teardown(function () collectgarbage(mode); end);

	it("slows the collector during f and restores it, also when f fails", function ()
		local before, during = stepmul(), nil;
		assert.same({ true, "done", 2 }, { podium.pcall_collector_slowed(100, 128, function (a)
			during = stepmul();
			return a, 2;
		end, "done") });
		assert.is_true(during < 4, tostring(during));
		assert.equal(before, stepmul());
		local ok, err = podium.pcall_collector_slowed(1, 128, function () error("broken", 0); end);
		assert.is_false(ok);
		assert.equal("broken", err);
		assert.equal(before, stepmul());
	end);
	it("lets f's garbage wait for the collector's next cycles", function ()
		collectgarbage();
		local at_pace = growth();
		collectgarbage();
		local _, slowed = podium.pcall_collector_slowed(100, 128, growth);
		-- (the ratio depends on the heap the other specs leave: 9.6 to 12 seen)
		assert.is_true(slowed > 500 and slowed > 5 * at_pace, ("%.0f KB slowed, %.0f KB at pace"):format(slowed, at_pace));
	end);
	it("keeps the collector's pause: small batches start no cycle", function ()
		-- Stopping and restarting it instead sets its debt to zero, which starts a cycle at once: one per
		-- joining occupant's decision. Cycles are counted by a finaliser that arms itself again.
		local cycles, counting = 0, true;
		local function arm()
			setmetatable({}, { __gc = function ()
				if counting then cycles = cycles + 1; arm(); end
			end });
		end
		collectgarbage();
		arm();
		collectgarbage();
		cycles = 0;
		for _ = 1, 200 do
			podium.pcall_collector_slowed(1, 128, function () return { 1, 2, 3 }; end);
		end
		counting = false;
		assert.equal(0, cycles);
	end);
	it("leaves a bigger batch to the collector's pace", function ()
		local during;
		podium.pcall_collector_slowed(129, 128, function () during = stepmul(); end);
		assert.equal(stepmul(), during);
	end);
end);

describe("a state saved across a reload", function ()
	local new_media = dofile("podium_jingle.lib.lua").new_media;
	local room_jid = "reload@conference.localhost";

	-- What module.save returns for bob, who sends a forwarded camera and a withheld microphone.
	local function saved_state()
		local state = podium.new_state(none, {});
		local bob = state:track(room_jid, "bob", "bob@localhost/web");
		state:apply(room_jid .. "/bob", "bob@localhost/web", { audio = false; video = true; screen = true });
		local media = new_media();
		bob.media = media;
		state:set_sid(bob, "sid-1");
		media.focus, media.focus_occupant, media.bridge_session = "focus@localhost/f", room_jid .. "/focus", "bs-1";
		media.forwarded["11"] = { ssrc = "11"; kind = "video"; media = "video"; name = "bob-v0" };
		media.withheld["22"] = { ssrc = "22"; kind = "audio"; media = "audio"; name = "bob-a0" };
		local group = { semantics = "FID"; media = "video"; ssrcs = { "11", "12" }; seq = 1; index = 1; forwarded = true };
		media.groups[1], media.group_by_key["video FID 11,12"], media.group_seq = group, group, 1;
		media.requests = { { id = "r1"; sender = "abcdefgh"; added = {}; removed = {}; at = 1 } };
		bob.sending, bob.hand, bob.features_key = "video", false, "";
		local rooms, joins = {}, {};
		for jid, room in pairs(state.rooms) do rooms[jid] = room; end
		for jid, joined in pairs(state.joins) do joins[jid] = joined; end
		return {
			format = podium.saved_format; rooms = rooms; joins = joins; injected = {}; injected_count = 0;
			conferences = { [room_jid] = { meeting_id = "m-1"; endpoints = {
				bob = { bridge = "jvbbrewery@internal.localhost/jvb"; jicofo = { audio = false; video = false };
					applied = { audio = true; video = false } };
			} } };
			meeting_rooms = { ["m-1"] = room_jid }; p2p_sessions = {};
		}, bob;
	end

	it("is taken whole when this code saved it: records, sids, real JIDs and join order", function ()
		local saved, bob = saved_state();
		assert.is_nil(podium.check_saved(saved, new_media()));
		local sids = { ["sid-other"] = {} };
		local state = podium.new_state(none, sids);
		assert.same({ 1, 0 }, { state:adopt(saved) });
		assert.equal(bob, state:get(room_jid, "bob"));
		assert.equal(bob, sids["sid-1"]);
		assert.equal(1, state.real_jids["bob@localhost/web"]);
		-- the next occupant comes after bob, and bob's decision stands until podium's next one
		assert.equal(2, select(1, state:track(room_jid, "carol", "carol@localhost/web")).joined);
		assert.same({ audio = false; video = true; screen = true }, state:get(room_jid, "bob").held);
	end);

	it("drops a session another occupant holds in the shared sid index", function ()
		local saved = saved_state();
		local sids = { ["sid-1"] = { real_jid = "mallory@localhost/x" } };
		local state = podium.new_state(none, sids);
		assert.same({ 1, 1 }, { state:adopt(saved) });
		assert.is_nil(state:get(room_jid, "bob").media.sid);
		assert.equal("mallory@localhost/x", sids["sid-1"].real_jid);
	end);

	it("is refused when another version saved it, or when any part has another shape", function ()
		local function refused(change, reason)
			local saved = saved_state();
			change(saved, saved.rooms[room_jid].bob);
			assert.equal(reason, podium.check_saved(saved, new_media()));
		end
		assert.equal("nothing was saved", podium.check_saved(nil, new_media()));
		refused(function (saved) saved.format = nil; end, ("saved format nil, this module reads %d"):format(podium.saved_format));
		refused(function (saved) saved.format = podium.saved_format + 1; end,
			("saved format %d, this module reads %d"):format(podium.saved_format + 1, podium.saved_format));
		-- a grant must never come from a value this code does not read as false
		refused(function (_, bob) bob.held.audio = "false"; end, room_jid .. "/bob.held is not a set of three booleans");
		refused(function (_, bob) bob.held = { audio = true; video = true }; end,
			room_jid .. "/bob.held is not a set of three booleans");
		refused(function (_, bob) bob.origin = "jicofo"; end, room_jid .. "/bob.origin is neither default nor podium");
		refused(function (_, bob) bob.joined = 1.5; end, room_jid .. "/bob.joined is not a positive integer");
		-- an older layout of the sources (a list, or sources without their kind)
		refused(function (_, bob) bob.media.forwarded = { { ssrc = "11"; kind = "video"; media = "video" } }; end,
			room_jid .. "/bob.media.forwarded[1] is not a source");
		refused(function (_, bob) bob.media.withheld["22"].kind = nil; end,
			room_jid .. "/bob.media.withheld[22] is not a source");
		refused(function (_, bob) bob.media.withheld["22"] = "audio"; end,
			room_jid .. "/bob.media.withheld[22] is not a source");
		refused(function (_, bob) bob.media.group_by_key = nil; end, room_jid .. "/bob.media.group_by_key is not a table");
		refused(function (_, bob) bob.media.sid = 7; end, room_jid .. "/bob.media.sid is not a string");
		refused(function (_, bob) bob.media.groups[1].ssrcs = "11 12"; end, room_jid .. "/bob.media.groups[1] is not a group");
		refused(function (_, bob) bob.media.groups[1] = nil; end,
			room_jid .. "/bob.media.group_by_key[video FID 11,12] is not a known group");
		refused(function (_, bob) bob.media.requests[1].added = nil; end,
			room_jid .. "/bob.media.requests[1] is not a request");
		refused(function (_, bob) bob.hand = "true"; end, room_jid .. "/bob.hand is not a boolean");
		refused(function (_, bob) bob.features = "x"; end, room_jid .. "/bob.features is not a table");
		refused(function (saved) saved.joins = {}; end, "the joins of " .. room_jid .. " are not counted");
		refused(function (saved) saved.conferences[room_jid].endpoints.bob.jicofo = { audio = "no" }; end,
			"endpoint bob of " .. room_jid .. " is not an endpoint");
		refused(function (saved) saved.meeting_rooms["m-1"] = true; end, "meeting_rooms is not a map of strings");
		refused(function (saved) saved.p2p_sessions[room_jid] = { s = { a = "x" } }; end,
			"P2P session s in " .. room_jid .. " is not a session");
		refused(function (saved) saved.injected.x = { purpose = "grant" }; end, "injected x is not an entry");
		refused(function (saved) saved.rooms = "rooms"; end, "rooms are not tables");
	end);

	it("still names the sessions of a state it refuses, and nothing else, without raising", function ()
		local saved = saved_state();
		saved.format = 0;
		assert.same({ {
			room_jid = room_jid; nick = "bob"; real_jid = "bob@localhost/web"; sid = "sid-1"; focus = "focus@localhost/f";
			focus_occupant = room_jid .. "/focus"; bridge_session = "bs-1";
		} }, podium.session_handles(saved));
		saved.rooms[room_jid].bob.media.bridge_session = nil;
		assert.same({}, podium.session_handles(saved));
		for _, garbage in ipairs({ nil, 3, "x", { rooms = 1 }, { rooms = { [1] = { bob = 2 } } },
			{ rooms = { [room_jid] = { bob = { media = "m" } } } } }) do
			assert.same({}, podium.session_handles(garbage));
		end
	end);
end);

describe("the clients a batch of decisions tells at the end of the turn", function ()
	local function revoked(...)
		local set = {};
		for _, kind in ipairs({ ... }) do set[kind] = true; end
		return set;
	end
	local function always() return true; end

	it("keeps one entry per occupant, the kinds its decisions revoked merged, in the order queued", function ()
		local queue = podium.new_client_queue();
		local ada = { held = { audio = false; video = false; screen = false } };
		local bob = { held = { audio = true; video = false; screen = false } };
		assert.is_true(podium.queue_client(queue, ada, "r@muc", "ada", revoked("video")));
		assert.is_false(podium.queue_client(queue, bob, "r@muc", "bob", revoked()));
		assert.is_false(podium.queue_client(queue, ada, "r@muc", "ada", revoked("audio")));
		local entries = podium.take_client_queue(queue, always);
		assert.equal(2, #entries);
		assert.equal(ada, entries[1].record);
		assert.same({ audio = true; video = true }, entries[1].revoked);
		assert.equal("ada", entries[1].nick);
		assert.same({}, entries[2].revoked);
		assert.same({}, podium.take_client_queue(queue, always), "taken once");
		assert.is_true(podium.queue_client(queue, bob, "r@muc", "bob", revoked("video")), "empty again");
	end);

	it("mutes no kind granted again since, and skips an occupant no longer current", function ()
		local queue = podium.new_client_queue();
		local ada = { held = { audio = false; video = false; screen = false } };
		local gone = { held = { audio = false; video = false; screen = false } };
		podium.queue_client(queue, ada, "r@muc", "ada", revoked("audio", "video"));
		podium.queue_client(queue, gone, "r@muc", "gone", revoked("video"));
		ada.held = { audio = false; video = true; screen = false };
		local entries = podium.take_client_queue(queue, function (entry) return entry.nick ~= "gone"; end);
		assert.equal(1, #entries);
		assert.same({ audio = true }, entries[1].revoked);
	end);
end);
