-- luacheck configuration for podium's Prosody module (Prosody's own conventions).
std = "lua54"
max_line_length = 150
files["mod_podium.lua"] = {
	read_globals = { "module", "prosody" };
	-- Prosody calls unload before unloading or reloading the module, save and restore around a reload
	globals = { "module.unload", "module.save", "module.restore" };
}
files["mod_podium_visitor.lua"] = {
	read_globals = { "module", "prosody" };
}
files["spec/"] = {
	std = "+busted";
}
