//! A modified client against what the module remembers about requests in flight and peer-to-peer
//! sessions (issue 11, points 2, 3 and 4, found in review): a request the module records but that goes
//! elsewhere than the module believes, or an answer that comes back to a session that has left, must
//! not make the module forget what jicofo holds or which sessions a revoke must end. A real Prosody
//! with mod_podium, the real podium binary on SQLite, and the stand-ins for jicofo, the bridge and
//! lib-jitsi-meet (tests/common). Every assertion is on what the focus or the other participant
//! received.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use minidom::Element;

use common::bridge::BridgePeer;
use common::c2s::{C2s, CLIENT, attr, el};
use common::focus::FocusPeer;
use common::jingle::{JINGLE, Media, Source, SourceSet, Style};
use common::participant::{Participant, Shape, Track};
use common::peer::error_condition;
use common::podium::{Podium, write_config};
use common::prosody::{CONFERENCE_OPTIONS, MUC, Prosody};
use common::{Held, edit_rules, wait_held};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];
const EVERYTHING: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
    (1, '*', 'everyone', NULL, 'all', 'allow', 0)";

struct Conference {
    prosody: Prosody,
    podium: Podium,
    db: PathBuf,
    inspector: C2s,
    _bridge: BridgePeer,
    focus: FocusPeer,
}

impl Conference {
    async fn start(muc_options: &str) -> Conference {
        let prosody = Prosody::start_with(USERS, muc_options);
        let db = prosody.data_dir().join("rules/podium.db");
        let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
        let bridge = BridgePeer::connect(prosody.c2s_port).await;
        let focus = FocusPeer::connect(prosody.c2s_port).await;
        let podium = Podium::start(&write_config(&prosody, &db, ""));
        podium.wait_for(&["resync complete"]).await;
        edit_rules(&podium, &db, EVERYTHING).await;
        Conference {
            prosody,
            podium,
            db,
            inspector,
            _bridge: bridge,
            focus,
        }
    }

    async fn wait_held(&mut self, room: &str, held: &[(&str, &str)]) {
        let expected: Held = held
            .iter()
            .map(|(nick, set)| (nick.to_string(), (set.to_string(), "podium".to_owned())))
            .collect();
        wait_held(&mut self.inspector, &self.podium, room, &expected).await;
    }

    /// alice and bob in `room`, both allowed everything; the focus holds their audio and camera.
    async fn two(&mut self, room: &str) -> (Participant, Participant) {
        let port = self.prosody.c2s_port;
        let alice = Participant::join(port, "alice", room, "alice", Shape::Current).await;
        self.wait_held(room, &[("alice", "audio,video,screen")])
            .await;
        let bob = Participant::join(port, "bob", room, "bob", Shape::Current).await;
        self.wait_held(
            room,
            &[
                ("alice", "audio,video,screen"),
                ("bob", "audio,video,screen"),
            ],
        )
        .await;
        self.focus_holds("alice", &sent(&alice)).await;
        self.focus_holds("bob", &sent(&bob)).await;
        (alice, bob)
    }

    async fn deny_bob(&mut self, room: &str, media: &str, left: &str) {
        edit_rules(
            &self.podium,
            &self.db,
            &format!(
                "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
                (2, '*', 'jid', 'bob@*', '{media}', 'deny', 10)"
            ),
        )
        .await;
        self.wait_held(room, &[("alice", "audio,video,screen"), ("bob", left)])
            .await;
    }

    /// Waits until the focus holds exactly `sources` for `nick`.
    async fn focus_holds(&self, nick: &str, sources: &SourceSet) {
        let expected = ssrcs(sources);
        self.focus
            .wait_until(&format!("the focus holds {nick}'s {expected:?}"), |view| {
                view.endpoint(nick)
                    .is_some_and(|endpoint| ssrcs(&endpoint.sources) == expected)
            })
            .await;
    }
}

fn ssrcs(sources: &SourceSet) -> BTreeSet<u32> {
    sources.ssrcs().into_iter().collect()
}

