//! `<occupant/>`: one MUC occupant as the module sees it, and the join/change/leave event carrying it.
//!
//! The module sends an [`OccupantEvent`] in a `<message/>` for every presence the room broadcasts
//! (Prosody 0.12 `muc-broadcast-presence`) that changes what podium reads: the first for an occupant is
//! `joined`, a presence with no role left is `left`, everything else `changed`. It carries what podium
//! reads of the presence ([`PresenceFacts`]: role and affiliation as the room computed them, and the
//! Jitsi extensions the module read) and what the module holds for the occupant right now (`<held/>`).
//!
//! ```xml
//! <occupant xmlns='urn:podium:0' event='joined' room='room1@conference.meet.example'
//!           nick='4f2a9c1e' real-jid='alice@meet.example/web-1' joined='1' meeting='m-1'
//!           role='participant' affiliation='none' sending='audio'>
//!   <identity id='u-42' name='Alice' group='acme'/>
//!   <held audio='false' video='false' screen='false' origin='default'/>
//! </occupant>
//! ```
//!
//! Inside a snapshot (`<room jid=…>`), the same element appears without `event` and `room`:
//! that is [`OccupantState`].

use std::fmt;
use std::str::FromStr;

use minidom::Element;
use xmpp_parsers::jid::{BareJid, Jid};

use super::{
    Identity, PayloadError, PresenceFacts, expect, optional_parsed, read_media_attrs, required,
    required_parsed, write_media_attrs,
};
use crate::media::MediaSet;
use crate::xmpp::ns;

/// What happened to the occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// First presence of a new occupant.
    Joined,
    /// A later presence: status, role, affiliation or Jitsi extensions may have changed.
    Changed,
    /// The occupant left (or was kicked, or the room was destroyed).
    Left,
}

impl EventKind {
    /// The `event` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Joined => "joined",
            EventKind::Changed => "changed",
            EventKind::Left => "left",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "joined" => Ok(EventKind::Joined),
            "changed" => Ok(EventKind::Changed),
            "left" => Ok(EventKind::Left),
            other => Err(format!("unknown event {other:?}")),
        }
    }
}

/// Where the permissions the module holds came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldOrigin {
    /// `podium_default_permissions`: no decision from podium has arrived yet.
    Default,
    /// A decision sent by podium.
    Podium,
}

impl HeldOrigin {
    /// The `origin` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            HeldOrigin::Default => "default",
            HeldOrigin::Podium => "podium",
        }
    }
}

impl FromStr for HeldOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(HeldOrigin::Default),
            "podium" => Ok(HeldOrigin::Podium),
            other => Err(format!("unknown origin {other:?}")),
        }
    }
}

/// `<held/>`: the permissions the module holds and enforces for an occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// What the occupant may send.
    pub permissions: MediaSet,
    /// Whether that is the module's default or podium's decision.
    pub origin: HeldOrigin,
}

impl Held {
    pub(super) fn from_element(element: &Element) -> Result<Held, PayloadError> {
        Ok(Held {
            permissions: read_media_attrs(element)?,
            origin: required_parsed(element, "origin")?,
        })
    }

    pub(super) fn to_element(self) -> Element {
        write_media_attrs(Element::builder("held", ns::PODIUM), self.permissions)
            .attr(ns::attr("origin"), self.origin.as_str())
            .build()
    }
}

/// One occupant: nick, real JID, server-known identity, what the module holds, and what podium reads of
/// its MUC presence.
#[derive(Debug, Clone, PartialEq)]
pub struct OccupantState {
    /// The occupant's nick (the resource of its occupant JID); for Jitsi, the endpoint id.
    pub nick: String,
    /// The real JID of the occupant's primary session.
    pub real_jid: Jid,
    /// What token auth set on the session, if anything.
    pub identity: Option<Identity>,
    /// What the module holds for the occupant (absent only in `left` events).
    pub held: Option<Held>,
    /// What podium reads of the MUC presence (absent only in `left` events).
    pub presence: Option<PresenceFacts>,
    /// The occupant's join sequence number in the room (`joined`): the module counts joins per room,
    /// so podium can keep queue order by arrival across its own restart, never by a client-chosen
    /// nick.
    pub joined: Option<u64>,
    /// The room's meeting id (`meeting`): jitsi-meet's `mod_muc_meeting_id`, or one the module gives
    /// the room. Grants for another meeting do not count.
    pub meeting: Option<String>,
}

