//! The link to Prosody: an XEP-0114 component stream that stays up.
//!
//! tokio-xmpp's `Component` stream ends on a read timeout and on any stanza it cannot parse, so podium
//! logs in on tokio-xmpp's lower-level `xmlstream` API instead ([`stream`]) and owns the connection loop
//! ([`link`]): keepalive pings on silence, unparsable stanzas logged and bounced, and reconnection with
//! capped exponential backoff whenever the stream is really lost. Everything read passes a nesting bound
//! first ([`depth`]), so no stanza can overflow the stack when it becomes an element tree.

pub mod depth;
pub mod link;
pub mod ns;
pub mod stream;

pub use link::{Link, LinkEvent, Outbound};
