//! The pure evaluator: occupant facts and rules in, a decision with its reasons out.
//!
//! # Combining rule
//!
//! Each kind (audio, video, screen) is decided on its own:
//!
//! 1. A **grant** in force (`grants` row matching room and occupant, not yet expired) allows the kind.
//!    Grants are explicit decisions of an admin, a tool or a moderator, so they win over every rule.
//! 2. Otherwise, of the enabled, valid rules in force (not in dry-run, inside their window) whose
//!    `room` matches the room, whose `who` matches the occupant and whose `media` includes the kind,
//!    the one with the **highest priority** decides.
//! 3. At equal priority the **stricter** effect wins: deny, then request, then allow (then the lower
//!    row id, so the outcome never depends on row order).
//! 4. When no rule matches, the kind follows `rules.default` from the configuration.
//! 5. A deciding `allow` with a `cap`, or a deciding `request`, is settled per room by
//!    [`super::queue::settle`]: a request needs a raised hand; holders of capped rules keep their slot;
//!    free slots go to the queue in order (see there). A request without a cap waits for a grant.
//!
//! Rules are kept sorted by (priority descending, stricter first, id ascending), so the first
//! matching rule for a kind is its winner and evaluation stops as soon as every kind is decided.
//! Room patterns are indexed (a hash map for exact names, one `GlobSet` for all room globs), so
//! finding a room's rules does not scan the whole table, and the engine resolves them once per room.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use globset::{GlobSet, GlobSetBuilder};
use jiff::Timestamp;

use super::model::{
    Effect, Grant, GrantRow, RoomPattern, Rule, RuleProblem, RuleRow, Service, Subject, glob,
};
use crate::media::{Media, MediaSet};
use crate::rooms::{Affiliation, Role};

/// What the evaluator knows of an occupant: only what the server vouches for, and the hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupantFacts<'a> {
    /// The room name (local part of the room JID).
    pub room: &'a str,
    /// MUC role.
    pub role: Role,
    /// MUC affiliation.
    pub affiliation: Affiliation,
    /// The real bare JID.
    pub real_bare_jid: String,
    /// JWT `context.user.id`, when token auth set it.
    pub user_id: Option<&'a str>,
    /// JWT `context.group`, when token auth set it.
    pub group: Option<&'a str>,
    /// JWT `context.user.email`, when token auth set it.
    pub email: Option<&'a str>,
    /// Other token claims (`user.<key>`, `features.<key>`).
    pub claims: Option<&'a BTreeMap<String, String>>,
    /// The Jitsi services this occupant is, from presence features, counted only when its domain is
    /// trusted (the caller checks).
    pub services: &'a [Service],
    /// Whether the occupant's hand is raised (a request rule needs it; never a rule's subject).
    pub hand_raised: bool,
    /// The Jitsi meeting the room holds now (its meeting id, reported by the module): a grant for
    /// another meeting does not count.
    pub meeting: Option<&'a str>,
    /// The time to decide at: rules outside their window and expired grants do not count. The
    /// evaluator never reads the clock.
    pub now: Timestamp,
}

/// Why one kind was decided the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A rule decided it.
    Rule {
        /// The rule's row id.
        id: i64,
        /// Its effect.
        effect: Effect,
        /// Its priority.
        priority: i64,
        /// Its cap, if any.
        cap: Option<u32>,
    },
    /// A grant in force decided it.
    Grant {
        /// The grant's row id.
        id: i64,
        /// When it ends.
        expires_at: Timestamp,
    },
    /// No rule matched; `rules.default` applied.
    Default {
        /// Whether the default allows the kind.
        allowed: bool,
    },
}

/// Where an occupant stands for a kind decided by a capped rule or a request rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Standing {
    /// Neither capped nor requested: the reason alone decides.
    #[default]
    Free,
    /// A request rule decided and the hand is down.
    HandDown,
    /// Not settled yet (a single occupant evaluated outside its room's queue).
    Unsettled,
    /// A moderator approved the kind under a capped `request` rule: not settled yet, and first in
    /// the room's queue for the cap's next free slot (the approval counts toward the cap).
    Approved,
    /// Holds one of the cap's slots.
    Holding,
    /// Waits in the queue, 1 being next.
    Waiting {
        /// Position in the room's queue for the kind.
        position: u32,
        /// A request rule without a cap: only a grant lets it in.
        for_approval: bool,
    },
}

