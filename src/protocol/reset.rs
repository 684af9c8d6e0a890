//! `<reset/>`: the module (re)loaded and holds nothing yet.
//!
//! Sent by `mod_podium` in a `<message/>` when it loads, for instance when Prosody reloads mod_muc and
//! its dependants while podium's link stays up. podium answers by resyncing, exactly as after a
//! reconnect, so no decision is lost with the module's memory.
//!
//! ```xml
//! <message from='conference.meet.example' to='podium.meet.example'><reset xmlns='urn:podium:0'/></message>
//! ```

use minidom::Element;

use super::{PayloadError, expect, only_children};
use crate::xmpp::ns;

/// The module started afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset;

impl TryFrom<Element> for Reset {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "reset")?;
        only_children(&element, &[])?;
        Ok(Reset)
    }
}

impl From<Reset> for Element {
    fn from(_: Reset) -> Element {
        Element::builder("reset", ns::PODIUM).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_simple() {
        let el: Element = "<reset xmlns='urn:podium:0'/>".parse().unwrap();
        assert_eq!(Reset::try_from(el).unwrap(), Reset);
    }

    #[test]
    fn test_serialise() {
        assert_eq!(Reset::try_from(Element::from(Reset)).unwrap(), Reset);
    }

    #[test]
    fn test_invalid_child() {
        let el: Element = "<reset xmlns='urn:podium:0'><x xmlns='urn:podium:0'/></reset>"
            .parse()
            .unwrap();
        assert_eq!(
            Reset::try_from(el).unwrap_err().to_string(),
            "Unknown child 'x' in reset element."
        );
    }
}
