//! Jingle that tries to go around the governed room (issue 11, points 4 and 5), on the real Prosody
//! with mod_podium, the real podium binary, and the jicofo, bridge and lib-jitsi-meet stand-ins.
//! Each scenario asserts what reached the other participant or the focus, and what the sender got.
//!
//! * Point 4: lib-jitsi-meet accepts a P2P `session-initiate` from any JID while its conference has
//!   one other member (strophe.jingle.js `onJingle`, JitsiConference `_onIncomingCallP2P`), so a
//!   participant refused P2P in the room offers it to the other person's real JID, through a MUC
//!   without mod_podium (the lobby), or from a component.
//! * Point 5: jicofo routes Jingle from every visitor-node connection by sid alone (XmppServices.kt,
//!   JingleIqRequestHandler.kt), so a participant connected to a visitor Prosody could send its main
//!   session's sources to jicofo there; and could offer P2P to a visitor there.

mod common;

use std::time::Duration;

use common::c2s::{C2s, CLIENT, attr, el};
use common::conference::{Conference, lecture};
use common::focus::{FOCUS_JID, FOCUS_NICK};
use common::jingle::{JINGLE, SourceSet, Style};
use common::participant::{Participant, Track};
use common::peer::{error_condition, iq, is_result, result_for};
use common::prosody::{LOBBY_MUC, OTHER_COMPONENT, Prosody, VISITOR_MUC};
use minidom::Element;

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "carol", "inspector"];

/// A lecture room with alice (lecturer) and bob (no camera); returns once the focus holds bob's
/// audio. P2P is off in lecture rooms.
async fn start(room: &str) -> (Conference, Participant, Participant) {
    let (lecture, alice, bob) = lecture(USERS, room).await;
    lecture
        .focus_has_exactly("bob", &bob.track(Track::Audio).ssrcs())
        .await;
    (lecture, alice, bob)
}

/// A P2P offer as lib-jitsi-meet builds it (`JingleSessionPC.invite`), carrying `sources`.
fn offer(sid: &str, initiator: &str, sources: &SourceSet) -> Element {
    el("jingle", JINGLE)
        .attr(attr("action"), "session-initiate")
        .attr(attr("initiator"), initiator)
        .attr(attr("sid"), sid)
        .append_all(sources.to_contents(Style::Client, None))
        .build()
}

/// Everything `participant` received came from the focus occupant of its room.
fn only_from_focus(participant: &Participant) {
    let focus = format!("{}/{FOCUS_NICK}", participant.room_jid);
    let others: Vec<_> = participant
        .received()
        .into_iter()
        .filter(|received| received.from != focus)
        .map(|received| (received.from, received.action))
        .collect();
    assert!(
        others.is_empty(),
        "{} received {others:?}",
        participant.nick
    );
    assert!(participant.view().p2p_sids.is_empty());
}

#[tokio::test]
async fn peer_to_peer_offers_around_the_room_never_reach_the_other_participant() {
    let room = "lecture-around";
    let (lecture, alice, bob) = start(room).await;
    let (alice, bob) = (&alice, &bob);
    let bob_media = bob.track(Track::Audio).union(&bob.track(Track::Camera));

    // In the room, P2P is refused while bob is restricted (the module on the MUC).
    let answer = bob.p2p_offer("alice").await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );

    // 1. Straight to alice's real full JID (Jitsi publishes real JIDs), c2s to c2s.
    let answer = bob
        .iq("set", &alice.jid, offer("direct1", &bob.jid, &bob_media))
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );

    // 2. Through a MUC without mod_podium (a lobby): both are occupants of a room there.
    let lobby_room = format!("{room}@{LOBBY_MUC}");
    let mut bob_lobby = C2s::connect(lecture.prosody.c2s_port, "bob", "lobby").await;
    bob_lobby.join(&lobby_room, "bob").await;
    alice.handle().send(
        el("presence", CLIENT)
            .attr(attr("to"), format!("{lobby_room}/alice"))
            .append(el("x", "http://jabber.org/protocol/muc"))
            .build(),
    );
    let alice_in_lobby = format!("{lobby_room}/alice");
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(stanza) = bob_lobby.inbox.recv().await {
            if stanza.name() == "presence" && stanza.attr("from") == Some(alice_in_lobby.as_str()) {
                return;
            }
        }
    })
    .await
    .expect("alice joins the lobby room");
    let answer = bob_lobby
        .iq(
            "set",
            &alice_in_lobby,
            offer("lobby1", &format!("{lobby_room}/bob"), &bob_media),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );

    // 3. From a component (what arrives from anywhere but a governed MUC is refused on delivery).
    let mut other = lecture.prosody.login_other_component().await;
    let from_component = xmpp_parsers::iq::Iq::Set {
        from: Some(format!("mallory@{OTHER_COMPONENT}").parse().unwrap()),
        to: Some(alice.jid.parse().unwrap()),
        id: "component1".into(),
        payload: offer(
            "component1",
            &format!("mallory@{OTHER_COMPONENT}"),
            &bob_media,
        ),
    };
    let answer = component_answer(&mut other, from_component, "component1").await;
    // On the component stream the error is in jabber:component:accept.
    let condition = answer
        .children()
        .find(|child| child.name() == "error")
        .and_then(|error| error.children().next())
        .map(|condition| condition.name().to_owned());
    assert_eq!(condition.as_deref(), Some("not-allowed"), "{answer:?}");

    // alice got none of it; the call is still on the bridge, through the focus.
    only_from_focus(alice);
    lecture
        .focus_has_exactly("bob", &bob.track(Track::Audio).ssrcs())
        .await;
}

