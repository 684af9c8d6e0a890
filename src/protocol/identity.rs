//! `<identity/>`: who the server says an occupant is.
//!
//! Filled by `mod_podium` from the session that Jitsi token auth prepared
//! (`session.jitsi_meet_context_user` id/name/email and `session.jitsi_meet_context_group`, set by
//! jitsi-meet `token/util.lib.lua` `process_and_verify_token`). A client cannot forge it: it never comes
//! from the client's own stanzas.
//!
//! Other claims under the token's `context.user` and `context.features` travel as `<claim>` children,
//! named `user.<key>` and `features.<key>`, with their value as text (`true`/`false` for booleans).
//!
//! ```xml
//! <identity xmlns='urn:podium:0' id='u-42' name='Alice' email='alice@example.com' group='acme'>
//!   <claim name='user.department' value='sales'/>
//!   <claim name='features.screen-sharing' value='true'/>
//! </identity>
//! ```

use std::collections::BTreeMap;

use minidom::Element;

use super::{PayloadError, expect, only_children, required};
use crate::xmpp::ns;

/// The server-known identity of an occupant's session; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// JWT `context.user.id`.
    pub id: Option<String>,
    /// JWT `context.user.name`.
    pub name: Option<String>,
    /// JWT `context.user.email`.
    pub email: Option<String>,
    /// JWT `context.group`.
    pub group: Option<String>,
    /// Other claims: `user.<key>` and `features.<key>` → value.
    pub claims: BTreeMap<String, String>,
}

impl TryFrom<Element> for Identity {
    type Error = PayloadError;

    fn try_from(element: Element) -> Result<Self, Self::Error> {
        let element = expect(element, "identity")?;
        only_children(&element, &[("claim", ns::PODIUM)])?;
        let get = |attr: &str| element.attr(attr).map(str::to_owned);
        let mut claims = BTreeMap::new();
        for claim in element.children() {
            let name = required(claim, "name")?;
            if !(name.starts_with("user.") || name.starts_with("features.")) {
                return Err(PayloadError::invalid(format!(
                    "Claim name {name:?} is neither user.<key> nor features.<key>."
                )));
            }
            claims.insert(name.to_owned(), required(claim, "value")?.to_owned());
        }
        Ok(Identity {
            id: get("id"),
            name: get("name"),
            email: get("email"),
            group: get("group"),
            claims,
        })
    }
}

impl From<Identity> for Element {
    fn from(identity: Identity) -> Element {
        Element::builder("identity", ns::PODIUM)
            .attr(ns::attr("id"), identity.id)
            .attr(ns::attr("name"), identity.name)
            .attr(ns::attr("email"), identity.email)
            .attr(ns::attr("group"), identity.group)
            .append_all(identity.claims.into_iter().map(|(name, value)| {
                Element::builder("claim", ns::PODIUM)
                    .attr(ns::attr("name"), name)
                    .attr(ns::attr("value"), value)
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
        let el: Element = "<identity xmlns='urn:podium:0' id='u1' group='acme'/>"
            .parse()
            .unwrap();
        let identity = Identity::try_from(el).unwrap();
        assert_eq!(identity.id.as_deref(), Some("u1"));
        assert_eq!(identity.group.as_deref(), Some("acme"));
        assert_eq!(identity.name, None);
    }

    #[test]
    fn test_serialise() {
        let identity = Identity {
            id: Some("u1".into()),
            name: Some("Alice".into()),
            email: Some("a@example.com".into()),
            group: None,
            claims: BTreeMap::from([
                ("user.department".to_owned(), "sales".to_owned()),
                ("features.recording".to_owned(), "true".to_owned()),
            ]),
        };
        let el = Element::from(identity.clone());
        assert_eq!(Identity::try_from(el).unwrap(), identity);
    }

    #[test]
    fn test_claims() {
        let el: Element = "<identity xmlns='urn:podium:0' id='u1'>\
            <claim name='user.department' value='sales'/>\
            <claim name='features.screen-sharing' value='true'/></identity>"
            .parse()
            .unwrap();
        let identity = Identity::try_from(el).unwrap();
        assert_eq!(identity.claims["user.department"], "sales");
        assert_eq!(identity.claims["features.screen-sharing"], "true");
    }

    #[test]
    fn test_invalid_claim() {
        let el: Element =
            "<identity xmlns='urn:podium:0'><claim name='room' value='x'/></identity>"
                .parse()
                .unwrap();
        assert_eq!(
            Identity::try_from(el).unwrap_err().to_string(),
            "Claim name \"room\" is neither user.<key> nor features.<key>."
        );
        let el: Element = "<identity xmlns='urn:podium:0'><claim name='user.x'/></identity>"
            .parse()
            .unwrap();
        assert_eq!(
            Identity::try_from(el).unwrap_err().to_string(),
            "Required attribute 'value' on claim element missing."
        );
    }

    #[test]
    fn test_invalid_child() {
        let el: Element = "<identity xmlns='urn:podium:0'><x xmlns='urn:podium:0'/></identity>"
            .parse()
            .unwrap();
        assert_eq!(
            Identity::try_from(el).unwrap_err().to_string(),
            "Unknown child 'x' in identity element."
        );
    }

    #[test]
    fn test_mismatch() {
        let el: Element = "<identity xmlns='urn:other'/>".parse().unwrap();
        assert!(matches!(
            Identity::try_from(el),
            Err(PayloadError::Mismatch { .. })
        ));
    }
}
