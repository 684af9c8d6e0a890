//! Enforcement end to end: a real Prosody with mod_podium, the real podium binary on real SQLite, and
//! the Jitsi stand-ins (tests/common/{focus,bridge,participant}.rs) built from the documented
//! behaviour of jicofo, jitsi-videobridge and lib-jitsi-meet. Each scenario asserts on what the focus,
//! the bridge and the other participants actually received.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::bridge::BRIDGE_NICK;
use common::c2s::{C2s, CLIENT, PODIUM, attr, el};
use common::conference::{
    Conference, jingle_from_since, kept, learns, lecture, relayed, sent, ssrcs,
};
use common::focus::{FocusOptions, FocusPeer, JingleReceived};
use common::jingle::{COLIBRI2, MUTE_AUDIO, MUTE_VIDEO, Media, Source, SourceSet, Style};
use common::participant::{Participant, ParticipantOptions, Shape, Track};
use common::peer::{error_condition, is_result};
use common::podium::write_config;
use common::prosody::{BREWERY, CONFERENCE_OPTIONS, MUC};
use common::{edit_rules, inspect, sqlite3, wait_audit};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "carol", "inspector"];

/// Prosody (with the bridge MUC), podium with `rules`, the bridge and a focus with `focus` options.
async fn start(rules: &str, focus: FocusOptions) -> Conference {
    Conference::start_with(USERS, CONFERENCE_OPTIONS, focus, "", rules).await
}

/// The sources of every Jingle request the focus received from `nick`.
fn jingle_from(focus: &FocusPeer, room: &str, nick: &str) -> Vec<(JingleReceived, SourceSet)> {
    jingle_from_since(focus, 0, room, nick)
}

/// Every SSRC the focus ever received from `nick`.
fn ssrcs_seen_by_focus(focus: &FocusPeer, room: &str, nick: &str) -> BTreeSet<u32> {
    jingle_from(focus, room, nick)
        .iter()
        .flat_map(|(_, sources)| sources.ssrcs())
        .collect()
}

#[tokio::test]
async fn lecture_withholds_grants_and_revokes_through_focus_bridge_and_peers() {
    let room = "lecture-1";
    let (conference, alice, bob) = lecture(USERS, room).await;
    let bob_audio = bob.track(Track::Audio);
    let bob_camera = bob.track(Track::Camera);
    let alice_sent = alice.track(Track::Audio).union(&alice.track(Track::Camera));

    // (a) bob's session-accept carried audio and camera; the focus, the bridge and alice see only audio.
    bob.wait_until("bob's session-accept is answered", |view| {
        !view.accept_answers.is_empty()
    })
    .await;
    assert!(
        is_result(&bob.view().accept_answers[0]),
        "{:?}",
        bob.view().accept_answers
    );
    assert!(
        ssrcs(&bob.view().local).is_superset(&ssrcs(&bob_camera)),
        "bob offered his camera"
    );
    conference.focus_holds("bob", &bob_audio).await;
    conference.focus_holds("alice", &alice_sent).await;
    conference.bridge_holds(room, "bob", &bob_audio).await;
    learns(&alice, "bob", relayed(&bob_audio)).await;
    assert!(
        ssrcs_seen_by_focus(&conference.focus, room, "bob").is_disjoint(&ssrcs(&bob_camera)),
        "no camera SSRC of bob ever reached the focus"
    );
    let received_before_grant = bob.received().len();
    let focus_mark = conference.focus.jingle_received().len();

    // (b) An SQL edit grants video: the focus gets exactly bob's camera under bob's sid.
    let started = conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    conference
        .focus_holds("bob", &bob_audio.union(&bob_camera))
        .await;
    let grant_latency = started.elapsed();
    let sid = bob.sid().expect("bob has a session");
    let adds: Vec<_> = jingle_from_since(&conference.focus, focus_mark, room, "bob")
        .into_iter()
        .filter(|(received, _)| received.action == "source-add")
        .collect();
    assert_eq!(
        adds.len(),
        1,
        "one source-add replayed the camera: {adds:?}"
    );
    let (add, added) = &adds[0];
    assert_eq!(add.sid, sid, "under bob's current sid");
    assert!(
        is_result(&add.answer),
        "the focus accepted it: {:?}",
        add.answer
    );
    assert_eq!(ssrcs(added), ssrcs(&bob_camera));
    assert_eq!(
        added.groups.len(),
        4,
        "the FID and SIM groups travel with the camera"
    );
    for source in &added.sources {
        assert_eq!(source.name.as_deref(), Some("bob-v0"));
        assert_eq!(source.video_type.as_deref(), Some("camera"));
        assert!(source.msid.is_some(), "msid intact: {source:?}");
    }
    conference
        .bridge_holds(room, "bob", &bob_audio.union(&bob_camera))
        .await;
    learns(&alice, "bob", relayed(&bob_audio.union(&bob_camera))).await;
    assert_eq!(
        bob.received().len(),
        received_before_grant,
        "bob received nothing: {:?}",
        bob.received()
    );
    assert!(
        bob.strays().is_empty(),
        "no stray answer reached bob: {:?}",
        bob.strays()
    );
    println!("grant: SQL edit -> the focus holds the camera in {grant_latency:?}");
    assert!(
        grant_latency < Duration::from_secs(1),
        "grant took {grant_latency:?}"
    );

    // (c) An SQL edit revokes audio: source-remove at the focus, force-mute at the bridge, a mute IQ.
    let started = conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (4, 'lecture-*', 'jid', 'bob@*', 'audio', 'deny', 30)")
        .await;
    conference.focus_holds("bob", &bob_camera).await;
    conference.bridge_force_mute(room, "bob", true, false).await;
    bob.wait_until("bob is told to mute his audio", |view| {
        view.mutes
            .iter()
            .any(|mute| mute.namespace == MUTE_AUDIO && mute.applied)
    })
    .await;
    let revoke_latency = started.elapsed();
    let removes: Vec<_> = jingle_from_since(&conference.focus, focus_mark, room, "bob")
        .into_iter()
        .filter(|(received, _)| received.action == "source-remove")
        .collect();
    assert_eq!(removes.len(), 1, "{removes:?}");
    assert_eq!(ssrcs(&removes[0].1), ssrcs(&bob_audio));
    assert_eq!(removes[0].0.sid, sid);
    learns(&alice, "bob", relayed(&bob_camera)).await;
    println!("revoke: SQL edit -> source-remove, force-mute and mute IQ in {revoke_latency:?}");
    assert!(
        revoke_latency < Duration::from_secs(1),
        "revoke took {revoke_latency:?}"
    );

    // bob unmuting himself gains nothing: jicofo (no A/V moderation) answers, nothing changes.
    let answer = bob.mute_self("audio", false).await;
    assert!(is_result(&answer), "{answer:?}");
    conference
        .focus
        .wait_until("the focus saw bob's unmute", |view| !view.mutes.is_empty())
        .await;
    // jicofo's own force-mute update with its unmuted view cannot lift podium's.
    let answer = conference.focus.force_mute("bob", false, false).await;
    assert!(is_result(&answer), "{answer:?}");
    conference.bridge_force_mute(room, "bob", true, false).await;

    // A re-invite: jicofo re-allocates bob with its own (unmuted) view and a new sid; bob's new
    // session-accept lists audio and camera again; audio stays withheld and muted at the bridge.
    conference.focus.reinvite("bob").await;
    let new_sid = conference.focus.sid("bob").expect("a new session");
    assert_ne!(new_sid, sid);
    bob.wait_until("bob accepted the new session", |view| {
        view.accept_answers.len() == 2
    })
    .await;
    conference.focus_holds("bob", &bob_camera).await;
    conference.bridge_holds(room, "bob", &bob_camera).await;
    conference.bridge_force_mute(room, "bob", true, false).await;
    // The focus re-allocated bob with its own view, which has no force-mute; the bridge is muted all
    // the same, because the module rewrote the allocation on its way.
    let allocation = conference
        .focus
        .sent_to("bob")
        .into_iter()
        .rfind(|sent| sent.what == "allocate")
        .expect("the focus re-allocated bob");
    let endpoint = allocation
        .iq
        .get_child("conference-modify", COLIBRI2)
        .and_then(|modify| modify.get_child("endpoint", COLIBRI2))
        .expect("an endpoint in the allocation");
    assert!(
        endpoint.get_child("force-mute", COLIBRI2).is_none(),
        "{endpoint:?}"
    );
    assert!(
        ssrcs_seen_by_focus(&conference.focus, room, "bob").contains(&bob_audio.ssrcs()[0]),
        "audio reached the focus before the revoke"
    );
    let after_revoke = jingle_from(&conference.focus, room, "bob")
        .into_iter()
        .skip_while(|(received, _)| received.action != "source-remove")
        .skip(1)
        .flat_map(|(_, sources)| sources.ssrcs())
        .collect::<BTreeSet<u32>>();
    assert!(
        after_revoke.is_disjoint(&ssrcs(&bob_audio)),
        "audio never reached the focus again"
    );

    // Granting audio lifts the force-mute and replays the audio under the new sid.
    conference.edit("DELETE FROM rules WHERE id = 4").await;
    conference
        .focus_holds("bob", &bob_audio.union(&bob_camera))
        .await;
    conference
        .bridge_force_mute(room, "bob", false, false)
        .await;
    assert_eq!(conference.focus.sid("bob"), Some(new_sid));
}

