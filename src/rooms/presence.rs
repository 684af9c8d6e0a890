//! What podium reads from an occupant's MUC presence.
//!
//! The module forwards the presence the room broadcast, with the XEP-0045 `muc#user` item the room
//! computed (role, affiliation). The Jitsi extensions are read as lib-jitsi-meet writes them
//! (`ChatRoom.ts`, `SignalingLayerImpl.ts`): `<SourceInfo>` holds a JSON map of the occupant's sources,
//! `<jitsi_participant_raisedHand>` a timestamp while a hand is up, `<features>` the jibri/jigasi
//! features, `<nick xmlns='http://jabber.org/protocol/nick'>` the display name. Everything but role and
//! affiliation is asserted by the client; rules match only on what the server vouches for.

use std::fmt;
use std::str::FromStr;

use minidom::Element;

use crate::media::{Media, MediaSet};
use crate::xmpp::ns;

/// The kinds a `SourceInfo` JSON map (`{"<ep>-a0":{"muted":false},"<ep>-v0":{"muted":true,
/// "videoType":"camera"}}`, lib-jitsi-meet `SignalingLayerImpl`) lists as unmuted. Unreadable JSON
/// lists nothing.
pub fn sending_kinds(json: &str) -> MediaSet {
    let Ok(serde_json::Value::Object(sources)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return MediaSet::NONE;
    };
    let mut sending = MediaSet::NONE;
    for (name, info) in &sources {
        let Some((_, suffix)) = name.rsplit_once('-') else {
            continue;
        };
        let mut chars = suffix.chars();
        let letter = chars.next();
        if !chars.as_str().chars().all(|c| c.is_ascii_digit()) || chars.as_str().is_empty() {
            continue;
        }
        let muted = info.get("muted").and_then(serde_json::Value::as_bool) != Some(false);
        if muted {
            continue;
        }
        let desktop = info.get("videoType").and_then(serde_json::Value::as_str) == Some("desktop");
        match letter {
            Some('a') => sending = sending.with(Media::Audio),
            Some('v') if desktop => sending = sending.with(Media::Screen),
            Some('v') => sending = sending.with(Media::Video),
            _ => {}
        }
    }
    sending
}

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
    /// MUC role from the `muc#user` item.
    pub role: Role,
    /// MUC affiliation from the `muc#user` item.
    pub affiliation: Affiliation,
    /// Display name (XEP-0172 nick), client-asserted.
    pub display_name: Option<String>,
    /// The raw `SourceInfo` JSON, client-asserted.
    pub source_info: Option<String>,
    /// The kinds `SourceInfo` lists with at least one unmuted source (`-a<n>` audio, `-v<n>` camera,
    /// or screen when its `videoType` is `desktop`), client-asserted: used only to tell an idle
    /// holder of a capped kind, never to grant.
    pub sending: MediaSet,
    /// Whether `jitsi_participant_raisedHand` is set, client-asserted.
    pub raised_hand: bool,
    /// `<features><feature var/>` (jibri, jigasi, transcriber), client-asserted.
    pub features: Vec<String>,
    /// Whether the presence is `unavailable`.
    pub unavailable: bool,
}

