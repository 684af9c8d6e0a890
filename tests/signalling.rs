//! The signalling path under a hostile or unlucky client (issue 11, points 2, 3, 6 and 7): jicofo's
//! answers matched through the real MUC id rewrite, refused requests rolled back, refused revokes
//! carried out some other way, Jingle sessions that belong to one room, and health-check rooms only
//! jicofo enters. A real Prosody with mod_podium, the real podium binary, and the stand-ins for
//! jicofo, the bridge and lib-jitsi-meet (tests/common). Every assertion is on what the focus, the
//! bridge or the other participants received.

mod common;

use std::time::Duration;

use common::c2s::{C2s, CLIENT, attr, el};
use common::conference::{
    Conference, EVERYTHING, create_breakout, jingle_from_since, learns, relayed, sent, ssrcs,
};
use common::focus::FocusOptions;
use common::jingle::{JINGLE, Media, Source, SourceSet, Style};
use common::participant::{Participant, Shape, Track};
use common::peer::{error_condition, is_result};
use common::prosody::{BREAKOUT_MUC, CONFERENCE_OPTIONS, MUC, Prosody};
use minidom::Element;

const USERS: &[&str] = &["focus", "jvb", "mod", "alice", "bob", "inspector"];

/// Prosody, podium (which knows the breakout MUC), the bridge and the focus, under `rules`.
async fn start(rules: &str) -> Conference {
    let breakout = format!("breakout_muc = \"{BREAKOUT_MUC}\"");
    Conference::start_with(
        USERS,
        CONFERENCE_OPTIONS,
        FocusOptions::default(),
        &breakout,
        rules,
    )
    .await
}

/// alice and bob in `room`, everything allowed, bob sharing his screen with jicofo holding all he sends.
async fn bob_sharing_his_screen(room: &str) -> (Conference, Participant, Participant, SourceSet) {
    let mut conference = start(EVERYTHING).await;
    let (alice, bob) = conference.two(room, "audio,video,screen").await;
    let screenshare = bob.track(Track::Screenshare);
    let answer = bob.add_screenshare().await;
    assert!(is_result(&answer), "{answer:?}");
    conference
        .focus_holds("bob", &sent(&bob).union(&screenshare))
        .await;
    (conference, alice, bob, screenshare)
}

fn error_text(answer: &Element) -> String {
    answer
        .get_child("error", CLIENT)
        .and_then(|error| error.children().find(|child| child.name() == "text"))
        .map(Element::text)
        .unwrap_or_default()
}

/// Point 2 (a): jicofo's answers come back with the id Prosody's MUC rewrote; the module must
/// recognise them, or from the 16th request on it refuses every source change as "in flight".
#[tokio::test]
async fn seventeen_source_add_remove_pairs_in_one_session_all_reach_the_focus() {
    let room = "talk";
    let mut conference = start(EVERYTHING).await;
    let (alice, bob) = conference.two(room, "audio,video,screen").await;
    let sid = conference.focus.sid("bob").expect("bob has a session");
    let screenshare = bob.track(Track::Screenshare);
    let mark = conference.focus.jingle_received().len();

    for pair in 1..=17 {
        for action in ["source-add", "source-remove"] {
            let answer = bob
                .send_jingle(action, &sid, screenshare.to_contents(Style::Client, None))
                .await;
            assert!(is_result(&answer), "pair {pair}, {action}: {answer:?}");
        }
    }

    let received = jingle_from_since(&conference.focus, mark, room, "bob");
    assert_eq!(received.len(), 34, "every request reached the focus");
    for (request, sources) in &received {
        assert!(is_result(&request.answer), "{request:?}");
        assert_eq!(ssrcs(sources), ssrcs(&screenshare));
    }
    // One more add: alice learns the screenshare, so the session still works end to end.
    let answer = bob
        .send_jingle(
            "source-add",
            &sid,
            screenshare.to_contents(Style::Client, None),
        )
        .await;
    assert!(is_result(&answer), "{answer:?}");
    learns(&alice, "bob", relayed(&sent(&bob).union(&screenshare))).await;
}

