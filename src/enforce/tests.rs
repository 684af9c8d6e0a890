//! The engine without a network: stanzas in, stanzas and audit records out.

use std::sync::Arc;

use minidom::Element;
use tokio_xmpp::Stanza;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::message::Message;

use super::{Engine, Phase};
use crate::media::MediaSet;
use crate::protocol::{SetPermissions, SnapshotRequest};
use crate::rules::model::test_row;
use crate::rules::{RuleRow, RuleSet};

const MUC: &str = "conference.localhost";
const ROOM: &str = "r@conference.localhost";

/// (room, who, who_value, media, effect, priority)
type Row<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, &'a str, i64);

fn rules(rows: &[Row<'_>]) -> Arc<RuleSet> {
    let rows: Vec<RuleRow> = rows
        .iter()
        .enumerate()
        .map(|(i, (room, who, value, media, effect, priority))| {
            test_row(i as i64 + 1, room, who, *value, media, effect, *priority)
        })
        .collect();
    Arc::new(RuleSet::from_rows(&rows, MediaSet::NONE).0)
}

fn engine(rules: Arc<RuleSet>) -> Engine {
    let mut engine = Engine::new(
        "podium.localhost".parse().unwrap(),
        MUC.parse().unwrap(),
        2,
        rules,
    );
    engine.set_now("2026-11-23T10:00:00Z".parse().unwrap());
    engine
}

fn occupant_xml(event: &str, nick: &str, role: &str, held: &str, origin: &str) -> String {
    let [a, v, s] = ["audio", "video", "screen"].map(|k| held.split(',').any(|h| h == k));
    format!(
        "<occupant xmlns='urn:podium:0' event='{event}' room='{ROOM}' nick='{nick}' real-jid='{nick}@localhost/x' meeting='m-1' \
         role='{role}' affiliation='none'>\
         <held audio='{a}' video='{v}' screen='{s}' origin='{origin}'/>\
         </occupant>"
    )
}

fn event_from(from: &str, xml: &str) -> Stanza {
    let mut message = Message::new(None);
    message.from = Some(from.parse().unwrap());
    message.payloads.push(xml.parse().unwrap());
    Stanza::Message(message)
}

fn sent_permissions(stanzas: &[Stanza]) -> Vec<(String, String, String)> {
    stanzas
        .iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Set { id, payload, .. }) => SetPermissions::try_from(payload.clone())
                .ok()
                .map(|set| (id.clone(), set)),
            _ => None,
        })
        .flat_map(|(id, set)| {
            set.occupants.into_iter().map(move |o| {
                (
                    id.clone(),
                    o.jid.resource().to_string(),
                    o.permissions.to_string(),
                )
            })
        })
        .collect()
}

fn result(id: &str, payload: Option<&str>) -> Stanza {
    Stanza::Iq(Iq::Result {
        from: Some(MUC.parse().unwrap()),
        to: Some("podium.localhost".parse().unwrap()),
        id: id.into(),
        payload: payload.map(|p| p.parse::<Element>().unwrap()),
    })
}

fn snapshot_id(stanzas: &[Stanza]) -> (String, SnapshotRequest) {
    stanzas
        .iter()
        .find_map(|s| match s {
            Stanza::Iq(Iq::Get { id, payload, .. }) => SnapshotRequest::try_from(payload.clone())
                .ok()
                .map(|r| (id.clone(), r)),
            _ => None,
        })
        .expect("a snapshot request")
}

/// The module acknowledges a permissions IQ.
fn ack(engine: &mut Engine, id: &str) {
    engine.stanza(result(
        id,
        Some("<applied xmlns='urn:podium:0' count='1'/>"),
    ));
}

/// Brings the engine live with an empty snapshot.
fn live(engine: &mut Engine) {
    engine.link_up();
    let (id, _) = snapshot_id(&engine.take_effects().stanzas);
    engine.stanza(result(&id, Some("<snapshot xmlns='urn:podium:0'/>")));
    assert_eq!(engine.phase(), Phase::Live);
    engine.take_effects();
}

#[test]
fn test_join_is_decided_sent_and_audited() {
    let mut engine = engine(rules(&[(
        "*",
        "role",
        Some("moderator"),
        "all",
        "allow",
        0,
    )]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "alice", "moderator", "", "default"),
    ));
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2.as_str()),
        ("alice", "audio,video,screen")
    );
    assert_eq!(effects.audit.len(), 1);
    assert_eq!(effects.audit[0].previous, "none");
    assert_eq!(effects.audit[0].granted, "audio,video,screen");
    assert_eq!(&*effects.audit[0].rule_ids, "1");
    assert_eq!(effects.audit[0].cause, "joined");
}

#[test]
fn test_default_that_matches_is_confirmed_once_then_quiet() {
    let mut engine = engine(rules(&[]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "bob", "participant", "", "default"),
    ));
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(
        sent.len(),
        1,
        "the first decision is confirmed even when it equals the default"
    );
    ack(&mut engine, &sent[0].0);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("changed", "bob", "participant", "", "podium"),
    ));
    assert!(
        sent_permissions(&engine.take_effects().stanzas).is_empty(),
        "nothing changed"
    );
}

#[test]
fn test_event_from_anyone_but_the_muc_host_is_ignored() {
    let mut engine = engine(rules(&[("*", "everyone", None, "all", "allow", 0)]));
    live(&mut engine);
    for from in [
        "alice@localhost/x",
        "other.localhost",
        "conference.localhost/x",
        "r@conference.localhost/alice",
    ] {
        engine.stanza(event_from(
            from,
            &occupant_xml("joined", "mallory", "moderator", "", "default"),
        ));
    }
    let effects = engine.take_effects();
    assert!(effects.stanzas.is_empty());
    assert!(engine.rooms().get(&ROOM.parse().unwrap()).is_none());
    // An event about a room on another host, even from the MUC host, is ignored too.
    let foreign = occupant_xml("joined", "x", "moderator", "", "default")
        .replace(ROOM, "r@elsewhere.localhost");
    engine.stanza(event_from(MUC, &foreign));
    assert!(engine.take_effects().stanzas.is_empty());
}