#[tokio::test]
async fn screenshare_denied_keeps_the_camera_and_the_bridge_unmuted() {
    let room = "seminar";
    let rules = "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'all', 'allow', 0),
        (2, '*', 'role', 'participant', 'screen', 'deny', 10)";
    // The focus signals sources as XML here (jicofo with use-json-encoded-sources off).
    let mut conference = start(
        rules,
        FocusOptions {
            json_sources: false,
            ..FocusOptions::default()
        },
    )
    .await;
    let alice = conference
        .join_shaped(room, "alice", Shape::Current, &[("alice", "audio,video")])
        .await;
    let bob = conference
        .join_shaped(
            room,
            "bob",
            Shape::Current,
            &[("alice", "audio,video"), ("bob", "audio,video")],
        )
        .await;
    let bob_sent = bob.track(Track::Audio).union(&bob.track(Track::Camera));
    conference.focus_holds("bob", &bob_sent).await;
    learns(&alice, "bob", relayed(&bob_sent)).await;

    // The screenshare's source-add is answered by the module and never reaches the focus.
    let focus_mark = conference.focus.jingle_received().len();
    let answer = bob.add_screenshare().await;
    assert!(is_result(&answer), "the client sees success: {answer:?}");
    let screen = bob.track(Track::Screenshare);
    assert!(screen.sources.iter().all(Source::is_desktop));
    assert!(
        jingle_from_since(&conference.focus, focus_mark, room, "bob")
            .iter()
            .all(|(received, _)| received.action != "source-add"),
        "no source-add from bob reached the focus"
    );
    assert!(ssrcs_seen_by_focus(&conference.focus, room, "bob").is_disjoint(&ssrcs(&screen)));
    assert_eq!(
        ssrcs(&conference.focus.sources("bob")),
        ssrcs(&bob_sent),
        "the camera is untouched"
    );
    conference.bridge_holds(room, "bob", &bob_sent).await;
    conference
        .bridge_force_mute(room, "bob", false, false)
        .await;
    learns(&alice, "bob", relayed(&bob_sent)).await;

    // A 2021 client says "screenshare" only in presence: its camera-named source is then a screen.
    let carol = Participant::join(
        conference.prosody.c2s_port,
        "carol",
        room,
        "carol",
        Shape::Legacy2021,
    )
    .await;
    conference
        .wait_held(
            room,
            &[
                ("alice", "audio,video"),
                ("bob", "audio,video"),
                ("carol", "audio,video"),
            ],
        )
        .await;
    let carol_sent = carol.track(Track::Audio).union(&carol.track(Track::Camera));
    conference.focus_holds("carol", &carol_sent).await;

    // Granting screen later replays the withheld screenshare with its groups.
    conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    conference
        .focus_holds("bob", &bob_sent.union(&screen))
        .await;
    conference
        .bridge_holds(room, "bob", &bob_sent.union(&screen))
        .await;
    let replay = jingle_from_since(&conference.focus, focus_mark, room, "bob")
        .into_iter()
        .find(|(received, _)| received.action == "source-add")
        .expect("the screenshare was replayed");
    assert_eq!(replay.1.groups.len(), 4);
    assert!(
        replay
            .1
            .sources
            .iter()
            .all(|s| s.name.as_deref() == Some("bob-v1"))
    );
}

