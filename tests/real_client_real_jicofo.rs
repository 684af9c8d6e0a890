//! The real lib-jitsi-meet in Chromium against the real jicofo (issue 12, point 1: "participants ...
//! as the real lib-jitsi-meet in Chromium"): a real Prosody with mod_podium, the real podium binary on
//! SQLite, the operator's jicofo (tests/common/real_jicofo.rs, `PODIUM_JICOFO_CLASSPATH`), the bridge
//! stand-in, and two pages (tests/common/browser.rs) of whichever lib-jitsi-meet bundle
//! `TEST_REAL_CLIENT_DIR` holds (the 2021 npm bundle in CI; a current build works too, with the
//! library's default codec order, since jicofo offers AV1, VP9, VP8 and H264). Opt in:
//!
//! ```text
//! PODIUM_JICOFO_CLASSPATH=<your jicofo's classpath> cargo test --test real_client_real_jicofo -- --ignored
//! ```
//!
//! What is asserted is what the pages see: alice's remote tracks of bob, and bob's own camera. The
//! bridge stand-in's ICE candidates lead nowhere, so the client restarts its session about 15 s after
//! it started; every step here completes well before that.

mod common;

use std::time::Instant;

use serde_json::{Value, json};

use common::bridge::BridgePeer;
use common::browser::{Browser, PageParams};
use common::c2s::C2s;
use common::podium::{Podium, write_config};
use common::prosody::{CONFERENCE_OPTIONS, Prosody};
use common::real_jicofo::RealJicofo;
use common::{decided, edit_rules, wait_held};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];
const ROOM: &str = "room1";
/// Everyone may speak; only alice may show a camera (rule 2, which the grant turns into an allow).
const RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (1, '*', 'everyone', NULL,      'audio', 'allow', 0,  'everyone may speak'),
    (2, '*', 'everyone', NULL,      'video', 'deny',  10, 'no cameras'),
    (3, '*', 'jid',      'alice@*', 'video', 'allow', 20, 'alice shows her camera')";

