//! The spine end to end: a real Prosody with mod_podium, the real podium binary on real SQLite, real
//! c2s clients. Each test starts its own Prosody on free loopback ports with a fresh data dir.

mod common;

use std::time::{Duration, Instant};

use common::c2s::{C2s, CLIENT, PODIUM, attr, el};
use common::conference::{
    CLASS_RULES, Class, av_moderation, class, create_breakout, start_plain, start_with_rules,
};
use common::podium::{Podium, write_config};
use common::prosody::{
    AV_MODERATION, BREAKOUT_MUC, COMPONENT, CONFERENCE_OPTIONS, MUC, OTHER_COMPONENT, Prosody,
};
use common::{decided, edit_rules, inspect, sqlite3, wait_audit, wait_held};
use futures::{SinkExt, StreamExt};
use minidom::Element;

const ROOM: &str = "standup";

fn error_condition(answer: &Element) -> Option<String> {
    let error = answer.get_child("error", CLIENT)?;
    error.children().next().map(|c| c.name().to_owned())
}

#[tokio::test]
async fn decisions_follow_sql_rules_live_edits_presence_and_leave() {
    let (prosody, mut podium, db, mut inspector) =
        start_with_rules(&["alice", "bob", "token-carol", "inspector"], "", "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
           (1, '*',       'everyone', NULL,        'audio', 'allow', 0,  'everyone may speak'),
           (2, 'standup', 'role',     'moderator', 'all',   'allow', 10, 'moderators may do anything'),
           (3, 'stand*',  'group',    'acme',      'video', 'allow', 5,  'acme staff may show their camera'),
           (4, '*',       'jid',      'bob@*',     'audio', 'deny',  20, 'bob is muted');").await;

    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    let mut bob = C2s::connect(prosody.c2s_port, "bob", "web").await;
    let mut carol = C2s::connect(prosody.c2s_port, "token-carol", "web").await;
    alice.join(ROOM, "alice").await; // creates the room: owner, so moderator
    bob.join(ROOM, "bob").await;
    carol.join(ROOM, "carol").await;

    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[
            ("alice", "audio,video,screen"),
            ("bob", "none"),
            ("carol", "audio,video"),
        ]),
    )
    .await;

    // The audit log names the rules and the server-known identity.
    wait_audit(
        &podium,
        &db,
        "SELECT nick, previous, granted, rule_ids, cause, coalesce(user_id,''), coalesce(user_group,'') \
         FROM decisions WHERE cause = 'joined' ORDER BY nick",
        "alice|none|audio,video,screen|2|joined||\nbob|none|none|4|joined||\ncarol|none|audio,video|1,3|joined|carol|acme\n",
    )
    .await;

    // Live edit from another process: unmute bob. Measured, reported, not asserted against a clock.
    let edited = Instant::now();
    sqlite3(&db, "UPDATE rules SET effect = 'allow' WHERE id = 4;");
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[
            ("alice", "audio,video,screen"),
            ("bob", "audio"),
            ("carol", "audio,video"),
        ]),
    )
    .await;
    eprintln!("live edit reached the module in {:?}", edited.elapsed());

    // A deletion: moderators lose their blanket rule.
    sqlite3(&db, "DELETE FROM rules WHERE id = 2;");
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[
            ("alice", "audio"),
            ("bob", "audio"),
            ("carol", "audio,video"),
        ]),
    )
    .await;

    // A row podium cannot understand is skipped with its id, and podium goes on. (The database
    // refuses an unknown `who` itself; a role is checked by podium.)
    let mark = podium.mark();
    sqlite3(
        &db,
        "INSERT INTO rules (id, who, who_value, media, effect) VALUES (9, 'role', 'wizard', 'all', 'allow');",
    );
    let skipped = podium.wait_for_after(mark, &["rule skipped"]).await;
    assert!(skipped.contains("\"rule_id\":9"), "{skipped}");
    assert!(skipped.contains("wizard"), "{skipped}");

    // A presence change: alice (owner) makes bob a moderator; bob's role changes, podium re-decides.
    edit_rules(
        &podium,
        &db,
        "INSERT INTO rules (room, who, who_value, media, effect, priority) \
         VALUES ('standup', 'role', 'moderator', 'screen', 'allow', 10);",
    )
    .await;
    let answer = alice
        .iq(
            "set",
            &format!("{ROOM}@{MUC}"),
            el("query", "http://jabber.org/protocol/muc#admin")
                .append(
                    el("item", "http://jabber.org/protocol/muc#admin")
                        .attr(attr("nick"), "bob")
                        .attr(attr("role"), "moderator"),
                )
                .build(),
        )
        .await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[
            ("alice", "audio,screen"),
            ("bob", "audio,screen"),
            ("carol", "audio,video"),
        ]),
    )
    .await;
    let last_of_bob =
        "SELECT granted, cause FROM decisions WHERE nick = 'bob' ORDER BY id DESC LIMIT 1";
    wait_audit(&podium, &db, last_of_bob, "audio,screen|changed\n").await;

    // A leave is seen: the module forgets bob, podium logs and audits it.
    let mark = podium.mark();
    bob.leave(ROOM, "bob").await;
    podium
        .wait_for_after(mark, &["occupant left", "\"occupant\":\"bob\""])
        .await;
    let held = inspect(&mut inspector, ROOM).await;
    assert!(!held.contains_key("bob"), "{held:?}");
    let last_of_bob = "SELECT previous, granted, cause FROM decisions WHERE nick = 'bob' ORDER BY id DESC LIMIT 1";
    wait_audit(&podium, &db, last_of_bob, "audio,screen|none|left\n").await;

    // SIGTERM: a clean stop.
    let status = podium.terminate();
    assert!(status.success(), "podium exited with {status}");
    assert!(
        podium
            .lines()
            .iter()
            .any(|l| l.contains("\"message\":\"stopped\""))
    );
    drop(carol);
}

