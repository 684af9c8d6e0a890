//! podium's enforcement scenarios with the real jicofo in place of the focus stand-in (issue 12,
//! point 1): a real Prosody with mod_podium, the real podium binary on SQLite, the operator's jicofo
//! (tests/common/real_jicofo.rs: started from `PODIUM_JICOFO_CLASSPATH`), the bridge stand-in and
//! participant stand-ins (current lib-jitsi-meet shape). Opt in:
//!
//! ```text
//! PODIUM_JICOFO_CLASSPATH=<your jicofo's classpath> cargo test --test real_jicofo -- --ignored
//! ```
//!
//! jicofo's own state is not visible, so every assertion is on what jicofo did with what reached it:
//! the sources it relays to the other participants and the endpoints it allocates at the bridge.
//! Latencies (from the rule edit's commit to what the other participant learns) are printed.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minidom::Element;

use common::bridge::{BridgePeer, ColibriRequest};
use common::c2s::{C2s, attr, el};
use common::conference::{create_breakout, kept, learns, relayed, sent, ssrcs};
use common::conformance::bridge_session;
use common::focus::FOCUS_JID;
use common::jingle::{
    COLIBRI2, FOCUS, JINGLE, MUTE_AUDIO, Media, SSMA, Source, SourceSet, Style, sources_by_owner,
};
use common::participant::{Participant, Shape, Track};
use common::peer::{error_condition, error_text, is_result};
use common::podium::{Podium, write_config};
use common::prosody::{BREAKOUT_MUC, CONFERENCE_OPTIONS, Prosody};
use common::real_jicofo::RealJicofo;
use common::{decided, edit_rules, wait_held};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "mod", "inspector"];
const RTP: &str = "urn:xmpp:jingle:apps:rtp:1";

/// Everyone may send everything; bob may not show a camera in lecture rooms (rule 2). By JID, not
/// by role as in the stand-in tests' `LECTURE_RULES`: jicofo makes one participant of each room its
/// owner (`AutoOwnerRoleManager`, `enable-auto-owner`), whichever it finds first among the members,
/// and a moderator is not a participant.
const LECTURE_RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (1, '*',         'everyone', NULL,    'all',   'allow', 0,  'default: everything'),
    (2, 'lecture-*', 'jid',      'bob@*', 'video', 'deny',  10, 'no camera for bob in lectures')";

/// Prosody with mod_podium, the bridge stand-in, the real jicofo, podium and an inspector.
struct RealConference {
    jicofo: RealJicofo,
    podium: Podium,
    bridge: BridgePeer,
    inspector: C2s,
    db: PathBuf,
    prosody: Prosody,
}

impl RealConference {
    /// Starts everything (podium knows the breakout MUC) and loads `rules`.
    async fn start(rules: &str) -> RealConference {
        // Dies at once, saying what to set, when no jicofo is given.
        common::real_jicofo::classpath();
        let prosody = Prosody::start_with(USERS, CONFERENCE_OPTIONS);
        let db = prosody.data_dir().join("rules/podium.db");
        let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
        let bridge = BridgePeer::connect(prosody.c2s_port).await;
        let jicofo = RealJicofo::start(&prosody).await;
        let podium = Podium::start(&write_config(
            &prosody,
            &db,
            &format!("breakout_muc = \"{BREAKOUT_MUC}\""),
        ));
        podium.wait_for(&["resync complete"]).await;
        edit_rules(&podium, &db, rules).await;
        RealConference {
            jicofo,
            podium,
            bridge,
            inspector,
            db,
            prosody,
        }
    }

    /// `nick` (account = nick) joins `room` (a name on the conference MUC, or a full room JID);
    /// returns once the module holds `held` there.
    async fn join(&mut self, room: &str, nick: &str, held: &[(&str, &str)]) -> Participant {
        let participant =
            Participant::join(self.prosody.c2s_port, nick, room, nick, Shape::Current).await;
        self.wait_held(room, held).await;
        participant
    }

    /// alice (who may send everything), then bob (who may send `bob_may`), join `room`.
    async fn alice_and_bob(&mut self, room: &str, bob_may: &str) -> (Participant, Participant) {
        let everything = "audio,video,screen";
        let alice = self.join(room, "alice", &[("alice", everything)]).await;
        let bob = self
            .join(room, "bob", &[("alice", everything), ("bob", bob_may)])
            .await;
        (alice, bob)
    }

    async fn wait_held(&mut self, room: &str, held: &[(&str, &str)]) {
        wait_held(&mut self.inspector, &self.podium, room, &decided(held)).await;
    }

