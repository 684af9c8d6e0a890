//! `<applied/>`: the module's answer to [`SetPermissions`](super::SetPermissions).
//!
//! `count` is how many decisions the module now holds; each `<gone/>` names an occupant JID it skipped
//! because that occupant left, or the nick now belongs to another real JID.
//!
//! ```xml
//! <applied xmlns='urn:podium:0' count='1'><gone jid='room1@conference.meet.example/77aa0b12'/></applied>
//! ```

use minidom::Element;
use xmpp_parsers::jid::FullJid;

use super::{PayloadError, expect, required_parsed};
use crate::xmpp::ns;

/// What the module did with a batch of decisions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Decisions now held.
    pub count: u32,
    /// Occupant JIDs the module skipped: gone, or taken by another real JID.
    pub gone: Vec<FullJid>,
}

impl TryFrom<Element> for Applied {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "applied")?;
        let mut gone = Vec::new();
        for child in element.children() {
            if !child.is("gone", ns::PODIUM) {
                return Err(PayloadError::invalid(format!(
                    "Unknown child '{}' in applied element.",
                    child.name()
                )));
            }
            gone.push(required_parsed(child, "jid")?);
        }
        Ok(Applied {
            count: required_parsed(&element, "count")?,
            gone,
        })
    }
}

impl From<Applied> for Element {
    fn from(applied: Applied) -> Element {
        Element::builder("applied", ns::PODIUM)
            .attr(ns::attr("count"), applied.count.to_string())
            .append_all(applied.gone.into_iter().map(|jid| {
                Element::builder("gone", ns::PODIUM)
                    .attr(ns::attr("jid"), jid.to_string())
                    .build()
            }))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_simple() {
        let el: Element = "<applied xmlns='urn:podium:0' count='2'/>".parse().unwrap();
        let applied = Applied::try_from(el).unwrap();
        assert_eq!(applied.count, 2);
        assert!(applied.gone.is_empty());
    }

    #[test]
    fn test_serialise() {
        let applied = Applied {
            count: 0,
            gone: vec!["r@conference.localhost/zed".parse().unwrap()],
        };
        assert_eq!(
            Applied::try_from(Element::from(applied.clone())).unwrap(),
            applied
        );
    }

    #[test]
    fn test_invalid_count() {
        let el: Element = "<applied xmlns='urn:podium:0' count='-1'/>"
            .parse()
            .unwrap();
        assert_eq!(
            Applied::try_from(el).unwrap_err().to_string(),
            "Invalid 'count' on applied element: invalid digit found in string."
        );
    }
}