#[tokio::test]
async fn forged_policy_gets_forbidden_and_changes_nothing() {
    let (prosody, podium, _db, mut inspector) = start_with_rules(
        &["alice", "inspector"],
        "",
        "INSERT INTO rules (media, effect) VALUES ('audio', 'allow');",
    )
    .await;
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    alice.join(ROOM, "alice").await;
    let expected = decided(&[("alice", "audio")]);
    wait_held(&mut inspector, &podium, ROOM, &expected).await;

    let grant_all = || {
        el("permissions", PODIUM)
            .append(
                el("occupant", PODIUM)
                    .attr(attr("jid"), format!("{ROOM}@{MUC}/alice"))
                    .attr(attr("real-jid"), "alice@localhost/web")
                    .attr(attr("audio"), "true")
                    .attr(attr("video"), "true")
                    .attr(attr("screen"), "true"),
            )
            .build()
    };

    // A client grants itself everything: forbidden.
    let answer = alice.iq("set", MUC, grant_all()).await;
    assert_eq!(answer.attr("type"), Some("error"));
    assert_eq!(error_condition(&answer).as_deref(), Some("forbidden"));
    // A client asks for the snapshot or inspects: forbidden (real JIDs are not for everyone).
    let answer = alice.iq("get", MUC, el("snapshot", PODIUM).build()).await;
    assert_eq!(error_condition(&answer).as_deref(), Some("forbidden"));
    let answer = alice
        .iq(
            "get",
            MUC,
            el("inspect", PODIUM)
                .attr(attr("room"), format!("{ROOM}@{MUC}"))
                .build(),
        )
        .await;
    assert_eq!(error_condition(&answer).as_deref(), Some("forbidden"));

    // Another component, properly authenticated with its own secret: forbidden too.
    let mut other = prosody.login_other_component().await;
    let forged = xmpp_parsers::iq::Iq::Set {
        from: Some(OTHER_COMPONENT.parse().unwrap()),
        to: Some(MUC.parse().unwrap()),
        id: "forged-1".into(),
        payload: grant_all(),
    };
    other
        .send(&tokio_xmpp::xmlstream::XmppStreamElement::Stanza(
            forged.into(),
        ))
        .await
        .unwrap();
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(10), other.next())
            .await
            .unwrap()
        {
            Some(Ok(tokio_xmpp::xmlstream::FallibleStreamElement::Ok(
                tokio_xmpp::xmlstream::XmppStreamElement::Stanza(tokio_xmpp::Stanza::Iq(iq)),
            ))) if iq.id() == "forged-1" => break iq,
            Some(Ok(_)) | Some(Err(tokio_xmpp::xmlstream::ReadError::SoftTimeout)) => continue,
            other => panic!("other component's stream failed: {other:?}"),
        }
    };
    match answer {
        xmpp_parsers::iq::Iq::Error { error, .. } => assert_eq!(
            error.defined_condition,
            xmpp_parsers::stanza_error::DefinedCondition::Forbidden
        ),
        other => panic!("forged permissions were not refused: {other:?}"),
    }

    // An unknown request in podium's namespace is answered, not left hanging.
    let answer = inspector
        .iq("get", MUC, el("frobnicate", PODIUM).build())
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("feature-not-implemented")
    );

    // Nothing changed.
    assert_eq!(inspect(&mut inspector, ROOM).await, expected);
    assert!(
        prosody
            .log()
            .contains("refused permissions from alice@localhost/web")
    );
}