    /// Edits rules with the sqlite3 CLI; returns when the edit was committed.
    async fn edit(&self, sql: &str) -> Instant {
        let started = Instant::now();
        edit_rules(&self.podium, &self.db, sql).await;
        started
    }

    /// Waits until jicofo has allocated exactly `sources` for `nick` at the bridge.
    async fn bridge_holds(&self, room: &str, nick: &str, sources: &SourceSet) {
        common::conference::bridge_holds(&self.bridge, room, nick, sources).await;
    }
}

/// Prints a latency for the report.
fn report(what: &str, started: Instant) {
    println!("real jicofo: {what}: {:?}", started.elapsed());
}

/// Every SSRC of `owner` in every Jingle request `participant` received from the focus.
fn ever_signalled(participant: &Participant, owner: &str) -> BTreeSet<u32> {
    participant
        .received()
        .iter()
        .filter_map(|received| received.iq.get_child("jingle", JINGLE))
        .filter_map(|jingle| sources_by_owner(jingle).ok())
        .filter_map(|by_owner| by_owner.get(owner).map(SourceSet::ssrcs))
        .flatten()
        .collect()
}

/// A `<jingle>` from `participant` to the focus on its current session, with `children`.
fn session_jingle(participant: &Participant, action: &str, children: Vec<Element>) -> Element {
    el("jingle", JINGLE)
        .attr(attr("action"), action)
        .attr(attr("initiator"), format!("{}/focus", participant.room_jid))
        .attr(attr("sid"), participant.sid().expect("a session").as_str())
        .append_all(children)
        .build()
}

