//! Caps and requests, settled over a whole room.
//!
//! The evaluator decides each occupant alone; a kind decided by an `allow` rule with a `cap`, or by a
//! `request` rule with the hand up, comes out [`Standing::Unsettled`]. [`settle`] then looks at the
//! room, kind by kind:
//!
//! 1. **Holders keep their slot.** Everyone holding a slot of the kind (from the previous pass) keeps
//!    it while fewer than their rule's `cap` capped holders have been kept, in queue order, so a
//!    lowered cap trims the queue's tail, never a new arrival's head. A holder who has kept the kind
//!    muted longer than the idle time is not kept here: it queues behind everyone else and keeps the
//!    slot only if nobody is waiting.
//! 2. **Free slots go in queue order:** higher rule priority first, then the earlier raised hand
//!    (as podium saw it), then the earlier join (as podium saw it, then by the module's join
//!    sequence), then the nick. A candidate is granted while fewer
//!    than its own rule's `cap` occupants of the room hold the kind through capped rules (occupants
//!    allowed by a rule without a cap do not count).
//! 3. Everyone else waits, numbered from 1 (next) in that order.
//! 4. A `request` without a cap never gets a slot: with the hand up it waits for approval (a grant),
//!    numbered in the same order.
//!
//! Being pure (no clock, no I/O), it is tested with controlled time and fed by the engine.

use std::cmp::Ordering;

use jiff::Timestamp;

use super::eval::{Decision, Reason, Standing};
use super::model::Effect;
use crate::media::{Media, MediaSet};

/// One occupant of the room, as [`settle`] needs it.
#[derive(Debug, Clone)]
pub struct Seat {
    /// Nick, the last tie-breaker.
    pub nick: String,
    /// The occupant's decision from the evaluator; [`settle`] completes it.
    pub decision: Decision,
    /// When podium saw the hand go up.
    pub hand_raised_at: Option<Timestamp>,
    /// When podium saw the occupant join.
    pub joined_at: Timestamp,
    /// The module's join sequence number in the room (arrival order the client cannot choose).
    pub join_seq: Option<u64>,
    /// Kinds held through a slot before this pass.
    pub holding: MediaSet,
    /// Kinds held through a slot and kept muted longer than the idle time.
    pub idle: MediaSet,
}

/// Settles every capped and requested kind of a room: see the module documentation.
pub fn settle(seats: &mut [Seat]) {
    for media in Media::ALL {
        settle_kind(seats, media);
    }
}

fn settle_kind(seats: &mut [Seat], media: Media) {
    let mut capped: Vec<usize> = Vec::new();
    let mut approval: Vec<usize> = Vec::new();
    for (i, seat) in seats.iter().enumerate() {
        if !matches!(
            seat.decision.standing(media),
            Standing::Unsettled | Standing::Approved
        ) {
            continue;
        }
        match seat.decision.reason(media) {
            Reason::Rule { cap: Some(_), .. } => capped.push(i),
            Reason::Rule {
                effect: Effect::Request,
                cap: None,
                ..
            } => approval.push(i),
            _ => {}
        }
    }
    // A moderator's approval puts the occupant first in line, but the cap holds: it takes the next
    // free slot, never one a holder has.
    capped.sort_by(|&a, &b| {
        let approved = |i: usize| seats[i].decision.standing(media) == Standing::Approved;
        approved(b)
            .cmp(&approved(a))
            .then_with(|| queue_order(&seats[a], &seats[b], media))
    });
    approval.sort_by(|&a, &b| queue_order(&seats[a], &seats[b], media));

    let mut holders = 0u32;
    let mut granted = vec![false; capped.len()];
    for (k, &i) in capped.iter().enumerate() {
        let seat = &seats[i];
        let keeps = seat.holding.contains(media) && !seat.idle.contains(media);
        if keeps && holders < cap_of(seat, media) {
            granted[k] = true;
            holders += 1;
        }
    }
    // Idle holders sort behind everyone else: they keep the slot only if nobody waits for it.
    let mut rest: Vec<usize> = (0..capped.len()).filter(|&k| !granted[k]).collect();
    rest.sort_by_key(|&k| {
        let seat = &seats[capped[k]];
        seat.holding.contains(media) && seat.idle.contains(media)
    });
    let mut position = 0;
    for k in rest {
        let i = capped[k];
        if holders < cap_of(&seats[i], media) {
            holders += 1;
            seats[i].decision.set(media, true, Standing::Holding);
        } else {
            position += 1;
            seats[i].decision.set(
                media,
                false,
                Standing::Waiting {
                    position,
                    for_approval: false,
                },
            );
        }
    }
    for (k, &i) in capped.iter().enumerate() {
        if granted[k] {
            seats[i].decision.set(media, true, Standing::Holding);
        }
    }
    for (n, &i) in approval.iter().enumerate() {
        seats[i].decision.set(
            media,
            false,
            Standing::Waiting {
                position: n as u32 + 1,
                for_approval: true,
            },
        );
    }
}