/// Camera granted, screen refused. A client that switches its camera to the screen with
/// replaceTrack sends no Jingle at all: only presence says so (`SourceInfo` videoType desktop). The
/// module withdraws the source from jicofo at once, the bridge mutes the endpoint's video, the client
/// is told as jicofo would tell it, and the camera returns when presence says camera again. Both the
/// 2021 shape (nameless sources, so `<nick>-v0` in presence names them) and the current one (named
/// `-v0` with `videoType='camera'` in Jingle: the stricter kind wins).
#[tokio::test]
async fn a_camera_switched_to_the_screen_in_presence_only_is_withdrawn_and_comes_back() {
    use common::jingle::MUTE_DESKTOP;
    let room = "seminar-switch";
    let rules = "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'all', 'allow', 0),
        (2, '*', 'role', 'participant', 'screen', 'deny', 10)";
    let mut conference = start(rules, FocusOptions::default()).await;
    let alice = conference
        .join_shaped(room, "alice", Shape::Current, &[("alice", "audio,video")])
        .await;
    let mut held = vec![("alice", "audio,video")];
    let mut present = Vec::new();
    for (nick, shape) in [("carol", Shape::Legacy2021), ("bob", Shape::Current)] {
        held.push((nick, "audio,video"));
        let participant = conference.join_shaped(room, nick, shape, &held).await;
        let audio = participant.track(Track::Audio);
        let camera = participant.track(Track::Camera);
        let both = audio.union(&camera);
        conference.focus_holds(nick, &both).await;
        conference.bridge_holds(room, nick, &both).await;
        learns(&alice, nick, relayed(&both)).await;

        // replaceTrack(camera, screen): presence only.
        let switched = Instant::now();
        participant.set_source_info(&format!(
            "{{\"{nick}-a0\":{{\"muted\":false}},\"{nick}-v0\":{{\"muted\":false,\"videoType\":\"desktop\"}}}}"
        ));
        conference.focus_holds(nick, &audio).await;
        eprintln!(
            "{nick} ({shape:?}): presence-only switch to the screen -> the focus no longer holds the camera: {} ms",
            switched.elapsed().as_millis()
        );
        conference.bridge_holds(room, nick, &audio).await;
        conference.bridge_force_mute(room, nick, false, true).await;
        learns(&alice, nick, relayed(&audio)).await;
        participant
            .wait_until("the desktop mute IQ from the focus", |view| {
                view.mutes
                    .iter()
                    .any(|mute| mute.namespace == MUTE_DESKTOP && mute.applied)
            })
            .await;
        assert_eq!(
            inspect(&mut conference.inspector, room).await.get(nick),
            Some(&("audio,video".to_owned(), "podium".to_owned())),
            "podium's decision is unchanged: camera allowed, screen not"
        );

        // Back to the camera: released, with its groups, and the bridge unmutes.
        let back = Instant::now();
        participant.set_source_info(&format!(
            "{{\"{nick}-a0\":{{\"muted\":false}},\"{nick}-v0\":{{\"muted\":false,\"videoType\":\"camera\"}}}}"
        ));
        conference.focus_holds(nick, &both).await;
        eprintln!(
            "{nick} ({shape:?}): back to the camera -> the focus holds it again: {} ms",
            back.elapsed().as_millis()
        );
        conference.bridge_holds(room, nick, &both).await;
        conference.bridge_force_mute(room, nick, false, false).await;
        learns(&alice, nick, relayed(&both)).await;
        present.push(participant);
    }
}

/// Camera allowed, screen refused, and the participant's own Jingle changes what it sends: with the
/// camera off and a refused screenshare on, the screen is all its video, so the bridge mutes its
/// video; turning the camera back on lifts that mute (the module re-checks after the participant's
/// own source changes, not only after decisions).
#[tokio::test]
async fn the_bridge_video_mute_follows_the_participants_own_source_changes() {
    let room = "seminar-own";
    let rules = "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'all', 'allow', 0),
        (2, '*', 'role', 'participant', 'screen', 'deny', 10)";
    let mut conference = start(rules, FocusOptions::default()).await;
    let _alice = conference
        .join_shaped(room, "alice", Shape::Current, &[("alice", "audio,video")])
        .await;
    let bob = conference
        .join_shaped(
            room,
            "bob",
            Shape::Current,
            &[("alice", "audio,video"), ("bob", "audio,video")],
        )
        .await;
    let audio = bob.track(Track::Audio);
    let camera = bob.track(Track::Camera);
    conference.focus_holds("bob", &audio.union(&camera)).await;

    let answer = bob.remove_sources(Track::Camera).await;
    assert!(is_result(&answer), "{answer:?}");
    conference.focus_holds("bob", &audio).await;
    let answer = bob.add_screenshare().await;
    assert!(is_result(&answer), "{answer:?}");
    conference.bridge_force_mute(room, "bob", false, true).await;

    let sid = bob.sid().expect("a session");
    let answer = bob
        .send_jingle("source-add", &sid, camera.to_contents(Style::Client, None))
        .await;
    assert!(is_result(&answer), "{answer:?}");
    conference.focus_holds("bob", &audio.union(&camera)).await;
    conference
        .bridge_force_mute(room, "bob", false, false)
        .await;
}