/// `<bridge-session id>` of the participant's current session, with `extra` attributes.
fn bridge_session_element(participant: &Participant, extra: &[(&'static str, &str)]) -> Element {
    let id = bridge_session(participant).expect("a bridge-session in session-initiate");
    let mut element = el("bridge-session", FOCUS)
        .attr(attr("id"), id.as_str())
        .build();
    for (name, value) in extra {
        element.set_attr(minidom::rxml::Namespace::NONE, attr(name), *value);
    }
    element
}

/// A restart request on the participant's current session: session-terminate naming its bridge
/// session with `restart='true'` (lib-jitsi-meet's `requestRestart`).
fn restart_request(participant: &Participant) -> Element {
    session_jingle(
        participant,
        "session-terminate",
        vec![
            el("reason", JINGLE).append(el("success", JINGLE)).build(),
            bridge_session_element(participant, &[("restart", "true")]),
        ],
    )
}

async fn to_focus(participant: &Participant, jingle: Element) -> Element {
    participant
        .iq("set", &format!("{}/focus", participant.room_jid), jingle)
        .await
}

/// Withheld at join, an SQL grant replayed under the current sid, an SQL revoke of the camera
/// (source-remove), an SQL revoke of audio (source-remove, the module's bridge force-mute and a mute
/// IQ to the participant).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn withheld_at_join_granted_and_revoked_with_the_real_jicofo() {
    let room = "lecture-1";
    let mut conference = RealConference::start(LECTURE_RULES).await;
    let (alice, bob) = conference.alice_and_bob(room, "audio,screen").await;
    let bob_audio = bob.track(Track::Audio);
    let bob_camera = bob.track(Track::Camera);

    // Withheld at join: bob's session-accept carried audio and camera; jicofo relays audio only.
    bob.wait_until("bob's session-accept is answered", |view| {
        !view.accept_answers.is_empty()
    })
    .await;
    assert!(is_result(&bob.view().accept_answers[0]));
    learns(&alice, "bob", relayed(&bob_audio)).await;
    conference.bridge_holds(room, "bob", &bob_audio).await;
    learns(&bob, "alice", relayed(&sent(&alice))).await;
    assert!(ever_signalled(&alice, "bob").is_disjoint(&ssrcs(&bob_camera)));

    // Granted: the camera is replayed to jicofo on bob's current session.
    let started = conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    report("grant of the camera reaches alice", started);
    conference.bridge_holds(room, "bob", &sent(&bob)).await;

    // Revoked: jicofo removes the camera.
    let started = conference
        .edit("UPDATE rules SET enabled = 1 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&bob_audio)).await;
    report("revoke of the camera reaches alice", started);
    conference.bridge_holds(room, "bob", &bob_audio).await;

    // Audio revoked: jicofo removes it, the bridge force-mutes audio, bob is told to mute.
    let started = conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (4, 'lecture-*', 'jid', 'bob@*', 'audio', 'deny', 30)")
        .await;
    learns(&alice, "bob", BTreeSet::new()).await;
    report("revoke of audio reaches alice", started);
    conference
        .bridge_holds(room, "bob", &SourceSet::default())
        .await;
    conference
        .bridge
        .wait_until("the bridge force-mutes bob's audio", |view| {
            view.endpoint(room, "bob")
                .is_some_and(|endpoint| endpoint.force_mute_audio)
        })
        .await;
    bob.wait_until("bob is told to mute his audio", |view| {
        view.mutes
            .iter()
            .any(|mute| mute.namespace == MUTE_AUDIO && mute.applied)
    })
    .await;
    assert!(alice.strays().is_empty() && bob.strays().is_empty());
}

/// Re-invites: bob asks jicofo to restart his session (session-terminate with
/// `<bridge-session restart='true'>`): the camera stays withheld on the new session and a grant is
/// replayed under the new sid. Then he reports ICE failed (session-info), on which jicofo ends the
/// session itself; he leaves and rejoins.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn reinvites_leave_and_rejoin_with_the_real_jicofo() {
    let room = "lecture-2";
    let mut conference = RealConference::start(LECTURE_RULES).await;
    let alice = conference
        .join(room, "alice", &[("alice", "audio,video,screen")])
        .await;
    let held = [("alice", "audio,video,screen"), ("bob", "audio,screen")];
    let bob = conference.join(room, "bob", &held).await;
    let bob_audio = bob.track(Track::Audio);
    let bob_camera = bob.track(Track::Camera);
    learns(&alice, "bob", relayed(&bob_audio)).await;

    // The participant asks for a restart.
    let first_sid = bob.sid().expect("bob's session");
    let started = Instant::now();
    let terminate = restart_request(&bob);
    let answer = to_focus(&bob, terminate).await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("bob accepted a second session", |view| {
        view.session_initiates == 2 && view.accept_answers.len() == 2
    })
    .await;
    report("restart request: new session accepted", started);
    let second_sid = bob.sid().expect("bob's second session");
    assert_ne!(first_sid, second_sid);
    assert!(is_result(&bob.view().accept_answers[1]));
    learns(&alice, "bob", relayed(&bob_audio)).await;
    conference.bridge_holds(room, "bob", &bob_audio).await;

    assert!(
        ever_signalled(&alice, "bob").is_disjoint(&ssrcs(&bob_camera)),
        "the camera never reached alice over two sessions"
    );

    // A grant now is replayed on the second session (jicofo refuses any other sid).
    let started = conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    report("grant after a restart reaches alice", started);
    conference.bridge_holds(room, "bob", &sent(&bob)).await;
    conference
        .edit("UPDATE rules SET enabled = 1 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&bob_audio)).await;
    conference.bridge_holds(room, "bob", &bob_audio).await;

    // ICE failed: jicofo re-invites on its own (JitsiMeetConferenceImpl.iceFailed): it removes
    // bob's sources, ends the session ("moving") and invites him again; with the endpoint still in
    // its Colibri2 session the new allocation fails ("participant already exists") and bob is left
    // without a session until he rejoins.
    let ice_failed = session_jingle(
        &bob,
        "session-info",
        vec![
            el("ice-state", FOCUS).append("failed").build(),
            bridge_session_element(&bob, &[]),
        ],
    );
    let answer = to_focus(&bob, ice_failed).await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("jicofo ended the second session", |view| {
        view.received.iter().any(|received| {
            received.action == "session-terminate"
                && received.sid.as_deref() == Some(second_sid.as_str())
        })
    })
    .await;
    learns(&alice, "bob", BTreeSet::new()).await;
    conference
        .jicofo
        .wait_for(
            "jicofo's re-invite after ICE failed",
            "participant already exists",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(bob.view().session_initiates, 2, "jicofo invited bob again");
    // bob leaves: jicofo tells alice, and the endpoint goes from the bridge.
    bob.leave().await;
    conference
        .wait_held(room, &[("alice", "audio,video,screen")])
        .await;
    learns(&alice, "bob", BTreeSet::new()).await;
    conference
        .bridge
        .wait_until("bob's endpoint is gone", |view| {
            view.endpoint(room, "bob").is_none()
        })
        .await;
    drop(bob);

    // bob comes back (new connection, new SSRCs): withheld again.
    let bob_again = conference.join(room, "bob", &held).await;
    let audio_again = bob_again.track(Track::Audio);
    learns(&alice, "bob", relayed(&audio_again)).await;
    conference.bridge_holds(room, "bob", &audio_again).await;
    assert!(
        ever_signalled(&alice, "bob").is_disjoint(&ssrcs(&bob_again.track(Track::Camera))),
        "the new camera never reached alice"
    );
}

/// Screenshare refused: bob's source-add of his desktop source is answered by the module and
/// jicofo never relays it; a grant replays it (with its groups) and jicofo relays it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn screenshare_withheld_then_granted_with_the_real_jicofo() {
    let room = "seminar";
    let mut conference = RealConference::start(
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'all', 'allow', 0),
        (2, '*', 'jid', 'bob@*', 'screen', 'deny', 10)",
    )
    .await;
    let (alice, bob) = conference.alice_and_bob(room, "audio,video").await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    conference.bridge_holds(room, "bob", &sent(&bob)).await;

    let answer = bob.add_screenshare().await;
    assert!(is_result(&answer), "{answer:?}");
    let screen = bob.track(Track::Screenshare);
    assert!(screen.sources.iter().all(Source::is_desktop));
    // The grant is replayed after the source-add was answered: had jicofo taken the screenshare
    // then, alice would have learnt it before the replay.
    let started = conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&sent(&bob).union(&screen))).await;
    report("grant of the screenshare reaches alice", started);
    conference
        .bridge_holds(room, "bob", &sent(&bob).union(&screen))
        .await;
    // Before the grant jicofo relayed nothing of the screenshare: alice's first sight of it is the
    // replay, one source-add with the screenshare only.
    let adds_with_screen: Vec<_> = alice
        .received()
        .into_iter()
        .filter(|received| {
            received
                .iq
                .get_child("jingle", JINGLE)
                .is_some_and(|jingle| {
                    sources_by_owner(jingle).is_ok_and(|by_owner| {
                        by_owner
                            .get("bob")
                            .is_some_and(|set| !ssrcs(set).is_disjoint(&ssrcs(&screen)))
                    })
                })
        })
        .collect();
    assert_eq!(adds_with_screen.len(), 1, "{adds_with_screen:?}");
    assert_eq!(adds_with_screen[0].action, "source-add");

    // Revoked again: jicofo removes it.
    let started = conference
        .edit("UPDATE rules SET enabled = 1 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    report("revoke of the screenshare reaches alice", started);
    conference.bridge_holds(room, "bob", &sent(&bob)).await;
}