/// Point 2 (b): a source-add jicofo refuses is rolled back, so the next revoke's source-remove names
/// only what jicofo holds (jicofo refuses a whole removal naming one SSRC it lacks).
#[tokio::test]
async fn a_refused_source_add_is_rolled_back_and_the_next_revoke_removes_the_camera() {
    let room = "talk";
    let mut conference = start(EVERYTHING).await;
    let (alice, bob) = conference.two(room, "audio,video,screen").await;
    let sid = conference.focus.sid("bob").expect("bob has a session");
    let bob_audio = bob.track(Track::Audio);
    let bob_camera = bob.track(Track::Camera);
    learns(&alice, "bob", relayed(&sent(&bob))).await;

    // A camera restarted with a new SSRC under an msid alice already uses: jicofo refuses it
    // (ValidatingConferenceSourceMap.tryToAdd, MsidConflictException); the module cannot know.
    let alice_msid = alice.track(Track::Camera).sources[0]
        .msid
        .clone()
        .expect("alice's camera has an msid");
    let clash = SourceSet::new(
        vec![
            Source::new(Media::Video, 4_200_001)
                .named("bob-v0")
                .with_video_type("camera")
                .with_msid(&alice_msid),
        ],
        vec![],
    );
    let mark = conference.focus.jingle_received().len();
    let answer = bob
        .send_jingle("source-add", &sid, clash.to_contents(Style::Client, None))
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    assert!(
        error_text(&answer).contains("MSID"),
        "the focus refused it, not the module: {answer:?}"
    );
    assert_eq!(
        jingle_from_since(&conference.focus, mark, room, "bob").len(),
        1
    );

    // Revoking bob's video: the focus gets a source-remove it accepts, and the camera is gone.
    conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'jid', 'bob@*', 'video', 'deny', 10)")
        .await;
    conference.focus_holds("bob", &bob_audio).await;
    learns(&alice, "bob", relayed(&bob_audio)).await;
    let removes: Vec<_> = jingle_from_since(&conference.focus, mark, room, "bob")
        .into_iter()
        .filter(|(received, _)| received.action == "source-remove")
        .collect();
    assert_eq!(removes.len(), 1, "{removes:?}");
    assert!(is_result(&removes[0].0.answer), "{removes:?}");
    assert_eq!(ssrcs(&removes[0].1), ssrcs(&bob_camera));
    conference
        .bridge
        .wait_until("the bridge no longer has bob's camera", |view| {
            view.endpoint(room, "bob")
                .is_some_and(|endpoint| endpoint.video_ssrcs.is_empty())
        })
        .await;
}

/// Point 3: jicofo refuses the module's source-remove. The module asks again one SSRC at a time and,
/// as jicofo keeps the screenshare, stops it at the bridge (all of bob's video: the bridge cannot
/// mute one video source), retrying the force-mute the bridge refused once.
#[tokio::test]
async fn a_revoke_jicofo_refuses_is_retried_and_what_jicofo_keeps_is_muted_at_the_bridge() {
    let room = "talk";
    let (conference, alice, bob, screenshare) = bob_sharing_his_screen(room).await;
    conference
        .bridge_force_mute(room, "bob", false, false)
        .await;
    let sid = conference.focus.sid("bob").expect("bob has a session");

    conference
        .focus
        .refuse("source-remove", Some("bad-request"));
    conference.bridge.refuse_force_mutes(1);
    let mark = conference.focus.jingle_received().len();
    conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'jid', 'bob@*', 'screen', 'deny', 10)")
        .await;

    // The camera is allowed, so only the fallback mutes bob's video at the bridge.
    conference.bridge_force_mute(room, "bob", false, true).await;
    let removes: Vec<_> = jingle_from_since(&conference.focus, mark, room, "bob")
        .into_iter()
        .filter(|(received, _)| received.action == "source-remove")
        .collect();
    assert_eq!(
        removes.len(),
        1 + screenshare.sources.len(),
        "the whole removal, then one per SSRC: {removes:?}"
    );
    assert_eq!(ssrcs(&removes[0].1), ssrcs(&screenshare));
    for (_, sources) in &removes[1..] {
        assert_eq!(sources.sources.len(), 1, "{sources:?}");
    }
    let refused_mutes = conference
        .bridge
        .requests()
        .into_iter()
        .filter(|request| !request.accepted && !request.refused)
        .count();
    assert_eq!(refused_mutes, 1, "the bridge refused one force-mute");
    // jicofo still has the screenshare (it refused), and bob's session stands.
    conference
        .focus_holds("bob", &sent(&bob).union(&screenshare))
        .await;
    assert_eq!(conference.focus.sid("bob"), Some(sid));
    learns(&alice, "bob", relayed(&sent(&bob).union(&screenshare))).await;
}