fn cap_of(seat: &Seat, media: Media) -> u32 {
    match seat.decision.reason(media) {
        Reason::Rule { cap: Some(cap), .. } => cap,
        _ => 0,
    }
}

fn priority_of(seat: &Seat, media: Media) -> i64 {
    match seat.decision.reason(media) {
        Reason::Rule { priority, .. } => priority,
        _ => 0,
    }
}

/// Higher priority, earlier hand (a raised hand before none), earlier join (as podium saw it, then
/// by the module's join sequence: after a restart of podium everyone was first seen at once), nick.
/// The nick is the client's choice, so it only breaks ties nothing else can.
fn queue_order(a: &Seat, b: &Seat, media: Media) -> Ordering {
    priority_of(b, media)
        .cmp(&priority_of(a, media))
        .then_with(|| match (a.hand_raised_at, b.hand_raised_at) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.joined_at.cmp(&b.joined_at))
        .then_with(|| match (a.join_seq, b.join_seq) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        })
        .then_with(|| a.nick.cmp(&b.nick))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::Role;
    use crate::rules::RuleSet;
    use crate::rules::eval::OccupantFacts;
    use crate::rules::model::test_row;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    struct Person {
        nick: &'static str,
        role: Role,
        hand: Option<i64>,
        joined: i64,
        join_seq: Option<u64>,
        holding: MediaSet,
        idle: MediaSet,
    }

    fn person(nick: &'static str, joined: i64) -> Person {
        Person {
            nick,
            role: Role::Participant,
            hand: None,
            joined,
            join_seq: None,
            holding: MediaSet::NONE,
            idle: MediaSet::NONE,
        }
    }

    /// Evaluates and settles a room; returns each nick's decision in input order.
    fn room(rules: &RuleSet, people: &[Person]) -> Vec<Decision> {
        let room_rules = rules.for_room("class", jiff::Timestamp::UNIX_EPOCH);
        let mut seats: Vec<Seat> = people
            .iter()
            .map(|p| {
                let jid = format!("{}@localhost", p.nick);
                let facts = OccupantFacts {
                    room: "class",
                    role: p.role,
                    affiliation: Default::default(),
                    real_bare_jid: jid,
                    user_id: None,
                    group: None,
                    email: None,
                    claims: None,
                    services: &[],
                    hand_raised: p.hand.is_some(),
                    meeting: Some("m-1"),
                    now: at(1000),
                };
                Seat {
                    nick: p.nick.into(),
                    decision: room_rules.decide(&facts),
                    hand_raised_at: p.hand.map(at),
                    joined_at: at(p.joined),
                    join_seq: p.join_seq,
                    holding: p.holding,
                    idle: p.idle,
                }
            })
            .collect();
        settle(&mut seats);
        seats.into_iter().map(|s| s.decision).collect()
    }

    fn rules(rows: Vec<crate::rules::RuleRow>) -> RuleSet {
        let (set, problems) = RuleSet::from_rows(&rows, MediaSet::NONE);
        assert!(problems.is_empty(), "{problems:?}");
        set
    }

    fn capped(
        id: i64,
        who: &str,
        value: Option<&str>,
        media: &str,
        effect: &str,
        priority: i64,
        cap: i64,
    ) -> crate::rules::RuleRow {
        let mut row = test_row(id, "class", who, value, media, effect, priority);
        row.cap = Some(cap);
        row
    }

    const AUDIO: Media = Media::Audio;

    #[test]
    fn test_cap_grants_in_join_order_and_queues_the_rest() {
        let set = rules(vec![capped(1, "everyone", None, "video", "allow", 0, 2)]);
        let out = room(&set, &[person("c", 30), person("a", 10), person("b", 20)]);
        assert_eq!(out[1].standing(Media::Video), Standing::Holding);
        assert_eq!(out[2].standing(Media::Video), Standing::Holding);
        assert_eq!(
            out[0].standing(Media::Video),
            Standing::Waiting {
                position: 1,
                for_approval: false
            }
        );
        assert!(!out[0].permissions.contains(Media::Video));
        assert!(out[1].permissions.contains(Media::Video));
    }

    /// A moderator's approval (an `av_moderation` grant) for `who`, in `meeting`.
    fn approval(id: i64, who: &str, media: &str, meeting: &str) -> crate::rules::GrantRow {
        crate::rules::GrantRow {
            id,
            room: "class".into(),
            who: "jid".into(),
            who_value: Some(format!("{who}@localhost")),
            media: media.into(),
            expires_at: "2099-01-01T00:00:00Z".into(),
            granted_by: "teacher@localhost".into(),
            source: crate::store::AV_MODERATION.into(),
            meeting: Some(meeting.into()),
        }
    }

    fn with_grants(
        rows: Vec<crate::rules::RuleRow>,
        grants: Vec<crate::rules::GrantRow>,
    ) -> RuleSet {
        let (set, problems) = RuleSet::from_tables(&rows, &grants, MediaSet::NONE);
        assert!(problems.is_empty(), "{problems:?}");
        set
    }

    #[test]
    fn test_an_approval_counts_toward_a_request_rules_cap_and_goes_first() {
        let rows = || vec![capped(1, "everyone", None, "audio", "request", 0, 1)];
        let set = with_grants(rows(), vec![approval(9, "bob", "audio", "m-1")]);
        let mut ann = person("ann", 0);
        ann.hand = Some(5);
        ann.holding = MediaSet::only(AUDIO);
        let bob = person("bob", 10); // approved, hand down
        let mut cid = person("cid", 20);
        cid.hand = Some(1);
        let waiting = |position| Standing::Waiting {
            position,
            for_approval: false,
        };
        // The cap is full: the approval does not displace the holder; bob is next, ahead of an
        // earlier hand.
        let out = room(&set, &[ann, bob, cid]);
        assert_eq!(out[0].standing(AUDIO), Standing::Holding);
        assert_eq!(out[1].standing(AUDIO), waiting(1));
        assert!(!out[1].permissions.contains(AUDIO));
        assert_eq!(out[2].standing(AUDIO), waiting(2));

        // The slot free: bob takes it.
        let mut ann = person("ann", 0);
        ann.hand = Some(5);
        let mut cid = person("cid", 20);
        cid.hand = Some(1);
        let out = room(&set, &[ann, person("bob", 10), cid]);
        assert_eq!(out[1].standing(AUDIO), Standing::Holding);
        assert!(out[1].permissions.contains(AUDIO));
        assert_eq!(out[2].standing(AUDIO), waiting(1));
        assert_eq!(out[0].standing(AUDIO), waiting(2));
    }

    #[test]
    fn test_an_approval_ends_with_its_meeting_and_never_lifts_a_deny() {
        // Approved in an earlier meeting of the same room: nothing.
        let set = with_grants(
            vec![capped(1, "everyone", None, "audio", "request", 0, 1)],
            vec![approval(9, "bob", "audio", "m-0")],
        );
        let out = room(&set, &[person("bob", 10)]);
        assert_eq!(out[0].standing(AUDIO), Standing::HandDown);
        assert!(!out[0].permissions.contains(AUDIO));

        // A request rule without a cap: the approval lets bob in, named as the grant.
        let set = with_grants(
            vec![test_row(
                1, "class", "everyone", None, "audio", "request", 0,
            )],
            vec![approval(9, "bob", "audio", "m-1")],
        );
        let out = room(&set, &[person("bob", 10)]);
        assert!(out[0].permissions.contains(AUDIO));
        assert!(matches!(out[0].reason(AUDIO), Reason::Grant { id: 9, .. }));

        // An admin's deny (or plain allow cap) decides: the approval does nothing there.
        let set = with_grants(
            vec![
                test_row(1, "class", "everyone", None, "audio", "request", 0),
                test_row(2, "class", "jid", Some("bob@*"), "audio", "deny", 10),
            ],
            vec![approval(9, "bob", "audio", "m-1")],
        );
        let out = room(&set, &[person("bob", 10)]);
        assert!(!out[0].permissions.contains(AUDIO));
        let set = with_grants(
            vec![capped(1, "everyone", None, "audio", "allow", 0, 1)],
            vec![approval(9, "bob", "audio", "m-1")],
        );
        let mut ann = person("ann", 0);
        ann.holding = MediaSet::only(AUDIO);
        let out = room(&set, &[ann, person("bob", 10)]);
        assert!(!out[1].permissions.contains(AUDIO));
    }

    #[test]
    fn test_same_join_time_orders_by_the_modules_join_sequence_not_the_nick() {
        // After a restart of podium everyone was first seen at once: the module's join sequence
        // decides, and "aaa" (who chose a nick to jump the queue) joined last.
        let set = rules(vec![capped(1, "everyone", None, "video", "allow", 0, 1)]);
        let mut first = person("zed", 0);
        first.join_seq = Some(1);
        let mut second = person("mia", 0);
        second.join_seq = Some(2);
        let mut last = person("aaa", 0);
        last.join_seq = Some(3);
        let out = room(&set, &[last, second, first]);
        assert_eq!(out[2].standing(Media::Video), Standing::Holding);
        let waiting = |position| Standing::Waiting {
            position,
            for_approval: false,
        };
        assert_eq!(out[1].standing(Media::Video), waiting(1));
        assert_eq!(out[0].standing(Media::Video), waiting(2));
    }

    #[test]
    fn test_holders_keep_their_slot_against_higher_priority_arrivals() {
        let set = rules(vec![
            capped(1, "everyone", None, "screen", "allow", 0, 1),
            capped(2, "role", Some("moderator"), "screen", "allow", 10, 1),
        ]);
        let mut holder = person("student", 10);
        holder.holding = MediaSet::only(Media::Screen);
        let mut teacher = person("teacher", 20);
        teacher.role = Role::Moderator;
        let out = room(&set, &[holder, teacher]);
        assert_eq!(out[0].standing(Media::Screen), Standing::Holding);
        assert_eq!(
            out[1].standing(Media::Screen),
            Standing::Waiting {
                position: 1,
                for_approval: false
            }
        );
        // Once the slot is free, priority orders the queue before join time.
        let set = rules(vec![
            capped(1, "everyone", None, "screen", "allow", 0, 1),
            capped(2, "role", Some("moderator"), "screen", "allow", 10, 1),
        ]);
        let mut teacher = person("teacher", 20);
        teacher.role = Role::Moderator;
        let out = room(&set, &[person("student", 10), teacher]);
        assert_eq!(out[1].standing(Media::Screen), Standing::Holding);
        assert_eq!(
            out[0].standing(Media::Screen),
            Standing::Waiting {
                position: 1,
                for_approval: false
            }
        );
    }

    #[test]
    fn test_request_needs_a_hand_and_hand_time_orders_the_queue() {
        let set = rules(vec![capped(1, "everyone", None, "audio", "request", 0, 1)]);
        let mut early_join_late_hand = person("a", 1);
        early_join_late_hand.hand = Some(50);
        let mut late_join_early_hand = person("b", 2);
        late_join_early_hand.hand = Some(40);
        let out = room(
            &set,
            &[early_join_late_hand, late_join_early_hand, person("c", 0)],
        );
        assert_eq!(out[1].standing(AUDIO), Standing::Holding);
        assert_eq!(
            out[0].standing(AUDIO),
            Standing::Waiting {
                position: 1,
                for_approval: false
            }
        );
        assert_eq!(out[2].standing(AUDIO), Standing::HandDown);
        assert!(!out[2].permissions.contains(AUDIO));
    }

    #[test]
    fn test_request_without_cap_waits_for_approval() {
        let set = rules(vec![test_row(
            1, "class", "everyone", None, "audio", "request", 0,
        )]);
        let mut a = person("a", 1);
        a.hand = Some(9);
        let mut b = person("b", 2);
        b.hand = Some(5);
        let out = room(&set, &[a, b]);
        assert_eq!(
            out[1].standing(AUDIO),
            Standing::Waiting {
                position: 1,
                for_approval: true
            }
        );
        assert_eq!(
            out[0].standing(AUDIO),
            Standing::Waiting {
                position: 2,
                for_approval: true
            }
        );
        assert!(out.iter().all(|d| !d.permissions.contains(AUDIO)));
        assert_eq!(
            out[1].to_string(),
            "audio: request by rule 1 (priority 0): waiting for approval, position 1; \
             video: deny by default; screen: deny by default"
        );
    }

    #[test]
    fn test_idle_holder_yields_only_when_someone_waits() {
        let set = rules(vec![capped(1, "everyone", None, "audio", "allow", 0, 1)]);
        let mut idle = person("idle", 1);
        idle.holding = MediaSet::only(AUDIO);
        idle.idle = MediaSet::only(AUDIO);
        let out = room(&set, &[idle]);
        assert_eq!(
            out[0].standing(AUDIO),
            Standing::Holding,
            "nobody waits: it keeps the slot"
        );

        let mut idle = person("idle", 1);
        idle.holding = MediaSet::only(AUDIO);
        idle.idle = MediaSet::only(AUDIO);
        let out = room(&set, &[idle, person("next", 5)]);
        assert_eq!(out[1].standing(AUDIO), Standing::Holding);
        assert_eq!(
            out[0].standing(AUDIO),
            Standing::Waiting {
                position: 1,
                for_approval: false
            }
        );
    }

    #[test]
    fn test_lowered_cap_trims_the_tail() {
        let set = rules(vec![capped(1, "everyone", None, "video", "allow", 0, 1)]);
        let people: Vec<Person> = ["a", "b", "c"]
            .into_iter()
            .enumerate()
            .map(|(i, nick)| {
                let mut p = person(nick, i as i64);
                p.holding = MediaSet::only(Media::Video);
                p
            })
            .collect();
        let out = room(&set, &people);
        let holding: Vec<bool> = out
            .iter()
            .map(|d| d.permissions.contains(Media::Video))
            .collect();
        assert_eq!(holding, vec![true, false, false]);
    }

    #[test]
    fn test_uncapped_allow_does_not_count_against_a_cap() {
        let set = rules(vec![
            capped(1, "everyone", None, "screen", "allow", 0, 1),
            test_row(2, "class", "role", Some("moderator"), "screen", "allow", 10),
        ]);
        let mut teacher = person("teacher", 0);
        teacher.role = Role::Moderator;
        let out = room(&set, &[teacher, person("s", 1)]);
        assert_eq!(out[0].standing(Media::Screen), Standing::Free);
        assert!(out[0].permissions.contains(Media::Screen));
        assert_eq!(out[1].standing(Media::Screen), Standing::Holding);
    }

    #[test]
    fn test_cap_zero_admits_nobody() {
        let set = rules(vec![capped(1, "everyone", None, "video", "allow", 0, 0)]);
        let out = room(&set, &[person("a", 0)]);
        assert_eq!(
            out[0].standing(Media::Video),
            Standing::Waiting {
                position: 1,
                for_approval: false
            }
        );
    }
}