/// A tenant's room on a multi-tenant Jitsi: the MUC holds `[acme]…`, and jicofo names the
/// conference at the bridge by the room's virtual JID (`…@conference.acme.localhost`). The module
/// still finds the room, so a revoke force-mutes the endpoint at the bridge (review finding M5).
#[tokio::test]
async fn a_tenant_rooms_bridge_conference_is_found_and_force_muted() {
    let room = "[acme]town-hall";
    let rules = "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '[acme]*', 'everyone', NULL, 'audio,video', 'allow', 0)";
    let mut conference = start(
        rules,
        FocusOptions {
            virtual_names: true,
            ..FocusOptions::default()
        },
    )
    .await;
    let alice = conference
        .join_shaped(room, "alice", Shape::Current, &[("alice", "audio,video")])
        .await;
    let sent = alice.track(Track::Audio).union(&alice.track(Track::Camera));
    conference.focus_holds("alice", &sent).await;
    let meeting_id = conference.focus.meeting_id(room).expect("a meeting id");
    let named = conference
        .bridge
        .conferences()
        .get(&meeting_id)
        .and_then(|c| c.name.clone());
    assert_eq!(
        named.as_deref(),
        Some("town-hall@conference.acme.localhost")
    );
    conference.bridge_holds(&meeting_id, "alice", &sent).await;

    conference
        .edit("UPDATE rules SET media = 'video' WHERE id = 1")
        .await;
    conference.wait_held(room, &[("alice", "video")]).await;
    conference
        .bridge_force_mute(&meeting_id, "alice", true, false)
        .await;
}

#[tokio::test]
async fn peer_to_peer_is_refused_while_someone_is_restricted() {
    let room = "lecture-p2p";
    let (mut conference, alice, bob) = lecture(USERS, room).await;
    conference
        .focus_holds(
            "alice",
            &alice.track(Track::Audio).union(&alice.track(Track::Camera)),
        )
        .await;

    let answer = alice.p2p_offer("bob").await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );
    assert!(bob.view().p2p_sids.is_empty(), "bob never saw the offer");
    // The call continues through the focus.
    conference
        .focus_holds("bob", &bob.track(Track::Audio))
        .await;
    learns(&alice, "bob", relayed(&bob.track(Track::Audio))).await;

    // Once nobody is restricted, P2P goes through; a revoke ends it on both sides.
    conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    conference
        .wait_held(
            room,
            &[
                ("alice", "audio,video,screen"),
                ("bob", "audio,video,screen"),
            ],
        )
        .await;
    let answer = alice.p2p_offer("bob").await;
    assert!(is_result(&answer), "{answer:?}");
    let p2p_sid = bob
        .view()
        .p2p_sids
        .iter()
        .next()
        .cloned()
        .expect("bob saw the offer");
    conference
        .edit("UPDATE rules SET enabled = 1 WHERE id = 2")
        .await;
    for (who, participant) in [("alice", &alice), ("bob", &bob)] {
        participant
            .wait_until(&format!("{who}'s P2P session is terminated"), |view| {
                view.received.iter().any(|iq| {
                    iq.action == "session-terminate" && iq.sid.as_deref() == Some(p2p_sid.as_str())
                })
            })
            .await;
    }
    assert!(alice.strays().is_empty() && bob.strays().is_empty());
}

