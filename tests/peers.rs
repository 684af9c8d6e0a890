//! The Jitsi stand-ins against a real Prosody with mod_podium and the real podium binary: the focus
//! (jicofo), the bridge (jitsi-videobridge) and lib-jitsi-meet participants establish sessions and
//! relay sources the way the real ones do, and refuse what the real ones refuse. A rule lets everyone
//! send everything, so mod_podium's enforcement lets all of it through.

mod common;

use std::collections::BTreeSet;

use common::bridge::BridgePeer;
use common::c2s::{C2s, CLIENT, attr, el};
use common::focus::{BRIDGE_OWNER, FocusOptions, FocusPeer, SessionState};
use common::jingle::{
    COLIBRI2, Group, JINGLE, JITMEET, MUTE_AUDIO, Media, SSMA, Source, SourceSet, Style,
};
use common::participant::{Participant, ParticipantOptions, Shape, Track};
use common::peer::{error_condition, error_text, is_result};
use common::podium::{Podium, write_config};
use common::prosody::{CONFERENCE_OPTIONS, Prosody};
use common::{decided, edit_rules, wait_held};

const ROOM: &str = "standup";
const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];

/// Prosody with the conference options, podium allowing everything, the bridge and the focus.
struct Conference {
    prosody: Prosody,
    podium: Podium,
    inspector: C2s,
    bridge: BridgePeer,
    focus: FocusPeer,
}

impl Conference {
    async fn start(options: FocusOptions) -> Conference {
        let prosody = Prosody::start_with(USERS, CONFERENCE_OPTIONS);
        let db = prosody.data_dir().join("rules/podium.db");
        let podium = Podium::start(&write_config(&prosody, &db, ""));
        podium.wait_for(&["resync complete"]).await;
        edit_rules(
            &podium,
            &db,
            "INSERT INTO rules (room, who, media, effect) VALUES ('*', 'everyone', 'all', 'allow')",
        )
        .await;
        let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
        let bridge = BridgePeer::connect(prosody.c2s_port).await;
        let focus = FocusPeer::connect_with(prosody.c2s_port, options).await;
        Conference {
            prosody,
            podium,
            inspector,
            bridge,
            focus,
        }
    }

    /// `nick` joins (account = nick) and podium has decided for everyone in the room.
    async fn join(&mut self, nick: &str, shape: Shape, everyone: &[&str]) -> Participant {
        let participant = Participant::join(self.prosody.c2s_port, nick, ROOM, nick, shape).await;
        let all: Vec<(&str, &str)> = everyone
            .iter()
            .map(|nick| (*nick, "audio,video,screen"))
            .collect();
        wait_held(&mut self.inspector, &self.podium, ROOM, &decided(&all)).await;
        participant
    }

    /// Waits until the focus holds `sources` for `nick` on an active session.
    async fn wait_focus_holds(&self, nick: &str, sources: &SourceSet) {
        self.focus
            .wait_until(&format!("the focus holds {nick}'s sources"), |view| {
                view.endpoint(nick).is_some_and(|endpoint| {
                    endpoint.session == Some(SessionState::Active)
                        && same_ssrcs(&endpoint.sources, sources)
                })
            })
            .await;
    }

    /// Waits until the bridge holds exactly `sources` for `nick`.
    async fn wait_bridge_holds(&self, nick: &str, sources: &SourceSet) {
        let (audio, video) = (
            sources.ssrcs_of(Media::Audio),
            sources.ssrcs_of(Media::Video),
        );
        self.bridge
            .wait_until(&format!("the bridge holds {nick}'s sources"), |view| {
                view.endpoint(ROOM, nick).is_some_and(|endpoint| {
                    endpoint.audio_ssrcs == audio && endpoint.video_ssrcs == video
                })
            })
            .await;
    }
}

fn same_ssrcs(a: &SourceSet, b: &SourceSet) -> bool {
    a.ssrcs().into_iter().collect::<BTreeSet<_>>() == b.ssrcs().into_iter().collect()
}

/// What jicofo relays of `sources` to others: simulcast stripped.
fn relayed(sources: &SourceSet) -> BTreeSet<u32> {
    sources.strip_simulcast().ssrcs().into_iter().collect()
}

