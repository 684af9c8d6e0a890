//! The Colibri2 request shapes recorded against the real jitsi-videobridge (tests/fixtures/jvb/): one
//! scenario that drives whichever bridge is in the brewery, so the bridge stand-in
//! (tests/common/bridge.rs) can be checked against what JVB answered.
//!
//! A driver signed in as jicofo's account joins the brewery and sends conference-modify requests to
//! the bridge's occupant JID, as jicofo does (the MUC rewrites `from` to the brewery, which is all
//! jicoco's `MucClient` checks), and one request straight to the bridge's real JID. The steps, in order:
//! create a conference with endpoint alice; create it again; a request for a conference that does not
//! exist; create alice again; create bob without `<transport>`; without the `source-names`
//! capability; create bob; sources for two endpoints at once; sources for an unknown endpoint;
//! force-mute for an unknown endpoint; force-mute of bob's audio (mod_podium's shape), then of his
//! video only; a batch force-mute; a conference name that is not a JID; a request without
//! `meeting-id`; expire alice, then bob (the conference goes with its last endpoint); a force-mute
//! after that; the request that bypasses the brewery.

use std::time::Duration;

use minidom::Element;

use super::c2s::{C2s, C2sHandle, CLIENT, attr, el};
use super::jingle::{COLIBRI2, DTLS, ICE, RTP, RTP_HDREXT, SSMA};
use super::peer::{random_hex, random_uuid};
use super::prosody::BREWERY;

const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const MUC_NS: &str = "http://jabber.org/protocol/muc";
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// How long a step waits for an answer before recording that none came (see
/// [`Driver::with_answer_limit`]).
const ANSWER_LIMIT: Duration = Duration::from_secs(5);
/// The room name jicofo gives a conference (`name` of the create).
pub const ROOM: &str = "room1@conference.localhost";
/// A conference name that is not a JID (two `@`).
pub const BAD_NAME: &str = "room1@bad@conference.localhost";

/// One request sent to the bridge and the answer that came back (`None`: none in the answer limit).
pub struct Step {
    /// The fixture's name, e.g. "create-endpoint-without-transport".
    pub label: &'static str,
    /// The IQ as the driver sent it.
    pub request: Element,
    /// The IQ as the driver received it.
    pub answer: Option<Element>,
    /// The force-mute state (audio, video) the bridge held after this step, for the endpoints the
    /// step looks at.
    pub states: Vec<MuteState>,
}

/// One endpoint's force-mute flags at the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MuteState {
    pub endpoint: String,
    pub audio: bool,
    pub video: bool,
}

/// Reads an endpoint's force-mute flags (audio, video) at the bridge under test; `None` when it has
/// no such endpoint.
pub type Observe<'a> = &'a (dyn Fn(&str) -> Option<(bool, bool)> + Sync);

/// jicofo's side of the brewery: an occupant that sends Colibri2 to the bridge.
pub struct Driver {
    handle: C2sHandle,
    /// The bridge's occupant JID in the brewery.
    pub bridge_occupant: String,
    /// The bridge's real JID, as the brewery showed it to the driver (a moderator there).
    pub bridge_jid: String,
    answer_limit: Duration,
}

impl Driver {
    /// Signs in as `focus` (an owner of the brewery host, so it sees real JIDs) and joins the
    /// brewery as `conformance`; `bridge_nick` must already be in it.
    pub async fn join(port: u16, bridge_nick: &str) -> Driver {
        Driver::join_waiting(port, bridge_nick, Duration::from_secs(10)).await
    }

