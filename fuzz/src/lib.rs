//! Shared harness of podium's fuzz targets: raw bytes become an element through the same depth bound
//! podium applies to its component stream ([`podium::xmpp::depth`]), then go to one parser.

use std::fmt::Debug;

use minidom::Element;
use podium::protocol::PayloadError;
use podium::xmpp::depth::{MAX_STANZA_DEPTH, parse_bounded};

/// The element the bytes make, if they are one bounded XML document.
pub fn element(data: &[u8]) -> Option<Element> {
    parse_bounded(data, MAX_STANZA_DEPTH).ok()
}

/// Feeds a payload parser. A payload it accepts must survive a round trip: serialised and parsed
/// again, it is the same payload. `same` compares what the serialisation carries.
pub fn payload<T>(data: &[u8], same: impl Fn(&T, &T) -> bool)
where
    T: TryFrom<Element, Error = PayloadError> + Into<Element> + Clone + Debug,
{
    let Some(element) = element(data) else { return };
    match T::try_from(element) {
        Ok(parsed) => {
            let again = T::try_from(parsed.clone().into())
                .unwrap_or_else(|e| panic!("{parsed:?} does not parse back: {e}"));
            assert!(same(&parsed, &again), "{parsed:?} came back as {again:?}");
        }
        Err(PayloadError::Mismatch { .. } | PayloadError::Invalid(_)) => {}
    }
}