#[test]
fn test_malformed_event_is_skipped_and_the_engine_goes_on() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    let broken = occupant_xml("joined", "alice", "participant", "", "default")
        .replace("origin='default'", "origin='??'");
    engine.stanza(event_from(MUC, &broken));
    assert!(engine.take_effects().stanzas.is_empty());
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "alice", "participant", "", "default"),
    ));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
}

#[test]
fn test_rule_change_redecides_everyone_and_sends_only_changes() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    for nick in ["a", "b"] {
        engine.stanza(event_from(
            MUC,
            &occupant_xml("joined", nick, "participant", "", "default"),
        ));
    }
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "m", "moderator", "", "default"),
    ));
    for (id, ..) in sent_permissions(&engine.take_effects().stanzas) {
        ack(&mut engine, &id);
    }
    engine.rules_changed(rules(&[
        ("*", "everyone", None, "audio", "allow", 0),
        ("*", "role", Some("moderator"), "screen", "allow", 0),
    ]));
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2.as_str()),
        ("m", "audio,screen")
    );
    assert_eq!(effects.audit[0].cause, "rules");
}

#[test]
fn test_resync_pages_then_sends_the_differences() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    engine.link_up();
    let (first, request) = snapshot_id(&engine.take_effects().stanzas);
    assert_eq!(request.after, None);
    assert_eq!(request.max, Some(2));
    let page = |room: &str, nick: &str, held: &str| {
        format!(
            "<room jid='{room}'><occupant nick='{nick}' real-jid='{nick}@localhost/x'>\
             <held audio='{held}' video='false' screen='false' origin='podium'/></occupant></room>"
        )
    };
    engine.stanza(result(
        &first,
        Some(&format!(
            "<snapshot xmlns='urn:podium:0' next='a@conference.localhost'>{}</snapshot>",
            page("a@conference.localhost", "held-right", "true")
        )),
    ));
    assert_eq!(engine.phase(), Phase::Resyncing);
    let (second, request) = snapshot_id(&engine.take_effects().stanzas);
    assert_eq!(request.after.unwrap().to_string(), "a@conference.localhost");
    engine.stanza(result(
        &second,
        Some(&format!(
            "<snapshot xmlns='urn:podium:0'>{}</snapshot>",
            page("b@conference.localhost", "held-wrong", "false")
        )),
    ));
    assert_eq!(engine.phase(), Phase::Live);
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2.as_str()),
        ("held-wrong", "audio")
    );
    assert_eq!(effects.audit[0].cause, "resync");
    assert_eq!(engine.rooms().occupant_count(), 2);
}

#[test]
fn test_reconnect_forgets_the_old_view() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "gone-while-away", "participant", "", "default"),
    ));
    engine.take_effects();
    engine.link_down();
    assert_eq!(engine.phase(), Phase::Offline);
    engine.link_up();
    let (id, _) = snapshot_id(&engine.take_effects().stanzas);
    engine.stanza(result(&id, Some("<snapshot xmlns='urn:podium:0'/>")));
    assert_eq!(engine.rooms().occupant_count(), 0);
}

#[test]
fn test_event_before_the_decision_is_applied_does_not_resend() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!(sent.len(), 1);
    // The module reports a presence change it sent before it applied our decision.
    engine.stanza(event_from(
        MUC,
        &occupant_xml("changed", "a", "participant", "", "default"),
    ));
    assert!(sent_permissions(&engine.take_effects().stanzas).is_empty());
}

#[test]
fn test_failed_update_is_sent_again_on_the_next_event() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    engine.stanza(Stanza::Iq(Iq::Error {
        from: Some(MUC.parse().unwrap()),
        to: None,
        id: sent[0].0.clone(),
        error: xmpp_parsers::stanza_error::StanzaError::new(
            xmpp_parsers::stanza_error::ErrorType::Modify,
            xmpp_parsers::stanza_error::DefinedCondition::BadRequest,
            "en",
            "test",
        ),
        payload: None,
    }));
    engine.stanza(event_from(
        MUC,
        &occupant_xml("changed", "a", "participant", "", "default"),
    ));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
}

#[test]
fn test_leave_is_audited_and_forgotten() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    engine.take_effects();
    engine.stanza(event_from(
        MUC,
        &format!("<occupant xmlns='urn:podium:0' event='left' room='{ROOM}' nick='a' real-jid='a@localhost/x'/>"),
    ));
    let effects = engine.take_effects();
    assert!(effects.stanzas.is_empty());
    assert_eq!(effects.audit.len(), 1);
    assert_eq!(
        (effects.audit[0].previous, effects.audit[0].granted),
        ("audio", "none")
    );
    assert_eq!(effects.audit[0].cause, "left");
    assert_eq!(engine.rooms().occupant_count(), 0);
}

#[test]
fn test_requests_to_the_component_are_answered() {
    let mut engine = engine(rules(&[]));
    let request = |payload: &str| {
        Stanza::Iq(Iq::Get {
            from: Some("alice@localhost/x".parse::<Jid>().unwrap()),
            to: Some("podium.localhost".parse().unwrap()),
            id: "q".into(),
            payload: payload.parse().unwrap(),
        })
    };
    engine.stanza(request("<ping xmlns='urn:xmpp:ping'/>"));
    engine.stanza(request(
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    ));
    engine.stanza(request("<query xmlns='jabber:iq:version'/>"));
    let stanzas = engine.take_effects().stanzas;
    assert!(matches!(
        &stanzas[0],
        Stanza::Iq(Iq::Result { payload: None, .. })
    ));
    assert!(
        matches!(&stanzas[1], Stanza::Iq(Iq::Result { payload: Some(p), .. }) if p.name() == "query")
    );
    assert!(matches!(&stanzas[2], Stanza::Iq(Iq::Error { error, .. })
        if error.defined_condition == xmpp_parsers::stanza_error::DefinedCondition::ServiceUnavailable));
}

#[test]
fn test_forged_answer_neither_counts_nor_cancels() {
    let mut engine = engine(rules(&[]));
    engine.link_up();
    let (id, _) = snapshot_id(&engine.take_effects().stanzas);
    // Someone other than the MUC host "answers" with an empty snapshot: ignored.
    engine.stanza(Stanza::Iq(Iq::Result {
        from: Some("mallory@localhost/x".parse().unwrap()),
        to: None,
        id: id.clone(),
        payload: Some("<snapshot xmlns='urn:podium:0'/>".parse().unwrap()),
    }));
    assert_eq!(engine.phase(), Phase::Resyncing);
    // The real answer still completes the resync.
    engine.stanza(result(&id, Some("<snapshot xmlns='urn:podium:0'/>")));
    assert_eq!(engine.phase(), Phase::Live);
}

