//! Why an occupant may or may not send each kind: the inputs used, the rule or grant that decided,
//! and why every other rule of the room lost.
//!
//! The same text is printed by `podium explain ROOM OCCUPANT` and stored with every decision change
//! in the audit log (`decisions_full.inputs` as JSON, `decisions_full.explanation` as text; each
//! distinct text stored once in `audit_texts`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::eval::{Decision, OccupantFacts, Reason, RoomRules, RuleSet, Standing, subject_matches};
use super::model::{Effect, Rule, Service};
use crate::media::Media;
use crate::rooms::{Affiliation, Role};

/// Everything the evaluator used about one occupant, owned: stored as JSON with each decision and
/// rebuilt from the `occupants` table by `podium explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The room name (local part of the room JID).
    pub room: String,
    /// MUC role.
    pub role: String,
    /// MUC affiliation.
    pub affiliation: String,
    /// The real bare JID.
    pub real_jid: String,
    /// JWT `context.user.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// JWT `context.group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// JWT `context.user.email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Other token claims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// Trusted services (`jibri`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// When podium saw the hand go up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_raised_at: Option<Timestamp>,
    /// When podium saw the occupant join.
    pub joined_at: Timestamp,
    /// The room's meeting id (grants for another meeting do not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting: Option<String>,
    /// The time decided at.
    pub time: Timestamp,
}

impl Inputs {
    /// The evaluator's view of these inputs. `services` must be [`Inputs::parsed_services`].
    pub fn facts<'a>(&'a self, services: &'a [Service]) -> OccupantFacts<'a> {
        OccupantFacts {
            room: &self.room,
            role: self.role.parse().unwrap_or(Role::None),
            affiliation: self.affiliation.parse().unwrap_or(Affiliation::None),
            real_bare_jid: self.real_jid.clone(),
            user_id: self.user_id.as_deref(),
            group: self.group.as_deref(),
            email: self.email.as_deref(),
            claims: Some(&self.claims),
            services,
            hand_raised: self.hand_raised_at.is_some(),
            meeting: self.meeting.as_deref(),
            now: self.time,
        }
    }

    /// The inputs as stored with a decision: the JSON without `time`, which is the decision's own
    /// `at`, and without the identity the decision row holds (`real_jid`, `user_id`, `group`,
    /// `email`; `decisions_full.inputs` puts them back), so an occupant decided again on the same
    /// inputs, and occupants of a room alike but for who they are, are stored once.
    pub fn stored_json(&self) -> String {
        /// The stored fields, in the order of a JSON object's keys (sorted, as before).
        #[derive(Serialize)]
        struct Stored<'a> {
            affiliation: &'a str,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            claims: &'a BTreeMap<String, String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            hand_raised_at: Option<Timestamp>,
            joined_at: Timestamp,
            #[serde(skip_serializing_if = "Option::is_none")]
            meeting: Option<&'a str>,
            role: &'a str,
            room: &'a str,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            services: &'a [String],
        }
        serde_json::to_string(&Stored {
            affiliation: &self.affiliation,
            claims: &self.claims,
            hand_raised_at: self.hand_raised_at,
            joined_at: self.joined_at,
            meeting: self.meeting.as_deref(),
            role: &self.role,
            room: &self.room,
            services: &self.services,
        })
        .unwrap_or_default()
    }

    /// The services, typed.
    pub fn parsed_services(&self) -> Vec<Service> {
        self.services
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// One line: `role participant, affiliation none, jid a@b, user u-1, hand raised 10:00:01Z, …`.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "role {}, affiliation {}, jid {}",
            self.role, self.affiliation, self.real_jid
        );
        for (name, value) in [
            ("user", &self.user_id),
            ("group", &self.group),
            ("email", &self.email),
        ] {
            if let Some(value) = value {
                let _ = write!(out, ", {name} {value}");
            }
        }
        for (name, value) in &self.claims {
            let _ = write!(out, ", claim {name}={value}");
        }
        if !self.services.is_empty() {
            let _ = write!(out, ", service {}", self.services.join(","));
        }
        match self.hand_raised_at {
            Some(at) => {
                let _ = write!(out, ", hand raised at {at}");
            }
            None => out.push_str(", hand down"),
        }
        let _ = write!(out, ", joined at {}, time {}", self.joined_at, self.time);
        out
    }
}