/// P2P refused while someone is restricted: the offer never reaches bob; the conference through
/// jicofo goes on.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn peer_to_peer_refused_with_the_real_jicofo() {
    let room = "lecture-p2p";
    let mut conference = RealConference::start(LECTURE_RULES).await;
    let (alice, bob) = conference.alice_and_bob(room, "audio,screen").await;
    learns(&alice, "bob", relayed(&bob.track(Track::Audio))).await;
    let answer = alice.p2p_offer("bob").await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );
    let answer = bob.p2p_offer("alice").await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );
    assert!(bob.view().p2p_sids.is_empty() && alice.view().p2p_sids.is_empty());
    // The conference through jicofo goes on: a grant still reaches alice.
    conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    assert!(bob.view().p2p_sids.is_empty() && alice.view().p2p_sids.is_empty());
}

/// Requests jicofo refuses: a source-add whose msid clashes with alice's (jicofo's
/// MsidConflictException) and a source-remove naming an SSRC nobody signalled. The module rolls its
/// account back, so the next revoke still removes the camera at jicofo.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn refused_requests_are_rolled_back_with_the_real_jicofo() {
    let room = "talk";
    let everything = common::conference::EVERYTHING;
    let mut conference = RealConference::start(everything).await;
    let (alice, bob) = conference.alice_and_bob(room, "audio,video,screen").await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    let sid = bob.sid().expect("bob's session");

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
    let answer = bob
        .send_jingle("source-add", &sid, clash.to_contents(Style::Client, None))
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    println!("real jicofo: msid clash answered {:?}", error_text(&answer));

    let mut removal = bob.track(Track::Camera);
    removal = removal.union(&SourceSet::new(
        vec![
            Source::new(Media::Video, 9_000_000)
                .named("bob-v0")
                .with_video_type("camera"),
        ],
        vec![],
    ));
    let answer = bob
        .send_jingle(
            "source-remove",
            &sid,
            removal.to_contents(Style::Client, None),
        )
        .await;
    println!(
        "real jicofo: source-remove of the camera and an unknown SSRC answered {:?} {:?}",
        error_condition(&answer),
        error_text(&answer)
    );
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    // Nothing changed at jicofo: alice still has bob's camera, and so has the bridge.
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    conference.bridge_holds(room, "bob", &sent(&bob)).await;

    let started = conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'jid', 'bob@*', 'video', 'deny', 10)")
        .await;
    learns(&alice, "bob", relayed(&bob.track(Track::Audio))).await;
    report("revoke after two refused requests reaches alice", started);
    conference
        .bridge_holds(room, "bob", &bob.track(Track::Audio))
        .await;
    assert!(ever_signalled(&alice, "bob").is_disjoint(&BTreeSet::from([4_200_001, 9_000_000])));
}

