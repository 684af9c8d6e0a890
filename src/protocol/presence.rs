//! What podium reads from an occupant's MUC presence, as the module reports it on `<occupant/>`.
//!
//! The module reads the presence the room broadcast and reports only what podium uses, as attributes
//! and children of `<occupant/>` (`docs/protocol.md`):
//!
//! ```xml
//! <occupant … role='participant' affiliation='none' sending='audio video' hand='true'>
//!   <held …/>
//!   <feature var='http://jitsi.org/protocol/jibri'/>
//! </occupant>
//! ```
//!
//! `role` and `affiliation` are what the room computed (XEP-0045); the rest is asserted by the client
//! and read by the module as lib-jitsi-meet writes it (`ChatRoom.ts`, `SignalingLayerImpl.ts`):
//! `sending` the kinds its `<SourceInfo>` JSON lists with an unmuted source (`<endpoint>-a<n>` audio,
//! `-v<n>` camera, or screen when its `videoType` is `desktop`), `hand` while
//! `<jitsi_participant_raisedHand>` is up, `<feature/>` its `<features>` (jibri, jigasi). Rules match
//! only on what the server vouches for. An event without `role` carries no presence (`left`).

use std::fmt;
use std::str::FromStr;

use minidom::Element;

use super::PayloadError;
use crate::media::{Media, MediaSet};
use crate::xmpp::ns;

/// XEP-0045 role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    /// Moderator.
    Moderator,
    /// Participant.
    Participant,
    /// Visitor (may not speak in moderated rooms; Jitsi's visitors).
    Visitor,
    /// No role (leaving).
    #[default]
    None,
}

/// XEP-0045 affiliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Affiliation {
    /// Owner.
    Owner,
    /// Admin.
    Admin,
    /// Member.
    Member,
    /// Outcast (banned).
    Outcast,
    /// No affiliation.
    #[default]
    None,
}

macro_rules! str_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The XEP-0045 name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)*
                    other => Err(format!(
                        concat!("unknown ", stringify!($ty), " {:?} (expected one of: ", $($text, " ",)* ")"),
                        other
                    )),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(Role { Moderator => "moderator", Participant => "participant", Visitor => "visitor", None => "none" });
str_enum!(Affiliation { Owner => "owner", Admin => "admin", Member => "member", Outcast => "outcast", None => "none" });

/// The facts podium keeps from one presence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceFacts {
    /// MUC role, as the room computed it.
    pub role: Role,
    /// MUC affiliation, as the room computed it.
    pub affiliation: Affiliation,
    /// The kinds `SourceInfo` lists with at least one unmuted source, client-asserted: used only to
    /// tell an idle holder of a capped kind, never to grant.
    pub sending: MediaSet,
    /// Whether `jitsi_participant_raisedHand` is up, client-asserted.
    pub raised_hand: bool,
    /// `<features><feature var/>` (jibri, jigasi, transcriber), client-asserted.
    pub features: Vec<String>,
}

