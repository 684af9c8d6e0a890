//! The engine: desired permissions per occupant, diffed against what the module holds, sent.
//!
//! [`Engine`] is a state machine with no I/O of its own: the run loop feeds it link events, stanzas and
//! rule sets, and takes back [`Effects`] (stanzas to send, audit records to write). That keeps every
//! decision path testable without a network.
//!
//! - On every **login** the view is cleared and rebuilt from the module's snapshot (resync); once the
//!   last page is in, every occupant is decided and only the differences from what the module holds
//!   are sent.
//! - On every **occupant event** (joined, changed, left) that occupant is decided again; in a room
//!   whose rules have caps or requests, the whole room is (a leave or a lowered hand frees a slot for
//!   the next in line).
//! - On every **rule or grant change**, at every rule window edge and grant expiry, every occupant is
//!   decided again; when a slot holder has been idle for `rules.idle_seconds`, its room is.
//! - Such a **pass over every room** (and the one after a resync) is decided a slice of rooms at a
//!   time ([`Engine::work`]); the run loop sends each slice's changes before the next, so with 100,000
//!   occupants the first changes reach the module at once, and events and shutdown wait one slice
//!   at most. Its per-occupant lines are DEBUG; one INFO line sums the pass up.
//!
//! Besides the decisions and their audit records (with the inputs and the explanation), the engine
//! keeps podium's live view in SQL up to date: the `occupants` table and each room's `queue`.
//!
//! Decisions in flight are counted per occupant, so an event the module sent before it applied a
//! decision does not make podium send the same decision twice.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use minidom::Element;
use tokio_xmpp::Stanza;
use tracing::{debug, info, warn};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use jiff::{SignedDuration, Timestamp};

use crate::media::{Media, MediaSet};
use crate::protocol::{
    Applied, Approval, EventKind, Held, HeldOrigin, Identity, OccupantEvent, OccupantPermissions,
    PayloadError, Reset, SetPermissions, Snapshot, SnapshotRequest,
};
use crate::rooms::Role;
use crate::rooms::{Occupant, Rooms};
use crate::rules::{
    Decision, Effect, Reason, RuleSet, Seat, Standing, room_rules_text, rules_text, settle,
};
use crate::store::{ApprovalKey, AuditRecord, AuditText, GrantChange, QueueRow, ViewWrite};
use crate::xmpp::ns;

/// Logs a per-occupant line at INFO for one occupant's event, at DEBUG inside a pass over every
/// room (whose summary is the INFO line): 100,000 lines per rule edit are no log to read.
macro_rules! occupant_log {
    ($pass:expr, $($field:tt)+) => {
        if $pass {
            debug!($($field)+)
        } else {
            info!($($field)+)
        }
    };
}

/// How often the run loop calls [`Engine::tick`].
pub const TICK: std::time::Duration = std::time::Duration::from_secs(5);

/// Ticks after which an unanswered request counts as failed (15 to 20 s).
pub const ANSWER_TICKS: u64 = 4;

/// Decisions per `<permissions/>` IQ at most: a slice's changes go in one IQ, so the module carries
/// them out in one batch, writing every request for jicofo before it tells any client (it tells the
/// clients when Prosody's turn is over, and Prosody reads the next IQ between turns). In IQs of 100, an
/// edit for 500 occupants wrote 100 mute IQs to clients, and collected their garbage, between each
/// batch of requests to jicofo.
const BATCH: usize = SLICE;

/// Bytes of `<occupant/>` entries per `<permissions/>` at most (as [`entry_bytes`] counts them): far
/// below what Prosody reads from a component in one stanza (0.12: `component_stanza_size_limit`,
/// 512 KB by default; a bigger stanza closes the link), whatever the length of the JIDs.
const BATCH_BYTES: usize = 256 * 1024;

/// Occupants decided per [`Engine::work`] call in a pass over every room: the run loop sends each
/// slice's changes before the next, so the first reach the module within milliseconds of a rule
/// edit, and a shutdown or an occupant event waits for one slice at most.
const SLICE: usize = 1000;

/// Occupants in a pass's first slice, decided at once when the pass starts: small, so the first
/// changes of a rule edit are on the link within milliseconds.
const FIRST_SLICE: usize = 100;

/// Distinct decisions whose reasons text is kept (then the cache starts over).
const REASONS_KEPT: usize = 4096;

/// At most the bytes an `<occupant/>` entry takes in a `<permissions/>`: its two JIDs as escaped in
/// an attribute (`&apos;` for `'`, and so on) and the rest: the element, its three media
/// attributes and ` report-sending='audio video screen'` at the longest come to under 136 bytes.
fn entry_bytes(entry: &OccupantPermissions) -> usize {
    let escaped = |text: &str| {
        text.len()
            + 5 * text
                .bytes()
                .filter(|b| matches!(b, b'<' | b'>' | b'&' | b'\'' | b'"'))
                .count()
    };
    escaped(entry.jid.as_str()) + escaped(entry.real_jid.as_str()) + 136
}

/// How many of `changes`, from the first, go in one `<permissions/>`: at most [`BATCH`] entries and
/// [`BATCH_BYTES`], at least one.
fn batch_len(changes: &[OccupantPermissions]) -> usize {
    let mut bytes = 0;
    let fitting = changes
        .iter()
        .take(BATCH)
        .take_while(|entry| {
            bytes += entry_bytes(entry);
            bytes <= BATCH_BYTES
        })
        .count();
    fitting.max(1).min(changes.len())
}

/// What the engine wants done.
#[derive(Debug, Default)]
pub struct Effects {
    /// Stanzas to send on the current link.
    pub stanzas: Vec<Stanza>,
    /// Records for the audit log.
    pub audit: Vec<AuditRecord>,
    /// Changes to the live view (`occupants`, `queue`).
    pub view: Vec<ViewWrite>,
    /// Approvals to write to `grants` (a moderator's A/V-moderation approval or withdrawal).
    pub grants: Vec<GrantChange>,
}

/// Why an occupant is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It joined.
    Joined,
    /// Its presence changed.
    Changed,
    /// It left.
    Left,
    /// The rules changed.
    Rules,
    /// podium (re)connected and compared its decisions with what the module holds.
    Resync,
    /// A rule's time window opened or closed, or a grant expired.
    Schedule,
    /// Someone else's change moved the room's queue (a holder left, lowered the hand, lost the
    /// right, went idle; a cap changed).
    Queue,
    /// The occupant kept a capped kind muted past the idle time while others waited.
    Idle,
}

impl Cause {
    /// Whether this cause decides every occupant in one pass: its per-occupant lines are details
    /// (DEBUG), the pass's summary is the INFO line.
    fn is_pass(self) -> bool {
        matches!(self, Cause::Rules | Cause::Resync | Cause::Schedule)
    }

    fn as_str(self) -> &'static str {
        match self {
            Cause::Joined => "joined",
            Cause::Changed => "changed",
            Cause::Left => "left",
            Cause::Rules => "rules",
            Cause::Resync => "resync",
            Cause::Schedule => "schedule",
            Cause::Queue => "queue",
            Cause::Idle => "idle",
        }
    }
}

#[derive(Debug)]
enum Pending {
    /// A snapshot page of this MUC host.
    Snapshot(BareJid),
    /// Decisions sent: the occupant, its [`Occupant::serial`] then, what was sent.
    Permissions(Vec<(FullJid, u64, MediaSet)>),
}

