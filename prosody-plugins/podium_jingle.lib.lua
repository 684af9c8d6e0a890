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

local function jingle_of(iq)
	return iq:get_child("jingle", xmlns_jingle);
end

local function ssrc_of(tag)
	local ssrc = tonumber(tag.attr.ssrc);
	if not ssrc or ssrc < 1 or ssrc > 0xFFFFFFFF or ssrc % 1 ~= 0 then return nil; end
	return ("%d"):format(ssrc);
end

-- The <description> elements of a <jingle>, with their media.
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

-- jicofo (Smack) is lenient where this module must not be blind: its providers match `content` by name
-- in any namespace and at any depth, attach a known element found anywhere below an unknown one, read
-- sources placed directly in <content>, parse `media` and `videoType` case-insensitively, and read a
-- prefixed attribute (p:media) by its local name. So a participant's Jingle must have the one shape
-- lib-jitsi-meet sends, or it is refused: <jingle><content><description media='audio|video'> holding
-- <source>s and <ssrc-group>s of <source ssrc>, nothing source-like anywhere else, no prefixed attributes.
local source_like = {
	content = true; description = true; source = true; ["ssrc-group"] = true; parameter = false;
};

local function ns_of(tag, parent_ns)
	return tag.attr.xmlns or parent_ns;
end

local function prefixed_attribute(tag)
	for key in pairs(tag.attr) do
		if type(key) == "string" and key:find("\1", 1, true) then return key; end
	end
end

