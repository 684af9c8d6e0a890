//! `<approval/>`: a moderator approved (or withdrew) an occupant's kind in Jitsi's A/V moderation.
//!
//! Jitsi Meet's "Ask to unmute" / "Allow video" sends `<av_moderation jidToWhitelist='room@muc/nick'
//! mediaType='audio|video|desktop'/>` from the moderator's session to the A/V moderation component;
//! "withdraw" sends `jidToBlacklist`. With `podium_av_moderation_component` set, mod_podium watches that
//! component's messages and reports each one from a moderator of the room, about an occupant in it:
//!
//! ```xml
//! <approval xmlns='urn:podium:0' room='class-7@conference.meet.example' nick='4f2a9c1e'
//!           real-jid='ada@meet.example/web-1' media='audio' approved='true'
//!           by='teacher@meet.example/web-2' meeting='5a1c…' by-anonymous='false'/>
//! ```
//!
//! `meeting` is the room's meeting id (jitsi-meet's `mod_muc_meeting_id`, or one the module gives the
//! room): the grant counts only in that meeting. `by-anonymous='true'` says the moderator's session
//! authenticated anonymously: such a moderator is anyone, the approved occupant included, so podium
//! refuses its approvals.
//!
//! podium checks both people against its own view again and turns an approval into a row of `grants`
//! (and a withdrawal into its removal).

use minidom::Element;
use xmpp_parsers::jid::{BareJid, FullJid};

use super::{PayloadError, expect, only_children, required, required_parsed};
use crate::media::Media;
use crate::xmpp::ns;

/// A moderator's approval or withdrawal of one kind for one occupant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The room.
    pub room: BareJid,
    /// The approved occupant's nick.
    pub nick: String,
    /// The approved occupant's real JID, as the module saw it.
    pub real_jid: FullJid,
    /// The kind (Jitsi's `desktop` is `screen`).
    pub media: Media,
    /// `true`: approved (`jidToWhitelist`); `false`: withdrawn (`jidToBlacklist`).
    pub approved: bool,
    /// The moderator's real JID.
    pub by: FullJid,
    /// The room's meeting id, if the module knows one.
    pub meeting: Option<String>,
    /// Whether the moderator's session authenticated anonymously.
    pub by_anonymous: bool,
}

impl TryFrom<Element> for Approval {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "approval")?;
        only_children(&element, &[])?;
        let approved = match required(&element, "approved")? {
            "true" => true,
            "false" => false,
            other => {
                return Err(PayloadError::invalid(format!(
                    "Invalid 'approved' on approval element: {other:?} is neither true nor false."
                )));
            }
        };
        Ok(Approval {
            room: required_parsed(&element, "room")?,
            nick: required(&element, "nick")?.to_owned(),
            real_jid: required_parsed(&element, "real-jid")?,
            media: required_parsed(&element, "media")?,
            approved,
            by: required_parsed(&element, "by")?,
            meeting: element
                .attr("meeting")
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            by_anonymous: match element.attr("by-anonymous") {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(PayloadError::invalid(format!(
                        "Invalid 'by-anonymous' on approval element: {other:?} is neither true nor false."
                    )));
                }
            },
        })
    }
}

impl From<Approval> for Element {
    fn from(approval: Approval) -> Element {
        Element::builder("approval", ns::PODIUM)
            .attr(ns::attr("room"), approval.room.to_string())
            .attr(ns::attr("nick"), approval.nick)
            .attr(ns::attr("real-jid"), approval.real_jid.to_string())
            .attr(ns::attr("media"), approval.media.as_str())
            .attr(
                ns::attr("approved"),
                if approval.approved { "true" } else { "false" },
            )
            .attr(ns::attr("by"), approval.by.to_string())
            .attr(ns::attr("meeting"), approval.meeting)
            .attr(
                ns::attr("by-anonymous"),
                approval.by_anonymous.then_some("true"),
            )
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APPROVAL: &str = "<approval xmlns='urn:podium:0' room='class-7@conference.localhost' \
        nick='ada' real-jid='ada@localhost/web' media='audio' approved='true' by='teacher@localhost/web' \
        meeting='m-1'/>";

    #[test]
    fn test_simple() {
        let approval = Approval::try_from(APPROVAL.parse::<Element>().unwrap()).unwrap();
        assert_eq!(approval.room.to_string(), "class-7@conference.localhost");
        assert_eq!(approval.nick, "ada");
        assert_eq!(approval.media, Media::Audio);
        assert!(approval.approved);
        assert_eq!(approval.by.to_string(), "teacher@localhost/web");
        assert_eq!(approval.meeting.as_deref(), Some("m-1"));
        assert!(!approval.by_anonymous);
    }

    #[test]
    fn test_serialise() {
        let approval = Approval {
            room: "r@conference.localhost".parse().unwrap(),
            nick: "bob".into(),
            real_jid: "bob@localhost/x".parse().unwrap(),
            media: Media::Screen,
            approved: false,
            by: "mod@localhost/y".parse().unwrap(),
            meeting: Some("m-2".into()),
            by_anonymous: true,
        };
        assert_eq!(
            Approval::try_from(Element::from(approval.clone())).unwrap(),
            approval
        );
    }

    #[test]
    fn test_invalid_approved() {
        let el: Element = APPROVAL
            .replace("approved='true'", "approved='yes'")
            .parse()
            .unwrap();
        assert_eq!(
            Approval::try_from(el).unwrap_err().to_string(),
            "Invalid 'approved' on approval element: \"yes\" is neither true nor false."
        );
    }

    #[test]
    fn test_invalid_by_anonymous() {
        let el: Element = APPROVAL
            .replace("meeting=", "by-anonymous='maybe' meeting=")
            .parse()
            .unwrap();
        assert_eq!(
            Approval::try_from(el).unwrap_err().to_string(),
            "Invalid 'by-anonymous' on approval element: \"maybe\" is neither true nor false."
        );
    }

    #[test]
    fn test_invalid_media_and_bare_approver() {
        let el: Element = APPROVAL
            .replace("media='audio'", "media='smell'")
            .parse()
            .unwrap();
        assert!(
            Approval::try_from(el)
                .unwrap_err()
                .to_string()
                .starts_with("Invalid 'media' on approval element")
        );
        let el: Element = APPROVAL
            .replace("by='teacher@localhost/web'", "by='teacher@localhost'")
            .parse()
            .unwrap();
        assert!(
            Approval::try_from(el)
                .unwrap_err()
                .to_string()
                .starts_with("Invalid 'by' on approval element")
        );
    }
}