/// A pass deciding every occupant again (after a resync, a rule edit, a rule window edge), a slice
/// of rooms per [`Engine::work`] call.
#[derive(Debug)]
struct Pass {
    cause: Cause,
    /// Rooms not decided yet in this pass.
    rooms: std::collections::VecDeque<BareJid>,
    /// Changes sent so far.
    changes: usize,
    /// Occupants decided so far.
    decided: usize,
}

/// What records of the same decision share: its reasons and its rule ids, as written.
#[derive(Debug)]
struct DecisionTexts {
    reasons: Arc<AuditText>,
    rule_ids: Arc<str>,
}

/// The part every stored explanation shares, and what it was made from.
#[derive(Debug)]
struct SharedText {
    /// The rule set (weak: its memory is not reused for another while this is held, so the same
    /// address is the same rules).
    rules: std::sync::Weak<RuleSet>,
    /// The next rule window edge after it was made: from then on some rule's state may differ.
    until: Option<Timestamp>,
    text: Arc<AuditText>,
}

/// Where the engine is in a resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No link.
    Offline,
    /// Logged in; snapshot pages are coming in.
    Resyncing,
    /// The view is complete; decisions flow.
    Live,
}

/// The decision engine.
#[derive(Debug)]
pub struct Engine {
    component: Jid,
    muc: BareJid,
    /// Jitsi's breakout-room MUC, when governed (`xmpp.breakout_muc`).
    breakout_muc: Option<BareJid>,
    snapshot_page: u32,
    rules: Arc<RuleSet>,
    rooms: Rooms,
    phase: Phase,
    /// Requests awaiting the module's answer, with the tick count at which they were sent and the
    /// MUC host they were sent to (the only one whose answer counts).
    pending: HashMap<String, (Pending, u64, BareJid)>,
    ticks: u64,
    /// The last [`Occupant::serial`] given: decisions in flight are counted on the occupant, for
    /// the person it is (a late answer for someone who left, or whose nick another person has
    /// now, never counts for the next).
    serial: u64,
    next_id: u64,
    /// Domains whose jibri/jigasi/transcriber presence features are believed.
    /// podium as a whole in dry-run (`rules.dry_run`): decisions are logged and audited, never sent.
    dry_run: bool,
    trusted_service_domains: Vec<String>,
    /// `rules.idle_seconds`: a slot holder quiet this long yields to the queue.
    idle: Option<SignedDuration>,
    /// `rules.approval_minutes`: how long a moderator's A/V-moderation approval grants; `None`:
    /// approvals are not turned into grants.
    approval: Option<SignedDuration>,
    /// Per room with a quiet slot holder: when it becomes idle.
    idle_edges: HashMap<BareJid, Timestamp>,
    /// The next rule window edge or grant expiry, as last computed.
    rule_edge: Option<Timestamp>,
    /// The rule set `rule_edge` was computed from (weak, as [`SharedText::rules`]): the next edge
    /// is computed again only for new rules or once it has passed, not on every turn of the run
    /// loop (a scan of every rule).
    rule_edge_of: std::sync::Weak<RuleSet>,
    /// The view before a resync, so joins, hands and slots carry over for the same people.
    before_resync: Rooms,
    /// During a resync, the rooms whose snapshot page is in: only their view is complete.
    paged: HashSet<BareJid>,
    /// The pass over every room under way, if any.
    pass: Option<Pass>,
    /// Occupants whose live-view row is out of date, in the order they became so
    /// ([`Engine::flush_views`]).
    dirty_views: std::collections::VecDeque<(BareJid, String)>,
    /// Reasons texts by decision ([`Engine::reasons_text`]), at most [`REASONS_KEPT`].
    reasons: HashMap<Decision, Arc<DecisionTexts>>,
    /// The time decisions are stamped with, as written (shared by the records of a turn).
    at_text: Option<(Timestamp, Arc<str>)>,
    /// The part of every stored explanation all rooms share ([`rules_text`]), for the rule set it
    /// was made from (by address) until the next rule window edge.
    shared_text: Option<SharedText>,
    effects: Effects,
    now: jiff::Timestamp,
}

