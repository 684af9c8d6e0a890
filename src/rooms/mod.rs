//! Rooms and occupants as podium sees them, rebuilt from the module's events and snapshots.
//!
//! The view is only ever changed by what the module reports, in the order it reports it: events and
//! snapshot pages travel on the same component stream, so replacing a room wholesale when its snapshot
//! page arrives is always consistent with the events before and after it.

mod presence;

pub use presence::{Affiliation, PresenceFacts, Role};

use std::collections::HashMap;

use xmpp_parsers::jid::{BareJid, Jid};

use crate::media::MediaSet;
use crate::protocol::{Held, Identity, OccupantState};
use crate::rules::{Decision, OccupantFacts, Service};

/// One occupant podium governs.
#[derive(Debug, Clone)]
pub struct Occupant {
    /// Nick (Jitsi endpoint id).
    pub nick: String,
    /// Real JID of the primary session.
    pub real_jid: Jid,
    /// Server-known identity from token auth.
    pub identity: Option<Identity>,
    /// What the last presence said.
    pub presence: PresenceFacts,
    /// What the module holds, as far as podium knows (from the module's reports and acknowledged
    /// decisions). `None` when unknown, e.g. after a failed update: the next pass sends again.
    pub held: Option<Held>,
    /// podium's last decision for this occupant.
    pub decision: Option<Decision>,
    /// The last dry-run outcome noted for this occupant (what it *would* be allowed), so a would-be
    /// change is logged and audited once, not on every pass.
    pub would: Option<MediaSet>,
}

impl Occupant {
    /// Builds an occupant from the module's report.
    pub fn from_state(state: OccupantState) -> Occupant {
        let presence = state
            .presence
            .as_ref()
            .map(PresenceFacts::from_presence)
            .unwrap_or_default();
        Occupant {
            nick: state.nick,
            real_jid: state.real_jid,
            identity: state.identity,
            presence,
            held: state.held,
            decision: None,
            would: None,
        }
    }

    /// Applies a later report about the same occupant, keeping podium's own decision.
    pub fn update(&mut self, state: OccupantState) {
        if let Some(presence) = &state.presence {
            self.presence = PresenceFacts::from_presence(presence);
        }
        if let Some(held) = state.held {
            self.held = Some(held);
        }
        self.real_jid = state.real_jid;
        self.identity = state.identity;
    }

    /// The inputs of the rule evaluator for this occupant in `room`. `services` is
    /// [`Occupant::services`], computed once per occupant.
    pub fn facts<'a>(
        &'a self,
        room: &'a str,
        services: &'a [Service],
        now: jiff::Timestamp,
    ) -> OccupantFacts<'a> {
        OccupantFacts {
            room,
            role: self.presence.role,
            affiliation: self.presence.affiliation,
            real_bare_jid: bare(&self.real_jid),
            user_id: self.identity.as_ref().and_then(|i| i.id.as_deref()),
            group: self.identity.as_ref().and_then(|i| i.group.as_deref()),
            email: self.identity.as_ref().and_then(|i| i.email.as_deref()),
            claims: self.identity.as_ref().map(|i| &i.claims),
            services,
            now,
        }
    }

    /// The Jitsi services (jibri, jigasi, transcriber) this occupant announces in presence, counted
    /// only when its real JID's domain is trusted: the features are client-asserted, so, like jicofo
    /// (`jicofo.xmpp.trusted-domains`), podium believes them only from the services' own domains.
    pub fn services(&self, trusted_domains: &[String]) -> Vec<Service> {
        let domain = self.real_jid.domain().as_str();
        if !trusted_domains
            .iter()
            .any(|t| t.eq_ignore_ascii_case(domain))
        {
            return Vec::new();
        }
        Service::ALL
            .into_iter()
            .filter(|service| {
                self.presence
                    .features
                    .iter()
                    .any(|f| f == service.feature())
            })
            .collect()
    }
}

fn bare(jid: &Jid) -> String {
    jid.to_bare().to_string()
}

/// One room.
#[derive(Debug, Clone, Default)]
pub struct Room {
    /// The room's name: the local part of its JID (`[tenant]name` on multi-tenant Jitsi).
    pub name: String,
    /// Occupants by nick.
    pub occupants: HashMap<String, Occupant>,
}

/// Every room podium knows.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<BareJid, Room>,
}

impl Rooms {
    /// The room, if known.
    pub fn get(&self, jid: &BareJid) -> Option<&Room> {
        self.rooms.get(jid)
    }

    /// The room, mutable, if known.
    pub fn entry_existing(&mut self, jid: &BareJid) -> Option<&mut Room> {
        self.rooms.get_mut(jid)
    }

    /// The room, created empty if unknown.
    pub fn entry(&mut self, jid: &BareJid) -> &mut Room {
        self.rooms.entry(jid.clone()).or_insert_with(|| Room {
            name: room_name(jid),
            occupants: HashMap::new(),
        })
    }

    /// Removes an occupant; drops the room when it empties.
    pub fn remove_occupant(&mut self, jid: &BareJid, nick: &str) -> Option<Occupant> {
        let room = self.rooms.get_mut(jid)?;
        let occupant = room.occupants.remove(nick);
        if room.occupants.is_empty() {
            self.rooms.remove(jid);
        }
        occupant
    }

    /// Replaces a room wholesale (a snapshot page); an empty room is dropped.
    pub fn replace(&mut self, jid: &BareJid, occupants: HashMap<String, Occupant>) {
        if occupants.is_empty() {
            self.rooms.remove(jid);
        } else {
            self.rooms.insert(
                jid.clone(),
                Room {
                    name: room_name(jid),
                    occupants,
                },
            );
        }
    }

    /// All rooms.
    pub fn iter(&self) -> impl Iterator<Item = (&BareJid, &Room)> {
        self.rooms.iter()
    }

    /// How many occupants podium governs in all.
    pub fn occupant_count(&self) -> usize {
        self.rooms.values().map(|r| r.occupants.len()).sum()
    }
}

/// The name rules match: the room JID's local part.
pub fn room_name(jid: &BareJid) -> String {
    jid.node()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occupant(real_jid: &str, features: &[&str]) -> Occupant {
        Occupant {
            nick: "rec".into(),
            real_jid: real_jid.parse().unwrap(),
            identity: None,
            presence: PresenceFacts {
                features: features.iter().map(|f| f.to_string()).collect(),
                ..PresenceFacts::default()
            },
            held: None,
            decision: None,
            would: None,
        }
    }

    #[test]
    fn test_services_only_from_trusted_domains() {
        let trusted = vec!["Recorder.localhost".to_owned()];
        let jibri = occupant(
            "recorder@recorder.localhost/r",
            &["http://jitsi.org/protocol/jibri", "urn:other"],
        );
        assert_eq!(jibri.services(&trusted), vec![Service::Jibri]);
        assert!(jibri.services(&[]).is_empty());
        // The same claim from an ordinary account is ignored: presence features are client-asserted.
        let impostor = occupant("mallory@localhost/m", &["http://jitsi.org/protocol/jibri"]);
        assert!(impostor.services(&trusted).is_empty());
    }
}
