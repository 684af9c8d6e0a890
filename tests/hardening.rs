//! podium against a hostile client (issue 11, points 9, 10 and 11), end to end on a real Prosody with
//! mod_podium and the real podium binary.

mod common;

use common::c2s::{C2s, attr, el};
use common::conference::{CLASS_RULES, Class, av_moderation, class, start_with_rules};
use common::podium::{Podium, write_config};
use common::prosody::{GUEST_DOMAIN, MUC, Prosody};
use common::raw::RawClient;
use common::{decided, edit_rules, inspect, sqlite3, wait_audit, wait_held};

const ROOM: &str = "hardening";

/// The setup of `start_with_rules` on a Prosody the test started itself (e.g. with the guest domain).
async fn start_on(prosody: Prosody, rules: &str) -> (Prosody, Podium, std::path::PathBuf, C2s) {
    let db = prosody.data_dir().join("rules/podium.db");
    let podium = Podium::start(&write_config(&prosody, &db, ""));
    podium.wait_for(&["resync complete"]).await;
    edit_rules(&podium, &db, rules).await;
    let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
    (prosody, podium, db, inspector)
}

fn join_presence(nick: &str, extra: &str) -> String {
    format!(
        "<presence to='{ROOM}@{MUC}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/>\
         <SourceInfo>{{\"{nick}-a0\":{{\"muted\":false}}}}</SourceInfo>{extra}</presence>"
    )
}

/// Point 9: a presence holding one element nested 30,000 deep (210 KB, under Prosody's c2s stanza
/// limit) reaches the module through the room. podium must neither crash nor lose its link: the
/// attacker and a newcomer after it are decided, and podium ends cleanly when told to.
#[tokio::test]
async fn a_presence_nested_thirty_thousand_deep_does_not_stop_podium() {
    let (prosody, mut podium, _db, mut inspector) = start_with_rules(
        &["alice", "mallory", "bob", "inspector"],
        "",
        "INSERT INTO rules (id, media, effect) VALUES (1, 'audio', 'allow')",
    )
    .await;
    let mut alice = RawClient::connect(prosody.c2s_port, "alice").await;
    alice.send(&join_presence("alice", "")).await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio")]),
    )
    .await;

    let depth = 30_000;
    let deep = format!(
        "<deep xmlns='urn:example:deep'>{}{}</deep>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    assert!(deep.len() > 200_000 && deep.len() < 256 * 1024);
    let mut mallory = RawClient::connect(prosody.c2s_port, "mallory").await;
    mallory.send(&join_presence("mallory", &deep)).await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio"), ("mallory", "audio")]),
    )
    .await;
    // And again as a presence update, which the room broadcasts too.
    mallory.send(&join_presence("mallory", &deep)).await;

    // podium is still there and still decides: a newcomer after the attack gets podium's decision,
    // not the module's default.
    let mut bob = RawClient::connect(prosody.c2s_port, "bob").await;
    bob.send(&join_presence("bob", "")).await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio"), ("bob", "audio"), ("mallory", "audio")]),
    )
    .await;
    let log = podium.lines().join("\n");
    assert!(!log.contains("link lost"), "{log}");
    assert!(podium.terminate().success(), "podium did not end cleanly");
}

/// Point 11: after podium restarts, every occupant is first seen at once; the queue then follows the
/// module's join order, never the nicks (chosen here so that alphabetical order is the reverse).
#[tokio::test]
async fn after_a_restart_the_queue_follows_join_order_not_nicks() {
    let (prosody, mut podium, db, mut inspector) = start_with_rules(
        &["zed", "mia", "aaa", "inspector"],
        "",
        "INSERT INTO rules (id, media, effect, cap) VALUES (1, 'video', 'allow', 1)",
    )
    .await;
    let mut clients = Vec::new();
    for nick in ["zed", "mia", "aaa"] {
        let mut client = C2s::connect(prosody.c2s_port, nick, "web").await;
        client.join(ROOM, nick).await;
        clients.push(client);
    }
    let queue = "SELECT media, position, nick FROM queue ORDER BY media, position";
    let expected = decided(&[("aaa", "none"), ("mia", "none"), ("zed", "video")]);
    wait_held(&mut inspector, &podium, ROOM, &expected).await;
    wait_audit(&podium, &db, queue, "video|1|mia\nvideo|2|aaa\n").await;

    podium.kill9();
    // The rows the next podium writes are the ones to read.
    sqlite3(&db, "DELETE FROM queue");
    let podium = Podium::start(&podium.config);
    let resync = podium.wait_for(&["resync complete"]).await;
    assert!(resync.contains("\"occupants\":3"), "{resync}");
    wait_audit(&podium, &db, queue, "video|1|mia\nvideo|2|aaa\n").await;
    wait_held(&mut inspector, &podium, ROOM, &expected).await;
}

