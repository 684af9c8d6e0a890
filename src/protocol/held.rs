//! `<inspect/>`: ask the module what it holds for the occupants of a room.
//!
//! podium and the inspectors listed in `podium_inspectors` may ask (it reveals real JIDs); anyone else
//! gets `forbidden`. Tests use it to compare what podium decided with what the module enforces.
//!
//! ```xml
//! <!-- iq get -->
//! <inspect xmlns='urn:podium:0' room='room1@conference.meet.example'/>
//! <!-- iq result -->
//! <inspect xmlns='urn:podium:0' room='room1@conference.meet.example' bridge-endpoints='1' p2p-sessions='0'>
//!   <occupant jid='room1@conference.meet.example/4f2a9c1e' real-jid='alice@meet.example/web-1'
//!             audio='true' video='false' screen='false' origin='podium'
//!             session='7c1d0b0e5a' forwarded='1' withheld='6'/>
//! </inspect>
//! ```
//!
//! Besides the permissions, the answer says what enforcement keeps: per occupant its Jingle session
//! with jicofo and how many sources jicofo has (`forwarded`) and how many are kept back (`withheld`);
//! per room how many endpoints the module knows at the bridge and how many peer-to-peer sessions run.
//! The counts default to 0 when absent (a module from before enforcement).

use minidom::Element;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

use super::{
    HeldOrigin, PayloadError, expect, only_children, optional_parsed, read_media_attrs,
    required_parsed, write_media_attrs,
};
use crate::media::MediaSet;
use crate::xmpp::ns;

/// The question: what is held in this room?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldQuery {
    /// The room to inspect.
    pub room: BareJid,
}

impl TryFrom<Element> for HeldQuery {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "inspect")?;
        only_children(&element, &[])?;
        Ok(HeldQuery {
            room: required_parsed(&element, "room")?,
        })
    }
}

impl From<HeldQuery> for Element {
    fn from(query: HeldQuery) -> Element {
        Element::builder("inspect", ns::PODIUM)
            .attr(ns::attr("room"), query.room.to_string())
            .build()
    }
}

/// What the module holds for one occupant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEntry {
    /// The occupant JID.
    pub jid: FullJid,
    /// Its real JID.
    pub real_jid: Jid,
    /// The permissions held.
    pub permissions: MediaSet,
    /// Default or podium's decision.
    pub origin: HeldOrigin,
    /// The occupant's current Jingle session id with jicofo, if any.
    pub session: Option<String>,
    /// How many of its sources jicofo has.
    pub forwarded: u32,
    /// How many of its sources are withheld from jicofo.
    pub withheld: u32,
}

/// The answer: every governed occupant of the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldList {
    /// The room inspected.
    pub room: BareJid,
    /// One entry per occupant.
    pub occupants: Vec<HeldEntry>,
    /// Endpoints of this room the module knows at the bridge.
    pub bridge_endpoints: u32,
    /// Peer-to-peer Jingle sessions running between occupants.
    pub p2p_sessions: u32,
}

impl TryFrom<Element> for HeldList {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "inspect")?;
        let mut occupants = Vec::new();
        for child in element.children() {
            if !child.is("occupant", ns::PODIUM) {
                return Err(PayloadError::invalid(format!(
                    "Unknown child '{}' in inspect element.",
                    child.name()
                )));
            }
            occupants.push(HeldEntry {
                jid: required_parsed(child, "jid")?,
                real_jid: required_parsed(child, "real-jid")?,
                permissions: read_media_attrs(child)?,
                origin: required_parsed(child, "origin")?,
                session: child.attr("session").map(str::to_owned),
                forwarded: optional_parsed(child, "forwarded")?.unwrap_or(0),
                withheld: optional_parsed(child, "withheld")?.unwrap_or(0),
            });
        }
        Ok(HeldList {
            room: required_parsed(&element, "room")?,
            occupants,
            bridge_endpoints: optional_parsed(&element, "bridge-endpoints")?.unwrap_or(0),
            p2p_sessions: optional_parsed(&element, "p2p-sessions")?.unwrap_or(0),
        })
    }
}

