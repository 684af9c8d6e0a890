//! What a participant's own client is told when the module withholds a kind (README "What the
//! participant sees"): the mute IQ jicofo would send, from the focus occupant, once per kind per
//! withholding (at join, at a source-add, at a revoke), and Jitsi's A/V moderation messages from the
//! A/V moderation component's address, which a stock Jitsi Meet turns into "you may not unmute; raise
//! your hand". A real Prosody with mod_podium, the real podium binary and the stand-ins of
//! tests/common/ (the participant records every mute IQ and json-message it receives).

mod common;

use serde_json::Value;

use std::collections::BTreeSet;

use common::c2s::el;
use common::conference::{Conference, jingle_from_since};
use common::focus::FOCUS_NICK;
use common::jingle::{MUTE_AUDIO, MUTE_DESKTOP, MUTE_VIDEO, SourceSet};
use common::participant::{Participant, ParticipantView, Track};
use common::peer::is_result;
use common::prosody::{AV_MODERATION, DOMAIN, MUC};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];

/// Everyone may speak; alice may send everything; bob nothing else (until rule 3 lets him show a
/// camera).
const BOB_SPEAKS_ONLY: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (1, '*', 'everyone', NULL,      'audio', 'allow', 0,  'everyone may speak'),
    (2, '*', 'jid',      'alice@*', 'all',   'allow', 20, 'alice sends everything')";

const BOB_SHOWS_CAMERA: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note)
    VALUES (3, '*', 'jid', 'bob@*', 'video', 'allow', 30, 'bob shows his camera')";

const PING: &str = "urn:xmpp:ping";

/// alice (everything) and bob (audio only) in `room`; bob's session-accept (audio and camera) has
/// passed the module: the focus holds his audio.
async fn alice_and_bob(room: &str) -> (Conference, Participant, Participant) {
    let mut conference = Conference::start(USERS, BOB_SPEAKS_ONLY).await;
    let alice = conference
        .join(room, "alice", &[("alice", "audio,video,screen")])
        .await;
    let bob = conference
        .join(
            room,
            "bob",
            &[("alice", "audio,video,screen"), ("bob", "audio")],
        )
        .await;
    conference
        .focus_holds("bob", &bob.track(Track::Audio))
        .await;
    (conference, alice, bob)
}

/// Everything the server queued for `participant` before now has reached it: a ping's answer comes
/// after it on the same stream. (The module sends a decision's mute IQs in one go, so once one has
/// arrived, a duplicate would be in before the answer.)
async fn drained(participant: &Participant) {
    let answer = participant
        .iq("get", DOMAIN, el("ping", PING).build())
        .await;
    assert!(is_result(&answer), "{answer:?}");
}

/// How many mute IQs of `namespace` (text `true`) came from the focus occupant of `room`, all obeyed.
fn focus_mutes(view: &ParticipantView, room: &str, namespace: &str) -> usize {
    let focus = format!("{room}@{MUC}/{FOCUS_NICK}");
    view.mutes
        .iter()
        .filter(|mute| mute.namespace == namespace)
        .inspect(|mute| {
            assert_eq!(mute.from, focus, "{mute:?}");
            assert!(mute.applied && mute.text == "true", "{mute:?}");
        })
        .count()
}

