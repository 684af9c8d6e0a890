-- module_view.lua: what mod_podium does with a participant's Jingle to the focus, for the differential
-- test (tests/jingle_differential.rs), run as `lua5.4 module_view.lua <prosody-plugins dir>`.
--
-- Reads frames from stdin, each a header line "<nick> <allowed> <length>" (allowed: kinds joined by
-- ',' or '-' for none) followed by <length> bytes of one <iq> as a client sends it, and prints one JSON
-- line per frame:
--   {"refused":"<who>: <reason>"}        Prosody or the module stops it: nothing reaches jicofo
--   {"forwarded":"<iq…>","action":"…","sources":[{"ssrc","media","name","videoType"}],
--    "groups":[{"semantics","media","ssrcs"}]}
--                                         what reaches jicofo (serialised as Prosody sends it), and
--                                         what the module now believes jicofo took from it
-- It runs what a stanza meets on its way, with Prosody's own libraries and the module's own pure part
-- (podium_jingle.lib.lua):
--   * Prosody's c2s stream parser (util.xmppstream, a new stream per stanza);
--   * core/stanza_router.lua `core_process_stanza`: stanzas in another namespace than jabber:client are
--     not routed; an iq needs a valid type and an id, and a get/set exactly one child;
--   * mod_podium.lua `on_muc_iq` and `to_focus` for a governed participant (fresh state, no other
--     occupant): only type='set' with a <jingle xmlns='urn:xmpp:jingle:1'> (jingle_of) is looked at;
--     source actions go through check_shape, read_sources, unify_kinds, check_sources and withhold
--     (adding) or strip_removal (removing); every other action passes unchanged. An error inside the
--     module refuses a source request, as the module's pcall does.
-- Only the functions' names and arguments are assumed, so a rewrite of their insides is tested as is.

local plugins = arg[1] or "prosody-plugins";
package.path = plugins .. "/?.lua;" .. plugins .. "/?.lib.lua;/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local xmppstream = require "util.xmppstream";
local jingle = dofile(plugins .. "/podium_jingle.lib.lua");

local stream_header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
	.. " to='meet.example' version='1.0'>";
local iq_types = { get = true; set = true; result = true; error = true };

--- JSON (strings, arrays, objects with ordered keys) -------------------------------------------------

local function json_string(text)
	return '"' .. text:gsub('[%c"\\]', function (c)
		if c == '"' or c == "\\" then return "\\" .. c; end
		return ("\\u%04x"):format(c:byte());
	end) .. '"';
end

