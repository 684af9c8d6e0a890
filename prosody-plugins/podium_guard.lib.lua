-- podium_guard.lib.lua: how a client and jicofo would read an IQ, for the guards that keep Jingle on
-- the governed path (mod_podium on the client hosts, mod_podium_visitor on visitor Prosodys). Pure: no
-- hooks, no sending; tested with busted (spec/podium_guard_spec.lua).
--
-- Facts it rests on:
--   * lib-jitsi-meet (strophe.jingle.js `init`, `onJingle`) takes an IQ set as Jingle when any direct
--     child carries xmlns='urn:xmpp:jingle:1' (Strophe's handler namespace match), then reads the action
--     and sid from the first descendant named `jingle` at any depth in any namespace (`$(iq).find('jingle')`)
--     and the offer from a direct child named `jingle` (`find('>jingle')`). An IQ whose Jingle is not
--     the one direct <jingle xmlns='urn:xmpp:jingle:1'> a Prosody module looks for is still a Jingle
--     request to the browser: a disguise.
--   * jicofo reads a participant's sources from every <source> and <ssrc-group> its lenient parser
--     finds (jitsi-xmpp-extensions' DefaultPacketExtensionProvider; jicofo EndpointSourceSet.fromJingle),
--     so "carries sources" means an element with that local name anywhere, in any namespace.

local xmlns_jingle = "urn:xmpp:jingle:1";

-- The actions that add or remove sources at jicofo (it takes addsource/removesource as aliases).
local source_actions = {
	["source-add"] = true; ["source-remove"] = true; ["addsource"] = true; ["removesource"] = true;
};

-- Calls visit(tag) for every element below `root` (not root itself), without recursion: a stanza
-- may be nested thousands deep within Prosody's size limit. Stops early when visit returns true.
local function any_descendant(root, visit)
	local stack, depth = { root }, 1;
	while depth > 0 do
		local tag = stack[depth];
		stack[depth] = nil;
		depth = depth - 1;
		for _, child in ipairs(tag.tags) do
			if visit(child) then return true; end
			depth = depth + 1;
			stack[depth] = child;
		end
	end
	return false;
end

-- How many elements below `root` are named `name`, counting up to `enough` (then it stops). The walk
-- of every participant's Jingle on its client host: no closure, and the stack it uses is kept for the
-- next walk (empty between walks), so a walk builds nothing once the stack has grown.
local walk_stack = {};

-- A stanza nested deep leaves a big stack: it is not kept past such a walk.
local kept_stack_depth = 256;

local function count_named(root, name, enough)
	local stack, depth, deepest, count = walk_stack, 1, 1, 0;
	stack[1] = root;
	while depth > 0 and count < enough do
		local tag = stack[depth];
		stack[depth] = nil;
		depth = depth - 1;
		local tags = tag.tags;
		for i = 1, #tags do
			local child = tags[i];
			if child.name == name then count = count + 1; end
			depth = depth + 1;
			stack[depth] = child;
		end
		if depth > deepest then deepest = depth; end
	end
	if deepest > kept_stack_depth then
		walk_stack = {};
	else
		for i = 1, depth do stack[i] = nil; end
	end
	return count;
end

-- Whether Strophe would hand IQ `iq` to lib-jitsi-meet's Jingle handler at all: a direct child in the
-- Jingle namespace. Cheap (no walk); jingle_shape says how it would read it.
local function marks_jingle(iq)
	for _, child in ipairs(iq.tags) do
		if child.attr.xmlns == xmlns_jingle then return true; end
	end
	return false;
end

-- How a client reads IQ set `iq`: nil when it is not Jingle to lib-jitsi-meet; "jingle", payload for
-- the one shape both the client and a module agree on (a single direct <jingle> in the Jingle
-- namespace, and no other element named jingle or child in that namespace); "disguised" otherwise.
local function jingle_shape(iq)
	local marked = 0;
	for _, child in ipairs(iq.tags) do
		if child.attr.xmlns == xmlns_jingle then marked = marked + 1; end
	end
	-- Without a child in the Jingle namespace Strophe never calls onJingle, whatever lies deeper; so
	-- only Jingle requests pay for the walk below.
	if marked == 0 then return nil; end
	if marked > 1 then return "disguised"; end
	local payload = iq:get_child("jingle", xmlns_jingle);
	if not (payload and payload.attr.xmlns == xmlns_jingle) or count_named(iq, "jingle", 2) ~= 1 then
		return "disguised";
	end
	return "jingle", payload;
end

-- Whether jicofo could read a source or a source group anywhere in `iq`.
local function names_a_source(iq)
	return any_descendant(iq, function (tag)
		return tag.name == "source" or tag.name == "ssrc-group";
	end);
end

-- Why jicofo must not get IQ set `iq` from a visitor node (nil: it may): visitors never send media,
-- so no source request, and no element jicofo could take for a source, in any Jingle action.
local function visitor_refusal(iq)
	local action_named;
	any_descendant(iq, function (tag)
		local action = tag.name == "jingle" and tag.attr.action;
		if action and source_actions[action:lower()] then
			action_named = action;
			return true;
		end
	end);
	if action_named then
		return ("%s is not accepted from a visitor node"):format(action_named);
	end
	if names_a_source(iq) then
		return "visitors send no sources";
	end
	return nil;
end

return {
	xmlns_jingle = xmlns_jingle;
	source_actions = source_actions;
	marks_jingle = marks_jingle;
	jingle_shape = jingle_shape;
	names_a_source = names_a_source;
	visitor_refusal = visitor_refusal;
};
