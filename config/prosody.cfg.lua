-- What to add to an existing Jitsi Meet Prosody configuration for podium.
-- (Debian: /etc/prosody/conf.avail/<your domain>.cfg.lua)

-- 1. Where Prosody finds mod_podium. Jitsi already has a plugin_paths line; add podium's directory
--    (the install copies prosody-plugins/ to /usr/share/podium/prosody-plugins/).
plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/", "/usr/share/podium/prosody-plugins/" }

-- 2. On the MUC component Jitsi already has, load the module and name podium's component.
Component "conference.meet.example" "muc"
    -- keep Jitsi's existing modules_enabled entries and add "podium"
    modules_enabled = { "muc_meeting_id"; "muc_domain_mapper"; "podium" }
    podium_component = "podium.meet.example"
    -- jicofo's account, so the focus is recognised by JID, not only by its nick
    podium_focus_jids = { "focus@auth.meet.example" }
    -- what an occupant may send until podium decides (default: nothing)
    podium_default_permissions = { }
    -- accounts or components allowed to read held permissions (monitoring), besides podium
    podium_inspectors = { }
    -- the most occupants in one snapshot page
    podium_snapshot_page = 500
    -- jicofo's bridge MUC (jicofo.conf bridge.brewery-jid): where revoked endpoints are force-muted
    podium_bridge_muc = "jvbbrewery@internal.auth.meet.example"
    -- refuse peer-to-peer calls in rooms where someone may not send everything (they bypass the bridge)
    podium_block_p2p = true
    -- Jitsi's A/V moderation component: a moderator's "Ask to unmute" becomes a podium grant
    -- (podium's rules.approval_minutes); unset: approvals are not watched
    -- podium_av_moderation_component = "avmoderation.meet.example"
    -- the kinds a client is shown as Jitsi's A/V moderation ("raise your hand to unmute"), sent from the
    -- component above; { "audio", "video" } for a jitsi-meet without desktop moderation; { } turns it off
    -- podium_moderation_ui = { "audio", "video", "screen" }
    -- the client VirtualHosts where Jingle to a client must come through a governed MUC or from jicofo
    -- (default: every VirtualHost); list them if this Prosody also serves people who place Jingle calls
    -- podium_client_hosts = { "meet.example"; "auth.meet.example"; "guest.meet.example" }

-- 2b. Optional: Jitsi's breakout-room MUC (jitsi-meet's breakout_rooms_muc), governed too. Breakout rooms
-- follow their main room's rules unless a rule names them; set podium's xmpp.breakout_muc to this host.
-- Component "breakout.meet.example" "muc"
--     modules_enabled = { --[[ Jitsi's existing modules, then: ]] "podium" }
--     podium_component = "podium.meet.example"
--     podium_main_muc = "conference.meet.example"
--     podium_focus_jids = { "focus@auth.meet.example" }
--     podium_bridge_muc = "jvbbrewery@internal.auth.meet.example"

-- 2c. Visitor nodes (Jitsi's separate visitor Prosodys): in each one's own config, global section,
-- load mod_podium_visitor so nothing sent there reaches jicofo with sources, and visitors get Jingle only
-- from jicofo (README "Visitor nodes"):
-- plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/", "/usr/share/podium/prosody-plugins/" }
-- modules_enabled = { --[[ the vnode's existing modules, then: ]] "podium_visitor" }
-- podium_focus_jids = { "focus@auth.meet.example" }

-- 3. podium's component. The secret must equal podium's xmpp.secret (PODIUM_XMPP__SECRET).
Component "podium.meet.example"
    component_secret = "change me: a long random string"