/// A decision: what the occupant may send, and why, kind by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What the occupant may send.
    pub permissions: MediaSet,
    /// One reason per kind, in [`Media::ALL`] order.
    pub reasons: [Reason; 3],
    /// Per kind, where the occupant stands in a cap or request (in [`Media::ALL`] order).
    pub standing: [Standing; 3],
}

impl Decision {
    /// The reason for one kind.
    pub fn reason(&self, media: Media) -> Reason {
        self.reasons[media_index(media)]
    }

    /// Where the occupant stands for one kind.
    pub fn standing(&self, media: Media) -> Standing {
        self.standing[media_index(media)]
    }

    /// The kinds held through a cap's slot.
    pub fn holding(&self) -> MediaSet {
        Media::ALL
            .into_iter()
            .filter(|m| self.standing(*m) == Standing::Holding)
            .collect()
    }

    /// The distinct rule ids that decided, ascending.
    pub fn rule_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .reasons
            .iter()
            .filter_map(|r| match r {
                Reason::Rule { id, .. } => Some(*id),
                Reason::Grant { .. } | Reason::Default { .. } => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The distinct grant ids that decided, ascending.
    pub fn grant_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .reasons
            .iter()
            .filter_map(|r| match r {
                Reason::Grant { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub(crate) fn set(&mut self, media: Media, allowed: bool, standing: Standing) {
        self.permissions = if allowed {
            self.permissions.with(media)
        } else {
            self.permissions.without(media)
        };
        self.standing[media_index(media)] = standing;
    }
}

/// `audio: allow by rule 3 (priority 10); video: deny by default; …`
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, media) in Media::ALL.into_iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match self.reason(media) {
                Reason::Rule {
                    id,
                    effect,
                    priority,
                    cap,
                } => {
                    write!(
                        f,
                        "{media}: {} by rule {id} (priority {priority}",
                        effect.as_str()
                    )?;
                    if let Some(cap) = cap {
                        write!(f, ", cap {cap}")?;
                    }
                    f.write_str(")")?;
                }
                Reason::Grant { id, expires_at } => {
                    write!(f, "{media}: allow by grant {id} (until {expires_at})")?
                }
                Reason::Default { allowed } => write!(
                    f,
                    "{media}: {} by default",
                    if allowed { "allow" } else { "deny" }
                )?,
            }
            match self.standing(media) {
                Standing::Free => {}
                Standing::HandDown => f.write_str(": hand down")?,
                Standing::Unsettled => f.write_str(": queue not settled")?,
                Standing::Approved => f.write_str(": approved, queue not settled")?,
                Standing::Holding => f.write_str(": holds a slot")?,
                Standing::Waiting {
                    position,
                    for_approval: false,
                } => write!(f, ": waiting for a slot, position {position}")?,
                Standing::Waiting {
                    position,
                    for_approval: true,
                } => write!(f, ": waiting for approval, position {position}")?,
            }
        }
        Ok(())
    }
}

pub(crate) fn media_index(media: Media) -> usize {
    match media {
        Media::Audio => 0,
        Media::Video => 1,
        Media::Screen => 2,
    }
}

/// All valid rules and grants, indexed by room pattern.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Sorted by priority desc, stricter first, id asc.
    rules: Vec<Rule>,
    /// Every valid grant, expired or not (expiry is checked against the time of each decision).
    grants: Vec<Grant>,
    /// Exact room name → rule positions.
    exact: HashMap<String, Vec<usize>>,
    /// One glob per distinct room glob.
    globs: GlobSet,
    /// Glob index → rule positions.
    glob_rules: Vec<Vec<usize>>,
    /// Rules for every room.
    everywhere: Vec<usize>,
    /// `rules.default`.
    default: MediaSet,
    /// Whether any rule is in dry-run.
    has_dry_run: bool,
}