    /// Like [`Driver::join`], waiting up to `limit` for `bridge_nick` to join the brewery (a real
    /// bridge starting beside the test).
    pub async fn join_waiting(port: u16, bridge_nick: &str, limit: Duration) -> Driver {
        let c2s = C2s::connect(port, "focus", "conformance").await;
        let (handle, mut inbox) = c2s.split();
        let bridge_occupant = format!("{BREWERY}/{bridge_nick}");
        let own = format!("{BREWERY}/conformance");
        handle.send(
            el("presence", CLIENT)
                .attr(attr("to"), own.as_str())
                .append(el("x", MUC_NS))
                .build(),
        );
        let (mut joined, mut bridge_jid) = (false, None);
        let deadline = tokio::time::Instant::now() + limit;
        while !joined || bridge_jid.is_none() {
            let Ok(presence) = tokio::time::timeout_at(deadline, inbox.recv()).await else {
                panic!(
                    "within {limit:?}: joined the brewery {joined}, saw {bridge_occupant} with its real JID {}",
                    bridge_jid.is_some()
                );
            };
            let presence = presence.expect("connection closed");
            if presence.name() != "presence" || presence.attr("type") == Some("unavailable") {
                continue;
            }
            let item_jid = presence
                .get_child("x", MUC_USER)
                .and_then(|x| x.get_child("item", MUC_USER))
                .and_then(|item| item.attr("jid"));
            if presence.attr("from") == Some(bridge_occupant.as_str()) {
                bridge_jid = item_jid.map(str::to_owned);
            }
            joined |= presence.attr("from") == Some(own.as_str());
        }
        tokio::spawn(async move { while inbox.recv().await.is_some() {} });
        Driver {
            handle,
            bridge_occupant,
            bridge_jid: bridge_jid.expect("the bridge's real JID"),
            answer_limit: ANSWER_LIMIT,
        }
    }

    /// Waits `limit` for each answer instead of 5 s (a real bridge on a loaded machine).
    pub fn with_answer_limit(mut self, limit: Duration) -> Driver {
        self.answer_limit = limit;
        self
    }

    /// Sends `payload` to the bridge's occupant JID as an IQ of `type_`; the answer, or `None` when
    /// none came within 5 s.
    pub async fn ask(&self, type_: &str, payload: Element) -> Option<Element> {
        let request = el("iq", CLIENT)
            .attr(attr("type"), type_)
            .attr(attr("to"), self.bridge_occupant.as_str())
            .attr(attr("id"), self.handle.next_id())
            .append(payload)
            .build();
        self.handle.send_iq(request).wait(self.answer_limit).await
    }