/// Point 3: neither jicofo (source-remove refused) nor the bridge (force-mute refused, retried with
/// backoff) stops the revoked screenshare: the module ends bob's session in his name, jicofo invites
/// him again, and the new session carries no screenshare to the focus, the bridge or alice.
#[tokio::test]
async fn a_revoke_neither_jicofo_nor_the_bridge_carries_out_ends_the_session() {
    let room = "talk";
    let (conference, alice, bob, screenshare) = bob_sharing_his_screen(room).await;
    let old_sid = conference.focus.sid("bob").expect("bob has a session");

    conference
        .focus
        .refuse("source-remove", Some("bad-request"));
    conference.bridge.refuse_force_mutes(100);
    conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'jid', 'bob@*', 'screen', 'deny', 10)")
        .await;

    conference
        .focus
        .wait_until("the focus invites bob again", |view| {
            view.endpoint("bob")
                .is_some_and(|endpoint| endpoint.sid.as_deref() != Some(old_sid.as_str()))
        })
        .await;
    let terminate = conference
        .focus
        .jingle_received()
        .into_iter()
        .find(|received| received.action == "session-terminate" && received.sid == old_sid)
        .expect("a session-terminate for bob's session");
    assert!(is_result(&terminate.answer), "{terminate:?}");
    // Sent again with backoff before giving up: 1 + 3 tries (a second refusal from jicofo racing
    // the bridge's may start a second, equally bounded, round).
    let refused_mutes = conference
        .bridge
        .requests()
        .into_iter()
        .filter(|request| !request.accepted && !request.refused)
        .count();
    assert!(
        (4..=8).contains(&refused_mutes),
        "{refused_mutes}: {:?}",
        conference.bridge.requests()
    );

    // bob accepts the new session with everything he has; the screenshare stays out.
    conference.focus_holds("bob", &sent(&bob)).await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    conference
        .bridge
        .wait_until("the bridge has no screenshare of bob", |view| {
            view.endpoint(room, "bob").is_some_and(|endpoint| {
                endpoint.video_ssrcs.is_disjoint(&ssrcs(&screenshare))
                    && !endpoint.video_ssrcs.is_empty()
            })
        })
        .await;
}

/// Point 6: bob is in the lecture (no camera there) and alone in one of its breakout rooms (where he
/// may show it; jicofo is there but starts no conference for one participant). A source-add to the
/// breakout room's focus under his lecture sid — jicofo finds sessions by sid alone — or under a sid
/// jicofo never gave him there is refused, and nothing reaches the focus.
#[tokio::test]
async fn a_lecture_session_used_from_a_breakout_room_is_refused() {
    let rules = "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, 'lecture',   'everyone', NULL, 'audio', 'allow', 0),
        (2, 'lecture',   'role', 'moderator', 'all', 'allow', 10),
        (3, 'lecture/*', 'everyone', NULL, 'all',   'allow', 0)";
    let mut conference = start(rules).await;
    // The moderator creates the lecture room (and so owns it) before the focus is asked for it.
    let mut moderator = C2s::connect(conference.prosody.c2s_port, "mod", "web").await;
    moderator.join("lecture", "mod").await;
    let breakout = create_breakout(&mut moderator, "lecture", "b1").await;
    let alice = Participant::join(
        conference.prosody.c2s_port,
        "alice",
        "lecture",
        "alice",
        Shape::Current,
    )
    .await;
    let bob = Participant::join(
        conference.prosody.c2s_port,
        "bob",
        "lecture",
        "bob",
        Shape::Current,
    )
    .await;
    let bob_audio = bob.track(Track::Audio);
    conference.focus_holds("lecture/bob", &bob_audio).await;
    learns(&alice, "bob", relayed(&bob_audio)).await;
    let lecture_sid = conference
        .focus
        .sid("lecture/bob")
        .expect("bob's lecture session");

    conference.focus.enter_lone_room(&breakout).await;
    let mut bob_breakout = C2s::connect(conference.prosody.c2s_port, "bob", "breakout").await;
    bob_breakout.join(&breakout, "bob").await;
    conference
        .wait_held(&breakout, &[("bob", "audio,video,screen")])
        .await;

    let mark = conference.focus.jingle_received().len();
    let camera = SourceSet::new(
        vec![
            Source::new(Media::Video, 4_300_001)
                .named("bob-v0")
                .with_video_type("camera")
                .with_msid("bob-breakout-camera track"),
        ],
        vec![],
    );
    for sid in [lecture_sid.as_str(), "made-up-sid"] {
        let jingle = el("jingle", JINGLE)
            .attr(attr("action"), "source-add")
            .attr(attr("sid"), sid)
            .append_all(camera.to_contents(Style::Client, None))
            .build();
        let answer = bob_breakout
            .iq("set", &format!("{breakout}/focus"), jingle)
            .await;
        assert_eq!(answer.attr("type"), Some("error"), "sid {sid}: {answer:?}");
        assert!(
            matches!(
                error_condition(&answer).as_deref(),
                Some("forbidden") | Some("bad-request")
            ),
            "{answer:?}"
        );
    }
    assert!(
        conference.focus.jingle_received()[mark..].is_empty(),
        "nothing reached the focus: {:?}",
        &conference.focus.jingle_received()[mark..]
    );
    assert_eq!(
        ssrcs(&conference.focus.sources("lecture/bob")),
        ssrcs(&bob_audio)
    );
    learns(&alice, "bob", relayed(&bob_audio)).await;
}