impl RuleSet {
    /// Builds the set from checked rules.
    pub fn new(mut rules: Vec<Rule>, default: MediaSet) -> RuleSet {
        rules.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.effect.strictness().cmp(&b.effect.strictness()))
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut glob_index: HashMap<String, usize> = HashMap::new();
        let mut glob_rules: Vec<Vec<usize>> = Vec::new();
        let mut builder = GlobSetBuilder::new();
        let mut everywhere = Vec::new();
        for (pos, rule) in rules.iter().enumerate() {
            match &rule.room {
                RoomPattern::All => everywhere.push(pos),
                RoomPattern::Exact(name) => exact.entry(name.clone()).or_default().push(pos),
                RoomPattern::Glob(pattern) => {
                    let index = *glob_index.entry(pattern.clone()).or_insert_with(|| {
                        // Checked in Rule::from_row, so this cannot fail for a rule that got here.
                        builder
                            .add(glob(pattern).expect("room glob checked when the rule was read"));
                        glob_rules.push(Vec::new());
                        glob_rules.len() - 1
                    });
                    glob_rules[index].push(pos);
                }
            }
        }
        let globs = builder.build().unwrap_or_else(|_| GlobSet::empty());
        let has_dry_run = rules.iter().any(|rule| rule.dry_run);
        RuleSet {
            rules,
            grants: Vec::new(),
            exact,
            globs,
            glob_rules,
            everywhere,
            default,
            has_dry_run,
        }
    }

    /// Adds grants.
    pub fn with_grants(mut self, grants: Vec<Grant>) -> RuleSet {
        self.grants = grants;
        self
    }

    /// Checks rows and builds the set; the problems are returned for logging.
    pub fn from_rows(rows: &[RuleRow], default: MediaSet) -> (RuleSet, Vec<RuleProblem>) {
        RuleSet::from_tables(rows, &[], default)
    }

    /// Checks rule and grant rows and builds the set; the problems are returned for logging.
    pub fn from_tables<'r>(
        rows: impl IntoIterator<Item = &'r RuleRow>,
        grant_rows: impl IntoIterator<Item = &'r GrantRow>,
        default: MediaSet,
    ) -> (RuleSet, Vec<RuleProblem>) {
        let rows = rows.into_iter();
        let mut rules = Vec::with_capacity(rows.size_hint().0);
        let mut problems = Vec::new();
        for row in rows {
            match Rule::from_row(row) {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(problem) => problems.push(problem),
            }
        }
        let mut grants = Vec::new();
        for row in grant_rows {
            match Grant::from_row(row) {
                Ok(grant) => grants.push(grant),
                Err(problem) => problems.push(problem),
            }
        }
        (RuleSet::new(rules, default).with_grants(grants), problems)
    }

    /// How many rules are in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in combining order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The grants, expired or not.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// `rules.default`.
    pub fn default_permissions(&self) -> MediaSet {
        self.default
    }

    /// The first moment after `now` at which some rule's window opens or closes or a grant expires:
    /// podium re-decides then.
    pub fn next_edge(&self, now: Timestamp) -> Option<Timestamp> {
        let windows = self
            .rules
            .iter()
            .filter_map(|rule| rule.window.as_ref()?.next_edge(now));
        let expiries = self
            .grants
            .iter()
            .map(|grant| grant.expires_at)
            .filter(|at| *at > now);
        windows.chain(expiries).min()
    }

    /// Whether any rule is in dry-run (then a second, "would" decision is worth computing).
    pub fn has_dry_run(&self) -> bool {
        self.has_dry_run
    }

    /// The rules that apply in a room, resolved once and reused for all its occupants.
    ///
    /// A breakout room is named `main/breakout`. It follows its main room's rules and grants, unless a
    /// rule names it: a `room` pattern with a `/` that matches its name (`lecture/6f1c…`,
    /// `lecture/*`, `*/*`). Then its rules are those, with the rules for every room (`*`). Grants
    /// written for breakout rooms apply in the breakout rooms they match either way, and never change
    /// which rules apply (an approval in a breakout room does not cut it off from its main room).
    ///
    /// Only a rule in force at `now` names a breakout room: a rule in dry-run, or outside its window,
    /// leaves the room following its main room (podium re-decides at every window edge).
    pub fn for_room(&self, room: &str, now: Timestamp) -> RoomRules<'_> {
        let room = room.to_lowercase();
        if let Some((main, _)) = room.split_once('/')
            && !self.names_breakout(&room, now)
        {
            let mut inherited = self.for_room(main, now);
            inherited.grants.extend(
                self.grants
                    .iter()
                    .enumerate()
                    .filter(|(_, grant)| grant.room.is_for_breakout() && grant.room.names(&room))
                    .map(|(pos, _)| pos),
            );
            return inherited;
        }
        let breakout = room.contains('/');
        // In a breakout room only patterns written for breakout rooms count: a glob like `lec*`
        // would match `lecture/6f1c…` too, but it was written for main rooms.
        let applies = |pattern: &RoomPattern| {
            !breakout || matches!(pattern, RoomPattern::All) || pattern.is_for_breakout()
        };
        let mut positions = self.everywhere.clone();
        if let Some(exact) = self.exact.get(&room) {
            positions.extend_from_slice(exact);
        }
        if !self.glob_rules.is_empty() {
            for index in self.globs.matches(&room) {
                positions.extend(
                    self.glob_rules[index]
                        .iter()
                        .filter(|pos| applies(&self.rules[**pos].room)),
                );
            }
        }
        positions.sort_unstable();
        positions.dedup();
        let grants = self
            .grants
            .iter()
            .enumerate()
            .filter(|(_, grant)| room_matches(&grant.room, &room) && applies(&grant.room))
            .map(|(pos, _)| pos)
            .collect();
        RoomRules {
            set: self,
            positions,
            grants,
        }
    }

    /// Whether a rule in force at `now` names the breakout room `room` (`main/breakout`,
    /// lower-case).
    fn names_breakout(&self, room: &str, now: Timestamp) -> bool {
        let in_force = |pos: &usize| {
            let rule = &self.rules[*pos];
            rule.room.is_for_breakout() && !rule.dry_run && rule.in_force_at(now)
        };
        self.exact
            .get(room)
            .is_some_and(|positions| positions.iter().any(in_force))
            || self
                .globs
                .matches(room)
                .into_iter()
                .flat_map(|index| &self.glob_rules[index])
                .any(in_force)
    }

    /// Decides for one occupant (resolves the room's rules first).
    pub fn decide(&self, facts: &OccupantFacts<'_>) -> Decision {
        self.for_room(facts.room, facts.now).decide(facts)
    }
}

