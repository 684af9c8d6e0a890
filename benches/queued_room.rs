//! What one presence costs the engine in a room with a cap or a request rule, where the whole room is
//! settled again (the queue may move), against the same room without one (only that occupant is
//! decided).
//!
//! `cargo bench --bench queued_room` prints, per room size, the median over 5 runs of the time per
//! presence change (a raised or lowered hand), with everything the engine does for it: the decision,
//! the explanation inputs, the live-view rows and the stanzas. Figures, not assertions.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use minidom::Element;
use tokio_xmpp::Stanza;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::message::Message;

use podium::enforce::Engine;
use podium::media::MediaSet;
use podium::rules::{RuleRow, RuleSet};

const MUC: &str = "conference.localhost";
const ROOM: &str = "class@conference.localhost";
const EVENTS: usize = 200;

fn rule(id: i64, who: &str, value: Option<&str>, effect: &str, cap: Option<i64>) -> RuleRow {
    RuleRow {
        id,
        room: "class".into(),
        who: who.into(),
        who_value: value.map(Into::into),
        media: "audio".into(),
        effect: effect.into(),
        priority: 0,
        enabled: 1,
        dry_run: 0,
        cap,
        not_before: None,
        not_after: None,
        schedule: None,
        time_zone: None,
    }
}

fn occupant(event: &str, nick: &str, hand: Option<&str>) -> String {
    let hand = hand
        .map(|h| format!("<jitsi_participant_raisedHand>{h}</jitsi_participant_raisedHand>"))
        .unwrap_or_default();
    format!(
        "<occupant xmlns='urn:podium:0' event='{event}' room='{ROOM}' nick='{nick}' real-jid='{nick}@localhost/x'>\
         <held audio='false' video='false' screen='false' origin='default'/>\
         <presence xmlns='jabber:client' from='{ROOM}/{nick}'>{hand}\
         <x xmlns='http://jabber.org/protocol/muc#user'><item role='participant' affiliation='none'/></x></presence>\
         </occupant>"
    )
}

fn message(xml: &str) -> Stanza {
    let mut message = Message::new(None);
    message.from = Some(MUC.parse().unwrap());
    message.payloads.push(Element::from_str(xml).unwrap());
    Stanza::Message(message)
}

/// An engine, live, with `size` occupants in one room.
fn engine(rows: &[RuleRow], size: usize) -> Engine {
    let rules = Arc::new(RuleSet::from_rows(rows, MediaSet::NONE).0);
    let mut engine = Engine::new(
        "podium.localhost".parse().unwrap(),
        MUC.parse().unwrap(),
        500,
        rules,
    );
    engine.set_now("2026-11-23T10:00:00Z".parse().unwrap());
    engine.link_up();
    let id = engine
        .take_effects()
        .stanzas
        .into_iter()
        .find_map(|s| match s {
            Stanza::Iq(Iq::Get { id, .. }) => Some(id),
            _ => None,
        })
        .unwrap();
    engine.stanza(Stanza::Iq(Iq::Result {
        from: Some(MUC.parse().unwrap()),
        to: None,
        id,
        payload: Some(Element::from_str("<snapshot xmlns='urn:podium:0'/>").unwrap()),
    }));
    for i in 0..size {
        engine.stanza(message(&occupant("joined", &format!("p{i}"), None)));
        engine.take_effects();
    }
    engine
}

/// Median time per presence change: occupant p0 raises and lowers its hand, `EVENTS` times.
fn per_event(rows: &[RuleRow], size: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..5)
        .map(|_| {
            let mut engine = engine(rows, size);
            let started = Instant::now();
            for i in 0..EVENTS {
                let hand = if i % 2 == 0 {
                    Some("1763892000000")
                } else {
                    Some("")
                };
                engine.stanza(message(&occupant("changed", "p0", hand)));
                std::hint::black_box(engine.take_effects());
            }
            started.elapsed() / EVENTS as u32
        })
        .collect();
    samples.sort();
    samples[2]
}

fn main() {
    let plain = [rule(1, "everyone", None, "allow", None)];
    let queued = [rule(1, "everyone", None, "request", Some(2))];
    println!("podium engine: one presence change in a room of N (median of 5 runs of {EVENTS})");
    println!(
        "  {:>5}  {:>12}  {:>16}  {:>6}",
        "N", "plain room", "capped request", "ratio"
    );
    for size in [10, 100, 500, 1000] {
        let a = per_event(&plain, size);
        let b = per_event(&queued, size);
        println!(
            "  {size:>5}  {:>12.1?}  {:>16.1?}  {:>5.0}x",
            a,
            b,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
