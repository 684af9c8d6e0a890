//! The focus stand-in against recorded reality: the scenarios of `tests/common/conformance.rs` were run
//! against the real jicofo (commit and setup in each fixture's header, tests/fixtures/jicofo/), and
//! here the stand-in (tests/common/focus.rs) gets the same requests and must answer as jicofo did:
//! the same type, error condition and error text (SSRCs renumbered to this run's). A real Prosody
//! without mod_podium on the conference MUC, so every request reaches the focus as sent.

mod common;

use std::collections::BTreeSet;

use common::bridge::BridgePeer;
use common::c2s::{C2s, CLIENT, attr, el};
use common::conformance::{self, FIXTURE_NS, Outcome, differences, fixture, part};
use common::focus::{FocusPeer, SessionState};
use common::jingle::{FOCUS, JINGLE, MUTE_AUDIO};
use common::participant::{Participant, Shape};
use common::prosody::Prosody;
use minidom::Element;

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "carol"];
async fn two_in_a_room() -> (Prosody, BridgePeer, FocusPeer, Participant, Participant) {
    let prosody = Prosody::start_without_podium(USERS);
    let bridge = BridgePeer::connect(prosody.c2s_port).await;
    let focus = FocusPeer::connect(prosody.c2s_port).await;
    let alice =
        Participant::join(prosody.c2s_port, "alice", "room1", "alice", Shape::Current).await;
    let bob = Participant::join(prosody.c2s_port, "bob", "room1", "bob", Shape::Current).await;
    for participant in [&alice, &bob] {
        participant
            .wait_until("the session is accepted", |view| {
                !view.accept_answers.is_empty()
            })
            .await;
    }
    (prosody, bridge, focus, alice, bob)
}

/// Every recorded request shape gets jicofo's answer: result, or the same condition and text.
#[tokio::test(flavor = "multi_thread")]
async fn test_stand_in_answers_as_recorded_jicofo() {
    let (_prosody, _bridge, _focus, alice, bob) = two_in_a_room().await;
    let steps = conformance::run(&alice, &bob).await;
    assert_eq!(steps.len(), 8);
    let differences = differences(&steps);
    assert!(differences.is_empty(), "{differences:#?}");
}