impl PresenceFacts {
    /// Reads a MUC presence leniently: unknown values fall back to `none`, missing parts stay empty.
    pub fn from_presence(presence: &Element) -> PresenceFacts {
        let mut facts = PresenceFacts {
            unavailable: presence.attr("type") == Some("unavailable"),
            ..PresenceFacts::default()
        };
        for child in presence.children() {
            if child.is("x", ns::MUC_USER) {
                if let Some(item) = child.get_child("item", ns::MUC_USER) {
                    facts.role = item
                        .attr("role")
                        .and_then(|r| r.parse().ok())
                        .unwrap_or_default();
                    facts.affiliation = item
                        .attr("affiliation")
                        .and_then(|a| a.parse().ok())
                        .unwrap_or_default();
                }
            } else if child.is("nick", ns::NICK) {
                facts.display_name = Some(child.text());
            } else if child.name() == "SourceInfo" {
                let text = child.text();
                facts.sending = sending_kinds(&text);
                facts.source_info = Some(text);
            } else if child.name() == "jitsi_participant_raisedHand" {
                // lib-jitsi-meet sends Date.now() while the hand is up and an empty element (its
                // serialised 0) when it goes down; older clients send true/false.
                let text = child.text();
                let text = text.trim();
                facts.raised_hand = !text.is_empty() && text != "0" && text != "false";
            } else if child.name() == "features" {
                facts.features = child
                    .children()
                    .filter(|f| f.name() == "feature")
                    .filter_map(|f| f.attr("var").map(str::to_owned))
                    .collect();
            }
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_jitsi_presence() {
        let presence: Element =
            "<presence xmlns='jabber:client' from='r@conference.localhost/4f2a9c1e'>\
            <stats-id>Jayme-Clv</stats-id>\
            <SourceInfo>{\"4f2a9c1e-a0\":{\"muted\":false}}</SourceInfo>\
            <nick xmlns='http://jabber.org/protocol/nick'>Alice</nick>\
            <jitsi_participant_raisedHand>1700000000</jitsi_participant_raisedHand>\
            <features><feature var='http://jitsi.org/protocol/jibri'/></features>\
            <x xmlns='http://jabber.org/protocol/muc#user'>\
              <item role='moderator' affiliation='owner' jid='alice@localhost/web'/></x>\
            </presence>"
                .parse()
                .unwrap();
        let facts = PresenceFacts::from_presence(&presence);
        assert_eq!(facts.role, Role::Moderator);
        assert_eq!(facts.affiliation, Affiliation::Owner);
        assert_eq!(facts.display_name.as_deref(), Some("Alice"));
        assert_eq!(
            facts.source_info.as_deref(),
            Some("{\"4f2a9c1e-a0\":{\"muted\":false}}")
        );
        assert!(facts.raised_hand);
        assert_eq!(facts.sending, MediaSet::only(Media::Audio));
        assert_eq!(
            facts.features,
            vec!["http://jitsi.org/protocol/jibri".to_owned()]
        );
        assert!(!facts.unavailable);
    }

    #[test]
    fn test_lowered_hand() {
        for lowered in ["", "0", "false", " "] {
            let presence: Element = format!(
                "<presence xmlns='jabber:client'><jitsi_participant_raisedHand>{lowered}</jitsi_participant_raisedHand></presence>"
            )
            .parse()
            .unwrap();
            assert!(
                !PresenceFacts::from_presence(&presence).raised_hand,
                "{lowered:?}"
            );
        }
    }

    #[test]
    fn test_sending_kinds() {
        assert_eq!(
            sending_kinds(
                r#"{"e1-a0":{"muted":false},"e1-v0":{"muted":true,"videoType":"camera"},
                    "e1-v1":{"muted":false,"videoType":"desktop"}}"#
            ),
            MediaSet::only(Media::Audio).with(Media::Screen)
        );
        assert_eq!(
            sending_kinds(r#"{"e1-v0":{"muted":false}}"#),
            MediaSet::only(Media::Video)
        );
        // A source without a muted flag, a name that is not a source, or junk: nothing.
        assert_eq!(
            sending_kinds(r#"{"e1-a0":{},"e1-x":{"muted":false}}"#),
            MediaSet::NONE
        );
        assert_eq!(sending_kinds("not json"), MediaSet::NONE);
    }

    #[test]
    fn test_lenient_unknown_role() {
        let presence: Element = "<presence xmlns='jabber:client' type='unavailable'>\
            <x xmlns='http://jabber.org/protocol/muc#user'><item role='emperor' affiliation='member'/></x>\
            </presence>"
            .parse()
            .unwrap();
        let facts = PresenceFacts::from_presence(&presence);
        assert_eq!(facts.role, Role::None);
        assert_eq!(facts.affiliation, Affiliation::Member);
        assert!(facts.unavailable);
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
