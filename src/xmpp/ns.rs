//! Every XML namespace podium reads or writes, in one place.

/// podium's own protocol between `mod_podium` and the component (see `docs/protocol.md`).
pub const PODIUM: &str = "urn:podium:0";

/// The marker podium's stream guard leaves where it cut an element nested too deep
/// ([`crate::xmpp::depth`]); never sent by the module, never written by podium.
pub const PODIUM_ELIDED: &str = "urn:podium:0:elided";

/// RFC 6120 client namespace: the namespace of stanzas embedded in podium payloads (the forwarded MUC
/// presence), as Prosody serialises them.
pub const JABBER_CLIENT: &str = "jabber:client";

/// XEP-0114: the namespace of stanzas on the component stream.
pub const COMPONENT_ACCEPT: &str = "jabber:component:accept";

/// XEP-0045: the `<x/>` a MUC service adds to occupant presence, with role and affiliation.
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// XEP-0172: user nickname, which lib-jitsi-meet puts in presence as the display name.
pub const NICK: &str = "http://jabber.org/protocol/nick";

/// XEP-0199: XMPP ping, used as keepalive on an idle component link.
pub const PING: &str = "urn:xmpp:ping";

/// XEP-0030: service discovery, answered for the component itself.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// An attribute name for minidom's element builder, which takes checked XML names.
///
/// Only called with literal names of this crate, so the check cannot fail.
pub(crate) fn attr(name: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).expect("attribute names in podium are valid XML names")
}