#[tokio::test]
async fn reinvite_leave_and_rejoin_keep_enforcement_and_leave_nothing_behind() {
    let room = "lecture-2";
    let (mut conference, _alice, bob) = lecture(USERS, room).await;
    let bob_audio = bob.track(Track::Audio);
    conference.focus_holds("bob", &bob_audio).await;

    conference.focus.reinvite("bob").await;
    bob.wait_until("bob accepted the new session", |view| {
        view.accept_answers.len() == 2
    })
    .await;
    conference.focus_holds("bob", &bob_audio).await;
    conference.bridge_holds(room, "bob", &bob_audio).await;
    assert!(
        ssrcs_seen_by_focus(&conference.focus, room, "bob")
            .is_disjoint(&ssrcs(&bob.track(Track::Camera)))
    );

    // What the module keeps for bob: his current session, 1 source with jicofo, 6 withheld.
    let bob_sid = conference.focus.sid("bob");
    let alice_sid = conference.focus.sid("alice");
    let (counts, occupants) = kept(&mut conference.inspector, room).await;
    assert_eq!(counts, ("2".to_owned(), "0".to_owned()));
    assert_eq!(
        occupants,
        vec![
            (
                "alice".to_owned(),
                alice_sid.clone(),
                "7".to_owned(),
                "0".to_owned()
            ),
            ("bob".to_owned(), bob_sid, "1".to_owned(), "6".to_owned()),
        ]
    );

    // bob leaves: the module keeps nothing for him; the bridge endpoint is gone.
    bob.leave().await;
    conference
        .wait_held(room, &[("alice", "audio,video,screen")])
        .await;
    conference
        .bridge
        .wait_until("bob's endpoint is gone", |view| {
            view.endpoint(room, "bob").is_none()
        })
        .await;

    let (counts, occupants) = kept(&mut conference.inspector, room).await;
    assert_eq!(
        counts,
        ("1".to_owned(), "0".to_owned()),
        "only alice's endpoint is known"
    );
    assert_eq!(
        occupants,
        vec![(
            "alice".to_owned(),
            alice_sid,
            "7".to_owned(),
            "0".to_owned()
        )]
    );

    // bob comes back with a new session and new SSRCs: his camera is withheld again.
    let bob_again = conference
        .join_shaped(
            room,
            "bob",
            Shape::Current,
            &[("alice", "audio,video,screen"), ("bob", "audio,screen")],
        )
        .await;
    let audio_again = bob_again.track(Track::Audio);
    conference.focus_holds("bob", &audio_again).await;
    conference.bridge_holds(room, "bob", &audio_again).await;
    // A session id that is not his current one (an old one, or one the module has not seen, which
    // could be someone else's) is refused by the module, as jicofo would refuse an unknown sid.
    let focus_mark = conference.focus.jingle_received().len();
    let answer = bob_again
        .send_jingle(
            "source-add",
            "not-a-session",
            bob_again
                .track(Track::Audio)
                .to_contents(Style::Client, None),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    assert_eq!(ssrcs(&conference.focus.sources("bob")), ssrcs(&audio_again));
    assert!(jingle_from_since(&conference.focus, focus_mark, room, "bob").is_empty());

    // An older client removes its camera with source-remove: jicofo never saw it, so the module
    // answers and forgets it; nothing reaches jicofo.
    let focus_mark = conference.focus.jingle_received().len();
    let answer = bob_again.remove_sources(Track::Camera).await;
    assert!(is_result(&answer), "{answer:?}");
    assert!(jingle_from_since(&conference.focus, focus_mark, room, "bob").is_empty());
    let (_, occupants) = kept(&mut conference.inspector, room).await;
    let bob_kept = occupants
        .iter()
        .find(|o| o.0 == "bob")
        .expect("bob is kept");
    assert_eq!((bob_kept.2.as_str(), bob_kept.3.as_str()), ("1", "0"));
}

#[tokio::test]
async fn hostile_participant_changes_nothing_for_anyone() {
    let room = "lecture-3";
    let (mut conference, alice, bob) = lecture(USERS, room).await;
    let alice_sent = alice.track(Track::Audio).union(&alice.track(Track::Camera));
    let bob_audio = bob.track(Track::Audio);
    conference.focus_holds("alice", &alice_sent).await;
    conference.focus_holds("bob", &bob_audio).await;
    let alice_sid = conference.focus.sid("alice").unwrap();
    let bob_sid = conference.focus.sid("bob").unwrap();
    let seen_before = conference.focus.jingle_received().len();

    // A source-add under alice's sid (jicofo routes by sid only): refused by the module.
    let fresh = SourceSet::new(
        vec![
            Source::new(Media::Video, 4_000_001)
                .named("bob-v5")
                .with_video_type("camera"),
        ],
        vec![],
    );
    let answer = bob
        .send_jingle(
            "source-add",
            &alice_sid,
            fresh.to_contents(Style::Client, None),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("forbidden"),
        "{answer:?}"
    );
    // Sources named for alice under his own sid.
    let named_for_alice = SourceSet::new(
        vec![Source::new(Media::Audio, 4_000_002).named("alice-a7")],
        vec![],
    );
    let answer = bob
        .send_jingle(
            "source-add",
            &bob_sid,
            named_for_alice.to_contents(Style::Client, None),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    // alice's SSRC, and his own withheld camera SSRC twice.
    let alice_ssrc = alice_sent.ssrcs()[0];
    let stolen = SourceSet::new(
        vec![Source::new(Media::Audio, alice_ssrc).named("bob-a1")],
        vec![],
    );
    let answer = bob
        .send_jingle(
            "source-add",
            &bob_sid,
            stolen.to_contents(Style::Client, None),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    assert_eq!(
        conference.focus.jingle_received().len(),
        seen_before,
        "none of it reached the focus"
    );

    // His withheld camera straight to jicofo's real JID, bypassing the room (jicofo routes by sid).
    let camera = bob.track(Track::Camera);
    let direct = el("jingle", common::jingle::JINGLE)
        .attr(attr("action"), "source-add")
        .attr(attr("sid"), bob_sid.as_str())
        .append_all(camera.to_contents(Style::Client, None))
        .build();
    let answer = bob.iq("set", common::focus::FOCUS_JID, direct).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("forbidden"),
        "{answer:?}"
    );
    // The same camera under his own sid through the room, in a shape jicofo would read and a naive
    // filter would not (media in capitals).
    let mut contents = camera.to_contents(Style::Client, None);
    for content in &mut contents {
        for description in content.children_mut() {
            description.set_attr(minidom::rxml::Namespace::NONE, attr("media"), "VIDEO");
        }
    }
    let answer = bob.send_jingle("source-add", &bob_sid, contents).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    // Camera sources past jicofo's 20-SSRC limit, all of a kind he may not send: withheld sources
    // count as jicofo would count them (1 audio + 6 withheld camera + 14 = 21), so a later grant can
    // replay every one.
    let flood = SourceSet::new(
        (0..14)
            .map(|i| {
                Source::new(Media::Video, 4_100_000 + i)
                    .named("bob-v3")
                    .with_video_type("camera")
            })
            .collect(),
        vec![],
    );
    let answer = bob
        .send_jingle(
            "source-add",
            &bob_sid,
            flood.to_contents(Style::Client, None),
        )
        .await;
    assert_eq!(
        common::peer::error_text(&answer).as_deref(),
        Some("SSRC limit (20) exceeded."),
        "{answer:?}"
    );
    assert_eq!(
        conference.focus.jingle_received().len(),
        seen_before,
        "none of it reached the focus"
    );

    // Colibri2 straight to the bridge (JVB refuses: not from the bridge MUC) and through the bridge
    // MUC (the module refuses: only jicofo talks to the bridge).
    let meeting_id = conference.focus.meeting_id(room).expect("a meeting id");
    let mute_alice = || {
        el("conference-modify", COLIBRI2)
            .attr(attr("meeting-id"), meeting_id.as_str())
            .append(
                el("endpoint", COLIBRI2).attr(attr("id"), "alice").append(
                    el("force-mute", COLIBRI2)
                        .attr(attr("audio"), "true")
                        .attr(attr("video"), "true"),
                ),
            )
            .build()
    };
    let answer = bob.iq("get", &conference.bridge.jid, mute_alice()).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("forbidden"),
        "{answer:?}"
    );
    bob.handle().send(
        el("presence", CLIENT)
            .attr(attr("to"), format!("{BREWERY}/mallory"))
            .append(el("x", "http://jabber.org/protocol/muc"))
            .build(),
    );
    let via_brewery = bob
        .iq("get", &format!("{BREWERY}/{BRIDGE_NICK}"), mute_alice())
        .await;
    assert_eq!(
        error_condition(&via_brewery).as_deref(),
        Some("forbidden"),
        "{via_brewery:?}"
    );
    assert!(
        conference
            .bridge
            .requests()
            .iter()
            .all(|request| request.refused
                || request.from.ends_with("/focus")
                || request.from.ends_with("/podium")),
        "only jicofo's and the module's requests were handled"
    );
    assert!(
        conference
            .bridge
            .requests()
            .iter()
            .all(|request| !request.from.ends_with("/mallory")),
        "the bridge MUC never passed mallory's request on"
    );

    // Policy for the module, from a participant.
    let policy = el("permissions", PODIUM)
        .append(
            el("occupant", PODIUM)
                .attr(attr("jid"), format!("{room}@{MUC}/bob"))
                .attr(attr("real-jid"), bob.jid.as_str())
                .attr(attr("audio"), "true")
                .attr(attr("video"), "true")
                .attr(attr("screen"), "true"),
        )
        .build();
    let answer = bob.iq("set", MUC, policy).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("forbidden"),
        "{answer:?}"
    );

    // Nothing changed for anyone.
    conference
        .wait_held(
            room,
            &[("alice", "audio,video,screen"), ("bob", "audio,screen")],
        )
        .await;
    assert_eq!(
        ssrcs(&conference.focus.sources("alice")),
        ssrcs(&alice_sent)
    );
    assert_eq!(ssrcs(&conference.focus.sources("bob")), ssrcs(&bob_audio));
    let alice_at_bridge = conference
        .bridge
        .endpoint(room, "alice")
        .expect("alice at the bridge");
    assert!(!alice_at_bridge.force_mute_audio && !alice_at_bridge.force_mute_video);
    assert_eq!(conference.focus.sid("alice"), Some(alice_sid));
}