/// The A/V moderation messages the participant received, as (mediaType, what) with what one of
/// "enabled", "approved", "removed"; each from the component's address, for `room`.
fn moderation_messages(view: &ParticipantView, room: &str) -> Vec<(String, String)> {
    view.json_messages
        .iter()
        .map(|(from, text)| {
            assert_eq!(from, AV_MODERATION, "{text}");
            let body: Value = serde_json::from_str(text).expect("json");
            assert_eq!(body["type"], "av_moderation", "{body}");
            assert_eq!(body["room"], format!("{room}@{MUC}"), "{body}");
            let what = ["enabled", "approved", "removed"]
                .into_iter()
                .find(|key| body[*key] == Value::Bool(true))
                .unwrap_or_else(|| panic!("nothing said: {body}"));
            (
                body["mediaType"].as_str().unwrap_or("").to_owned(),
                what.to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn ssrcs(sources: &SourceSet) -> BTreeSet<u32> {
    sources.ssrcs().into_iter().collect()
}

#[tokio::test]
async fn a_kind_withheld_at_join_or_source_add_is_muted_at_the_client_once_per_withholding() {
    let room = "told-1";
    let (conference, alice, bob) = alice_and_bob(room).await;

    // At join: bob's camera was withheld from his session-accept; the focus occupant tells his
    // client to mute it, as jicofo would, and it shows muted. Nothing about audio (allowed).
    bob.wait_until("bob is told to mute his camera", |view| {
        focus_mutes(view, room, MUTE_VIDEO) == 1
    })
    .await;
    assert_eq!(
        bob.view().muted.get("bob-v0"),
        Some(&true),
        "bob's client shows the camera muted"
    );

    // At source-add: a screenshare, withheld (the module answers it), is told once.
    let answer = bob.add_screenshare().await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("bob is told to mute his screenshare", |view| {
        focus_mutes(view, room, MUTE_DESKTOP) == 1
    })
    .await;

    // Stopped (source-remove, answered by the module) and started again: a new withholding, told again.
    let answer = bob.remove_sources(Track::Screenshare).await;
    assert!(is_result(&answer), "{answer:?}");
    let answer = bob.add_screenshare().await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("bob is told again", |view| {
        focus_mutes(view, room, MUTE_DESKTOP) == 2
    })
    .await;

    // bob unmutes his camera himself (lib-jitsi-meet's self-unmute IQ to the focus): jicofo (no A/V
    // moderation) answers, the camera stays withheld, and his client, which shows it live again, is
    // told again: one mute IQ for that unmute, no more.
    let answer = bob.mute_self("video", false).await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("bob is told to mute his camera again", |view| {
        focus_mutes(view, room, MUTE_VIDEO) == 2
    })
    .await;
    drained(&bob).await;
    let view = bob.view();
    assert_eq!(focus_mutes(&view, room, MUTE_VIDEO), 2, "{:?}", view.mutes);
    assert_eq!(
        focus_mutes(&view, room, MUTE_DESKTOP),
        2,
        "{:?}",
        view.mutes
    );
    assert_eq!(focus_mutes(&view, room, MUTE_AUDIO), 0, "{:?}", view.mutes);
    assert!(alice.mutes().is_empty(), "{:?}", alice.mutes());
    // An unmute of audio, which bob may send, is told nothing.
    let answer = bob.mute_self("audio", false).await;
    assert!(is_result(&answer), "{answer:?}");
    drained(&bob).await;
    assert_eq!(focus_mutes(&bob.view(), room, MUTE_AUDIO), 0);

    // What others learn is unchanged: the focus never saw bob's camera or screenshare.
    let seen: BTreeSet<u32> = jingle_from_since(&conference.focus, 0, room, "bob")
        .iter()
        .flat_map(|(_, sources)| sources.ssrcs())
        .collect();
    let refused = ssrcs(
        &bob.track(Track::Camera)
            .union(&bob.track(Track::Screenshare)),
    );
    assert!(
        seen.is_disjoint(&refused),
        "no refused SSRC of bob reached the focus: {seen:?}"
    );

    // A grant says nothing to the client by IQ (jicofo never unmutes anyone; lib-jitsi-meet acts on
    // `true` only): the camera is replayed to the focus.
    conference.edit(BOB_SHOWS_CAMERA).await;
    conference
        .focus_holds(
            "bob",
            &bob.track(Track::Audio).union(&bob.track(Track::Camera)),
        )
        .await;
    drained(&bob).await;
    assert_eq!(focus_mutes(&bob.view(), room, MUTE_VIDEO), 2);

    // A revoke tells the client once more: one mute, not one for the revoke and one for the
    // withholding it makes.
    conference.edit("DELETE FROM rules WHERE id = 3").await;
    bob.wait_until("bob is told to mute his camera after the revoke", |view| {
        focus_mutes(view, room, MUTE_VIDEO) == 3
    })
    .await;
    conference
        .focus_holds("bob", &bob.track(Track::Audio))
        .await;
    drained(&bob).await;
    let view = bob.view();
    assert_eq!(focus_mutes(&view, room, MUTE_VIDEO), 3, "{:?}", view.mutes);
    assert_eq!(
        focus_mutes(&view, room, MUTE_DESKTOP),
        2,
        "{:?}",
        view.mutes
    );
    assert_eq!(focus_mutes(&view, room, MUTE_AUDIO), 0, "{:?}", view.mutes);
}

#[tokio::test]
async fn the_client_hears_av_moderation_for_what_it_may_not_send() {
    let room = "told-2";
    let (conference, alice, bob) = alice_and_bob(room).await;

    // podium's first decision for bob refuses camera and screenshare: "moderation on, not approved"
    // for video and desktop, from the A/V moderation component's address, to bob only.
    bob.wait_until("bob hears A/V moderation for video and desktop", |view| {
        view.json_messages.len() == 2
    })
    .await;
    assert_eq!(
        moderation_messages(&bob.view(), room),
        pairs(&[("video", "enabled"), ("desktop", "enabled")])
    );

    // A grant: approved for video.
    conference.edit(BOB_SHOWS_CAMERA).await;
    bob.wait_until("bob hears he may show his camera", |view| {
        view.json_messages.len() == 3
    })
    .await;
    // A revoke: removed for video (moderation stays on, the approval is gone).
    conference.edit("DELETE FROM rules WHERE id = 3").await;
    bob.wait_until("bob hears he may not show it any more", |view| {
        view.json_messages.len() == 4
    })
    .await;
    drained(&bob).await;
    drained(&alice).await;
    assert_eq!(
        moderation_messages(&bob.view(), room),
        pairs(&[
            ("video", "enabled"),
            ("desktop", "enabled"),
            ("video", "approved"),
            ("video", "removed"),
        ])
    );
    // alice may send everything: she hears nothing, and her client behaves as without A/V moderation.
    assert!(
        alice.view().json_messages.is_empty(),
        "{:?}",
        alice.view().json_messages
    );
}

#[tokio::test]
async fn no_av_moderation_messages_when_the_option_is_empty() {
    let room = "told-3";
    let options = format!(
        "{}\n    podium_moderation_ui = {{ }}\n",
        common::prosody::CONFERENCE_OPTIONS
    );
    let mut conference = Conference::start_with(
        USERS,
        &options,
        common::focus::FocusOptions::default(),
        "",
        BOB_SPEAKS_ONLY,
    )
    .await;
    let bob = conference.join(room, "bob", &[("bob", "audio")]).await;
    // The mute IQ still comes; no json-message does.
    bob.wait_until("bob is told to mute his camera", |view| {
        focus_mutes(view, room, MUTE_VIDEO) == 1
    })
    .await;
    drained(&bob).await;
    assert!(
        bob.view().json_messages.is_empty(),
        "{:?}",
        bob.view().json_messages
    );
}

/// A modified client storming the focus with self-unmutes (review of the "told again on unmute"
/// path, issue 11's framing): each unmute of a withheld kind brings one mute IQ back, to the sender
/// only; an unmute of a kind it does not send brings none; the A/V moderation messages are not sent
/// again; the other participant hears nothing. No amplification, nothing kept per unmute.
#[tokio::test]
async fn a_self_unmute_storm_brings_one_mute_per_unmute_to_the_sender_only() {
    const STORM: usize = 40;
    let room = "told-storm";
    let (_conference, alice, bob) = alice_and_bob(room).await;
    bob.wait_until("bob is told about his camera", |view| {
        focus_mutes(view, room, MUTE_VIDEO) == 1 && view.json_messages.len() == 2
    })
    .await;
    for _ in 0..STORM {
        let answer = bob.mute_self("video", false).await;
        assert!(is_result(&answer), "{answer:?}");
    }
    bob.wait_until("one mute IQ per unmute", |view| {
        focus_mutes(view, room, MUTE_VIDEO) == 1 + STORM
    })
    .await;
    // bob shares no screen: unmuting it is told nothing, however often.
    for _ in 0..STORM {
        let answer = bob.mute_self("desktop", false).await;
        assert!(is_result(&answer), "{answer:?}");
    }
    drained(&bob).await;
    drained(&alice).await;
    let view = bob.view();
    assert_eq!(
        focus_mutes(&view, room, MUTE_VIDEO),
        1 + STORM,
        "{:?}",
        view.mutes
    );
    assert_eq!(
        focus_mutes(&view, room, MUTE_DESKTOP),
        0,
        "{:?}",
        view.mutes
    );
    assert_eq!(focus_mutes(&view, room, MUTE_AUDIO), 0, "{:?}", view.mutes);
    assert_eq!(
        moderation_messages(&view, room),
        pairs(&[("video", "enabled"), ("desktop", "enabled")])
    );
    assert!(alice.mutes().is_empty(), "{:?}", alice.mutes());
    assert!(
        alice.view().json_messages.is_empty(),
        "{:?}",
        alice.view().json_messages
    );
}