/// Waits for the presence `client` gets from `occupant_jid`; returns it.
async fn presence_from(client: &mut C2s, occupant_jid: &str) -> Element {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let element = tokio::time::timeout_at(deadline, client.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("no presence from {occupant_jid}"))
            .expect("connection open");
        if element.name() == "presence" && element.attr("from") == Some(occupant_jid) {
            return element;
        }
    }
}

/// Point 7: only jicofo enters a room named like its health check; anyone else — even with the nick
/// "focus" — is refused, so no ungoverned conference can be held there.
#[tokio::test]
async fn only_jicofo_enters_a_health_check_room() {
    let prosody = Prosody::start_with(USERS, CONFERENCE_OPTIONS);
    let room = format!("__jicofo-health-check-{}@{MUC}", common::unique());
    for (user, nick) in [("alice", "alice"), ("bob", "focus")] {
        let mut client = C2s::connect(prosody.c2s_port, user, "web").await;
        let occupant_jid = format!("{room}/{nick}");
        client.send(
            el("presence", CLIENT)
                .attr(attr("to"), occupant_jid.as_str())
                .append(el("x", "http://jabber.org/protocol/muc"))
                .build(),
        );
        let presence = presence_from(&mut client, &occupant_jid).await;
        assert_eq!(presence.attr("type"), Some("error"), "{user}: {presence:?}");
        assert_eq!(
            error_condition(&presence).as_deref(),
            Some("not-allowed"),
            "{presence:?}"
        );
    }
    // jicofo itself gets in.
    let mut focus = C2s::connect(prosody.c2s_port, "focus", "jicofo").await;
    focus.join(&room, "focus").await;
}

