//! The request shapes recorded against the real jicofo (tests/fixtures/jicofo/): scenarios that
//! drive whichever focus is in the room, so the stand-in can be checked against what jicofo answered
//! (a probe ran them against jicofo and wrote the fixtures; tests/jicofo_conformance.rs runs them
//! against the stand-in).
//!
//! [`run`]: alice and bob (current lib-jitsi-meet shape) hold active sessions with audio and camera;
//! alice then sends, in this order: a valid source-add (her screenshare), a source-add of an SSRC bob
//! uses, a source-add past the SSRC limit, a source-add with a three-member FID group, a
//! source-remove of an SSRC nobody signalled, and two session-terminates (a wrong `<bridge-session
//! id>`, then the right one). bob sends a session-terminate with the right id on his untouched
//! session. [`run_session_requests`]: mutes, ICE failed and restart requests.
//! [`run_edge_requests`]: Jingle without action, empty requests, a second session-accept.

use std::path::PathBuf;

use minidom::Element;

use super::c2s::{CLIENT, attr, el};
use super::jingle::{FOCUS, Group, JINGLE, MUTE_AUDIO, Media, Source, SourceSet, Style};
use super::participant::{Participant, Track};

const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// One request sent to the focus and the answer that came back.
pub struct Step {
    /// The fixture's name, e.g. "source-add-ssrc-of-other".
    pub label: &'static str,
    /// The IQ as the participant sent it.
    pub request: Element,
    /// The IQ as the participant received it (after the MUC's id rewrite was undone).
    pub answer: Element,
}

/// A fixed SSRC range nobody else uses (the participants' SSRCs carry the nick's hash in the high
/// bits), so the recorded texts name the same numbers on every run.
pub const PAST_LIMIT_FIRST_SSRC: u32 = 7_000_000;
pub const FID_FIRST_SSRC: u32 = 8_000_000;
pub const UNKNOWN_SSRC: u32 = 9_000_000;
/// The `<bridge-session id>` no session has.
pub const WRONG_BRIDGE_SESSION: &str = "00000000-0000-0000-0000-000000000000";

fn jingle(action: &str, initiator: &str, sid: &str, contents: Vec<Element>) -> Element {
    el("jingle", JINGLE)
        .attr(attr("action"), action)
        .attr(attr("initiator"), initiator)
        .attr(attr("sid"), sid)
        .append_all(contents)
        .build()
}

async fn send(participant: &Participant, label: &'static str, payload: Element) -> Step {
    let handle = participant.handle();
    let request = el("iq", CLIENT)
        .attr(attr("type"), "set")
        .attr(attr("to"), format!("{}/focus", participant.room_jid))
        .attr(attr("id"), handle.next_id())
        .append(payload)
        .build();
    let answer = handle.iq_from_element(request.clone()).await;
    Step {
        label,
        request,
        answer,
    }
}

/// The `<bridge-session id>` of the participant's session-initiate.
pub fn bridge_session(participant: &Participant) -> Option<String> {
    participant
        .received()
        .into_iter()
        .filter(|received| received.action == "session-initiate")
        .last()?
        .iq
        .get_child("jingle", JINGLE)?
        .get_child("bridge-session", FOCUS)?
        .attr("id")
        .map(str::to_owned)
}

fn terminate(focus: &str, sid: &str, bridge_session: &str) -> Element {
    el("jingle", JINGLE)
        .attr(attr("action"), "session-terminate")
        .attr(attr("initiator"), focus)
        .attr(attr("sid"), sid)
        .append(el("reason", JINGLE).append(el("success", JINGLE)))
        .append(el("bridge-session", FOCUS).attr(attr("id"), bridge_session))
        .build()
}