/// Explains `decision` (as settled for the room) for the occupant of `facts`, kind by kind.
pub fn explain(rules: &RoomRules<'_>, facts: &OccupantFacts<'_>, decision: &Decision) -> String {
    let mut out = String::new();
    for media in Media::ALL {
        let _ = writeln!(out, "{}", kind_line(decision, media));
        let reason = decision.reason(media);
        for grant in rules.grants().filter(|g| g.media.contains(media)) {
            let status = if grant.expires_at <= facts.now {
                format!("expired at {}", grant.expires_at)
            } else if !subject_matches(&grant.subject, facts) {
                "not this occupant".to_owned()
            } else if matches!(reason, Reason::Grant { id, .. } if id == grant.id) {
                "decided".to_owned()
            } else {
                "also in force".to_owned()
            };
            let _ = writeln!(
                out,
                "  grant {} (who {}, by {}, until {}): {status}",
                grant.id, grant.who, grant.granted_by, grant.expires_at
            );
        }
        let winner = match reason {
            Reason::Rule { id, .. } => rules.rules().find(|r| r.id == id),
            _ => None,
        };
        for rule in rules.rules().filter(|r| r.media.contains(media)) {
            let status = rule_status(rule, winner, reason, facts);
            let _ = writeln!(
                out,
                "  rule {} ({} {}, priority {}{}): {status}",
                rule.id,
                rule.effect.as_str(),
                rule.who,
                rule.priority,
                rule.cap.map(|c| format!(", cap {c}")).unwrap_or_default()
            );
        }
        if let Reason::Default { allowed } = reason {
            let _ = writeln!(
                out,
                "  no rule or grant matched: rules.default {} {media}",
                if allowed { "allows" } else { "denies" }
            );
        }
    }
    out
}

fn kind_line(decision: &Decision, media: Media) -> String {
    let verdict = if decision.permissions.contains(media) {
        "may send"
    } else {
        "may not send"
    };
    let standing = match decision.standing(media) {
        Standing::Free => String::new(),
        Standing::HandDown => " (a request rule decided and the hand is down)".into(),
        Standing::Unsettled => " (waits on the room's queue)".into(),
        Standing::Approved => " (approved by a moderator; first on the room's queue)".into(),
        Standing::Holding => " (holds a slot of the cap)".into(),
        Standing::Waiting {
            position,
            for_approval: false,
        } => format!(" (waits for a slot: position {position})"),
        Standing::Waiting {
            position,
            for_approval: true,
        } => format!(" (waits for approval: position {position})"),
    };
    format!("{media}: {verdict}{standing}")
}

fn rule_status(
    rule: &Rule,
    winner: Option<&Rule>,
    reason: Reason,
    facts: &OccupantFacts<'_>,
) -> String {
    if rule.dry_run {
        return "in dry-run (never enforced)".into();
    }
    if !rule.in_force_at(facts.now) {
        return "outside its time window".into();
    }
    if !subject_matches(&rule.subject, facts) {
        return "not this occupant".into();
    }
    if let Reason::Grant { id, .. } = reason {
        return format!("lost to grant {id} (grants win over rules)");
    }
    let Some(winner) = winner else {
        return "matches".into();
    };
    if winner.id == rule.id {
        return "decided".into();
    }
    if rule.priority < winner.priority {
        format!(
            "lost: priority {} is below rule {}'s {}",
            rule.priority, winner.id, winner.priority
        )
    } else if rule.effect != winner.effect {
        format!(
            "lost: at equal priority {} is stricter than {} (rule {})",
            winner.effect.as_str(),
            rule.effect.as_str(),
            winner.id
        )
    } else {
        format!(
            "same outcome as rule {}, which comes first (lower id)",
            winner.id
        )
    }
}

/// How to read a stored explanation: it opens the part every room shares (see [`rules_text`]).
const HOW_TO_READ: &str = "\
Per kind, a grant in force for the occupant wins (a moderator's approval only through a request \
rule); else the first rule in this order (priority, deny before allow at equal priority, then id; \
the room's own list and the list for every room merge by it) that covers the kind, is in force, \
is not in dry-run and matches the occupant (see inputs) decides; else rules.default. The rule or \
grant that decided each kind, and where the occupant stands in a queue: reasons.\n";