#[test]
fn test_reset_from_the_module_starts_a_resync() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    engine.take_effects();
    engine.stanza(event_from(
        "mallory@localhost/x",
        "<reset xmlns='urn:podium:0'/>",
    ));
    assert_eq!(
        engine.phase(),
        Phase::Live,
        "a reset from anyone else is ignored"
    );
    engine.stanza(event_from(MUC, "<reset xmlns='urn:podium:0'/>"));
    assert_eq!(engine.phase(), Phase::Resyncing);
    let (id, _) = snapshot_id(&engine.take_effects().stanzas);
    engine.stanza(result(
        &id,
        Some(&format!(
            "<snapshot xmlns='urn:podium:0'><room jid='{ROOM}'><occupant nick='a' real-jid='a@localhost/x'>\
             <held audio='false' video='false' screen='false' origin='default'/></occupant></room></snapshot>"
        )),
    ));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!(
        sent.len(),
        1,
        "the module forgot; podium sends the decision again"
    );
}

#[test]
fn test_a_refused_snapshot_does_not_leave_the_engine_stuck() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    engine.link_up();
    let (id, _) = snapshot_id(&engine.take_effects().stanzas);
    engine.stanza(Stanza::Iq(Iq::Error {
        from: Some(MUC.parse().unwrap()),
        to: None,
        id,
        error: xmpp_parsers::stanza_error::StanzaError::new(
            xmpp_parsers::stanza_error::ErrorType::Auth,
            xmpp_parsers::stanza_error::DefinedCondition::Forbidden,
            "en",
            "test",
        ),
        payload: None,
    }));
    assert_eq!(engine.phase(), Phase::Live);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
}

#[test]
fn test_a_new_person_on_a_nick_is_decided_even_with_a_decision_in_flight() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
    // Before that decision is acknowledged, the module reports the nick anew with another real JID
    // (the primary session changed): it holds the default for the new person.
    let other = occupant_xml("joined", "a", "participant", "", "default")
        .replace("a@localhost/x", "a@localhost/y");
    engine.stanza(event_from(MUC, &other));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
}

#[test]
fn test_gone_makes_held_unknown_so_the_next_report_is_decided() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    engine.stanza(result(
        &sent[0].0,
        Some(&format!(
            "<applied xmlns='urn:podium:0' count='0'><gone jid='{ROOM}/a'/></applied>"
        )),
    ));
    engine.stanza(event_from(
        MUC,
        &occupant_xml("changed", "a", "participant", "audio", "podium"),
    ));
    assert!(
        sent_permissions(&engine.take_effects().stanzas).is_empty(),
        "the report says held"
    );
}

#[test]
fn test_an_unaddressable_nick_keeps_the_default_and_breaks_nothing() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    // A nick with a character Prosody accepts and the jid crate refuses (U+1F642).
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a\u{1F642}", "participant", "", "default"),
    ));
    assert!(sent_permissions(&engine.take_effects().stanzas).is_empty());
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "b", "participant", "", "default"),
    ));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
}

#[test]
fn test_unanswered_requests_expire() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    engine.link_up();
    engine.take_effects();
    for _ in 0..super::ANSWER_TICKS {
        engine.tick();
    }
    assert_eq!(
        engine.phase(),
        Phase::Live,
        "an unanswered snapshot ends the resync"
    );

    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
    // The answer never comes; while it is in flight, a report of the default is not believed ...
    engine.stanza(event_from(
        MUC,
        &occupant_xml("changed", "a", "participant", "", "default"),
    ));
    assert!(sent_permissions(&engine.take_effects().stanzas).is_empty());
    // ... and once it expired, the next report is, and the decision goes out again.
    for _ in 0..super::ANSWER_TICKS {
        engine.tick();
    }
    engine.stanza(event_from(
        MUC,
        &occupant_xml("changed", "a", "participant", "", "default"),
    ));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
}

#[test]
fn test_a_late_answer_for_someone_who_left_does_not_count_for_the_next_person() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "a", "participant", "", "default"),
    ));
    let first = sent_permissions(&engine.take_effects().stanzas);
    engine.stanza(event_from(
        MUC,
        &format!("<occupant xmlns='urn:podium:0' event='left' room='{ROOM}' nick='a' real-jid='a@localhost/x'/>"),
    ));
    let someone_else = occupant_xml("joined", "a", "participant", "", "default")
        .replace("a@localhost/x", "z@localhost/z");
    engine.stanza(event_from(MUC, &someone_else));
    assert_eq!(sent_permissions(&engine.take_effects().stanzas).len(), 1);
    // The answer to the first person's decision arrives late: the new person's stays in flight, so a
    // report the module sent before applying it is not believed and nothing is sent twice.
    ack(&mut engine, &first[0].0);
    let stale_report = occupant_xml("changed", "a", "participant", "", "default")
        .replace("a@localhost/x", "z@localhost/z");
    engine.stanza(event_from(MUC, &stale_report));
    assert!(sent_permissions(&engine.take_effects().stanzas).is_empty());
}

#[test]
fn test_global_dry_run_audits_would_and_sends_nothing() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    engine.set_dry_run(true);
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "alice", "participant", "", "default"),
    ));
    let effects = engine.take_effects();
    assert!(
        sent_permissions(&effects.stanzas).is_empty(),
        "nothing sent"
    );
    assert_eq!(effects.audit.len(), 1);
    let record = &effects.audit[0];
    assert!(record.dry_run);
    assert_eq!((record.previous, record.granted), ("none", "audio"));
    // The same outcome again is not noted twice.
    engine.stanza(event_from(
        MUC,
        &occupant_xml("changed", "alice", "participant", "", "default"),
    ));
    let effects = engine.take_effects();
    assert!(effects.audit.is_empty() && sent_permissions(&effects.stanzas).is_empty());
}