#[tokio::test]
async fn podium_killed_keeps_held_permissions_and_restart_resyncs() {
    let (prosody, mut podium, db, mut inspector) = start_with_rules(
        &["alice", "bob", "carol", "inspector"],
        "",
        "INSERT INTO rules (id, media, effect) VALUES (1, 'audio,video', 'allow');",
    )
    .await;
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    let mut bob = C2s::connect(prosody.c2s_port, "bob", "web").await;
    alice.join(ROOM, "alice").await;
    bob.join(ROOM, "bob").await;
    let before = decided(&[("alice", "audio,video"), ("bob", "audio,video")]);
    wait_held(&mut inspector, &podium, ROOM, &before).await;

    podium.kill9();
    // Held decisions stay while podium is away.
    assert_eq!(inspect(&mut inspector, ROOM).await, before);

    // While podium is down the rules change and carol joins (she gets the module's default: nothing).
    sqlite3(&db, "UPDATE rules SET media = 'audio' WHERE id = 1;");
    let mut carol = C2s::connect(prosody.c2s_port, "carol", "web").await;
    carol.join(ROOM, "carol").await;
    let mut while_down = before.clone();
    while_down.insert("carol".into(), ("none".into(), "default".into()));
    assert_eq!(inspect(&mut inspector, ROOM).await, while_down);

    // podium comes back, resyncs from the snapshot, and module and podium agree again.
    let podium = Podium::start(&podium.config);
    let resync = podium.wait_for(&["resync complete"]).await;
    assert!(resync.contains("\"occupants\":3"), "{resync}");
    assert!(resync.contains("\"changes\":3"), "{resync}");
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio"), ("bob", "audio"), ("carol", "audio")]),
    )
    .await;
    wait_audit(
        &podium,
        &db,
        "SELECT count(*) FROM decisions WHERE cause = 'resync'",
        "3\n",
    )
    .await;
}

#[tokio::test]
async fn prosody_restart_podium_reconnects_and_resyncs() {
    let (mut prosody, podium, _db, mut inspector) = start_with_rules(
        &["alice", "inspector"],
        "",
        "INSERT INTO rules (media, effect) VALUES ('screen', 'allow');",
    )
    .await;
    {
        let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
        alice.join(ROOM, "alice").await;
        wait_held(
            &mut inspector,
            &podium,
            ROOM,
            &decided(&[("alice", "screen")]),
        )
        .await;
    }

    let mark = podium.mark();
    prosody.restart();
    podium.wait_for_after(mark, &["link lost"]).await;
    podium
        .wait_for_after(mark, &["link up", "\"generation\":2"])
        .await;
    podium.wait_for_after(mark, &["resync complete"]).await;

    // The module's state went with the old Prosody; the occupant rejoins and podium decides again.
    let mut inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    alice.join(ROOM, "alice").await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "screen")]),
    )
    .await;
}

#[tokio::test]
async fn link_survives_idle_and_unparsable_stanzas() {
    let (prosody, podium, db) = start_plain(&["alice", "inspector"], "keepalive_secs = 1").await;
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;

    // A presence podium cannot parse (unknown <show/>): logged and skipped, the link stays.
    let mark = podium.mark();
    alice.send(
        el("presence", CLIENT)
            .attr(attr("to"), COMPONENT)
            .append(el("show", CLIENT).append("bogus"))
            .build(),
    );
    podium
        .wait_for_after(mark, &["unparsable stanza skipped"])
        .await;

    // (An unparsable IQ get/set would be answered bad-request; Prosody's router refuses those before
    // they reach a component, so that path is unit-tested in xmpp::link.)

    // An IQ podium does not handle gets an error; a ping gets a result.
    let answer = alice
        .iq("get", COMPONENT, el("query", "jabber:iq:version").build())
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("service-unavailable")
    );
    let answer = alice
        .iq("get", COMPONENT, el("ping", "urn:xmpp:ping").build())
        .await;
    assert_eq!(answer.attr("type"), Some("result"));

    // Idle: keepalive pings go out (each after 1 s of silence) and the link stays up.
    let mark = podium.mark();
    podium.wait_for_after(mark, &["keepalive ping sent"]).await;
    let second = podium.mark();
    podium
        .wait_for_after(second, &["keepalive ping sent"])
        .await;
    assert!(
        !podium.lines().iter().any(|l| l.contains("link lost")),
        "{:?}",
        podium.lines()
    );

    // And decisions still flow.
    edit_rules(
        &podium,
        &db,
        "INSERT INTO rules (media, effect) VALUES ('all', 'allow');",
    )
    .await;
    let mut inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
    alice.join(ROOM, "alice").await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen")]),
    )
    .await;
}