/// The focus answers with the id the MUC gave the request (base64 of the focus's JID, NUL, the
/// client's id, NUL, a MAC), as jicofo did, so the MUC can restore the client's id.
#[tokio::test(flavor = "multi_thread")]
async fn test_stand_in_answers_with_the_muc_rewritten_id() {
    use base64::Engine as _;
    let recorded = fixture("muc-id-rewrite");
    let received = part(&recorded, "received");
    let sent = part(&recorded, "sent");
    assert_eq!(received.attr("id"), sent.attr("id"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(received.attr("id").unwrap())
        .unwrap();
    assert!(decoded.starts_with(b"focus@localhost/focus\0t8\0"));

    let (_prosody, _bridge, focus, alice, bob) = two_in_a_room().await;
    let steps = conformance::run(&alice, &bob).await;
    let wrong = steps
        .iter()
        .find(|step| step.label == "session-terminate-wrong-bridge-session")
        .unwrap();
    let client_id = wrong.request.attr("id").unwrap();
    assert_eq!(wrong.answer.attr("id"), Some(client_id));
    let seen = focus
        .jingle_received()
        .into_iter()
        .find(|received| {
            received.action == "session-terminate" && received.from.ends_with("/alice")
        })
        .expect("the focus saw alice's session-terminate");
    let id = seen.iq.attr("id").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(id)
        .unwrap();
    assert!(
        decoded.starts_with(format!("focus@localhost/focus\0{client_id}\0").as_bytes()),
        "{id}"
    );
    assert_eq!(seen.answer.attr("id"), Some(id));
}

/// The stand-in's session-initiate carries the elements jicofo's did (jicofo's opentelemetry
/// `<traceparent>` included: a current lib-jitsi-meet echoes it in its session-accept), and a
/// `<bridge-session id>`.
#[tokio::test(flavor = "multi_thread")]
async fn test_session_initiate_has_the_recorded_elements() {
    let children = |jingle: &Element| -> BTreeSet<(String, String)> {
        jingle
            .children()
            .map(|child| (child.name().to_owned(), child.ns()))
            .collect()
    };
    let recorded = fixture("session-initiate");
    let recorded = part(&recorded, "request")
        .get_child("jingle", JINGLE)
        .unwrap();
    let (_prosody, _bridge, _focus, alice, _bob) = two_in_a_room().await;
    let initiate = alice
        .received()
        .into_iter()
        .find(|received| received.action == "session-initiate")
        .unwrap();
    let jingle = initiate.iq.get_child("jingle", JINGLE).unwrap();
    assert_eq!(children(jingle), children(recorded));
    assert!(conformance::bridge_session(&alice).is_some());
    let attributes = |jingle: &Element| -> BTreeSet<String> {
        jingle
            .get_child("bridge-session", FOCUS)
            .expect("a <bridge-session>")
            .attrs()
            .iter()
            .map(|((_, name), _)| name.to_string())
            .collect()
    };
    assert_eq!(attributes(jingle), attributes(recorded));
}

/// The second recorded scenario (`conformance::run_session_requests`: mutes, ICE failed, restart
/// requests): the stand-in answers each request as jicofo did, and does what jicofo did after it.
#[tokio::test(flavor = "multi_thread")]
async fn test_stand_in_handles_mutes_ice_failed_and_restarts_as_recorded_jicofo() {
    let (_prosody, bridge, focus, alice, bob) = two_in_a_room().await;
    // jicofo had made alice the owner; the stand-in makes nobody owner, so bob has no moderator
    // rights here either.
    let run = conformance::run_session_requests(&bob, &alice).await;
    let differences = differences(&run.steps);
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(run.steps.len(), 7);
    // jicofo never answers an action it does not handle (recorded without an answer).
    let content_add = fixture("jingle-content-add");
    assert!(content_add.get_child("answer", FIXTURE_NS).is_none());
    let labels: Vec<_> = run.unanswered.iter().map(|(label, _)| *label).collect();
    assert_eq!(labels, ["jingle-content-add"]);

    // Refused mutes reach nobody.
    assert!(alice.view().mutes.is_empty(), "{:?}", alice.view().mutes);

    // The restart asked for too soon: the session ended, bob's sources went, nobody was invited.
    common::conference::learns(&alice, "bob", BTreeSet::new()).await;
    bridge
        .wait_until("bob's endpoint expired", |view| {
            view.endpoint("room1", "bob").is_none()
        })
        .await;
    let bob_at_focus = focus.view().endpoint("bob").cloned().expect("bob is known");
    assert_eq!((bob_at_focus.invites, bob_at_focus.session), (2, None));

    // ICE failed on alice's session: bob learns her sources went, alice's session ends "moving",
    // nobody is invited and the bridge keeps her endpoint.
    let moving = fixture("session-terminate-moving");
    let recorded_reason = part(&moving, "request")
        .get_child("jingle", JINGLE)
        .and_then(|jingle| jingle.get_child("reason", JINGLE))
        .cloned()
        .expect("a <reason>");
    alice
        .wait_until("alice's session is terminated", |view| {
            view.received
                .iter()
                .any(|received| received.action == "session-terminate")
        })
        .await;
    let terminate = alice
        .received()
        .into_iter()
        .find(|received| received.action == "session-terminate")
        .unwrap();
    let reason = terminate
        .iq
        .get_child("jingle", JINGLE)
        .and_then(|jingle| jingle.get_child("reason", JINGLE))
        .cloned()
        .expect("a <reason>");
    assert_eq!(String::from(&reason), String::from(&recorded_reason));
    let attributes = |iq: &Element| -> BTreeSet<String> {
        iq.get_child("jingle", JINGLE)
            .expect("a <jingle>")
            .attrs()
            .iter()
            .map(|((_, name), _)| name.to_string())
            .collect()
    };
    assert_eq!(
        attributes(&terminate.iq),
        attributes(part(&moving, "request"))
    );
    let alice_at_focus = focus
        .view()
        .endpoint("alice")
        .cloned()
        .expect("alice is known");
    assert_eq!((alice_at_focus.invites, alice_at_focus.session), (1, None));
    assert!(bridge.endpoint("room1", "alice").is_some());
}

/// jicofo's Smack writes an error's `<text>` without the stanzas namespace, so it is in the
/// stanza's (`jabber:client`), where Prosody's `stanza:get_error()` does not look; the stand-in's
/// texts are where jicofo's are, so the module is tested against texts it must find there.
#[tokio::test(flavor = "multi_thread")]
async fn test_error_texts_are_in_the_recorded_namespace() {
    let text_ns = |answer: &Element| -> Option<String> {
        answer
            .get_child("error", CLIENT)?
            .children()
            .find(|child| child.name() == "text")
            .map(Element::ns)
    };
    let (_prosody, _bridge, _focus, alice, bob) = two_in_a_room().await;
    let steps = conformance::run(&alice, &bob).await;
    let mut compared = 0;
    for step in &steps {
        let recorded = fixture(step.label);
        let Some(want) = text_ns(part(&recorded, "answer")) else {
            continue;
        };
        assert_eq!(text_ns(&step.answer), Some(want), "{}", step.label);
        compared += 1;
    }
    assert_eq!(compared, 5, "the recorded answers with a <text>");
}

/// The third recorded scenario (`conformance::run_edge_requests`): a `<jingle>` without action is
/// never answered, empty source requests are, a transport-info without a transport is refused, and a
/// second session-accept is refused and ends the session.
#[tokio::test(flavor = "multi_thread")]
async fn test_stand_in_answers_edge_requests_as_recorded_jicofo() {
    let (_prosody, _bridge, focus, alice, _bob) = two_in_a_room().await;
    let run = conformance::run_edge_requests(&alice).await;
    let differences = differences(&run.steps);
    assert!(differences.is_empty(), "{differences:#?}");
    let labels: Vec<_> = run.unanswered.iter().map(|(label, _)| *label).collect();
    assert_eq!(labels, ["jingle-without-action"]);
    assert!(
        fixture("jingle-without-action")
            .get_child("answer", FIXTURE_NS)
            .is_none()
    );
    assert_eq!(focus.view().unanswered.len(), 1);
    let alice_at_focus = focus
        .view()
        .endpoint("alice")
        .cloned()
        .expect("alice is known");
    assert_eq!(
        alice_at_focus.session,
        Some(common::focus::SessionState::Ended)
    );
    assert!(
        !alice_at_focus.sources.is_empty(),
        "jicofo keeps her sources"
    );
}

/// A moderator's mute of someone else: jicofo answers `result` and tells the participant with a
/// `<mute actor>` from the focus occupant, as recorded. The room's creator is its moderator here
/// (jicofo had made alice owner; the stand-in makes nobody owner).
#[tokio::test(flavor = "multi_thread")]
async fn test_a_moderators_mute_reaches_the_participant_as_recorded() {
    let recorded = fixture("mute-other-as-moderator");
    let recorded_told = part(&recorded, "received")
        .get_child("mute", MUTE_AUDIO)
        .expect("a <mute>")
        .clone();
    let prosody = Prosody::start_without_podium(&["focus", "jvb", "alice", "bob", "mod"]);
    let _bridge = BridgePeer::connect(prosody.c2s_port).await;
    let _focus = FocusPeer::connect(prosody.c2s_port).await;
    let mut moderator = C2s::connect(prosody.c2s_port, "mod", "web").await;
    moderator.join("room1", "mod").await;
    let alice =
        Participant::join(prosody.c2s_port, "alice", "room1", "alice", Shape::Current).await;
    let mute = el("mute", MUTE_AUDIO)
        .attr(attr("jid"), alice.occupant_jid.as_str())
        .append("true")
        .build();
    let answer = moderator
        .iq("set", "room1@conference.localhost/focus", mute)
        .await;
    assert_eq!(
        Outcome::of(&answer),
        Outcome::of(part(&recorded, "answer")),
        "{answer:?}"
    );
    alice
        .wait_until("alice is told to mute", |view| !view.mutes.is_empty())
        .await;
    let told = alice
        .received()
        .into_iter()
        .find(|received| received.action == "mute")
        .expect("a mute IQ");
    assert!(told.from.ends_with("/focus"), "{told:?}");
    let told = told.iq.get_child("mute", MUTE_AUDIO).expect("a <mute>");
    let names = |mute: &Element| -> BTreeSet<String> {
        mute.attrs()
            .iter()
            .map(|((_, name), _)| name.to_string())
            .collect()
    };
    assert_eq!(names(told), names(&recorded_told));
    assert_eq!(told.attr("actor"), Some("room1@conference.localhost/mod"));
    assert_eq!(told.text(), recorded_told.text());
    assert!(alice.view().mutes[0].applied);
}

/// Whether `request` is an allocation of endpoint `nick` (`<endpoint id create='true'>`).
fn allocates(request: &common::bridge::ColibriRequest, nick: &str) -> bool {
    request.iq.children().any(|modify| {
        modify.children().any(|endpoint| {
            endpoint.attr("id") == Some(nick) && endpoint.attr("create") == Some("true")
        })
    })
}

/// A participant that leaves while its allocation is still at the bridge, and comes back under the
/// same nick, gets a session: jicofo records the participant before the bridge answers
/// (`ColibriV2SessionManager.doAllocate`: `add(participantInfo)`, then `nextResult()`), so the leave
/// expires its endpoint at the bridge (`removeParticipant`) and the late answer is ignored
/// ("Participant no longer active"); the next allocation of that endpoint id is not refused
/// `conflict` "Endpoint with ID carol already exists". The soak of issue 14 (point 7) lost a
/// participant's every later session this way.
#[tokio::test(flavor = "multi_thread")]
async fn test_a_participant_that_left_during_its_allocation_gets_a_session_when_back() {
    let (prosody, bridge, focus, _alice, _bob) = two_in_a_room().await;
    bridge.hold_answers();
    let carol =
        Participant::join(prosody.c2s_port, "carol", "room1", "carol", Shape::Current).await;
    bridge
        .wait_until("carol's allocation reaches the bridge", |view| {
            view.requests
                .iter()
                .any(|request| allocates(request, "carol"))
        })
        .await;
    carol.leave().await;
    focus
        .wait_until("the focus saw carol leave", |view| {
            view.endpoint("room1/carol").is_none()
        })
        .await;
    bridge.release_answers();
    bridge
        .wait_until("carol's endpoint is gone from the bridge", |view| {
            view.endpoint("room1", "carol").is_none()
        })
        .await;
    let carol =
        Participant::join(prosody.c2s_port, "carol", "room1", "carol", Shape::Current).await;
    carol
        .wait_until("carol's session is accepted", |view| {
            !view.accept_answers.is_empty()
        })
        .await;
    let endpoint = focus.view().endpoint("room1/carol").cloned().unwrap();
    assert_eq!(endpoint.session, Some(SessionState::Active));
    assert!(bridge.endpoint("room1", "carol").is_some());
    let conflicts: Vec<_> = bridge
        .requests()
        .into_iter()
        .filter(|request| !request.accepted && allocates(request, "carol"))
        .map(|request| request.answer)
        .collect();
    assert!(conflicts.is_empty(), "{conflicts:#?}");
}

/// An allocation the bridge does not answer in time does not leave the participant without a
/// session for good: jicofo (`doAllocate`, "Timeout" with `removeBridge`) drops the room's Colibri2
/// session and re-invites its participants (`bridgeRemoved` -> `reInviteParticipantsById`); here
/// the one bridge answers again, so everyone ends with an active session on a fresh allocation.
#[tokio::test(flavor = "multi_thread")]
async fn test_an_allocation_the_bridge_answers_too_late_is_made_again() {
    let (prosody, bridge, focus, _alice, _bob) = two_in_a_room().await;
    bridge.hold_answers();
    let _carol =
        Participant::join(prosody.c2s_port, "carol", "room1", "carol", Shape::Current).await;
    bridge
        .wait_until("carol's allocation reaches the bridge", |view| {
            view.requests
                .iter()
                .any(|request| allocates(request, "carol"))
        })
        .await;
    // The focus's limit (10 s) passes: the room's conference is expired and everyone invited anew.
    focus
        .wait_for(
            "the focus re-invites the room after the timeout",
            std::time::Duration::from_secs(20),
            |view| {
                let invites: Vec<u32> = ["alice", "bob"]
                    .iter()
                    .filter_map(|nick| view.endpoint(&format!("room1/{nick}")).map(|e| e.invites))
                    .collect();
                (invites != [2, 2]).then(|| format!("invites of alice and bob: {invites:?}"))
            },
        )
        .await;
    bridge.release_answers();
    focus
        .wait_for(
            "everyone's session is active again",
            std::time::Duration::from_secs(10),
            |view| {
                let states: Vec<_> = ["alice", "bob", "carol"]
                    .iter()
                    .map(|nick| {
                        view.endpoint(&format!("room1/{nick}"))
                            .and_then(|e| e.session)
                    })
                    .collect();
                (states
                    .iter()
                    .any(|state| *state != Some(SessionState::Active)))
                .then(|| format!("{states:?}"))
            },
        )
        .await;
    for nick in ["alice", "bob", "carol"] {
        assert!(
            bridge.endpoint("room1", nick).is_some(),
            "{nick} at the bridge"
        );
    }
}