#[test]
fn test_rule_in_dry_run_is_audited_but_not_enforced() {
    let rows = vec![
        test_row(1, "*", "everyone", None, "audio", "allow", 0),
        RuleRow {
            dry_run: 1,
            ..test_row(2, "*", "everyone", None, "all", "deny", 10)
        },
    ];
    let mut engine = engine(Arc::new(RuleSet::from_rows(&rows, MediaSet::NONE).0));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "bob", "participant", "", "default"),
    ));
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].2, "audio", "rule 2 is not enforced");
    assert_eq!(effects.audit.len(), 2);
    assert!(!effects.audit[0].dry_run);
    let would = &effects.audit[1];
    assert!(would.dry_run);
    assert_eq!((would.previous, would.granted), ("audio", "none"));
    assert_eq!(&*would.rule_ids, "2");
}

#[test]
fn test_window_edges_are_decided_at_the_edge() {
    let row = RuleRow {
        not_before: Some("2026-11-23T10:00:30Z".into()),
        not_after: Some("2026-11-23T10:01:00Z".into()),
        ..test_row(1, "*", "everyone", None, "all", "allow", 0)
    };
    let mut engine = engine(Arc::new(
        RuleSet::from_rows(std::slice::from_ref(&row), MediaSet::NONE).0,
    ));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "alice", "participant", "", "default"),
    ));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!(sent[0].2, "none", "before the window");
    ack(&mut engine, &sent[0].0);
    assert_eq!(
        engine.next_edge(),
        Some("2026-11-23T10:00:30Z".parse().unwrap())
    );

    engine.set_now("2026-11-23T10:00:30Z".parse().unwrap());
    engine.edge();
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(sent[0].2, "audio,video,screen", "the window opened");
    assert_eq!(effects.audit[0].cause, "schedule");
    ack(&mut engine, &sent[0].0);
    assert_eq!(
        engine.next_edge(),
        Some("2026-11-23T10:01:00Z".parse().unwrap())
    );

    engine.set_now("2026-11-23T10:01:00Z".parse().unwrap());
    engine.edge();
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!(sent[0].2, "none", "the window closed");
    assert_eq!(engine.next_edge(), None);
}

/// An occupant event whose presence facts carry `extra` attributes (hand, sending).
fn occupant_with(event: &str, nick: &str, extra: &str) -> String {
    format!(
        "<occupant xmlns='urn:podium:0' event='{event}' room='{ROOM}' nick='{nick}' real-jid='{nick}@localhost/x' \
         role='participant' affiliation='none' {extra}>\
         <held audio='false' video='false' screen='false' origin='default'/>\
         </occupant>"
    )
}

fn capped_rules(media: &str, effect: &str, cap: i64) -> Arc<RuleSet> {
    let row = RuleRow {
        cap: Some(cap),
        ..test_row(1, "*", "everyone", None, media, effect, 0)
    };
    Arc::new(RuleSet::from_rows(&[row], MediaSet::NONE).0)
}

