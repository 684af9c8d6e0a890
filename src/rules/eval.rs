//! The pure evaluator: occupant facts and rules in, a decision with its reasons out.
//!
//! # Combining rule
//!
//! Each kind (audio, video, screen) is decided on its own:
//!
//! 1. Of the enabled, valid rules whose `room` matches the room, whose `who` matches the occupant and
//!    whose `media` includes the kind, the one with the **highest priority** decides.
//! 2. At equal priority, **deny wins** over allow.
//! 3. When no rule matches, the kind follows `rules.default` from the configuration.
//!
//! Rules are kept sorted by (priority descending, deny before allow, id ascending), so the first
//! matching rule for a kind is its winner and evaluation stops as soon as every kind is decided.
//! Room patterns are indexed (a hash map for exact names, one `GlobSet` for all room globs), so
//! finding a room's rules does not scan the whole table, and the engine resolves them once per room.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use globset::{GlobSet, GlobSetBuilder};
use jiff::Timestamp;

use super::model::{Effect, RoomPattern, Rule, RuleProblem, RuleRow, Service, Subject, glob};
use crate::media::{Media, MediaSet};
use crate::rooms::{Affiliation, Role};

/// What the evaluator knows of an occupant: only what the server vouches for.
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
    /// The time to decide at: rules outside their window do not count. The evaluator never reads the
    /// clock.
    pub now: Timestamp,
}

/// Why one kind was decided the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A rule decided it.
    Rule {
        /// The rule's row id.
        id: i64,
        /// Its effect.
        effect: Effect,
        /// Its priority.
        priority: i64,
    },
    /// No rule matched; `rules.default` applied.
    Default {
        /// Whether the default allows the kind.
        allowed: bool,
    },
}

/// A decision: what the occupant may send, and why, kind by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What the occupant may send.
    pub permissions: MediaSet,
    /// One reason per kind, in [`Media::ALL`] order.
    pub reasons: [Reason; 3],
}

impl Decision {
    /// The reason for one kind.
    pub fn reason(&self, media: Media) -> Reason {
        self.reasons[media_index(media)]
    }

    /// The distinct rule ids that decided, ascending.
    pub fn rule_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .reasons
            .iter()
            .filter_map(|r| match r {
                Reason::Rule { id, .. } => Some(*id),
                Reason::Default { .. } => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
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
                } => write!(
                    f,
                    "{media}: {} by rule {id} (priority {priority})",
                    effect.as_str()
                )?,
                Reason::Default { allowed } => write!(
                    f,
                    "{media}: {} by default",
                    if allowed { "allow" } else { "deny" }
                )?,
            }
        }
        Ok(())
    }
}

fn media_index(media: Media) -> usize {
    match media {
        Media::Audio => 0,
        Media::Video => 1,
        Media::Screen => 2,
    }
}

/// All valid rules, indexed by room pattern.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Sorted by priority desc, deny first, id asc.
    rules: Vec<Rule>,
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
                .then_with(|| (a.effect == Effect::Allow).cmp(&(b.effect == Effect::Allow)))
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
            exact,
            globs,
            glob_rules,
            everywhere,
            default,
            has_dry_run,
        }
    }

    /// Checks rows and builds the set; the problems are returned for logging.
    pub fn from_rows(rows: &[RuleRow], default: MediaSet) -> (RuleSet, Vec<RuleProblem>) {
        let mut rules = Vec::with_capacity(rows.len());
        let mut problems = Vec::new();
        for row in rows {
            match Rule::from_row(row) {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(problem) => problems.push(problem),
            }
        }
        (RuleSet::new(rules, default), problems)
    }

    /// How many rules are in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `rules.default`.
    pub fn default_permissions(&self) -> MediaSet {
        self.default
    }

    /// The first moment after `now` at which some rule's window opens or closes: podium re-decides
    /// then.
    pub fn next_edge(&self, now: Timestamp) -> Option<Timestamp> {
        self.rules
            .iter()
            .filter_map(|rule| rule.window.as_ref()?.next_edge(now))
            .min()
    }

    /// Whether any rule is in dry-run (then a second, "would" decision is worth computing).
    pub fn has_dry_run(&self) -> bool {
        self.has_dry_run
    }

    /// The rules that apply in a room, resolved once and reused for all its occupants.
    pub fn for_room(&self, room: &str) -> RoomRules<'_> {
        let room = room.to_lowercase();
        let mut positions = self.everywhere.clone();
        if let Some(exact) = self.exact.get(&room) {
            positions.extend_from_slice(exact);
        }
        if !self.glob_rules.is_empty() {
            for index in self.globs.matches(&room) {
                positions.extend_from_slice(&self.glob_rules[index]);
            }
        }
        positions.sort_unstable();
        positions.dedup();
        RoomRules {
            set: self,
            positions,
        }
    }

    /// Decides for one occupant (resolves the room's rules first).
    pub fn decide(&self, facts: &OccupantFacts<'_>) -> Decision {
        self.for_room(facts.room).decide(facts)
    }
}

/// The rules of one room, in combining order.
#[derive(Debug, Clone)]
pub struct RoomRules<'a> {
    set: &'a RuleSet,
    positions: Vec<usize>,
}

impl RoomRules<'_> {
    /// Decides for one occupant of this room, as enforced: rules in dry-run do not count.
    pub fn decide(&self, facts: &OccupantFacts<'_>) -> Decision {
        self.decide_with(facts, false)
    }

    /// What would be decided if the rules in dry-run were in force.
    pub fn decide_with_dry_run(&self, facts: &OccupantFacts<'_>) -> Decision {
        self.decide_with(facts, true)
    }

    fn decide_with(&self, facts: &OccupantFacts<'_>, dry_run: bool) -> Decision {
        let default = self.set.default;
        let mut reasons = Media::ALL.map(|m| Reason::Default {
            allowed: default.contains(m),
        });
        let mut undecided = MediaSet::ALL;
        let mut permissions = MediaSet::NONE;
        for &pos in &self.positions {
            let rule = &self.set.rules[pos];
            let kinds: MediaSet = rule
                .media
                .iter()
                .filter(|m| undecided.contains(*m))
                .collect();
            if (rule.dry_run && !dry_run)
                || kinds.is_empty()
                || rule.window.as_ref().is_some_and(|w| !w.is_open(facts.now))
                || !subject_matches(&rule.subject, facts)
            {
                continue;
            }
            for media in kinds.iter() {
                reasons[media_index(media)] = Reason::Rule {
                    id: rule.id,
                    effect: rule.effect,
                    priority: rule.priority,
                };
                if rule.effect == Effect::Allow {
                    permissions = permissions.with(media);
                }
                undecided = undecided.without(media);
            }
            if undecided.is_empty() {
                break;
            }
        }
        for media in undecided.iter() {
            if default.contains(media) {
                permissions = permissions.with(media);
            }
        }
        Decision {
            permissions,
            reasons,
        }
    }
}

fn subject_matches(subject: &Subject, facts: &OccupantFacts<'_>) -> bool {
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
        let rules = set.for_room("standup");
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
}
