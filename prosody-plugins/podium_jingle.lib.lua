-- podium_jingle.lib.lua: the pure part of mod_podium's enforcement (no hooks, no sending), tested
-- with busted.
--
-- It reads and edits the Jingle that passes between participants and jicofo, and the Colibri2 that
-- passes between jicofo and the bridge; mod_podium decides where it runs and sends what it builds.
-- Facts it rests on (research notes in docs/enforcement.md):
--   * sources travel in <content><description xmlns=rtp media=audio|video> as <source ssrc name
--     videoType> and <ssrc-group semantics><source ssrc/></ssrc-group>, both in the ssma namespace;
--   * jicofo fails a whole request when an ssrc-group names an SSRC it does not know
--     (GroupContainsUnknownSourceException), so a withheld source takes its groups with it;
--   * screen = a video source with videoType='desktop' (lib-jitsi-meet SDP.ts); older clients say so
--     only in presence SourceInfo, which the caller passes in as `declared` (name -> "screen"), and a
--     client may switch a camera track to the screen with replaceTrack: no Jingle at all, only
--     presence changes (research real-client.md), so kinds are decided again on every presence;
--   * jicofo routes participant Jingle by sid only (JingleIqRequestHandler), so whoever knows a sid
--     can act for that participant: the module checks sids, and uses that fact to grant and revoke.

local st = require "util.stanza";

local xmlns_jingle = "urn:xmpp:jingle:1";
local xmlns_rtp = "urn:xmpp:jingle:apps:rtp:1";
local xmlns_ssma = "urn:xmpp:jingle:apps:rtp:ssma:0";
local xmlns_colibri2 = "jitsi:colibri2";
local xmlns_mute = {
	audio = "http://jitsi.org/jitmeet/audio";
	video = "http://jitsi.org/jitmeet/video";
	screen = "http://jitsi.org/jitmeet/desktop";
};

-- Participant -> focus actions that carry sources jicofo adds (jicofo treats addsource as source-add,
-- and transport-accept like session-accept: Participant.kt onSessionOrTransportAccept).
local adding_actions = {
	["session-accept"] = true; ["transport-accept"] = true; ["source-add"] = true; ["addsource"] = true;
};
local removing_actions = { ["source-remove"] = true; ["removesource"] = true };

-- The strictest kind wins when a track's sources disagree.
local strictness = { audio = 1; video = 2; screen = 3 };

-- Children named `name` in `xmlns`; an element built without an xmlns attribute inherits its parent's.
local function each_child(parent, name, xmlns)
	local tags, i = parent.tags, 0;
	return function ()
		while true do
			i = i + 1;
			local tag = tags[i];
			if not tag then return nil; end
			local ns = tag.attr.xmlns or parent.attr.xmlns;
			if tag.name == name and ns == xmlns then return tag; end
		end
	end
end

-- Whether `tag` (a child of `parent`) is <name xmlns=xmlns>; a child without an xmlns inherits its
-- parent's. The readers below loop over children with it rather than each_child: no closure is built
-- per loop for the Jingle of every participant.
local function is_child(tag, parent, name, xmlns)
	return tag.name == name and (tag.attr.xmlns or parent.attr.xmlns) == xmlns;
end

local function jingle_of(iq)
	return iq:get_child("jingle", xmlns_jingle);
end

-- An SSRC as jicofo reads it: SourcePacketExtension.getSSRC is Java's Long.parseLong, which takes an
-- optional sign and decimal digits and nothing else (no spaces, no hex, no exponent; Lua's tonumber
-- takes all three). Non-ASCII digits, which parseLong also takes, are refused here. jicofo then refuses
-- anything outside 1..0xFFFFFFFF (ValidatingConferenceSourceMap InvalidSsrcException). Returns the
-- canonical decimal text, or nil.
local function parse_ssrc(text)
	if type(text) ~= "string" then return nil; end
	-- The text lib-jitsi-meet writes (no sign, no leading zero, at most 10 digits) is its own canonical
	-- form: returned as it is, with nothing built.
	if text:find("^[1-9]%d*$") then
		local length = #text;
		if length < 10 or (length == 10 and text <= "4294967295") then return text; end
		return nil;
	end
	local sign, digits = text:match("^([+-]?)([0-9]+)$");
	if not digits or sign == "-" then return nil; end
	digits = digits:match("^0*([0-9]+)$");
	if #digits > 10 then return nil; end
	local ssrc = tonumber(digits);
	if ssrc < 1 or ssrc > 0xFFFFFFFF then return nil; end
	return ("%d"):format(ssrc);
end

local function ssrc_of(tag)
	return parse_ssrc(tag.attr.ssrc);
end

-- The <description> elements of a <jingle>, with their media (check_shape allows one per content).
local function each_description(jingle)
	local descriptions = {};
	for content in each_child(jingle, "content", xmlns_jingle) do
		local description = content:get_child("description", xmlns_rtp);
		if description and (description.attr.media == "audio" or description.attr.media == "video") then
			descriptions[#descriptions + 1] = { content = content; description = description };
		end
	end
	local i = 0;
	return function ()
		i = i + 1;
		local entry = descriptions[i];
		if entry then return entry.content, entry.description; end
	end
end

--- Checking the shape --------------------------------------------------------------------------------

-- jicofo parses a participant's Jingle with jitsi-xmpp-extensions (JingleIQProvider,
-- DefaultPacketExtensionProvider), which does not read XML the way this module does:
--   * <jingle>'s children are matched by local name only (<content>, <group>, <reason>...) in any
--     namespace;
--   * an element ends at the first end tag with its local name, at any depth below it, so a nested
--     <x:content/> ends the outer <content> early and what follows lands elsewhere;
--   * an element it has no provider for is not skipped: its children are read as if they were the
--     parent's, so a <source> wrapped in <urn:x:wrap> is a source of the enclosing description or content;
--   * it reads sources directly in <content> as well as in its first rtp <description>
--     (jicofo EndpointSourceSet.fromJingle), parses media, videoType and semantics case-insensitively, and
--     reads a prefixed attribute (p:ssrc) by its local name.
-- So the module does not look for tricks: it allows exactly the shapes lib-jitsi-meet sends (SDP.ts
-- toJingle and transportToJingle, SDPDiffer for source-add/remove) and refuses anything else, so that
-- both parsers see one tree. Within that tree, an element of an unknown kind is tolerated only where
-- lib-jitsi-meet might add one (never in <jingle>, <source> or <ssrc-group>), only as a leaf, and
-- only with a name no allowed element has.
local xmlns_rtcp_fb = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
local xmlns_hdrext = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
local xmlns_grouping = "urn:xmpp:jingle:apps:grouping:0";
local xmlns_ice = "urn:xmpp:jingle:transports:ice-udp:1";
local xmlns_dtls = "urn:xmpp:jingle:apps:dtls:0";
local xmlns_sctp = "urn:xmpp:jingle:transports:dtls-sctp:1";
local xmlns_focus = "http://jitsi.org/protocol/focus";
local xmlns_colibri = "http://jitsi.org/protocol/colibri";

