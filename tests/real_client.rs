//! The real lib-jitsi-meet as a participant: the 2021 npm bundle in headless Chromium
//! (`tests/common/browser.rs`, `tests/real-client/page.js`) joins over WebSocket a real Prosody with
//! mod_podium, the real podium binary on real SQLite, and the focus and bridge stand-ins, exactly as
//! `tests/enforcement.rs` builds its conference. What the stand-in participants model is checked here
//! against the client itself: its `session-accept` comes from a real WebRTC stack. A scenario may
//! open several pages (one account each) in one room; each reports its own events.
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
use common::c2s::{C2s, PODIUM, attr, el};
use common::focus::{FOCUS_NICK, FocusPeer, JingleReceived, SessionState};
use common::jingle::{COLIBRI2, JINGLE, MUTE_AUDIO, MUTE_VIDEO, Media, SourceSet};
use common::peer::is_result;
use common::podium::{Podium, write_config};
use common::prosody::{COMPONENT, CONFERENCE_OPTIONS, MUC, Prosody};
use common::{decided, edit_rules, wait_held};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];

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

/// Rule 3 silences everyone: added to [`NO_SCREEN_RULES`], it revokes audio.
const SILENCE_RULE: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (3, '*', 'everyone', NULL, 'audio', 'deny', 20, 'silence')";

