//! The real lib-jitsi-meet as a participant: the 2021 npm bundle in headless Chromium
//! (`tests/common/browser.rs`, `tests/real-client/page.js`) joins over WebSocket a real Prosody with
//! mod_podium, the real podium binary on real SQLite, and the focus and bridge stand-ins, exactly as
//! `tests/enforcement.rs` builds its conference. What the stand-in participants model is checked here
//! against the client itself: its `session-accept` comes from a real WebRTC stack.
//!
//! Needs Debian's chromium and the bundles `scripts/test` fetches (`ensure_real_client` in
//! scripts/lib.sh); without them these tests fail and say what to run. The client's ICE to the
//! stand-in bridge fails after about 15 s (nobody listens on the candidate), so each scenario keeps
//! its client time well under that.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

use common::bridge::BridgePeer;
use common::browser::{Browser, PageParams};
use common::c2s::C2s;
use common::focus::{FocusPeer, JingleReceived, SessionState};
use common::jingle::{JINGLE, Media, SourceSet};
use common::podium::{Podium, write_config};
use common::prosody::{CONFERENCE_OPTIONS, MUC, Prosody};
use common::{decided, edit_rules, wait_held};

const USERS: &[&str] = &["focus", "jvb", "alice", "inspector"];

/// Everyone may speak; nobody may show a camera (rule 2, which the grant turns into an allow).
const AUDIO_ONLY_RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (1, '*', 'everyone', NULL, 'audio', 'allow', 0,  'everyone may speak'),
    (2, '*', 'everyone', NULL, 'video', 'deny',  10, 'no cameras')";

/// Everyone may speak and show a camera; nobody may share the screen.
const NO_SCREEN_RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (1, '*', 'everyone', NULL, 'audio,video', 'allow', 0,  'speak and show a camera'),
    (2, '*', 'everyone', NULL, 'screen',      'deny',  10, 'no screenshare')";

/// Prosody serving WebSocket, podium, the bridge and the focus.
struct Conference {
    prosody: Prosody,
    podium: Podium,
    db: PathBuf,
    inspector: C2s,
    bridge: BridgePeer,
    focus: FocusPeer,
}

impl Conference {
    async fn start(rules: &str) -> Conference {
        let prosody = Prosody::start_with_websocket(USERS, CONFERENCE_OPTIONS);
        let db = prosody.data_dir().join("rules/podium.db");
        let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
        let bridge = BridgePeer::connect(prosody.c2s_port).await;
        let focus = FocusPeer::connect(prosody.c2s_port).await;
        let podium = Podium::start(&write_config(&prosody, &db, ""));
        podium.wait_for(&["resync complete"]).await;
        edit_rules(&podium, &db, rules).await;
        Conference {
            prosody,
            podium,
            db,
            inspector,
            bridge,
            focus,
        }
    }

    /// Waits until the module holds `permissions` for `nick` in `room`, decided by podium.
    async fn wait_held(&mut self, room: &str, nick: &str, permissions: &str) {
        let expected = decided(&[(nick, permissions)]);
        wait_held(&mut self.inspector, &self.podium, room, &expected).await;
    }

    /// Waits until the focus holds exactly `ssrcs` for `room/nick` on an active session.
    async fn focus_holds(&self, room: &str, nick: &str, ssrcs: &BTreeSet<u32>) {
        let key = format!("{room}/{nick}");
        self.focus
            .wait_until(&format!("the focus holds {key}'s {ssrcs:?}"), |view| {
                view.endpoint(&key).is_some_and(|endpoint| {
                    endpoint.session == Some(SessionState::Active)
                        && &endpoint
                            .sources
                            .ssrcs()
                            .into_iter()
                            .collect::<BTreeSet<_>>()
                            == ssrcs
                })
            })
            .await;
    }