impl OccupantState {
    /// Reads the common part of `<occupant/>` (the element name is checked by the caller).
    pub(super) fn from_element(element: &Element) -> Result<OccupantState, PayloadError> {
        let nick = required(element, "nick")?;
        if nick.is_empty() {
            return Err(PayloadError::invalid("Empty 'nick' on occupant element."));
        }
        let mut state = OccupantState {
            nick: nick.to_owned(),
            real_jid: required_parsed(element, "real-jid")?,
            identity: None,
            held: None,
            presence: PresenceFacts::from_occupant(element)?,
            joined: optional_parsed(element, "joined")?,
            meeting: element
                .attr("meeting")
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
        };
        for child in element.children() {
            if child.is("identity", ns::PODIUM) {
                if state.identity.is_some() {
                    return Err(PayloadError::invalid(
                        "Identity element present twice in occupant.",
                    ));
                }
                state.identity = Some(Identity::try_from(child.clone())?);
            } else if child.is("held", ns::PODIUM) {
                if state.held.is_some() {
                    return Err(PayloadError::invalid(
                        "Held element present twice in occupant.",
                    ));
                }
                state.held = Some(Held::from_element(child)?);
            } else if child.is("feature", ns::PODIUM) {
                // Read with the presence facts.
            } else {
                return Err(PayloadError::invalid(format!(
                    "Unknown child '{}' in occupant element.",
                    child.name()
                )));
            }
        }
        Ok(state)
    }

    /// Writes `<occupant nick real-jid>` with its children; the caller adds `event`/`room` if needed.
    pub(super) fn to_builder(&self) -> minidom::element::ElementBuilder {
        let mut builder = Element::builder("occupant", ns::PODIUM)
            .attr(ns::attr("nick"), self.nick.as_str())
            .attr(ns::attr("real-jid"), self.real_jid.to_string())
            .attr(ns::attr("joined"), self.joined.map(|n| n.to_string()))
            .attr(ns::attr("meeting"), self.meeting.clone());
        if let Some(identity) = &self.identity {
            builder = builder.append(Element::from(identity.clone()));
        }
        if let Some(held) = self.held {
            builder = builder.append(held.to_element());
        }
        if let Some(presence) = &self.presence {
            builder = presence.write(builder);
        }
        builder
    }
}

/// An occupant joined, changed or left a room.
#[derive(Debug, Clone, PartialEq)]
pub struct OccupantEvent {
    /// What happened.
    pub kind: EventKind,
    /// The room's JID.
    pub room: BareJid,
    /// For a breakout room (reported by the module on the breakout MUC), its main room's JID.
    pub main_room: Option<BareJid>,
    /// The occupant, as of this event.
    pub occupant: OccupantState,
}

impl TryFrom<Element> for OccupantEvent {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "occupant")?;
        let kind: EventKind = required_parsed(&element, "event")?;
        let room = required_parsed(&element, "room")?;
        let main_room = optional_parsed(&element, "main-room")?;
        let occupant = OccupantState::from_element(&element)?;
        if kind != EventKind::Left && occupant.held.is_none() {
            return Err(PayloadError::invalid(format!(
                "Missing held element in {kind} occupant event."
            )));
        }
        Ok(OccupantEvent {
            kind,
            room,
            main_room,
            occupant,
        })
    }
}

