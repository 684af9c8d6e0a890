//! Rooms and occupants as podium sees them, rebuilt from the module's events and snapshots.
//!
//! The view is only ever changed by what the module reports, in the order it reports it: events and
//! snapshot pages travel on the same component stream, so replacing a room wholesale when its snapshot
//! page arrives is always consistent with the events before and after it.

pub use crate::protocol::{Affiliation, PresenceFacts, Role};

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

use crate::media::{Media, MediaSet};
use crate::protocol::{Held, Identity, OccupantState};
use crate::rules::eval::media_index;
use crate::rules::{Decision, Inputs, OccupantFacts, Service};
use crate::store::{OccupantRow, QueueRow};

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
    /// When podium saw the occupant join (or, after a resync, when podium saw it first).
    pub joined_at: Timestamp,
    /// The module's join sequence number for the occupant in the room: arrival order, which the
    /// client cannot choose, for queues after a restart of podium (when every `joined_at` is the same).
    pub join_seq: Option<u64>,
    /// The room's meeting id as the module last reported it with this occupant.
    pub meeting: Option<String>,
    /// When podium saw the hand go up (the client's own timestamp is not believed: it would let
    /// anyone jump a queue).
    pub hand_raised_at: Option<Timestamp>,
    /// Per kind ([`Media::ALL`] order): since when `SourceInfo` lists no unmuted source of it.
    pub quiet_since: [Option<Timestamp>; 3],
    /// Per kind: since when the occupant holds a slot of a cap.
    pub slot_since: [Option<Timestamp>; 3],
    /// The kinds whose `sending` the module was last asked to report (`report-sending`), as far as
    /// podium knows; the module reports every kind until podium's first decision for the occupant.
    pub report_sending: MediaSet,
    /// A hash of the last whole row written to the `occupants` table, to write only changes (the
    /// row itself, kept for 100,000 occupants, would cost tens of MB).
    pub view: Option<u64>,
    /// Whether the occupant's part of its `occupants` row is as written (`view`) since the last
    /// report about it: then a new decision writes only the decision's columns.
    pub view_current: bool,
    /// Whether its row waits to be written (it is on the engine's list of such occupants).
    pub view_dirty: bool,
    /// The occupant's JID (`room/nick`), once podium has addressed it.
    pub address: Option<FullJid>,
    /// Names this person to the engine's requests in flight (0: none yet): a new occupant, or
    /// another person taking the nick, gets a new one.
    pub serial: u64,
    /// Decisions sent to the module for this person and not answered yet.
    pub in_flight: u32,
}

impl Occupant {
    /// Builds an occupant from the module's report, seen at `now`.
    pub fn from_state(state: OccupantState, now: Timestamp) -> Occupant {
        let presence = state.presence.unwrap_or_default();
        let mut occupant = Occupant {
            nick: state.nick,
            real_jid: state.real_jid,
            identity: state.identity,
            presence: PresenceFacts::default(),
            held: state.held,
            decision: None,
            would: None,
            joined_at: now,
            join_seq: state.joined,
            meeting: state.meeting,
            hand_raised_at: None,
            quiet_since: [None; 3],
            slot_since: [None; 3],
            report_sending: MediaSet::NONE,
            view: None,
            view_current: false,
            view_dirty: false,
            address: None,
            serial: 0,
            in_flight: 0,
        };
        occupant.observe(presence, now);
        occupant
    }

    /// Applies a later report about the same occupant, seen at `now`, keeping podium's own decision.
    pub fn update(&mut self, state: OccupantState, now: Timestamp) {
        self.view_current = false;
        if let Some(presence) = state.presence {
            self.observe(presence, now);
        }
        if let Some(held) = state.held {
            self.held = Some(held);
        }
        if self.real_jid != state.real_jid {
            // Another person has the nick: nothing of the last one's standing carries over.
            self.joined_at = now;
            self.join_seq = state.joined;
            self.hand_raised_at = self.presence.raised_hand.then_some(now);
            self.slot_since = [None; 3];
            self.report_sending = MediaSet::NONE;
            self.decision = None;
            self.serial = 0;
            self.in_flight = 0;
        }
        self.real_jid = state.real_jid;
        self.identity = state.identity;
        if state.meeting.is_some() {
            self.meeting = state.meeting;
        }
    }