/// Whether a room pattern matches a (lower-case) room name.
pub(crate) fn room_matches(pattern: &RoomPattern, room: &str) -> bool {
    match pattern {
        RoomPattern::All => true,
        RoomPattern::Exact(name) => name == room,
        RoomPattern::Glob(_) => pattern.names(room),
    }
}

/// The rules of one room, in combining order.
#[derive(Debug, Clone)]
pub struct RoomRules<'a> {
    set: &'a RuleSet,
    positions: Vec<usize>,
    grants: Vec<usize>,
}

impl<'a> RoomRules<'a> {
    /// Decides for one occupant of this room, as enforced: rules in dry-run do not count. Kinds
    /// under a cap or a request come back [`Standing::Unsettled`] (not allowed) until
    /// [`super::queue::settle`] has seen the whole room.
    pub fn decide(&self, facts: &OccupantFacts<'_>) -> Decision {
        self.decide_with(facts, false)
    }

    /// What would be decided if the rules in dry-run were in force.
    pub fn decide_with_dry_run(&self, facts: &OccupantFacts<'_>) -> Decision {
        self.decide_with(facts, true)
    }

    /// The room's rules in combining order.
    pub fn rules(&self) -> impl Iterator<Item = &'a Rule> + '_ {
        self.positions.iter().map(|&pos| &self.set.rules[pos])
    }

    /// Whether some rule here has a cap or a request effect: then the room is settled as a whole.
    pub fn has_queue(&self) -> bool {
        self.rules().any(super::explain::queues)
    }