fn queue_rows(effects: &super::Effects) -> Vec<Vec<(String, i64, String)>> {
    effects
        .view
        .iter()
        .filter_map(|v| match v {
            crate::store::ViewWrite::Queue { rows, .. } => Some(
                rows.iter()
                    .map(|r| (r.media.clone(), r.position, r.nick.clone()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

const HAND: &str = "hand='true'";

#[test]
fn test_raised_hands_queue_for_one_slot_and_a_leave_frees_it() {
    let mut engine = engine(capped_rules("audio", "request", 1));
    live(&mut engine);
    engine.stanza(event_from(MUC, &occupant_with("joined", "alice", "")));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!(sent[0].2, "none", "the hand is down");
    ack(&mut engine, &sent[0].0);

    engine.stanza(event_from(MUC, &occupant_with("changed", "alice", HAND)));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!((sent[0].1.as_str(), sent[0].2.as_str()), ("alice", "audio"));
    ack(&mut engine, &sent[0].0);

    engine.set_now("2026-11-23T10:00:05Z".parse().unwrap());
    engine.stanza(event_from(MUC, &occupant_with("joined", "bob", HAND)));
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!((sent[0].1.as_str(), sent[0].2.as_str()), ("bob", "none"));
    assert_eq!(
        queue_rows(&effects),
        vec![vec![("audio".to_owned(), 1, "bob".to_owned())]]
    );
    let bob = &effects.audit[0];
    assert_eq!(
        &*bob.reasons.body,
        "audio: request by rule 1 (priority 0, cap 1): waiting for a slot, position 1; \
         video: deny by default; screen: deny by default"
    );
    // The explanation is the room's rules as they stood, shared by the room.
    let explanation = bob.explanation.as_ref().unwrap().full();
    assert!(
        explanation.contains("\n  rule 1 (request everyone, audio, priority 0, cap 1)\n"),
        "{explanation}"
    );
    let inputs = &bob.inputs.as_ref().unwrap().body;
    assert!(
        inputs.contains("\"hand_raised_at\":\"2026-11-23T10:00:05Z\""),
        "{inputs}"
    );
    ack(&mut engine, &sent[0].0);

    engine.stanza(event_from(
        MUC,
        &occupant_xml("left", "alice", "participant", "audio", "podium"),
    ));
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!((sent[0].1.as_str(), sent[0].2.as_str()), ("bob", "audio"));
    let causes: Vec<(&str, &str)> = effects
        .audit
        .iter()
        .map(|r| (r.nick.as_str(), r.cause))
        .collect();
    assert_eq!(causes, vec![("alice", "left"), ("bob", "queue")]);
    assert_eq!(queue_rows(&effects), vec![vec![]], "the queue is empty now");
    ack(&mut engine, &sent[0].0);

    // Lowering the hand gives the slot up.
    engine.stanza(event_from(
        MUC,
        &occupant_with("changed", "bob", "hand='false'"),
    ));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!((sent[0].1.as_str(), sent[0].2.as_str()), ("bob", "none"));
}

#[test]
fn test_an_idle_holder_yields_at_the_idle_edge() {
    let mut engine = engine(capped_rules("video", "allow", 1));
    engine.set_idle(Some(std::time::Duration::from_secs(60)));
    live(&mut engine);
    let muted = "";
    engine.stanza(event_from(MUC, &occupant_with("joined", "alice", muted)));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!(sent[0].2, "video");
    ack(&mut engine, &sent[0].0);
    assert_eq!(
        engine.next_edge(),
        None,
        "nobody waits: idle does not matter"
    );

    engine.set_now("2026-11-23T10:00:10Z".parse().unwrap());
    engine.stanza(event_from(MUC, &occupant_with("joined", "bob", "")));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!((sent[0].1.as_str(), sent[0].2.as_str()), ("bob", "none"));
    ack(&mut engine, &sent[0].0);
    // alice holds since 10:00:00 and has been muted since then: idle at 10:01:00.
    assert_eq!(
        engine.next_edge(),
        Some("2026-11-23T10:01:00Z".parse().unwrap())
    );

    engine.set_now("2026-11-23T10:01:00Z".parse().unwrap());
    engine.edge();
    let effects = engine.take_effects();
    let mut sent: Vec<(String, String)> = sent_permissions(&effects.stanzas)
        .into_iter()
        .map(|(_, nick, set)| (nick, set))
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        vec![
            ("alice".into(), "none".into()),
            ("bob".into(), "video".into())
        ]
    );
    assert!(effects.audit.iter().all(|r| r.cause == "idle"));
}

#[test]
fn test_an_unmuted_holder_is_not_idle() {
    let mut engine = engine(capped_rules("video", "allow", 1));
    engine.set_idle(Some(std::time::Duration::from_secs(60)));
    live(&mut engine);
    let sending = "sending='video'";
    engine.stanza(event_from(MUC, &occupant_with("joined", "alice", sending)));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    ack(&mut engine, &sent[0].0);
    engine.stanza(event_from(MUC, &occupant_with("joined", "bob", "")));
    let sent = sent_permissions(&engine.take_effects().stanzas);
    assert_eq!(sent[0].2, "none");
    ack(&mut engine, &sent[0].0);
    assert_eq!(
        engine.next_edge(),
        None,
        "a sending holder never becomes idle"
    );
}

#[test]
fn test_a_grant_allows_until_it_expires_then_the_rules_decide_again() {
    let grant = crate::rules::GrantRow {
        id: 4,
        room: "r".into(),
        who: "jid".into(),
        who_value: Some("alice@localhost".into()),
        media: "audio".into(),
        expires_at: "2026-11-23T10:05:00Z".into(),
        granted_by: "teacher@localhost".into(),
        source: "sql".into(),
        meeting: None,
    };
    let (set, problems) = RuleSet::from_tables(
        &[test_row(1, "*", "everyone", None, "all", "deny", 50)],
        &[grant],
        MediaSet::NONE,
    );
    assert!(problems.is_empty());
    let mut engine = engine(Arc::new(set));
    live(&mut engine);
    engine.stanza(event_from(MUC, &occupant_with("joined", "alice", "")));
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(sent[0].2, "audio", "the grant wins over the deny");
    assert!(effects.audit[0].reasons.body.starts_with(
        "audio: allow by grant 4 (until 2026-11-23T10:05:00Z); video: deny by rule 1"
    ));
    ack(&mut engine, &sent[0].0);
    assert_eq!(
        engine.next_edge(),
        Some("2026-11-23T10:05:00Z".parse().unwrap())
    );
    engine.set_now("2026-11-23T10:05:00Z".parse().unwrap());
    engine.edge();
    let effects = engine.take_effects();
    let sent = sent_permissions(&effects.stanzas);
    assert_eq!(sent[0].2, "none", "expired on time");
    assert_eq!(effects.audit[0].cause, "schedule");
    assert_eq!(engine.next_edge(), None);
}

const BREAKOUT: &str = "breakout.localhost";

fn result_from(from: &str, id: &str, payload: Option<&str>) -> Stanza {
    Stanza::Iq(Iq::Result {
        from: Some(from.parse().unwrap()),
        to: Some("podium.localhost".parse().unwrap()),
        id: id.into(),
        payload: payload.map(|p| p.parse::<Element>().unwrap()),
    })
}

/// Where each stanza the engine sent goes.
fn destinations(stanzas: &[Stanza]) -> Vec<String> {
    stanzas
        .iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Get { to, .. } | Iq::Set { to, .. }) => to.as_ref().map(Jid::to_string),
            _ => None,
        })
        .collect()
}

/// A breakout room, reported by the module on the breakout MUC with its main room, follows the main
/// room's rules; the resync reads both hosts; decisions go to the room's own host, and only that
/// host's answer counts. A main room is believed only from the breakout MUC.
#[test]
fn test_breakout_rooms_follow_their_main_room() {
    let mut engine = engine(rules(&[
        ("lecture", "everyone", None, "audio", "allow", 0),
        ("*/quiet", "everyone", None, "all", "deny", 0),
    ]));
    engine.set_breakout_muc(Some(BREAKOUT.parse().unwrap()));

    // Resync: the main MUC first, then the breakout MUC; live only after both.
    engine.link_up();
    let effects = engine.take_effects();
    assert_eq!(destinations(&effects.stanzas), [MUC]);
    let (id, _) = snapshot_id(&effects.stanzas);
    engine.stanza(result_from(
        MUC,
        &id,
        Some("<snapshot xmlns='urn:podium:0'/>"),
    ));
    assert_eq!(engine.phase(), Phase::Resyncing);
    let effects = engine.take_effects();
    assert_eq!(destinations(&effects.stanzas), [BREAKOUT]);
    let (id, _) = snapshot_id(&effects.stanzas);
    // The main MUC cannot answer for the breakout MUC.
    engine.stanza(result_from(
        MUC,
        &id,
        Some("<snapshot xmlns='urn:podium:0'/>"),
    ));
    assert_eq!(engine.phase(), Phase::Resyncing);
    let snapshot = format!(
        "<snapshot xmlns='urn:podium:0'><room jid='b1@{BREAKOUT}' main-room='lecture@{MUC}'>{}</room></snapshot>",
        occupant_xml("joined", "ann", "participant", "", "default")
            .replace(" event='joined'", "")
            .replace(&format!(" room='{ROOM}'"), "")
            .replace(
                &format!("from='{ROOM}/ann'"),
                &format!("from='b1@{BREAKOUT}/ann'")
            )
    );
    engine.stanza(result_from(BREAKOUT, &id, Some(&snapshot)));
    assert_eq!(engine.phase(), Phase::Live);
    let effects = engine.take_effects();
    assert_eq!(destinations(&effects.stanzas), [BREAKOUT]);
    assert_eq!(sent_permissions(&effects.stanzas)[0].2, "audio");
    let room = engine
        .rooms()
        .get(&format!("b1@{BREAKOUT}").parse().unwrap())
        .unwrap();
    assert_eq!(room.name, "lecture/b1");

    // A join in a breakout room named by a rule (`*/quiet`) follows that rule, not the main room.
    let breakout_event = |room: &str, main: &str, nick: &str| {
        occupant_xml("joined", nick, "participant", "", "default")
            .replace(
                &format!("room='{ROOM}'"),
                &format!("room='{room}' main-room='{main}'"),
            )
            .replace(&format!("from='{ROOM}/"), &format!("from='{room}/"))
    };
    engine.stanza(event_from(
        BREAKOUT,
        &breakout_event(
            &format!("quiet@{BREAKOUT}"),
            &format!("lecture@{MUC}"),
            "bob",
        ),
    ));
    let effects = engine.take_effects();
    assert_eq!(destinations(&effects.stanzas), [BREAKOUT]);
    assert_eq!(sent_permissions(&effects.stanzas)[0].2, "none");
    assert_eq!(&*effects.audit[0].rule_ids, "2");

    // A breakout room's join sent to the wrong host, and a main room claimed by the main MUC, are
    // not believed.
    engine.stanza(event_from(
        MUC,
        &breakout_event(&format!("b2@{BREAKOUT}"), &format!("lecture@{MUC}"), "eve"),
    ));
    assert!(engine.take_effects().audit.is_empty());
    engine.stanza(event_from(
        MUC,
        &breakout_event(&format!("r2@{MUC}"), &format!("lecture@{MUC}"), "mallory"),
    ));
    let effects = engine.take_effects();
    assert_eq!(effects.audit[0].granted, "none", "r2 is its own room");
    let room = engine
        .rooms()
        .get(&format!("r2@{MUC}").parse().unwrap())
        .unwrap();
    assert_eq!(room.name, "r2");

    // The breakout MUC answers for its own decisions only.
    engine.stanza(event_from(
        BREAKOUT,
        &breakout_event(&format!("b1@{BREAKOUT}"), &format!("lecture@{MUC}"), "cy"),
    ));
    let effects = engine.take_effects();
    assert_eq!(destinations(&effects.stanzas), [BREAKOUT]);
    let (id, _, granted) = sent_permissions(&effects.stanzas).remove(0);
    assert_eq!(granted, "audio");
    let in_flight = engine.in_flight_count();
    engine.stanza(result_from(
        MUC,
        &id,
        Some("<applied xmlns='urn:podium:0' count='1'/>"),
    ));
    assert_eq!(
        engine.in_flight_count(),
        in_flight,
        "an answer from the main MUC does not count"
    );
    engine.stanza(result_from(
        BREAKOUT,
        &id,
        Some("<applied xmlns='urn:podium:0' count='1'/>"),
    ));
    assert_eq!(engine.in_flight_count(), in_flight - 1);
}

fn approval_xml(nick: &str, by: &str, approved: bool) -> String {
    approval_of(nick, by, "audio", approved)
}

fn approval_of(nick: &str, by: &str, media: &str, approved: bool) -> String {
    format!(
        "<approval xmlns='urn:podium:0' room='{ROOM}' nick='{nick}' real-jid='{nick}@localhost/x' \
         media='{media}' approved='{approved}' by='{by}@localhost/x' meeting='m-1'/>"
    )
}

/// A moderator's A/V-moderation approval, reported by the MUC host about an occupant of the room,
/// becomes a grant change for that person's identity and the room's name; a withdrawal removes it.
/// Nothing comes of it from a non-moderator, from anyone but the MUC host, for someone podium does
/// not see, or with approvals turned off.
#[test]
fn test_a_moderators_approval_becomes_a_grant_change() {
    use crate::store::{ApprovalKey, GrantChange};
    let mut engine = engine(rules(&[
        ("*", "role", Some("participant"), "audio", "request", 0),
        ("*", "everyone", None, "video", "deny", 0),
        ("*", "role", Some("moderator"), "all", "allow", 10),
    ]));
    engine.set_approval(Some(std::time::Duration::from_secs(3600)));
    live(&mut engine);
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "teacher", "moderator", "", "default"),
    ));
    engine.stanza(event_from(
        MUC,
        &occupant_xml("joined", "ada", "participant", "", "default"),
    ));
    engine.take_effects();

    engine.stanza(event_from(MUC, &approval_xml("ada", "teacher", true)));
    let key = ApprovalKey {
        room: "r".into(),
        who: "jid".into(),
        who_value: "ada@localhost".into(),
        media: "audio".into(),
    };
    assert_eq!(
        engine.take_effects().grants,
        [GrantChange::Approve {
            key: key.clone(),
            expires_at: "2026-11-23T11:00:00Z".into(),
            granted_by: "teacher@localhost".into(),
            note: format!("A/V moderation: teacher approved ada in {ROOM}"),
            meeting: "m-1".into(),
        }]
    );
    engine.stanza(event_from(MUC, &approval_xml("ada", "teacher", false)));
    assert_eq!(engine.take_effects().grants, [GrantChange::Withdraw(key)]);

    // Not a moderator; not the MUC host; nobody podium sees; a kind an admin denies (no request
    // rule); the moderator approving themself.
    engine.stanza(event_from(MUC, &approval_xml("ada", "ada", true)));
    engine.stanza(event_from(
        MUC,
        &approval_of("ada", "teacher", "video", true),
    ));
    engine.stanza(event_from(
        MUC,
        &approval_of("teacher", "teacher", "screen", true),
    ));
    engine.stanza(event_from(
        "other.localhost",
        &approval_xml("ada", "teacher", true),
    ));
    engine.stanza(event_from(MUC, &approval_xml("zed", "teacher", true)));
    assert!(engine.take_effects().grants.is_empty());

    // A moderator on an anonymous session may be the approved person's other session; an approval
    // for a meeting the room no longer holds (or none) would outlive it.
    engine.stanza(event_from(
        MUC,
        &approval_xml("ada", "teacher", true).replace("meeting=", "by-anonymous='true' meeting="),
    ));
    engine.stanza(event_from(
        MUC,
        &approval_xml("ada", "teacher", true).replace("meeting='m-1'", "meeting='m-0'"),
    ));
    engine.stanza(event_from(
        MUC,
        &approval_xml("ada", "teacher", true).replace(" meeting='m-1'", ""),
    ));
    assert!(engine.take_effects().grants.is_empty());

    // podium as a whole in dry-run writes nothing (a shared store would carry it to other shards).
    engine.set_dry_run(true);
    engine.stanza(event_from(MUC, &approval_xml("ada", "teacher", true)));
    assert!(engine.take_effects().grants.is_empty());
    engine.set_dry_run(false);

    // rules.approval_minutes = 0.
    engine.set_approval(None);
    engine.stanza(event_from(MUC, &approval_xml("ada", "teacher", true)));
    assert!(engine.take_effects().grants.is_empty());
}