/// Nagle's algorithm on the component link held each report back until podium acknowledged the
/// previous one (about 20 ms per join, issue 13): both ends of the link have TCP_NODELAY, Prosody's
/// without any setting of the operator's (the test Prosody keeps `nagle` at its default). So does
/// Prosody's end of jicofo's connection (`podium_focus_jids`), which carries what the module releases
/// and withdraws; a participant's connection keeps Prosody's default.
#[tokio::test]
async fn the_component_link_and_jicofos_connection_run_without_nagle() {
    let prosody = Prosody::start_with(&["alice", "focus"], CONFERENCE_OPTIONS);
    let db = prosody.data_dir().join("rules/podium.db");
    let podium = Podium::start(&write_config(&prosody, &db, ""));
    podium.wait_for(&["resync complete"]).await;
    let port = prosody.component_port;
    let prosody_end =
        common::sockets::nodelay_of(prosody.pid().expect("prosody is running"), |local, _| {
            local == port
        });
    let podium_end =
        common::sockets::nodelay_of(podium.pid().expect("podium is running"), |_, remote| {
            remote == port
        });
    assert_eq!(prosody_end, vec![true], "TCP_NODELAY on Prosody's end");
    assert_eq!(podium_end, vec![true], "TCP_NODELAY on podium's end");

    let focus = C2s::connect(prosody.c2s_port, "focus", "focus").await;
    let alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    let prosody_end_of = |client: &C2s| {
        common::sockets::nodelay_of(
            prosody.pid().expect("prosody is running"),
            |local, remote| local == prosody.c2s_port && remote == client.local_port,
        )
    };
    assert_eq!(prosody_end_of(&focus), vec![true], "jicofo's connection");
    assert_eq!(
        prosody_end_of(&alice),
        vec![false],
        "a participant's connection"
    );
}

#[tokio::test]
async fn focus_and_health_check_rooms_are_not_governed() {
    let (prosody, podium, _db, mut inspector) = start_with_rules(
        &["alice", "focus", "inspector"],
        "",
        "INSERT INTO rules (media, effect) VALUES ('all', 'allow');",
    )
    .await;

    // jicofo's health check room (only jicofo enters it) and jicofo itself (nick "focus") are never
    // reported or held.
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    let mut focus = C2s::connect(prosody.c2s_port, "focus", "jicofo").await;
    focus.join("__jicofo-health-check-1a2b", "focus").await;
    focus.join(ROOM, "focus").await;

    // Events travel in order on one stream: once alice's join in a real room is decided, any event
    // about the focus or the health check room would have reached podium before it.
    alice.join(ROOM, "alice").await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen")]),
    )
    .await;
    assert!(
        inspect(&mut inspector, "__jicofo-health-check-1a2b")
            .await
            .is_empty()
    );
    let lines = podium.lines();
    assert!(
        !lines.iter().any(|l| l.contains("\"occupant\":\"focus\"")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("__jicofo-health-check")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn nick_change_moves_the_occupant_and_leaves_nothing_behind() {
    let (prosody, podium, _db, mut inspector) =
        start_with_rules(&["alice", "bob", "inspector"], "", "INSERT INTO rules (media, effect) VALUES ('audio', 'allow');
         INSERT INTO rules (who, who_value, media, effect) VALUES ('jid', 'alice@*', 'video', 'allow');").await;
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    let mut bob = C2s::connect(prosody.c2s_port, "bob", "web").await;
    bob.join(ROOM, "bob").await;
    alice.join(ROOM, "alice").await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video"), ("bob", "audio")]),
    )
    .await;

    let mark = podium.mark();
    alice.join(ROOM, "ally").await; // a presence to a new nick in the same room: a nick change
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("ally", "audio,video"), ("bob", "audio")]),
    )
    .await;
    let lines = podium.lines()[mark..].to_vec();
    let changed_old_nick = lines
        .iter()
        .any(|l| l.contains("\"occupant\":\"alice\"") && l.contains("\"event\":\"changed\""));
    assert!(
        !changed_old_nick,
        "the old nick must be seen leaving, not changing: {lines:?}"
    );
    podium
        .wait_for_after(mark, &["occupant left", "\"occupant\":\"alice\""])
        .await;
}