#[tokio::test]
async fn a_session_accept_before_the_first_decision_is_filtered_by_the_default() {
    let room = "early";
    // podium is not running yet: the module applies podium_default_permissions (audio here).
    let options = format!("{CONFERENCE_OPTIONS}    podium_default_permissions = {{ \"audio\" }}\n");
    let mut conference = Conference::without_podium(USERS, &options, FocusOptions::default()).await;
    let bob = Participant::join_with(
        conference.prosody.c2s_port,
        "bob",
        room,
        "bob",
        Shape::Current,
        ParticipantOptions::default(),
    )
    .await;
    let bob_audio = bob.track(Track::Audio);
    let bob_camera = bob.track(Track::Camera);
    conference.focus_holds("bob", &bob_audio).await;
    conference.bridge_holds(room, "bob", &bob_audio).await;
    // The default refuses video: the bridge force-mutes video from the allocation on.
    conference.bridge_force_mute(room, "bob", false, true).await;
    let mut inspector = C2s::connect(conference.prosody.c2s_port, "inspector", "again").await;
    let held = inspect(&mut inspector, room).await;
    assert_eq!(
        held.get("bob")
            .map(|(set, origin)| (set.as_str(), origin.as_str())),
        Some(("audio", "default"))
    );

    // podium starts and decides: everything allowed; the camera is released and the mute lifted.
    conference.start_podium("").await;
    edit_rules(
        conference.podium(),
        &conference.db,
        "INSERT INTO rules (room, who, media, effect) VALUES ('*', 'everyone', 'all', 'allow')",
    )
    .await;
    conference
        .wait_held(room, &[("bob", "audio,video,screen")])
        .await;
    conference
        .focus_holds("bob", &bob_audio.union(&bob_camera))
        .await;
    conference
        .bridge_holds(room, "bob", &bob_audio.union(&bob_camera))
        .await;
    conference
        .bridge_force_mute(room, "bob", false, false)
        .await;
    assert!(bob.strays().is_empty(), "{:?}", bob.strays());
}

#[tokio::test]
async fn the_same_person_on_another_session_keeps_enforcement() {
    let room = "lecture-4";
    let (mut conference, _alice, bob) = lecture(USERS, room).await;
    let bob_audio = bob.track(Track::Audio);
    conference.focus_holds("bob", &bob_audio).await;

    // bob joins the same nick from a second device; then the first one leaves. The occupant stays,
    // and so do jicofo's session and sources; only its primary real JID changes.
    let second = C2s::connect(conference.prosody.c2s_port, "bob", "phone").await;
    second.update_presence(
        room,
        "bob",
        vec![el("x", "http://jabber.org/protocol/muc").build()],
    );
    conference
        .wait_held(
            room,
            &[("alice", "audio,video,screen"), ("bob", "audio,screen")],
        )
        .await;
    bob.leave().await;
    conference
        .wait_held(
            room,
            &[("alice", "audio,video,screen"), ("bob", "audio,screen")],
        )
        .await;
    let (_, occupants) = kept(&mut conference.inspector, room).await;
    let kept_bob = occupants
        .iter()
        .find(|o| o.0 == "bob")
        .expect("bob is kept");
    assert_eq!(
        kept_bob.1,
        conference.focus.sid("bob"),
        "the module still knows bob's session with jicofo"
    );
    // The second device was told nothing yet: it hears that the camera jicofo never got is muted.
    let (_phone, mut inbox) = second.split();
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(stanza) = inbox.recv().await {
            let mute = stanza.get_child("mute", MUTE_VIDEO);
            if stanza.name() == "iq" && mute.is_some_and(|mute| mute.text() == "true") {
                return stanza;
            }
        }
        panic!("the phone's stream ended");
    })
    .await
    .expect("the second device is told to mute its camera");
    assert_eq!(
        told.attr("from"),
        Some(format!("{room}@{MUC}/focus").as_str())
    );

    // A revoke still reaches jicofo and the bridge.
    conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (4, 'lecture-*', 'jid', 'bob@*', 'audio', 'deny', 30)")
        .await;
    conference.focus_holds("bob", &SourceSet::default()).await;
    conference.bridge_force_mute(room, "bob", true, false).await;
}

/// A class: everyone may show a camera and share a screen; participants may speak one at a time
/// after raising a hand (a request rule with a cap of one).
const CLASS_RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, cap, note) VALUES
    (1, 'class-*', 'everyone', NULL,          'video,screen', 'allow',   0,  NULL, 'cameras and screens'),
    (2, 'class-*', 'role',     'participant', 'audio',        'request', 10, 1,    'one speaker at a time')";