local function json_value(value)
	if value == nil then return "null"; end
	if type(value) == "string" then return json_string(value); end
	if value.keys then
		local parts = {};
		for _, key in ipairs(value.keys) do
			parts[#parts + 1] = json_string(key) .. ":" .. json_value(value.values[key]);
		end
		return "{" .. table.concat(parts, ",") .. "}";
	end
	local parts = {};
	for i = 1, value.n or #value do parts[#parts + 1] = json_value(value[i]); end
	return "[" .. table.concat(parts, ",") .. "]";
end

local function object(...)
	local keys, values = {}, {};
	local args = table.pack(...);
	for i = 1, args.n, 2 do
		keys[#keys + 1] = args[i];
		values[args[i]] = args[i + 1];
	end
	return { keys = keys; values = values };
end

--- Prosody's side --------------------------------------------------------------------------------------

-- Parses one stanza as Prosody's c2s stream does; returns the stanza or nil and the reason.
local function parse_as_c2s(xml)
	local stanza, problem;
	local session = { notopen = true };
	local stream = xmppstream.new(session, {
		stream_ns = "http://etherx.jabber.org/streams";
		default_ns = "jabber:client";
		streamopened = function (opened) opened.notopen = nil; end;
		handlestanza = function (_, parsed) stanza = stanza and stanza or parsed; end;
		error = function (_, kind, detail) problem = problem or (tostring(kind) .. " " .. tostring(detail)); end;
	});
	local ok, err = stream:feed(stream_header);
	if ok then ok, err = stream:feed(xml); end
	if not ok then return nil, "parse error: " .. tostring(err); end
	if problem then return nil, problem; end
	if not stanza then return nil, "no complete stanza"; end
	return stanza;
end

-- core_process_stanza's checks of a c2s stanza; nil when it is routed on.
local function router_refusal(stanza)
	if stanza.attr.xmlns ~= nil then return "not routed: top-level namespace " .. stanza.attr.xmlns; end
	if stanza.name ~= "iq" then return "not an iq"; end
	local st_type = stanza.attr.type;
	if not iq_types[st_type] then return "Invalid IQ type"; end
	if not stanza.attr.id then return "Missing required 'id' attribute"; end
	if (st_type == "set" or st_type == "get") and #stanza.tags ~= 1 then
		return "Incorrect number of children for IQ stanza";
	end
end

--- The module's side -----------------------------------------------------------------------------------

local function view_of_sources(list)
	local out = {};
	for _, source in ipairs(list) do
		out[#out + 1] = object("ssrc", source.ssrc, "media", source.media, "name", source.name,
			"videoType", source.video_type);
	end
	return out;
end

local function view_of_groups(list)
	local out = {};
	for _, group in ipairs(list) do
		local ssrcs = {};
		for i, ssrc in ipairs(group.ssrcs) do ssrcs[i] = ssrc; end
		out[#out + 1] = object("semantics", group.semantics, "media", group.media, "ssrcs", ssrcs);
	end
	return out;
end

local function sorted_values(map)
	local list = {};
	for _, value in pairs(map) do list[#list + 1] = value; end
	table.sort(list, function (a, b) return tonumber(a.ssrc) < tonumber(b.ssrc); end);
	return list;
end

-- to_focus for an adding action: returns the refusal, or the sources and groups jicofo now holds.
local function add(payload, nick, allowed)
	local sources, groups = jingle.read_sources(payload, {}, nick);
	if not sources then return groups; end
	local media = jingle.new_media();
	if jingle.unify_kinds then jingle.unify_kinds(sources, groups, function () end); end
	if jingle.check_sources then
		local reason = jingle.check_sources(sources, nick, function () end, 0);
		if reason then return reason; end
	end
	local summary = jingle.withhold(payload, media, sources, groups, allowed);
	local action = payload.attr.action;
	if summary.withheld > 0 and (action == "source-add" or action == "addsource") and not jingle.has_sources(payload) then
		return "answered by the module (every source withheld)";
	end
	local forwarded_groups = {};
	for _, group in ipairs(media.groups) do
		if group.forwarded then forwarded_groups[#forwarded_groups + 1] = group; end
	end
	return nil, sorted_values(media.forwarded), forwarded_groups;
end

-- to_focus for a removing action, every source named being one jicofo holds: returns the refusal, or
-- what the module believes jicofo removes.
local function remove(payload, nick)
	local sources, groups = jingle.read_sources(payload, {}, nick);
	if not sources then return groups; end
	if #sources == 0 then return nil, {}, groups; end
	-- jicofo holds them: as the module records a request it forwarded whole.
	local media = jingle.new_media();
	jingle.withhold(payload, media, sources, groups, { audio = true; video = true; screen = true });
	local remaining, removed = jingle.strip_removal(payload, media, sources, groups);
	if not remaining then return removed; end
	return nil, removed, groups;
end

-- Returns the refusal, or the payload's action and what jicofo holds (adding) or loses (removing).
local function module_side(stanza, nick, allowed)
	if stanza.attr.type ~= "set" then return nil, nil, {}, {}; end
	local payload = jingle.jingle_of(stanza);
	if not payload then return nil, nil, {}, {}; end
	local action = payload.attr.action;
	local adding, removing = jingle.adding_actions[action], jingle.removing_actions[action];
	if not adding and not removing then return nil, action, {}, {}; end
	local problem = jingle.check_shape(payload);
	if problem then return problem; end
	local refusal, sources, groups;
	if adding then
		refusal, sources, groups = add(payload, nick, allowed);
	else
		refusal, sources, groups = remove(payload, nick);
	end
	if refusal then return refusal; end
	return nil, action, sources, groups;
end

local function handle(xml, nick, allowed)
	local stanza, problem = parse_as_c2s(xml);
	if not stanza then return object("refused", "prosody: " .. problem); end
	local refusal = router_refusal(stanza);
	if refusal then return object("refused", "prosody: " .. refusal); end
	local ok, reason, action, sources, groups = pcall(module_side, stanza, nick, allowed);
	if not ok then return object("refused", "module error: " .. tostring(reason)); end
	if reason then return object("refused", "module: " .. reason); end
	return object("forwarded", tostring(stanza), "action", action,
		"sources", view_of_sources(sources), "groups", view_of_groups(groups));
end

local function parse_allowed(text)
	local allowed = {};
	if text ~= "-" then
		for kind in text:gmatch("[^,]+") do allowed[kind] = true; end
	end
	return allowed;
end

local input, output = io.stdin, io.stdout;
while true do
	local header = input:read("l");
	if not header then break; end
	local nick, allowed_text, length = header:match("^(%S+) (%S+) (%d+)$");
	if not nick then error("bad frame header: " .. header); end
	local xml = input:read(tonumber(length)) or "";
	if #xml ~= tonumber(length) then error("input ends inside a stanza"); end
	output:write(json_value(handle(xml, nick, parse_allowed(allowed_text))), "\n");
end
output:flush();