/// Moving to a breakout room: the main room's rules follow; jicofo starts the breakout conference
/// and relays bob's audio only; bob's lecture session used from the breakout room is refused.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn a_move_to_a_breakout_room_keeps_enforcement_with_the_real_jicofo() {
    let main = "lecture-5";
    let mut conference = RealConference::start(LECTURE_RULES).await;
    let mut moderator = C2s::connect(conference.prosody.c2s_port, "mod", "web").await;
    moderator.join(main, "mod").await;
    let breakout = create_breakout(&mut moderator, main, "b1").await;
    let alice = conference
        .join(
            main,
            "alice",
            &[
                ("alice", "audio,video,screen"),
                ("mod", "audio,video,screen"),
            ],
        )
        .await;
    let held = [
        ("alice", "audio,video,screen"),
        ("bob", "audio,screen"),
        ("mod", "audio,video,screen"),
    ];
    let bob = conference.join(main, "bob", &held).await;
    learns(&alice, "bob", relayed(&bob.track(Track::Audio))).await;
    let lecture_sid = bob.sid().expect("bob's lecture session");

    // Both move: they leave the lecture and join the breakout room (lib-jitsi-meet leaves, asks the
    // focus for the new room and joins it).
    alice.leave().await;
    bob.leave().await;
    let started = Instant::now();
    let alice_b = conference
        .join(&breakout, "alice", &[("alice", "audio,video,screen")])
        .await;
    let bob_b = conference
        .join(
            &breakout,
            "bob",
            &[("alice", "audio,video,screen"), ("bob", "audio,screen")],
        )
        .await;
    learns(&alice_b, "bob", relayed(&bob_b.track(Track::Audio))).await;
    report("breakout: alice learns bob's audio after the move", started);
    learns(&bob_b, "alice", relayed(&sent(&alice_b))).await;
    conference
        .bridge_holds(&breakout, "bob", &bob_b.track(Track::Audio))
        .await;

    // The lecture session from the breakout room, and a grant that names the breakout room.
    let camera = bob_b.track(Track::Camera);
    let answer = bob_b
        .send_jingle(
            "source-add",
            &lecture_sid,
            camera.to_contents(Style::Client, None),
        )
        .await;
    assert!(
        matches!(
            error_condition(&answer).as_deref(),
            Some("forbidden") | Some("bad-request")
        ),
        "{answer:?}"
    );
    let started = conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (5, 'lecture-5/*', 'everyone', NULL, 'all', 'allow', 40)")
        .await;
    learns(&alice_b, "bob", relayed(&sent(&bob_b))).await;
    report("breakout: grant reaches alice", started);
    conference
        .bridge_holds(&breakout, "bob", &sent(&bob_b))
        .await;
    assert!(ever_signalled(&alice, "bob").is_disjoint(&ssrcs(&bob.track(Track::Camera))));
}

