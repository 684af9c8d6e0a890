//! Evaluator figures at deployment scale: 10,000 rules and 100,000 occupants in 10,000 rooms.
//!
//! `cargo bench --bench evaluator` prints, as the median of 5 runs:
//! - building the rule set (indexing) from 10,000 rows, as on every rule edit;
//! - a full pass (every occupant decided, each room's rules resolved once), as after a rule edit or a
//!   resync;
//! - one decision for a joining occupant (room rules resolved for it alone), per occupant.

use std::time::{Duration, Instant};

use podium::media::MediaSet;
use podium::rooms::{Affiliation, Role};
use podium::rules::{OccupantFacts, RuleRow, RuleSet};

const RULES: usize = 10_000;
const ROOMS: usize = 10_000;
const PER_ROOM: usize = 10;

fn rows() -> Vec<RuleRow> {
    let subjects = [
        ("everyone", None),
        ("role", Some("moderator")),
        ("affiliation", Some("owner")),
        ("group", Some("acme")),
        ("user", Some("u-17")),
        ("jid", Some("*@guest.meet.example")),
    ];
    let media = ["audio", "video", "screen", "all", "audio,video"];
    (0..RULES)
        .map(|i| {
            // 20 rules for every room, 2,000 globs over teams of rooms, the rest for single rooms.
            let room = match i {
                0..20 => "*".to_owned(),
                20..2020 => format!("team-{}-*", i % 500),
                _ => format!("team-{}-room-{}", i % 500, i % ROOMS),
            };
            let (who, value) = subjects[i % subjects.len()];
            RuleRow {
                id: i as i64 + 1,
                room,
                who: who.into(),
                who_value: value.map(Into::into),
                media: media[i % media.len()].into(),
                effect: if i % 3 == 0 { "deny" } else { "allow" }.into(),
                priority: (i % 7) as i64,
                enabled: 1,
                dry_run: 0,
                cap: None,
                not_before: None,
                not_after: None,
                schedule: None,
                time_zone: None,
            }
        })
        .collect()
}

struct Occupant {
    role: Role,
    affiliation: Affiliation,
    jid: String,
    group: Option<&'static str>,
}

fn rooms() -> Vec<(String, Vec<Occupant>)> {
    (0..ROOMS)
        .map(|r| {
            let occupants = (0..PER_ROOM)
                .map(|o| Occupant {
                    role: if o == 0 {
                        Role::Moderator
                    } else {
                        Role::Participant
                    },
                    affiliation: if o == 0 {
                        Affiliation::Owner
                    } else {
                        Affiliation::None
                    },
                    jid: if o % 4 == 3 {
                        format!("guest{o}@guest.meet.example")
                    } else {
                        format!("user{r}-{o}@meet.example")
                    },
                    group: (o % 2 == 0).then_some("acme"),
                })
                .collect();
            (format!("team-{}-room-{r}", r % 500), occupants)
        })
        .collect()
}

fn facts<'a>(room: &'a str, o: &'a Occupant) -> OccupantFacts<'a> {
    OccupantFacts {
        room,
        role: o.role,
        affiliation: o.affiliation,
        real_bare_jid: o.jid.clone(),
        user_id: None,
        group: o.group,
        email: None,
        claims: None,
        services: &[],
        hand_raised: false,
        meeting: None,
        now: jiff::Timestamp::UNIX_EPOCH,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rows = rows();
    let rooms = rooms();
    let occupants = ROOMS * PER_ROOM;

    let build = median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                let (set, problems) = RuleSet::from_rows(&rows, MediaSet::NONE);
                assert!(problems.is_empty());
                assert_eq!(set.len(), RULES);
                start.elapsed()
            })
            .collect(),
    );
    let (set, _) = RuleSet::from_rows(&rows, MediaSet::NONE);

    let mut allowed = 0usize;
    let full_pass = median(
        (0..5)
            .map(|_| {
                allowed = 0;
                let start = Instant::now();
                for (name, occupants) in &rooms {
                    let room_rules = set.for_room(name, jiff::Timestamp::UNIX_EPOCH);
                    for o in occupants {
                        allowed += room_rules
                            .decide(&facts(name, o))
                            .permissions
                            .iter()
                            .count();
                    }
                }
                start.elapsed()
            })
            .collect(),
    );

    let single = median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                for (name, occupants) in &rooms {
                    for o in occupants {
                        std::hint::black_box(set.decide(&facts(name, o)));
                    }
                }
                start.elapsed()
            })
            .collect(),
    );

    println!(
        "podium evaluator: {RULES} rules, {occupants} occupants in {ROOMS} rooms (median of 5)"
    );
    println!("  build rule set (indexing):          {:>10.2?}", build);
    println!(
        "  full pass, all occupants:           {:>10.2?}  ({:.2?} per occupant)",
        full_pass,
        full_pass / occupants as u32
    );
    println!(
        "  one joining occupant (rules for its room resolved alone): {:.2?} per decision",
        single / occupants as u32
    );
    println!("  (allowed kinds in the full pass: {allowed}, to keep the work observable)");
}
