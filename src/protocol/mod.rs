//! podium's own payloads between `mod_podium` (on the MUC host) and the component, one file each.
//!
//! Every payload lives in the [`PODIUM`](crate::xmpp::ns::PODIUM) namespace and converts both ways:
//! `TryFrom<Element>` (telling "not this payload" from "this payload, malformed", like xmpp-parsers'
//! Mismatch/Invalid) and `From<T> for Element`. The same shapes are documented for operators and for the
//! Lua side in `docs/protocol.md`.
//!
//! | payload | direction | carried in |
//! |---|---|---|
//! | [`OccupantEvent`] | module → podium | `<message/>` |
//! | [`Reset`] | module → podium, when it loads | `<message/>` |
//! | [`Approval`] | module → podium, a moderator's A/V-moderation approval | `<message/>` |
//! | [`SnapshotRequest`] / [`Snapshot`] | podium → module / reply | `<iq type='get'/>` / result |
//! | [`SetPermissions`] / [`Applied`] | podium → module / reply | `<iq type='set'/>` / result |
//! | [`HeldQuery`] / [`HeldList`] | podium or an inspector → module / reply | `<iq type='get'/>` / result |

mod applied;
mod approval;
mod held;
mod identity;
mod occupant;
mod presence;
mod reset;
mod set_permissions;
mod snapshot;

pub use applied::Applied;
pub use approval::Approval;
pub use held::{HeldEntry, HeldList, HeldQuery};
pub use identity::Identity;
pub use occupant::{EventKind, Held, HeldOrigin, OccupantEvent, OccupantState};
pub use presence::{Affiliation, PresenceFacts, Role};
pub use reset::Reset;
pub use set_permissions::{OccupantPermissions, SetPermissions};
pub use snapshot::{RoomSnapshot, Snapshot, SnapshotRequest};

use std::str::FromStr;

use minidom::Element;

use crate::media::{Media, MediaSet};
use crate::xmpp::ns;

/// Why an element could not be turned into a payload.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The element is not this payload (other name or namespace); it is handed back untouched.
    #[error("not a {expected} element")]
    Mismatch {
        /// The payload that was tried.
        expected: &'static str,
        /// The element, for the next parser to try.
        element: Box<Element>,
    },
    /// The element is this payload but malformed: the text says what is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl PayloadError {
    fn invalid(text: impl Into<String>) -> PayloadError {
        PayloadError::Invalid(text.into())
    }
}

/// Returns the element if it is `<name xmlns=PODIUM>`, else a `Mismatch`.
fn expect(element: Element, name: &'static str) -> Result<Element, PayloadError> {
    if element.is(name, ns::PODIUM) {
        Ok(element)
    } else {
        Err(PayloadError::Mismatch {
            expected: name,
            element: Box::new(element),
        })
    }
}

/// A required attribute, with an error text naming attribute and element.
fn required<'a>(element: &'a Element, attr: &'a str) -> Result<&'a str, PayloadError> {
    element.attr(attr).ok_or_else(|| {
        PayloadError::invalid(format!(
            "Required attribute '{attr}' on {} element missing.",
            element.name()
        ))
    })
}

/// A required attribute parsed with `FromStr` (JIDs, numbers).
fn required_parsed<T: FromStr>(element: &Element, attr: &str) -> Result<T, PayloadError>
where
    T::Err: std::fmt::Display,
{
    let text = required(element, attr)?;
    text.parse().map_err(|e| {
        PayloadError::invalid(format!(
            "Invalid '{attr}' on {} element: {e}.",
            element.name()
        ))
    })
}

/// An optional attribute parsed with `FromStr`.
fn optional_parsed<T: FromStr>(element: &Element, attr: &str) -> Result<Option<T>, PayloadError>
where
    T::Err: std::fmt::Display,
{
    match element.attr(attr) {
        None => Ok(None),
        Some(_) => required_parsed(element, attr).map(Some),
    }
}

/// Rejects children other than the named ones (all in the podium namespace unless listed otherwise).
fn only_children(element: &Element, allowed: &[(&str, &str)]) -> Result<(), PayloadError> {
    for child in element.children() {
        if !allowed.iter().any(|(name, ns)| child.is(*name, *ns)) {
            return Err(PayloadError::invalid(format!(
                "Unknown child '{}' in {} element.",
                child.name(),
                element.name()
            )));
        }
    }
    Ok(())
}

/// Reads the `audio`, `video` and `screen` attributes (`true`/`false`, `1`/`0`), all required.
fn read_media_attrs(element: &Element) -> Result<MediaSet, PayloadError> {
    let mut set = MediaSet::NONE;
    for media in Media::ALL {
        let value = required(element, media.as_str())?;
        match value {
            "true" | "1" => set = set.with(media),
            "false" | "0" => {}
            other => {
                return Err(PayloadError::invalid(format!(
                    "Invalid '{media}' on {} element: expected true or false, got {other:?}.",
                    element.name()
                )));
            }
        }
    }
    Ok(set)
}

/// Writes the `audio`, `video` and `screen` attributes.
fn write_media_attrs(
    mut builder: minidom::element::ElementBuilder,
    set: MediaSet,
) -> minidom::element::ElementBuilder {
    for media in Media::ALL {
        builder = builder.attr(
            ns::attr(media.as_str()),
            if set.contains(media) { "true" } else { "false" },
        );
    }
    builder
}