-- Walks `tag`'s subtree; `allowed(tag, ns, depth_name)` is not needed: anything source-like below an
-- unexpected place is refused.
local function find_stray(tag, parent_ns)
	for _, child in ipairs(tag.tags) do
		local ns = ns_of(child, parent_ns);
		if prefixed_attribute(child) then
			return ("prefixed attribute on <%s>"):format(child.name);
		end
		-- An empty <content> or <description> carries nothing (BUNDLE's <group><content name/></group>).
		local empty_container = (child.name == "content" or child.name == "description") and #child.tags == 0;
		if source_like[child.name] and not empty_container then
			return ("<%s> in an unexpected place"):format(child.name);
		end
		local stray = find_stray(child, ns);
		if stray then return stray; end
	end
end

-- Checks a <source> (a track source, or a group member when `member`).
local function check_source_tag(source, ns, member)
	if ns ~= xmlns_ssma then return "<source> outside the ssma namespace"; end
	if prefixed_attribute(source) then return "prefixed attribute on <source>"; end
	if not ssrc_of(source) then return ("invalid ssrc %q"):format(tostring(source.attr.ssrc)); end
	local video_type = source.attr.videoType;
	if video_type and video_type ~= "camera" and video_type ~= "desktop" then
		return ("videoType %q is not camera or desktop"):format(video_type);
	end
	if member and #source.tags > 0 then return "a group member has children"; end
	if not member then
		for _, child in ipairs(source.tags) do
			local stray = (source_like[child.name] and ("<%s> inside <source>"):format(child.name))
				or prefixed_attribute(child) and "prefixed attribute" or find_stray(child, ns_of(child, ns));
			if stray then return stray; end
		end
	end
end

-- Returns nil when the participant's <jingle> has the expected shape, else the reason to refuse it.
local function check_shape(jingle)
	local jingle_ns = jingle.attr.xmlns;
	if prefixed_attribute(jingle) then return "prefixed attribute on <jingle>"; end
	for _, content in ipairs(jingle.tags) do
		local content_ns = ns_of(content, jingle_ns);
		if prefixed_attribute(content) then return "prefixed attribute on <content>"; end
		if content.name == "content" then
			if content_ns ~= xmlns_jingle then return "<content> outside the Jingle namespace"; end
			for _, child in ipairs(content.tags) do
				local child_ns = ns_of(child, content_ns);
				if prefixed_attribute(child) then return "prefixed attribute in <content>"; end
				if child.name == "description" then
					if child_ns ~= xmlns_rtp then return "<description> outside the RTP namespace"; end
					local media = child.attr.media;
					for _, item in ipairs(child.tags) do
						local item_ns = ns_of(item, child_ns);
						if item.name == "source" or item.name == "ssrc-group" then
							if media ~= "audio" and media ~= "video" then
								return ("sources under media %q (expected audio or video)"):format(tostring(media));
							end
						end
						if item.name == "source" then
							local problem = check_source_tag(item, item_ns, false);
							if problem then return problem; end
						elseif item.name == "ssrc-group" then
							if item_ns ~= xmlns_ssma then return "<ssrc-group> outside the ssma namespace"; end
							if not item.attr.semantics or item.attr.semantics == "" then
								return "<ssrc-group> without semantics";
							end
							if prefixed_attribute(item) then return "prefixed attribute on <ssrc-group>"; end
							if #item.tags == 0 then return "empty <ssrc-group>"; end
							for _, member in ipairs(item.tags) do
								if member.name ~= "source" then return "<ssrc-group> holds something but sources"; end
								local problem = check_source_tag(member, ns_of(member, item_ns), true);
								if problem then return problem; end
							end
						else
							if prefixed_attribute(item) then return "prefixed attribute in <description>"; end
							local stray = find_stray(item, item_ns);
							if stray then return stray; end
						end
					end
				else
					if source_like[child.name] then
						return ("<%s> directly in <content>"):format(child.name);
					end
					local stray = find_stray(child, child_ns);
					if stray then return stray; end
				end
			end
		else
			if source_like[content.name] then
				return ("<%s> directly in <jingle>"):format(content.name);
			end
			local stray = find_stray(content, content_ns);
			if stray then return stray; end
		end
	end
end

--- Reading sources ----------------------------------------------------------------------------------

-- The kind of a video source: "screen" when its Jingle says videoType='desktop', or when presence
-- declares its track a screenshare (`declared`: name -> "screen"); "video" otherwise. A source without
-- a name (lib-jitsi-meet without source names, which has one video track) is its endpoint's first video
-- track, `<nick>-v0`, the name its presence SourceInfo uses.
local function video_kind(source_el, declared, nick)
	if source_el.attr.videoType == "desktop" then return "screen"; end
	local name = source_el.attr.name or (nick and nick .. "-v0");
	if name and declared and declared[name] == "screen" then return "screen"; end
	return "video";
end

-- Reads every source and group of a <jingle>: returns sources (list of
-- { ssrc, name, media, kind, content, el }) and groups (list of { semantics, ssrcs, media, content, el }),
-- or nil and the reason when a source has no valid SSRC.
-- `declared` maps a source name to "screen" when presence said so (SourceInfo videoType desktop);
-- `nick` is the sender's endpoint id (see video_kind).
local function read_sources(jingle, declared, nick)
	local sources, groups = {}, {};
	for content, description in each_description(jingle) do
		local media = description.attr.media;
		for source in each_child(description, "source", xmlns_ssma) do
			local ssrc = ssrc_of(source);
			if not ssrc then
				return nil, ("invalid ssrc %q"):format(tostring(source.attr.ssrc));
			end
			local kind = media == "video" and video_kind(source, declared, nick) or "audio";
			sources[#sources + 1] = {
				ssrc = ssrc; name = source.attr.name; media = media; kind = kind;
				content = content.attr.name or media; el = st.clone(source);
			};
		end
		for group in each_child(description, "ssrc-group", xmlns_ssma) do
			local ssrcs = {};
			for member in each_child(group, "source", xmlns_ssma) do
				ssrcs[#ssrcs + 1] = ssrc_of(member) or tostring(member.attr.ssrc);
			end
			if not group.attr.semantics then
				return nil, "<ssrc-group> without semantics";
			end
			groups[#groups + 1] = {
				semantics = group.attr.semantics; ssrcs = ssrcs; media = media;
				content = content.attr.name or media; el = st.clone(group);
			};
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
local function reclassify(media, declared, nick)
	local sources = {};
	for _, map in ipairs({ media.forwarded, media.withheld }) do
		for _, source in pairs(map) do
			if source.media == "video" then sources[#sources + 1] = source; end
		end
	end
	local before = {};
	for _, source in ipairs(sources) do
		before[source] = source.kind;
		source.kind = video_kind(source.el, declared, nick);
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
--   groups     list of groups seen, each with .forwarded
local function new_media()
	return { forwarded = {}; withheld = {}; groups = {} };
end

-- A new session starts from nothing: the participant's session-accept lists all its sources again.
-- (The sid is set through the state, which indexes it.)
local function reset_session(media, focus)
	media.focus = focus;
	media.forwarded, media.withheld, media.groups, media.requests = {}, {}, {}, nil;
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

local function group_key(group)
	return group.semantics .. ":" .. table.concat(group.ssrcs, ",");
end

local function remember_group(media, group, forwarded)
	local key = group_key(group);
	for _, known in ipairs(media.groups) do
		if group_key(known) == key then
			known.forwarded = forwarded;
			return;
		end
	end
	group.forwarded = forwarded;
	media.groups[#media.groups + 1] = group;
end

--- Withholding (participant -> focus) ----------------------------------------------------------------

-- jicofo's max-ssrcs-per-user (default 20): it refuses a request that would take an endpoint past it.
local max_ssrcs = 20;

-- Checks a participant's sources before anything is changed. `nick` is its endpoint id; `owner_of(ssrc)`
-- names the occupant that already uses an SSRC in the room (nil if none); `known` is how many SSRCs of
-- this participant the module already has (forwarded and withheld). Returns nil, or the reason the
-- request is refused. Withheld sources count toward jicofo's limit as if forwarded, so every withheld
-- source can be replayed on a grant without jicofo refusing it.
local function check_sources(sources, nick, owner_of, known)
	if (known or 0) + #sources > max_ssrcs then
		-- jicofo's wording (ValidatingConferenceSourceMap), so a client sees the same answer either way.
		return ("SSRC limit (%d) exceeded."):format(max_ssrcs);
	end
	local seen = {};
	local prefix = nick .. "-";
	for _, source in ipairs(sources) do
		local name = source.name;
		if name and (name:sub(1, #prefix) ~= prefix or not name:sub(#prefix + 1):match("^[av]%d+$")) then
			return ("source name %q does not belong to endpoint %q"):format(name, nick);
		end
		local owner = owner_of(source.ssrc);
		if owner and owner ~= nick then
			return ("ssrc %s is already used by another participant"):format(source.ssrc);
		elseif owner then
			-- jicofo refuses a known SSRC too (SsrcAlreadyUsed); refusing it here keeps the module's
			-- account of what jicofo has exact.
			return ("ssrc %s is already signalled"):format(source.ssrc);
		end
		-- A simulcast track lists each SSRC once; the same SSRC twice in one request is a forgery or a bug.
		if seen[source.ssrc] then
			return ("ssrc %s is listed twice"):format(source.ssrc);
		end
		seen[source.ssrc] = true;
	end
end

-- Removes from `jingle` (in place) every source of a kind `allowed` does not include, and every group
-- naming a removed or already withheld SSRC; records both in `media`. Returns a summary
-- { kept = n, withheld = n, kinds = { kind = true } } of this request.
local function withhold(jingle, media, sources, groups, allowed)
	local removed = {};
	local summary = { kept = 0; withheld = 0; kinds = {}; added = {} };
	for _, source in ipairs(sources) do
		if allowed[source.kind] then
			if not media.forwarded[source.ssrc] then summary.added[#summary.added + 1] = source.ssrc; end
			media.forwarded[source.ssrc] = source;
			media.withheld[source.ssrc] = nil;
			summary.kept = summary.kept + 1;
		else
			media.withheld[source.ssrc] = source;
			media.forwarded[source.ssrc] = nil;
			removed[source.ssrc] = true;
			summary.withheld = summary.withheld + 1;
			summary.kinds[source.kind] = true;
		end
	end
	local dropped_groups = {};
	for _, group in ipairs(groups) do
		local forwarded = true;
		for _, ssrc in ipairs(group.ssrcs) do
			if removed[ssrc] or media.withheld[ssrc] then forwarded = false; end
		end
		remember_group(media, group, forwarded);
		if not forwarded then dropped_groups[group_key(group)] = true; end
	end
	for _, description in each_description(jingle) do
		description:maptags(function (tag)
			local ns = tag.attr.xmlns or description.attr.xmlns;
			if ns ~= xmlns_ssma then return tag; end
			if tag.name == "source" and removed[ssrc_of(tag) or ""] then return nil; end
			if tag.name == "ssrc-group" then
				local ssrcs = {};
				for member in each_child(tag, "source", xmlns_ssma) do
					ssrcs[#ssrcs + 1] = ssrc_of(member) or tostring(member.attr.ssrc);
				end
				if dropped_groups[group_key({ semantics = tag.attr.semantics; ssrcs = ssrcs })] then return nil; end
			end
			return tag;
		end);
	end
	return summary;
end

-- jicofo refused a participant's request: the sources it added are not forwarded after all (and the
-- groups naming them are not either). Withheld sources of that request stay withheld.
local function forget_added(media, ssrcs)
	for _, ssrc in ipairs(ssrcs) do media.forwarded[ssrc] = nil; end
	for _, group in ipairs(media.groups) do
		if group.forwarded and not group_members_in(group, media.forwarded) then group.forwarded = false; end
	end
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
-- forwarded. Returns whether sources remain for jicofo (1 or 0) and the forwarded sources removed (to
-- restore should jicofo refuse), or nil and the reason when an SSRC is unknown.
local function strip_removal(jingle, media, sources, groups)
	for _, source in ipairs(sources) do
		if not media.withheld[source.ssrc] and not media.forwarded[source.ssrc] then
			-- jicofo would refuse the whole request for it (SourceDoesNotExist); so does the module,
			-- before anything changes.
			-- (jicofo's own wording, so a client sees the same answer either way)
			return nil, ("Source does not exist or is not owned by endpoint (ssrc=%s)."):format(source.ssrc);
		end
	end
	local local_only, removed = {}, {};
	for _, source in ipairs(sources) do
		if media.withheld[source.ssrc] then
			local_only[source.ssrc] = true;
			media.withheld[source.ssrc] = nil;
		else
			removed[#removed + 1] = media.forwarded[source.ssrc];
			media.forwarded[source.ssrc] = nil;
		end
	end
	local gone = {};
	for _, group in ipairs(groups) do gone[group_key(group)] = group; end
	local kept_groups = {};
	for _, group in ipairs(media.groups) do
		if not gone[group_key(group)] then kept_groups[#kept_groups + 1] = group; end
	end
	media.groups = kept_groups;
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
	local function by_ssrc(a, b) return tonumber(a.ssrc) < tonumber(b.ssrc); end
	table.sort(add.sources, by_ssrc);
	table.sort(remove.sources, by_ssrc);
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

-- <jingle action sid> with one <content><description> per media, holding the batch's elements as the
-- participant sent them (names, msid and videoType intact).
local function jingle_for(action, sid, batch)
	local jingle = st.stanza("jingle", { xmlns = xmlns_jingle; action = action; sid = sid });
	local by_media, order = {}, {};
	local function description_for(media, content_name)
		local entry = by_media[media];
		if not entry then
			entry = { content = content_name; children = {} };
			by_media[media] = entry;
			order[#order + 1] = media;
		end
		return entry.children;
	end
	for _, source in ipairs(batch.sources) do
		local children = description_for(source.media, source.content);
		children[#children + 1] = source.el;
	end
	for _, group in ipairs(batch.groups) do
		local children = description_for(group.media, group.content);
		children[#children + 1] = group.el;
	end
	table.sort(order);
	for _, media in ipairs(order) do
		local entry = by_media[media];
		jingle:tag("content", { name = entry.content })
			:tag("description", { xmlns = xmlns_rtp; media = media });
		for _, child in ipairs(entry.children) do
			jingle:add_child(st.clone(child));
		end
		jingle:up():up();
	end
	return jingle;
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
	return st.iq({ type = "set"; id = id; from = focus_occupant; to = to })
		:tag("mute", { xmlns = xmlns_mute[kind]; actor = focus_occupant }):text("true"):up();
end

return {
	xmlns_jingle = xmlns_jingle;
	xmlns_colibri2 = xmlns_colibri2;
	adding_actions = adding_actions;
	removing_actions = removing_actions;
	jingle_of = jingle_of;
	check_shape = check_shape;
	read_sources = read_sources;
	reclassify = reclassify;
	sends_only_refused_screen = sends_only_refused_screen;
	unify_kinds = unify_kinds;
	new_media = new_media;
	reset_session = reset_session;
	check_sources = check_sources;
	withhold = withhold;
	has_sources = has_sources;
	forget_added = forget_added;
	strip_removal = strip_removal;
	restore_removed = restore_removed;
	plan_change = plan_change;
	undo_add = undo_add;
	is_empty = is_empty;
	jingle_for = jingle_for;
	force_mute_for = force_mute_for;
	read_force_mute = read_force_mute;
	set_force_mute = set_force_mute;
	force_mute_tag = force_mute_tag;
	mute_iq = mute_iq;
	count = count;
};