/// A resync of 3,000 occupants is decided and sent a slice at a time: the first changes are handed
/// over before the rest is decided, every occupant is sent exactly once in the end, and a rule edit
/// in the middle starts the pass over so everyone ends on the newest rules.
/// Brings the engine live with a snapshot of 300 rooms of 10 occupants, all on the module's default.
fn big_resync(engine: &mut Engine) {
    engine.link_up();
    let (id, _) = snapshot_id(&engine.take_effects().stanzas);
    let rooms: String = (0..300)
        .map(|r| {
            let occupants: String = (0..10)
                .map(|o| {
                    format!(
                        "<occupant nick='n{r}-{o}' real-jid='u{r}-{o}@localhost/x'>\
                         <held audio='false' video='false' screen='false' origin='default'/></occupant>"
                    )
                })
                .collect();
            format!("<room jid='room-{r:03}@conference.localhost'>{occupants}</room>")
        })
        .collect();
    engine.stanza(result(
        &id,
        Some(&format!(
            "<snapshot xmlns='urn:podium:0'>{rooms}</snapshot>"
        )),
    ));
    assert_eq!(engine.phase(), Phase::Live);
}

#[test]
fn test_a_big_pass_is_sent_a_slice_at_a_time() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    big_resync(&mut engine);
    let first = engine.take_effects();
    let first_sent = sent_permissions(&first.stanzas);
    assert!(
        !first_sent.is_empty() && first_sent.len() < 3000,
        "the first slice is handed over alone: {}",
        first_sent.len()
    );
    assert_eq!(first.audit.len(), first_sent.len());
    assert!(engine.busy());
    let mut sent = first_sent;
    let mut slices = 1;
    while engine.busy() {
        engine.work();
        sent.extend(sent_permissions(&engine.take_effects().stanzas));
        slices += 1;
    }
    assert!(slices >= 3, "{slices}");
    assert_eq!(first.audit[0].cause, "resync");
    let mut nicks: Vec<&str> = sent.iter().map(|(_, nick, _)| nick.as_str()).collect();
    assert_eq!(nicks.len(), 3000);
    nicks.sort_unstable();
    nicks.dedup();
    assert_eq!(nicks.len(), 3000, "each occupant sent once");
    for (id, ..) in &sent {
        ack(&mut engine, id);
    }
    engine.take_effects();

    // A rule edit, then another in the middle of its pass: the second starts over.
    engine.rules_changed(rules(&[("*", "everyone", None, "video", "allow", 0)]));
    let mut last = std::collections::HashMap::new();
    for (_, nick, permissions) in sent_permissions(&engine.take_effects().stanzas) {
        last.insert(nick, permissions);
    }
    assert!(engine.busy());
    engine.rules_changed(rules(&[("*", "everyone", None, "all", "allow", 0)]));
    while engine.busy() {
        engine.work();
    }
    let effects = engine.take_effects();
    for (_, nick, permissions) in sent_permissions(&effects.stanzas) {
        last.insert(nick, permissions);
    }
    // Whatever was sent last per occupant comes from the newest rules (someone decided under
    // the first edit was decided again under the second).
    assert_eq!(last.len(), 3000);
    assert!(
        last.values().all(|p| p == "audio,video,screen"),
        "{:?}",
        last.values()
            .filter(|p| *p != "audio,video,screen")
            .take(3)
            .collect::<Vec<_>>()
    );
}