/// Everyone may speak; only alice may show a camera (rule 2, which the grant turns into an allow).
const ALICE_SHOWS_RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (1, '*', 'everyone', NULL,      'audio', 'allow', 0,  'everyone may speak'),
    (2, '*', 'everyone', NULL,      'video', 'deny',  10, 'no cameras'),
    (3, '*', 'jid',      'alice@*', 'video', 'allow', 20, 'alice shows her camera')";

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

    /// Waits until the module holds exactly `held` (nick, permissions) in `room`, decided by podium.
    async fn wait_held(&mut self, room: &str, held: &[(&str, &str)]) {
        wait_held(&mut self.inspector, &self.podium, room, &decided(held)).await;
    }

    /// Opens the real client (microphone and camera) as `user` on `room` and waits until it has
    /// joined, the module holds `permissions` for it (and `others` for those already in the room)
    /// and its `session-accept` has reached the focus.
    async fn open_client(
        &mut self,
        room: &str,
        user: &str,
        source_names: bool,
        permissions: &str,
        others: &[(&str, &str)],
    ) -> Client {
        let browser = Browser::open(
            &self.prosody,
            PageParams {
                user,
                room,
                nick: user,
                source_names,
                codecs: None,
            },
        )
        .await;
        let joined = browser.wait_type("conference-joined").await;
        let nick = joined["myUserId"]
            .as_str()
            .expect("the library reports its endpoint id")
            .to_owned();
        let mut held = others.to_vec();
        held.push((&nick, permissions));
        self.wait_held(room, &held).await;
        let key = format!("{room}/{nick}");
        self.focus
            .wait_until("the client's session-accept reaches the focus", |view| {
                view.jingle.iter().any(|received| {
                    received.action == "session-accept"
                        && received.endpoint.as_deref() == Some(&key)
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
        Client {
            browser,
            nick,
            audio,
            camera,
        }
    }

    /// The module's own account of `nick` in `room` (`<inspect/>`): its Jingle session and how many
    /// of its sources the module forwarded to the focus and withholds.
    async fn module_account(&mut self, room: &str, nick: &str) -> ModuleAccount {
        let answer = self
            .inspector
            .iq(
                "get",
                MUC,
                el("inspect", PODIUM)
                    .attr(attr("room"), format!("{room}@{MUC}"))
                    .build(),
            )
            .await;
        let occupant_jid = format!("{room}@{MUC}/{nick}");
        let occupant = answer
            .get_child("inspect", PODIUM)
            .and_then(|inspect| {
                inspect
                    .children()
                    .find(|occupant| occupant.attr("jid") == Some(occupant_jid.as_str()))
            })
            .unwrap_or_else(|| panic!("the module knows {occupant_jid}: {answer:?}"));
        let count = |name: &str| {
            occupant
                .attr(name)
                .and_then(|count| count.parse().ok())
                .unwrap_or_else(|| panic!("a count `{name}`: {occupant:?}"))
        };
        ModuleAccount {
            session: occupant.attr("session").map(str::to_owned),
            forwarded: count("forwarded"),
            withheld: count("withheld"),
        }
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

/// What the module holds of one occupant's media (see [`Conference::module_account`]).
#[derive(Debug, PartialEq, Eq)]
struct ModuleAccount {
    session: Option<String>,
    forwarded: usize,
    withheld: usize,
}

/// One real client in a room: its page, its endpoint id (the MUC nick, as the library reports it)
/// and its microphone and camera as its local SDP declares them.
struct Client {
    browser: Browser,
    nick: String,
    audio: SdpMedia,
    camera: SdpMedia,
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

/// Starts the conference with `rules`, opens the real client (microphone and camera) as alice on
/// `room`, and waits until it has joined, podium has decided `permissions` for it and its
/// `session-accept` has reached the focus.
async fn join(room: &'static str, rules: &str, permissions: &str, source_names: bool) -> Joined {
    let mut conference = Conference::start(rules).await;
    let Client {
        browser,
        nick,
        audio,
        camera,
    } = conference
        .open_client(room, "alice", source_names, permissions, &[])
        .await;
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

    // The client is told, as jicofo would tell it (a mute IQ from the focus occupant), that its
    // camera is muted, and shows it muted: the person does not believe others see them. (Before,
    // the camera stayed live and unmuted in the page.)
    browser
        .wait_event("the client is told to mute its camera", |event| {
            event["type"] == "iq"
                && event["iqType"] == "set"
                && event["from"] == format!("{room}@{MUC}/{FOCUS_NICK}")
                && event["xml"]
                    .as_str()
                    .is_some_and(|xml| xml.contains(MUTE_VIDEO) && xml.contains(">true</mute>"))
        })
        .await;
    browser
        .wait_event("the client mutes its camera", |event| {
            event["type"] == "track-mute-changed"
                && event["media"] == "video"
                && event["isLocal"] == true
                && event["muted"] == true
        })
        .await;
    // It discovered the A/V moderation component and heard that video is moderated for it.
    browser
        .wait_event("the client hears video is moderated", |event| {
            event["type"] == "av-moderation-changed"
                && event["enabled"] == true
                && event["mediaType"] == "video"
        })
        .await;

    // The client is not broken: its camera track is muted, not disposed (the 2021 library stops a
    // muted camera's stream and renegotiates; the module answers the source-remove that follows,
    // since the focus never had those sources), its session-accept was answered `result`, and
    // nothing failed.
    let state = browser.step(json!({"step": "report"})).await;
    assert_eq!(state["avModerationSupported"], true, "{state}");
    let camera_track = local_track(&state, "video");
    assert_eq!(camera_track["videoType"], "camera", "{camera_track}");
    assert_eq!(camera_track["disposed"], false, "{camera_track}");
    assert_eq!(camera_track["ended"], false, "{camera_track}");
    assert_eq!(camera_track["muted"], true, "{camera_track}");
    for (received, sources) in &conference.jingle_from(0, room, nick) {
        assert!(
            sources.of_media(Media::Video).is_empty(),
            "no camera SSRC ever reaches the focus: {}",
            String::from(&received.iq)
        );
    }
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
    conference.wait_held(room, &[(&nick, "audio,video")]).await;
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

    // The client hears it may show its camera again (A/V moderation "approved", which jitsi-meet
    // shows as "you may unmute"); the person turns the camera on, and it is live at the focus.
    browser
        .wait_event("the client hears video is approved", |event| {
            event["type"] == "av-moderation-approved" && event["mediaType"] == "video"
        })
        .await;
    let page_mark = browser.mark();
    browser
        .step(json!({"step": "unmute", "kind": "video"}))
        .await;
    browser
        .wait_event_after(page_mark, "the client's camera is unmuted", |event| {
            event["type"] == "track-mute-changed"
                && event["media"] == "video"
                && event["isLocal"] == true
                && event["muted"] == false
        })
        .await;
    let state = browser.step(json!({"step": "report"})).await;
    let camera_track = local_track(&state, "video");
    assert_eq!(camera_track["muted"], false, "{camera_track}");
    assert_eq!(camera_track["readyState"], "live", "{camera_track}");
    conference.focus_holds(room, &nick, &everything).await;
    // The 2021 client kept the camera's sources in its session while muted: unmuting sends only its
    // self-unmute to the focus occupant, no Jingle.
    let view = browser.view();
    let requests: Vec<&str> = view
        .events
        .iter()
        .skip(page_mark)
        .filter(|event| event["type"] == "iq-sent")
        .filter_map(|event| event["request"].as_str())
        .filter(|request| !request.starts_with("ping "))
        .collect();
    assert_eq!(requests, [format!("mute {MUTE_VIDEO}")], "{requests:?}");
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

/// An SQL edit revokes audio while the client speaks: the focus gets a `source-remove` of the
/// microphone under the client's sid, the bridge force-mutes the endpoint's audio, and the client,
/// told by the focus occupant, mutes its microphone. The client then unmutes itself, which gains it
/// nothing: the focus never gets the microphone back and the bridge keeps it muted.
#[tokio::test]
async fn real_client_audio_revoked_by_sql_is_withdrawn_and_muted_and_unmuting_gains_nothing() {
    let Joined {
        mut conference,
        browser,
        room,
        nick,
        audio,
        camera,
    } = join("real-revoke", NO_SCREEN_RULES, "audio,video", false).await;
    let key = format!("{room}/{nick}");
    let occupant_jid = format!("{room}@{MUC}/{nick}");
    let everything: BTreeSet<u32> = audio.ssrcs.union(&camera.ssrcs).copied().collect();
    conference.focus_holds(room, &nick, &everything).await;
    conference
        .bridge_holds(room, &nick, &audio.ssrcs, &camera.ssrcs)
        .await;
    let sid = conference
        .focus
        .sid(&key)
        .expect("the client has a session");
    let focus_mark = conference.focus.jingle_received().len();
    let page_mark = browser.mark();

    edit_rules(&conference.podium, &conference.db, SILENCE_RULE).await;
    conference.wait_held(room, &[(&nick, "video")]).await;
    conference.focus_holds(room, &nick, &camera.ssrcs).await;
    conference
        .bridge_holds(room, &nick, &BTreeSet::new(), &camera.ssrcs)
        .await;
    conference
        .bridge
        .wait_until("the bridge force-mutes the client's audio", |view| {
            view.endpoint(room, &nick)
                .is_some_and(|endpoint| endpoint.force_mute_audio && !endpoint.force_mute_video)
        })
        .await;
    let removals: Vec<_> = conference
        .jingle_from(focus_mark, room, &nick)
        .into_iter()
        .filter(|(received, _)| received.action == "source-remove")
        .collect();
    assert_eq!(
        removals.len(),
        1,
        "one source-remove withdrew the microphone: {removals:?}"
    );
    let (removal, removed) = &removals[0];
    assert_eq!(removal.sid, sid, "under the client's sid");
    assert!(is_result(&removal.answer), "{:?}", removal.answer);
    assert_eq!(
        removed.ssrcs().into_iter().collect::<BTreeSet<_>>(),
        audio.ssrcs,
        "exactly the microphone"
    );

    // The client is told by the focus occupant (lib-jitsi-meet ignores a mute from anyone else) and
    // mutes its microphone.
    let mute = browser
        .wait_event_after(page_mark, "the client is told to mute its audio", |event| {
            event["type"] == "iq"
                && event["iqType"] == "set"
                && event["xml"]
                    .as_str()
                    .is_some_and(|xml| xml.contains(MUTE_AUDIO))
        })
        .await;
    assert_eq!(mute["from"], format!("{room}@{MUC}/{FOCUS_NICK}"), "{mute}");
    assert!(
        mute["xml"]
            .as_str()
            .is_some_and(|xml| xml.contains(">true</mute>")),
        "{mute}"
    );
    browser
        .wait_event_after(page_mark, "the client mutes its microphone", |event| {
            event["type"] == "track-mute-changed"
                && event["media"] == "audio"
                && event["isLocal"] == true
                && event["muted"] == true
        })
        .await;
    let state = browser.step(json!({"step": "report"})).await;
    let microphone = local_track(&state, "audio");
    assert_eq!(microphone["muted"], true, "{microphone}");

    // The client unmutes itself.
    let page_mark = browser.mark();
    let focus_mark = conference.focus.jingle_received().len();
    let bridge_mark = conference.bridge.requests().len();
    browser
        .step(json!({"step": "unmute", "kind": "audio"}))
        .await;
    browser
        .wait_event_after(page_mark, "the client's microphone is unmuted", |event| {
            event["type"] == "track-mute-changed"
                && event["media"] == "audio"
                && event["isLocal"] == true
                && event["muted"] == false
        })
        .await;
    // It says so in presence, then (muted by the focus before) with a mute IQ `false` to the focus
    // occupant, in this order on its one WebSocket (lib-jitsi-meet `_setMuted`: `_sendMuteStatus`
    // sends presence, then TRACK_MUTE_CHANGED makes the conference send the IQ).
    let unmuted_presence = |event: &Value| {
        event["type"] == "presence-sent"
            && event["xml"]
                .as_str()
                .is_some_and(|xml| xml.contains("<audiomuted>false</audiomuted>"))
    };
    let unmute_iq = |event: &Value| {
        event["type"] == "iq-sent"
            && event["request"] == format!("mute {MUTE_AUDIO}")
            && event["xml"]
                .as_str()
                .is_some_and(|xml| xml.contains(">false</mute>"))
    };
    browser
        .wait_event_after(
            page_mark,
            "the client's presence says unmuted",
            unmuted_presence,
        )
        .await;
    browser
        .wait_event_after(
            page_mark,
            "the client tells the focus it unmuted",
            unmute_iq,
        )
        .await;
    let view = browser.view();
    let position = |matches: &dyn Fn(&Value) -> bool| {
        view.events
            .iter()
            .skip(page_mark)
            .position(matches)
            .unwrap()
    };
    assert!(
        position(&unmuted_presence) < position(&unmute_iq),
        "the presence went out before the mute IQ: {:#?}",
        &view.events[page_mark..]
    );
    conference
        .focus
        .wait_until("the focus gets the client's unmute", |view| {
            view.mutes.iter().any(|mute| {
                mute.from == occupant_jid && mute.media == "audio" && mute.text == "false"
            })
        })
        .await;
    // The microphone is still withheld, so the client, which shows it live again, is told again by
    // the focus occupant and mutes it: the person does not believe they are heard.
    browser
        .wait_event_after(page_mark, "the client is told to mute again", |event| {
            event["type"] == "iq"
                && event["iqType"] == "set"
                && event["from"] == format!("{room}@{MUC}/{FOCUS_NICK}")
                && event["xml"]
                    .as_str()
                    .is_some_and(|xml| xml.contains(MUTE_AUDIO) && xml.contains(">true</mute>"))
        })
        .await;
    browser
        .wait_event_after(
            page_mark,
            "the client mutes its microphone again",
            |event| {
                event["type"] == "track-mute-changed"
                    && event["media"] == "audio"
                    && event["isLocal"] == true
                    && event["muted"] == true
            },
        )
        .await;

    // Nothing the unmute started can still be on its way once these have happened, in this order:
    // * the focus got the mute IQ: Prosody handles one session's stanzas in order, so the presence
    //   (and any Jingle the client sent with the unmute) had been through mod_podium, which reported
    //   the presence to podium and forwarded or withheld the Jingle, before the IQ was routed;
    // * podium answered a ping: it reads its component stream in order and handles one stanza at a
    //   time, so it had handled that presence report and sent any permissions it led to before the
    //   answer, and the module got them before the answer too;
    // * the module answered `<inspect/>` after that, so its account includes them;
    // * the bridge answered a force-mute update the focus sent after all this through the bridge
    //   MUC, where mod_podium rewrites it, on the same path as any Colibri2 the module sent before.
    let ping = conference
        .inspector
        .iq("get", COMPONENT, el("ping", "urn:xmpp:ping").build())
        .await;
    assert!(is_result(&ping), "podium answers a ping: {ping:?}");
    conference.wait_held(room, &[(&nick, "video")]).await;
    assert_eq!(
        conference.module_account(room, &nick).await,
        ModuleAccount {
            session: Some(sid.clone()),
            forwarded: camera.ssrcs.len(),
            withheld: audio.ssrcs.len(),
        },
        "the module still withholds the microphone"
    );
    // jicofo's own force-mute update with its unmuted view, rewritten to podium's on its way.
    let answer = conference.focus.force_mute(&key, false, false).await;
    assert!(is_result(&answer), "{answer:?}");
    let at_bridge = conference
        .bridge
        .endpoint(room, &nick)
        .expect("the client is at the bridge");
    assert!(
        at_bridge.force_mute_audio && !at_bridge.force_mute_video,
        "the bridge keeps the audio muted: {at_bridge:?}"
    );
    assert!(at_bridge.audio_ssrcs.is_empty(), "{at_bridge:?}");
    assert_eq!(at_bridge.video_ssrcs, camera.ssrcs, "{at_bridge:?}");
    for request in conference.bridge.requests().iter().skip(bridge_mark) {
        let force_mutes = request
            .iq
            .get_child("conference-modify", COLIBRI2)
            .into_iter()
            .flat_map(|modify| modify.children())
            .filter(|endpoint| endpoint.attr("id") == Some(nick.as_str()))
            .filter_map(|endpoint| endpoint.get_child("force-mute", COLIBRI2));
        for force_mute in force_mutes {
            assert_eq!(
                force_mute.attr("audio"),
                Some("true"),
                "nothing lifted the audio mute: {:?}",
                request.iq
            );
        }
    }
    let focus_holds: BTreeSet<u32> = conference.focus.sources(&key).ssrcs().into_iter().collect();
    assert_eq!(focus_holds, camera.ssrcs, "the focus holds the camera only");
    for (received, sources) in conference.jingle_from(focus_mark, room, &nick) {
        assert!(
            sources.of_media(Media::Audio).is_empty(),
            "the microphone never reaches the focus again: {}",
            String::from(&received.iq)
        );
    }

    // The client shows the microphone muted again (before, it believed itself unmuted), and nothing
    // failed.
    let state = browser.step(json!({"step": "report"})).await;
    let microphone = local_track(&state, "audio");
    assert_eq!(microphone["muted"], true, "{microphone}");
    assert_eq!(microphone["readyState"], "live", "{microphone}");
    assert_client_healthy(&browser);
}

/// Whether `event` is a remote track of `media` owned by `owner`, added to the page.
fn remote_track_added(event: &Value, owner: &str, media: &str) -> bool {
    event["type"] == "track-added"
        && event["isLocal"] == false
        && event["participantId"] == owner
        && event["media"] == media
}

/// The Jingle IQs the focus occupant sent to a page, after the first `mark` events, whose XML
/// carries sources as jicofo's `<json-message>`.
fn json_sources_received(browser: &Browser, mark: usize, room: &str) -> Vec<Value> {
    let focus_occupant = format!("{room}@{MUC}/{FOCUS_NICK}");
    browser
        .view()
        .events
        .into_iter()
        .skip(mark)
        .filter(|event| {
            event["type"] == "iq"
                && event["iqType"] == "set"
                && event["from"] == focus_occupant.as_str()
                && event["xml"]
                    .as_str()
                    .is_some_and(|xml| xml.contains(JINGLE) && xml.contains("<json-message"))
        })
        .collect()
}

/// Whether the `<json-message>` of a reported IQ names `ssrc` as a source (`"s":<ssrc>` in jicofo's
/// compact JSON). Only the JSON counts: by the time the page's handler serialises the IQ, the library
/// has expanded it into XML `<source>`s in the same DOM.
fn names_ssrc(event: &Value, ssrc: u32) -> bool {
    let json = event["xml"].as_str().and_then(|xml| {
        let start = xml.find("<json-message")?;
        let end = xml[start..].find("</json-message>")?;
        Some(&xml[start..start + end])
    });
    let needle = format!("\"s\":{ssrc}");
    json.is_some_and(|json| {
        json.match_indices(&needle)
            .any(|(at, _)| !json[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Two real clients in one room: alice may send audio and camera, bob audio only. Each page creates
/// remote tracks for what the other may send, signalled by the focus as JSON sources, and never for
/// bob's withheld camera; an SQL grant of video brings bob's camera to alice's page.
#[tokio::test]
async fn two_real_clients_receive_only_granted_sources_and_a_grant_brings_the_camera() {
    let room = "real-two";
    let mut conference = Conference::start(ALICE_SHOWS_RULES).await;
    let alice = conference
        .open_client(room, "alice", false, "audio,video", &[])
        .await;
    let alice_mark = alice.browser.mark();
    let bob = conference
        .open_client(room, "bob", false, "audio", &[(&alice.nick, "audio,video")])
        .await;
    let alice_everything: BTreeSet<u32> = alice
        .audio
        .ssrcs
        .union(&alice.camera.ssrcs)
        .copied()
        .collect();
    conference
        .focus_holds(room, &alice.nick, &alice_everything)
        .await;
    conference
        .focus_holds(room, &bob.nick, &bob.audio.ssrcs)
        .await;

    // bob's page: alice's microphone and camera, from the focus's JSON sources (in his
    // session-initiate, as alice was there first).
    let alice_audio = bob
        .browser
        .wait_event("bob's page gets alice's audio track", |event| {
            remote_track_added(event, &alice.nick, "audio")
        })
        .await;
    let alice_camera = bob
        .browser
        .wait_event("bob's page gets alice's camera track", |event| {
            remote_track_added(event, &alice.nick, "video")
        })
        .await;
    assert_eq!(
        alice_audio["ssrc"].as_u64().map(|ssrc| ssrc as u32),
        alice.audio.ssrcs.first().copied(),
        "{alice_audio}"
    );
    let camera_ssrc = alice_camera["ssrc"].as_u64().map(|ssrc| ssrc as u32);
    assert!(
        camera_ssrc.is_some_and(|ssrc| alice.camera.ssrcs.contains(&ssrc)),
        "{alice_camera}"
    );
    // The 2021 library leaves a remote camera's videoType unset at TRACK_ADDED (null).
    assert_ne!(alice_camera["videoType"], "desktop", "{alice_camera}");
    let told_bob = json_sources_received(&bob.browser, 0, room);
    let alice_ssrc = *alice.audio.ssrcs.first().unwrap();
    assert!(
        told_bob.iter().any(|event| names_ssrc(event, alice_ssrc)),
        "the focus told bob alice's sources as JSON: {told_bob:#?}"
    );

    // alice's page: bob's microphone, and never his camera. The focus tells alice what it holds of
    // bob, all in one source-add once his session-accept is through (observed: the JSON source-add,
    // then TRACK_ADDED about 0.1 s later); the library creates the remote tracks of one source-add
    // from one remote description, so once bob's audio track exists, a camera the focus had sent
    // with it would exist too. Every source-add alice got so far is checked as well, and the focus
    // never held the camera.
    alice
        .browser
        .wait_event_after(alice_mark, "alice's page gets bob's audio track", |event| {
            remote_track_added(event, &bob.nick, "audio")
        })
        .await;
    let state = alice.browser.step(json!({"step": "report"})).await;
    let bob_tracks: Vec<&Value> = state["remoteTracks"]
        .as_array()
        .expect("remote tracks")
        .iter()
        .filter(|track| track["participantId"] == bob.nick.as_str())
        .collect();
    assert_eq!(bob_tracks.len(), 1, "bob's audio only: {bob_tracks:#?}");
    assert_eq!(bob_tracks[0]["media"], "audio", "{bob_tracks:#?}");
    let told_alice = json_sources_received(&alice.browser, alice_mark, room);
    let bob_ssrc = *bob.audio.ssrcs.first().unwrap();
    assert!(
        told_alice.iter().any(|event| names_ssrc(event, bob_ssrc)),
        "the focus told alice bob's microphone as JSON: {told_alice:#?}"
    );
    for event in &told_alice {
        for ssrc in &bob.camera.ssrcs {
            assert!(
                !names_ssrc(event, *ssrc),
                "bob's camera reached alice: {event}"
            );
        }
    }
    for (received, sources) in conference.jingle_from(0, room, &bob.nick) {
        assert!(
            sources.of_media(Media::Video).is_empty(),
            "bob's camera never reaches the focus: {}",
            String::from(&received.iq)
        );
    }
    assert!(
        !alice
            .browser
            .view()
            .events
            .iter()
            .any(|event| remote_track_added(event, &bob.nick, "video")),
        "alice's page never got a video track from bob"
    );

    // An SQL grant: bob may show his camera; alice's page gets it.
    let alice_mark = alice.browser.mark();
    edit_rules(
        &conference.podium,
        &conference.db,
        "UPDATE rules SET effect = 'allow' WHERE id = 2",
    )
    .await;
    conference
        .wait_held(
            room,
            &[(&alice.nick, "audio,video"), (&bob.nick, "audio,video")],
        )
        .await;
    let bob_everything: BTreeSet<u32> = bob.audio.ssrcs.union(&bob.camera.ssrcs).copied().collect();
    conference
        .focus_holds(room, &bob.nick, &bob_everything)
        .await;
    let bob_camera = alice
        .browser
        .wait_event_after(
            alice_mark,
            "alice's page gets bob's camera track",
            |event| remote_track_added(event, &bob.nick, "video"),
        )
        .await;
    let camera_ssrc = bob_camera["ssrc"].as_u64().map(|ssrc| ssrc as u32);
    assert!(
        camera_ssrc.is_some_and(|ssrc| bob.camera.ssrcs.contains(&ssrc)),
        "{bob_camera}"
    );
    assert_ne!(bob_camera["videoType"], "desktop", "{bob_camera}");
    let told_alice = json_sources_received(&alice.browser, alice_mark, room);
    assert!(
        told_alice
            .iter()
            .any(|event| names_ssrc(event, camera_ssrc.unwrap())),
        "the focus told alice bob's camera as JSON: {told_alice:#?}"
    );

    alice.browser.step(json!({"step": "report"})).await;
    bob.browser.step(json!({"step": "report"})).await;
    assert_client_healthy(&alice.browser);
    assert_client_healthy(&bob.browser);
}