#[tokio::test]
async fn token_claims_email_and_domain_decide_and_nicks_never_do() {
    let (prosody, podium, db, mut inspector) = start_with_rules(
        &["token-sales-ann", "token-sam", "dave", "inspector"],
        "",
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
           (1, '*', 'email',  '*@EXAMPLE.com',             'audio',  'allow', 0),
           (2, '*', 'claim',  'user.department=sales',     'video',  'allow', 0),
           (3, '*', 'claim',  'features.screen-sharing',   'screen', 'allow', 0),
           (4, '*', 'domain', 'localhost',                 'audio',  'allow', 0)",
    )
    .await;
    // A rule on the nick is refused by the database, and, should it get past that (constraints
    // switched off), by podium when loaded: a nick is the client's choice.
    let nick_rule = "INSERT INTO rules (id, room, who, who_value, media, effect, priority) \
                     VALUES (5, '*', 'nick', 'ann', 'all', 'allow', 99)";
    let refused = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(nick_rule)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("CHECK constraint failed: who is"),
        "{refused:?}"
    );
    sqlite3(
        &db,
        &format!("PRAGMA ignore_check_constraints = ON; {nick_rule}"),
    );
    podium
        .wait_for(&["rule skipped", "\"rule_id\":5", "never key on the nick"])
        .await;
    let mut ann = C2s::connect(prosody.c2s_port, "token-sales-ann", "web").await;
    ann.join(ROOM, "sales-ann").await;
    let mut sam = C2s::connect(prosody.c2s_port, "token-sam", "web").await;
    sam.join(ROOM, "sam").await;
    let mut dave = C2s::connect(prosody.c2s_port, "dave", "web").await;
    // dave takes the nick the refused rule names: it gains him nothing.
    dave.join(ROOM, "ann").await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[
            ("sales-ann", "audio,video,screen"),
            ("sam", "audio"),
            ("ann", "audio"),
        ]),
    )
    .await;
}

#[tokio::test]
async fn a_rule_in_dry_run_is_audited_and_leaves_the_module_untouched() {
    let (prosody, podium, db, mut inspector) = start_with_rules(
        &["alice", "inspector"],
        "",
        "INSERT INTO rules (id, room, who, media, effect) VALUES (1, '*', 'everyone', 'all', 'allow')",
    )
    .await;
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    alice.join(ROOM, "alice").await;
    let everything = decided(&[("alice", "audio,video,screen")]);
    wait_held(&mut inspector, &podium, ROOM, &everything).await;

    // An admin tries a stricter rule in dry-run first.
    edit_rules(
        &podium,
        &db,
        "INSERT INTO rules (id, room, who, media, effect, priority, dry_run) \
         VALUES (2, '*', 'everyone', 'video,screen', 'deny', 10, 1)",
    )
    .await;
    wait_audit(
        &podium,
        &db,
        "SELECT nick, previous, granted, rule_ids, cause FROM decisions WHERE dry_run = 1",
        "alice|audio,video,screen|audio|1,2|rules\n",
    )
    .await;
    assert_eq!(inspect(&mut inspector, ROOM).await, everything);
    podium
        .wait_for(&["dry run", "\"would_revoke\":\"video,screen\""])
        .await;

    // Taking it out of dry-run enforces it.
    edit_rules(&podium, &db, "UPDATE rules SET dry_run = 0 WHERE id = 2").await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio")]),
    )
    .await;
}

#[tokio::test]
async fn a_rule_window_opens_on_time_without_any_other_event() {
    let (prosody, podium, db, mut inspector) = start_with_rules(
        &["alice", "inspector"],
        "",
        "INSERT INTO rules (id, room, who, media, effect) VALUES (1, '*', 'everyone', 'audio', 'allow')",
    )
    .await;
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    alice.join(ROOM, "alice").await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio")]),
    )
    .await;

    // Cameras from a moment from now until a moment later.
    let opens = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(1500);
    let closes = opens + jiff::SignedDuration::from_millis(1500);
    edit_rules(
        &podium,
        &db,
        &format!(
            "INSERT INTO rules (id, room, who, media, effect, not_before, not_after) \
             VALUES (2, '*', 'everyone', 'video', 'allow', '{opens}', '{closes}')"
        ),
    )
    .await;
    assert_eq!(
        inspect(&mut inspector, ROOM).await,
        decided(&[("alice", "audio")])
    );
    let mark = podium.mark();
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video")]),
    )
    .await;
    let opened_late = jiff::Timestamp::now().duration_since(opens);
    podium
        .wait_for_after(mark, &["re-decided at a rule window edge"])
        .await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio")]),
    )
    .await;
    let closed_late = jiff::Timestamp::now().duration_since(closes);
    println!(
        "window opened after {opened_late:?}, closed after {closed_late:?} (held by the module)"
    );
    assert!(
        opened_late < jiff::SignedDuration::from_millis(1000),
        "{opened_late:?}"
    );
    assert!(
        closed_late < jiff::SignedDuration::from_millis(1000),
        "{closed_late:?}"
    );
}