    /// Takes a new presence: notes when the hand went up and since when each kind is quiet.
    fn observe(&mut self, presence: PresenceFacts, now: Timestamp) {
        self.hand_raised_at = match (presence.raised_hand, self.hand_raised_at) {
            (false, _) => None,
            (true, Some(since)) => Some(since),
            (true, None) => Some(now),
        };
        for media in Media::ALL {
            let i = media_index(media);
            self.quiet_since[i] = match (presence.sending.contains(media), self.quiet_since[i]) {
                (true, _) => None,
                (false, Some(since)) => Some(since),
                (false, None) => Some(now),
            };
        }
        self.presence = presence;
    }

    /// The kinds held through a slot and kept quiet (no unmuted source) for at least `idle` since
    /// the later of the slot's start and the last unmuted source.
    pub fn idle(&self, now: Timestamp, idle: Option<SignedDuration>) -> MediaSet {
        let Some(idle) = idle else {
            return MediaSet::NONE;
        };
        Media::ALL
            .into_iter()
            .filter(|m| self.idle_from(*m).is_some_and(|from| now >= from + idle))
            .collect()
    }

    /// When a kind held through a slot started being idle (quiet while holding), if it is.
    pub fn idle_from(&self, media: Media) -> Option<Timestamp> {
        let i = media_index(media);
        Some(self.quiet_since[i]?.max(self.slot_since[i]?))
    }

    /// Notes the kinds now held through a slot.
    pub fn set_slots(&mut self, holding: MediaSet, now: Timestamp) {
        for media in Media::ALL {
            let i = media_index(media);
            self.slot_since[i] = match (holding.contains(media), self.slot_since[i]) {
                (false, _) => None,
                (true, Some(since)) => Some(since),
                (true, None) => Some(now),
            };
        }
    }

    /// The row of the `occupants` table for this occupant of `room`.
    pub fn view_row(
        &self,
        room: &BareJid,
        room_name: &str,
        trusted_domains: &[String],
    ) -> OccupantRow {
        let identity = self.identity.clone().unwrap_or_default();
        let decision = self.decision;
        OccupantRow {
            room: room.to_string(),
            room_name: room_name.to_owned(),
            nick: self.nick.clone(),
            real_jid: self.real_jid.to_string(),
            role: self.presence.role.to_string(),
            affiliation: self.presence.affiliation.to_string(),
            user_id: identity.id,
            user_name: identity.name,
            user_email: identity.email,
            user_group: identity.group,
            claims: serde_json::to_string(&identity.claims).unwrap_or_else(|_| "{}".into()),
            services: self
                .services(trusted_domains)
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            joined_at: self.joined_at.to_string(),
            hand_raised_at: self.hand_raised_at.map(|t| t.to_string()),
            permissions: decision
                .map(|d| d.permissions.to_string())
                .unwrap_or_else(|| "unknown".into()),
            reasons: decision.map(|d| d.to_string()).unwrap_or_default(),
        }
    }

    /// Everything the evaluator uses about this occupant, owned (stored with decisions).
    pub fn inputs(&self, room: &str, services: &[Service], now: Timestamp) -> Inputs {
        let identity = self.identity.clone().unwrap_or_default();
        Inputs {
            room: room.to_owned(),
            role: self.presence.role.to_string(),
            affiliation: self.presence.affiliation.to_string(),
            real_jid: bare(&self.real_jid),
            user_id: identity.id,
            group: identity.group,
            email: identity.email,
            claims: identity.claims,
            services: services.iter().map(|s| s.as_str().to_owned()).collect(),
            hand_raised_at: self.hand_raised_at,
            joined_at: self.joined_at,
            meeting: self.meeting.clone(),
            time: now,
        }
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
            hand_raised: self.hand_raised_at.is_some(),
            meeting: self.meeting.as_deref(),
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
    // Neither a node nor a domain holds a `/` (RFC 7622): the bare JID is what comes before it.
    let text = jid.as_str();
    text.split_once('/')
        .map_or(text, |(bare, _)| bare)
        .to_owned()
}

/// One room.
#[derive(Debug, Clone, Default)]
pub struct Room {
    /// The room's name: the local part of its JID (`[tenant]name` on multi-tenant Jitsi); for a
    /// breakout room, its main room's name, `/`, and its own (`lecture/6f1c…`).
    pub name: String,
    /// For a breakout room, its main room's JID.
    pub main_room: Option<BareJid>,
    /// Occupants by nick, boxed: a map keeps spare slots, and an occupant is a few hundred bytes
    /// (100,000 of them in 10-person rooms spent a third of their memory on empty slots).
    pub occupants: HashMap<String, Box<Occupant>>,
    /// The queue rows last written for this room.
    pub queue: Vec<QueueRow>,
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