async fn wait_learned(participant: &Participant, owner: &str, expected: BTreeSet<u32>) {
    participant
        .wait_until(
            &format!("{} learns {owner}'s sources {expected:?}", participant.nick),
            |view| {
                view.remote
                    .get(owner)
                    .map(|set| set.ssrcs().into_iter().collect())
                    == Some(expected.clone())
            },
        )
        .await;
}

#[tokio::test]
async fn sessions_carry_sources_to_the_focus_the_bridge_and_the_other_participant() {
    let mut conference = Conference::start(FocusOptions::default()).await;
    let alice = conference.join("alice", Shape::Current, &["alice"]).await;
    let bob = conference
        .join("bob", Shape::Current, &["alice", "bob"])
        .await;
    let alice_sent = alice.track(Track::Audio).union(&alice.track(Track::Camera));
    let bob_sent = bob.track(Track::Audio).union(&bob.track(Track::Camera));

    // Both sessions are established; the focus and the bridge hold audio and camera.
    conference.wait_focus_holds("alice", &alice_sent).await;
    conference.wait_focus_holds("bob", &bob_sent).await;
    conference.wait_bridge_holds("alice", &alice_sent).await;
    conference.wait_bridge_holds("bob", &bob_sent).await;
    assert_eq!(alice.sid(), conference.focus.sid("alice"));
    alice
        .wait_until("alice's session-accept is answered", |view| {
            !view.accept_answers.is_empty()
        })
        .await;
    let accepted = alice.view().accept_answers;
    assert!(accepted.iter().all(is_result), "{accepted:?}");

    // Each participant learned the other's sources (simulcast stripped) and the bridge's.
    wait_learned(&alice, "bob", relayed(&bob_sent)).await;
    wait_learned(&bob, "alice", relayed(&alice_sent)).await;
    assert!(alice.remote_sources().contains_key(BRIDGE_OWNER));
    let camera = &bob.remote_sources()["alice"];
    assert!(camera.names().contains("alice-v0"), "{camera:?}");
    // ... as jicofo's JSON, not XML.
    let from_focus = bob.received();
    assert!(
        from_focus
            .iter()
            .filter(|iq| iq.action == "session-initiate" || iq.action == "source-add")
            .all(|iq| has_json(&iq.iq)),
        "{from_focus:#?}"
    );

    // A screenshare: the focus and the bridge get it, alice learns it as a desktop source.
    let answer = bob.add_screenshare().await;
    assert!(is_result(&answer), "{answer:?}");
    let screen = bob.track(Track::Screenshare);
    let bob_all = bob_sent.union(&screen);
    conference.wait_focus_holds("bob", &bob_all).await;
    conference.wait_bridge_holds("bob", &bob_all).await;
    wait_learned(&alice, "bob", relayed(&bob_all)).await;
    let learned = &alice.remote_sources()["bob"];
    assert_eq!(learned.desktop().ssrcs().len(), 2, "{learned:?}");

    // An older client's source-remove: gone from the focus and the bridge, alice is told.
    let answer = bob.remove_sources(Track::Screenshare).await;
    assert!(is_result(&answer), "{answer:?}");
    conference.wait_focus_holds("bob", &bob_sent).await;
    conference.wait_bridge_holds("bob", &bob_sent).await;
    wait_learned(&alice, "bob", relayed(&bob_sent)).await;

    // A re-invite: a new sid, a fresh endpoint at the bridge, the sources again everywhere.
    let old_sid = alice.sid().unwrap();
    let allocations_before = allocations_for(&conference.bridge, "alice");
    conference.focus.reinvite("alice").await;
    let new_sid = conference.focus.sid("alice").unwrap();
    assert_ne!(new_sid, old_sid);
    alice
        .wait_until("alice takes the new session", |view| {
            view.sid.as_deref() == Some(new_sid.as_str()) && view.accept_answers.len() == 2
        })
        .await;
    assert_eq!(
        allocations_for(&conference.bridge, "alice"),
        allocations_before + 1
    );
    conference.wait_focus_holds("alice", &alice_sent).await;
    conference.wait_bridge_holds("alice", &alice_sent).await;
    wait_learned(&bob, "alice", relayed(&alice_sent)).await;
    // The old sid is unknown now.
    let extra = SourceSet::new(vec![Source::new(Media::Audio, 77)], vec![]);
    let answer = alice
        .send_jingle(
            "source-add",
            &old_sid,
            extra.to_contents(Style::Client, None),
        )
        .await;
    assert_eq!(error_condition(&answer).as_deref(), Some("bad-request"));
}