/// Point 10: a moderator's approval ends with the meeting. The room empties (Jitsi destroys it), a new
/// meeting starts in a room of the same name: the approved participant is back under the request
/// rule, although the approval's 240 minutes have not run out.
#[tokio::test]
async fn an_approval_ends_with_its_meeting() {
    let Class {
        prosody: _prosody,
        podium,
        db,
        mut inspector,
        mut teacher,
        mut ada,
    } = class(CLASS_RULES, "class").await;
    let ada_jid = format!("class@{MUC}/ada");
    teacher.send(av_moderation("jidToWhitelist", &ada_jid, "audio"));
    let approved = decided(&[("teacher", "audio,video,screen"), ("ada", "audio")]);
    wait_held(&mut inspector, &podium, "class", &approved).await;
    let meeting = sqlite3(
        &db,
        "SELECT meeting FROM grants WHERE source = 'av_moderation'",
    );
    assert!(
        meeting.trim().len() >= 8,
        "the approval names its meeting: {meeting:?}"
    );

    // The meeting ends: everyone leaves and the room is destroyed.
    ada.leave("class", "ada").await;
    teacher.leave("class", "teacher").await;
    // A new meeting in a room of the same name.
    teacher.join("class", "teacher").await;
    ada.join("class", "ada").await;
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("teacher", "audio,video,screen"), ("ada", "none")]),
    )
    .await;
    assert_eq!(
        sqlite3(&db, "SELECT count(*) FROM grants WHERE meeting IS NOT NULL"),
        "1\n",
        "the row stays until it expires (an admin may still extend it), but counts for no other meeting"
    );
}

/// Point 10: an approval from a moderator whose session is anonymous grants nothing. Two anonymous
/// sessions may be one person, who would approve themself; podium cannot tell, so mod_podium marks
/// such an approval `by-anonymous` and podium ignores it. The same approval from a moderator with an
/// account, in the same room, does grant: the refusal is about the session, not the approval.
#[tokio::test]
async fn an_approval_from_an_anonymous_moderator_grants_nothing() {
    let (prosody, podium, db, mut inspector) = start_on(
        Prosody::start_with_guests(&["teacher", "ada", "inspector"], ""),
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
           (1, 'class', 'role', 'participant', 'video', 'request', 10),
           (2, 'class', 'role', 'moderator',   'all',   'allow',   10)",
    )
    .await;
    // A guest on Jitsi's anonymous domain creates the room, so it is the owner and a moderator.
    let mut guest = C2s::connect_anonymous(prosody.c2s_port, GUEST_DOMAIN, "web").await;
    assert!(
        guest.jid.ends_with(&format!("@{GUEST_DOMAIN}/web")),
        "{}",
        guest.jid
    );
    guest.join("class", "guest").await;
    let mut teacher = C2s::connect(prosody.c2s_port, "teacher", "web").await;
    let mut ada = C2s::connect(prosody.c2s_port, "ada", "web").await;
    teacher.join("class", "teacher").await;
    ada.join("class", "ada").await;
    // The owner makes the teacher a moderator too.
    let answer = guest
        .iq(
            "set",
            &format!("class@{MUC}"),
            el("query", "http://jabber.org/protocol/muc#admin")
                .append(
                    el("item", "http://jabber.org/protocol/muc#admin")
                        .attr(attr("nick"), "teacher")
                        .attr(attr("role"), "moderator"),
                )
                .build(),
        )
        .await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
    let all = "audio,video,screen";
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("guest", all), ("teacher", all), ("ada", "none")]),
    )
    .await;

    let ada_jid = format!("class@{MUC}/ada");
    let mark = podium.mark();
    guest.send(av_moderation("jidToWhitelist", &ada_jid, "video"));
    podium
        .wait_for_after(
            mark,
            &[
                "approval from an anonymous moderator session; ignored",
                "\"occupant\":\"ada\"",
            ],
        )
        .await;
    assert_eq!(sqlite3(&db, "SELECT count(*) FROM grants"), "0\n");
    assert_eq!(
        inspect(&mut inspector, "class").await,
        decided(&[("guest", all), ("teacher", all), ("ada", "none")]),
        "the anonymous approval lifted nothing"
    );

    // The same approval from the teacher's account session grants.
    teacher.send(av_moderation("jidToWhitelist", &ada_jid, "video"));
    wait_held(
        &mut inspector,
        &podium,
        "class",
        &decided(&[("guest", all), ("teacher", all), ("ada", "video")]),
    )
    .await;
    assert_eq!(
        sqlite3(&db, "SELECT who_value, media, granted_by FROM grants"),
        "ada@localhost|video|teacher@localhost\n"
    );
}