fn sent(participant: &Participant) -> SourceSet {
    participant
        .track(Track::Audio)
        .union(&participant.track(Track::Camera))
}

fn iq(id: &str, to: &str, children: Vec<Element>) -> Element {
    el("iq", CLIENT)
        .attr(attr("type"), "set")
        .attr(attr("to"), to)
        .attr(attr("id"), id)
        .append_all(children)
        .build()
}

fn jingle(action: &str, sid: &str, contents: Vec<Element>) -> Element {
    el("jingle", JINGLE)
        .attr(attr("action"), action)
        .attr(attr("sid"), sid)
        .append_all(contents)
        .build()
}

/// jicofo's answer to a request comes back after the session that sent it has left (the same person
/// stays in the room on another session). It must still settle that request: left pending, the
/// module took jicofo's refusal of the other session's request with the same id for a refusal of the
/// first, forgot the screenshare jicofo holds, and a later revoke left it there.
#[tokio::test]
async fn an_answer_to_a_session_that_left_settles_only_its_own_request() {
    let room = "two-sessions";
    // The default allows everything, so that the change of session withdraws nothing on its own.
    let options = format!("{CONFERENCE_OPTIONS}    podium_default_permissions = {{ \"all\" }}\n");
    let mut conference = Conference::start(&options).await;
    let (_alice, bob) = conference.two(room).await;
    let sid = conference.focus.sid("bob").expect("bob has a session");
    let focus = format!("{room}@{MUC}/focus");
    let mut second = C2s::connect(conference.prosody.c2s_port, "bob", "second").await;
    second.join(room, "bob").await;

    // The first session adds its screenshare and leaves at once: Prosody handles the leave before
    // jicofo's answer comes back.
    let screenshare = bob.track(Track::Screenshare);
    let _pending = bob.handle().send_iq(iq(
        "dup",
        &focus,
        vec![jingle(
            "source-add",
            &sid,
            screenshare.to_contents(Style::Client, None),
        )],
    ));
    bob.handle().send(
        el("presence", CLIENT)
            .attr(attr("to"), bob.occupant_jid.as_str())
            .attr(attr("type"), "unavailable")
            .build(),
    );
    conference
        .focus_holds("bob", &sent(&bob).union(&screenshare))
        .await;

    // The second session: a request with the same id that jicofo refuses.
    conference.focus.refuse("source-add", Some("bad-request"));
    let extra = SourceSet::new(
        vec![Source::new(Media::Audio, 4_300_001).named("bob-a1")],
        vec![],
    );
    let answer = second
        .handle()
        .iq_from_element(iq(
            "dup",
            &focus,
            vec![jingle(
                "source-add",
                &sid,
                extra.to_contents(Style::Client, None),
            )],
        ))
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    conference.focus.refuse("source-add", None);

    conference.deny_bob(room, "screen", "audio,video").await;
    conference.focus_holds("bob", &sent(&bob)).await;
}

/// lib-jitsi-meet keys a peer-to-peer session without a sid like any other (strophe.jingle.js
/// `onJingle` reads `sid` as undefined and answers with none), but the module can neither record nor
/// end it: such an offer is refused before it reaches alice.
#[tokio::test]
async fn a_peer_to_peer_offer_without_a_sid_is_refused() {
    let room = "sidless-p2p";
    let mut conference = Conference::start(CONFERENCE_OPTIONS).await;
    let (alice, bob) = conference.two(room).await;
    let answer = bob
        .handle()
        .iq_from_element(iq(
            "offer",
            &alice.occupant_jid,
            vec![
                el("jingle", JINGLE)
                    .attr(attr("action"), "session-initiate")
                    .build(),
            ],
        ))
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("bad-request"),
        "{answer:?}"
    );
    assert!(
        alice
            .received()
            .iter()
            .all(|iq| iq.action != "session-initiate" || iq.from.ends_with("/focus")),
        "{:?}",
        alice.received()
    );
}