    /// The rule that decides `media` for this occupant as enforced, grants aside: the first rule in
    /// combining order that is in force, not in dry-run, and matches. `None`: the default decides.
    pub fn deciding_rule(&self, facts: &OccupantFacts<'_>, media: Media) -> Option<&'a Rule> {
        self.rules().find(|rule| {
            !rule.dry_run
                && rule.media.contains(media)
                && rule.in_force_at(facts.now)
                && subject_matches(&rule.subject, facts)
        })
    }

    /// The room's grants (expired or not).
    pub fn grants(&self) -> impl Iterator<Item = &'a Grant> + '_ {
        self.grants.iter().map(|&pos| &self.set.grants[pos])
    }

    fn decide_with(&self, facts: &OccupantFacts<'_>, dry_run: bool) -> Decision {
        let default = self.set.default;
        let mut decision = Decision {
            permissions: MediaSet::NONE,
            reasons: Media::ALL.map(|m| Reason::Default {
                allowed: default.contains(m),
            }),
            standing: [Standing::Free; 3],
        };
        let mut undecided = MediaSet::ALL;
        // A moderator's approval in force, per kind: it acts only through a request rule, below.
        let mut approved: [Option<&Grant>; 3] = [None; 3];
        for grant in self.grants() {
            if grant.expires_at <= facts.now
                || !subject_matches(&grant.subject, facts)
                || grant
                    .meeting
                    .as_deref()
                    .is_some_and(|meeting| Some(meeting) != facts.meeting)
            {
                continue;
            }
            if grant.approval {
                for media in grant.media.iter() {
                    approved[media_index(media)].get_or_insert(grant);
                }
                continue;
            }
            let kinds: MediaSet = grant
                .media
                .iter()
                .filter(|m| undecided.contains(*m))
                .collect();
            for media in kinds.iter() {
                decision.reasons[media_index(media)] = Reason::Grant {
                    id: grant.id,
                    expires_at: grant.expires_at,
                };
                decision.permissions = decision.permissions.with(media);
                undecided = undecided.without(media);
            }
        }
        for rule in self.rules() {
            if undecided.is_empty() {
                break;
            }
            let kinds: MediaSet = rule
                .media
                .iter()
                .filter(|m| undecided.contains(*m))
                .collect();
            if (rule.dry_run && !dry_run)
                || kinds.is_empty()
                || !rule.in_force_at(facts.now)
                || !subject_matches(&rule.subject, facts)
            {
                continue;
            }
            for media in kinds.iter() {
                decision.reasons[media_index(media)] = Reason::Rule {
                    id: rule.id,
                    effect: rule.effect,
                    priority: rule.priority,
                    cap: rule.cap,
                };
                let approval = approved[media_index(media)]
                    .filter(|_| rule.effect == Effect::Request && rule.in_force_at(facts.now));
                let (allowed, standing) = match (rule.effect, rule.cap, approval) {
                    // Approved under a request rule without a cap: nothing to count against.
                    (Effect::Request, None, Some(grant)) => {
                        decision.reasons[media_index(media)] = Reason::Grant {
                            id: grant.id,
                            expires_at: grant.expires_at,
                        };
                        (true, Standing::Free)
                    }
                    (Effect::Request, Some(_), Some(_)) => (false, Standing::Approved),
                    (Effect::Deny, _, _) => (false, Standing::Free),
                    (Effect::Allow, None, _) => (true, Standing::Free),
                    (Effect::Request, _, _) if !facts.hand_raised => (false, Standing::HandDown),
                    (Effect::Allow | Effect::Request, _, _) => (false, Standing::Unsettled),
                };
                decision.set(media, allowed, standing);
                undecided = undecided.without(media);
            }
        }
        for media in undecided.iter() {
            if default.contains(media) {
                decision.permissions = decision.permissions.with(media);
            }
        }
        decision
    }
}

impl Rule {
    /// Whether the rule's window is open at `now` (always, without a window).
    pub fn in_force_at(&self, now: Timestamp) -> bool {
        self.window.as_ref().is_none_or(|w| w.is_open(now))
    }
}

pub(crate) fn subject_matches(subject: &Subject, facts: &OccupantFacts<'_>) -> bool {
    match subject {
        Subject::Everyone => true,
        Subject::Role(role) => facts.role == *role,
        Subject::Affiliation(affiliation) => facts.affiliation == *affiliation,
        Subject::User(id) => facts.user_id == Some(id.as_str()),
        Subject::Group(group) => facts.group == Some(group.as_str()),
        Subject::Jid(glob) => glob.is_match(facts.real_bare_jid.to_lowercase()),
        Subject::Domain(glob) => {
            let domain = facts
                .real_bare_jid
                .rsplit_once('@')
                .map_or(facts.real_bare_jid.as_str(), |(_, domain)| domain);
            glob.is_match(domain.to_lowercase())
        }
        Subject::Email(glob) => facts.email.is_some_and(|e| glob.is_match(e.to_lowercase())),
        Subject::Claim { name, value } => facts
            .claims
            .and_then(|claims| claims.get(name))
            .is_some_and(|found| found == value),
        Subject::Service(service) => facts.services.contains(service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::model::test_row as row;

    fn facts(room: &'static str, role: Role, jid: &str) -> OccupantFacts<'static> {
        OccupantFacts {
            room,
            role,
            affiliation: Affiliation::None,
            real_bare_jid: jid.into(),
            user_id: None,
            group: None,
            email: None,
            claims: None,
            services: &[],
            hand_raised: false,
            meeting: None,
            now: "2026-11-23T10:00:00Z".parse().unwrap(),
        }
    }

    /// The token and domain subjects: email, domain, claims and trusted services.
    #[test]
    fn test_token_and_domain_subjects() {
        let rows = vec![
            row(1, "*", "email", Some("*@Example.com"), "audio", "allow", 0),
            row(2, "*", "domain", Some("guest.*"), "all", "deny", 50),
            row(
                3,
                "*",
                "claim",
                Some("user.department=sales"),
                "video",
                "allow",
                0,
            ),
            row(
                4,
                "*",
                "claim",
                Some("features.screen-sharing"),
                "screen",
                "allow",
                0,
            ),
            row(5, "*", "service", Some("jibri"), "all", "deny", 100),
        ];
        let (set, problems) = RuleSet::from_rows(&rows, MediaSet::NONE);
        assert!(problems.is_empty(), "{problems:?}");
        let rules = set.for_room("standup", Timestamp::UNIX_EPOCH);
        let claims = BTreeMap::from([
            ("user.department".to_owned(), "sales".to_owned()),
            ("features.screen-sharing".to_owned(), "true".to_owned()),
        ]);
        let mut alice = facts("standup", Role::Participant, "alice@localhost");
        alice.email = Some("ALICE@example.COM");
        alice.claims = Some(&claims);
        assert_eq!(rules.decide(&alice).permissions, MediaSet::ALL);
        assert_eq!(rules.decide(&alice).rule_ids(), vec![1, 3, 4]);

        // The same claims from the guest domain lose to the domain rule.
        let mut guest = facts("standup", Role::Participant, "x@guest.localhost");
        guest.email = alice.email;
        guest.claims = Some(&claims);
        assert_eq!(rules.decide(&guest).permissions, MediaSet::NONE);

        // A claim with another value, or none at all, does not match.
        let other = BTreeMap::from([("user.department".to_owned(), "support".to_owned())]);
        let mut bob = facts("standup", Role::Participant, "bob@localhost");
        bob.claims = Some(&other);
        assert_eq!(rules.decide(&bob).permissions, MediaSet::NONE);

        // A recorder counts only when the caller found it trusted.
        let mut recorder = facts("standup", Role::Participant, "recorder@recorder.localhost");
        recorder.email = alice.email;
        assert_eq!(
            rules.decide(&recorder).permissions,
            MediaSet::only(Media::Audio)
        );
        recorder.services = &[Service::Jibri];
        assert_eq!(rules.decide(&recorder).permissions, MediaSet::NONE);
    }

    /// The combining rule, table-driven: rows, occupant, default → permissions and deciding rules.
    #[test]
    fn test_combining_table() {
        struct Case {
            name: &'static str,
            rows: Vec<RuleRow>,
            default: &'static str,
            occupant: OccupantFacts<'static>,
            expect: &'static str,
            rule_ids: Vec<i64>,
        }
        let alice = facts("standup", Role::Participant, "alice@localhost");
        let moderator = facts("standup", Role::Moderator, "mod@localhost");
        let cases = vec![
            Case {
                name: "no rules: default none",
                rows: vec![],
                default: "",
                occupant: alice.clone(),
                expect: "none",
                rule_ids: vec![],
            },
            Case {
                name: "no rules: default all",
                rows: vec![],
                default: "all",
                occupant: alice.clone(),
                expect: "audio,video,screen",
                rule_ids: vec![],
            },
            Case {
                name: "one allow for everyone",
                rows: vec![row(1, "*", "everyone", None, "audio,video", "allow", 0)],
                default: "",
                occupant: alice.clone(),
                expect: "audio,video",
                rule_ids: vec![1],
            },
            Case {
                name: "higher priority wins over lower",
                rows: vec![
                    row(1, "*", "everyone", None, "all", "deny", 0),
                    row(
                        2,
                        "standup",
                        "role",
                        Some("moderator"),
                        "screen",
                        "allow",
                        10,
                    ),
                ],
                default: "all",
                occupant: moderator.clone(),
                expect: "screen",
                rule_ids: vec![1, 2],
            },
            Case {
                name: "lower priority allow loses to higher deny",
                rows: vec![
                    row(1, "*", "everyone", None, "all", "allow", 0),
                    row(2, "stand*", "everyone", None, "screen", "deny", 5),
                ],
                default: "",
                occupant: alice.clone(),
                expect: "audio,video",
                rule_ids: vec![1, 2],
            },
            Case {
                name: "deny wins a tie",
                rows: vec![
                    row(1, "*", "everyone", None, "audio", "allow", 3),
                    row(2, "*", "jid", Some("alice@*"), "audio", "deny", 3),
                ],
                default: "",
                occupant: alice.clone(),
                expect: "none",
                rule_ids: vec![2],
            },
            Case {
                name: "non-matching subject is ignored",
                rows: vec![row(1, "*", "role", Some("moderator"), "all", "allow", 0)],
                default: "",
                occupant: alice.clone(),
                expect: "none",
                rule_ids: vec![],
            },
            Case {
                name: "other room is ignored",
                rows: vec![row(1, "daily", "everyone", None, "all", "allow", 0)],
                default: "",
                occupant: alice.clone(),
                expect: "none",
                rule_ids: vec![],
            },
            Case {
                name: "kinds are decided independently; default fills the rest",
                rows: vec![row(1, "standup", "everyone", None, "video", "deny", 0)],
                default: "audio,video",
                occupant: alice.clone(),
                expect: "audio",
                rule_ids: vec![1],
            },
            Case {
                name: "glob ? matches one character only",
                rows: vec![
                    row(1, "standu?", "everyone", None, "audio", "allow", 0),
                    row(2, "stand?", "everyone", None, "video", "allow", 0),
                ],
                default: "",
                occupant: alice.clone(),
                expect: "audio",
                rule_ids: vec![1],
            },
        ];
        for case in cases {
            let default = MediaSet::parse_list(case.default).unwrap();
            let (set, problems) = RuleSet::from_rows(&case.rows, default);
            assert!(problems.is_empty(), "{}: {problems:?}", case.name);
            let decision = set.decide(&case.occupant);
            assert_eq!(
                decision.permissions.to_string(),
                case.expect,
                "{}",
                case.name
            );
            assert_eq!(decision.rule_ids(), case.rule_ids, "{}", case.name);
        }
    }

    #[test]
    fn test_identity_subjects() {
        let (set, _) = RuleSet::from_rows(
            &[
                row(1, "*", "user", Some("u-42"), "audio", "allow", 0),
                row(2, "*", "group", Some("acme"), "video", "allow", 0),
                row(3, "*", "affiliation", Some("owner"), "screen", "allow", 0),
            ],
            MediaSet::NONE,
        );
        let mut f = facts("any", Role::Participant, "x@localhost");
        assert_eq!(set.decide(&f).permissions, MediaSet::NONE);
        f.user_id = Some("u-42");
        f.group = Some("acme");
        f.affiliation = Affiliation::Owner;
        assert_eq!(set.decide(&f).permissions, MediaSet::ALL);
    }

    #[test]
    fn test_reasons_display() {
        let (set, _) = RuleSet::from_rows(
            &[row(4, "*", "everyone", None, "audio", "allow", 2)],
            MediaSet::only(Media::Video),
        );
        let decision = set.decide(&facts("r", Role::Participant, "a@b"));
        assert_eq!(
            decision.to_string(),
            "audio: allow by rule 4 (priority 2); video: allow by default; screen: deny by default"
        );
    }

    #[test]
    fn test_bad_rows_are_skipped_not_fatal() {
        let (set, problems) = RuleSet::from_rows(
            &[
                row(1, "*", "everyone", None, "all", "allow", 0),
                row(2, "*", "ghost", None, "all", "deny", 9),
            ],
            MediaSet::NONE,
        );
        assert_eq!(set.len(), 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].id, 2);
        assert_eq!(
            set.decide(&facts("r", Role::Participant, "a@b"))
                .permissions,
            MediaSet::ALL
        );
    }

    #[test]
    fn test_bracketed_tenant_room_is_literal() {
        let (set, _) = RuleSet::from_rows(
            &[row(1, "[acme]*", "everyone", None, "audio", "allow", 0)],
            MediaSet::NONE,
        );
        assert_eq!(
            set.decide(&facts("[acme]standup", Role::Participant, "a@b"))
                .permissions,
            MediaSet::only(Media::Audio)
        );
        assert_eq!(
            set.decide(&facts("astandup", Role::Participant, "a@b"))
                .permissions,
            MediaSet::NONE
        );
    }

    /// A breakout room (`main/breakout`) follows its main room's rules and grants, unless a rule
    /// written for breakout rooms (a pattern with `/`) names it; then those and the `*` rules apply,
    /// and main-room globs that happen to match its name do not.
    #[test]
    fn test_breakout_rooms_inherit_unless_named() {
        let rows = [
            row(1, "lecture", "everyone", None, "audio", "allow", 0),
            row(2, "*", "role", Some("moderator"), "screen", "allow", 0),
            row(3, "seminar", "everyone", None, "video", "allow", 0),
            row(4, "seminar/*", "everyone", None, "audio", "allow", 0),
            row(5, "sem*", "everyone", None, "video,audio", "allow", 0),
            row(6, "*/quiet-*", "everyone", None, "all", "deny", 10),
        ];
        let grant = GrantRow {
            id: 1,
            room: "lecture".into(),
            who: "jid".into(),
            who_value: Some("guest@b".into()),
            media: "video".into(),
            expires_at: "2026-11-23T11:00:00Z".into(),
            granted_by: "test".into(),
            source: "sql".into(),
            meeting: None,
        };
        let breakout_grant = GrantRow {
            id: 2,
            room: "lecture/6f1c".into(),
            who: "jid".into(),
            who_value: Some("a@b".into()),
            media: "screen".into(),
            ..grant.clone()
        };
        let (set, problems) = RuleSet::from_tables(&rows, &[grant, breakout_grant], MediaSet::NONE);
        assert!(problems.is_empty(), "{problems:?}");
        let may =
            |room: &'static str, role, jid: &str| set.decide(&facts(room, role, jid)).permissions;
        let audio = MediaSet::only(Media::Audio);

        // Not named: exactly the main room's rules and grants.
        assert_eq!(may("lecture/9a9a", Role::Participant, "a@b"), audio);
        assert_eq!(
            may("lecture/6f1c", Role::Moderator, "a@b"),
            audio.with(Media::Screen)
        );
        assert_eq!(
            may("lecture/6f1c", Role::Participant, "guest@b"),
            audio.with(Media::Video)
        );
        // A grant for one breakout room applies there only, and the room still inherits.
        assert_eq!(
            may("lecture/6f1c", Role::Participant, "a@b"),
            audio.with(Media::Screen)
        );
        assert_eq!(may("lecture/7d3e", Role::Participant, "a@b"), audio);
        assert_eq!(may("lecture", Role::Participant, "a@b"), audio);
        // Named by `seminar/*`: rules 4 and 2 apply; 3 and 5 (written for main rooms) do not.
        assert_eq!(
            may("seminar", Role::Participant, "a@b"),
            MediaSet::only(Media::Video).with(Media::Audio)
        );
        assert_eq!(may("seminar/9a2b", Role::Participant, "a@b"), audio);
        assert_eq!(
            may("seminar/9a2b", Role::Moderator, "a@b"),
            audio.with(Media::Screen)
        );
        // Named by `*/quiet-*`: the main room's grant no longer applies.
        assert_eq!(
            may("lecture/quiet-1", Role::Moderator, "guest@b"),
            MediaSet::NONE
        );
        // Main rooms never match breakout patterns.
        assert_eq!(may("quiet-1", Role::Participant, "a@b"), MediaSet::NONE);
    }

    /// A rule that is not in force (dry-run, or outside its window) does not name a breakout room:
    /// the room keeps following its main room, and never fails open.
    #[test]
    fn test_only_rules_in_force_name_a_breakout_room() {
        let mut dry = row(3, "*/*", "everyone", None, "all", "allow", 0);
        dry.dry_run = 1;
        let mut later = row(4, "lecture/*", "everyone", None, "all", "allow", 0);
        later.not_before = Some("2026-11-24T00:00:00Z".into());
        let rows = [
            row(1, "*", "everyone", None, "all", "allow", 0),
            row(2, "lecture", "everyone", None, "screen", "deny", 10),
            dry,
            later,
        ];
        let (set, problems) = RuleSet::from_rows(&rows, MediaSet::NONE);
        assert!(problems.is_empty(), "{problems:?}");
        let may = |now: &str| {
            let mut facts = facts("lecture/abc", Role::Participant, "a@b");
            facts.now = now.parse().unwrap();
            set.decide(&facts).permissions
        };
        let no_screen = MediaSet::ALL.without(Media::Screen);
        assert_eq!(may("2026-11-23T10:00:00Z"), no_screen);
        // Once rule 4's window opens it names the room, and its allow applies there.
        assert_eq!(may("2026-11-24T10:00:00Z"), MediaSet::ALL);
    }
}