    /// Waits until the bridge holds exactly `audio` and `video` for `nick` in `room`.
    async fn bridge_holds(
        &self,
        room: &str,
        nick: &str,
        audio: &BTreeSet<u32>,
        video: &BTreeSet<u32>,
    ) {
        self.bridge
            .wait_until(
                &format!("the bridge holds {nick}'s audio {audio:?} video {video:?}"),
                |view| {
                    view.endpoint(room, nick).is_some_and(|endpoint| {
                        &endpoint.audio_ssrcs == audio && &endpoint.video_ssrcs == video
                    })
                },
            )
            .await;
    }

    /// The Jingle requests the focus received from `room/nick` after the first `since`, with their
    /// sources.
    fn jingle_from(
        &self,
        since: usize,
        room: &str,
        nick: &str,
    ) -> Vec<(JingleReceived, SourceSet)> {
        let from = format!("{room}@{MUC}/{nick}");
        self.focus
            .jingle_received()
            .into_iter()
            .skip(since)
            .filter(|received| received.from == from)
            .map(|received| {
                let jingle = received.iq.get_child("jingle", JINGLE).unwrap();
                let sources = SourceSet::from_contents(jingle).unwrap_or_default();
                (received, sources)
            })
            .collect()
    }
}

/// The SSRCs and groups of one media in the client's local SDP, as lib-jitsi-meet signals it
/// (simulcast layers and RTX included): `a=ssrc:` and `a=ssrc-group:` lines of its `m=` sections.
#[derive(Clone, Debug, Default)]
struct SdpMedia {
    ssrcs: BTreeSet<u32>,
    /// (semantics, SSRCs) per `a=ssrc-group:` line.
    groups: Vec<(String, Vec<u32>)>,
}

fn sdp_media(sdp: &str, media: Media) -> SdpMedia {
    let mut found = SdpMedia::default();
    let mut current = None;
    for line in sdp.lines() {
        if let Some(section) = line.strip_prefix("m=") {
            current = section.split(' ').next().and_then(Media::parse);
        } else if current != Some(media) {
            continue;
        } else if let Some(rest) = line.strip_prefix("a=ssrc-group:") {
            let mut words = rest.split(' ');
            let semantics = words.next().unwrap_or("").to_owned();
            found
                .groups
                .push((semantics, words.filter_map(|w| w.parse().ok()).collect()));
        } else if let Some(ssrc) = line
            .strip_prefix("a=ssrc:")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|ssrc| ssrc.parse().ok())
        {
            found.ssrcs.insert(ssrc);
        }
    }
    found
}

/// The real client in a room: joined, its session accepted at the focus.
struct Joined {
    conference: Conference,
    browser: Browser,
    room: &'static str,
    /// The client's MUC nick (its endpoint id), as the library reports it.
    nick: String,
    /// Its microphone and camera, from its local SDP.
    audio: SdpMedia,
    camera: SdpMedia,
}

/// Starts the conference with `rules`, opens the real client (microphone and camera) on `room`,
/// and waits until it has joined, podium has decided `permissions` for it and its `session-accept`
/// has reached the focus.
async fn join(room: &'static str, rules: &str, permissions: &str, source_names: bool) -> Joined {
    let mut conference = Conference::start(rules).await;
    let browser = Browser::open(
        &conference.prosody,
        PageParams {
            user: "alice",
            room,
            nick: "Alice",
            source_names,
        },
    )
    .await;
    let joined = browser.wait_type("conference-joined").await;
    let nick = joined["myUserId"]
        .as_str()
        .expect("the library reports its endpoint id")
        .to_owned();
    conference.wait_held(room, &nick, permissions).await;
    let key = format!("{room}/{nick}");
    conference
        .focus
        .wait_until("the client's session-accept reaches the focus", |view| {
            view.jingle.iter().any(|received| {
                received.action == "session-accept" && received.endpoint.as_deref() == Some(&key)
            })
        })
        .await;
    let state = browser.step(json!({"step": "report"})).await;
    let sdp = state["localSdp"]
        .as_str()
        .expect("the client has a local description");
    let audio = sdp_media(sdp, Media::Audio);
    let camera = sdp_media(sdp, Media::Video);
    assert_eq!(audio.ssrcs.len(), 1, "one microphone SSRC: {sdp}");
    assert!(
        !camera.ssrcs.is_empty(),
        "the client offered its camera: {sdp}"
    );
    Joined {
        conference,
        browser,
        room,
        nick,
        audio,
        camera,
    }
}