#[tokio::test]
async fn xml_sources_when_json_is_off_and_legacy_clients() {
    let mut conference = Conference::start(FocusOptions {
        json_sources: false,
        ..FocusOptions::default()
    })
    .await;
    let alice = conference
        .join("alice", Shape::Legacy2021, &["alice"])
        .await;
    let alice_sent = alice.track(Track::Audio).union(&alice.track(Track::Camera));
    assert!(
        alice_sent.names().is_empty(),
        "a 2021 client names no sources"
    );
    conference.wait_focus_holds("alice", &alice_sent).await;
    conference.wait_bridge_holds("alice", &alice_sent).await;
    // jicofo names nameless sources for the bridge.
    let endpoint = conference.bridge.endpoint(ROOM, "alice").unwrap();
    assert_eq!(
        endpoint.media_source_ids,
        BTreeSet::from(["alice-a0".to_owned(), "alice-v0".to_owned()])
    );

    // bob accepts by hand: the offer carries alice's sources; what changes before he accepts is
    // queued for him and sent after his accept.
    let manual = ParticipantOptions {
        auto_accept: false,
        ..ParticipantOptions::default()
    };
    let bob = Participant::join_with(
        conference.prosody.c2s_port,
        "bob",
        ROOM,
        "bob",
        Shape::Current,
        manual,
    )
    .await;
    let everyone = decided(&[
        ("alice", "audio,video,screen"),
        ("bob", "audio,video,screen"),
    ]);
    wait_held(
        &mut conference.inspector,
        &conference.podium,
        ROOM,
        &everyone,
    )
    .await;
    let bob_sent = bob.track(Track::Audio).union(&bob.track(Track::Camera));
    bob.wait_until("bob is invited", |view| view.sid.is_some())
        .await;
    wait_learned(&bob, "alice", relayed(&alice_sent)).await;
    let answer = alice.remove_sources(Track::Camera).await;
    assert!(is_result(&answer), "{answer:?}");
    let alice_audio = alice.track(Track::Audio);
    conference.wait_focus_holds("alice", &alice_audio).await;
    let told_bob: Vec<String> = conference
        .focus
        .sent_to("bob")
        .into_iter()
        .map(|sent| sent.what)
        .collect();
    assert!(
        !told_bob.contains(&"source-remove".to_owned()),
        "{told_bob:?}"
    );
    let answer = bob.accept().await;
    assert!(is_result(&answer), "{answer:?}");
    conference.wait_focus_holds("bob", &bob_sent).await;
    wait_learned(&bob, "alice", relayed(&alice_audio)).await;
    wait_learned(&alice, "bob", relayed(&bob_sent)).await;

    // XML with <ssrc-info owner>, no JSON.
    let from_focus = bob.received();
    let relaying: Vec<_> = from_focus
        .iter()
        .filter(|iq| iq.action.starts_with("session-initiate") || iq.action.starts_with("source-"))
        .collect();
    let actions: Vec<&str> = relaying.iter().map(|iq| iq.action.as_str()).collect();
    assert_eq!(
        actions,
        ["session-initiate", "source-remove"],
        "{relaying:#?}"
    );
    assert!(relaying.iter().all(|iq| !has_json(&iq.iq)), "{relaying:#?}");
    assert!(
        relaying
            .iter()
            .any(|iq| owners_in_xml(&iq.iq).contains("alice")),
        "{relaying:#?}"
    );
}

