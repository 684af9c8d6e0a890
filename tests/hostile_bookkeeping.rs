//! A modified client against what the module remembers about requests in flight and peer-to-peer
//! sessions (issue 11, points 2, 3 and 4, found in review): a request the module records but that goes
//! elsewhere than the module believes, or an answer that comes back to a session that has left, must
//! not make the module forget what jicofo holds or which sessions a revoke must end. A real Prosody
//! with mod_podium, the real podium binary on SQLite, and the stand-ins for jicofo, the bridge and
//! lib-jitsi-meet (tests/common). Every assertion is on what the focus or the other participant
//! received.

mod common;

use minidom::Element;

use common::c2s::{C2s, CLIENT, attr, el};
use common::conference::{Conference, EVERYTHING, sent};
use common::focus::FocusOptions;
use common::jingle::{JINGLE, Media, Source, SourceSet, Style};
use common::participant::Track;
use common::peer::error_condition;
use common::prosody::{CONFERENCE_OPTIONS, MUC};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];
/// Prosody with `muc_options`, podium, the bridge and the focus; everyone may send everything.
async fn start(muc_options: &str) -> Conference {
    Conference::start_with(USERS, muc_options, FocusOptions::default(), "", EVERYTHING).await
}

/// A rule denies bob `media`; returns once the module holds `left` for him.
async fn deny_bob(conference: &mut Conference, room: &str, media: &str, left: &str) {
    conference
        .edit(&format!(
            "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
                (2, '*', 'jid', 'bob@*', '{media}', 'deny', 10)"
        ))
        .await;
    conference
        .wait_held(room, &[("alice", "audio,video,screen"), ("bob", left)])
        .await;
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
    let mut conference = start(&options).await;
    let (_alice, bob) = conference.two(room, "audio,video,screen").await;
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
        .focus_has("bob", &sent(&bob).union(&screenshare))
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

    deny_bob(&mut conference, room, "screen", "audio,video").await;
    conference.focus_has("bob", &sent(&bob)).await;
}

/// lib-jitsi-meet keys a peer-to-peer session without a sid like any other (strophe.jingle.js
/// `onJingle` reads `sid` as undefined and answers with none), but the module can neither record nor
/// end it: such an offer is refused before it reaches alice.
#[tokio::test]
async fn a_peer_to_peer_offer_without_a_sid_is_refused() {
    let room = "sidless-p2p";
    let mut conference = start(CONFERENCE_OPTIONS).await;
    let (alice, bob) = conference.two(room, "audio,video,screen").await;
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