/// A modified client, attack by attack (README), with the real jicofo: nothing of it reaches jicofo,
/// so jicofo relays nothing of it to alice and allocates nothing of it at the bridge.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn a_modified_client_gets_nothing_past_the_real_jicofo() {
    let room = "lecture-3";
    let mut conference = RealConference::start(LECTURE_RULES).await;
    let (alice, bob) = conference.alice_and_bob(room, "audio,screen").await;
    let bob_audio = bob.track(Track::Audio);
    learns(&alice, "bob", relayed(&bob_audio)).await;
    learns(&bob, "alice", relayed(&sent(&alice))).await;
    let alice_sid = alice.sid().unwrap();
    let bob_sid = bob.sid().unwrap();
    let camera = bob.track(Track::Camera);
    let mut outcomes: Vec<(&str, Option<String>, Option<String>)> = Vec::new();
    let mut record = |what: &'static str, answer: &Element| {
        println!(
            "real jicofo: {what}: {} {:?} {:?}",
            answer.attr("type").unwrap_or(""),
            error_condition(answer),
            error_text(answer)
        );
        outcomes.push((what, error_condition(answer), error_text(answer)));
    };

    // A source-add under alice's sid (jicofo routes by sid only: it would add it to alice's).
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
    record("source-add under alice's sid", &answer);
    // alice's audio SSRC as his own.
    let alice_ssrc = alice.track(Track::Audio).ssrcs()[0];
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
    record("source-add of alice's SSRC", &answer);
    // Sources named for alice.
    let named = SourceSet::new(
        vec![Source::new(Media::Audio, 4_000_002).named("alice-a7")],
        vec![],
    );
    let answer = bob
        .send_jingle(
            "source-add",
            &bob_sid,
            named.to_contents(Style::Client, None),
        )
        .await;
    record("source-add named for alice", &answer);
    // The withheld camera hidden from the filter: a second <description>, media in capitals,
    // SSRC text Java reads differently.
    let hidden = el("content", JINGLE)
        .attr(attr("name"), "video")
        .append(el("description", RTP).attr(attr("media"), "video"))
        .append(
            el("description", RTP)
                .attr(attr("media"), "video")
                .append(el("description", "urn:x"))
                .append(
                    el("source", SSMA)
                        .attr(attr("ssrc"), "4242")
                        .attr(attr("name"), "bob-v0")
                        .attr(attr("videoType"), "camera"),
                ),
        )
        .build();
    let answer = bob.send_jingle("source-add", &bob_sid, vec![hidden]).await;
    record("source hidden by a second description", &answer);
    let mut capitals = camera.to_contents(Style::Client, None);
    for content in &mut capitals {
        for description in content.children_mut() {
            description.set_attr(minidom::rxml::Namespace::NONE, attr("media"), "VIDEO");
        }
    }
    let answer = bob.send_jingle("source-add", &bob_sid, capitals).await;
    record("camera with media in capitals", &answer);
    for text in ["0x1092", " 4243", "4.244e3"] {
        let content = el("content", JINGLE)
            .attr(attr("name"), "audio")
            .append(
                el("description", RTP).attr(attr("media"), "audio").append(
                    el("source", SSMA)
                        .attr(attr("ssrc"), text)
                        .attr(attr("name"), "bob-a0"),
                ),
            )
            .build();
        let answer = bob.send_jingle("source-add", &bob_sid, vec![content]).await;
        record("SSRC text Lua and Java read differently", &answer);
    }
    // Over the SSRC limit with withheld camera sources.
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
    record("SSRCs over jicofo's limit", &answer);
    // Groups of SSRCs never signalled.
    let groups = el("content", JINGLE)
        .attr(attr("name"), "video")
        .append(
            el("description", RTP).attr(attr("media"), "video").append(
                el("ssrc-group", SSMA)
                    .attr(attr("semantics"), "FID")
                    .append(el("source", SSMA).attr(attr("ssrc"), "4300001"))
                    .append(el("source", SSMA).attr(attr("ssrc"), "4300002")),
            ),
        )
        .build();
    let answer = bob.send_jingle("source-add", &bob_sid, vec![groups]).await;
    record("a group of unsignalled SSRCs", &answer);
    // The camera straight to jicofo's real JID, around the room.
    let direct = el("jingle", JINGLE)
        .attr(attr("action"), "source-add")
        .attr(attr("sid"), bob_sid.as_str())
        .append_all(camera.to_contents(Style::Client, None))
        .build();
    let answer = bob.iq("set", FOCUS_JID, direct).await;
    record("camera to jicofo's real JID", &answer);
    // A P2P offer without a sid.
    let offer = el("jingle", JINGLE)
        .attr(attr("action"), "session-initiate")
        .attr(attr("initiator"), bob.occupant_jid.as_str())
        .append_all(camera.to_contents(Style::Client, None))
        .build();
    let answer = bob
        .iq("set", &format!("{}/alice", bob.room_jid), offer)
        .await;
    record("P2P offer without a sid", &answer);
    // A mute IQ for alice from bob (only moderators may; jicofo checks).
    let mute = el("mute", MUTE_AUDIO)
        .attr(attr("jid"), alice.occupant_jid.as_str())
        .append("true")
        .build();
    let answer = bob
        .iq("set", &format!("{}/focus", bob.room_jid), mute)
        .await;
    record("bob mutes alice", &answer);
    for (what, condition, _) in &outcomes {
        assert!(condition.is_some(), "{what} was accepted");
    }
    assert!(alice.view().mutes.is_empty(), "{:?}", alice.view().mutes);

    // Barrier through jicofo: a grant of bob's camera is relayed after anything jicofo took before.
    conference
        .edit("UPDATE rules SET enabled = 0 WHERE id = 2")
        .await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    learns(&bob, "alice", relayed(&sent(&alice))).await;
    conference.bridge_holds(room, "bob", &sent(&bob)).await;
    conference.bridge_holds(room, "alice", &sent(&alice)).await;
    let hostile: BTreeSet<u32> = [4_000_001, 4_000_002, 4242, 4243, 4244, 4_300_001, 4_300_002]
        .into_iter()
        .chain(4_100_000..4_100_014)
        .collect();
    assert!(ever_signalled(&alice, "bob").is_disjoint(&hostile));
    assert!(ever_signalled(&bob, "alice").is_disjoint(&hostile));
    assert_eq!(
        conference
            .bridge
            .endpoint(room, "bob")
            .map(|e| e.force_mute_audio),
        Some(false)
    );
    assert!(
        alice.view().p2p_sids.is_empty(),
        "alice never saw bob's P2P offer"
    );
}