/// The local track of `media` ("audio" or "video") in a `report` step's answer.
fn local_track<'a>(state: &'a Value, media: &str) -> &'a Value {
    let tracks = state["tracks"].as_array().expect("local tracks");
    tracks
        .iter()
        .find(|track| track["media"] == media)
        .unwrap_or_else(|| panic!("a local {media} track: {tracks:?}"))
}

/// Scenario a, shared by the tests: the real client joins `room` with microphone and camera while
/// the rules allow audio and deny video. Asserts that its `session-accept` reaches the focus with
/// audio only, that the focus and the bridge hold exactly its audio, and that the client is not
/// broken: its camera track is still alive.
async fn join_audio_only(room: &'static str) -> Joined {
    let joined = join(room, AUDIO_ONLY_RULES, "audio", false).await;
    let Joined {
        conference,
        browser,
        nick,
        audio,
        ..
    } = &joined;
    let received = conference.jingle_from(0, room, nick);
    let (accept, accepted) = received
        .iter()
        .find(|(received, _)| received.action == "session-accept")
        .expect("a session-accept from the client");
    assert_eq!(
        accept.answer.attr("type"),
        Some("result"),
        "the focus accepted the session-accept: {:?}",
        accept.answer
    );
    let accept_video = accepted.of_media(Media::Video);
    assert!(
        accept_video.is_empty(),
        "no camera source and no video ssrc-group in the session-accept: {accept_video:?}"
    );
    for (received, sources) in &received {
        assert!(
            sources.of_media(Media::Video).is_empty(),
            "no camera SSRC ever reaches the focus: {}",
            String::from(&received.iq)
        );
    }
    conference.focus_holds(room, nick, &audio.ssrcs).await;
    conference
        .bridge_holds(room, nick, &audio.ssrcs, &BTreeSet::new())
        .await;

    // The client is not broken: its camera track is alive and unmuted, its session-accept was
    // answered `result`, and nothing failed.
    let state = browser.step(json!({"step": "report"})).await;
    let camera_track = local_track(&state, "video");
    assert_eq!(camera_track["videoType"], "camera", "{camera_track}");
    assert_eq!(camera_track["readyState"], "live", "{camera_track}");
    assert_eq!(camera_track["ended"], false, "{camera_track}");
    assert_eq!(camera_track["muted"], false, "{camera_track}");
    let answered = browser.view().of_type("iq").into_iter().any(|event| {
        event["request"] == "jingle urn:xmpp:jingle:1 session-accept" && event["iqType"] == "result"
    });
    assert!(
        answered,
        "the client's session-accept was answered result: {:#?}",
        browser.view()
    );
    assert_client_healthy(browser);
    joined
}

/// What the client reported is what a healthy client reports: no conference failure or error, no
/// page error, no answer to a request it never sent ("stray": a request the module made in the
/// client's name, answered to the client by mistake, would show here), and no refused request but
/// its TURN-credentials lookup (XEP-0215 `extdisco`, which this Prosody does not offer). Call after a
/// step, so every IQ the client received before it has been reported.
fn assert_client_healthy(browser: &Browser) {
    let view = browser.view();
    let failures: Vec<&Value> = view
        .events
        .iter()
        .filter(|event| {
            matches!(
                event["type"].as_str(),
                Some("conference-failed" | "conference-error" | "page-error")
            )
        })
        .collect();
    assert!(failures.is_empty(), "the client reported {failures:#?}");
    let strays: Vec<&Value> = view
        .of_type("iq")
        .into_iter()
        .filter(|event| event["stray"] == true)
        .collect();
    assert!(
        strays.is_empty(),
        "the client received stray answers: {strays:#?}"
    );
    let refused: Vec<&Value> = view
        .of_type("iq")
        .into_iter()
        .filter(|event| event["iqType"] == "error")
        .filter(|event| {
            !event["request"]
                .as_str()
                .is_some_and(|request| request.starts_with("services urn:xmpp:extdisco:"))
        })
        .collect();
    assert!(
        refused.is_empty(),
        "the client's requests were refused: {refused:#?}"
    );
}