/// What the audit log stores as the explanation of a decision in `room`: the rules and grants that
/// applied there, as they stood at `now`, in combining order. It is the same for every occupant of
/// the room until the rules change, so it is stored once per rule-set version and room (with the
/// occupant's inputs and reasons, it says everything [`explain()`] prints: a rule before the
/// deciding one did not match the occupant or was not in force, a rule after it lost to it).
///
/// This is the room's own part: the rules that name the room or a pattern matching it, and its
/// grants. The rules for every room (`*`) come before it, in [`rules_text`], shared by every room.
pub fn room_rules_text(rules: &RoomRules<'_>, room: &str, now: Timestamp) -> String {
    let mut out = format!("room {room}: its own rules, first to last\n");
    for rule in rules.rules().filter(|r| !r.room.is_all()) {
        rule_line(&mut out, rule, now);
    }
    for grant in rules.grants() {
        let _ = write!(
            out,
            "  grant {} (who {}, {}, by {}, until {})",
            grant.id, grant.who, grant.media, grant.granted_by, grant.expires_at
        );
        if grant.approval {
            out.push_str(", A/V-moderation approval");
        }
        if let Some(meeting) = &grant.meeting {
            let _ = write!(out, ", meeting {meeting}");
        }
        out.push_str(if grant.expires_at <= now {
            ": expired\n"
        } else {
            "\n"
        });
    }
    out
}

/// The part of every stored explanation that all rooms share: how to read it, `rules.default`, and
/// the rules for every room (`*`) as they stood at `now`, in combining order.
pub fn rules_text(set: &RuleSet, now: Timestamp) -> String {
    let mut out = String::from(HOW_TO_READ);
    let _ = writeln!(out, "rules.default: {}", set.default_permissions());
    out.push_str("every room: rules for '*', first to last\n");
    for rule in set.rules().iter().filter(|r| r.room.is_all()) {
        rule_line(&mut out, rule, now);
    }
    out
}

/// `  rule 14 (allow role moderator, audio,screen, priority 6, cap 2)`, and why it cannot decide.
fn rule_line(out: &mut String, rule: &Rule, now: Timestamp) {
    let _ = write!(
        out,
        "  rule {} ({} {}, {}, priority {}",
        rule.id,
        rule.effect.as_str(),
        rule.who,
        rule.media,
        rule.priority
    );
    if let Some(cap) = rule.cap {
        let _ = write!(out, ", cap {cap}");
    }
    out.push(')');
    if rule.dry_run {
        out.push_str(": in dry-run (never enforced)");
    } else if !rule.in_force_at(now) {
        out.push_str(": outside its time window");
    }
    out.push('\n');
}