impl From<HeldList> for Element {
    fn from(list: HeldList) -> Element {
        Element::builder("inspect", ns::PODIUM)
            .attr(ns::attr("room"), list.room.to_string())
            .attr(
                ns::attr("bridge-endpoints"),
                list.bridge_endpoints.to_string(),
            )
            .attr(ns::attr("p2p-sessions"), list.p2p_sessions.to_string())
            .append_all(list.occupants.into_iter().map(|o| {
                write_media_attrs(Element::builder("occupant", ns::PODIUM), o.permissions)
                    .attr(ns::attr("jid"), o.jid.to_string())
                    .attr(ns::attr("real-jid"), o.real_jid.to_string())
                    .attr(ns::attr("origin"), o.origin.as_str())
                    .attr(ns::attr("session"), o.session)
                    .attr(ns::attr("forwarded"), o.forwarded.to_string())
                    .attr(ns::attr("withheld"), o.withheld.to_string())
                    .build()
            }))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Media;

    #[test]
    fn test_simple() {
        let el: Element = "<inspect xmlns='urn:podium:0' room='r@conference.localhost'>\
            <occupant jid='r@conference.localhost/a' real-jid='a@localhost/x' audio='false' \
              video='true' screen='false' origin='podium'/></inspect>"
            .parse()
            .unwrap();
        let list = HeldList::try_from(el).unwrap();
        assert_eq!(list.occupants[0].permissions, MediaSet::only(Media::Video));
        assert_eq!(list.occupants[0].origin, HeldOrigin::Podium);
        // A module from before enforcement sends no counts.
        assert_eq!(list.occupants[0].session, None);
        assert_eq!(
            (list.occupants[0].forwarded, list.occupants[0].withheld),
            (0, 0)
        );
        assert_eq!((list.bridge_endpoints, list.p2p_sessions), (0, 0));
    }

    #[test]
    fn test_enforcement_counts() {
        let el: Element = "<inspect xmlns='urn:podium:0' room='r@conference.localhost' \
              bridge-endpoints='2' p2p-sessions='1'>\
            <occupant jid='r@conference.localhost/a' real-jid='a@localhost/x' audio='true' \
              video='false' screen='false' origin='podium' session='s1' forwarded='1' withheld='6'/>\
            </inspect>"
            .parse()
            .unwrap();
        let list = HeldList::try_from(el).unwrap();
        assert_eq!(list.occupants[0].session.as_deref(), Some("s1"));
        assert_eq!(
            (list.occupants[0].forwarded, list.occupants[0].withheld),
            (1, 6)
        );
        assert_eq!((list.bridge_endpoints, list.p2p_sessions), (2, 1));
    }

    #[test]
    fn test_invalid_count() {
        let el: Element = "<inspect xmlns='urn:podium:0' room='r@conference.localhost' \
              bridge-endpoints='many'/>"
            .parse()
            .unwrap();
        assert!(
            HeldList::try_from(el)
                .unwrap_err()
                .to_string()
                .contains("'bridge-endpoints'")
        );
    }

    #[test]
    fn test_serialise() {
        let query = HeldQuery {
            room: "r@conference.localhost".parse().unwrap(),
        };
        assert_eq!(
            HeldQuery::try_from(Element::from(query.clone())).unwrap(),
            query
        );
        let list = HeldList {
            room: "r@conference.localhost".parse().unwrap(),
            occupants: vec![HeldEntry {
                jid: "r@conference.localhost/b".parse().unwrap(),
                real_jid: "b@localhost/y".parse().unwrap(),
                permissions: MediaSet::NONE,
                origin: HeldOrigin::Default,
                session: Some("s2".to_owned()),
                forwarded: 7,
                withheld: 0,
            }],
            bridge_endpoints: 1,
            p2p_sessions: 0,
        };
        assert_eq!(
            HeldList::try_from(Element::from(list.clone())).unwrap(),
            list
        );
    }

    #[test]
    fn test_invalid_origin() {
        let el: Element = "<inspect xmlns='urn:podium:0' room='r@conference.localhost'>\
            <occupant jid='r@conference.localhost/a' real-jid='a@localhost/x' audio='false' \
              video='true' screen='false' origin='someone'/></inspect>"
            .parse()
            .unwrap();
        assert_eq!(
            HeldList::try_from(el).unwrap_err().to_string(),
            "Invalid 'origin' on occupant element: unknown origin \"someone\"."
        );
    }

    #[test]
    fn test_invalid_query_without_room() {
        let el: Element = "<inspect xmlns='urn:podium:0'/>".parse().unwrap();
        assert_eq!(
            HeldQuery::try_from(el).unwrap_err().to_string(),
            "Required attribute 'room' on inspect element missing."
        );
    }
}