#[tokio::test]
async fn audit_records_older_than_the_retention_are_pruned() {
    let prosody = Prosody::start(&["inspector"]);
    let db = prosody.data_dir().join("rules/podium.db");
    // Create the tables with the CLI, then put an old and a recent record in, as history would.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .args(["rules", "check"])
        .env("PODIUM_XMPP__SECRET", "s")
        .env("PODIUM_DATABASE__PATH", &db)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let recent = jiff::Timestamp::now().to_string();
    sqlite3(
        &db,
        &format!(
            "INSERT INTO decisions (at, room, nick, real_jid, previous, granted, rule_ids, reasons, cause) VALUES
               ('2020-01-01T00:00:00Z', 'r', 'old', 'j', 'none', 'audio', '', '', 'joined'),
               ('{recent}', 'r', 'new', 'j', 'none', 'audio', '', '', 'joined')"
        ),
    );
    let config = common::podium::write_config_with(
        &prosody,
        "",
        &format!(
            "[database]\npath = \"{}\"\naudit_retention_days = 30",
            db.display()
        ),
    );
    let podium = Podium::start(&config);
    podium
        .wait_for(&["audit records pruned", "\"deleted\":1"])
        .await;
    assert_eq!(sqlite3(&db, "SELECT nick FROM decisions"), "new\n");
}

#[tokio::test]
async fn breakout_rooms_follow_their_main_room_unless_a_rule_names_them() {
    let (prosody, mut podium, db, mut inspector) = start_with_rules(
        &["mod", "alice", "bob", "inspector"],
        &format!("breakout_muc = \"{BREAKOUT_MUC}\""),
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
           (1, 'lecture', 'everyone', NULL,        'audio', 'allow', 0),
           (2, 'lecture', 'role',     'moderator', 'all',   'allow', 10)",
    )
    .await;
    let mut moderator = C2s::connect(prosody.c2s_port, "mod", "web").await;
    moderator.join("lecture", "mod").await;
    let breakout = create_breakout(&mut moderator, "lecture", "b1").await;
    // The stand-in names it b1; jitsi-meet's module (TEST_JITSI_PLUGINS) by a random UUID.
    let (node, host) = breakout.split_once('@').expect("a room JID");
    assert_eq!(host, BREAKOUT_MUC);
    let rule_name = format!("lecture/{node}");

    // In the breakout room, alice gets what she would get in the lecture; bob stays in the lecture.
    let mut alice = C2s::connect(prosody.c2s_port, "alice", "web").await;
    let mut bob = C2s::connect(prosody.c2s_port, "bob", "web").await;
    alice.join(&breakout, "alice").await;
    bob.join("lecture", "bob").await;
    wait_held(
        &mut inspector,
        &podium,
        &breakout,
        &decided(&[("alice", "audio")]),
    )
    .await;
    wait_held(
        &mut inspector,
        &podium,
        "lecture",
        &decided(&[("mod", "audio,video,screen"), ("bob", "audio")]),
    )
    .await;
    wait_audit(
        &podium,
        &db,
        &format!("SELECT room_name, permissions FROM occupants WHERE room = '{breakout}'"),
        &format!("{rule_name}|audio\n"),
    )
    .await;

    // A rule naming the lecture's breakout rooms takes over there, and only there.
    edit_rules(
        &podium,
        &db,
        "INSERT INTO rules (id, room, who, media, effect) VALUES (3, 'lecture/*', 'everyone', 'audio,video', 'allow')",
    )
    .await;
    wait_held(
        &mut inspector,
        &podium,
        &breakout,
        &decided(&[("alice", "audio,video")]),
    )
    .await;
    assert_eq!(
        inspect(&mut inspector, "lecture").await,
        decided(&[("mod", "audio,video,screen"), ("bob", "audio")])
    );
    wait_audit(
        &podium,
        &db,
        &format!("SELECT nick, granted, rule_ids, cause FROM decisions WHERE room = '{breakout}' ORDER BY id"),
        "alice|audio|1|joined\nalice|audio,video|3|rules\n",
    )
    .await;

    // explain finds her by the breakout room's rule name and names the rule that decided.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .arg("--config")
        .arg(&podium.config)
        .args(["explain", &rule_name, "alice"])
        .output()
        .expect("podium runs");
    let explained = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{explained}");
    assert!(
        explained.contains(&format!("{breakout}/alice")),
        "{explained}"
    );
    assert!(explained.contains("rule 3"), "{explained}");

    // A restarted podium reads both MUCs again and agrees with the module.
    podium.kill9();
    let podium = Podium::start(&podium.config);
    let resync = podium.wait_for(&["resync complete"]).await;
    assert!(resync.contains("\"occupants\":3"), "{resync}");
    assert!(resync.contains("\"changes\":0"), "{resync}");

    // Leaving the breakout room leaves nothing behind in the module.
    alice.leave(&breakout, "alice").await;
    wait_held(&mut inspector, &podium, &breakout, &decided(&[])).await;
}