/// The IQs the stanzas carry `<permissions/>` in, each with its entries and its size on the wire.
fn permissions_iqs(stanzas: &[Stanza]) -> Vec<(usize, usize)> {
    stanzas
        .iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Set { payload, .. }) => SetPermissions::try_from(payload.clone())
                .ok()
                .map(|set| (set.occupants.len(), String::from(payload).len())),
            _ => None,
        })
        .collect()
}

/// A slice of a pass reaches the module in one `<permissions/>`, so the module carries it out in one
/// batch (every request for jicofo written before any client is told); with long JIDs it is split
/// so that no IQ comes near Prosody's stanza size limit for a component (512 KB).
#[test]
fn test_a_slice_is_one_permissions_iq_of_bounded_size() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    big_resync(&mut engine);
    let mut iqs = vec![permissions_iqs(&engine.take_effects().stanzas)];
    while engine.busy() {
        engine.work();
        iqs.push(permissions_iqs(&engine.take_effects().stanzas));
    }
    let counts: Vec<Vec<usize>> = iqs
        .iter()
        .map(|slice| slice.iter().map(|(n, _)| *n).collect())
        .collect();
    assert!(
        counts.iter().all(|slice| slice.len() == 1),
        "one IQ per slice: {counts:?}"
    );
    assert_eq!(counts.iter().flatten().sum::<usize>(), 3000);

    // 1,000 occupants whose real JIDs are 1,000 bytes long, a third of them apostrophes (`&apos;`).
    let mut engine = self::engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    engine.link_up();
    let (id, _) = snapshot_id(&engine.take_effects().stanzas);
    let resource = "r&apos;r".repeat(333);
    let rooms: String = (0..100)
        .map(|r| {
            let occupants: String = (0..10)
                .map(|o| {
                    format!(
                        "<occupant nick='n{r}-{o}' real-jid='u{r}-{o}@localhost/{resource}'>\
                         <held audio='false' video='false' screen='false' origin='default'/></occupant>"
                    )
                })
                .collect();
            format!("<room jid='room-{r:03}@conference.localhost'>{occupants}</room>")
        })
        .collect();
    engine.stanza(result(
        &id,
        Some(&format!(
            "<snapshot xmlns='urn:podium:0'>{rooms}</snapshot>"
        )),
    ));
    let mut iqs = permissions_iqs(&engine.take_effects().stanzas);
    while engine.busy() {
        engine.work();
        iqs.extend(permissions_iqs(&engine.take_effects().stanzas));
    }
    assert_eq!(iqs.iter().map(|(n, _)| n).sum::<usize>(), 1000);
    assert!(
        iqs.len() > 1 && iqs.iter().all(|(_, bytes)| *bytes <= 300 * 1024),
        "{:?}",
        iqs.iter().map(|(_, bytes)| bytes).collect::<Vec<_>>()
    );
}

