//! Property tests of the evaluator over generated rule tables and occupants: the combining rule's
//! promises hold for every table, not just the hand-picked ones.

use proptest::prelude::*;

use super::eval::{OccupantFacts, Reason, RuleSet};
use super::model::{RuleRow, test_row};
use crate::media::{Media, MediaSet};
use crate::rooms::Role;

const ROOMS: [&str; 4] = ["*", "room-a", "room-*", "other"];
const WHO: [(&str, Option<&str>); 5] = [
    ("everyone", None),
    ("role", Some("participant")),
    ("role", Some("moderator")),
    ("jid", Some("alice@*")),
    ("domain", Some("guest.*")),
];
const MEDIA: [&str; 5] = ["audio", "video", "screen", "audio,video", "all"];
const EFFECTS: [&str; 3] = ["allow", "deny", "request"];

fn row_strategy() -> impl Strategy<Value = RuleRow> {
    (
        0..ROOMS.len(),
        0..WHO.len(),
        0..MEDIA.len(),
        0..EFFECTS.len(),
        0i64..5,
        proptest::option::of(0i64..3),
    )
        .prop_map(|(room, who, media, effect, priority, cap)| RuleRow {
            cap,
            ..test_row(
                0,
                ROOMS[room],
                WHO[who].0,
                WHO[who].1,
                MEDIA[media],
                EFFECTS[effect],
                priority,
            )
        })
}

fn table_strategy() -> impl Strategy<Value = Vec<RuleRow>> {
    proptest::collection::vec(row_strategy(), 0..12).prop_map(|mut rows| {
        for (i, row) in rows.iter_mut().enumerate() {
            row.id = i as i64 + 1;
        }
        rows
    })
}

#[derive(Debug, Clone)]
struct Who {
    role: Role,
    jid: &'static str,
    hand: bool,
    default: MediaSet,
}

fn who_strategy() -> impl Strategy<Value = Who> {
    (
        prop_oneof![Just(Role::Participant), Just(Role::Moderator)],
        prop_oneof![Just("alice@localhost"), Just("bob@guest.localhost")],
        any::<bool>(),
        prop_oneof![Just(MediaSet::NONE), Just(MediaSet::ALL)],
    )
        .prop_map(|(role, jid, hand, default)| Who {
            role,
            jid,
            hand,
            default,
        })
}

fn facts(who: &Who) -> OccupantFacts<'static> {
    OccupantFacts {
        room: "room-a",
        role: who.role,
        affiliation: Default::default(),
        real_bare_jid: who.jid.into(),
        user_id: None,
        group: None,
        email: None,
        claims: None,
        services: &[],
        hand_raised: who.hand,
        meeting: None,
        now: "2026-11-23T10:00:00Z".parse().unwrap(),
    }
}

fn set(rows: &[RuleRow], default: MediaSet) -> RuleSet {
    let (set, problems) = RuleSet::from_rows(rows, default);
    assert!(problems.is_empty(), "{problems:?}");
    set
}

proptest! {
    /// Adding a deny rule never lets the occupant send more.
    #[test]
    fn adding_a_deny_never_grants_more(
        rows in table_strategy(),
        deny in row_strategy(),
        who in who_strategy(),
    ) {
        let before = set(&rows, who.default).decide(&facts(&who)).permissions;
        let mut more = rows.clone();
        more.push(RuleRow { id: rows.len() as i64 + 1, effect: "deny".into(), cap: None, ..deny });
        let after = set(&more, who.default).decide(&facts(&who)).permissions;
        prop_assert!(
            after.iter().all(|m| before.contains(m)),
            "before {before}, after {after}"
        );
    }

    /// Raising a rule's priority never takes a kind away from it: every kind it decided, it still
    /// decides.
    #[test]
    fn raising_a_priority_never_lowers_a_rules_effect(
        rows in table_strategy().prop_filter("a rule to raise", |rows| !rows.is_empty()),
        pick in any::<prop::sample::Index>(),
        by in 1i64..10,
        who in who_strategy(),
    ) {
        let chosen = pick.index(rows.len());
        let id = rows[chosen].id;
        let decided_by = |rows: &[RuleRow]| -> Vec<Media> {
            let decision = set(rows, who.default).decide(&facts(&who));
            Media::ALL
                .into_iter()
                .filter(|m| matches!(decision.reason(*m), Reason::Rule { id: r, .. } if r == id))
                .collect()
        };
        let before = decided_by(&rows);
        let mut raised = rows.clone();
        raised[chosen].priority += by;
        let after = decided_by(&raised);
        prop_assert!(
            before.iter().all(|m| after.contains(m)),
            "rule {id} decided {before:?}, after raising {after:?}"
        );
    }

    /// The decision, reasons included, does not depend on the order of the rows.
    #[test]
    fn decisions_are_independent_of_row_order(
        rows in table_strategy(),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        who in who_strategy(),
    ) {
        let mut shuffled = rows.clone();
        // A deterministic shuffle from the generated seed (proptest shrinks and replays it).
        let mut seed = order | 1;
        for i in (1..shuffled.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let a = set(&rows, who.default).decide(&facts(&who));
        let b = set(&shuffled, who.default).decide(&facts(&who));
        prop_assert_eq!(a, b);
    }
}