/// Whether an effect is one that needs the room's queue.
pub fn queues(rule: &Rule) -> bool {
    rule.cap.is_some() || rule.effect == Effect::Request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaSet;
    use crate::rules::RuleSet;
    use crate::rules::model::test_row;

    fn inputs(role: &str) -> Inputs {
        Inputs {
            room: "standup".into(),
            role: role.into(),
            affiliation: "none".into(),
            real_jid: "alice@localhost".into(),
            user_id: Some("u-1".into()),
            group: None,
            email: None,
            claims: BTreeMap::new(),
            services: vec![],
            hand_raised_at: None,
            joined_at: "2026-11-23T09:00:00Z".parse().unwrap(),
            meeting: None,
            time: "2026-11-23T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn test_explanation_names_winner_and_losers() {
        let mut windowed = test_row(5, "*", "everyone", None, "audio", "allow", 99);
        windowed.not_after = Some("2026-01-01T00:00:00Z".into());
        let mut dry = test_row(6, "*", "everyone", None, "screen", "allow", 99);
        dry.dry_run = 1;
        let (set, problems) = RuleSet::from_rows(
            &[
                test_row(1, "*", "everyone", None, "all", "deny", 0),
                test_row(
                    2,
                    "standup",
                    "role",
                    Some("participant"),
                    "audio",
                    "allow",
                    10,
                ),
                test_row(3, "standup", "user", Some("u-1"), "audio", "deny", 10),
                test_row(4, "*", "role", Some("moderator"), "video", "allow", 50),
                windowed,
                dry,
            ],
            MediaSet::NONE,
        );
        assert!(problems.is_empty());
        let inputs = inputs("participant");
        let services = inputs.parsed_services();
        let facts = inputs.facts(&services);
        let room = set.for_room("standup", facts.now);
        let decision = room.decide(&facts);
        let text = explain(&room, &facts, &decision);
        let expected = "\
audio: may not send
  rule 5 (allow everyone, priority 99): outside its time window
  rule 3 (deny user u-1, priority 10): decided
  rule 2 (allow role participant, priority 10): lost: at equal priority deny is stricter than allow (rule 3)
  rule 1 (deny everyone, priority 0): lost: priority 0 is below rule 3's 10
video: may not send
  rule 4 (allow role moderator, priority 50): not this occupant
  rule 1 (deny everyone, priority 0): decided
screen: may not send
  rule 6 (allow everyone, priority 99): in dry-run (never enforced)
  rule 1 (deny everyone, priority 0): decided
";
        assert_eq!(text, expected);
    }

    #[test]
    fn test_grant_wins_and_is_named() {
        let grant = crate::rules::GrantRow {
            id: 8,
            room: "standup".into(),
            who: "user".into(),
            who_value: Some("u-1".into()),
            media: "audio".into(),
            expires_at: "2026-11-23T11:00:00Z".into(),
            granted_by: "teacher@localhost".into(),
            source: "sql".into(),
            meeting: None,
        };
        let (set, _) = RuleSet::from_tables(
            &[test_row(1, "*", "everyone", None, "all", "deny", 100)],
            &[grant],
            MediaSet::NONE,
        );
        let inputs = inputs("participant");
        let services = inputs.parsed_services();
        let facts = inputs.facts(&services);
        let room = set.for_room("standup", facts.now);
        let decision = room.decide(&facts);
        assert_eq!(decision.permissions, MediaSet::only(Media::Audio));
        let text = explain(&room, &facts, &decision);
        assert!(text.starts_with(
            "audio: may send\n  grant 8 (who user u-1, by teacher@localhost, until 2026-11-23T11:00:00Z): decided\n  rule 1 (deny everyone, priority 100): lost to grant 8 (grants win over rules)\n"
        ), "{text}");
        // After expiry the rule decides again, and the grant says why it no longer counts.
        let mut later = inputs.clone();
        later.time = "2026-11-23T11:00:00Z".parse().unwrap();
        let facts = later.facts(&services);
        let decision = room.decide(&facts);
        assert_eq!(decision.permissions, MediaSet::NONE);
        assert!(explain(&room, &facts, &decision).contains("grant 8 (who user u-1, by teacher@localhost, until 2026-11-23T11:00:00Z): expired at 2026-11-23T11:00:00Z"));
    }

    #[test]
    fn test_stored_inputs_leave_the_time_to_the_row() {
        let inputs = inputs("participant");
        let mut later = inputs.clone();
        later.time = "2026-11-23T11:00:00Z".parse().unwrap();
        assert_eq!(inputs.stored_json(), later.stored_json());
        assert!(
            !inputs.stored_json().contains("time"),
            "{}",
            inputs.stored_json()
        );
        // The identity is the row's: left out, so occupants alike but for who they are share it.
        assert_eq!(
            inputs.stored_json(),
            r#"{"affiliation":"none","joined_at":"2026-11-23T09:00:00Z","role":"participant","room":"standup"}"#
        );
        // Every other field as the whole inputs' JSON has it.
        let mut full = inputs.clone();
        full.claims.insert("user.department".into(), "sales".into());
        full.services = vec!["jibri".into()];
        full.hand_raised_at = Some("2026-11-23T09:30:00Z".parse().unwrap());
        full.meeting = Some("m-1".into());
        let mut expected = serde_json::to_value(&full).unwrap();
        for field in ["time", "real_jid", "user_id", "group", "email"] {
            expected.as_object_mut().unwrap().remove(field);
        }
        assert_eq!(full.stored_json(), expected.to_string());
    }

    #[test]
    fn test_inputs_round_trip_json() {
        let mut inputs = inputs("moderator");
        inputs.hand_raised_at = Some("2026-11-23T09:30:00Z".parse().unwrap());
        inputs
            .claims
            .insert("user.department".into(), "sales".into());
        let json = serde_json::to_string(&inputs).unwrap();
        assert_eq!(serde_json::from_str::<Inputs>(&json).unwrap(), inputs);
        assert_eq!(
            inputs.summary(),
            "role moderator, affiliation none, jid alice@localhost, user u-1, claim user.department=sales, \
             hand raised at 2026-11-23T09:30:00Z, joined at 2026-11-23T09:00:00Z, time 2026-11-23T10:00:00Z"
        );
    }
}