impl PresenceFacts {
    /// Reads the presence part of `<occupant/>`: `None` when it has no `role` (a `left` event).
    /// Unknown roles and affiliations read as `none`; other values must be well formed.
    pub(super) fn from_occupant(element: &Element) -> Result<Option<PresenceFacts>, PayloadError> {
        let Some(role) = element.attr("role") else {
            return Ok(None);
        };
        let sending = match element.attr("sending") {
            None => MediaSet::NONE,
            Some(list) => list
                .split(' ')
                .filter(|word| !word.is_empty())
                .map(str::parse::<Media>)
                .collect::<Result<MediaSet, _>>()
                .map_err(|e| {
                    PayloadError::invalid(format!("Invalid 'sending' on occupant element: {e}."))
                })?,
        };
        let raised_hand = match element.attr("hand") {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(PayloadError::invalid(format!(
                    "Invalid 'hand' on occupant element: expected true or false, got {other:?}."
                )));
            }
        };
        let features = element
            .children()
            .filter(|child| child.is("feature", ns::PODIUM))
            .map(|feature| {
                feature.attr("var").map(str::to_owned).ok_or_else(|| {
                    PayloadError::invalid("Required attribute 'var' on feature element missing.")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(PresenceFacts {
            role: role.parse().unwrap_or_default(),
            affiliation: element
                .attr("affiliation")
                .and_then(|a| a.parse().ok())
                .unwrap_or_default(),
            sending,
            raised_hand,
            features,
        }))
    }

    /// Adds the presence part to an `<occupant/>` being written.
    pub(super) fn write(
        &self,
        builder: minidom::element::ElementBuilder,
    ) -> minidom::element::ElementBuilder {
        let sending = self
            .sending
            .iter()
            .map(Media::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let mut builder = builder
            .attr(ns::attr("role"), self.role.as_str())
            .attr(ns::attr("affiliation"), self.affiliation.as_str())
            .attr(
                ns::attr("sending"),
                (!sending.is_empty()).then_some(sending),
            )
            .attr(ns::attr("hand"), self.raised_hand.then_some("true"));
        for var in &self.features {
            builder = builder.append(
                Element::builder("feature", ns::PODIUM)
                    .attr(ns::attr("var"), var.as_str())
                    .build(),
            );
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occupant(attrs: &str, children: &str) -> Element {
        format!("<occupant xmlns='urn:podium:0' nick='n' real-jid='a@localhost/x' {attrs}>{children}</occupant>")
            .parse()
            .unwrap()
    }

    #[test]
    fn test_jitsi_presence() {
        let facts = PresenceFacts::from_occupant(&occupant(
            "role='moderator' affiliation='owner' sending='audio screen' hand='true'",
            "<feature var='http://jitsi.org/protocol/jibri'/>",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(facts.role, Role::Moderator);
        assert_eq!(facts.affiliation, Affiliation::Owner);
        assert!(facts.raised_hand);
        assert_eq!(
            facts.sending,
            MediaSet::only(Media::Audio).with(Media::Screen)
        );
        assert_eq!(
            facts.features,
            vec!["http://jitsi.org/protocol/jibri".to_owned()]
        );
    }

    #[test]
    fn test_round_trip() {
        let facts = PresenceFacts {
            role: Role::Participant,
            affiliation: Affiliation::Member,
            sending: MediaSet::only(Media::Video),
            raised_hand: false,
            features: vec!["urn:f".into()],
        };
        let element = facts
            .write(Element::builder("occupant", ns::PODIUM))
            .build();
        assert_eq!(element.attr("sending"), Some("video"));
        assert_eq!(element.attr("hand"), None);
        assert_eq!(PresenceFacts::from_occupant(&element).unwrap(), Some(facts));
    }

    #[test]
    fn test_no_presence_without_role() {
        assert_eq!(
            PresenceFacts::from_occupant(&occupant("", "")).unwrap(),
            None
        );
    }

    #[test]
    fn test_defaults_and_lenient_unknown_role() {
        let facts =
            PresenceFacts::from_occupant(&occupant("role='emperor' affiliation='member'", ""))
                .unwrap()
                .unwrap();
        assert_eq!(facts.role, Role::None);
        assert_eq!(facts.affiliation, Affiliation::Member);
        assert_eq!(facts.sending, MediaSet::NONE);
        assert!(!facts.raised_hand);
    }

    #[test]
    fn test_invalid_values() {
        assert_eq!(
            PresenceFacts::from_occupant(&occupant("role='participant' sending='audio smell'", ""))
                .unwrap_err()
                .to_string(),
            "Invalid 'sending' on occupant element: unknown media kind \"smell\" (expected audio, video, screen, all or none)."
        );
        assert_eq!(
            PresenceFacts::from_occupant(&occupant("role='participant' hand='maybe'", ""))
                .unwrap_err()
                .to_string(),
            "Invalid 'hand' on occupant element: expected true or false, got \"maybe\"."
        );
        assert!(
            PresenceFacts::from_occupant(&occupant("role='participant'", "<feature/>")).is_err()
        );
    }

    #[test]
    fn test_role_names() {
        assert_eq!("visitor".parse::<Role>().unwrap(), Role::Visitor);
        assert_eq!(
            "king".parse::<Role>().unwrap_err(),
            "unknown Role \"king\" (expected one of: moderator participant visitor none )"
        );
    }
}