/// A rule edit while the resync's pass is under way starts the pass over with the newest rules, and
/// it stays the resync (its records say so, and "resync complete" still ends it).
#[test]
fn test_a_rule_edit_during_a_resync_pass_keeps_it_a_resync() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    big_resync(&mut engine);
    engine.take_effects();
    assert!(engine.busy());
    engine.rules_changed(rules(&[("*", "everyone", None, "video", "allow", 0)]));
    while engine.busy() {
        engine.work();
    }
    let effects = engine.take_effects();
    assert!(!effects.audit.is_empty());
    assert!(effects.audit.iter().all(|r| r.cause == "resync"));
    let video = sent_permissions(&effects.stanzas)
        .into_iter()
        .filter(|(_, _, p)| p == "video")
        .count();
    assert_eq!(video, 3000, "everyone decided again with the newest rules");
}

/// Rule reloads arriving faster than a pass takes (a moderator toggling A/V-moderation approvals
/// rewrites `grants`, each write reloads the rules) must not starve the rooms at the end of the
/// pass: a revoke by an earlier edit reaches every occupant.
#[test]
fn test_rule_reloads_faster_than_a_pass_do_not_starve_the_last_rooms() {
    let mut engine = engine(rules(&[("*", "everyone", None, "audio", "allow", 0)]));
    big_resync(&mut engine);
    let mut sent = sent_permissions(&engine.take_effects().stanzas);
    while engine.busy() {
        engine.work();
        sent.extend(sent_permissions(&engine.take_effects().stanzas));
    }
    for (id, ..) in &sent {
        ack(&mut engine, id);
    }
    engine.take_effects();
    // The edit revokes audio everywhere; then reloads of the same rules keep coming.
    let video = || rules(&[("*", "everyone", None, "video", "allow", 0)]);
    engine.rules_changed(video());
    let mut revoked = std::collections::HashSet::new();
    for _ in 0..50 {
        for (_, nick, permissions) in sent_permissions(&engine.take_effects().stanzas) {
            if permissions == "video" {
                revoked.insert(nick);
            }
        }
        if !engine.busy() {
            break;
        }
        engine.work();
        engine.rules_changed(video());
    }
    for (_, nick, permissions) in sent_permissions(&engine.take_effects().stanzas) {
        if permissions == "video" {
            revoked.insert(nick);
        }
    }
    assert_eq!(revoked.len(), 3000, "occupants whose audio was revoked");
}

/// The room of an occupant JID is what comes before the first `/`, whatever the nick holds, and
/// is made again when the room changes.
#[test]
fn test_room_of_an_occupant_jid() {
    use std::str::FromStr;
    let jid = |s: &str| xmpp_parsers::jid::FullJid::from_str(s).unwrap();
    let mut last = None;
    let a = jid("class@conference.localhost/ada/with/slashes");
    assert_eq!(
        super::room_of(&a, &mut last).as_str(),
        "class@conference.localhost"
    );
    let b = jid("class@conference.localhost/ben");
    assert_eq!(
        super::room_of(&b, &mut last).as_str(),
        "class@conference.localhost"
    );
    let c = jid("lab@conference.localhost/class@conference.localhost");
    assert_eq!(
        super::room_of(&c, &mut last).as_str(),
        "lab@conference.localhost"
    );
    let d = jid("conference.localhost/x");
    assert_eq!(
        super::room_of(&d, &mut last).as_str(),
        "conference.localhost"
    );
}

/// What each `<permissions/>` entry asks the module to report (`report-sending`), by nick.
fn sent_report_sending(stanzas: &[Stanza]) -> Vec<(String, String)> {
    stanzas
        .iter()
        .filter_map(|s| match s {
            Stanza::Iq(Iq::Set { payload, .. }) => SetPermissions::try_from(payload.clone()).ok(),
            _ => None,
        })
        .flat_map(|set| {
            set.occupants
                .into_iter()
                .map(|o| (o.jid.resource().to_string(), o.report_sending.to_string()))
        })
        .collect()
}

#[test]
fn test_only_a_slot_holder_is_asked_to_report_sending() {
    let mut engine = engine(capped_rules("video", "allow", 1));
    engine.set_idle(Some(std::time::Duration::from_secs(60)));
    live(&mut engine);
    engine.stanza(event_from(MUC, &occupant_with("joined", "alice", "")));
    let effects = engine.take_effects();
    assert_eq!(
        sent_report_sending(&effects.stanzas),
        vec![("alice".into(), "video".into())],
        "the holder's quiet time makes it idle: podium reads its video's mute toggles"
    );
    ack(&mut engine, &sent_permissions(&effects.stanzas)[0].0);
    engine.stanza(event_from(MUC, &occupant_with("joined", "bob", "")));
    let effects = engine.take_effects();
    assert_eq!(
        sent_report_sending(&effects.stanzas),
        vec![("bob".into(), "none".into())],
        "a waiting occupant's mute toggles are read nowhere"
    );
    ack(&mut engine, &sent_permissions(&effects.stanzas)[0].0);

    // alice leaves: bob holds the slot now and is asked to report.
    engine.stanza(event_from(
        MUC,
        &occupant_xml("left", "alice", "participant", "video", "podium"),
    ));
    assert_eq!(
        sent_report_sending(&engine.take_effects().stanzas),
        vec![("bob".into(), "video".into())]
    );
}

#[test]
fn test_no_sending_is_asked_for_without_idle_seconds() {
    let mut engine = engine(capped_rules("video", "allow", 1));
    engine.set_idle(None);
    live(&mut engine);
    engine.stanza(event_from(MUC, &occupant_with("joined", "alice", "")));
    assert_eq!(
        sent_report_sending(&engine.take_effects().stanzas),
        vec![("alice".into(), "none".into())]
    );
}