#[tokio::test]
async fn real_client_joins_with_audio_only_when_video_is_denied() {
    join_audio_only("real-audio-only").await;
}

/// Scenario b: an SQL edit grants video while the client is in the room; the focus receives the
/// withheld camera under the client's Jingle sid, exactly as the client declared it, and the client
/// receives nothing (no answer to a request it never made).
#[tokio::test]
async fn real_client_camera_reaches_the_focus_when_video_is_granted() {
    let Joined {
        mut conference,
        browser,
        room,
        nick,
        audio,
        camera,
    } = join_audio_only("real-grant").await;
    let key = format!("{room}/{nick}");
    let sid = conference
        .focus
        .sid(&key)
        .expect("the client has a session");
    let focus_mark = conference.focus.jingle_received().len();
    let iq_mark = browser.view().of_type("iq").len();

    edit_rules(
        &conference.podium,
        &conference.db,
        "UPDATE rules SET effect = 'allow' WHERE id = 2",
    )
    .await;
    conference.wait_held(room, &nick, "audio,video").await;
    let everything: BTreeSet<u32> = audio.ssrcs.union(&camera.ssrcs).copied().collect();
    conference.focus_holds(room, &nick, &everything).await;
    conference
        .bridge_holds(room, &nick, &audio.ssrcs, &camera.ssrcs)
        .await;

    let adds: Vec<_> = conference
        .jingle_from(focus_mark, room, &nick)
        .into_iter()
        .filter(|(received, _)| received.action == "source-add")
        .collect();
    assert_eq!(
        adds.len(),
        1,
        "one source-add released the camera: {adds:?}"
    );
    let (add, added) = &adds[0];
    assert_eq!(add.sid, sid, "under the client's sid");
    assert_eq!(
        add.answer.attr("type"),
        Some("result"),
        "the focus accepted it: {:?}",
        add.answer
    );
    assert_eq!(
        added.ssrcs().into_iter().collect::<BTreeSet<_>>(),
        camera.ssrcs,
        "exactly the camera the client declared"
    );
    assert_eq!(
        added.len(),
        6,
        "3 simulcast layers and their RTX: {added:?}"
    );
    let mut semantics: Vec<&str> = added.groups.iter().map(|g| g.semantics.as_str()).collect();
    semantics.sort_unstable();
    assert_eq!(semantics, ["FID", "FID", "FID", "SIM"], "{added:?}");
    let mut declared: Vec<(String, Vec<u32>)> = camera.groups.clone();
    let mut released: Vec<(String, Vec<u32>)> = added
        .groups
        .iter()
        .map(|group| (group.semantics.clone(), group.ssrcs.clone()))
        .collect();
    declared.sort();
    released.sort();
    assert_eq!(released, declared, "the groups the client declared, intact");
    for source in &added.sources {
        assert!(source.msid.is_some(), "msid intact: {source:?}");
        assert_eq!(source.media, Media::Video);
    }

    // A round trip through the page, so every IQ the client received so far has been reported.
    browser.step(json!({"step": "report"})).await;
    let view = browser.view();
    let requests_after_grant: Vec<&Value> = view
        .of_type("iq")
        .into_iter()
        .skip(iq_mark)
        .filter(|event| event["iqType"] == "set" || event["iqType"] == "get")
        .collect();
    assert!(
        requests_after_grant.is_empty(),
        "the grant is invisible to the client: {requests_after_grant:#?}"
    );
    assert_client_healthy(&browser);
}