#[tokio::test]
async fn the_focus_refuses_what_jicofo_refuses_and_changes_nothing() {
    let mut conference = Conference::start(FocusOptions::default()).await;
    let alice = conference.join("alice", Shape::Current, &["alice"]).await;
    let bob = conference
        .join("bob", Shape::Current, &["alice", "bob"])
        .await;
    let alice_sent = alice.track(Track::Audio).union(&alice.track(Track::Camera));
    conference.wait_focus_holds("alice", &alice_sent).await;
    conference.wait_bridge_holds("alice", &alice_sent).await;
    wait_learned(&bob, "alice", relayed(&alice_sent)).await;
    // bob's own session-accept must be in before counting what reaches the focus from here on.
    let bob_sent = bob.track(Track::Audio).union(&bob.track(Track::Camera));
    conference.wait_focus_holds("bob", &bob_sent).await;
    let sid = alice.sid().unwrap();
    let seen_before = conference.focus.jingle_received().len();
    let send = |action: &'static str, sources: SourceSet| {
        let (alice, sid) = (&alice, sid.clone());
        async move {
            alice
                .send_jingle(action, &sid, sources.to_contents(Style::Client, None))
                .await
        }
    };

    // Removing an SSRC nobody signalled.
    let unknown = SourceSet::new(vec![Source::new(Media::Video, 4242)], vec![]);
    let answer = send("source-remove", unknown).await;
    assert_eq!(error_condition(&answer).as_deref(), Some("bad-request"));
    assert_eq!(
        error_text(&answer).as_deref(),
        Some("Source does not exist or is not owned by endpoint (ssrc=4242).")
    );

    // 7 signalled + 14 more = 21 SSRCs.
    let many = SourceSet::new(
        (0..14)
            .map(|i| {
                Source::new(Media::Audio, 3_000_000 + i).with_msid(&format!("extra-{i} track-{i}"))
            })
            .collect(),
        vec![],
    );
    let answer = send("source-add", many).await;
    assert_eq!(error_condition(&answer).as_deref(), Some("bad-request"));
    assert_eq!(
        error_text(&answer).as_deref(),
        Some("SSRC limit (20) exceeded.")
    );

    // A group naming an SSRC that is not signalled fails the whole request, valid source included.
    let orphan = SourceSet::new(
        vec![Source::new(Media::Video, 3_100_000).with_msid("orphan stream")],
        vec![Group::new(Media::Video, "FID", &[3_100_000, 3_100_001])],
    );
    let answer = send("source-add", orphan).await;
    assert_eq!(error_condition(&answer).as_deref(), Some("bad-request"));
    assert_eq!(
        error_text(&answer).as_deref(),
        Some(
            "An SSRC group contains an SSRC, which hasn't been signaled as a source: [3100000, 3100001]."
        )
    );

    // Another endpoint's SSRC.
    let stolen = SourceSet::new(vec![bob.track(Track::Audio).sources[0].clone()], vec![]);
    let answer = send("source-add", stolen).await;
    assert_eq!(error_condition(&answer).as_deref(), Some("bad-request"));

    // An unknown sid.
    let answer = alice
        .send_jingle(
            "source-add",
            "no-such-sid",
            alice
                .track(Track::Screenshare)
                .to_contents(Style::Client, None),
        )
        .await;
    assert_eq!(error_condition(&answer).as_deref(), Some("bad-request"));

    // Nothing changed anywhere.
    assert!(same_ssrcs(&conference.focus.sources("alice"), &alice_sent));
    let endpoint = conference.bridge.endpoint(ROOM, "alice").unwrap();
    assert_eq!(endpoint.audio_ssrcs, alice_sent.ssrcs_of(Media::Audio));
    assert_eq!(
        bob.remote_sources()["alice"]
            .ssrcs()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        relayed(&alice_sent)
    );
    // Every request that reached the focus was refused. mod_podium refuses all of these itself, with
    // jicofo's answers (the unknown removal, the SSRC limit, the orphan group, the stolen SSRC, the
    // unknown sid); that the stand-in refuses them as jicofo does without the module in the way is
    // tests/jicofo_conformance.rs.
    let reached = conference.focus.jingle_received().split_off(seen_before);
    assert!(
        reached.iter().all(|received| !is_result(&received.answer)),
        "{reached:#?}"
    );
}