-- Each shape: `children` maps "namespace name" to the shape of an allowed child; `leaf` allows no
-- children at all; `open` lets unknown leaves in; `once` lists children allowed at most once; `attrs`,
-- when set, are the only attributes allowed.
local shapes = {};
shapes.leaf = { leaf = true };
shapes.member = { leaf = true; attrs = { ssrc = true } };
shapes.source = {
	attrs = { ssrc = true; name = true; videoType = true };
	children = { [xmlns_ssma .. " parameter"] = shapes.leaf };
};
shapes.ssrc_group = {
	attrs = { semantics = true };
	children = { [xmlns_ssma .. " source"] = shapes.member };
};
shapes.payload_type = {
	open = true;
	children = {
		[xmlns_rtp .. " parameter"] = shapes.leaf;
		[xmlns_rtcp_fb .. " rtcp-fb"] = shapes.leaf;
		[xmlns_rtcp_fb .. " rtcp-fb-trr-int"] = shapes.leaf;
	};
};
shapes.description = {
	open = true;
	children = {
		[xmlns_rtp .. " payload-type"] = shapes.payload_type;
		[xmlns_ssma .. " source"] = shapes.source;
		[xmlns_ssma .. " ssrc-group"] = shapes.ssrc_group;
		[xmlns_rtp .. " rtcp-mux"] = shapes.leaf;
		[xmlns_rtcp_fb .. " rtcp-fb"] = shapes.leaf;
		[xmlns_rtcp_fb .. " rtcp-fb-trr-int"] = shapes.leaf;
		[xmlns_hdrext .. " rtp-hdrext"] = shapes.leaf;
		[xmlns_hdrext .. " extmap-allow-mixed"] = shapes.leaf;
	};
};
shapes.transport = {
	open = true;
	children = {
		[xmlns_dtls .. " fingerprint"] = shapes.leaf;
		[xmlns_ice .. " candidate"] = shapes.leaf;
		[xmlns_ice .. " rtcp-mux"] = shapes.leaf;
		[xmlns_sctp .. " sctpmap"] = shapes.leaf;
		[xmlns_colibri .. " web-socket"] = shapes.leaf;
	};
};
shapes.content = {
	open = true;
	once = { description = true };
	children = {
		[xmlns_rtp .. " description"] = shapes.description;
		-- transportToJingle leaves the transport in the Jingle namespace when it has no ICE parameters.
		[xmlns_ice .. " transport"] = shapes.transport;
		[xmlns_jingle .. " transport"] = shapes.transport;
		["jitsi:colibri2 initial-last-n"] = shapes.leaf;
	};
};
shapes.bundle = { children = { [xmlns_grouping .. " content"] = { leaf = true; attrs = { name = true } } } };
-- jicofo puts its OpenTelemetry context in its session-initiate and a current lib-jitsi-meet echoes it
-- in its session-accept (JingleSessionPC.ts _sendSessionAccept, OTel.ts): three attributes, no children.
shapes.traceparent = { leaf = true; attrs = { trace_id = true; parent_id = true; trace_flags = true } };
shapes.jingle = {
	once = { traceparent = true };
	children = {
		[xmlns_jingle .. " content"] = shapes.content;
		[xmlns_grouping .. " group"] = shapes.bundle;
		[xmlns_focus .. " bridge-session"] = shapes.leaf;
		["jitsi:opentelemetry traceparent"] = shapes.traceparent;
	};
};

-- Every local name an allowed element has (and <jingle>'s): an unknown element may not use one, in any
-- namespace, since jicofo's parser matches them by local name. Children are then indexed by name, then
-- namespace, so that checking an element builds no string.
local reserved_names = { jingle = true; reason = true };
local function index_children(shape)
	if not shape.children or shape.by_name then return; end
	shape.by_name = {};
	for key, child_shape in pairs(shape.children) do
		local ns, name = key:match("^(.*) ([^ ]+)$");
		reserved_names[name] = true;
		shape.by_name[name] = shape.by_name[name] or {};
		shape.by_name[name][ns] = child_shape;
		index_children(child_shape);
	end
end
index_children(shapes.jingle);

-- Attribute names already seen without a namespace prefix (Prosody writes a prefixed one as
-- "<namespace>\1<name>"): the names lib-jitsi-meet uses, about 40, are then a table lookup, not a
-- search, on every element of every request. At most plain_names_max are kept, each of at most
-- plain_name_max_length bytes: a participant chooses these names, and the cache lives as long as the
-- module, so a long one (up to a stanza's size) is never kept.
local plain_names, plain_names_count, plain_names_max = {}, 0, 256;
local plain_name_max_length = 32;

local function is_prefixed(key)
	if plain_names[key] then return false; end
	if type(key) ~= "string" then return false; end
	if key:find("\1", 1, true) then return true; end
	if plain_names_count < plain_names_max and #key <= plain_name_max_length then
		plain_names[key], plain_names_count = true, plain_names_count + 1;
	end
	return false;
end

local function prefixed_attribute(tag)
	for key in pairs(tag.attr) do
		if is_prefixed(key) then return key; end
	end
end

-- The checks on an element itself: its attributes, children under a leaf, text. nil or the reason.
local function check_own(tag, shape)
	local allowed = shape.attrs;
	for key in pairs(tag.attr) do
		if not plain_names[key] and is_prefixed(key) then
			return ("prefixed attribute on <%s>"):format(tag.name);
		end
		if allowed and key ~= "xmlns" and not allowed[key] then
			return ("attribute %q is not allowed on <%s>"):format(tostring(key), tag.name);
		end
	end
	if shape.leaf and #tag.tags > 0 then return ("<%s> has children"):format(tag.name); end
	-- Text, even whitespace, between the elements that carry sources: lib-jitsi-meet never sends it, and
	-- jicofo's JingleIQProvider fails the whole IQ on text directly in <jingle> (it asks a text event for
	-- its element name), so jicofo would take nothing of what the module believes it forwarded.
	if not shape.leaf and #tag.tags ~= #tag then
		return ("text in <%s>"):format(tag.name);
	end
end

-- Why `child` (namespace `child_ns`), which `shape` (that of its parent `tag`) does not list, is
-- refused; nil when it is a tolerated unknown leaf.
local function check_unknown(child, child_ns, tag, shape)
	if reserved_names[child.name] or not shape.open then
		return ("<%s xmlns='%s'> is not allowed in <%s>"):format(child.name, child_ns, tag.name);
	elseif #child.tags > 0 then
		return ("unknown <%s xmlns='%s'> in <%s> has children"):format(child.name, child_ns, tag.name);
	elseif prefixed_attribute(child) then
		return ("prefixed attribute on <%s>"):format(child.name);
	end
end

-- Whether `name`, a child allowed at most once, was seen already among its siblings; `seen` is false,
-- the one name seen so far, or a set of them. Returns the answer and the new `seen`.
local function seen_before(seen, name)
	if not seen then return false, name; end
	if seen == name then return true, seen; end
	if type(seen) == "string" then seen = { [seen] = true }; end
	if seen[name] then return true, seen; end
	seen[name] = true;
	return false, seen;
end

-- The elements being checked, one per level, with their namespace, shape, next child and the `once`
-- children seen: kept from one check to the next (emptied after each) so that checking a Jingle
-- request builds nothing, and walked in a loop, not by recursion: every level of recursion grows the
-- Lua stack of the client's session (Prosody runs each stanza in its session's coroutine, whose stack
-- the collector shrinks again), which costs as much as building a table.
local walk_tags, walk_nss, walk_shapes, walk_next, walk_seen = {}, {}, {}, {}, {};