    /// The room, created empty if unknown; `main_room` for a breakout room. A room keeps the main
    /// room it was first reported with; one first reported without (the module had not found it yet)
    /// takes it, and its name, from the first report that has it.
    pub fn entry(&mut self, jid: &BareJid, main_room: Option<&BareJid>) -> &mut Room {
        let room = self.rooms.entry(jid.clone()).or_insert_with(|| Room {
            name: room_name(jid, main_room),
            main_room: main_room.cloned(),
            occupants: HashMap::new(),
            queue: Vec::new(),
        });
        if room.main_room.is_none()
            && let Some(main_room) = main_room
        {
            room.name = room_name(jid, Some(main_room));
            room.main_room = Some(main_room.clone());
            // Every row of the room names it.
            for occupant in room.occupants.values_mut() {
                occupant.view_current = false;
            }
        }
        room
    }

    /// Removes an occupant; drops the room when it empties.
    pub fn remove_occupant(&mut self, jid: &BareJid, nick: &str) -> Option<Box<Occupant>> {
        let room = self.rooms.get_mut(jid)?;
        let occupant = room.occupants.remove(nick);
        if room.occupants.is_empty() {
            self.rooms.remove(jid);
        }
        occupant
    }

    /// Replaces a room wholesale (a snapshot page); an empty room is dropped.
    pub fn replace(
        &mut self,
        jid: &BareJid,
        main_room: Option<&BareJid>,
        occupants: HashMap<String, Box<Occupant>>,
    ) {
        if occupants.is_empty() {
            self.rooms.remove(jid);
        } else {
            self.rooms.insert(
                jid.clone(),
                Room {
                    name: room_name(jid, main_room),
                    main_room: main_room.cloned(),
                    occupants,
                    queue: Vec::new(),
                },
            );
        }
    }

    /// All rooms.
    pub fn iter(&self) -> impl Iterator<Item = (&BareJid, &Room)> {
        self.rooms.iter()
    }

    /// Calls `f` on every occupant.
    pub fn for_each_occupant(&mut self, mut f: impl FnMut(&mut Occupant)) {
        for room in self.rooms.values_mut() {
            for occupant in room.occupants.values_mut() {
                f(occupant);
            }
        }
    }

    /// How many occupants podium governs in all.
    pub fn occupant_count(&self) -> usize {
        self.rooms.values().map(|r| r.occupants.len()).sum()
    }
}

/// The name rules match: the room JID's local part; for a breakout room, its main room's name, `/`,
/// and its own. A JID's local part never holds `/`, so the two kinds of name never meet.
pub fn room_name(jid: &BareJid, main_room: Option<&BareJid>) -> String {
    let node = |jid: &BareJid| {
        jid.node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default()
    };
    match main_room {
        Some(main) => format!("{}/{}", node(main), node(jid)),
        None => node(jid),
    }
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
            joined_at: Timestamp::UNIX_EPOCH,
            join_seq: None,
            meeting: None,
            hand_raised_at: None,
            quiet_since: [None; 3],
            slot_since: [None; 3],
            report_sending: MediaSet::NONE,
            view: None,
            view_current: false,
            view_dirty: false,
            address: None,
            serial: 0,
            in_flight: 0,
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