/// The remote tracks of `owner` that a `report` step lists, as (media, videoType).
fn remote_of(state: &Value, owner: &str) -> Vec<(String, Option<String>)> {
    let mut tracks: Vec<(String, Option<String>)> = state["remoteTracks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|track| track["participantId"] == owner)
        .map(|track| {
            (
                track["media"].as_str().unwrap_or("").to_owned(),
                track["videoType"].as_str().map(str::to_owned),
            )
        })
        .collect();
    tracks.sort();
    tracks
}

async fn open(prosody: &Prosody, user: &str) -> (Browser, String) {
    let browser = Browser::open(
        prosody,
        PageParams {
            user,
            room: ROOM,
            nick: user,
            source_names: true,
            codecs: None,
        },
    )
    .await;
    let joined = browser.wait_type("conference-joined").await;
    let endpoint = joined["myUserId"].as_str().unwrap().to_owned();
    (browser, endpoint)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the operator's jicofo: set PODIUM_JICOFO_CLASSPATH (see the file's doc)"]
async fn real_clients_see_withhold_grant_and_revoke_with_the_real_jicofo() {
    common::real_jicofo::classpath();
    let prosody = Prosody::start_with_websocket(USERS, CONFERENCE_OPTIONS);
    let db = prosody.data_dir().join("rules/podium.db");
    let mut inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
    let _bridge = BridgePeer::connect(prosody.c2s_port).await;
    let _jicofo = RealJicofo::start(&prosody).await;
    let podium = Podium::start(&write_config(&prosody, &db, ""));
    podium.wait_for(&["resync complete"]).await;
    edit_rules(&podium, &db, RULES).await;

    // jicofo invites nobody before two participants are in (its default minimum).
    let (alice, a) = open(&prosody, "alice").await;
    let (bob, b) = open(&prosody, "bob").await;
    let accepted = |event: &Value| {
        event["type"] == "iq"
            && event["request"] == "jingle urn:xmpp:jingle:1 session-accept"
            && event["iqType"] == "result"
    };
    alice
        .wait_event("jicofo accepts alice's session", accepted)
        .await;
    bob.wait_event("jicofo accepts bob's session", accepted)
        .await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[(&a, "audio,video"), (&b, "audio")]),
    )
    .await;

    // Withheld at join: alice gets bob's microphone, not his camera; bob gets both of alice's.
    let bob_track = |media: &'static str, b: String| {
        move |event: &Value| {
            event["participantId"] == b.as_str()
                && event["media"] == media
                && event["isLocal"] == false
        }
    };
    alice
        .wait_event("alice receives bob's microphone", {
            let is = bob_track("audio", b.clone());
            move |event| event["type"] == "track-added" && is(event)
        })
        .await;
    let alice_camera = a.clone();
    bob.wait_event("bob receives alice's camera", move |event| {
        event["type"] == "track-added"
            && event["participantId"] == alice_camera.as_str()
            && event["media"] == "video"
    })
    .await;
    let state = alice.step(json!({"step": "report"})).await;
    assert_eq!(
        remote_of(&state, &b),
        [("audio".to_owned(), None)],
        "{state}"
    );
    // bob's page is told his camera is muted (the module's mute IQ for a kind withheld at join).
    bob.wait_event("bob's camera is muted at join", |event| {
        event["type"] == "track-mute-changed"
            && event["isLocal"] == true
            && event["media"] == "video"
            && event["muted"] == true
    })
    .await;

    // SQL grant: bob's camera reaches alice.
    let mark = alice.mark();
    let started = Instant::now();
    edit_rules(
        &podium,
        &db,
        "UPDATE rules SET effect = 'allow' WHERE id = 2",
    )
    .await;
    alice
        .wait_event_after(mark, "alice receives bob's camera", {
            let is = bob_track("video", b.clone());
            move |event| event["type"] == "track-added" && is(event)
        })
        .await;
    println!(
        "grant: bob's camera at alice's page {:?} after the rules were loaded",
        started.elapsed()
    );

    // bob turns his camera on, as a person would once allowed.
    let bob_mark = bob.mark();
    bob.step(json!({"step": "unmute", "kind": "video"})).await;
    bob.wait_event_after(bob_mark, "bob's camera is live", |event| {
        event["type"] == "track-mute-changed"
            && event["isLocal"] == true
            && event["media"] == "video"
            && event["muted"] == false
    })
    .await;

    // SQL revoke: alice loses it, bob's camera is muted by the mute IQ.
    let (alice_mark, bob_mark) = (alice.mark(), bob.mark());
    let started = Instant::now();
    edit_rules(
        &podium,
        &db,
        "UPDATE rules SET effect = 'deny' WHERE id = 2",
    )
    .await;
    alice
        .wait_event_after(alice_mark, "alice's track of bob's camera is removed", {
            let is = bob_track("video", b.clone());
            move |event| event["type"] == "track-removed" && is(event)
        })
        .await;
    println!(
        "revoke: bob's camera gone from alice's page {:?} after the rules were loaded",
        started.elapsed()
    );
    bob.wait_event_after(bob_mark, "bob's camera is muted", |event| {
        event["type"] == "track-mute-changed"
            && event["isLocal"] == true
            && event["media"] == "video"
            && event["muted"] == true
    })
    .await;

    // bob unmutes: his page asks the focus (a mute IQ `false`), jicofo answers, and nothing of his
    // camera reaches alice: the module still withholds it.
    let (mark, bob_mark) = (alice.mark(), bob.mark());
    bob.step(json!({"step": "unmute", "kind": "video"})).await;
    let answer = bob
        .wait_event_after(
            bob_mark,
            "the focus answers bob's unmute request",
            |event| {
                event["type"] == "iq" && event["request"] == "mute http://jitsi.org/jitmeet/video"
            },
        )
        .await;
    println!("bob's unmute request was answered {}", answer["iqType"]);
    let state = alice.step(json!({"step": "report"})).await;
    assert!(
        alice
            .view()
            .events
            .iter()
            .skip(mark)
            .all(|event| !(event["type"] == "track-added" && event["participantId"] == b.as_str())),
        "nothing of bob's camera reaches alice after his unmute: {:#?}",
        alice.view()
    );
    assert_eq!(
        remote_of(&state, &b),
        [("audio".to_owned(), None)],
        "{state}"
    );
}
