//! A modified client against the compact source store of issue 13 (review): the module keeps a
//! withheld source as a few fields (SSRC, name, videoType, msid parameters) and builds it again when
//! podium grants it. A client that spells its SSRCs as jicofo reads them but not as the module stores
//! them (`+0004242`, `004243`, group members `+4243`) must get exactly those sources to jicofo on a
//! grant, and lose exactly them on a revoke. A real Prosody with mod_podium, the real podium binary,
//! and the stand-ins for jicofo, the bridge and lib-jitsi-meet (tests/common); assertions are on what
//! the focus, the bridge and the other participant received.

mod common;

use std::collections::BTreeSet;

use minidom::Element;

use common::c2s::{attr, el};
use common::conference::{Conference, learns, relayed, sent, ssrcs};
use common::jingle::{JINGLE, SSMA};
use common::peer::is_result;
use common::prosody::MUC;

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];
const RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
const MSID: &str = "bob-v1-track 8d2f0c5e-desk";

/// Every `ssrc` attribute anywhere in `element`.
fn ssrc_attributes(element: &Element, found: &mut Vec<String>) {
    if let Some(ssrc) = element.attr("ssrc") {
        found.push(ssrc.to_owned());
    }
    for child in element.children() {
        ssrc_attributes(child, found);
    }
}

/// A screenshare of two SSRCs in oddly spelled decimal (both read by Java's Long.parseLong as 4242
/// and 4243), with lib-jitsi-meet's msid parameter and an FID group naming them in yet other spellings.
fn odd_screenshare() -> Element {
    let source = |ssrc: &str| {
        el("source", SSMA)
            .attr(attr("ssrc"), ssrc)
            .attr(attr("name"), "bob-v1")
            .attr(attr("videoType"), "desktop")
            .append(
                el("parameter", SSMA)
                    .attr(attr("name"), "msid")
                    .attr(attr("value"), MSID),
            )
    };
    el("content", JINGLE)
        .attr(attr("name"), "video")
        .append(
            el("description", RTP)
                .attr(attr("media"), "video")
                .append(source("+0004242"))
                .append(source("004243"))
                .append(
                    el("ssrc-group", SSMA)
                        .attr(attr("semantics"), "FID")
                        .append(el("source", SSMA).attr(attr("ssrc"), "4242"))
                        .append(el("source", SSMA).attr(attr("ssrc"), "+4243")),
                ),
        )
        .build()
}

#[tokio::test]
async fn an_oddly_spelled_withheld_screenshare_reaches_jicofo_as_sent_on_grant_and_leaves_on_revoke()
 {
    let room = "hostile-replay";
    let mut conference = Conference::start(
        USERS,
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
        (1, '*', 'everyone', NULL, 'audio,video', 'allow', 0, 'no screens')",
    )
    .await;
    let (alice, bob) = conference.two(room, "audio,video").await;
    let bob_own = ssrcs(&sent(&bob));
    let sid = conference.focus.sid("bob").expect("bob's session");

    // Withheld: the module answers the emptied source-add itself; nothing of it reaches jicofo.
    let answer = bob
        .send_jingle("source-add", &sid, vec![odd_screenshare()])
        .await;
    assert!(is_result(&answer), "{answer:?}");
    let from = format!("{room}@{MUC}/bob");
    let mut reached = Vec::new();
    for received in conference.focus.jingle_received() {
        if received.from == from {
            ssrc_attributes(&received.iq, &mut reached);
        }
    }
    for ssrc in ["4242", "4243", "+0004242", "004243", "+4243"] {
        assert!(
            !reached.iter().any(|seen| seen == ssrc),
            "{ssrc} reached the focus while withheld"
        );
    }

    // Granted: jicofo gets exactly the two SSRCs, once each, as the client described them.
    let mark = conference.focus.jingle_received().len();
    conference
        .edit("INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES (2, '*', 'everyone', NULL, 'screen', 'allow', 0)")
        .await;
    let mut expected: Vec<u32> = bob_own.iter().copied().collect();
    expected.extend([4242, 4243]);
    conference.focus_has_exactly("bob", &expected).await;
    let replays: Vec<Element> = conference.focus.jingle_received()[mark..]
        .iter()
        .filter(|received| received.from == from && received.action == "source-add")
        .map(|received| received.iq.clone())
        .collect();
    assert_eq!(replays.len(), 1, "{replays:?}");
    let description = replays[0]
        .get_child("jingle", JINGLE)
        .and_then(|jingle| jingle.get_child("content", JINGLE))
        .and_then(|content| content.get_child("description", RTP))
        .expect("a description in the replay");
    assert_eq!(description.attr("media"), Some("video"));
    let sources: Vec<&Element> = description
        .children()
        .filter(|child| child.is("source", SSMA))
        .collect();
    let replayed: Vec<(Option<&str>, Option<&str>, Option<&str>)> = sources
        .iter()
        .map(|source| {
            (
                source.attr("ssrc"),
                source.attr("name"),
                source.attr("videoType"),
            )
        })
        .collect();
    assert_eq!(
        replayed,
        vec![
            (Some("4242"), Some("bob-v1"), Some("desktop")),
            (Some("4243"), Some("bob-v1"), Some("desktop"))
        ]
    );
    for source in &sources {
        let parameters: Vec<(Option<&str>, Option<&str>)> = source
            .children()
            .map(|parameter| (parameter.attr("name"), parameter.attr("value")))
            .collect();
        assert_eq!(parameters, vec![(Some("msid"), Some(MSID))], "{source:?}");
    }
    let groups: Vec<Vec<&str>> = description
        .children()
        .filter(|child| child.is("ssrc-group", SSMA))
        .map(|group| {
            assert_eq!(group.attr("semantics"), Some("FID"));
            group
                .children()
                .filter_map(|member| member.attr("ssrc"))
                .collect()
        })
        .collect();
    assert_eq!(groups, vec![vec!["4242", "4243"]]);
    let alice_learns: BTreeSet<u32> = bob_own.iter().copied().chain([4242, 4243]).collect();
    learns(&alice, "bob", relayed_with(&bob, &alice_learns)).await;
    conference
        .bridge
        .wait_until("the bridge holds bob's screenshare", |view| {
            view.endpoint(room, "bob").is_some_and(|endpoint| {
                endpoint.video_ssrcs.contains(&4242) && endpoint.video_ssrcs.contains(&4243)
            })
        })
        .await;

    // Revoked: both leave jicofo, the bridge and alice.
    conference.edit("DELETE FROM rules WHERE id = 2").await;
    let own: Vec<u32> = bob_own.iter().copied().collect();
    conference.focus_has_exactly("bob", &own).await;
    learns(&alice, "bob", relayed(&sent(&bob))).await;
    conference
        .bridge
        .wait_until("the bridge no longer holds bob's screenshare", |view| {
            view.endpoint(room, "bob").is_some_and(|endpoint| {
                !endpoint.video_ssrcs.contains(&4242) && !endpoint.video_ssrcs.contains(&4243)
            })
        })
        .await;
}

/// What alice learns of bob: what jicofo relays of his own tracks, and the screenshare's two SSRCs.
fn relayed_with(bob: &common::participant::Participant, all: &BTreeSet<u32>) -> BTreeSet<u32> {
    let mut expected = relayed(&sent(bob));
    expected.extend(
        all.iter()
            .copied()
            .filter(|ssrc| *ssrc == 4242 || *ssrc == 4243),
    );
    expected
}