/// Runs the scenario; alice and bob must both have accepted their sessions.
pub async fn run(alice: &Participant, bob: &Participant) -> Vec<Step> {
    let sid = alice.sid().expect("alice has a session");
    let focus = format!("{}/focus", alice.room_jid);
    let source_add = |set: &SourceSet| {
        jingle(
            "source-add",
            &focus,
            &sid,
            set.to_contents(Style::Client, None),
        )
    };
    let mut steps = Vec::new();
    let screenshare = alice.track(Track::Screenshare);
    steps.push(send(alice, "source-add-valid", source_add(&screenshare)).await);
    let bob_audio = bob.track(Track::Audio).sources[0].ssrc;
    let clash = SourceSet::new(
        vec![
            Source::new(Media::Audio, bob_audio)
                .named("alice-a1")
                .with_msid("alice-audio-1-1 clash-1"),
        ],
        vec![],
    );
    steps.push(send(alice, "source-add-ssrc-of-other", source_add(&clash)).await);
    // alice holds 13 SSRCs (audio 1, camera 6, screenshare 6): 8 more is past jicofo's 20.
    let many = SourceSet::new(
        (0..8u32)
            .map(|index| {
                Source::new(Media::Audio, PAST_LIMIT_FIRST_SSRC + index)
                    .named(&format!("alice-a{}", index + 10))
                    .with_msid(&format!("alice-audio-{} limit{index}-1", index + 10))
            })
            .collect(),
        vec![],
    );
    steps.push(send(alice, "source-add-past-limit", source_add(&many)).await);
    let fid: Vec<u32> = (0..3).map(|index| FID_FIRST_SSRC + index).collect();
    let three = SourceSet::new(
        fid.iter()
            .map(|ssrc| {
                Source::new(Media::Video, *ssrc)
                    .named("alice-v5")
                    .with_video_type("camera")
                    .with_msid("alice-video-5 fid3-1")
            })
            .collect(),
        vec![Group::new(Media::Video, "FID", &fid)],
    );
    steps.push(send(alice, "source-add-fid-of-three", source_add(&three)).await);
    let unknown = SourceSet::new(
        vec![Source::new(Media::Video, UNKNOWN_SSRC).named("alice-v9")],
        vec![],
    );
    let remove = jingle(
        "source-remove",
        &focus,
        &sid,
        unknown.to_contents(Style::Client, None),
    );
    steps.push(send(alice, "source-remove-unknown-ssrc", remove).await);
    let bob_sid = bob.sid().expect("bob has a session");
    let bob_session = bridge_session(bob).expect("bob's session-initiate has a bridge-session");
    steps.push(
        send(
            bob,
            "session-terminate-right-bridge-session",
            terminate(&focus, &bob_sid, &bob_session),
        )
        .await,
    );
    steps.push(
        send(
            alice,
            "session-terminate-wrong-bridge-session",
            terminate(&focus, &sid, WRONG_BRIDGE_SESSION),
        )
        .await,
    );
    let alice_session =
        bridge_session(alice).expect("alice's session-initiate has a bridge-session");
    steps.push(
        send(
            alice,
            "session-terminate-after-wrong-bridge-session",
            terminate(&focus, &sid, &alice_session),
        )
        .await,
    );
    steps
}

