//! `<snapshot/>`: every room and occupant the module knows, page by page.
//!
//! podium asks after every (re)connect and rebuilds its view from the answer (resync). Rooms come sorted
//! by JID; a page holds whole rooms and stops once it has at least `max` occupants, so a deployment with
//! many rooms never produces one giant stanza. `next` names the last room of the page: ask again with
//! `after` set to it. No `next` means the snapshot is complete.
//!
//! ```xml
//! <!-- podium → module, iq get -->
//! <snapshot xmlns='urn:podium:0' max='500'/>
//! <!-- module → podium, iq result -->
//! <snapshot xmlns='urn:podium:0' next='room1@conference.meet.example'>
//!   <room jid='room1@conference.meet.example'>
//!     <occupant nick='4f2a9c1e' real-jid='alice@meet.example/web-1'>
//!       <held audio='true' video='true' screen='false' origin='podium'/>
//!       <presence xmlns='jabber:client' …>…</presence>
//!     </occupant>
//!   </room>
//! </snapshot>
//! ```

use minidom::Element;
use xmpp_parsers::jid::BareJid;

use super::{OccupantState, PayloadError, expect, only_children, optional_parsed, required_parsed};
use crate::xmpp::ns;

/// podium's request for one page of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Start after this room (the `next` of the previous page); `None` for the first page.
    pub after: Option<BareJid>,
    /// Stop a page once it holds at least this many occupants.
    pub max: Option<u32>,
}

impl TryFrom<Element> for SnapshotRequest {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "snapshot")?;
        only_children(&element, &[])?;
        Ok(SnapshotRequest {
            after: optional_parsed(&element, "after")?,
            max: optional_parsed(&element, "max")?,
        })
    }
}

impl From<SnapshotRequest> for Element {
    fn from(request: SnapshotRequest) -> Element {
        Element::builder("snapshot", ns::PODIUM)
            .attr(ns::attr("after"), request.after.map(|j| j.to_string()))
            .attr(ns::attr("max"), request.max.map(|m| m.to_string()))
            .build()
    }
}

/// One room of a snapshot page.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSnapshot {
    /// The room's JID.
    pub jid: BareJid,
    /// Every occupant podium governs (the focus and health-check rooms are left out by the module).
    pub occupants: Vec<OccupantState>,
}

/// One page of the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The rooms of this page, sorted by JID.
    pub rooms: Vec<RoomSnapshot>,
    /// Where the next page starts; `None` when this is the last page.
    pub next: Option<BareJid>,
}

impl TryFrom<Element> for Snapshot {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "snapshot")?;
        let mut rooms = Vec::new();
        for room in element.children() {
            if !room.is("room", ns::PODIUM) {
                return Err(PayloadError::invalid(format!(
                    "Unknown child '{}' in snapshot element.",
                    room.name()
                )));
            }
            let mut occupants = Vec::new();
            for occupant in room.children() {
                if !occupant.is("occupant", ns::PODIUM) {
                    return Err(PayloadError::invalid(format!(
                        "Unknown child '{}' in room element.",
                        occupant.name()
                    )));
                }
                let state = OccupantState::from_element(occupant)?;
                if state.held.is_none() {
                    return Err(PayloadError::invalid(
                        "Missing held element in snapshot occupant.",
                    ));
                }
                occupants.push(state);
            }
            rooms.push(RoomSnapshot {
                jid: required_parsed(room, "jid")?,
                occupants,
            });
        }
        Ok(Snapshot {
            rooms,
            next: optional_parsed(&element, "next")?,
        })
    }
}

impl From<Snapshot> for Element {
    fn from(snapshot: Snapshot) -> Element {
        Element::builder("snapshot", ns::PODIUM)
            .attr(ns::attr("next"), snapshot.next.map(|j| j.to_string()))
            .append_all(snapshot.rooms.into_iter().map(|room| {
                Element::builder("room", ns::PODIUM)
                    .attr(ns::attr("jid"), room.jid.to_string())
                    .append_all(room.occupants.iter().map(|o| o.to_builder().build()))
                    .build()
            }))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Media, MediaSet};
    use crate::protocol::{Held, HeldOrigin};

    #[test]
    fn test_simple() {
        let el: Element = "<snapshot xmlns='urn:podium:0' next='b@conference.localhost'>\
            <room jid='a@conference.localhost'>\
              <occupant nick='alice' real-jid='alice@localhost/x'>\
                <held audio='true' video='false' screen='false' origin='podium'/></occupant>\
            </room>\
            <room jid='b@conference.localhost'/>\
            </snapshot>"
            .parse()
            .unwrap();
        let snapshot = Snapshot::try_from(el).unwrap();
        assert_eq!(snapshot.rooms.len(), 2);
        assert_eq!(snapshot.rooms[0].occupants[0].nick, "alice");
        assert_eq!(
            snapshot.rooms[0].occupants[0].held.unwrap().permissions,
            MediaSet::only(Media::Audio)
        );
        assert!(snapshot.rooms[1].occupants.is_empty());
        assert_eq!(snapshot.next.unwrap().to_string(), "b@conference.localhost");
    }

    #[test]
    fn test_serialise() {
        let snapshot = Snapshot {
            rooms: vec![RoomSnapshot {
                jid: "a@conference.localhost".parse().unwrap(),
                occupants: vec![OccupantState {
                    nick: "bob".into(),
                    real_jid: "bob@localhost/y".parse().unwrap(),
                    identity: None,
                    held: Some(Held {
                        permissions: MediaSet::ALL,
                        origin: HeldOrigin::Podium,
                    }),
                    presence: None,
                }],
            }],
            next: None,
        };
        assert_eq!(
            Snapshot::try_from(Element::from(snapshot.clone())).unwrap(),
            snapshot
        );

        let request = SnapshotRequest {
            after: Some("a@conference.localhost".parse().unwrap()),
            max: Some(100),
        };
        assert_eq!(
            SnapshotRequest::try_from(Element::from(request.clone())).unwrap(),
            request
        );
    }

    #[test]
    fn test_invalid_request_max() {
        let el: Element = "<snapshot xmlns='urn:podium:0' max='lots'/>"
            .parse()
            .unwrap();
        assert_eq!(
            SnapshotRequest::try_from(el).unwrap_err().to_string(),
            "Invalid 'max' on snapshot element: invalid digit found in string."
        );
    }

    #[test]
    fn test_invalid_room_without_jid() {
        let el: Element = "<snapshot xmlns='urn:podium:0'><room/></snapshot>"
            .parse()
            .unwrap();
        assert_eq!(
            Snapshot::try_from(el).unwrap_err().to_string(),
            "Required attribute 'jid' on room element missing."
        );
    }

    #[test]
    fn test_invalid_occupant_without_held() {
        let el: Element = "<snapshot xmlns='urn:podium:0'><room jid='a@c.localhost'>\
            <occupant nick='x' real-jid='x@localhost/r'/></room></snapshot>"
            .parse()
            .unwrap();
        assert_eq!(
            Snapshot::try_from(el).unwrap_err().to_string(),
            "Missing held element in snapshot occupant."
        );
    }
}
