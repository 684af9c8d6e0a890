-- busted specs for podium_guard.lib.lua: which IQs a client or jicofo would take for Jingle, and what a
-- visitor node refuses on its way to jicofo.
package.path = "./?.lua;./?.lib.lua;/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local xml = require "util.xml";
local guard = dofile("podium_guard.lib.lua");

local function iq(children)
	return xml.parse("<iq xmlns='jabber:client' type='set' id='x' to='a@b/c'>" .. children .. "</iq>");
end

local offer = "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'>"
	.. "<content name='0'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></content></jingle>";

describe("jingle_shape", function ()
	it("reads the one direct <jingle> lib-jitsi-meet sends", function ()
		local shape, payload = guard.jingle_shape(iq(offer));
		assert.equal("jingle", shape);
		assert.equal("session-initiate", payload.attr.action);
	end);

	it("marks_jingle agrees with jingle_shape on what is Jingle to a client at all", function ()
		for _, children in ipairs({ offer, "<query xmlns='jabber:iq:version'/>",
			"<x xmlns='urn:x'><jingle action='session-initiate'/></x>", "<x xmlns='urn:xmpp:jingle:1'/>" }) do
			local stanza = iq(children);
			assert.equal(guard.jingle_shape(stanza) ~= nil, guard.marks_jingle(stanza), children);
		end
	end);

	it("ignores IQs that are not Jingle to a client", function ()
		assert.is_nil(guard.jingle_shape(iq("<query xmlns='jabber:iq:version'/>")));
		-- Strophe calls onJingle only when a direct child is in the Jingle namespace.
		assert.is_nil(guard.jingle_shape(iq("<x xmlns='urn:x'><jingle action='session-initiate'/></x>")));
	end);

	it("calls disguised every Jingle a module and the client would read differently", function ()
		local disguises = {
			-- a marker child in the Jingle namespace, the offer in another (find('jingle') ignores namespaces)
			"<x xmlns='urn:xmpp:jingle:1'/><jingle xmlns='urn:x' action='session-initiate' sid='s2'/>",
			-- the offer nested below the marker
			"<x xmlns='urn:xmpp:jingle:1'><jingle action='session-initiate' sid='s2'/></x>",
			-- two <jingle>: a module reads the first, the client maybe another
			offer .. offer,
			"<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'><jingle action='session-initiate'/></jingle>",
			-- a second child in the Jingle namespace
			offer .. "<y xmlns='urn:xmpp:jingle:1'/>",
		};
		for _, children in ipairs(disguises) do
			assert.equal("disguised", (guard.jingle_shape(iq(children))), children);
		end
	end);

	it("walks a deeply nested stanza without recursion", function ()
		local depth = 50000;
		local stanza = iq("<x xmlns='urn:xmpp:jingle:1'/>");
		local tag = stanza;
		for _ = 1, depth do
			tag:tag("d");
		end
		tag:tag("jingle", { action = "session-initiate" });
		for _ = 1, depth + 1 do
			tag:up();
		end
		assert.equal("disguised", (guard.jingle_shape(stanza)));
		-- The next one is read as ever.
		assert.equal("jingle", (guard.jingle_shape(iq("<jingle xmlns='urn:xmpp:jingle:1' action='source-add'>"
			.. "<content name='video'/></jingle>"))));
	end);

	it("classifies a Jingle IQ building nothing (every participant's Jingle passes here)", function ()
		local stanza = iq("<jingle xmlns='urn:xmpp:jingle:1' action='session-accept'>"
			.. ("<content name='video'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>"
			.. "<payload-type id='100'><parameter name='x' value='y'/></payload-type></description></content>"):rep(3)
			.. "</jingle>");
		guard.jingle_shape(stanza);
		collectgarbage("collect");
		collectgarbage("stop");
		local before = collectgarbage("count");
		local shape = guard.jingle_shape(stanza);
		local built = collectgarbage("count") - before;
		collectgarbage("restart");
		assert.equal("jingle", shape);
		assert.equal(0, built);
	end);
end);

describe("visitor_refusal", function ()
	it("lets a visitor's session-accept without sources and its transport-info through", function ()
		assert.is_nil(guard.visitor_refusal(iq(offer:gsub("session%-initiate", "session-accept"))));
		assert.is_nil(guard.visitor_refusal(iq(offer:gsub("session%-initiate", "transport-info"))));
		assert.is_nil(guard.visitor_refusal(iq("<conference xmlns='http://jitsi.org/protocol/focus' room='r@c'/>")));
	end);

	it("refuses every source request, with or without sources, in any case", function ()
		for _, action in ipairs({ "source-add", "source-remove", "addsource", "removesource", "Source-Add" }) do
			local text = guard.visitor_refusal(iq(offer:gsub("session%-initiate", action)));
			assert.truthy(text, action);
		end
	end);

	it("refuses anything jicofo could read as a source, wherever it sits", function ()
		local ssma = "urn:xmpp:jingle:apps:rtp:ssma:0";
		local carrying = {
			("<jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='s'><content name='0'>"
				.. "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><source xmlns='%s' ssrc='1'/>"
				.. "</description></content></jingle>"):format(ssma),
			-- lenient parsing: a <source> in another namespace, at content level
			"<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='s'><content name='0'>"
				.. "<source xmlns='urn:x' ssrc='1'/></content></jingle>",
			("<jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='s'><content name='0'>"
				.. "<ssrc-group xmlns='%s' semantics='FID'/></content></jingle>"):format(ssma),
			-- a second <jingle> after the first (Smack keeps the last child it parses)
			offer:gsub("session%-initiate", "session-accept")
				.. "<jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s'/>",
		};
		for _, children in ipairs(carrying) do
			assert.truthy(guard.visitor_refusal(iq(children)), children);
		end
	end);
end);