/// Sends `stanza` on the component stream and returns the answer with `id`.
async fn component_answer(
    stream: &mut podium::xmpp::stream::ComponentStream,
    stanza: xmpp_parsers::iq::Iq,
    id: &str,
) -> Element {
    use futures::{SinkExt, StreamExt};
    use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
    stream
        .send(&XmppStreamElement::Stanza(stanza.into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an answer within 10 s")
        {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza)))) => {
                let element = Element::from(stanza);
                if element.attr("id") == Some(id) {
                    return element;
                }
            }
            Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => continue,
            other => panic!("component stream failed: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_visitor_node_takes_no_sources_for_the_focus_and_no_offers_for_visitors() {
    let room = "lecture-visitors";
    let (lecture, alice, bob) = start(room).await;
    let (alice, bob) = (&alice, &bob);
    let bob_sid = lecture
        .focus
        .sid("bob")
        .expect("bob's session with the focus");
    let camera = bob.track(Track::Camera);

    // A visitor Prosody, where jicofo also has a session and is in the room's visitor MUC.
    let vnode = Prosody::start_visitor_node(&["focus", "bob", "carol"]);
    let visitor_room = format!("{room}@{VISITOR_MUC}");
    let focus_there = lecture
        .focus
        .attach_visitor_node(vnode.c2s_port, &[&visitor_room])
        .await;
    let seen_before = lecture.focus.jingle_received().len();

    // bob connects there too (as a visitor would) and sends his withheld camera under his main
    // session's sid, straight to jicofo's JID there and through the visitor MUC.
    let mut bob_there = C2s::connect(vnode.c2s_port, "bob", "visitor").await;
    let source_add = el("jingle", JINGLE)
        .attr(attr("action"), "source-add")
        .attr(attr("sid"), bob_sid.as_str())
        .append_all(camera.to_contents(Style::Client, None))
        .build();
    let answer = bob_there.iq("set", FOCUS_JID, source_add.clone()).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("forbidden"),
        "{answer:?}"
    );
    bob_there.join(&visitor_room, "bob").await;
    let answer = bob_there
        .iq("set", &format!("{visitor_room}/{FOCUS_NICK}"), source_add)
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("forbidden"),
        "{answer:?}"
    );
    // A session-accept carrying sources, under the same sid.
    let accept = el("jingle", JINGLE)
        .attr(attr("action"), "session-accept")
        .attr(attr("sid"), bob_sid.as_str())
        .append_all(camera.to_contents(Style::Client, None))
        .build();
    let answer = bob_there.iq("set", FOCUS_JID, accept).await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("forbidden"),
        "{answer:?}"
    );

    assert_eq!(
        lecture.focus.jingle_received().len(),
        seen_before,
        "none of it reached the focus"
    );
    lecture
        .focus_has_exactly("bob", &bob.track(Track::Audio).ssrcs())
        .await;
    only_from_focus(alice);

    // A P2P offer to a visitor there, straight to her JID and through the visitor MUC: refused.
    let mut carol = C2s::connect(vnode.c2s_port, "carol", "visitor").await;
    carol.join(&visitor_room, "carol").await;
    let bob_media = bob.track(Track::Audio).union(&camera);
    let answer = bob_there
        .iq(
            "set",
            &carol.jid,
            offer("vp2p1", &bob_there.jid, &bob_media),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );
    let carol_occupant = format!("{visitor_room}/carol");
    let answer = bob_there
        .iq(
            "set",
            &carol_occupant,
            offer("vp2p2", &format!("{visitor_room}/bob"), &bob_media),
        )
        .await;
    assert_eq!(
        error_condition(&answer).as_deref(),
        Some("not-allowed"),
        "{answer:?}"
    );

    // jicofo's own session-initiate to carol through the visitor MUC still reaches her, and it is
    // the first Jingle she gets: nothing of bob's came before it.
    let initiate = focus_there.handle.send_iq(iq(
        "set",
        &carol_occupant,
        "focus-initiate-1",
        offer("visitor-session", FOCUS_JID, &SourceSet::default()),
    ));
    let focus_occupant = format!("{visitor_room}/{FOCUS_NICK}");
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stanza = carol.inbox.recv().await.expect("carol's connection");
            if stanza.name() == "iq" && stanza.get_child("jingle", JINGLE).is_some() {
                return stanza;
            }
        }
    })
    .await
    .expect("carol gets a Jingle request");
    assert_eq!(
        received.attr("from"),
        Some(focus_occupant.as_str()),
        "{received:?}"
    );
    carol.send(result_for(&received));
    let answer = initiate
        .wait(Duration::from_secs(10))
        .await
        .expect("carol answers");
    assert!(is_result(&answer), "{answer:?}");
}