/// A restart request jicofo rate-limits (the second within 5 s): jicofo answers
/// `resource-constraint`, ends the session and invites nobody; the module forgets the session too.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn a_rate_limited_restart_ends_the_session_with_the_real_jicofo() {
    let room = "lecture-4";
    let mut conference = RealConference::start(LECTURE_RULES).await;
    let (alice, bob) = conference.alice_and_bob(room, "audio,screen").await;
    learns(&alice, "bob", relayed(&bob.track(Track::Audio))).await;
    let answer = to_focus(&bob, restart_request(&bob)).await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("bob accepted a second session", |view| {
        view.session_initiates == 2 && view.accept_answers.len() == 2
    })
    .await;
    learns(&alice, "bob", relayed(&bob.track(Track::Audio))).await;
    let answer = to_focus(&bob, restart_request(&bob)).await;
    assert_eq!(
        common::conformance::Outcome::of(&answer),
        common::conformance::Outcome {
            type_: "error".to_owned(),
            condition: Some("resource-constraint".to_owned()),
            text: Some("rate-limited".to_owned()),
        }
    );
    learns(&alice, "bob", BTreeSet::new()).await;
    conference
        .bridge
        .wait_until("bob's endpoint expired", |view| {
            view.endpoint(room, "bob").is_none()
        })
        .await;
    let (_, occupants) = kept(&mut conference.inspector, room).await;
    let bob_kept = occupants
        .iter()
        .find(|o| o.0 == "bob")
        .expect("bob is kept");
    assert_eq!(
        (bob_kept.1.as_deref(), bob_kept.2.as_str()),
        (None, "0"),
        "{bob_kept:?}"
    );
}

/// A modified client makes jicofo end its Jingle session while keeping its sources and its bridge
/// endpoint: a session-terminate naming a wrong bridge session is refused, yet jicofo ends the
/// Jingle session (recorded in tests/fixtures/jicofo/session-terminate-after-wrong-bridge-session.xml).
/// A revoke's `source-remove` is then answered `gone`, so the module stops the camera at the
/// bridge.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn a_revoke_after_jicofo_ended_the_session_is_enforced_at_the_bridge() {
    let room = "talk";
    let everything = common::conference::EVERYTHING;
    let mut conference = RealConference::start(everything).await;
    let (alice, bob) = conference.alice_and_bob(room, "audio,video,screen").await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    conference.bridge_holds(room, "bob", &sent(&bob)).await;

    let wrong = el("bridge-session", FOCUS)
        .attr(attr("id"), common::conformance::WRONG_BRIDGE_SESSION)
        .build();
    let reason = el("reason", JINGLE).append(el("success", JINGLE)).build();
    let terminate = session_jingle(&bob, "session-terminate", vec![reason, wrong]);
    let answer = to_focus(&bob, terminate).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("item-not-found"),
        "{answer:?}"
    );

    let started = conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'jid', 'bob@*', 'video', 'deny', 10)")
        .await;
    conference
        .bridge
        .wait_until("the bridge force-mutes bob's video", |view| {
            view.endpoint(room, "bob")
                .is_some_and(|endpoint| endpoint.force_mute_video && !endpoint.force_mute_audio)
        })
        .await;
    report(
        "camera revoke on a session jicofo ended: video force-muted at the bridge",
        started,
    );
    // jicofo still has the camera and still relays it: only the bridge stops it.
    learns(&alice, "bob", relayed(&sent(&bob))).await;
}