/// Runs `podium explain` against the conference's database.
fn explain(conference: &Conference, room: &str, who: &str) -> String {
    let config = write_config(&conference.prosody, &conference.db, "");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .arg("--config")
        .arg(&config)
        .args(["explain", room, who])
        .output()
        .expect("podium runs");
    assert!(
        output.status.success(),
        "podium explain failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_raised_hand_gets_the_one_speaker_slot_and_the_next_in_line_follows_when_it_frees() {
    let room = "class-1";
    let mut conference = start(CLASS_RULES, FocusOptions::default()).await;
    let alice = conference
        .join_shaped(room, "alice", Shape::Current, &[("alice", "video,screen")])
        .await;
    let bob = conference
        .join_shaped(
            room,
            "bob",
            Shape::Current,
            &[("alice", "video,screen"), ("bob", "video,screen")],
        )
        .await;
    let camera = |p: &Participant| p.track(Track::Camera);
    let with_audio = |p: &Participant| p.track(Track::Audio).union(&p.track(Track::Camera));
    conference.focus_holds("bob", &camera(&bob)).await;
    conference.focus_holds("alice", &camera(&alice)).await;

    // bob raises his hand: the slot is free, so he may speak; the focus gets his withheld audio.
    bob.raise_hand(true);
    conference
        .wait_held(
            room,
            &[("alice", "video,screen"), ("bob", "audio,video,screen")],
        )
        .await;
    conference.focus_holds("bob", &with_audio(&bob)).await;

    // alice raises hers: the slot is taken, she waits, first in line, and SQL shows it.
    alice.raise_hand(true);
    wait_audit(
        conference.podium(),
        &conference.db,
        "SELECT media, position, nick, rule_id, waiting_for FROM queue",
        "audio|1|alice|2|slot\n",
    )
    .await;
    conference.focus_holds("alice", &camera(&alice)).await;
    let explained = explain(&conference, room, "alice");
    for line in [
        "inputs: role participant, affiliation none, jid alice@localhost, hand raised at ",
        "audio: may not send (waits for a slot: position 1)",
        "  rule 2 (request role participant, priority 10, cap 1): decided",
        "video: may send",
        "  rule 1 (allow everyone, priority 0): decided",
    ] {
        assert!(explained.contains(line), "{line:?} in:\n{explained}");
    }
    let explained = explain(&conference, room, "bob@localhost");
    assert!(
        explained.contains("audio: may send (holds a slot of the cap)"),
        "{explained}"
    );

    // bob leaves: alice, next in line, gets the slot at once, and the queue empties.
    let left = Instant::now();
    bob.leave().await;
    conference
        .wait_held(room, &[("alice", "audio,video,screen")])
        .await;
    conference.focus_holds("alice", &with_audio(&alice)).await;
    eprintln!(
        "holder left -> next in line's audio held by the focus: {:?}",
        left.elapsed()
    );
    wait_audit(
        conference.podium(),
        &conference.db,
        "SELECT count(*) FROM queue",
        "0\n",
    )
    .await;
    wait_audit(
        conference.podium(),
        &conference.db,
        "SELECT cause, granted, rule_ids FROM decisions WHERE nick = 'alice' ORDER BY id DESC LIMIT 1",
        "queue|audio,video,screen|1,2\n",
    )
    .await;
    // Stored with it: where she stands (reasons) and the room's rules as they stood.
    let stored = sqlite3(
        &conference.db,
        "SELECT reasons || char(10) || explanation FROM decisions_full WHERE nick = 'alice' \
         ORDER BY id DESC LIMIT 1",
    );
    assert!(
        stored.starts_with("audio: request by rule 2 (priority 10, cap 1): holds a slot;"),
        "{stored}"
    );
    assert!(stored.contains("\n  rule 2 (request "), "{stored}");

    // alice lowers her hand: she gives the slot up, and the focus loses her audio.
    alice.raise_hand(false);
    conference
        .wait_held(room, &[("alice", "video,screen")])
        .await;
    conference.focus_holds("alice", &camera(&alice)).await;
}

/// One rule edit changes everyone in a room at once: podium sends those decisions together, and the
/// module carries each one out (issue 13): the focus gets each participant's camera removed, the
/// bridge mutes each one's video, each client is told to mute its camera, and the grant back replays
/// each camera. The bridge hears it in one Colibri2 request per room for the whole batch (JVB takes
/// several endpoints' force-mutes in one), not one per occupant. The batch is logged at info in one
/// summary line per <permissions/>, the occupants one by one at debug only; the clients are told
/// after the batch, in one go.
#[tokio::test]
async fn one_edit_for_a_whole_room_reaches_every_occupant_and_is_logged_once() {
    let room = "townhall";
    let rules = "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'audio,video', 'allow', 0)";
    let mut conference = start(rules, FocusOptions::default()).await;
    let nicks = ["alice", "bob", "carol"];
    let mut participants = Vec::new();
    for (i, nick) in nicks.iter().enumerate() {
        let held: Vec<(&str, &str)> = nicks[..=i].iter().map(|n| (*n, "audio,video")).collect();
        participants.push(conference.join(room, nick, &held).await);
    }
    for (nick, participant) in nicks.iter().zip(&participants) {
        conference.focus_holds(nick, &sent(participant)).await;
        conference.bridge_force_mute(room, nick, false, false).await;
    }
    let log_mark = conference.prosody.log().len();
    let bridge_mark = conference.bridge.requests().len();

    conference
        .edit("UPDATE rules SET media = 'audio' WHERE id = 1")
        .await;
    for (nick, participant) in nicks.iter().zip(&participants) {
        conference
            .focus_holds(nick, &participant.track(Track::Audio))
            .await;
        conference.bridge_force_mute(room, nick, false, true).await;
        participant
            .wait_until("told to mute its camera", |view| {
                view.mutes
                    .iter()
                    .any(|mute| mute.namespace == MUTE_VIDEO && mute.applied)
            })
            .await;
    }
    let revoke_log = conference.prosody.log()[log_mark..].to_owned();
    let grant_mark = log_mark + revoke_log.len();
    // The clients are told once the batch is carried out, every request for jicofo written first:
    // one line for the three mute IQs, after the batch's (issue 13 point 3).
    let lines: Vec<&str> = revoke_log.lines().collect();
    let told: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("told 3 client(s) of podium's decisions: 3 mute IQ(s)"))
        .collect();
    let batches: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("decision(s) from podium"))
        .collect();
    assert!(
        told.len() == 1 && batches.iter().all(|&b| b < told[0]),
        "the clients told in one go after the batch: {:#?}",
        lines
            .iter()
            .filter(|line| line.contains("told") || line.contains("decision(s) from podium"))
            .collect::<Vec<_>>()
    );
    let revoke_requests = module_force_mutes(&conference.bridge.requests()[bridge_mark..]);
    assert_eq!(
        revoke_requests,
        vec![3],
        "one request to the bridge naming the three endpoints"
    );
    let bridge_mark = conference.bridge.requests().len();

    conference
        .edit("UPDATE rules SET media = 'audio,video' WHERE id = 1")
        .await;
    for (nick, participant) in nicks.iter().zip(&participants) {
        conference.focus_holds(nick, &sent(participant)).await;
        conference.bridge_force_mute(room, nick, false, false).await;
    }
    let grant_log = conference.prosody.log()[grant_mark..].to_owned();
    assert_eq!(
        module_force_mutes(&conference.bridge.requests()[bridge_mark..]),
        vec![3],
        "the grant: one request for the three endpoints"
    );

    for (log, done) in [(&revoke_log, "withdrew"), (&grant_log, "released")] {
        let info: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(":podium\tinfo\t"))
            .collect();
        let (summaries, others): (Vec<&str>, Vec<&str>) = info
            .iter()
            .partition(|line| line.contains("decision(s) from podium"));
        assert!(
            !others.iter().any(|line| line.contains(done)),
            "no line per occupant at info: {others:#?}"
        );
        let held: usize = summaries
            .iter()
            .map(|line| count_before(line, " decision(s) from podium"))
            .sum();
        assert_eq!(
            held,
            nicks.len(),
            "the batches hold everyone: {summaries:#?}"
        );
        let per_occupant = log
            .lines()
            .filter(|line| line.contains(":podium\tdebug\t") && line.contains(done))
            .count();
        assert_eq!(per_occupant, nicks.len(), "each occupant at debug");
    }
}