/// A restart request jicofo rate-limits (a second one within 5 s, `restart-request-rate-limits`):
/// jicofo answers `resource-constraint` "rate-limited" but ends the session all the same and drops
/// its sources (recorded: tests/fixtures/jicofo/session-terminate-restart-again.xml). The module
/// forgets the session as for a `result`, so a later revoke sends nothing on the dead session.
#[tokio::test]
async fn a_rate_limited_restart_request_still_ends_the_session_for_the_module() {
    use common::conformance::bridge_session;
    use common::jingle::FOCUS;
    let room = "talk";
    let mut conference = start(EVERYTHING).await;
    let (alice, bob) = conference.two(room, "audio,video,screen").await;
    let restart = |bob: &Participant| {
        el("jingle", JINGLE)
            .attr(attr("action"), "session-terminate")
            .attr(attr("initiator"), format!("{}/focus", bob.room_jid))
            .attr(attr("sid"), bob.sid().expect("a session"))
            .append(el("reason", JINGLE).append(el("success", JINGLE)))
            .append(
                el("bridge-session", FOCUS)
                    .attr(attr("id"), bridge_session(bob).expect("a bridge session"))
                    .attr(attr("restart"), "true"),
            )
            .build()
    };
    let focus_jid = format!("{room}@{MUC}/focus");
    let answer = bob.iq("set", &focus_jid, restart(&bob)).await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("bob accepted his second session", |view| {
        view.session_initiates == 2 && view.accept_answers.len() == 2
    })
    .await;
    conference.focus_holds("bob", &sent(&bob)).await;
    let second_sid = bob.sid().expect("the second session");

    let answer = bob.iq("set", &focus_jid, restart(&bob)).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("resource-constraint"),
        "{answer:?}"
    );
    learns(&alice, "bob", Default::default()).await;
    let (_, occupants) = common::conference::kept(&mut conference.inspector, room).await;
    let bob_kept = occupants
        .iter()
        .find(|o| o.0 == "bob")
        .expect("bob is kept");
    assert_eq!(
        (bob_kept.1.as_deref(), bob_kept.2.as_str()),
        (None, "0"),
        "the module still counts session {second_sid}: {bob_kept:?}"
    );

    // A revoke now has nothing to take from jicofo.
    let mark = conference.focus.jingle_received().len();
    conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'jid', 'bob@*', 'video', 'deny', 10)")
        .await;
    conference
        .wait_held(
            room,
            &[("alice", "audio,video,screen"), ("bob", "audio,screen")],
        )
        .await;
    let barrier = alice.mute_self("audio", true).await;
    assert!(is_result(&barrier), "{barrier:?}");
    assert!(
        jingle_from_since(&conference.focus, mark, room, "bob").is_empty(),
        "{:?}",
        jingle_from_since(&conference.focus, mark, room, "bob")
    );
}

/// A revoke of sources jicofo no longer has: jicofo refuses the source-remove, then each SSRC asked
/// alone, with "Source does not exist or is not owned by endpoint", a `<text>` its Smack writes
/// outside the stanzas namespace. The module reads it there and stops: nothing is kept, the bridge
/// mutes none of bob's video (his camera is allowed) and his session goes on.
#[tokio::test]
async fn a_revoke_of_sources_jicofo_no_longer_has_mutes_nothing_at_the_bridge() {
    let room = "talk";
    let (mut conference, alice, _bob, screenshare) = bob_sharing_his_screen(room).await;
    let sid = conference.focus.sid("bob").expect("bob has a session");
    conference.focus.forget("bob", &ssrcs(&screenshare));

    let mark = conference.focus.jingle_received().len();
    conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'jid', 'bob@*', 'screen', 'deny', 10)")
        .await;
    // One source-remove of the six SSRCs, then one per SSRC, each refused.
    conference
        .focus
        .wait_until("the focus refused seven source-removes", |view| {
            view.jingle[mark..]
                .iter()
                .filter(|received| received.action == "source-remove")
                .count()
                == 7
        })
        .await;
    for (received, _) in jingle_from_since(&conference.focus, mark, room, "bob") {
        assert_eq!(
            common::peer::error_text(&received.answer).map(|text| text.contains("does not exist")),
            Some(true),
            "{received:?}"
        );
    }
    // Barriers: the module has handled the answers before it answers the inspector, and the bridge
    // has everything the server sent it before its own ping comes back.
    let (_, occupants) = common::conference::kept(&mut conference.inspector, room).await;
    let ping = el("ping", "urn:xmpp:ping").build();
    let pong = conference
        .bridge
        .handle()
        .iq("get", common::prosody::DOMAIN, ping)
        .await;
    assert!(is_result(&pong), "{pong:?}");
    let at_bridge = conference
        .bridge
        .endpoint(room, "bob")
        .expect("bob at the bridge");
    assert!(
        !at_bridge.force_mute_video && !at_bridge.force_mute_audio,
        "{at_bridge:?}"
    );
    assert_eq!(conference.focus.sid("bob"), Some(sid));
    let bob_kept = occupants
        .iter()
        .find(|o| o.0 == "bob")
        .expect("bob is kept");
    assert_eq!(bob_kept.2, "7", "{bob_kept:?}");
    assert!(alice.strays().is_empty());
}