/// jicofo's own Colibri2 allocations carry podium's force-mute: bob may not send audio, so the
/// module rewrites `<force-mute>` into jicofo's allocation of his endpoint, at join and again when a
/// restart makes jicofo allocate it anew.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn jicofos_allocations_carry_podiums_force_mute() {
    let room = "quiet";
    let mut conference = RealConference::start(
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'all', 'allow', 0),
        (2, '*', 'jid', 'bob@*', 'audio', 'deny', 10)",
    )
    .await;
    let (alice, bob) = conference.alice_and_bob(room, "video,screen").await;
    let camera = bob.track(Track::Camera);
    learns(&alice, "bob", relayed(&camera)).await;
    // jicofo's allocations of bob's endpoint (`create='true'`), as the bridge received them.
    let allocations = |requests: &[ColibriRequest]| -> Vec<Element> {
        requests
            .iter()
            .filter(|request| request.from.ends_with("/focus"))
            .filter_map(|request| {
                let modify = request.iq.get_child("conference-modify", COLIBRI2)?;
                modify
                    .children()
                    .find(|endpoint| {
                        endpoint.name() == "endpoint"
                            && endpoint.attr("id") == Some("bob")
                            && endpoint.attr("create") == Some("true")
                    })
                    .cloned()
            })
            .collect()
    };
    let muted = |endpoint: &Element| {
        endpoint
            .get_child("force-mute", COLIBRI2)
            .is_some_and(|mute| mute.attr("audio") == Some("true"))
    };
    conference
        .bridge
        .wait_until("bob is force-muted from the allocation on", |view| {
            view.endpoint(room, "bob")
                .is_some_and(|endpoint| endpoint.force_mute_audio)
        })
        .await;
    let first = allocations(&conference.bridge.requests());
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(muted(&first[0]), "{:?}", first[0]);

    let restart = restart_request(&bob);
    let answer = to_focus(&bob, restart).await;
    assert!(is_result(&answer), "{answer:?}");
    bob.wait_until("bob accepted a second session", |view| {
        view.session_initiates == 2 && view.accept_answers.len() == 2
    })
    .await;
    conference
        .bridge
        .wait_until("jicofo allocated bob again", |view| {
            allocations(&view.requests).len() == 2
        })
        .await;
    learns(&alice, "bob", relayed(&camera)).await;
    let again = allocations(&conference.bridge.requests());
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(muted(&again[1]), "{:?}", again[1]);
    let at_bridge = conference
        .bridge
        .endpoint(room, "bob")
        .expect("bob at the bridge");
    assert!(
        at_bridge.force_mute_audio && at_bridge.audio_ssrcs.is_empty(),
        "{at_bridge:?}"
    );
}

/// The recorded answers hold for this jicofo: the three request scenarios of
/// tests/common/conformance.rs, each in its own room of a Prosody without mod_podium, get the
/// answers recorded in tests/fixtures/jicofo/ (the fixtures' jicofo commit is in their headers). A
/// difference means this jicofo answers otherwise than the one the focus stand-in is held to.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real jicofo: set PODIUM_JICOFO_CLASSPATH"]
async fn the_recorded_answers_hold_for_this_jicofo() {
    use common::conformance::{differences, run, run_edge_requests, run_session_requests};
    common::real_jicofo::classpath();
    let prosody = Prosody::start_without_podium(&["focus", "jvb", "alice", "bob"]);
    let _bridge = BridgePeer::connect(prosody.c2s_port).await;
    let jicofo = RealJicofo::start(&prosody).await;
    let pair = async |room: &str| {
        let alice =
            Participant::join(prosody.c2s_port, "alice", room, "alice", Shape::Current).await;
        let bob = Participant::join(prosody.c2s_port, "bob", room, "bob", Shape::Current).await;
        for participant in [&alice, &bob] {
            participant
                .wait_until("the session is accepted", |view| {
                    !view.accept_answers.is_empty()
                })
                .await;
        }
        (alice, bob)
    };
    let mut found = Vec::new();

    let (alice, bob) = pair("room1").await;
    found.extend(differences(&run(&alice, &bob).await));

    // The requests need a participant without moderator rights: jicofo makes one of the two owner.
    let (alice, bob) = pair("room2").await;
    let owner = "Electing new owner: ChatMember[id=";
    // room1's election was the first.
    let elected = jicofo
        .wait_for_count("an owner for room2", owner, 2, Duration::from_secs(10))
        .await;
    let (participant, other) = if elected.contains("[id=alice ") {
        (&bob, &alice)
    } else {
        (&alice, &bob)
    };
    let session = run_session_requests(participant, other).await;
    found.extend(differences(&session.steps));
    let unanswered: Vec<_> = session.unanswered.iter().map(|(label, _)| *label).collect();
    assert_eq!(unanswered, ["jingle-content-add"]);

    let (alice, _bob) = pair("room3").await;
    let edge = run_edge_requests(&alice).await;
    found.extend(differences(&edge.steps));
    let unanswered: Vec<_> = edge.unanswered.iter().map(|(label, _)| *label).collect();
    assert_eq!(unanswered, ["jingle-without-action"]);
    assert!(found.is_empty(), "{found:#?}");
}