/// For each force-mute request the module sent the bridge (from `<brewery>/podium`), how many
/// endpoints it names.
fn module_force_mutes(requests: &[common::bridge::ColibriRequest]) -> Vec<usize> {
    requests
        .iter()
        .filter(|request| request.from.ends_with("/podium") && request.accepted)
        .filter_map(|request| request.iq.get_child("conference-modify", COLIBRI2))
        .map(|modify| {
            modify
                .children()
                .filter(|child| child.is("endpoint", COLIBRI2))
                .filter(|endpoint| endpoint.get_child("force-mute", COLIBRI2).is_some())
                .count()
        })
        .collect()
}

/// The number right before `suffix` in `line`.
fn count_before(line: &str, suffix: &str) -> usize {
    let head = &line[..line.find(suffix).expect("a count")];
    head.rsplit(' ').next().unwrap().parse().unwrap()
}

/// podium reads `sending` only to tell an idle holder of a capped kind (`rules.idle_seconds`), so it
/// asks the module for it only for the kinds an occupant holds through a slot (`report-sending`):
/// the camera mute toggles of everyone else were reported for nothing (about 3,000 reports per
/// yardstick run; issue 13). The slot holder's toggles of the capped kind still reach podium.
#[tokio::test]
async fn only_a_slot_holders_mute_toggles_of_its_capped_kind_reach_podium() {
    let room = "class-reports";
    let mut conference = start(CLASS_RULES, FocusOptions::default()).await;
    let alice = conference
        .join_shaped(room, "alice", Shape::Current, &[("alice", "video,screen")])
        .await;
    let bob = conference
        .join_shaped(
            room,
            "bob",
            Shape::Current,
            &[("alice", "video,screen"), ("bob", "video,screen")],
        )
        .await;
    conference
        .focus_holds("alice", &alice.track(Track::Camera))
        .await;
    conference
        .focus_holds("bob", &bob.track(Track::Camera))
        .await;
    bob.raise_hand(true);
    conference
        .wait_held(
            room,
            &[("alice", "video,screen"), ("bob", "audio,video,screen")],
        )
        .await;

    let podium = conference.podium();
    let events_of = |nick: &str, mark: usize| -> Vec<String> {
        podium.lines()[mark..]
            .iter()
            .filter(|l| {
                l.contains("\"occupant event\"") && l.contains(&format!("\"occupant\":\"{nick}\""))
            })
            .cloned()
            .collect()
    };
    // alice holds no slot: her camera going off and on again is no event; her hand going up (in the
    // same session, so after them) is, and puts her in the queue.
    let mark = podium.mark();
    alice.set_muted(Track::Camera, true).await;
    alice.set_muted(Track::Camera, false).await;
    alice.raise_hand(true);
    wait_audit(
        podium,
        &conference.db,
        "SELECT media, position, nick FROM queue",
        "audio|1|alice\n",
    )
    .await;
    // bob holds the audio slot: his microphone's toggles are read (he may have been muted by the
    // module before the slot, so he mutes first: the unmute is a change either way).
    bob.set_muted(Track::Audio, true).await;
    let bob_mark = podium.mark();
    bob.set_muted(Track::Audio, false).await;
    podium
        .wait_for_after(bob_mark, &["\"occupant event\"", "\"occupant\":\"bob\""])
        .await;
    assert_eq!(
        events_of("alice", mark).len(),
        1,
        "alice's camera toggles were reported: {:?}",
        events_of("alice", mark)
    );
}