-- Checks `root` (namespace `root_ns`) and everything below it against `root_shape`, element by element
-- in document order (each element before its children, its children before its next sibling). Returns
-- nil or the reason to refuse.
local function check_tree(root, root_ns, root_shape)
	local problem = check_own(root, root_shape);
	if problem then return problem; end
	local depth = 1;
	walk_tags[1], walk_nss[1], walk_shapes[1], walk_next[1], walk_seen[1] = root, root_ns, root_shape, 1, false;
	while depth > 0 do
		local tag, shape, i = walk_tags[depth], walk_shapes[depth], walk_next[depth];
		local child = tag.tags[i];
		if child == nil then
			walk_tags[depth], walk_nss[depth], walk_shapes[depth], walk_seen[depth] = nil, nil, nil, nil;
			depth = depth - 1;
		else
			walk_next[depth] = i + 1;
			local child_ns = child.attr.xmlns or walk_nss[depth];
			local by_ns = shape.by_name and shape.by_name[child.name];
			local child_shape = by_ns and by_ns[child_ns];
			if child_shape then
				local once = shape.once;
				if once and once[child.name] then
					local again;
					again, walk_seen[depth] = seen_before(walk_seen[depth], child.name);
					if again then
						problem = ("more than one <%s> in <%s>"):format(child.name, tag.name);
						break;
					end
				end
				problem = check_own(child, child_shape);
				if problem then break; end
				if #child.tags > 0 then
					depth = depth + 1;
					walk_tags[depth], walk_nss[depth], walk_shapes[depth] = child, child_ns, child_shape;
					walk_next[depth], walk_seen[depth] = 1, false;
				end
			else
				problem = check_unknown(child, child_ns, tag, shape);
				if problem then break; end
			end
		end
	end
	for level = 1, depth do
		walk_tags[level], walk_nss[level], walk_shapes[level], walk_seen[level] = nil, nil, nil, nil;
	end
	return problem;
end

-- The media types lib-jitsi-meet gives its contents: an rtp description's `media` (audio, video, and
-- application for the data channel, SDP.ts toJingle), or, without a description, the content's name.
local description_media_types = { audio = true; video = true; application = true };
local content_names = { audio = true; video = true; data = true };

-- The values jicofo reads from the elements that carry sources, checked as lib-jitsi-meet writes them.
-- check_values for one <content>.
local function check_content_values(content)
	local description = content:get_child("description", xmlns_rtp);
	-- jicofo reads every content's media type (the description's media, else the content's name) and
	-- fails the whole request on one it does not know (EndpointSourceSet.fromJingle,
	-- MediaType.parseString). Sources under anything but audio or video are refused below.
	local media_type = content.attr.name;
	local known = content_names;
	if description then media_type, known = description.attr.media, description_media_types; end
	if not known[media_type] then
		return ("content media %q is not one lib-jitsi-meet sends"):format(tostring(media_type));
	end
	if not description then return nil; end
	local media = description.attr.media;
	for _, child in ipairs(description.tags) do
		if is_child(child, description, "source", xmlns_ssma) then
			if media ~= "audio" and media ~= "video" then
				return ("sources under media %q (expected audio or video)"):format(tostring(media));
			end
			if not ssrc_of(child) then return ("invalid ssrc %q"):format(tostring(child.attr.ssrc)); end
			local video_type = child.attr.videoType;
			if video_type and video_type ~= "camera" and video_type ~= "desktop" then
				return ("videoType %q is not camera or desktop"):format(video_type);
			end
		elseif is_child(child, description, "ssrc-group", xmlns_ssma) then
			if media ~= "audio" and media ~= "video" then
				return ("sources under media %q (expected audio or video)"):format(tostring(media));
			end
			local semantics = child.attr.semantics;
			if semantics ~= "FID" and semantics ~= "SIM" then
				return ("ssrc-group semantics %q is not FID or SIM"):format(tostring(semantics));
			end
			if #child.tags == 0 then return "empty <ssrc-group>"; end
			for _, member in ipairs(child.tags) do
				if is_child(member, child, "source", xmlns_ssma) and not ssrc_of(member) then
					return ("invalid ssrc %q"):format(tostring(member.attr.ssrc));
				end
			end
		end
	end
end

local function check_values(jingle)
	for _, content in ipairs(jingle.tags) do
		if is_child(content, jingle, "content", xmlns_jingle) then
			local problem = check_content_values(content);
			if problem then return problem; end
		end
	end
end