#[tokio::test]
async fn the_bridge_takes_colibri_only_through_the_brewery_and_expires_with_the_last_leave() {
    let mut conference = Conference::start(FocusOptions::default()).await;
    let alice = conference.join("alice", Shape::Current, &["alice"]).await;
    let bob = conference
        .join("bob", Shape::Current, &["alice", "bob"])
        .await;
    let bob_sent = bob.track(Track::Audio).union(&bob.track(Track::Camera));
    conference.wait_bridge_holds("bob", &bob_sent).await;
    let meeting_id = conference.focus.meeting_id(ROOM).unwrap();

    // A participant talks Colibri2 to the bridge's real JID: forbidden, nothing changes.
    let forged = el("conference-modify", COLIBRI2)
        .attr(attr("meeting-id"), meeting_id.as_str())
        .append(
            el("endpoint", COLIBRI2)
                .attr(attr("id"), "bob")
                .append(el("force-mute", COLIBRI2).attr(attr("audio"), "true")),
        )
        .build();
    let answer = alice.iq("get", &conference.bridge.jid, forged).await;
    assert_eq!(error_condition(&answer).as_deref(), Some("forbidden"));
    let refusals = conference.bridge.refusals();
    assert_eq!(refusals.len(), 1);
    assert!(
        refusals[0].from.starts_with("alice@localhost/"),
        "{refusals:?}"
    );
    assert!(
        !conference
            .bridge
            .endpoint(ROOM, "bob")
            .unwrap()
            .force_mute_audio
    );

    // jicofo's own force-mute update works, and a re-invite carries the focus's view.
    let answer = conference.focus.force_mute("bob", true, false).await;
    assert!(is_result(&answer), "{answer:?}");
    let endpoint = conference.bridge.endpoint(ROOM, "bob").unwrap();
    assert!(endpoint.force_mute_audio && !endpoint.force_mute_video);
    conference.focus.reinvite("bob").await;
    conference.wait_bridge_holds("bob", &bob_sent).await;
    let allocation = conference
        .focus
        .sent_to("bob")
        .into_iter()
        .rfind(|sent| sent.what == "allocate")
        .unwrap();
    let force_mute = allocation
        .iq
        .get_child("conference-modify", COLIBRI2)
        .and_then(|modify| modify.get_child("endpoint", COLIBRI2))
        .and_then(|endpoint| endpoint.get_child("force-mute", COLIBRI2))
        .cloned();
    assert_eq!(
        force_mute
            .as_ref()
            .map(|f| (f.attr("audio"), f.attr("video"))),
        Some((Some("true"), None)),
        "{allocation:?}"
    );

    // The focus's mute IQ: no reply, the client mutes and says so in presence.
    let mute = el("iq", CLIENT)
        .attr(attr("type"), "set")
        .attr(attr("to"), alice.occupant_jid.as_str())
        .attr(attr("id"), "mute-1")
        .append(
            el("mute", MUTE_AUDIO)
                .attr(attr("actor"), format!("{}/focus", alice.room_jid))
                .append("true"),
        )
        .build();
    conference.focus.handle().send(mute);
    alice
        .wait_until("alice mutes on the focus's request", |view| {
            view.mutes.iter().any(|mute| mute.applied)
                && view.source_info.contains("\"alice-a0\":{\"muted\":true}")
        })
        .await;

    // A P2P offer between the two occupants reaches the other side.
    let answer = alice.p2p_offer("bob").await;
    assert!(is_result(&answer), "{answer:?}");
    assert_eq!(bob.view().p2p_sids.len(), 1);

    // The last leave expires the conference at the bridge.
    alice.leave().await;
    conference
        .bridge
        .wait_until("alice's endpoint expires", |view| {
            view.endpoint(ROOM, "alice").is_none() && view.conference(ROOM).is_some()
        })
        .await;
    bob.leave().await;
    conference
        .bridge
        .wait_until("the conference expires", |view| {
            view.conference(ROOM).is_none() && view.expired.contains(&meeting_id)
        })
        .await;
}

fn allocations_for(bridge: &BridgePeer, nick: &str) -> usize {
    bridge
        .requests()
        .iter()
        .filter(|request| {
            request.accepted
                && request
                    .iq
                    .get_child("conference-modify", COLIBRI2)
                    .is_some_and(|modify| {
                        modify.children().any(|endpoint| {
                            endpoint.attr("id") == Some(nick)
                                && endpoint.attr("create") == Some("true")
                        })
                    })
        })
        .count()
}

fn has_json(iq: &minidom::Element) -> bool {
    iq.get_child("jingle", JINGLE)
        .is_some_and(|jingle| jingle.has_child("json-message", JITMEET))
}

/// The owners named by `<ssrc-info>` in an IQ's Jingle contents.
fn owners_in_xml(iq: &minidom::Element) -> BTreeSet<String> {
    let Some(jingle) = iq.get_child("jingle", JINGLE) else {
        return BTreeSet::new();
    };
    jingle
        .children()
        .flat_map(|content| content.children())
        .flat_map(|description| description.children())
        .filter(|source| source.is("source", SSMA))
        .filter_map(|source| source.get_child("ssrc-info", JITMEET))
        .filter_map(|info| info.attr("owner").map(str::to_owned))
        .collect()
}