/// Waits for the first stanza on `client`'s connection that `wanted` accepts.
async fn next_matching(client: &mut C2s, what: &str, wanted: impl Fn(&Element) -> bool) -> Element {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let element = tokio::time::timeout_at(deadline, client.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what}"))
            .expect("connection open");
        if wanted(&element) {
            return element;
        }
    }
}

#[tokio::test]
async fn a_moderators_av_moderation_approval_becomes_a_grant_and_its_withdrawal_ends_it() {
    let Class {
        prosody: _prosody,
        podium,
        db,
        mut inspector,
        teacher,
        mut ada,
    } = class(CLASS_RULES, "class").await;
    let ada_jid = format!("class@{MUC}/ada");
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;

    // Ada approving herself is refused by the component, and the module reports nothing.
    ada.send(av_moderation("jidToWhitelist", &ada_jid, "audio"));
    next_matching(&mut ada, "refusal of a self-approval", |e| {
        e.name() == "message" && e.attr("type") == Some("error")
    })
    .await;

    // The teacher's "Ask to unmute": the component tells Ada, podium writes the grant, the module
    // holds her audio.
    let approved_at = Instant::now();
    teacher.send(av_moderation("jidToWhitelist", &ada_jid, "audio"));
    next_matching(&mut ada, "approval notice", |e| {
        e.get_child("json-message", "http://jitsi.org/jitmeet")
            .is_some_and(|j| j.text().contains("\"approved\":true"))
    })
    .await;
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "audio")]),
    )
    .await;
    eprintln!(
        "approval -> module holds the grant: {} ms",
        approved_at.elapsed().as_millis()
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT room, who, who_value, media, granted_by, source FROM grants"
        ),
        "class|jid|ada@localhost|audio|teacher@localhost|av_moderation\n",
        "exactly one grant, from the teacher (the self-approval left none)"
    );
    wait_audit(
        &podium,
        &db,
        "SELECT granted, cause FROM decisions WHERE nick = 'ada' ORDER BY id DESC LIMIT 1",
        "audio|rules\n",
    )
    .await;
    let reasons = sqlite3(
        &db,
        "SELECT reasons FROM decisions_full WHERE nick = 'ada' ORDER BY id DESC LIMIT 1",
    );
    assert!(reasons.contains("grant 1"), "{reasons}");

    // Withdrawn: the row goes, and so does her audio.
    teacher.send(av_moderation("jidToBlacklist", &ada_jid, "audio"));
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM grants"), "0\n");
}

/// The A/V moderation json-message in `element` (from the component's address), if any.
fn av_moderation_body(element: &Element) -> Option<serde_json::Value> {
    let json = element.get_child("json-message", "http://jitsi.org/jitmeet")?;
    assert_eq!(element.attr("from"), Some(AV_MODERATION), "{element:?}");
    let body: serde_json::Value = serde_json::from_str(&json.text()).expect("json");
    (body["type"] == "av_moderation").then_some(body)
}

/// `<av_moderation enable='…' mediaType='…'/>`, lib-jitsi-meet's AVModeration.enable.
fn av_moderation_switch(enable: &str, media: &str) -> Element {
    el("message", CLIENT)
        .attr(attr("to"), AV_MODERATION)
        .append(
            el("av_moderation", CLIENT)
                .attr(attr("enable"), enable)
                .attr(attr("mediaType"), media)
                .build(),
        )
        .build()
}

/// A moderator turning Jitsi's A/V moderation off for a kind makes jitsi-meet's component tell every
/// occupant `enabled: false`, and a stock client then lets its user unmute that kind freely. Someone
/// podium still refuses it is told again that moderation is on for them, so the client does not show
/// a microphone nobody hears as live.
#[tokio::test]
async fn turning_av_moderation_off_does_not_hide_what_podium_refuses() {
    let Class {
        prosody: _prosody,
        podium,
        db: _db,
        mut inspector,
        teacher,
        mut ada,
    } = class(CLASS_RULES, "class").await;
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;
    // podium's own message has no actor; the component's names the moderator.
    next_matching(&mut ada, "audio shown as moderated by podium", |e| {
        av_moderation_body(e).is_some_and(|body| {
            body["mediaType"] == "audio" && body["enabled"] == true && body["actor"].is_null()
        })
    })
    .await;

    // The teacher turns A/V moderation of audio on, then off: the component tells everyone.
    teacher.send(av_moderation_switch("true", "audio"));
    next_matching(&mut ada, "the component's 'moderation on'", |e| {
        av_moderation_body(e).is_some_and(|body| {
            body["mediaType"] == "audio" && body["enabled"] == true && !body["actor"].is_null()
        })
    })
    .await;
    teacher.send(av_moderation_switch("false", "audio"));
    next_matching(&mut ada, "the component's 'moderation off'", |e| {
        av_moderation_body(e)
            .is_some_and(|body| body["mediaType"] == "audio" && body["enabled"] == false)
    })
    .await;
    let after = next_matching(&mut ada, "audio shown as moderated again", |e| {
        av_moderation_body(e).is_some_and(|body| body["mediaType"] == "audio")
    })
    .await;
    let body = av_moderation_body(&after).unwrap();
    assert_eq!(body["enabled"], true, "{body}");
    assert!(body["actor"].is_null(), "{body}");
    assert_eq!(body["room"], format!("class@{MUC}"), "{body}");
    // Nothing was granted by it.
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;
}