-- Returns nil when the participant's <jingle> has a shape lib-jitsi-meet sends, else the reason to
-- refuse it.
-- The trace context jicofo reads from every participant Jingle before it handles the request
-- (JingleSession's incoming queue, remoteSpanFromIq): Smack's TraceParentProvider fails the whole stanza
-- when an attribute is missing, and OpenTelemetry's TraceFlags.fromHex throws on anything but two
-- lowercase hex digits, so jicofo drops the request unanswered. lib-jitsi-meet echoes jicofo's own
-- values: the three attributes, lowercase hex of W3C Trace Context's lengths, no text.
local traceparent_lengths = { { "trace_id", 32 }, { "parent_id", 16 }, { "trace_flags", 2 } };

local function check_traceparent(jingle)
	local trace = jingle:get_child("traceparent", "jitsi:opentelemetry");
	if not trace then return nil; end
	for _, expected in ipairs(traceparent_lengths) do
		local name, length = expected[1], expected[2];
		local value = trace.attr[name];
		if not value or #value ~= length or value:find("[^0-9a-f]") then
			return ("<traceparent> %s %q is not %d lowercase hex digits"):format(name, tostring(value), length);
		end
	end
	if #trace > 0 then return "text in <traceparent>"; end
end

local function check_shape(jingle)
	return check_tree(jingle, jingle.attr.xmlns or xmlns_jingle, shapes.jingle) or check_values(jingle)
		or check_traceparent(jingle);
end

-- The IQ around a participant's <jingle>: lib-jitsi-meet sends exactly one child. Smack reads an IQ's
-- child elements one after the other and keeps the payload of the last it has a provider for, while
-- this module reads the first <jingle>: a second child could make them read different requests.
local function check_iq(iq)
	if #iq.tags ~= 1 then return "a Jingle IQ carries exactly one <jingle>"; end
end

--- Reading sources ----------------------------------------------------------------------------------

-- The kind of a video source: "screen" when its Jingle says videoType='desktop', or when presence
-- declares its track a screenshare (`declared`: name -> "screen"); "video" otherwise. A source without
-- a name (lib-jitsi-meet without source names, which has one video track) is its endpoint's first video
-- track, `<nick>-v0`, the name its presence SourceInfo uses.
local function video_kind(video_type, name, declared, nick)
	if video_type == "desktop" then return "screen"; end
	name = name or (nick and nick .. "-v0");
	if name and declared and declared[name] == "screen" then return "screen"; end
	return "video";
end

-- What one source or group may hold, so that what the module keeps per participant is bounded by the
-- SSRC and group limits alone (review 14): lib-jitsi-meet sends one msid parameter of under 200 bytes
-- and groups of at most 6 SSRCs (simulcast + RTX).
local max_parameter_bytes = 1024;
local max_group_ssrcs = 32;

-- The <parameter name value/> children of a source (lib-jitsi-meet's msid), as one string
-- "name\0value\0…" (a string costs the collector nothing to walk; a table per source would), or nil.
-- One parameter (lib-jitsi-meet) builds nothing else; from the second on the pairs are joined once,
-- so a source with thousands of them costs time linear in their number; returns nil, true once they
-- pass max_parameter_bytes (what is read up to there is dropped).
local function read_parameters(source)
	local first, more;
	local bytes = 0;
	for _, parameter in ipairs(source.tags) do
		if is_child(parameter, source, "parameter", xmlns_ssma) then
			local name, value = parameter.attr.name or "", parameter.attr.value or "";
			bytes = bytes + #name + #value + 2;
			if bytes > max_parameter_bytes then return nil, true; end
			local pair = name .. "\0" .. value .. "\0";
			if not first then
				first = pair;
			else
				more = more or { first };
				more[#more + 1] = pair;
			end
		end
	end
	return more and table.concat(more) or first;
end

-- Reads every source and group of a <jingle>: returns sources (list of
-- { ssrc, name, video_type, parameters, media, kind, content }) and groups (list of
-- { semantics, ssrcs, media, content }), or nil and the reason when a source has no valid SSRC or is
-- listed twice (jicofo keys a source by SSRC and media, the module by SSRC alone: the same SSRC under
-- two media would be two sources to jicofo and one to the module).
-- `declared` maps a source name to "screen" when presence said so (SourceInfo videoType desktop);
-- `nick` is the sender's endpoint id (see video_kind). Only what a replay needs is kept
-- (source_element and group_element build it again), not the elements: the module holds every participant's sources for
-- the whole conference.
local function read_sources(jingle, declared, nick)
	local sources, groups, seen = {}, {}, {};
	for _, content in ipairs(jingle.tags) do
		local description = is_child(content, jingle, "content", xmlns_jingle)
			and content:get_child("description", xmlns_rtp);
		local media = description and description.attr.media;
		if media == "audio" or media == "video" then
			local content_name = content.attr.name or media;
			for _, child in ipairs(description.tags) do
				if is_child(child, description, "source", xmlns_ssma) then
					local ssrc = ssrc_of(child);
					if not ssrc then
						return nil, ("invalid ssrc %q"):format(tostring(child.attr.ssrc));
					end
					if seen[ssrc] then return nil, ("ssrc %s is listed twice"):format(ssrc); end
					seen[ssrc] = true;
					local name, video_type = child.attr.name, child.attr.videoType;
					local kind = media == "video" and video_kind(video_type, name, declared, nick) or "audio";
					local parameters, too_long = read_parameters(child);
					if too_long then
						return nil, ("the parameters of ssrc %s exceed %d bytes"):format(ssrc, max_parameter_bytes);
					end
					sources[#sources + 1] = {
						ssrc = ssrc; name = name; video_type = video_type; parameters = parameters;
						media = media; kind = kind; content = content_name;
					};
				elseif is_child(child, description, "ssrc-group", xmlns_ssma) then
					if not child.attr.semantics then
						return nil, "<ssrc-group> without semantics";
					end
					local ssrcs = {};
					for _, member in ipairs(child.tags) do
						if is_child(member, child, "source", xmlns_ssma) then
							if #ssrcs == max_group_ssrcs then
								return nil, ("an <ssrc-group> lists more than %d sources"):format(max_group_ssrcs);
							end
							ssrcs[#ssrcs + 1] = ssrc_of(member) or tostring(member.attr.ssrc);
						end
					end
					local semantics = child.attr.semantics;
					groups[#groups + 1] = {
						semantics = semantics; ssrcs = ssrcs; media = media; content = content_name;
						key = media .. " " .. semantics .. " " .. table.concat(ssrcs, ",");
					};
				end
			end
		end
	end
	return sources, groups;
end

-- Sources of one track must share a kind: a source takes the strictest kind of any source it shares a
-- name or a group with (a simulcast camera whose layers disagree is treated as a screenshare).
local function unify_kinds(sources, groups, known)
	local by_ssrc = {};
	for _, source in ipairs(sources) do by_ssrc[source.ssrc] = source; end
	local function kind_of(ssrc)
		local source = by_ssrc[ssrc] or (known and known(ssrc));
		return source and source.kind;
	end
	local changed = true;
	while changed do
		changed = false;
		local by_name = {};
		for _, source in ipairs(sources) do
			if source.name and source.media == "video" then
				local seen = by_name[source.name];
				if not seen or strictness[source.kind] > strictness[seen] then
					by_name[source.name] = source.kind;
				end
			end
		end
		for _, source in ipairs(sources) do
			local strictest = source.name and by_name[source.name];
			if strictest and strictness[strictest] > strictness[source.kind] then
				source.kind, changed = strictest, true;
			end
		end
		for _, group in ipairs(groups) do
			local strictest;
			for _, ssrc in ipairs(group.ssrcs) do
				local kind = kind_of(ssrc);
				if kind and (not strictest or strictness[kind] > strictness[strictest]) then strictest = kind; end
			end
			for _, ssrc in ipairs(group.ssrcs) do
				local source = by_ssrc[ssrc];
				if source and strictest and strictness[strictest] > strictness[source.kind] then
					source.kind, changed = strictest, true;
				end
			end
		end
	end
end

-- Presence changed what the occupant declares (a camera track switched to the screen, or back, with no
-- Jingle): decides the kind of each of its known video sources again, as read_sources would now, with
-- the strictest kind of a track winning. Returns true when any source changed kind; plan_change then
-- moves it between forwarded and withheld.
-- Whether a video source of `map` is a screenshare by its own signalling (video_kind).
local function declares_screen(map, declared, nick)
	for _, source in pairs(map) do
		if source.media == "video" and video_kind(source.video_type, source.name, declared, nick) == "screen" then
			return true;
		end
	end
	return false;
end

-- Makes every video source of `map` a camera; returns true when one was not.
local function all_cameras(map)
	local changed = false;
	for _, source in pairs(map) do
		if source.media == "video" and source.kind ~= "video" then
			source.kind, changed = "video", true;
		end
	end
	return changed;
end

local function reclassify(media, declared, nick)
	-- The common case, on every Jingle request and every changed declaration: no video source is a
	-- screenshare by itself, so none can make another one a screenshare (unify_kinds only raises a kind
	-- to one a source of its track has), and every video source is a camera. Decided with nothing built.
	if not declares_screen(media.forwarded, declared, nick) and not declares_screen(media.withheld, declared, nick) then
		local changed = all_cameras(media.forwarded);
		return all_cameras(media.withheld) or changed;
	end
	local sources = {};
	for _, map in ipairs({ media.forwarded, media.withheld }) do
		for _, source in pairs(map) do
			if source.media == "video" then sources[#sources + 1] = source; end
		end
	end
	local before = {};
	for _, source in ipairs(sources) do
		before[source] = source.kind;
		source.kind = video_kind(source.video_type, source.name, declared, nick);
	end
	unify_kinds(sources, media.groups);
	for _, source in ipairs(sources) do
		if source.kind ~= before[source] then return true; end
	end
	return false;
end

-- Whether the only video the occupant sends is a screenshare it may not send: it has withheld screen
-- sources and no video source forwarded (a camera track switched to the screen without Jingle keeps
-- sending on its SSRCs, so the bridge must mute the endpoint's video).
local function sends_only_refused_screen(media)
	for _, source in pairs(media.forwarded) do
		if source.media == "video" then return false; end
	end
	for _, source in pairs(media.withheld) do
		if source.kind == "screen" then return true; end
	end
	return false;
end

--- Per-occupant media state --------------------------------------------------------------------------

-- What the module knows of one occupant's sending side:
--   sid        the current Jingle session with jicofo (every re-invite brings a new one)
--   focus      jicofo's real full JID, the `to` of IQs sent in the participant's name
--   forwarded  ssrc -> source that jicofo knows
--   withheld   ssrc -> source kept back from jicofo
--   groups     list of groups seen, each with .forwarded (jicofo has it) and .seq (arrival order)
--   group_by_key   group key -> group (the same groups, indexed)
-- Every table is capped by check_sources and check_groups at jicofo's own per-endpoint limits, and
-- each request touches only the entries it names (or, for the groups of a removed source, the
-- occupant's capped list of groups).
local function new_media()
	return { forwarded = {}; withheld = {}; groups = {}; group_by_key = {}; group_seq = 0 };
end

-- A new session starts from nothing: the participant's session-accept lists all its sources again.
-- (The sid is set through the state, which indexes it.)
local function reset_session(media, focus)
	media.focus, media.requests = focus, nil;
	-- A fresh media table (the first session) is reused as it is.
	if next(media.forwarded) or next(media.withheld) or next(media.groups) then
		media.forwarded, media.withheld = {}, {};
		media.groups, media.group_by_key = {}, {};
	end
end

local function count(map)
	local n = 0;
	for _ in pairs(map) do n = n + 1; end
	return n;
end

local function group_members_in(group, map)
	for _, ssrc in ipairs(group.ssrcs) do
		if not map[ssrc] then return false; end
	end
	return true;
end

-- jicofo tells groups apart by semantics, SSRCs (in order) and media (SsrcGroup is a data class).
-- read_sources builds it once per group (group.key), kept with the group.
local function group_key(group)
	return group.key or (group.media .. " " .. group.semantics .. " " .. table.concat(group.ssrcs, ","));
end

-- Records a group (or updates the one already known with its key).
local function remember_group(media, group, forwarded)
	local key = group_key(group);
	local known = media.group_by_key[key];
	if known then
		known.forwarded = forwarded;
		return;
	end
	group.forwarded = forwarded;
	media.group_seq = (media.group_seq or 0) + 1;
	group.seq = media.group_seq;
	group.index = #media.groups + 1;
	media.groups[group.index] = group;
	media.group_by_key[key] = group;
end

-- Forgets a known group. O(1): the list keeps no order (batches are sorted by .seq).
local function forget_group(media, group)
	local groups = media.groups;
	local last = groups[#groups];
	groups[#groups] = nil;
	if last ~= group then
		groups[group.index] = last;
		last.index = group.index;
	end
	media.group_by_key[group_key(group)] = nil;
end

-- The known groups naming any SSRC of the set `ssrcs` (ssrc -> true; a list, as a snapshot one may
-- change while walking it). One walk over the occupant's groups, which check_groups caps at jicofo's
-- max-ssrc-groups-per-user, for a whole request (never one per SSRC: with the caps raised that is
-- sources x groups): an index per SSRC would be one more table per source for the collector to walk,
-- all conference long.
local function groups_naming(media, ssrcs)
	local list = {};
	if next(ssrcs) == nil then return list; end
	for _, group in ipairs(media.groups) do
		for _, member in ipairs(group.ssrcs) do
			if ssrcs[member] then
				list[#list + 1] = group;
				break;
			end
		end
	end
	return list;
end

--- Withholding (participant -> focus) ----------------------------------------------------------------

-- jicofo's defaults (jicofo-selector/src/main/resources/reference.conf: conference.max-ssrcs-per-user = 20,
-- max-ssrc-groups-per-user = max-ssrcs-per-user): it refuses a request that would take an endpoint past
-- them (ValidatingConferenceSourceMap.tryToAdd). mod_podium passes its own options.
local default_max_ssrcs = 20;
local default_max_groups = 20;

-- Checks a participant's sources before anything is changed. `nick` is its endpoint id; `owner_of(ssrc)`
-- names the occupant that already uses an SSRC in the room (nil if none); `known` is how many SSRCs of
-- this participant the module already has (forwarded and withheld); `limit` is the most SSRCs one
-- endpoint may have (default jicofo's 20). Returns nil, or the reason the request is refused.
-- Withheld sources count toward the limit as if forwarded, so every withheld source can be replayed on a
-- grant without jicofo refusing it.
local function check_sources(sources, nick, owner_of, known, limit)
	limit = limit or default_max_ssrcs;
	if (known or 0) + #sources > limit then
		-- jicofo's wording (ValidatingConferenceSourceMap), so a client sees the same answer either way.
		return ("SSRC limit (%d) exceeded."):format(limit);
	end
	local seen = {};
	local after = #nick + 2; -- where "<nick>-" ends
	for _, source in ipairs(sources) do
		local name = source.name;
		-- At most 9 digits (review 14b: the name is kept for the conference, so its length is bounded).
		if name and (#name > after + 9 or name:find(nick, 1, true) ~= 1 or name:byte(after - 1) ~= 45 --[[ "-" ]]
			or not name:find("^[av]%d+$", after)) then
			return ("source name %q does not belong to endpoint %q"):format(name, nick);
		end
		local owner = owner_of(source.ssrc);
		if owner and owner ~= nick then
			-- jicofo's wording (SsrcAlreadyUsedException), so a client sees the same answer either way.
			return ("SSRC is already used: %s."):format(source.ssrc);
		elseif owner then
			-- jicofo refuses a known SSRC too (SsrcAlreadyUsed); refusing it here keeps the module's
			-- account of what jicofo has exact.
			return ("SSRC is already used: %s."):format(source.ssrc);
		end
		-- A simulcast track lists each SSRC once; the same SSRC twice in one request is a forgery or a bug.
		if seen[source.ssrc] then
			return ("ssrc %s is listed twice"):format(source.ssrc);
		end
		seen[source.ssrc] = true;
	end
end

-- Checks a participant's groups before anything is changed: every SSRC a group names must be one this
-- participant signalled, in this request or before (jicofo refuses the whole request otherwise:
-- GroupContainsUnknownSourceException), and its groups, kept or withheld, stay within `limit` (default
-- jicofo's 20; a group already known is not counted twice, as jicofo ignores a duplicate). Work is
-- proportional to the request. Returns nil or the reason.
local function check_groups(media, sources, groups, limit)
	limit = limit or default_max_groups;
	local in_request = {};
	for _, source in ipairs(sources) do in_request[source.ssrc] = true; end
	local new, counted = 0, {};
	for _, group in ipairs(groups) do
		for _, ssrc in ipairs(group.ssrcs) do
			if not (in_request[ssrc] or media.forwarded[ssrc] or media.withheld[ssrc]) then
				-- jicofo's wording (GroupContainsUnknownSourceException), the group's SSRCs as Kotlin
				-- prints a list.
				return ("An SSRC group contains an SSRC, which hasn't been signaled as a source: [%s].")
					:format(table.concat(group.ssrcs, ", "));
			end
		end
		local key = group_key(group);
		if not media.group_by_key[key] and not counted[key] then
			counted[key] = true;
			new = new + 1;
		end
	end
	if #media.groups + new > limit then
		return ("ssrc-group limit (%d) exceeded."):format(limit);
	end
end

-- Removes from `jingle` (in place) every source of a kind `allowed` does not include, and every group
-- naming a removed or already withheld SSRC; records both in `media`. Returns a summary
-- { kept = n, withheld = n, kinds = { kind = true } (only when withheld > 0), added = { ssrc } } of this
-- request. A request nothing is withheld from builds only the summary and its list.
local none = {};
local function withhold(jingle, media, sources, groups, allowed)
	local removed = none;
	local summary = { kept = 0; withheld = 0; added = {} };
	for _, source in ipairs(sources) do
		if allowed[source.kind] then
			if not media.forwarded[source.ssrc] then summary.added[#summary.added + 1] = source.ssrc; end
			media.forwarded[source.ssrc] = source;
			media.withheld[source.ssrc] = nil;
			summary.kept = summary.kept + 1;
		else
			media.withheld[source.ssrc] = source;
			media.forwarded[source.ssrc] = nil;
			if removed == none then removed, summary.kinds = {}, {}; end
			removed[source.ssrc] = true;
			summary.withheld = summary.withheld + 1;
			summary.kinds[source.kind] = true;
		end
	end
	local dropped = summary.withheld > 0;
	local withheld = media.withheld;
	local any_withheld = next(withheld) ~= nil;
	for _, group in ipairs(groups) do
		local forwarded = true;
		if any_withheld then
			for _, ssrc in ipairs(group.ssrcs) do
				if removed[ssrc] or withheld[ssrc] then forwarded = false; end
			end
		end
		remember_group(media, group, forwarded);
		if not forwarded then dropped = true; end
	end
	-- Everything forwarded (the common case): the request goes on as the participant sent it.
	if not dropped then return summary; end
	-- Out go the withheld sources, and every group naming one (as decided above).
	local function keep(tag)
		local ns = tag.attr.xmlns or "";
		if ns ~= xmlns_ssma then return tag; end
		if tag.name == "source" and removed[ssrc_of(tag) or ""] then return nil; end
		if tag.name == "ssrc-group" then
			for _, member in ipairs(tag.tags) do
				local ssrc = ssrc_of(member) or tostring(member.attr.ssrc);
				if removed[ssrc] or media.withheld[ssrc] then return nil; end
			end
		end
		return tag;
	end
	for _, description in each_description(jingle) do
		description:maptags(keep);
	end
	return summary;
end

-- jicofo refused a participant's request: the sources it added are not forwarded after all (and the
-- groups naming them are not either). Withheld sources of that request stay withheld.
local function forget_added(media, ssrcs)
	local refused = {};
	for _, ssrc in ipairs(ssrcs) do
		media.forwarded[ssrc] = nil;
		refused[ssrc] = true;
	end
	for _, group in ipairs(groups_naming(media, refused)) do group.forwarded = false; end
end

-- True when a <jingle> still carries at least one <source> in a description.
local function has_sources(jingle)
	for _, description in each_description(jingle) do
		if each_child(description, "source", xmlns_ssma)() then return true; end
	end
	return false;
end

-- A participant's own source-remove: sources jicofo never saw (withheld) are dropped here, with the
-- groups that name them, and forgotten; sources jicofo knows stay in the request and are forgotten as
-- forwarded. The groups naming a removed source are forgotten too (jicofo drops them:
-- ValidatingConferenceSourceMap.tryToRemove). Returns whether sources remain for jicofo (1 or 0) and the
-- forwarded sources removed (to restore should jicofo refuse), or nil and the reason when an SSRC is
-- unknown.
local function strip_removal(jingle, media, sources, groups)
	for _, source in ipairs(sources) do
		if not media.withheld[source.ssrc] and not media.forwarded[source.ssrc] then
			-- jicofo would refuse the whole request for it (SourceDoesNotExist); so does the module,
			-- before anything changes.
			-- (jicofo's own wording, so a client sees the same answer either way)
			return nil, ("Source does not exist or is not owned by endpoint (ssrc=%s)."):format(source.ssrc);
		end
	end
	local local_only, removed, named = {}, {}, {};
	for _, source in ipairs(sources) do
		if media.withheld[source.ssrc] then
			local_only[source.ssrc] = true;
			media.withheld[source.ssrc] = nil;
		else
			removed[#removed + 1] = media.forwarded[source.ssrc];
			media.forwarded[source.ssrc] = nil;
		end
		named[source.ssrc] = true;
	end
	for _, group in ipairs(groups_naming(media, named)) do forget_group(media, group); end
	for _, group in ipairs(groups) do
		local known = media.group_by_key[group_key(group)];
		if known then forget_group(media, known); end
	end
	if next(local_only) == nil then return 1, removed; end
	for _, description in each_description(jingle) do
		description:maptags(function (tag)
			local ns = tag.attr.xmlns or description.attr.xmlns;
			if ns ~= xmlns_ssma then return tag; end
			if tag.name == "source" and local_only[ssrc_of(tag) or ""] then return nil; end
			if tag.name == "ssrc-group" then
				for member in each_child(tag, "source", xmlns_ssma) do
					if local_only[ssrc_of(member) or ""] then return nil; end
				end
			end
			return tag;
		end);
	end
	return has_sources(jingle) and 1 or 0, removed;
end

-- jicofo refused a participant's source-remove: it still has those sources.
local function restore_removed(media, removed)
	for _, source in ipairs(removed) do
		media.forwarded[source.ssrc] = source;
	end
end

--- Granting and revoking -----------------------------------------------------------------------------

-- Moves sources between withheld and forwarded after a decision. Returns two batches,
-- { sources = {...}, groups = {...} }: `add` (newly allowed, for a source-add to jicofo) and `remove`
-- (newly refused, for a source-remove). Groups travel with their sources: a group is added once all its
-- members are forwarded, and removed when any member stops being forwarded.
local function ssrc_order(a, b) return tonumber(a.ssrc) < tonumber(b.ssrc); end
local function arrival_order(a, b) return a.seq < b.seq; end

local function plan_change(media, allowed)
	local add, remove = { sources = {}; groups = {} }, { sources = {}; groups = {} };
	for ssrc, source in pairs(media.forwarded) do
		if not allowed[source.kind] then
			media.forwarded[ssrc], media.withheld[ssrc] = nil, source;
			remove.sources[#remove.sources + 1] = source;
		end
	end
	for ssrc, source in pairs(media.withheld) do
		if allowed[source.kind] then
			media.withheld[ssrc], media.forwarded[ssrc] = nil, source;
			add.sources[#add.sources + 1] = source;
		end
	end
	for _, group in ipairs(media.groups) do
		local complete = group_members_in(group, media.forwarded);
		if group.forwarded and not complete then
			group.forwarded = false;
			remove.groups[#remove.groups + 1] = group;
		elseif not group.forwarded and complete then
			group.forwarded = true;
			add.groups[#add.groups + 1] = group;
		end
	end
	table.sort(add.sources, ssrc_order);
	table.sort(remove.sources, ssrc_order);
	table.sort(add.groups, arrival_order);
	table.sort(remove.groups, arrival_order);
	return add, remove;
end

-- jicofo refused an injected source-add: its sources go back to withheld (jicofo does not have them).
local function undo_add(media, batch)
	for _, source in ipairs(batch.sources) do
		if media.forwarded[source.ssrc] == source then
			media.forwarded[source.ssrc], media.withheld[source.ssrc] = nil, source;
		end
	end
	for _, group in ipairs(batch.groups) do group.forwarded = false; end
end

local function is_empty(batch)
	return #batch.sources == 0 and #batch.groups == 0;
end

--- Building what the module sends --------------------------------------------------------------------

-- An element for a stanza the module sends. Its name is a constant here and each attribute value a
-- string the XML parser produced (an attribute of a participant's or jicofo's stanza) or the module
-- made (canonical SSRCs, numbered ids, JIDs Prosody prepped), so util.stanza's checks of every name
-- and value, and the `last_add` table of its builder, are left out: a revoke or a grant for hundreds
-- of occupants builds thousands of elements in one turn of Prosody's loop, and Prosody 0.12's
-- collector charges every byte allocated there again (CHANGELOG, issue 13 point 3).
local stanza_mt = st.stanza_mt;

local function element(name, attr)
	return setmetatable({ name = name; attr = attr; tags = {} }, stanza_mt);
end

-- Appends `child` (an element) to `parent`; returns the child.
local function append(parent, child)
	local tags = parent.tags;
	tags[#tags + 1] = child;
	parent[#parent + 1] = child;
	return child;
end

-- A source as the participant signalled it: <source ssrc name videoType><parameter name value/>;
-- with `ssrc_only`, <source ssrc/> (enough for a source-remove: jicofo removes by SSRC and tells the
-- others the source as it holds it, ValidatingConferenceSourceMap.tryToRemove).
local function source_element(source, ssrc_only)
	if ssrc_only then
		return element("source", { xmlns = xmlns_ssma; ssrc = source.ssrc });
	end
	local tag = element("source", {
		xmlns = xmlns_ssma; ssrc = source.ssrc; name = source.name; videoType = source.video_type;
	});
	local parameters = source.parameters;
	if parameters then
		for name, value in parameters:gmatch("(%Z*)%z(%Z*)%z") do
			append(tag, element("parameter", { name = name; value = value }));
		end
	end
	return tag;
end

-- A group as the participant signalled it: <ssrc-group semantics><source ssrc/>.
local function group_element(group)
	local tag = element("ssrc-group", { xmlns = xmlns_ssma; semantics = group.semantics });
	for _, ssrc in ipairs(group.ssrcs) do
		append(tag, element("source", { ssrc = ssrc }));
	end
	return tag;
end

-- The media read_sources keeps, in the order their contents go out.
local media_order = { "audio", "video" };

-- The description of `media` in `jingle` (made by jingle_for), or nil.
local function description_of(jingle, media)
	for _, content in ipairs(jingle.tags) do
		local description = content.tags[1];
		if description.attr.media == media then return description; end
	end
	return nil;
end

-- The content name of the first source or group of `media` in `batch`, or nil.
local function content_name_of(batch, media)
	for _, source in ipairs(batch.sources) do
		if source.media == media then return source.content; end
	end
	for _, group in ipairs(batch.groups) do
		if group.media == media then return group.content; end
	end
	return nil;
end

-- <jingle action sid> with one <content><description> per media (audio first), holding the batch's
-- sources and groups as the participant sent them (names, msid and videoType intact), or the sources'
-- SSRCs alone (`ssrc_only`, for a source-remove).
local function jingle_for(action, sid, batch, ssrc_only)
	local jingle = element("jingle", { xmlns = xmlns_jingle; action = action; sid = sid });
	for _, media in ipairs(media_order) do
		local content_name = content_name_of(batch, media);
		if content_name then
			append(append(jingle, element("content", { name = content_name })),
				element("description", { xmlns = xmlns_rtp; media = media }));
		end
	end
	for _, source in ipairs(batch.sources) do
		append(description_of(jingle, source.media), source_element(source, ssrc_only));
	end
	for _, group in ipairs(batch.groups) do
		append(description_of(jingle, group.media), group_element(group));
	end
	return jingle;
end

-- <iq type='set'> from `from` to `to` (id set by the sender) holding `payload`.
local function iq_set(from, to, payload)
	local iq = element("iq", { type = "set"; from = from; to = to; id = "" });
	append(iq, payload);
	return iq;
end

-- The force-mute the bridge must apply for these permissions: audio when audio is refused, video
-- when both camera and screen are refused (JVB mutes all video of an endpoint or none: VideoMuteNode).
local function force_mute_for(allowed)
	return { audio = not allowed.audio; video = not allowed.video and not allowed.screen };
end

local function force_mute_tag(mute)
	return st.stanza("force-mute", {
		xmlns = xmlns_colibri2;
		audio = mute.audio and "true" or nil;
		video = mute.video and "true" or nil;
	});
end

-- Reads <force-mute audio video/> (absent attributes are false, as in jitsi-xmpp-extensions ForceMute).
local function read_force_mute(tag)
	return { audio = tag.attr.audio == "true"; video = tag.attr.video == "true" };
end

-- Sets an endpoint's <force-mute> to `mute` (replacing any).
local function set_force_mute(endpoint, mute)
	endpoint:remove_children("force-mute", xmlns_colibri2);
	if endpoint.attr.xmlns == nil then
		-- Built without a namespace of its own: the child inherits the parent's.
		local tag = force_mute_tag(mute);
		tag.attr.xmlns = nil;
		endpoint:add_child(tag);
	else
		endpoint:add_child(force_mute_tag(mute));
	end
end

-- The mute IQ jicofo sends a participant (jitsi-xmpp-extensions MuteIq; lib-jitsi-meet ChatRoom.ts acts
-- on it only when `from` is the focus occupant JID, and never answers it).
local function mute_iq(kind, id, focus_occupant, to)
	local iq = element("iq", { type = "set"; id = id; from = focus_occupant; to = to });
	append(iq, element("mute", { xmlns = xmlns_mute[kind]; actor = focus_occupant }))[1] = "true";
	return iq;
end

-- The kind a participant's self-unmute is about, or nil: lib-jitsi-meet, muted by the focus, tells
-- the focus occupant when the person unmutes again (JitsiConference _fireMuteChangeEvent,
-- ChatRoom.muteParticipant: <iq type='set'><mute xmlns='http://jitsi.org/jitmeet/audio|video|desktop'
-- jid='<its own occupant JID>'>false</mute></iq>). `occupant_jid` is the sender's occupant JID.
local mute_kinds = {};
for kind, namespace in pairs(xmlns_mute) do mute_kinds[namespace] = kind; end

local function self_unmute_kind(stanza, occupant_jid)
	local mute = stanza.tags[1];
	if #stanza.tags ~= 1 or mute.name ~= "mute" then return nil; end
	local kind = mute_kinds[mute.attr.xmlns];
	if not kind or mute.attr.jid ~= occupant_jid or mute:get_text() ~= "false" then return nil; end
	return kind;
end

return {
	xmlns_jingle = xmlns_jingle;
	xmlns_colibri2 = xmlns_colibri2;
	adding_actions = adding_actions;
	removing_actions = removing_actions;
	jingle_of = jingle_of;
	check_shape = check_shape;
	check_iq = check_iq;
	read_sources = read_sources;
	reclassify = reclassify;
	sends_only_refused_screen = sends_only_refused_screen;
	unify_kinds = unify_kinds;
	new_media = new_media;
	reset_session = reset_session;
	check_sources = check_sources;
	check_groups = check_groups;
	default_max_ssrcs = default_max_ssrcs;
	default_max_groups = default_max_groups;
	withhold = withhold;
	has_sources = has_sources;
	forget_added = forget_added;
	strip_removal = strip_removal;
	restore_removed = restore_removed;
	plan_change = plan_change;
	undo_add = undo_add;
	is_empty = is_empty;
	jingle_for = jingle_for;
	iq_set = iq_set;
	force_mute_for = force_mute_for;
	read_force_mute = read_force_mute;
	set_force_mute = set_force_mute;
	force_mute_tag = force_mute_tag;
	mute_iq = mute_iq;
	self_unmute_kind = self_unmute_kind;
	count = count;
};