/// Scenario c: the client switches its camera to the screen with `replaceTrack`, which sends no
/// Jingle at all: only presence says so. Screenshare is refused, so the module withdraws the source
/// from the focus, the bridge mutes the endpoint's video and the client is told to mute its desktop;
/// switching back to the camera brings the same sources back.
#[tokio::test]
async fn real_client_screenshare_by_replace_track_is_withdrawn_when_screen_is_denied() {
    // With source-name signaling presence says `<SourceInfo>{"<nick>-v0":{"videoType":"desktop"}}`.
    // Without it (the 2021 default) it says `<videoType>desktop</videoType>` in jabber:client.
    screen_switch_is_enforced("real-no-screen", true).await;
}

/// Scenario c with the 2021 client's defaults (no source names): presence says
/// `<videoType>desktop</videoType>`, and the nameless camera sources are the track it means.
#[tokio::test]
async fn real_client_screenshare_without_source_names_is_withdrawn_too() {
    screen_switch_is_enforced("real-no-screen-legacy", false).await;
}

async fn screen_switch_is_enforced(room: &'static str, source_names: bool) {
    let Joined {
        conference,
        browser,
        room,
        nick,
        audio,
        camera,
    } = join(room, NO_SCREEN_RULES, "audio,video", source_names).await;
    let everything: BTreeSet<u32> = audio.ssrcs.union(&camera.ssrcs).copied().collect();
    conference.focus_holds(room, &nick, &everything).await;
    conference
        .bridge_holds(room, &nick, &audio.ssrcs, &camera.ssrcs)
        .await;
    let focus_mark = conference.focus.jingle_received().len();

    browser.step(json!({"step": "screenshare"})).await;
    browser
        .wait_event("the client's presence declares a screenshare", |event| {
            event["type"] == "presence-sent"
                && event["xml"].as_str().is_some_and(|xml| {
                    xml.contains(r#""videoType":"desktop""#)
                        || xml.contains("<videoType>desktop</videoType>")
                })
        })
        .await;
    conference.focus_holds(room, &nick, &audio.ssrcs).await;
    conference
        .bridge_holds(room, &nick, &audio.ssrcs, &BTreeSet::new())
        .await;
    conference
        .bridge
        .wait_until("the bridge mutes the client's video", |view| {
            view.endpoint(room, &nick)
                .is_some_and(|endpoint| endpoint.force_mute_video && !endpoint.force_mute_audio)
        })
        .await;
    browser
        .wait_event("the client is told to mute its desktop", |event| {
            event["type"] == "iq"
                && event["iqType"] == "set"
                && event["xml"]
                    .as_str()
                    .is_some_and(|xml| xml.contains("http://jitsi.org/jitmeet/desktop"))
        })
        .await;
    let sid = conference.focus.sid(&format!("{room}/{nick}"));
    let removals: Vec<_> = conference
        .jingle_from(focus_mark, room, &nick)
        .into_iter()
        .filter(|(received, _)| received.action == "source-remove")
        .collect();
    assert_eq!(
        removals.len(),
        1,
        "one source-remove withdrew the camera: {removals:?}"
    );
    let (removal, removed) = &removals[0];
    assert_eq!(Some(&removal.sid), sid.as_ref(), "under the client's sid");
    assert_eq!(
        removed.ssrcs().into_iter().collect::<BTreeSet<_>>(),
        camera.ssrcs,
        "exactly the sources that now carry the screen"
    );
    let state = browser.step(json!({"step": "report"})).await;
    let desktop = local_track(&state, "video");
    assert_eq!(desktop["videoType"], "desktop", "{desktop}");
    assert_eq!(desktop["readyState"], "live", "{desktop}");

    browser.step(json!({"step": "camera"})).await;
    conference.focus_holds(room, &nick, &everything).await;
    conference
        .bridge_holds(room, &nick, &audio.ssrcs, &camera.ssrcs)
        .await;
    conference
        .bridge
        .wait_until("the bridge unmutes the client's video", |view| {
            view.endpoint(room, &nick)
                .is_some_and(|endpoint| !endpoint.force_mute_video && !endpoint.force_mute_audio)
        })
        .await;
    browser.step(json!({"step": "report"})).await;
    assert_client_healthy(&browser);
}