/// `<bridge-session id>` of the participant's current session, with `extra` attributes.
fn current_bridge_session(participant: &Participant, extra: &[(&'static str, &str)]) -> Element {
    let id = bridge_session(participant).expect("a bridge-session in session-initiate");
    let mut builder = el("bridge-session", FOCUS).attr(attr("id"), id);
    for (name, value) in extra {
        builder = builder.attr(attr(name), *value);
    }
    builder.build()
}

fn mute(to_mute: &Participant, mute: bool) -> Element {
    el("mute", MUTE_AUDIO)
        .attr(attr("jid"), to_mute.occupant_jid.as_str())
        .append(mute.to_string())
        .build()
}

/// What [`run_session_requests`] sent and got.
pub struct SessionRun {
    pub steps: Vec<Step>,
    /// Requests the focus never answered (it answered the next request on the same Jingle session
    /// first): the label and the request.
    pub unanswered: Vec<(&'static str, Element)>,
}

/// The second scenario (fixtures from the real jicofo without mod_podium, like [`run`]):
/// `participant` has no moderator rights (jicofo made `other` the room's owner, or nobody); both have
/// accepted their sessions. In this order: `participant` mutes `other`, unmutes `other`, mutes itself;
/// sends an action jicofo does not handle (`content-add`), then reports ICE failed naming a wrong
/// bridge session (answered first: jicofo never answers the `content-add`); asks for a restart
/// (session-terminate with `restart='true'`), and, once re-invited and accepted, asks again at once.
/// Then `other` reports ICE failed on its session.
pub async fn run_session_requests(participant: &Participant, other: &Participant) -> SessionRun {
    let focus = format!("{}/focus", participant.room_jid);
    let on_session = |who: &Participant, action: &str, children: Vec<Element>| {
        el("jingle", JINGLE)
            .attr(attr("action"), action)
            .attr(attr("initiator"), focus.as_str())
            .attr(attr("sid"), who.sid().expect("a session"))
            .append_all(children)
            .build()
    };
    let mut steps = vec![
        send(
            participant,
            "mute-other-without-moderator-rights",
            mute(other, true),
        )
        .await,
        send(
            participant,
            "unmute-other-without-moderator-rights",
            mute(other, false),
        )
        .await,
        send(participant, "mute-self", mute(participant, true)).await,
    ];
    let handle = participant.handle();
    let content_add = el("iq", CLIENT)
        .attr(attr("type"), "set")
        .attr(attr("to"), focus.as_str())
        .attr(attr("id"), handle.next_id())
        .append(on_session(participant, "content-add", vec![]))
        .build();
    let pending = handle.send_iq(content_add.clone());
    let wrong = el("bridge-session", FOCUS)
        .attr(attr("id"), WRONG_BRIDGE_SESSION)
        .build();
    let ice_failed = |who: &Participant, bridge_session: Element| {
        on_session(
            who,
            "session-info",
            vec![
                el("ice-state", FOCUS).append("failed").build(),
                bridge_session,
            ],
        )
    };
    steps.push(
        send(
            participant,
            "session-info-ice-failed-wrong-bridge-session",
            ice_failed(participant, wrong),
        )
        .await,
    );
    let mut unanswered = Vec::new();
    match pending.wait(std::time::Duration::ZERO).await {
        None => unanswered.push(("jingle-content-add", content_add)),
        Some(answer) => steps.push(Step {
            label: "jingle-content-add",
            request: content_add,
            answer,
        }),
    }
    let restart = |who: &Participant| {
        on_session(
            who,
            "session-terminate",
            vec![
                el("reason", JINGLE).append(el("success", JINGLE)).build(),
                current_bridge_session(who, &[("restart", "true")]),
            ],
        )
    };
    steps.push(
        send(
            participant,
            "session-terminate-restart",
            restart(participant),
        )
        .await,
    );
    participant
        .wait_until("re-invited after the restart request", |view| {
            view.session_initiates == 2 && view.accept_answers.len() == 2
        })
        .await;
    steps.push(
        send(
            participant,
            "session-terminate-restart-again",
            restart(participant),
        )
        .await,
    );
    let right = current_bridge_session(other, &[]);
    steps.push(send(other, "session-info-ice-failed", ice_failed(other, right)).await);
    SessionRun { steps, unanswered }
}

/// The third scenario (fixtures from the real jicofo without mod_podium, like [`run`]): on
/// `participant`'s accepted session, in this order, a `<jingle>` without `action` (never answered:
/// the next request's answer comes first), a `source-add` and a `source-remove` with no sources, a
/// `transport-info` without a transport, and its `session-accept` sent again (the same sources).
pub async fn run_edge_requests(participant: &Participant) -> SessionRun {
    let focus = format!("{}/focus", participant.room_jid);
    let sid = participant.sid().expect("a session");
    let handle = participant.handle();
    let no_action = el("iq", CLIENT)
        .attr(attr("type"), "set")
        .attr(attr("to"), focus.as_str())
        .attr(attr("id"), handle.next_id())
        .append(
            el("jingle", JINGLE)
                .attr(attr("initiator"), focus.as_str())
                .attr(attr("sid"), sid.as_str()),
        )
        .build();
    let pending = handle.send_iq(no_action.clone());
    let mut steps = Vec::new();
    for (label, action) in [
        ("source-add-empty", "source-add"),
        ("source-remove-empty", "source-remove"),
        ("transport-info-without-transport", "transport-info"),
    ] {
        steps.push(send(participant, label, jingle(action, &focus, &sid, vec![])).await);
    }
    let mut unanswered = Vec::new();
    match pending.wait(std::time::Duration::ZERO).await {
        None => unanswered.push(("jingle-without-action", no_action)),
        Some(answer) => steps.push(Step {
            label: "jingle-without-action",
            request: no_action,
            answer,
        }),
    }
    let sources = participant
        .track(Track::Audio)
        .union(&participant.track(Track::Camera));
    let again = el("jingle", JINGLE)
        .attr(attr("action"), "session-accept")
        .attr(attr("initiator"), focus.as_str())
        .attr(attr("responder"), participant.jid.as_str())
        .attr(attr("sid"), sid.as_str())
        .append_all(sources.to_contents(Style::Client, Some("responder")))
        .build();
    steps.push(send(participant, "session-accept-again", again).await);
    SessionRun { steps, unanswered }
}

/// An answer reduced to what the comparison looks at: its type, the error condition, and the error
/// text wherever it is (jicofo's Smack writes `<text>` without the stanzas namespace, and for `gone`
/// puts the text inside the condition element).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub type_: String,
    pub condition: Option<String>,
    pub text: Option<String>,
}

impl Outcome {
    pub fn of(answer: &Element) -> Outcome {
        let error = answer.get_child("error", CLIENT);
        let condition = error.and_then(|error| {
            error
                .children()
                .find(|child| child.ns() == STANZAS && child.name() != "text")
        });
        let text = error
            .and_then(|error| error.children().find(|child| child.name() == "text"))
            .map(Element::text)
            .or_else(|| condition.map(Element::text).filter(|text| !text.is_empty()));
        Outcome {
            type_: answer.attr("type").unwrap_or("").to_owned(),
            condition: condition.map(|condition| condition.name().to_owned()),
            text: text.map(|text| text.trim().to_owned()),
        }
    }
}

/// The namespace of a fixture's `<exchange>` and its parts.
pub const FIXTURE_NS: &str = "urn:podium:fixture";

/// A recorded exchange: the XML after the header comment.
pub fn fixture(name: &str) -> Element {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jicofo")
        .join(format!("{name}.xml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let body = &text[text.find("<exchange").expect("an <exchange> element")..];
    body.parse()
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The `<iq>` in the fixture's part `name` (request, answer, received, ...).
pub fn part<'a>(exchange: &'a Element, name: &str) -> &'a Element {
    exchange
        .get_child(name, FIXTURE_NS)
        .and_then(|part| part.get_child("iq", CLIENT))
        .unwrap_or_else(|| panic!("no <{name}><iq> in the fixture"))
}

/// Every `ssrc` attribute in `element`, in document order.
fn ssrcs(element: &Element, into: &mut Vec<String>) {
    if let Some(ssrc) = element.attr("ssrc") {
        into.push(ssrc.to_owned());
    }
    for child in element.children() {
        ssrcs(child, into);
    }
}

/// The recorded outcome with the recorded request's SSRCs replaced by this run's request's.
pub fn expected(step: &Step, exchange: &Element) -> Outcome {
    let mut outcome = Outcome::of(part(exchange, "answer"));
    let (mut recorded, mut live) = (Vec::new(), Vec::new());
    ssrcs(part(exchange, "request"), &mut recorded);
    ssrcs(&step.request, &mut live);
    assert_eq!(
        recorded.len(),
        live.len(),
        "{}: request shapes differ",
        step.label
    );
    if let Some(text) = &mut outcome.text {
        for (old, new) in recorded.iter().zip(&live) {
            if old != new {
                *text = text.replace(old.as_str(), new);
            }
        }
    }
    outcome
}

/// Where the answers `steps` got differ from the recorded jicofo's, one line per step.
pub fn differences(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|step| {
            let want = expected(step, &fixture(step.label));
            let got = Outcome::of(&step.answer);
            (got != want).then(|| format!("{}: recorded {want:?}, got {got:?}", step.label))
        })
        .collect()
}