/// `<av_moderation enable='false'/>` when A/V moderation is already off: jitsi-meet's component
/// answers nothing ("out of sync"), so the occupants were told nothing new and the module has nothing
/// to correct. A moderator repeating it must not make the module send a message to every occupant it
/// refuses for each stanza (stanzas x room size, and a timer per stanza).
#[tokio::test]
async fn repeating_av_moderation_off_makes_the_module_send_nothing_more() {
    let Class {
        prosody: _prosody,
        podium,
        db: _db,
        mut inspector,
        mut teacher,
        mut ada,
    } = class(CLASS_RULES, "class").await;
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;
    next_matching(&mut ada, "audio shown as moderated", |e| {
        av_moderation_body(e)
            .is_some_and(|body| body["mediaType"] == "audio" && body["enabled"] == true)
    })
    .await;
    let command = |enable: &str, media: &str| {
        el("message", CLIENT)
            .attr(attr("to"), AV_MODERATION)
            .append(
                el("av_moderation", CLIENT)
                    .attr(attr("enable"), enable)
                    .attr(attr("mediaType"), media)
                    .build(),
            )
            .build()
    };
    // The component's messages name the moderator (`actor`); the module's do not.
    let from_module =
        |e: &Element| av_moderation_body(e).filter(|body| body.get("actor").is_none());
    let ping = || el("ping", "urn:xmpp:ping").build();

    // Turned on, then off: the component tells ada both, and the module corrects the "off".
    teacher.send(command("true", "audio"));
    teacher.send(command("false", "audio"));
    next_matching(
        &mut ada,
        "the module's correction of the first 'off'",
        |e| {
            from_module(e)
                .is_some_and(|body| body["mediaType"] == "audio" && body["enabled"] == true)
        },
    )
    .await;

    // Repeated while off: the component says nothing.
    const REPEATS: usize = 20;
    for _ in 0..REPEATS {
        teacher.send(command("false", "audio"));
    }
    // Handled (and any timer of theirs set) before the teacher's ping is answered.
    teacher.iq("get", "localhost", ping()).await;
    // A last on/off, which the module corrects once, on a timer set after any of the repeats'.
    teacher.send(command("true", "audio"));
    teacher.send(command("false", "audio"));
    let mut told = 0;
    let mut component_off = false;
    loop {
        let element = next_matching(&mut ada, "the module's correction of the last 'off'", |e| {
            av_moderation_body(e).is_some()
        })
        .await;
        let body = av_moderation_body(&element).unwrap();
        if body.get("actor").is_some() {
            component_off |= body["enabled"] == false;
            continue;
        }
        told += 1;
        if component_off && body["mediaType"] == "audio" && body["enabled"] == true {
            break;
        }
    }
    assert_eq!(
        told, 1,
        "ada was sent {told} A/V moderation messages by the module for {REPEATS} repeated 'off' and one real one"
    );
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;
}

/// On a multi-tenant Jitsi the client names the approved occupant by the room's virtual JID
/// (`class@conference.acme.localhost/ada`); the MUC holds the room as `[acme]class`. The approval
/// still becomes a grant for that room.
#[tokio::test]
async fn an_approval_in_a_tenant_room_names_the_room_by_its_virtual_jid() {
    let room = "[acme]class";
    let Class {
        prosody: _prosody,
        podium,
        db,
        mut inspector,
        teacher,
        ada: _ada,
    } = class(
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
           (1, '[acme]*', 'role', 'participant', 'audio', 'request', 10),
           (2, '[acme]*', 'role', 'moderator',   'all',   'allow',   10)",
        room,
    )
    .await;
    wait_held(
        &mut inspector,
        &podium,
        room,
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;
    teacher.send(av_moderation(
        "jidToWhitelist",
        "class@conference.acme.localhost/ada",
        "audio",
    ));
    wait_held(
        &mut inspector,
        &podium,
        room,
        &decided(&[("teacher", "audio,video,screen"), ("ada", "audio")]),
    )
    .await;
    assert_eq!(
        sqlite3(&db, "SELECT room, who_value, media FROM grants"),
        "[acme]class|ada@localhost|audio\n"
    );
}