impl Engine {
    /// A new engine for the component `component` governing the MUC host `muc`.
    pub fn new(component: Jid, muc: BareJid, snapshot_page: u32, rules: Arc<RuleSet>) -> Engine {
        Engine {
            component,
            muc,
            breakout_muc: None,
            snapshot_page,
            rules,
            rooms: Rooms::default(),
            phase: Phase::Offline,
            pending: HashMap::new(),
            ticks: 0,
            serial: 0,
            next_id: 0,
            trusted_service_domains: Vec::new(),
            dry_run: false,
            idle: None,
            approval: None,
            idle_edges: HashMap::new(),
            rule_edge: None,
            rule_edge_of: std::sync::Weak::new(),
            before_resync: Rooms::default(),
            paged: HashSet::new(),
            pass: None,
            shared_text: None,
            reasons: HashMap::new(),
            at_text: None,
            dirty_views: std::collections::VecDeque::new(),
            effects: Effects::default(),
            now: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    /// Also governs Jitsi's breakout-room MUC `host` (`xmpp.breakout_muc`), where mod_podium reports
    /// each breakout room with its main room.
    pub fn set_breakout_muc(&mut self, host: Option<BareJid>) {
        self.breakout_muc = host;
    }

    /// Puts podium as a whole in dry-run: every decision is logged and audited as what podium would
    /// change, and nothing is sent to the module.
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// Believes jibri, jigasi and transcriber presence features only from these domains
    /// (`rules.trusted_service_domains`).
    pub fn set_trusted_service_domains(&mut self, domains: Vec<String>) {
        self.trusted_service_domains = domains;
    }

    /// A slot holder whose capped kind stays muted (per `SourceInfo`) this long yields its slot to
    /// the next in line (`rules.idle_seconds`; `None`: never).
    pub fn set_idle(&mut self, idle: Option<std::time::Duration>) {
        self.idle = idle.and_then(|d| SignedDuration::try_from(d).ok());
    }

    /// A moderator's A/V-moderation approval becomes a grant for this long (`rules.approval_minutes`;
    /// `None`: approvals are not turned into grants).
    pub fn set_approval(&mut self, approval: Option<std::time::Duration>) {
        self.approval = approval.and_then(|d| SignedDuration::try_from(d).ok());
    }

    /// Sets the time decisions are made at and stamped with (the engine reads no clock).
    pub fn set_now(&mut self, now: jiff::Timestamp) {
        self.now = now;
    }

    /// The next moment something changes without an event: a rule window opens or closes, a grant
    /// expires, a slot holder becomes idle. The run loop calls [`Engine::edge`] then.
    pub fn next_edge(&mut self) -> Option<jiff::Timestamp> {
        let fresh = std::ptr::eq(self.rule_edge_of.as_ptr(), Arc::as_ptr(&self.rules))
            && self.rule_edge.is_none_or(|at| at > self.now);
        if !fresh {
            self.rule_edge = self.rules.next_edge(self.now);
            self.rule_edge_of = Arc::downgrade(&self.rules);
        }
        let idle = self.idle_edges.values().filter(|at| **at > self.now).min();
        match (self.rule_edge, idle) {
            (Some(a), Some(b)) => Some(a.min(*b)),
            (a, b) => a.or(b.copied()),
        }
    }

    /// An edge passed: at a rule window edge or grant expiry everyone is decided again; rooms with a
    /// newly idle slot holder are settled again.
    pub fn edge(&mut self) {
        if self.phase != Phase::Live {
            return;
        }
        if self.rule_edge.is_some_and(|at| at <= self.now) {
            self.decide_all(Cause::Schedule);
            return;
        }
        let due: Vec<BareJid> = self
            .idle_edges
            .iter()
            .filter(|(_, at)| **at <= self.now)
            .map(|(room, _)| room.clone())
            .collect();
        for room in due {
            self.idle_edges.remove(&room);
            let changes = self.decide_room(&room, Cause::Idle, None);
            if !changes.is_empty() {
                info!(room = %room, changes = changes.len(), "slot holder idle; queue moved");
            }
            self.send_permissions(changes);
        }
    }

    /// Called every [`TICK`] by the run loop: a request the module has not answered within
    /// [`ANSWER_TICKS`] ticks counts as failed, so a lost answer can neither keep a resync open nor
    /// keep an occupant's reports ignored (its decision counted as in flight) until the next reconnect.
    pub fn tick(&mut self) {
        self.ticks += 1;
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (_, sent, _))| self.ticks - sent >= ANSWER_TICKS)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((pending, _, _)) = self.pending.remove(&id) {
                warn!(%id, "no answer from the module in time; treating the request as failed");
                self.answer(pending, Err(()));
            }
        }
    }

    /// Hands over what the engine wants done.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    /// The resync phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current view of rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// Logged in: forget the old view and ask for a snapshot.
    pub fn link_up(&mut self) {
        self.phase = Phase::Resyncing;
        self.pass = None;
        self.pending.clear();
        self.idle_edges.clear();
        // The rows are cleared below; the new view's occupants are written as they are decided.
        self.dirty_views.clear();
        let before = std::mem::take(&mut self.rooms);
        if before.occupant_count() > 0 {
            self.before_resync = before;
        }
        self.paged.clear();
        self.effects.view.push(ViewWrite::Clear);
        info!("resync started");
        self.request_snapshot(self.muc.clone(), None);
    }

    /// The link is gone; nothing can be sent until the next login.
    pub fn link_down(&mut self) {
        self.phase = Phase::Offline;
        self.pass = None;
        self.pending.clear();
        self.rooms
            .for_each_occupant(|occupant| occupant.in_flight = 0);
    }

    /// New rules: decide everyone again. Returns the rules replaced, for the caller to free where
    /// it suits (a large set takes milliseconds).
    pub fn rules_changed(&mut self, rules: Arc<RuleSet>) -> Arc<RuleSet> {
        let retired = std::mem::replace(&mut self.rules, rules);
        if self.phase == Phase::Live {
            self.decide_all(Cause::Rules);
        }
        retired
    }

    /// A stanza from Prosody.
    pub fn stanza(&mut self, stanza: Stanza) {
        match stanza {
            Stanza::Message(message) => self.message(message),
            Stanza::Iq(iq) => self.iq(iq),
            Stanza::Presence(_) => debug!("presence to the component ignored"),
        }
    }

    fn message(&mut self, message: Message) {
        if message.type_ == MessageType::Error {
            debug!(from = ?message.from, "error message ignored (a bounce)");
            return;
        }
        let from = message.from.clone();
        for payload in message.payloads {
            let payload = match Reset::try_from(payload) {
                Ok(Reset) if self.host_of(from.as_ref()).is_some() => {
                    if self.phase != Phase::Offline {
                        info!("mod_podium (re)loaded; resyncing");
                        self.link_up();
                    }
                    continue;
                }
                Ok(Reset) => {
                    warn!(from = ?from, "reset not from the MUC host; ignored");
                    continue;
                }
                Err(PayloadError::Mismatch { element, .. }) => *element,
                Err(PayloadError::Invalid(error)) => {
                    warn!(from = ?from, %error, "malformed reset skipped");
                    continue;
                }
            };
            let payload = match Approval::try_from(payload) {
                Ok(approval) => {
                    match self
                        .host_of(from.as_ref())
                        .filter(|host| approval.room.domain() == host.domain())
                    {
                        Some(_) => self.approval(approval),
                        None => {
                            warn!(from = ?from, room = %approval.room, "approval not from the room's MUC host; ignored")
                        }
                    }
                    continue;
                }
                Err(PayloadError::Mismatch { element, .. }) => *element,
                Err(PayloadError::Invalid(error)) => {
                    warn!(from = ?from, %error, "malformed approval skipped");
                    continue;
                }
            };
            match OccupantEvent::try_from(payload) {
                Ok(mut event) => {
                    let Some(host) = self
                        .host_of(from.as_ref())
                        .filter(|host| event.room.domain() == host.domain())
                    else {
                        warn!(from = ?from, room = %event.room, "occupant event not from the room's MUC host; ignored");
                        continue;
                    };
                    event.main_room = self.main_room_of(&host, &event.room, event.main_room);
                    self.occupant_event(event);
                }
                Err(PayloadError::Mismatch { element, .. }) => {
                    debug!(from = ?from, element = element.name(), "message payload ignored")
                }
                Err(PayloadError::Invalid(error)) => {
                    warn!(from = ?from, %error, "malformed occupant event skipped")
                }
            }
        }
    }

    /// A moderator approved or withdrew a kind for an occupant in Jitsi's A/V moderation (reported by
    /// the module, which checked both in the room): checked again against podium's view, it becomes
    /// a change to `grants`, keyed by the occupant's token user id or else real bare JID, and the
    /// room's name. An approval counts only where an admin's rule lets the kind be asked for
    /// (`effect = 'request'` decides it, grants aside), and never for the moderator themself: a
    /// moderator cannot lift an admin's deny.
    fn approval(&mut self, approval: Approval) {
        let Approval {
            room,
            nick,
            real_jid,
            media,
            approved,
            by,
            meeting,
            by_anonymous,
        } = approval;
        let Some(duration) = self.approval else {
            info!(room = %room, occupant = %nick, %media, "A/V-moderation approval not turned into a grant (rules.approval_minutes = 0)");
            return;
        };
        let Some(view) = self.rooms.get(&room) else {
            warn!(room = %room, occupant = %nick, "approval for a room podium does not govern; ignored");
            return;
        };
        let (real_jid, by) = (Jid::from(real_jid), Jid::from(by));
        let Some(occupant) = view.occupants.get(&nick).filter(|o| o.real_jid == real_jid) else {
            warn!(room = %room, occupant = %nick, "approval for someone not in the room (as podium sees it); ignored");
            return;
        };
        let Some(moderator) = view
            .occupants
            .values()
            .find(|o| o.real_jid == by && o.presence.role == Role::Moderator)
        else {
            warn!(room = %room, occupant = %nick, by = %by, "approval from someone podium does not see as a moderator of the room; ignored");
            return;
        };
        let user_id = |o: &Occupant| {
            o.identity
                .as_ref()
                .and_then(|i| i.id.clone())
                .filter(|id| !id.trim().is_empty() && id.trim() == id)
        };
        // The meeting the approval belongs to: the one the room holds now, as the module says.
        let meeting = meeting.filter(|m| occupant.meeting.as_ref() == Some(m));
        if approved {
            let same_user = user_id(occupant).is_some() && user_id(occupant) == user_id(moderator);
            if moderator.real_jid.to_bare() == real_jid.to_bare() || same_user {
                warn!(room = %room, occupant = %nick, "a moderator approving themself; ignored");
                return;
            }
            // An anonymous session proves no identity: the same person can hold it and the
            // approved occupant's session (two anonymous sessions, one of them a moderator), and
            // podium cannot tell them apart. Such a moderator's approval is no one's decision.
            if by_anonymous {
                warn!(room = %room, occupant = %nick, by = %moderator.nick, %media,
                      "approval from an anonymous moderator session; ignored");
                return;
            }
            if meeting.is_none() {
                warn!(room = %room, occupant = %nick, %media,
                      "approval without the room's current meeting id; ignored (it would outlive the meeting)");
                return;
            }
            let services = occupant.services(&self.trusted_service_domains);
            let facts = occupant.facts(&view.name, &services, self.now);
            let room_rules = self.rules.for_room(&view.name, self.now);
            let rule = room_rules.deciding_rule(&facts, media);
            if rule.is_none_or(|rule| rule.effect != Effect::Request) {
                warn!(room = %room, occupant = %nick, %media, rule = ?rule.map(|r| r.id),
                      "approval for a kind no request rule lets this occupant ask for; ignored");
                return;
            }
            if self.dry_run {
                info!(room = %room, occupant = %nick, %media, "dry run: approval not written to grants");
                return;
            }
        }
        let (who, who_value) = match user_id(occupant) {
            Some(id) => ("user", id),
            None => ("jid", real_jid.to_bare().to_string()),
        };
        // Grants match rooms and JIDs by glob: a name with a wildcard would grant more than meant.
        let wildcard = |text: &str| text.contains(['*', '?']);
        if wildcard(&view.name) || (who == "jid" && wildcard(&who_value)) {
            warn!(room = %room, occupant = %nick, "room or JID holds a glob wildcard; approval not turned into a grant");
            return;
        }
        let key = ApprovalKey {
            room: view.name.clone(),
            who: who.into(),
            who_value,
            media: media.as_str().into(),
        };
        let change = if approved {
            GrantChange::Approve {
                key,
                expires_at: (self.now + duration).to_string(),
                granted_by: moderator.real_jid.to_bare().to_string(),
                note: format!(
                    "A/V moderation: {} approved {} in {}",
                    moderator.nick, nick, room
                ),
                meeting: meeting.unwrap_or_default(),
            }
        } else {
            GrantChange::Withdraw(key)
        };
        info!(room = %room, occupant = %nick, by = %moderator.nick, %media, approved, "A/V-moderation approval");
        self.effects.grants.push(change);
    }

    /// The governed MUC host `from` is (the main MUC or the breakout MUC), if it is one.
    fn host_of(&self, from: Option<&Jid>) -> Option<BareJid> {
        let from = from.filter(|jid| jid.resource().is_none())?.to_bare();
        (from == self.muc || self.breakout_muc.as_ref() == Some(&from)).then_some(from)
    }

    /// The main room a breakout room reported from `host` belongs to: believed only from the
    /// breakout MUC, and only when it is a room of the main MUC.
    fn main_room_of(
        &self,
        host: &BareJid,
        room: &BareJid,
        main_room: Option<BareJid>,
    ) -> Option<BareJid> {
        let main_room = main_room?;
        if self.breakout_muc.as_ref() == Some(host) && main_room.domain() == self.muc.domain() {
            Some(main_room)
        } else {
            warn!(room = %room, main_room = %main_room, "main room not believed: only the breakout MUC reports one, and it must be on the main MUC");
            None
        }
    }

    fn iq(&mut self, iq: Iq) {
        match iq {
            Iq::Result {
                id, from, payload, ..
            } => {
                if let Some(pending) = self.take_pending(&id, from.as_ref()) {
                    self.answer(pending, Ok(payload));
                }
            }
            Iq::Error {
                id, from, error, ..
            } => {
                if let Some(pending) = self.take_pending(&id, from.as_ref()) {
                    let text = error.texts.values().next().cloned().unwrap_or_default();
                    warn!(%id, condition = ?error.defined_condition, %text, "module answered with an error");
                    self.answer(pending, Err(()));
                }
            }
            Iq::Get {
                id,
                from,
                to,
                payload,
            } => self.answer_request(id, from, to, payload),
            Iq::Set {
                id,
                from,
                to,
                payload,
            } => self.answer_request(id, from, to, payload),
        }
    }

    /// The request an answer belongs to: only the MUC host it was sent to may answer it, so an
    /// answer from anyone else neither counts nor cancels the request.
    fn take_pending(&mut self, id: &str, from: Option<&Jid>) -> Option<Pending> {
        let Some((_, _, to)) = self.pending.get(id) else {
            debug!(%id, from = ?from, "answer to no pending request ignored");
            return None;
        };
        if self.host_of(from).as_ref() != Some(to) {
            warn!(%id, from = ?from, "answer from an unexpected sender ignored");
            return None;
        }
        self.pending.remove(id).map(|(pending, _, _)| pending)
    }

    /// Answers an IQ addressed to the component: ping and disco#info; anything else is refused.
    fn answer_request(&mut self, id: String, from: Option<Jid>, to: Option<Jid>, payload: Element) {
        let Some(requester) = from else { return };
        let reply = if payload.is("ping", ns::PING) {
            Iq::Result {
                from: to,
                to: Some(requester),
                id,
                payload: None,
            }
        } else if payload.is("query", ns::DISCO_INFO) && payload.attr("node").is_none() {
            let query = Element::builder("query", ns::DISCO_INFO)
                .append(
                    Element::builder("identity", ns::DISCO_INFO)
                        .attr(ns::attr("category"), "component")
                        .attr(ns::attr("type"), "generic")
                        .attr(ns::attr("name"), "podium")
                        .build(),
                )
                .append_all([ns::DISCO_INFO, ns::PING, ns::PODIUM].map(|var| {
                    Element::builder("feature", ns::DISCO_INFO)
                        .attr(ns::attr("var"), var)
                        .build()
                }))
                .build();
            Iq::Result {
                from: to,
                to: Some(requester),
                id,
                payload: Some(query),
            }
        } else {
            debug!(from = %requester, element = payload.name(), ns = payload.ns(), "unsupported request refused");
            Iq::Error {
                from: to,
                to: Some(requester),
                id,
                error: StanzaError::new(
                    ErrorType::Cancel,
                    DefinedCondition::ServiceUnavailable,
                    "en",
                    "podium does not handle this request",
                ),
                payload: None,
            }
        };
        self.effects.stanzas.push(reply.into());
    }

    fn answer(&mut self, pending: Pending, answer: Result<Option<Element>, ()>) {
        match pending {
            Pending::Snapshot(host) => match answer.map(|p| p.map(Snapshot::try_from)) {
                Ok(Some(Ok(page))) => self.snapshot_page(host, page),
                Ok(Some(Err(error))) => {
                    warn!(%host, %error, "malformed snapshot page; going on with the view so far");
                    self.snapshot_done(&host);
                }
                Ok(None) | Err(()) => {
                    warn!(
                        %host,
                        "snapshot refused or empty (is mod_podium loaded on this MUC host with \
                         podium_component set to this component?); going on with the view so far"
                    );
                    self.snapshot_done(&host);
                }
            },
            Pending::Permissions(entries) => {
                let applied = match &answer {
                    Ok(Some(payload)) => Applied::try_from(payload.clone()).ok(),
                    _ => None,
                };
                let mut last_room = None;
                for (jid, serial, sent) in entries {
                    let room = room_of(&jid, &mut last_room);
                    let Some(occupant) = self
                        .rooms
                        .entry_existing(room)
                        .and_then(|r| r.occupants.get_mut(jid.resource().as_str()))
                        .filter(|o| serial != 0 && o.serial == serial)
                    else {
                        continue;
                    };
                    occupant.in_flight = occupant.in_flight.saturating_sub(1);
                    if answer.is_err() && occupant.held.map(|h| h.permissions) == Some(sent) {
                        // Unknown now: the next event, rule change or resync sends it again.
                        occupant.held = None;
                        occupant.report_sending = MediaSet::NONE;
                    }
                }
                if let Some(applied) = &applied {
                    for jid in &applied.gone {
                        // The module has no record for this occupant (it left, or another person has
                        // the nick now, or the module was reloaded): what it holds is unknown until its
                        // next report, which is then decided afresh.
                        let (room, nick) = (jid.to_bare(), jid.resource().as_str().to_owned());
                        if let Some(occupant) = self.occupant_mut(&room, &nick) {
                            occupant.held = None;
                            occupant.report_sending = MediaSet::NONE;
                        }
                    }
                }
                match applied {
                    Some(applied) => debug!(
                        count = applied.count,
                        gone = applied.gone.len(),
                        "permissions applied"
                    ),
                    None if answer.is_ok() => {
                        warn!("module acknowledged permissions without <applied/>")
                    }
                    None => {}
                }
            }
        }
    }

    fn request_snapshot(&mut self, host: BareJid, after: Option<BareJid>) {
        let id = self.new_id("snapshot");
        let request = SnapshotRequest {
            after,
            max: Some(self.snapshot_page),
        };
        self.pending.insert(
            id.clone(),
            (Pending::Snapshot(host.clone()), self.ticks, host.clone()),
        );
        self.effects.stanzas.push(
            Iq::Get {
                from: Some(self.component.clone()),
                to: Some(Jid::from(host)),
                id,
                payload: request.into(),
            }
            .into(),
        );
    }

    /// The last page of `host` is in: the breakout MUC's snapshot follows the main MUC's; after
    /// the last host, the resync is complete.
    fn snapshot_done(&mut self, host: &BareJid) {
        match &self.breakout_muc {
            Some(breakout) if *host == self.muc => self.request_snapshot(breakout.clone(), None),
            _ => self.finish_resync(),
        }
    }

    fn snapshot_page(&mut self, host: BareJid, page: Snapshot) {
        if self.phase != Phase::Resyncing {
            debug!("snapshot page outside a resync ignored");
            return;
        }
        for skipped in &page.skipped {
            warn!(%host, %skipped, "snapshot entry podium cannot read; skipped");
        }
        for room in page.rooms {
            if room.jid.domain() != host.domain() {
                warn!(%host, room = %room.jid, "snapshot room on another host ignored");
                continue;
            }
            let main_room = self.main_room_of(&host, &room.jid, room.main_room);
            let now = self.now;
            let before = self.before_resync.get(&room.jid);
            let occupants = room
                .occupants
                .into_iter()
                .map(|state| {
                    let mut occupant = Box::new(Occupant::from_state(state, now));
                    if let Some(known) = before
                        .and_then(|r| r.occupants.get(&occupant.nick))
                        .filter(|known| known.real_jid == occupant.real_jid)
                    {
                        // The same person as before the reconnect keeps its place in queues.
                        occupant.joined_at = known.joined_at;
                        if occupant.hand_raised_at.is_some() {
                            occupant.hand_raised_at = known.hand_raised_at.or(Some(now));
                        }
                        occupant.slot_since = known.slot_since;
                        occupant.decision = known.decision;
                    }
                    (occupant.nick.clone(), occupant)
                })
                .collect();
            self.rooms.replace(&room.jid, main_room.as_ref(), occupants);
            self.paged.insert(room.jid);
        }
        match page.next {
            Some(next) => self.request_snapshot(host, Some(next)),
            None => self.snapshot_done(&host),
        }
    }

    /// The view is as complete as it gets: decide everyone and send what differs.
    fn finish_resync(&mut self) {
        self.phase = Phase::Live;
        self.before_resync = Rooms::default();
        self.paged = HashSet::new();
        self.decide_all(Cause::Resync);
    }

    fn occupant_event(&mut self, event: OccupantEvent) {
        let OccupantEvent {
            kind,
            room,
            main_room,
            occupant: state,
        } = event;
        let nick = state.nick.clone();
        match kind {
            EventKind::Joined | EventKind::Changed => {
                let in_flight = self
                    .rooms
                    .get(&room)
                    .and_then(|r| r.occupants.get(&nick))
                    .is_some_and(|o| o.in_flight > 0 && o.real_jid == state.real_jid);
                let now = self.now;
                let entry = self.rooms.entry(&room, main_room.as_ref());
                match entry.occupants.get_mut(&nick) {
                    Some(existing) => {
                        let believed = existing.held;
                        let same_person = existing.real_jid == state.real_jid;
                        existing.update(state, now);
                        if in_flight && kind == EventKind::Changed && same_person {
                            // The module reported before applying our decision; keep our belief.
                            existing.held = believed;
                        }
                    }
                    None => {
                        entry
                            .occupants
                            .insert(nick.clone(), Box::new(Occupant::from_state(state, now)));
                    }
                }
                debug!(room = %room, occupant = %nick, event = %kind, "occupant event");
                if !self.view_is_complete(&room) {
                    debug!(room = %room, occupant = %nick, "decided at the end of the resync");
                    return;
                }
                let cause = if kind == EventKind::Joined {
                    Cause::Joined
                } else {
                    Cause::Changed
                };
                let changes = self.decide_room(&room, Cause::Queue, Some((&nick, cause)));
                self.send_permissions(changes);
            }
            EventKind::Left => {
                let Some(gone) = self.rooms.remove_occupant(&room, &nick) else {
                    debug!(room = %room, occupant = %nick, "leave of an unknown occupant");
                    return;
                };
                let previous = state.held.or(gone.held).map(|h| h.permissions);
                info!(room = %room, occupant = %nick, real_jid = %gone.real_jid,
                      previous = %display_held(previous), "occupant left");
                let record =
                    self.audit_record(&room, &gone, previous, MediaSet::NONE, None, Cause::Left);
                self.effects.audit.push(record);
                self.effects.view.push(ViewWrite::Gone {
                    room: room.to_string(),
                    nick: nick.clone(),
                });
                // A holder leaving frees its slot for the next in line.
                if !self.view_is_complete(&room) {
                    return;
                }
                let changes = self.decide_room(&room, Cause::Queue, Some(("", Cause::Queue)));
                self.send_permissions(changes);
            }
        }
    }

    /// Whether podium's view of `room` is complete enough to decide in it. During a resync, a room
    /// whose snapshot page has not come yet holds only the occupants whose events came first: in a
    /// capped room that view would hand a newcomer the slot a holder (whom the module keeps holding)
    /// still has. An event in such a room only updates the view (the page, which the module builds
    /// after the event, replaces it); the room is decided with every room at the end of the resync,
    /// as a room created after its place in the paging is. The module keeps its held decisions, and
    /// gives a newcomer its default, meanwhile (issue 14, point 5).
    fn view_is_complete(&self, room: &BareJid) -> bool {
        self.phase != Phase::Resyncing || self.paged.contains(room)
    }

    /// Decides occupants of one room and returns the entries to send. With `subject`
    /// (`(nick, cause)`), in a room without caps or requests only that occupant is decided (and with
    /// an empty nick, nobody); in a room with them, everyone is, the subject with its cause and the
    /// others with `others`. Without `subject`, everyone is decided with `others`.
    fn decide_room(
        &mut self,
        room: &BareJid,
        others: Cause,
        subject: Option<(&str, Cause)>,
    ) -> Vec<OccupantPermissions> {
        let rules = Arc::clone(&self.rules);
        if self.rooms.get(room).is_none() {
            self.idle_edges.remove(room);
            return Vec::new();
        }
        let (now, shared) = (self.now, self.shared_text());
        let room_text = std::cell::OnceCell::new();
        let Some(view) = self.rooms.get(room) else {
            return Vec::new();
        };
        let name = view.name.clone();
        let room_rules = rules.for_room(&name, self.now);
        let queued = room_rules.has_queue();
        let with_trial = rules.has_dry_run() && !self.dry_run;
        let mut seats = Vec::new();
        let mut trials = Vec::new();
        for (nick, occupant) in &view.occupants {
            let chosen = match subject {
                Some((who, _)) if !queued => who == nick,
                _ => true,
            };
            if !chosen {
                continue;
            }
            let services = occupant.services(&self.trusted_service_domains);
            let facts = occupant.facts(&name, &services, self.now);
            let seat = |decision| Seat {
                nick: nick.clone(),
                decision,
                hand_raised_at: occupant.hand_raised_at,
                joined_at: occupant.joined_at,
                join_seq: occupant.join_seq,
                holding: occupant
                    .decision
                    .map(|d| d.holding())
                    .unwrap_or(MediaSet::NONE),
                idle: occupant.idle(self.now, self.idle),
            };
            seats.push(seat(room_rules.decide(&facts)));
            if with_trial {
                trials.push(seat(room_rules.decide_with_dry_run(&facts)));
            }
        }
        if queued {
            settle(&mut seats);
            settle(&mut trials);
        }
        let mut changes = Vec::new();
        for (i, seat) in seats.iter().enumerate() {
            let (cause, is_subject) = match subject {
                Some((who, cause)) if who == seat.nick => (cause, true),
                _ => (others, false),
            };
            // In a settled room everyone is decided again on every event; someone else whose
            // decision, held permissions and view row stand as they were needs nothing (building
            // the inputs and the row for each would make every presence cost the size of the room).
            let Some(occupant) = self
                .rooms
                .get(room)
                .and_then(|view| view.occupants.get(&seat.nick))
            else {
                continue;
            };
            if !is_subject
                && trials.is_empty()
                && occupant.view.is_some()
                && occupant.decision == Some(seat.decision)
                && occupant.held.map(|held| held.permissions) == Some(seat.decision.permissions)
            {
                continue;
            }
            let input = occupant.inputs(
                &name,
                &occupant.services(&self.trusted_service_domains),
                self.now,
            );
            // Made only for a record: the inputs per occupant, the explanation once per room.
            let texts = || {
                let explanation = room_text.get_or_init(|| {
                    AuditText::new(
                        room_rules_text(&room_rules, &name, now),
                        Some(Arc::clone(&shared)),
                    )
                });
                (
                    AuditText::new(input.stored_json(), None),
                    Arc::clone(explanation),
                )
            };
            if let Some(entry) = self.apply_decision(room, &seat.nick, seat.decision, cause, &texts)
            {
                changes.push(entry);
            }
            if let Some(trial) = trials.get(i) {
                self.note_would(room, &seat.nick, trial.decision, cause, &texts);
            }
        }
        if queued || self.rooms.get(room).is_some_and(|r| !r.queue.is_empty()) {
            self.update_queue(room, &seats);
        }
        changes
    }

    /// Writes the room's queue when it moved, and notes when its next slot holder becomes idle.
    fn update_queue(&mut self, room: &BareJid, seats: &[Seat]) {
        let Some(view) = self.rooms.entry_existing(room) else {
            return;
        };
        let mut rows = Vec::new();
        for seat in seats {
            let Some(occupant) = view.occupants.get(&seat.nick) else {
                continue;
            };
            for media in Media::ALL {
                let Standing::Waiting {
                    position,
                    for_approval,
                } = seat.decision.standing(media)
                else {
                    continue;
                };
                let Reason::Rule { id, .. } = seat.decision.reason(media) else {
                    continue;
                };
                rows.push(QueueRow {
                    room: room.to_string(),
                    media: media.to_string(),
                    position: i64::from(position),
                    nick: seat.nick.clone(),
                    real_jid: occupant.real_jid.to_string(),
                    rule_id: id,
                    waiting_for: if for_approval { "approval" } else { "slot" }.into(),
                    hand_raised_at: occupant.hand_raised_at.map(|t| t.to_string()),
                    joined_at: occupant.joined_at.to_string(),
                });
            }
        }
        rows.sort_by(|a, b| {
            (&a.media, &a.waiting_for, a.position).cmp(&(&b.media, &b.waiting_for, b.position))
        });
        let anyone_waits = rows.iter().any(|r| r.waiting_for == "slot");
        if rows != view.queue {
            view.queue = rows.clone();
            self.effects.view.push(ViewWrite::Queue {
                room: room.to_string(),
                rows,
            });
        }
        // Idle matters only while someone waits for a slot; the edge is the earliest holder's.
        let now = self.now;
        let next_idle = self.idle.filter(|_| anyone_waits).and_then(|idle| {
            view.occupants
                .values()
                .flat_map(|o| Media::ALL.into_iter().filter_map(|m| o.idle_from(m)))
                .map(|from| from + idle)
                .filter(|at| *at > now)
                .min()
        });
        match next_idle {
            Some(at) => {
                self.idle_edges.insert(room.clone(), at);
            }
            None => {
                self.idle_edges.remove(room);
            }
        }
    }

    /// Starts deciding every occupant again, and decides the first slice now; [`Engine::work`]
    /// decides the rest. A pass under way starts over: every room is decided with the newest rules,
    /// the rooms it had not reached first (so reloads faster than a pass never keep the same rooms
    /// waiting). A resync stays a resync until its pass is done ("resync complete" is the sign it is).
    fn decide_all(&mut self, mut cause: Cause) {
        let mut rooms: std::collections::VecDeque<BareJid> = std::collections::VecDeque::new();
        if let Some(pass) = &self.pass {
            rooms.extend(pass.rooms.iter().cloned());
            debug!(
                cause = pass.cause.as_str(),
                rooms_left = pass.rooms.len(),
                "pass over every room restarted"
            );
            if pass.cause == Cause::Resync {
                cause = Cause::Resync;
            }
        }
        let waiting: std::collections::HashSet<BareJid> = rooms.iter().cloned().collect();
        rooms.extend(
            self.rooms
                .iter()
                .map(|(jid, _)| jid.clone())
                .filter(|jid| !waiting.contains(jid)),
        );
        self.pass = Some(Pass {
            cause,
            rooms,
            changes: 0,
            decided: 0,
        });
        self.decide_slice(FIRST_SLICE);
    }

    /// Whether a pass over every room is under way: the run loop then calls [`Engine::work`]
    /// between events until it is done.
    pub fn busy(&self) -> bool {
        self.pass.is_some()
    }

    /// Decides the next slice of the pass under way (rooms until about [`SLICE`] occupants) and
    /// queues its changes; at the end of the pass, logs one summary line.
    pub fn work(&mut self) {
        self.decide_slice(SLICE);
    }

    fn decide_slice(&mut self, occupants: usize) {
        let Some(mut pass) = self.pass.take() else {
            return;
        };
        let mut decided = 0;
        let mut changes = Vec::new();
        while decided < occupants {
            let Some(room) = pass.rooms.pop_front() else {
                break;
            };
            decided += self.rooms.get(&room).map_or(0, |r| r.occupants.len());
            changes.extend(self.decide_room(&room, pass.cause, None));
        }
        pass.decided += decided;
        pass.changes += changes.len();
        while !changes.is_empty() {
            let rest = changes.split_off(batch_len(&changes));
            self.send_permissions(std::mem::replace(&mut changes, rest));
        }
        if !pass.rooms.is_empty() {
            self.pass = Some(pass);
            return;
        }
        let (occupants, changes) = (pass.decided, pass.changes);
        match pass.cause {
            Cause::Resync => info!(
                rooms = self.rooms.iter().count(),
                occupants, changes, "resync complete"
            ),
            Cause::Rules => info!(
                occupants,
                changes,
                rules = self.rules.len(),
                "re-decided after rule change"
            ),
            cause => info!(
                occupants,
                changes,
                cause = cause.as_str(),
                "re-decided at a rule window edge or grant expiry"
            ),
        }
    }

    /// Records a decision; when it changes what the module holds, audits it (with `explain`'s
    /// inputs and explanation) and returns what to send. The live view row is refreshed either way.
    fn apply_decision(
        &mut self,
        room: &BareJid,
        nick: &str,
        decision: Decision,
        cause: Cause,
        texts: &dyn Fn() -> (Arc<AuditText>, Arc<AuditText>),
    ) -> Option<OccupantPermissions> {
        let (now, dry_run) = (self.now, self.dry_run);
        let reasons = self.reasons_text(&decision);
        {
            let view = self.rooms.entry_existing(room)?;
            let occupant = view.occupants.get_mut(nick)?;
            if occupant.address.is_none() {
                match FullJid::from_str(&format!("{room}/{nick}")) {
                    Ok(jid) => occupant.address = Some(jid),
                    Err(error) => {
                        // Prosody's stringprep allows a few nicks the jid crate refuses; such an
                        // occupant keeps the module's default (fail closed), and the log says so.
                        warn!(room = %room, occupant = %nick, %error, "cannot address occupant; module default stays");
                        return None;
                    }
                }
            }
            let changed = occupant.decision != Some(decision);
            occupant.decision = Some(decision);
            occupant.set_slots(decision.holding(), now);
            if (changed || !occupant.view_current) && !occupant.view_dirty {
                occupant.view_dirty = true;
                self.dirty_views.push_back((room.clone(), nick.to_owned()));
            }
        }
        if dry_run {
            // Nothing is enforced: compare with what the module holds and say what would change.
            self.note_would(room, nick, decision, cause, texts);
            return None;
        }
        // The kinds whose `sending` podium reads: those held through a slot, which go idle when
        // kept quiet (and only when `rules.idle_seconds` is set).
        let report_sending = if self.idle.is_some() {
            decision.holding()
        } else {
            MediaSet::NONE
        };
        let occupant = self.occupant_mut(room, nick)?;
        let confirmed = Held {
            permissions: decision.permissions,
            origin: HeldOrigin::Podium,
        };
        // Sent when the permissions differ, and once for every occupant still on the module's
        // default, so the module always holds podium's decision, never just a default that matches;
        // and when the kinds to report change (the same permissions again, with no decision logged).
        let reporting_changed = occupant.report_sending != report_sending;
        occupant.report_sending = report_sending;
        let entry = OccupantPermissions {
            jid: occupant.address.clone()?,
            real_jid: occupant.real_jid.clone(),
            permissions: decision.permissions,
            report_sending,
        };
        if occupant.held == Some(confirmed) {
            return reporting_changed.then_some(entry);
        }
        let previous = occupant.held.map(|h| h.permissions);
        occupant.held = Some(confirmed);
        let occupant = self.rooms.get(room)?.occupants.get(nick)?;
        occupant_log!(cause.is_pass(), room = %room, occupant = %nick, real_jid = %occupant.real_jid,
              previous = %display_held(previous), granted = %decision.permissions,
              rules = ?decision.rule_ids(), cause = cause.as_str(), "decision");
        let record = self.audit_record(
            room,
            occupant,
            previous,
            decision.permissions,
            Some(&reasons),
            cause,
        );
        let (inputs, explanation) = texts();
        self.effects.audit.push(AuditRecord {
            inputs: Some(inputs),
            explanation: Some(explanation),
            ..record
        });
        Some(entry)
    }

    /// Whether live-view rows wait to be written ([`Engine::flush_views`]).
    pub fn views_pending(&self) -> bool {
        !self.dirty_views.is_empty()
    }

    /// Writes the live-view rows of up to `max` occupants whose row is out of date, from what
    /// podium holds now. The view is state, not history: a row waits while the audit log is behind
    /// (the run loop calls this when it is not), and an occupant decided again meanwhile is
    /// written once, as it is then; one who left meanwhile is not written (its leave was).
    pub fn flush_views(&mut self, max: usize) {
        for _ in 0..max {
            let Some((room, nick)) = self.dirty_views.pop_front() else {
                return;
            };
            let Some(decision) = self
                .rooms
                .get(&room)
                .and_then(|r| r.occupants.get(&nick))
                .filter(|o| o.view_dirty)
                .map(|o| o.decision)
            else {
                continue;
            };
            let reasons = decision.map(|d| self.reasons_text(&d));
            let trusted = &self.trusted_service_domains;
            let Some(view) = self.rooms.entry_existing(&room) else {
                continue;
            };
            let Some(occupant) = view.occupants.get_mut(&nick) else {
                continue;
            };
            occupant.view_dirty = false;
            match (occupant.view_current, decision, reasons) {
                (true, Some(decision), Some(reasons)) => {
                    self.effects.view.push(ViewWrite::Decided {
                        room: room.to_string(),
                        nick,
                        permissions: decision.permissions.to_string(),
                        reasons: Arc::clone(&reasons.reasons),
                    });
                }
                _ => {
                    // The whole row, when it differs from the last one written.
                    let row = occupant.view_row(&room, &view.name, trusted);
                    let digest = {
                        use std::hash::{Hash, Hasher};
                        let mut hasher = std::collections::hash_map::DefaultHasher::new();
                        row.hash(&mut hasher);
                        hasher.finish()
                    };
                    occupant.view_current = true;
                    if occupant.view != Some(digest) {
                        occupant.view = Some(digest);
                        self.effects.view.push(ViewWrite::Occupant(Box::new(row)));
                    }
                }
            }
        }
    }

    /// Logs and audits, once per outcome, what `would` change against what is enforced: the module's
    /// holding when podium as a whole is in dry-run, else the live decision (rules in dry-run).
    fn note_would(
        &mut self,
        room: &BareJid,
        nick: &str,
        would: Decision,
        cause: Cause,
        texts: &dyn Fn() -> (Arc<AuditText>, Arc<AuditText>),
    ) {
        let dry_run = self.dry_run;
        let reasons = self.reasons_text(&would);
        let Some(occupant) = self.occupant_mut(room, nick) else {
            return;
        };
        let actual = if dry_run {
            occupant.held.map(|h| h.permissions)
        } else {
            occupant.decision.map(|d| d.permissions)
        };
        if actual == Some(would.permissions) {
            occupant.would = None;
            return;
        }
        if occupant.would == Some(would.permissions) {
            return;
        }
        occupant.would = Some(would.permissions);
        let Some(occupant) = self.rooms.get(room).and_then(|r| r.occupants.get(nick)) else {
            return;
        };
        let current = actual.unwrap_or(MediaSet::NONE);
        let grant: MediaSet = would
            .permissions
            .iter()
            .filter(|m| !current.contains(*m))
            .collect();
        let revoke: MediaSet = current
            .iter()
            .filter(|m| !would.permissions.contains(*m))
            .collect();
        occupant_log!(cause.is_pass(), room = %room, occupant = %nick, real_jid = %occupant.real_jid,
              enforced = %display_held(actual), would = %would.permissions,
              would_grant = %grant, would_revoke = %revoke,
              rules = ?would.rule_ids(), cause = cause.as_str(), "dry run");
        let record = self.audit_record(
            room,
            occupant,
            actual,
            would.permissions,
            Some(&reasons),
            cause,
        );
        let (inputs, explanation) = texts();
        self.effects.audit.push(AuditRecord {
            dry_run: true,
            inputs: Some(inputs),
            explanation: Some(explanation),
            ..record
        });
    }

    /// Sends decisions to the module of each room's MUC host, one request per host.
    fn send_permissions(&mut self, entries: Vec<OccupantPermissions>) {
        if entries.is_empty() || self.phase == Phase::Offline {
            return;
        }
        let (main, breakout): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|entry| entry.jid.domain() == self.muc.domain());
        self.send_permissions_to(self.muc.clone(), main);
        if let Some(host) = self.breakout_muc.clone() {
            self.send_permissions_to(host, breakout);
        }
    }

    fn send_permissions_to(&mut self, host: BareJid, entries: Vec<OccupantPermissions>) {
        if entries.is_empty() {
            return;
        }
        let id = self.new_id("permissions");
        let mut tracked = Vec::with_capacity(entries.len());
        let mut room = None;
        for entry in &entries {
            let occupant = self
                .rooms
                .entry_existing(room_of(&entry.jid, &mut room))
                .and_then(|r| r.occupants.get_mut(entry.jid.resource().as_str()));
            let serial = match occupant {
                Some(occupant) => {
                    if occupant.serial == 0 {
                        self.serial += 1;
                        occupant.serial = self.serial;
                    }
                    occupant.in_flight += 1;
                    occupant.serial
                }
                None => 0,
            };
            tracked.push((entry.jid.clone(), serial, entry.permissions));
        }
        self.pending.insert(
            id.clone(),
            (Pending::Permissions(tracked), self.ticks, host.clone()),
        );
        self.effects.stanzas.push(
            Iq::Set {
                from: Some(self.component.clone()),
                to: Some(Jid::from(host)),
                id,
                payload: SetPermissions { occupants: entries }.into(),
            }
            .into(),
        );
    }

    fn occupant_mut(&mut self, room: &BareJid, nick: &str) -> Option<&mut Occupant> {
        self.rooms
            .entry_existing(room)?
            .occupants
            .get_mut(nick)
            .map(|o| &mut **o)
    }

    fn audit_record(
        &self,
        room: &BareJid,
        occupant: &Occupant,
        previous: Option<MediaSet>,
        granted: MediaSet,
        decision: Option<&DecisionTexts>,
        cause: Cause,
    ) -> AuditRecord {
        let identity = occupant.identity.as_ref();
        let field = |get: fn(&Identity) -> &Option<String>| identity.and_then(|i| get(i).clone());
        AuditRecord {
            at: match &self.at_text {
                Some((at, text)) if *at == self.now => Arc::clone(text),
                _ => self.now.to_string().into(),
            },
            room: room.to_string().into(),
            nick: occupant.nick.clone(),
            real_jid: occupant.real_jid.to_string(),
            user_id: field(|i| &i.id),
            user_name: field(|i| &i.name),
            user_email: field(|i| &i.email),
            user_group: field(|i| &i.group),
            previous: previous.map_or("unknown", MediaSet::as_str),
            granted: granted.as_str(),
            rule_ids: decision.map_or_else(|| "".into(), |d| Arc::clone(&d.rule_ids)),
            reasons: decision.map_or_else(
                || AuditText::new("left the room".into(), None),
                |d| Arc::clone(&d.reasons),
            ),
            cause: cause.as_str(),
            dry_run: false,
            inputs: None,
            explanation: None,
        }
    }

    /// A decision's reasons as stored: made and hashed once per distinct decision (a pass over
    /// every room makes a few thousand, not one per occupant) and shared by the records and view
    /// rows that show it.
    fn reasons_text(&mut self, decision: &Decision) -> Arc<DecisionTexts> {
        if self.reasons.len() >= REASONS_KEPT {
            self.reasons.clear();
        }
        if self.at_text.as_ref().is_none_or(|(at, _)| *at != self.now) {
            self.at_text = Some((self.now, self.now.to_string().into()));
        }
        Arc::clone(self.reasons.entry(*decision).or_insert_with(|| {
            Arc::new(DecisionTexts {
                reasons: AuditText::new(decision.to_string(), None),
                rule_ids: decision
                    .rule_ids()
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
                    .into(),
            })
        }))
    }

    /// The part of every stored explanation all rooms share, made once per rule set (and again
    /// after a rule window edge).
    fn shared_text(&mut self) -> Arc<AuditText> {
        match &self.shared_text {
            Some(shared)
                if std::ptr::eq(shared.rules.as_ptr(), Arc::as_ptr(&self.rules))
                    && shared.until.is_none_or(|until| self.now < until) =>
            {
                Arc::clone(&shared.text)
            }
            _ => {
                let text = AuditText::new(rules_text(&self.rules, self.now), None);
                self.shared_text = Some(SharedText {
                    rules: Arc::downgrade(&self.rules),
                    until: self.rules.next_edge(self.now),
                    text: Arc::clone(&text),
                });
                text
            }
        }
    }

    /// Decisions sent and not yet answered (for tests).
    #[cfg(test)]
    pub(crate) fn in_flight_count(&self) -> usize {
        self.rooms
            .iter()
            .flat_map(|(_, room)| room.occupants.values())
            .filter(|o| o.in_flight > 0)
            .count()
    }

    fn new_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("podium-{kind}-{}", self.next_id)
    }
}

/// The room of an occupant JID, made again only when it is not `last`'s (entries come room by
/// room: a `BareJid` made per entry was some 7% of the main thread in a pass's profile).
fn room_of<'a>(jid: &FullJid, last: &'a mut Option<BareJid>) -> &'a BareJid {
    let bare = jid
        .as_str()
        .split_once('/')
        .map_or(jid.as_str(), |(bare, _)| bare);
    if last.as_ref().is_none_or(|room| room.as_str() != bare) {
        *last = Some(jid.to_bare());
    }
    last.get_or_insert_with(|| jid.to_bare())
}

fn display_held(held: Option<MediaSet>) -> &'static str {
    held.map_or("unknown", MediaSet::as_str)
}

#[cfg(test)]
mod tests;