impl From<OccupantEvent> for Element {
    fn from(event: OccupantEvent) -> Element {
        event
            .occupant
            .to_builder()
            .attr(ns::attr("event"), event.kind.as_str())
            .attr(ns::attr("room"), event.room.to_string())
            .attr(
                ns::attr("main-room"),
                event.main_room.map(|jid| jid.to_string()),
            )
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Media;

    const JOINED: &str = "<occupant xmlns='urn:podium:0' event='joined' room='room1@conference.localhost' \
        nick='alice' real-jid='alice@localhost/web' role='participant' affiliation='none'>\
        <identity id='u1' group='acme'/>\
        <held audio='false' video='false' screen='false' origin='default'/>\
        </occupant>";

    #[test]
    fn test_simple() {
        let event = OccupantEvent::try_from(JOINED.parse::<Element>().unwrap()).unwrap();
        assert_eq!(event.kind, EventKind::Joined);
        assert_eq!(event.room.to_string(), "room1@conference.localhost");
        assert_eq!(event.occupant.nick, "alice");
        assert_eq!(event.occupant.real_jid.to_string(), "alice@localhost/web");
        assert_eq!(
            event.occupant.identity.as_ref().unwrap().group.as_deref(),
            Some("acme")
        );
        let held = event.occupant.held.unwrap();
        assert_eq!(held.permissions, MediaSet::NONE);
        assert_eq!(held.origin, HeldOrigin::Default);
        assert_eq!(
            event.occupant.presence.unwrap().role,
            crate::protocol::Role::Participant
        );
    }

    #[test]
    fn test_serialise() {
        let event = OccupantEvent {
            kind: EventKind::Changed,
            room: "room1@conference.localhost".parse().unwrap(),
            main_room: None,
            occupant: OccupantState {
                nick: "bob".into(),
                real_jid: "bob@localhost/x".parse().unwrap(),
                identity: None,
                held: Some(Held {
                    permissions: MediaSet::only(Media::Audio),
                    origin: HeldOrigin::Podium,
                }),
                presence: None,
                joined: Some(7),
                meeting: Some("m-1".into()),
            },
        };
        let el = Element::from(event.clone());
        assert_eq!(OccupantEvent::try_from(el).unwrap(), event);
    }

    #[test]
    fn test_breakout_event_round_trip() {
        let el: Element = JOINED
            .replace(
                "room='room1@conference.localhost'",
                "room='6f1c@breakout.localhost' main-room='room1@conference.localhost'",
            )
            .parse()
            .unwrap();
        let event = OccupantEvent::try_from(el).unwrap();
        assert_eq!(event.room.to_string(), "6f1c@breakout.localhost");
        assert_eq!(
            event.main_room.as_ref().unwrap().to_string(),
            "room1@conference.localhost"
        );
        assert_eq!(
            OccupantEvent::try_from(Element::from(event.clone())).unwrap(),
            event
        );
    }

    #[test]
    fn test_left_without_held() {
        let el: Element =
            "<occupant xmlns='urn:podium:0' event='left' room='r@c.localhost' nick='a' \
            real-jid='a@localhost/x'/>"
                .parse()
                .unwrap();
        assert_eq!(OccupantEvent::try_from(el).unwrap().kind, EventKind::Left);
    }

    #[test]
    fn test_invalid_event() {
        let el: Element = JOINED
            .replace("event='joined'", "event='exploded'")
            .parse()
            .unwrap();
        assert_eq!(
            OccupantEvent::try_from(el).unwrap_err().to_string(),
            "Invalid 'event' on occupant element: unknown event \"exploded\"."
        );
    }

    #[test]
    fn test_invalid_missing_nick() {
        let el: Element = JOINED.replace("nick='alice'", "").parse().unwrap();
        assert_eq!(
            OccupantEvent::try_from(el).unwrap_err().to_string(),
            "Required attribute 'nick' on occupant element missing."
        );
    }

    #[test]
    fn test_invalid_room_jid() {
        let el: Element = JOINED
            .replace(
                "room='room1@conference.localhost'",
                "room='room1@conference.localhost/x'",
            )
            .parse()
            .unwrap();
        assert!(
            OccupantEvent::try_from(el)
                .unwrap_err()
                .to_string()
                .starts_with("Invalid 'room' on occupant element:")
        );
    }

    #[test]
    fn test_invalid_missing_held() {
        let el: Element = JOINED
            .replace(
                "<held audio='false' video='false' screen='false' origin='default'/>",
                "",
            )
            .parse()
            .unwrap();
        assert_eq!(
            OccupantEvent::try_from(el).unwrap_err().to_string(),
            "Missing held element in joined occupant event."
        );
    }

    #[test]
    fn test_invalid_held_value() {
        let el: Element = JOINED
            .replace("audio='false'", "audio='maybe'")
            .parse()
            .unwrap();
        assert_eq!(
            OccupantEvent::try_from(el).unwrap_err().to_string(),
            "Invalid 'audio' on held element: expected true or false, got \"maybe\"."
        );
    }
}
