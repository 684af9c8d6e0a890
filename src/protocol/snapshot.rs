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
//!     <occupant nick='4f2a9c1e' real-jid='alice@meet.example/web-1' role='participant'
//!               affiliation='none' sending='audio video'>
//!       <held audio='true' video='true' screen='false' origin='podium'/>
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
    /// For a breakout room, its main room's JID.
    pub main_room: Option<BareJid>,
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
    /// Occupants and rooms of the page that could not be read, with the reason (never serialised).
    pub skipped: Vec<String>,
}

impl TryFrom<Element> for Snapshot {
    type Error = PayloadError;

    /// A page with a wrong structure is invalid; a single occupant or room podium cannot read (say, a
    /// JID with characters Prosody's stringprep allows and podium's does not) is skipped and named in
    /// [`Snapshot::skipped`], so one odd occupant never stops a resync.
    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "snapshot")?;
        let mut rooms = Vec::new();
        let mut skipped = Vec::new();
        for room in element.children() {
            if !room.is("room", ns::PODIUM) {
                return Err(PayloadError::invalid(format!(
                    "Unknown child '{}' in snapshot element.",
                    room.name()
                )));
            }
            let jid = match required_parsed(room, "jid") {
                Ok(jid) => jid,
                Err(error) => {
                    skipped.push(format!(
                        "room {:?}: {error}",
                        room.attr("jid").unwrap_or("")
                    ));
                    continue;
                }
            };
            let main_room = match optional_parsed(room, "main-room") {
                Ok(main_room) => main_room,
                Err(error) => {
                    skipped.push(format!("room {jid}: {error}"));
                    continue;
                }
            };
            let mut occupants = Vec::new();
            for occupant in room.children() {
                if !occupant.is("occupant", ns::PODIUM) {
                    return Err(PayloadError::invalid(format!(
                        "Unknown child '{}' in room element.",
                        occupant.name()
                    )));
                }
                match OccupantState::from_element(occupant) {
                    Ok(state) if state.held.is_some() => occupants.push(state),
                    Ok(_) => skipped.push(format!(
                        "occupant {:?} in {jid}: Missing held element in snapshot occupant.",
                        occupant.attr("nick").unwrap_or("")
                    )),
                    Err(error) => skipped.push(format!(
                        "occupant {:?} in {jid}: {error}",
                        occupant.attr("nick").unwrap_or("")
                    )),
                }
            }
            rooms.push(RoomSnapshot {
                jid,
                main_room,
                occupants,
            });
        }
        Ok(Snapshot {
            rooms,
            next: optional_parsed(&element, "next")?,
            skipped,
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
                    .attr(
                        ns::attr("main-room"),
                        room.main_room.map(|jid| jid.to_string()),
                    )
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
        assert_eq!(snapshot.rooms[0].main_room, None);
        assert_eq!(snapshot.next.unwrap().to_string(), "b@conference.localhost");
    }

    #[test]
    fn test_serialise() {
        let snapshot = Snapshot {
            rooms: vec![RoomSnapshot {
                jid: "6f1c@breakout.localhost".parse().unwrap(),
                main_room: Some("a@conference.localhost".parse().unwrap()),
                occupants: vec![OccupantState {
                    nick: "bob".into(),
                    real_jid: "bob@localhost/y".parse().unwrap(),
                    identity: None,
                    held: Some(Held {
                        permissions: MediaSet::ALL,
                        origin: HeldOrigin::Podium,
                    }),
                    presence: None,
                    joined: None,
                    meeting: None,
                }],
            }],
            next: None,
            skipped: Vec::new(),
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
    fn test_breakout_room_names_its_main_room() {
        let el: Element = "<snapshot xmlns='urn:podium:0'>\
            <room jid='6f1c@breakout.localhost' main-room='lecture@conference.localhost'/>\
            <room jid='x@breakout.localhost' main-room='not a jid@/'/>\
            </snapshot>"
            .parse()
            .unwrap();
        let snapshot = Snapshot::try_from(el).unwrap();
        assert_eq!(snapshot.rooms.len(), 1);
        assert_eq!(
            snapshot.rooms[0].main_room.as_ref().unwrap().to_string(),
            "lecture@conference.localhost"
        );
        assert_eq!(snapshot.skipped.len(), 1);
        assert!(
            snapshot.skipped[0].starts_with("room x@breakout.localhost: Invalid 'main-room'"),
            "{:?}",
            snapshot.skipped
        );
    }

    #[test]
    fn test_unreadable_room_is_skipped() {
        let el: Element =
            "<snapshot xmlns='urn:podium:0'><room/><room jid='a@c.localhost'/></snapshot>"
                .parse()
                .unwrap();
        let snapshot = Snapshot::try_from(el).unwrap();
        assert_eq!(snapshot.rooms.len(), 1);
        assert_eq!(
            snapshot.skipped,
            vec!["room \"\": Required attribute 'jid' on room element missing.".to_owned()]
        );
    }

    #[test]
    fn test_unreadable_occupant_is_skipped_and_the_rest_kept() {
        let el: Element = "<snapshot xmlns='urn:podium:0'><room jid='a@c.localhost'>\
            <occupant nick='x' real-jid='x@localhost/r'/>\
            <occupant nick='y' real-jid='y@localhost/r'>\
              <held audio='true' video='false' screen='false' origin='podium'/></occupant>\
            </room></snapshot>"
            .parse()
            .unwrap();
        let snapshot = Snapshot::try_from(el).unwrap();
        assert_eq!(snapshot.rooms[0].occupants.len(), 1);
        assert_eq!(snapshot.rooms[0].occupants[0].nick, "y");
        assert_eq!(
            snapshot.skipped,
            vec![
                "occupant \"x\" in a@c.localhost: Missing held element in snapshot occupant."
                    .to_owned()
            ]
        );
    }

    #[test]
    fn test_invalid_structure() {
        let el: Element = "<snapshot xmlns='urn:podium:0'><table xmlns='urn:podium:0'/></snapshot>"
            .parse()
            .unwrap();
        assert_eq!(
            Snapshot::try_from(el).unwrap_err().to_string(),
            "Unknown child 'table' in snapshot element."
        );
    }
}