    async fn send(
        &self,
        label: &'static str,
        type_: &str,
        to: &str,
        payload: Element,
        observe: (Observe<'_>, &[&str]),
    ) -> Step {
        let request = el("iq", CLIENT)
            .attr(attr("type"), type_)
            .attr(attr("to"), to)
            .attr(attr("id"), self.handle.next_id())
            .append(payload)
            .build();
        let answer = self
            .handle
            .send_iq(request.clone())
            .wait(self.answer_limit)
            .await;
        let (read, endpoints) = observe;
        let states = endpoints
            .iter()
            .filter_map(|endpoint| {
                read(endpoint).map(|(audio, video)| MuteState {
                    endpoint: (*endpoint).to_owned(),
                    audio,
                    video,
                })
            })
            .collect();
        Step {
            label,
            request,
            answer,
            states,
        }
    }
}

fn modify(meeting_id: Option<&str>) -> minidom::element::ElementBuilder {
    let builder = el("conference-modify", COLIBRI2);
    match meeting_id {
        Some(meeting_id) => builder.attr(attr("meeting-id"), meeting_id),
        None => builder,
    }
}

fn endpoint(id: &str) -> minidom::element::ElementBuilder {
    el("endpoint", COLIBRI2).attr(attr("id"), id)
}

/// jicofo's media for a new endpoint: opus with the audio-level extension, VP8 (its own shape,
/// trimmed).
fn media() -> Vec<Element> {
    let audio = el("media", COLIBRI2)
        .attr(attr("type"), "audio")
        .append(
            el("payload-type", RTP)
                .attr(attr("id"), "111")
                .attr(attr("name"), "opus")
                .attr(attr("clockrate"), "48000")
                .attr(attr("channels"), "2"),
        )
        .append(
            el("rtp-hdrext", RTP_HDREXT)
                .attr(attr("id"), "1")
                .attr(attr("uri"), "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
        )
        .build();
    let video = el("media", COLIBRI2)
        .attr(attr("type"), "video")
        .append(
            el("payload-type", RTP)
                .attr(attr("id"), "100")
                .attr(attr("name"), "VP8")
                .attr(attr("clockrate"), "90000"),
        )
        .build();
    vec![audio, video]
}

/// What jicofo sends on create: `<transport ice-controlling='true'/>`.
fn create_transport() -> Element {
    el("transport", COLIBRI2)
        .attr(attr("ice-controlling"), "true")
        .build()
}

/// The participant's transport as jicofo forwards it after session-accept.
fn client_transport() -> Element {
    let fingerprint = (0..32)
        .map(|_| random_hex(2).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    el("transport", COLIBRI2)
        .append(
            el("transport", ICE)
                .attr(attr("ufrag"), random_hex(4))
                .attr(attr("pwd"), random_hex(24))
                .append(
                    el("fingerprint", DTLS)
                        .attr(attr("hash"), "sha-256")
                        .attr(attr("setup"), "active")
                        .append(fingerprint),
                )
                .append(el("rtcp-mux", ICE)),
        )
        .build()
}

fn source_names() -> Element {
    el("capability", COLIBRI2)
        .attr(attr("name"), "source-names")
        .build()
}

/// An endpoint's sources: one audio and one video source, SSRCs from `first`.
fn sources(owner: &str, first: u32) -> Element {
    let media_source = |type_: &str, name: String, ssrc: u32| {
        el("media-source", COLIBRI2)
            .attr(attr("type"), type_)
            .attr(attr("id"), name.as_str())
            .append(
                el("source", SSMA)
                    .attr(attr("ssrc"), ssrc.to_string())
                    .attr(attr("name"), name.as_str()),
            )
    };
    el("sources", COLIBRI2)
        .append(media_source("audio", format!("{owner}-a0"), first))
        .append(media_source("video", format!("{owner}-v0"), first + 1))
        .build()
}

fn force_mute(audio: Option<bool>, video: Option<bool>) -> Element {
    let mut mute = el("force-mute", COLIBRI2);
    if let Some(audio) = audio {
        mute = mute.attr(attr("audio"), audio.to_string());
    }
    if let Some(video) = video {
        mute = mute.attr(attr("video"), video.to_string());
    }
    mute.build()
}

/// Runs the scenario against the bridge the driver found in the brewery.
pub async fn run(driver: &Driver, read: Observe<'_>) -> Vec<Step> {
    let meeting = random_uuid();
    let other = random_uuid();
    let to = driver.bridge_occupant.clone();
    let mut steps = Vec::new();
    let create_alice = || {
        endpoint("alice")
            .attr(attr("create"), "true")
            .attr(attr("stats-id"), "alice-1")
            .append_all(media())
            .append(create_transport())
            .append(sources("alice", 1_000))
            .append(source_names())
            .build()
    };
    let conference = modify(Some(&meeting))
        .attr(attr("name"), ROOM)
        .attr(attr("create"), "true")
        .append(create_alice())
        .build();
    steps.push(
        driver
            .send("create-conference", "get", &to, conference, (read, &[]))
            .await,
    );
    let again = modify(Some(&meeting))
        .attr(attr("name"), ROOM)
        .attr(attr("create"), "true")
        .build();
    steps.push(
        driver
            .send("create-conference-exists", "get", &to, again, (read, &[]))
            .await,
    );
    let unknown = modify(Some(&other))
        .append(endpoint("alice").append(force_mute(Some(true), Some(false))))
        .build();
    steps.push(
        driver
            .send("conference-not-found", "get", &to, unknown, (read, &[]))
            .await,
    );
    let alice_again = modify(Some(&meeting)).append(create_alice()).build();
    steps.push(
        driver
            .send(
                "create-endpoint-exists",
                "get",
                &to,
                alice_again,
                (read, &[]),
            )
            .await,
    );
    let no_transport = modify(Some(&meeting))
        .append(
            endpoint("bob")
                .attr(attr("create"), "true")
                .append_all(media())
                .append(source_names()),
        )
        .build();
    steps.push(
        driver
            .send(
                "create-endpoint-without-transport",
                "get",
                &to,
                no_transport,
                (read, &[]),
            )
            .await,
    );
    let no_names = modify(Some(&meeting))
        .append(
            endpoint("bob")
                .attr(attr("create"), "true")
                .append_all(media())
                .append(create_transport()),
        )
        .build();
    steps.push(
        driver
            .send(
                "create-endpoint-without-source-names",
                "get",
                &to,
                no_names,
                (read, &[]),
            )
            .await,
    );
    let bob = modify(Some(&meeting))
        .append(
            endpoint("bob")
                .attr(attr("create"), "true")
                .attr(attr("stats-id"), "bob-1")
                .append_all(media())
                .append(create_transport())
                .append(source_names()),
        )
        .build();
    steps.push(
        driver
            .send("create-endpoint", "get", &to, bob, (read, &["bob"]))
            .await,
    );
    let two = modify(Some(&meeting))
        .append(endpoint("alice").append(sources("alice", 1_000)))
        .append(endpoint("bob").append(sources("bob", 2_000)))
        .build();
    steps.push(
        driver
            .send("sources-for-two-endpoints", "get", &to, two, (read, &[]))
            .await,
    );
    let carol_sources = modify(Some(&meeting))
        .append(endpoint("carol").append(sources("carol", 3_000)))
        .build();
    steps.push(
        driver
            .send(
                "sources-for-unknown-endpoint",
                "get",
                &to,
                carol_sources,
                (read, &[]),
            )
            .await,
    );
    let carol_mute = modify(Some(&meeting))
        .append(endpoint("carol").append(force_mute(Some(true), Some(true))))
        .build();
    steps.push(
        driver
            .send(
                "force-mute-unknown-endpoint",
                "get",
                &to,
                carol_mute,
                (read, &[]),
            )
            .await,
    );
    let bob_sources = modify(Some(&meeting))
        .append(
            endpoint("bob")
                .append(client_transport())
                .append(sources("bob", 2_000)),
        )
        .build();
    steps.push(
        driver
            .send(
                "transport-and-sources",
                "get",
                &to,
                bob_sources,
                (read, &["bob"]),
            )
            .await,
    );
    // mod_podium's shape: the kinds to stop, the other attribute left out.
    let audio = modify(Some(&meeting))
        .append(endpoint("bob").append(force_mute(Some(true), None)))
        .build();
    steps.push(
        driver
            .send("force-mute-audio", "get", &to, audio, (read, &["bob"]))
            .await,
    );
    let video = modify(Some(&meeting))
        .append(endpoint("bob").append(force_mute(None, Some(true))))
        .build();
    steps.push(
        driver
            .send("force-mute-video-only", "set", &to, video, (read, &["bob"]))
            .await,
    );
    let batch = modify(Some(&meeting))
        .append(endpoint("alice").append(force_mute(Some(true), Some(true))))
        .append(endpoint("bob").append(force_mute(Some(false), Some(false))))
        .append(endpoint("carol").append(force_mute(Some(true), Some(true))))
        .build();
    steps.push(
        driver
            .send(
                "force-mute-batch",
                "get",
                &to,
                batch,
                (read, &["alice", "bob"]),
            )
            .await,
    );
    let bad_name = modify(Some(&random_uuid()))
        .attr(attr("name"), BAD_NAME)
        .attr(attr("create"), "true")
        .build();
    steps.push(
        driver
            .send(
                "create-conference-bad-name",
                "get",
                &to,
                bad_name,
                (read, &[]),
            )
            .await,
    );
    let no_id = modify(None)
        .append(endpoint("bob").append(force_mute(Some(true), Some(true))))
        .build();
    steps.push(
        driver
            .send("missing-meeting-id", "get", &to, no_id, (read, &[]))
            .await,
    );
    let expire_alice = modify(Some(&meeting))
        .append(endpoint("alice").attr(attr("expire"), "true"))
        .build();
    steps.push(
        driver
            .send("expire-endpoint", "get", &to, expire_alice, (read, &[]))
            .await,
    );
    let expire_bob = modify(Some(&meeting))
        .append(endpoint("bob").attr(attr("expire"), "true"))
        .build();
    steps.push(
        driver
            .send("expire-last-endpoint", "get", &to, expire_bob, (read, &[]))
            .await,
    );
    let late = modify(Some(&meeting))
        .append(endpoint("bob").append(force_mute(Some(true), None)))
        .build();
    steps.push(
        driver
            .send("force-mute-after-expiry", "get", &to, late, (read, &[]))
            .await,
    );
    let bypass = modify(Some(&meeting))
        .attr(attr("create"), "true")
        .attr(attr("name"), ROOM)
        .build();
    let bridge_jid = driver.bridge_jid.clone();
    steps.push(
        driver
            .send(
                "not-through-the-brewery",
                "get",
                &bridge_jid,
                bypass,
                (read, &[]),
            )
            .await,
    );
    steps
}

/// An answer reduced to what the comparison looks at: its type, the stanza error condition and text,
/// the colibri2 `<error reason>`, and the shape of a `conference-modified` (its attributes, each
/// endpoint's id with `transport`/`expire`, the feedback sources' ids). Meeting ids in texts are the
/// caller's to replace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub type_: String,
    pub condition: Option<String>,
    pub text: Option<String>,
    pub reason: Option<String>,
    pub shape: Vec<String>,
}

impl Outcome {
    /// `None` for no answer.
    pub fn of(answer: Option<&Element>) -> Option<Outcome> {
        let answer = answer?;
        let error = answer.get_child("error", CLIENT);
        let condition = error.and_then(|error| {
            error
                .children()
                .find(|child| child.ns() == STANZAS && child.name() != "text")
        });
        let text = error
            .and_then(|error| error.children().find(|child| child.name() == "text"))
            .map(Element::text)
            .filter(|text| !text.is_empty());
        let reason = error
            .and_then(|error| error.get_child("error", COLIBRI2))
            .and_then(|error| error.attr("reason"))
            .map(str::to_owned);
        let mut shape = Vec::new();
        if let Some(modified) = answer.get_child("conference-modified", COLIBRI2) {
            let attrs: Vec<&str> = ["meeting-id", "name", "create", "expire"]
                .into_iter()
                .filter(|name| modified.attr(*name).is_some())
                .collect();
            shape.push(format!("conference-modified {}", attrs.join(" ")));
            for child in modified.children() {
                shape.push(match child.name() {
                    "endpoint" => format!(
                        "endpoint {}{}{}",
                        child.attr("id").unwrap_or(""),
                        if child.has_child("transport", COLIBRI2) {
                            " transport"
                        } else {
                            ""
                        },
                        if child.attr("expire") == Some("true") {
                            " expire"
                        } else {
                            ""
                        },
                    ),
                    "sources" => format!(
                        "sources {}",
                        child
                            .children()
                            .filter_map(|source| source.attr("id"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    other => other.to_owned(),
                });
            }
        }
        Some(Outcome {
            type_: answer.attr("type").unwrap_or("").to_owned(),
            condition: condition.map(|condition| condition.name().to_owned()),
            text: text.map(|text| text.trim().to_owned()),
            reason,
            shape,
        })
    }
}
