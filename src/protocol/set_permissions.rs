//! `<permissions/>`: podium's decisions, sent to the module in an `<iq type='set'/>`.
//!
//! Each `<occupant/>` names the occupant JID and the real JID the decision was made for. The module
//! applies a decision only while that occupant JID still belongs to that real JID, so a decision can
//! never land on someone who took the nick after its owner left. Only the configured podium component
//! may send this; anyone else gets `forbidden`.
//!
//! `report-sending` (optional, space-separated kinds, absent for none) names the kinds whose
//! `sending` podium wants in the occupant's reports from now on: the kinds it holds through a cap's
//! slot, whose quiet time makes it idle (`rules.idle_seconds`). The module reports other kinds'
//! mute toggles no more (lib-jitsi-meet resends its presence for each, and podium reads them
//! nowhere else).
//!
//! ```xml
//! <permissions xmlns='urn:podium:0'>
//!   <occupant jid='room1@conference.meet.example/4f2a9c1e' real-jid='alice@meet.example/web-1'
//!             audio='true' video='true' screen='false' report-sending='video'/>
//! </permissions>
//! ```

use minidom::Element;
use xmpp_parsers::jid::{FullJid, Jid};

use super::{PayloadError, expect, read_media_attrs, required_parsed, write_media_attrs};
use crate::media::{Media, MediaSet};
use crate::xmpp::ns;

/// The decision for one occupant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupantPermissions {
    /// The occupant JID, `room@muc/nick`.
    pub jid: FullJid,
    /// The real JID the decision was made for.
    pub real_jid: Jid,
    /// What the occupant may send from now on.
    pub permissions: MediaSet,
    /// The kinds whose `sending` the module reports from now on (`report-sending`).
    pub report_sending: MediaSet,
}

/// A batch of decisions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetPermissions {
    /// One entry per occupant whose permissions change.
    pub occupants: Vec<OccupantPermissions>,
}

impl TryFrom<Element> for SetPermissions {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "permissions")?;
        let mut occupants = Vec::new();
        for child in element.children() {
            if !child.is("occupant", ns::PODIUM) {
                return Err(PayloadError::invalid(format!(
                    "Unknown child '{}' in permissions element.",
                    child.name()
                )));
            }
            occupants.push(OccupantPermissions {
                jid: required_parsed(child, "jid")?,
                real_jid: required_parsed(child, "real-jid")?,
                permissions: read_media_attrs(child)?,
                report_sending: read_report_sending(child)?,
            });
        }
        Ok(SetPermissions { occupants })
    }
}

/// Reads `report-sending`: absent or empty for none, else space-separated kinds.
fn read_report_sending(element: &Element) -> Result<MediaSet, PayloadError> {
    let Some(list) = element.attr("report-sending") else {
        return Ok(MediaSet::NONE);
    };
    list.split(' ')
        .filter(|word| !word.is_empty())
        .map(str::parse::<Media>)
        .collect::<Result<MediaSet, _>>()
        .map_err(|e| {
            PayloadError::invalid(format!(
                "Invalid 'report-sending' on occupant element: {e}."
            ))
        })
}

/// `report-sending`'s text, `None` for the empty set.
fn report_sending_text(set: MediaSet) -> Option<String> {
    (!set.is_empty()).then(|| set.iter().map(Media::as_str).collect::<Vec<_>>().join(" "))
}

impl From<SetPermissions> for Element {
    fn from(set: SetPermissions) -> Element {
        Element::builder("permissions", ns::PODIUM)
            .append_all(set.occupants.into_iter().map(|o| {
                write_media_attrs(Element::builder("occupant", ns::PODIUM), o.permissions)
                    .attr(ns::attr("jid"), o.jid.as_str())
                    .attr(ns::attr("real-jid"), o.real_jid.as_str())
                    .attr(
                        ns::attr("report-sending"),
                        report_sending_text(o.report_sending),
                    )
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
        let el: Element = "<permissions xmlns='urn:podium:0'>\
            <occupant jid='r@conference.localhost/alice' real-jid='alice@localhost/x' \
              audio='true' video='1' screen='false'/></permissions>"
            .parse()
            .unwrap();
        let set = SetPermissions::try_from(el).unwrap();
        assert_eq!(set.occupants.len(), 1);
        assert_eq!(set.occupants[0].jid.resource().as_str(), "alice");
        assert_eq!(
            set.occupants[0].permissions,
            MediaSet::only(Media::Audio).with(Media::Video)
        );
    }

    #[test]
    fn test_serialise() {
        let set = SetPermissions {
            occupants: vec![OccupantPermissions {
                jid: "r@conference.localhost/bob".parse().unwrap(),
                real_jid: "bob@localhost/y".parse().unwrap(),
                permissions: MediaSet::only(Media::Screen),
                report_sending: MediaSet::NONE,
            }],
        };
        let element = Element::from(set.clone());
        assert_eq!(
            element.children().next().unwrap().attr("report-sending"),
            None
        );
        assert_eq!(SetPermissions::try_from(element).unwrap(), set);
    }

    #[test]
    fn test_serialise_report_sending() {
        let set = SetPermissions {
            occupants: vec![OccupantPermissions {
                jid: "r@conference.localhost/bob".parse().unwrap(),
                real_jid: "bob@localhost/y".parse().unwrap(),
                permissions: MediaSet::ALL,
                report_sending: MediaSet::only(Media::Audio).with(Media::Screen),
            }],
        };
        let element = Element::from(set.clone());
        assert_eq!(
            element.children().next().unwrap().attr("report-sending"),
            Some("audio screen")
        );
        assert_eq!(SetPermissions::try_from(element).unwrap(), set);
    }

    #[test]
    fn test_invalid_report_sending() {
        let el: Element = "<permissions xmlns='urn:podium:0'>\
            <occupant jid='r@conference.localhost/a' real-jid='a@localhost/x' audio='true' \
              video='true' screen='true' report-sending='video smell'/></permissions>"
            .parse()
            .unwrap();
        assert_eq!(
            SetPermissions::try_from(el).unwrap_err().to_string(),
            "Invalid 'report-sending' on occupant element: unknown media kind \"smell\" (expected audio, video, screen, all or none)."
        );
    }

    #[test]
    fn test_invalid_bare_occupant_jid() {
        let el: Element = "<permissions xmlns='urn:podium:0'>\
            <occupant jid='r@conference.localhost' real-jid='alice@localhost/x' \
              audio='true' video='true' screen='true'/></permissions>"
            .parse()
            .unwrap();
        assert!(
            SetPermissions::try_from(el)
                .unwrap_err()
                .to_string()
                .starts_with("Invalid 'jid' on occupant element:")
        );
    }

    #[test]
    fn test_invalid_missing_media() {
        let el: Element = "<permissions xmlns='urn:podium:0'>\
            <occupant jid='r@conference.localhost/a' real-jid='a@localhost/x' audio='true' video='true'/>\
            </permissions>"
            .parse()
            .unwrap();
        assert_eq!(
            SetPermissions::try_from(el).unwrap_err().to_string(),
            "Required attribute 'screen' on occupant element missing."
        );
    }

    #[test]
    fn test_invalid_child() {
        let el: Element =
            "<permissions xmlns='urn:podium:0'><grant xmlns='urn:podium:0'/></permissions>"
                .parse()
                .unwrap();
        assert_eq!(
            SetPermissions::try_from(el).unwrap_err().to_string(),
            "Unknown child 'grant' in permissions element."
        );
    }
}
