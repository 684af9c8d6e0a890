//! `Participant`: a stand-in for a lib-jitsi-meet client, as jicofo, other clients and mod_podium
//! meet it over XMPP.
//!
//! It asks the focus for the conference, joins the room with Jitsi-like presence (SourceInfo),
//! accepts the focus's session and signals its tracks. Two shapes (research real-client.md and the
//! recorded stanzas 04, 05, 07, 09, 10, 13; the current one is held to tests/fixtures/lib-jitsi-meet/
//! by tests/participant_conformance.rs):
//! * [`Shape::Current`] (lib-jitsi-meet 2026): audio `<nick>-a0`; camera `<nick>-v0` as 6 SSRCs
//!   (3 simulcast layers and their RTX) with `videoType='camera'` and groups FID, SIM, FID, FID; a
//!   screenshare is a separate `<nick>-v1` source-add of the same shape with `videoType='desktop'`;
//!   the BUNDLE group also names `data`;
//! * [`Shape::Legacy2021`] (the npm bundle): no source names, no videoType, the first SSRC repeated
//!   on `<description ssrc>`; a screenshare shows only in presence.
//!
//! What it does like lib-jitsi-meet (`strophe.jingle.js`, `JingleSessionPC.ts`, `ChatRoom.ts`):
//! answers the focus's session-initiate with `result`, then sends session-accept to `room/focus`
//! (`initiator` = the focus occupant, `responder` = its real JID, contents `creator='responder'`);
//! understands remote sources as XML or jicofo's JSON; refuses Jingle for another sid or from
//! another sender with `item-not-found` + `<unknown-session/>`; never answers a mute IQ, and on
//! `true` from the focus mutes the track and says so in presence; answers a P2P offer from another
//! occupant with `result`. msid `<parameter>`s carry no xmlns (so they are in ssma).
//!
//! Simplified: no SDP or media, no ICE candidates, no data channel content, no P2P session
//! beyond recording the offer, and SSRCs come from a counter (unique per test process) with the
//! nick's hash in the high bits.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use minidom::rxml::Namespace;
use tokio::sync::mpsc;

use super::c2s::{C2s, C2sHandle, CLIENT, attr, el};
use super::focus::{FOCUS_JID, FOCUS_NICK};
use super::jingle::{
    FOCUS, Group, JINGLE, JITMEET, JSON_SOURCES_FEATURE, MUTE_AUDIO, MUTE_DESKTOP, MUTE_VIDEO,
    Media, OPENTELEMETRY, Source, SourceSet, SourcesByOwner, Style, bundle_group, ice_transport,
    rtp_description, sources_by_owner,
};
use super::peer::{
    AbortOnDrop, Recorder, bare, error_for, iq, is_request, payload, random_hex, random_uuid,
    resource, result_for, result_with,
};
use super::prosody::MUC;

const MUC_NS: &str = "http://jabber.org/protocol/muc";
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NICK_NS: &str = "http://jabber.org/protocol/nick";
const CAPS: &str = "http://jabber.org/protocol/caps";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const JINGLE_ERRORS: &str = "urn:xmpp:jingle:errors:1";
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// Which lib-jitsi-meet the participant imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// lib-jitsi-meet 2026: named sources with videoType, screenshare as its own `-v1` source.
    Current,
    /// The 2021 npm bundle: nameless sources without videoType (recorded stanza 04).
    Legacy2021,
}

/// A local track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Audio,
    Camera,
    Screenshare,
}

/// How the participant behaves.
#[derive(Clone, Copy, Debug)]
pub struct ParticipantOptions {
    /// Send session-accept as soon as the focus's session-initiate arrives (otherwise call
    /// [`Participant::accept`]).
    pub auto_accept: bool,
    /// Send the conference request to the focus before joining, as lib-jitsi-meet does.
    pub conference_request: bool,
    /// Keep a copy of every stanza the participant sends ([`Participant::sent`]), from the
    /// conference request on.
    pub record_sent: bool,
    /// How long the participant waits for an answer to its requests (the conference request, an
    /// unmute request) and for the server to confirm its joining or leaving: 10 s by default, longer
    /// for a load that must ride out a saturated machine (an answer that comes late is no failure).
    pub patience: Duration,
}

impl Default for ParticipantOptions {
    fn default() -> ParticipantOptions {
        ParticipantOptions {
            auto_accept: true,
            conference_request: true,
            record_sent: false,
            patience: ANSWER_LIMIT,
        }
    }
}

/// An IQ request the participant received and what it answered (`None`: no answer, as for mutes).
#[derive(Clone, Debug)]
pub struct ReceivedIq {
    pub from: String,
    /// The Jingle action, "mute", or the payload's element name.
    pub action: String,
    pub sid: Option<String>,
    pub iq: Element,
    pub answer: Option<Element>,
}

/// A mute IQ received.
#[derive(Clone, Debug)]
pub struct MuteReceived {
    pub from: String,
    pub namespace: String,
    pub text: String,
    /// Whether the client acted on it (from the focus, text `true`).
    pub applied: bool,
}

/// Everything the participant holds and has seen.
#[derive(Clone, Debug, Default)]
pub struct ParticipantView {
    pub joined: bool,
    pub join_error: Option<Element>,
    pub left: bool,
    /// The focus's answer to the conference request.
    pub conference_answer: Option<Element>,
    /// The current session with the focus.
    pub sid: Option<String>,
    /// How many session-initiates came from the focus.
    pub session_initiates: u32,
    /// The focus's `<traceparent>` in the current session-initiate, which a current client echoes in
    /// its session-accept.
    pub traceparent: Option<Element>,
    /// Remote sources by owner, as the focus signalled them.
    pub remote: SourcesByOwner,
    /// The sources this client has signalled to the focus.
    pub local: SourceSet,
    /// Mute state per local source name, as presence SourceInfo says.
    pub muted: BTreeMap<String, bool>,
    /// The videoType of a local video track, when the app set one (replaceTrack to the screen keeps
    /// the track's name and SSRCs and changes only this); otherwise `-v0` is the camera and `-v1`
    /// the screen.
    pub video_types: BTreeMap<String, String>,
    /// The SourceInfo JSON last sent.
    pub source_info: String,
    /// Local sources (by name) the focus muted and the user has not unmuted since.
    pub muted_by_focus: BTreeSet<String>,
    /// `jitsi_participant_raisedHand` as last sent: `Date.now()` while the hand is up, empty once
    /// lowered (lib-jitsi-meet serialises its 0 as an empty element), absent if never raised.
    pub raised_hand: Option<String>,
    /// Answers to the session-accepts sent.
    pub accept_answers: Vec<Element>,
    /// sids of P2P offers received from other occupants.
    pub p2p_sids: BTreeSet<String>,
    /// Other occupants present, by nick.
    pub occupants: BTreeSet<String>,
    pub received: Vec<ReceivedIq>,
    pub mutes: Vec<MuteReceived>,
    /// `<json-message xmlns='http://jitsi.org/jitmeet'>` messages (from, text), as components such as
    /// Jitsi's A/V moderation send them; lib-jitsi-meet reads those from a component it discovered.
    pub json_messages: Vec<(String, String)>,
    /// `result`/`error` IQs that matched no waiter.
    pub strays: Vec<Element>,
}

/// No answer to a request within the time allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAnswer;

/// A lib-jitsi-meet client in one room.
pub struct Participant {
    pub nick: String,
    pub room: String,
    /// `room@conference.localhost`.
    pub room_jid: String,
    /// `room@conference.localhost/<nick>`.
    pub occupant_jid: String,
    /// The real (full) JID.
    pub jid: String,
    core: Arc<Core>,
    _task: AbortOnDrop,
}

struct Core {
    handle: C2sHandle,
    recorder: Arc<Recorder<ParticipantView>>,
    nick: String,
    room_jid: String,
    occupant_jid: String,
    focus_jid: String,
    shape: Shape,
    options: ParticipantOptions,
    audio: SourceSet,
    camera: SourceSet,
    screenshare: SourceSet,
    stats_id: String,
    ice_ufrag: String,
    ice_pwd: String,
}

impl Participant {
    /// Connects as `user`, asks the focus for `room` (a room name on the conference MUC, or a full
    /// room JID), joins it as `nick` and returns once in.
    pub async fn join(port: u16, user: &str, room: &str, nick: &str, shape: Shape) -> Participant {
        Participant::join_with(port, user, room, nick, shape, ParticipantOptions::default()).await
    }

    /// Like [`Participant::join`], with options.
    pub async fn join_with(
        port: u16,
        user: &str,
        room: &str,
        nick: &str,
        shape: Shape,
        options: ParticipantOptions,
    ) -> Participant {
        let c2s = C2s::connect(port, user, &format!("web-{}", random_hex(6))).await;
        let (handle, inbox) = c2s.split();
        if options.record_sent {
            handle.record_sent();
        }
        // A room on another MUC (a breakout room) comes as its full JID.
        let room_jid = if room.contains('@') {
            room.to_owned()
        } else {
            format!("{room}@{MUC}")
        };
        let occupant_jid = format!("{room_jid}/{nick}");
        let mut ssrcs = SsrcAllocator::new(nick);
        let (audio, camera, screenshare) = local_tracks(nick, shape, &mut ssrcs);
        let core = Arc::new(Core {
            handle: handle.clone(),
            recorder: Arc::new(Recorder::new(ParticipantView::default())),
            nick: nick.to_owned(),
            focus_jid: format!("{room_jid}/{FOCUS_NICK}"),
            room_jid: room_jid.clone(),
            occupant_jid: occupant_jid.clone(),
            shape,
            options,
            audio,
            camera,
            screenshare,
            stats_id: format!("{nick}-{}", random_hex(3)),
            ice_ufrag: random_hex(4),
            ice_pwd: random_hex(24),
        });
        // Owned from here, so a join that panics (no self-presence in time) closes the connection
        // instead of leaving a client in the room that nobody drives.
        let task = AbortOnDrop(tokio::spawn(Arc::clone(&core).run(inbox)));
        if options.conference_request {
            // lib-jitsi-meet moderator.js: ask the focus before joining; without a focus the server
            // answers with an error and the client joins anyway.
            let request = el("conference", FOCUS)
                .attr(attr("room"), room_jid.as_str())
                .attr(attr("machine-uid"), random_hex(32))
                .append_all(conference_properties(shape))
                .build();
            let answer = handle
                .send_iq(iq("set", FOCUS_JID, &handle.next_id(), request))
                .wait(options.patience)
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "{nick}: no answer to the conference request within {:?}",
                        options.patience
                    )
                });
            core.recorder
                .update(|view| view.conference_answer = Some(answer));
        }
        core.recorder.update(|view| {
            // A current client joins with an empty SourceInfo and lists its tracks once its session
            // is accepted (recorded fixtures join.xml, session-accept.xml); the 2021 one at once.
            if shape == Shape::Legacy2021 {
                view.muted.insert(format!("{nick}-a0"), false);
                view.muted.insert(format!("{nick}-v0"), false);
            }
            let presence = core.presence(view, true);
            core.handle.send(presence);
        });
        core.recorder
            .wait_for(&format!("{nick} joins {room}"), options.patience, |view| {
                (!view.joined && view.join_error.is_none())
                    .then(|| "no self-presence yet".to_owned())
            })
            .await;
        let error = core.recorder.read(|view| view.join_error.clone());
        assert!(error.is_none(), "{nick} could not join {room}: {error:?}");
        Participant {
            nick: nick.to_owned(),
            room: room.to_owned(),
            room_jid,
            occupant_jid,
            jid: handle.jid.clone(),
            core,
            _task: task,
        }
    }

    /// Sends session-accept for the current session (when `auto_accept` is off); returns the answer.
    pub async fn accept(&self) -> Element {
        let pending = self.core.recorder.update(|view| {
            let sid = view
                .sid
                .clone()
                .expect("no session-initiate from the focus yet");
            self.core.send_accept(view, &sid)
        });
        let answer = pending
            .wait(ANSWER_LIMIT)
            .await
            .expect("no answer to session-accept within 10 s");
        self.core.accepted(&answer);
        answer
    }

    /// Starts a screenshare as a current client does: a source-add of `<nick>-v1` (desktop), then
    /// presence SourceInfo naming it. Returns the focus's answer to the source-add.
    pub async fn add_screenshare(&self) -> Element {
        assert_eq!(
            self.core.shape,
            Shape::Current,
            "a 2021 client signals a screenshare only in presence SourceInfo: use set_source_info"
        );
        let screenshare = self.core.screenshare.clone();
        let answer = self.send_sources("source-add", &screenshare).await;
        self.core.recorder.update(|view| {
            view.local = view.local.union(&screenshare);
            view.muted.insert(format!("{}-v1", self.nick), false);
            let presence = self.core.presence(view, false);
            self.core.handle.send(presence);
        });
        answer
    }

    /// Mutes or unmutes a local track as lib-jitsi-meet does (`JitsiLocalTrack.mute`): presence
    /// SourceInfo says so, and no Jingle (recorded mute-camera.xml). A current client that removes a
    /// track (`removeTrack`) sends the same (remove-camera.xml). Unmuting a track the focus muted
    /// also asks the focus to unmute it: a mute IQ `false` for its own occupant JID, after the presence
    /// (`JitsiConference._fireMuteChangeEvent`; recorded unmute-camera-after-mute-iq.xml and
    /// unmute-microphone-after-mute-iq.xml). Returns that IQ's answer, if one was sent.
    pub async fn set_muted(&self, track: Track, muted: bool) -> Option<Element> {
        let patience = self.core.options.patience;
        self.set_muted_within(track, muted, patience)
            .await
            .unwrap_or_else(|_| panic!("no answer to the unmute request within {patience:?}"))
    }

    /// [`Participant::set_muted`], waiting up to `limit` for the focus's answer to the unmute
    /// request; `Err(NoAnswer)` when none came (the track is unmuted in presence either way).
    pub async fn set_muted_within(
        &self,
        track: Track,
        muted: bool,
        limit: Duration,
    ) -> Result<Option<Element>, NoAnswer> {
        let (suffix, namespace) = match track {
            Track::Audio => ("a0", MUTE_AUDIO),
            Track::Camera => ("v0", MUTE_VIDEO),
            Track::Screenshare => ("v1", MUTE_DESKTOP),
        };
        let name = format!("{}-{suffix}", self.nick);
        let pending = self.core.recorder.update(|view| {
            view.muted.insert(name.clone(), muted);
            let presence = self.core.presence(view, false);
            self.core.handle.send(presence);
            (!muted && view.muted_by_focus.remove(&name)).then(|| {
                let unmute = el("mute", namespace)
                    .attr(attr("jid"), self.occupant_jid.as_str())
                    .append("false")
                    .build();
                let handle = &self.core.handle;
                handle.send_iq(iq("set", &self.core.focus_jid, &handle.next_id(), unmute))
            })
        });
        match pending {
            Some(pending) => pending.wait(limit).await.map(Some).ok_or(NoAnswer),
            None => Ok(None),
        }
    }

    /// Stops a screenshare as a current client does (`removeTrack` of the desktop track): no
    /// source-remove, only presence saying `-v1` muted (recorded stop-desktop.xml); its sources stay
    /// signalled.
    pub async fn stop_screenshare(&self) {
        assert_eq!(
            self.core.shape,
            Shape::Current,
            "a 2021 client has no separate screenshare track"
        );
        self.set_muted(Track::Screenshare, true).await;
    }

    /// Every stanza sent so far, when the participant joined with `record_sent`.
    pub fn sent(&self) -> Vec<Element> {
        self.core.handle.sent()
    }

    /// Removes a track's sources with source-remove, as older clients do (current ones send
    /// nothing). Returns the focus's answer.
    pub async fn remove_sources(&self, track: Track) -> Element {
        let sources = self.track(track);
        let answer = self.send_sources("source-remove", &sources).await;
        let ssrcs: BTreeSet<u32> = sources.ssrcs().into_iter().collect();
        self.core
            .recorder
            .update(|view| view.local = view.local.without_ssrcs(&ssrcs));
        answer
    }

    /// Sends a presence update whose SourceInfo is `json`, verbatim. A `videoType` in it sticks to
    /// that track, as in lib-jitsi-meet, where it is a property of the local track: later presences
    /// (after a mute, say) keep saying it.
    pub fn set_source_info(&self, json: &str) {
        self.core.recorder.update(|view| {
            if let Ok(serde_json::Value::Object(entries)) = serde_json::from_str(json) {
                for (name, entry) in entries {
                    if let Some(video_type) = entry.get("videoType").and_then(|t| t.as_str()) {
                        view.video_types.insert(name, video_type.to_owned());
                    }
                }
            }
            view.source_info = json.to_owned();
            let presence = self.core.presence_with(view, false, json);
            self.core.handle.send(presence);
        });
    }

    /// Raises or lowers the hand as lib-jitsi-meet does (`ChatRoom.setRaisedHand`: a presence with
    /// `<jitsi_participant_raisedHand>` holding `Date.now()`, or empty to lower it).
    pub fn raise_hand(&self, up: bool) {
        self.core.recorder.update(|view| {
            view.raised_hand = Some(if up {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
                ms.to_string()
            } else {
                String::new()
            });
            let presence = self
                .core
                .presence_with(view, false, &view.source_info.clone());
            self.core.handle.send(presence);
        });
    }

    /// Offers a P2P session to `to_nick` (session-initiate to `room/<to_nick>`); returns the answer.
    pub async fn p2p_offer(&self, to_nick: &str) -> Element {
        let sid = random_hex(12);
        let local = self.core.recorder.read(|view| view.local.clone());
        let contents = self.core.contents(&local, "initiator", true);
        let jingle = el("jingle", JINGLE)
            .attr(attr("action"), "session-initiate")
            .attr(attr("initiator"), self.occupant_jid.as_str())
            .attr(attr("sid"), sid.as_str())
            .append(bundle_group(&["audio", "video"]))
            .append_all(contents)
            .build();
        self.core
            .handle
            .iq("set", &format!("{}/{to_nick}", self.room_jid), jingle)
            .await
    }

    /// Sends `<jingle action sid initiator=room/focus>` with `contents` to the focus, raw; returns
    /// the answer.
    pub async fn send_jingle(&self, action: &str, sid: &str, contents: Vec<Element>) -> Element {
        let jingle = el("jingle", JINGLE)
            .attr(attr("action"), action)
            .attr(attr("initiator"), self.core.focus_jid.as_str())
            .attr(attr("sid"), sid)
            .append_all(contents)
            .build();
        self.core
            .handle
            .iq("set", &self.core.focus_jid, jingle)
            .await
    }

    /// Sends any IQ, raw; returns the answer.
    pub async fn iq(&self, type_: &str, to: &str, payload: Element) -> Element {
        self.core.handle.iq(type_, to, payload).await
    }

    /// Sends a mute IQ to the focus for its own track (`media`: "audio", "video" or "desktop").
    pub async fn mute_self(&self, media: &str, mute: bool) -> Element {
        let namespace = match media {
            "audio" => MUTE_AUDIO,
            "video" => MUTE_VIDEO,
            _ => MUTE_DESKTOP,
        };
        self.iq(
            "set",
            &self.core.focus_jid.clone(),
            el("mute", namespace)
                .attr(attr("jid"), self.occupant_jid.as_str())
                .append(mute.to_string())
                .build(),
        )
        .await
    }

    /// Leaves the room and waits for the server to confirm.
    pub async fn leave(&self) {
        self.core.handle.send(
            el("presence", CLIENT)
                .attr(attr("to"), self.occupant_jid.as_str())
                .attr(attr("type"), "unavailable")
                .build(),
        );
        self.core
            .recorder
            .wait_for(
                &format!("{} leaves", self.nick),
                self.core.options.patience,
                |view| (!view.left).then(|| "no unavailable self-presence yet".to_owned()),
            )
            .await;
    }

    /// The sources of one local track (whether signalled yet or not).
    pub fn track(&self, track: Track) -> SourceSet {
        match track {
            Track::Audio => self.core.audio.clone(),
            Track::Camera => self.core.camera.clone(),
            Track::Screenshare => self.core.screenshare.clone(),
        }
    }

    /// The sources this client has signalled to the focus.
    pub fn local_sources(&self) -> SourceSet {
        self.core.recorder.read(|view| view.local.clone())
    }

    /// Remote sources by owner, as the focus signalled them.
    pub fn remote_sources(&self) -> SourcesByOwner {
        self.core.recorder.read(|view| view.remote.clone())
    }

    /// Every IQ request received, in order.
    pub fn received(&self) -> Vec<ReceivedIq> {
        self.core.recorder.read(|view| view.received.clone())
    }

    /// The mute IQs received, in order.
    pub fn mutes(&self) -> Vec<MuteReceived> {
        self.core.recorder.read(|view| view.mutes.clone())
    }

    /// Answers that matched no waiter.
    pub fn strays(&self) -> Vec<Element> {
        self.core.recorder.read(|view| view.strays.clone())
    }

    /// The current session id with the focus.
    pub fn sid(&self) -> Option<String> {
        self.core.recorder.read(|view| view.sid.clone())
    }

    /// A copy of everything the participant holds and has seen.
    pub fn view(&self) -> ParticipantView {
        self.core.recorder.snapshot()
    }

    /// Waits until `condition` holds on the participant's view; panics after 10 s with the view.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&ParticipantView) -> bool) {
        self.core.recorder.wait_until(what, condition).await;
    }

    /// The connection, e.g. to send something raw as this client.
    pub fn handle(&self) -> &C2sHandle {
        &self.core.handle
    }

    /// Sends source-add or source-remove of `sources` for the current session; returns the answer.
    async fn send_sources(&self, action: &str, sources: &SourceSet) -> Element {
        let sid = self.sid().expect("no session with the focus yet");
        self.send_jingle(action, &sid, sources.to_contents(Style::Client, None))
            .await
    }
}

impl Core {
    async fn run(self: Arc<Self>, mut inbox: mpsc::UnboundedReceiver<Element>) {
        while let Some(stanza) = inbox.recv().await {
            match stanza.name() {
                "presence" => self.on_presence(&stanza),
                "iq" if is_request(&stanza) => self.on_request(&stanza),
                "iq" => self.recorder.update(|view| view.strays.push(stanza)),
                "message" => self.on_message(&stanza),
                _ => {}
            }
        }
    }

    fn on_message(&self, message: &Element) {
        if let Some(json) = message.get_child("json-message", JITMEET) {
            let from = message.attr("from").unwrap_or("").to_owned();
            self.recorder
                .update(|view| view.json_messages.push((from, json.text())));
        }
    }

    fn on_presence(&self, presence: &Element) {
        let from = presence.attr("from").unwrap_or("");
        if bare(from) != self.room_jid {
            return;
        }
        let type_ = presence.attr("type");
        let nick = resource(from).unwrap_or("").to_owned();
        let is_self = from == self.occupant_jid
            || presence.get_child("x", MUC_USER).is_some_and(|x| {
                x.children()
                    .any(|c| c.name() == "status" && c.attr("code") == Some("110"))
            });
        self.recorder.update(|view| match (is_self, type_) {
            (true, Some("error")) => view.join_error = Some(presence.clone()),
            (true, Some("unavailable")) => view.left = true,
            (true, _) => view.joined = true,
            (false, Some("unavailable")) => {
                view.occupants.remove(&nick);
            }
            (false, Some("error")) => {}
            (false, _) => {
                view.occupants.insert(nick);
            }
        });
    }

    fn on_request(self: &Arc<Self>, request: &Element) {
        let from = request.attr("from").unwrap_or("").to_owned();
        let Some(child) = payload(request) else {
            self.handle
                .send(error_for(request, "bad-request", None, vec![]));
            return;
        };
        if child.is("jingle", JINGLE) {
            self.on_jingle(request, child);
            return;
        }
        if child.name() == "mute"
            && [MUTE_AUDIO, MUTE_VIDEO, MUTE_DESKTOP].contains(&child.ns().as_str())
        {
            self.on_mute(request, child);
            return;
        }
        let answer = if child.is("query", DISCO_INFO) && request.attr("type") == Some("get") {
            result_with(request, Some(disco_info(self.shape, child.attr("node"))))
        } else {
            error_for(request, "service-unavailable", None, vec![])
        };
        self.recorder.update(|view| {
            view.received.push(ReceivedIq {
                from,
                action: child.name().to_owned(),
                sid: None,
                iq: request.clone(),
                answer: Some(answer.clone()),
            })
        });
        self.handle.send(answer);
    }

    /// lib-jitsi-meet ChatRoom.onMute*: no reply ever; acts only on `true` from the focus.
    fn on_mute(&self, request: &Element, mute: &Element) {
        let from = request.attr("from").unwrap_or("").to_owned();
        let text = mute.text();
        let namespace = mute.ns();
        let applied = from == self.focus_jid && text == "true";
        self.recorder.update(|view| {
            view.received.push(ReceivedIq {
                from: from.clone(),
                action: "mute".to_owned(),
                sid: None,
                iq: request.clone(),
                answer: None,
            });
            view.mutes.push(MuteReceived {
                from,
                namespace: namespace.clone(),
                text,
                applied,
            });
            if applied {
                let suffix = match namespace.as_str() {
                    MUTE_AUDIO => "a0",
                    MUTE_VIDEO => "v0",
                    _ => "v1",
                };
                view.muted.insert(format!("{}-{suffix}", self.nick), true);
                view.muted_by_focus
                    .insert(format!("{}-{suffix}", self.nick));
                let presence = self.presence(view, false);
                self.handle.send(presence);
            }
        });
    }

    fn on_jingle(self: &Arc<Self>, request: &Element, jingle: &Element) {
        let from = request.attr("from").unwrap_or("").to_owned();
        let action = jingle.attr("action").unwrap_or("").to_owned();
        let sid = jingle.attr("sid").unwrap_or("").to_owned();
        let from_focus = from == self.focus_jid;
        let accepted = self.recorder.update(|view| {
            let mut accept = None;
            let answer = if action == "session-initiate" && from_focus {
                match sources_by_owner(jingle) {
                    Ok(remote) => {
                        view.sid = Some(sid.clone());
                        view.session_initiates += 1;
                        view.traceparent = jingle.get_child("traceparent", OPENTELEMETRY).cloned();
                        view.remote = remote;
                        if self.options.auto_accept {
                            accept = Some(sid.clone());
                        }
                        result_for(request)
                    }
                    Err(text) => error_for(request, "bad-request", Some(&text), vec![]),
                }
            } else if action == "session-initiate" || view.p2p_sids.contains(&sid) {
                view.p2p_sids.insert(sid.clone());
                result_for(request)
            } else if !from_focus || view.sid.as_deref() != Some(sid.as_str()) {
                error_for(
                    request,
                    "item-not-found",
                    None,
                    vec![el("unknown-session", JINGLE_ERRORS).build()],
                )
            } else {
                self.session_action(view, request, jingle, &action)
            };
            view.received.push(ReceivedIq {
                from: from.clone(),
                action: action.clone(),
                sid: Some(sid.clone()),
                iq: request.clone(),
                answer: Some(answer.clone()),
            });
            self.handle.send(answer);
            // The accept leaves after the result to the session-initiate, as in lib-jitsi-meet.
            accept.map(|sid| self.send_accept(view, &sid))
        });
        if let Some(pending) = accepted {
            // Weak: waiting for the answer must not keep the connection of a participant that is
            // gone (the soak's c2s sessions counted those that left up to `patience` ago).
            let core = Arc::downgrade(self);
            let patience = self.options.patience;
            tokio::spawn(async move {
                if let Some(answer) = pending.wait(patience).await
                    && let Some(core) = core.upgrade()
                {
                    core.accepted(&answer);
                }
            });
        }
    }

    /// A Jingle action from the focus on the current session.
    fn session_action(
        &self,
        view: &mut ParticipantView,
        request: &Element,
        jingle: &Element,
        action: &str,
    ) -> Element {
        match action {
            "source-add" | "addsource" => match sources_by_owner(jingle) {
                Ok(added) => {
                    for (owner, set) in added {
                        let merged = view.remote.remove(&owner).unwrap_or_default().union(&set);
                        view.remote.insert(owner, merged);
                    }
                    result_for(request)
                }
                Err(text) => error_for(request, "bad-request", Some(&text), vec![]),
            },
            "source-remove" | "removesource" => match sources_by_owner(jingle) {
                Ok(removed) => {
                    let ssrcs: BTreeSet<u32> =
                        removed.values().flat_map(SourceSet::ssrcs).collect();
                    for set in view.remote.values_mut() {
                        *set = set.without_ssrcs(&ssrcs);
                    }
                    view.remote.retain(|_, set| !set.is_empty());
                    result_for(request)
                }
                Err(text) => error_for(request, "bad-request", Some(&text), vec![]),
            },
            "session-terminate" => {
                view.sid = None;
                view.remote.clear();
                result_for(request)
            }
            "transport-info" | "session-info" => result_for(request),
            _ => error_for(request, "feature-not-implemented", None, vec![]),
        }
    }

    /// The focus answered a session-accept: a current client now lists its microphone and camera in
    /// presence SourceInfo (recorded session-accept.xml).
    fn accepted(&self, answer: &Element) {
        self.recorder.update(|view| {
            view.accept_answers.push(answer.clone());
            if self.shape == Shape::Current {
                let mut changed = false;
                for suffix in ["a0", "v0"] {
                    let name = format!("{}-{suffix}", self.nick);
                    if let std::collections::btree_map::Entry::Vacant(entry) =
                        view.muted.entry(name)
                    {
                        entry.insert(false);
                        changed = true;
                    }
                }
                if changed {
                    let presence = self.presence(view, false);
                    self.handle.send(presence);
                }
            }
        });
    }

    /// Sends session-accept with audio and camera for `sid`; returns the pending answer.
    fn send_accept(&self, view: &mut ParticipantView, sid: &str) -> super::c2s::PendingAnswer {
        let local = self.audio.union(&self.camera);
        view.local = view.local.union(&local);
        let mut bundle = vec!["audio", "video"];
        if self.shape == Shape::Current {
            bundle.push("data");
        }
        // lib-jitsi-meet JingleSessionPC `_sendSessionAccept`: the offer's trace context, when it has
        // all three attributes (OTel.ts `TraceParentExtension.fromElement`), rebuilt with those only.
        let trace = (self.shape == Shape::Current)
            .then_some(view.traceparent.as_ref())
            .flatten()
            .and_then(|trace| {
                let value = |name: &str| trace.attr(name).map(str::to_owned);
                Some(
                    el("traceparent", OPENTELEMETRY)
                        .attr(attr("trace_id"), value("trace_id")?)
                        .attr(attr("parent_id"), value("parent_id")?)
                        .attr(attr("trace_flags"), value("trace_flags")?)
                        .build(),
                )
            });
        let jingle = el("jingle", JINGLE)
            .attr(attr("action"), "session-accept")
            .attr(attr("initiator"), self.focus_jid.as_str())
            .attr(attr("responder"), self.handle.jid.as_str())
            .attr(attr("sid"), sid)
            .append_all(trace)
            .append(bundle_group(&bundle))
            .append_all(self.contents(&local, "responder", false))
            .build();
        self.handle
            .send_iq(iq("set", &self.focus_jid, &self.handle.next_id(), jingle))
    }

    /// Audio and video contents with `sources`, the codecs and an ICE transport.
    fn contents(&self, sources: &SourceSet, creator: &str, with_candidate: bool) -> Vec<Element> {
        [Media::Audio, Media::Video]
            .into_iter()
            .map(|media| {
                let mut description =
                    rtp_description(media, sources.description_children(media, Style::Client));
                // The 2021 client repeats its first SSRC on <description ssrc> (recorded stanza 04).
                if self.shape == Shape::Legacy2021
                    && let Some(first) = sources.sources.iter().find(|s| s.media == media)
                {
                    description.set_attr(Namespace::NONE, attr("ssrc"), first.ssrc.to_string());
                }
                let setup = if creator == "responder" {
                    "active"
                } else {
                    "actpass"
                };
                el("content", JINGLE)
                    .attr(attr("creator"), creator)
                    .attr(attr("name"), media.as_str())
                    .attr(attr("senders"), "both")
                    .append(description)
                    .append(ice_transport(
                        &self.ice_ufrag,
                        &self.ice_pwd,
                        setup,
                        with_candidate.then_some(9),
                    ))
                    .build()
            })
            .collect()
    }

    /// Presence with the SourceInfo derived from the tracks' mute state.
    fn presence(&self, view: &mut ParticipantView, join: bool) -> Element {
        let entries: Vec<String> = view
            .muted
            .iter()
            .map(|(name, muted)| {
                let video_type = if let Some(video_type) = view.video_types.get(name) {
                    format!(
                        ",\"videoType\":{}",
                        serde_json::to_string(video_type).unwrap()
                    )
                } else if name.ends_with("-v1") {
                    ",\"videoType\":\"desktop\"".to_owned()
                } else if name.ends_with("-v0") && self.shape == Shape::Legacy2021 {
                    ",\"videoType\":\"camera\"".to_owned()
                } else {
                    String::new()
                };
                format!(
                    "{}:{{\"muted\":{muted}{video_type}}}",
                    serde_json::to_string(name).unwrap()
                )
            })
            .collect();
        let source_info = format!("{{{}}}", entries.join(","));
        view.source_info = source_info.clone();
        self.presence_with(view, join, &source_info)
    }

    /// The presence as lib-jitsi-meet builds it (`ChatRoom` presence map). A current client
    /// (recorded join.xml and the presences after it): `<c>` caps, `<jitsi_participant_codecList>`,
    /// the display name, SourceInfo, and no `<audiomuted>`/`<videomuted>`; the 2021 one: its
    /// `<jitsi_participant_codecType>` and the two mute flags.
    fn presence_with(&self, view: &ParticipantView, join: bool, source_info: &str) -> Element {
        let muted = |name: String| view.muted.get(&name).copied().unwrap_or(false).to_string();
        let mut presence = el("presence", CLIENT).attr(attr("to"), self.occupant_jid.as_str());
        if join {
            presence = presence.append(el("x", MUC_NS));
        }
        presence = presence.append(el("stats-id", CLIENT).append(self.stats_id.as_str()));
        presence = match self.shape {
            Shape::Current => presence
                .append(
                    el("c", CAPS)
                        .attr(attr("hash"), "sha-1")
                        .attr(attr("node"), "https://jitsi.org/jitsi-meet")
                        // As recorded: the hash of the client's disco#info, the same for every client.
                        .attr(attr("ver"), "dtzK/3xhISaXUMVg59IpXxdvKyQ="),
                )
                // The library's default order in Chromium (recorded with the real jicofo), from
                // which jicofo picks the conference's codecs.
                .append(el("jitsi_participant_codecList", CLIENT).append("av1,vp9,vp8,h264"))
                .append(el("nick", NICK_NS).append(format!("Nick {}", self.nick))),
            Shape::Legacy2021 => presence
                .append(el("nick", NICK_NS).append(format!("Nick {}", self.nick)))
                .append(el("jitsi_participant_codecType", CLIENT).append("vp8"))
                .append(el("audiomuted", CLIENT).append(muted(format!("{}-a0", self.nick))))
                .append(el("videomuted", CLIENT).append(muted(format!("{}-v0", self.nick)))),
        };
        presence
            .append(el("SourceInfo", CLIENT).append(source_info))
            .append_all(view.raised_hand.as_ref().map(|hand| {
                let element = el("jitsi_participant_raisedHand", CLIENT);
                if hand.is_empty() {
                    element.build()
                } else {
                    element.append(hand.as_str()).build()
                }
            }))
            .build()
    }
}

/// The properties of the conference request: a current client's (recorded join.xml), or the 2021
/// bundle's (research stanza 01).
fn conference_properties(shape: Shape) -> Vec<Element> {
    match shape {
        Shape::Current => vec![
            property("rtcstatsEnabled", "false"),
            property("visitors-version", "1"),
        ],
        Shape::Legacy2021 => vec![
            property("disableRtx", "false"),
            property("rtcstatsEnabled", "false"),
        ],
    }
}

fn property(name: &str, value: &str) -> Element {
    el("property", FOCUS)
        .attr(attr("name"), name)
        .attr(attr("value"), value)
        .build()
}

/// The features lib-jitsi-meet advertises, the node asked for echoed: a current client's (recorded
/// tests/fixtures/lib-jitsi-meet/disco-info.xml, asked by the real jicofo), or the 2021 bundle's
/// (research stanza 11, abridged).
fn disco_info(shape: Shape, node: Option<&str>) -> Element {
    let features: &[&str] = match shape {
        Shape::Current => &[
            "http://jabber.org/protocol/caps",
            JSON_SOURCES_FEATURE,
            "http://jitsi.org/receive-multiple-video-streams",
            "http://jitsi.org/remb",
            "http://jitsi.org/source-name",
            "http://jitsi.org/start-muted-room-metadata",
            "http://jitsi.org/tcc",
            "http://jitsi.org/visitors-1",
            "urn:ietf:rfc:4588",
            "urn:xmpp:jingle:1",
            "urn:xmpp:jingle:apps:dtls:0",
            "urn:xmpp:jingle:apps:rtp:1",
            "urn:xmpp:jingle:apps:rtp:audio",
            "urn:xmpp:jingle:apps:rtp:video",
            "urn:xmpp:jingle:transports:dtls-sctp:1",
            "urn:xmpp:jingle:transports:ice-udp:1",
            "urn:xmpp:rayo:client:1",
        ],
        Shape::Legacy2021 => &[
            "http://jabber.org/protocol/caps",
            JSON_SOURCES_FEATURE,
            "http://jitsi.org/remb",
            "http://jitsi.org/tcc",
            "urn:ietf:rfc:4588",
            "urn:ietf:rfc:5761",
            "urn:ietf:rfc:5888",
            "urn:xmpp:jingle:1",
            "urn:xmpp:jingle:apps:dtls:0",
            "urn:xmpp:jingle:apps:rtp:1",
            "urn:xmpp:jingle:apps:rtp:audio",
            "urn:xmpp:jingle:apps:rtp:video",
            "urn:xmpp:jingle:transports:ice-udp:1",
        ],
    };
    let mut query = el("query", DISCO_INFO);
    if let Some(node) = node {
        query = query.attr(attr("node"), node);
    }
    query
        .append_all(
            features
                .iter()
                .map(|var| el("feature", DISCO_INFO).attr(attr("var"), *var)),
        )
        .build()
}

/// SSRCs unique within the test process: the nick's hash in the high bits, a process-wide counter
/// per participant, and an index per source.
struct SsrcAllocator {
    base: u32,
    next: u32,
}

impl SsrcAllocator {
    fn new(nick: &str) -> SsrcAllocator {
        let mut hasher = DefaultHasher::new();
        nick.hash(&mut hasher);
        let nick_bits = (hasher.finish() as u32 & 0x3FF) << 20;
        let counter_bits = ((super::unique() as u32) & 0xFFF) << 8;
        SsrcAllocator {
            base: 0x8000_0000 | nick_bits | counter_bits,
            next: 0,
        }
    }

    fn take(&mut self) -> u32 {
        assert!(self.next < 0x100, "too many SSRCs for one participant");
        self.next += 1;
        self.base | (self.next - 1)
    }
}

/// (audio, camera, screenshare) of a client of `shape`.
fn local_tracks(
    nick: &str,
    shape: Shape,
    ssrcs: &mut SsrcAllocator,
) -> (SourceSet, SourceSet, SourceSet) {
    let current = shape == Shape::Current;
    let name = |suffix: &str| current.then(|| format!("{nick}-{suffix}"));
    let msid = |kind: &str, index: u32| {
        if current {
            format!("{nick}-{kind}-{index}-1 {}-1", random_uuid())
        } else {
            format!("{nick}-{kind}-1 {}-1", random_uuid())
        }
    };
    let mut audio_source = Source::new(Media::Audio, ssrcs.take()).with_msid(&msid("audio", 0));
    audio_source.name = name("a0");
    let audio = SourceSet::new(vec![audio_source], vec![]);
    let mut video = |suffix: &str, index: u32, video_type: &str| {
        let msid = msid("video", index);
        let layers: Vec<u32> = (0..3).map(|_| ssrcs.take()).collect();
        let rtx: Vec<u32> = (0..3).map(|_| ssrcs.take()).collect();
        let sources = layers
            .iter()
            .zip(&rtx)
            .flat_map(|(layer, rtx)| [*layer, *rtx])
            .map(|ssrc| {
                let mut source = Source::new(Media::Video, ssrc).with_msid(&msid);
                source.name = name(suffix);
                if current {
                    source.video_type = Some(video_type.to_owned());
                }
                source
            })
            .collect();
        // As recorded: FID, SIM, FID, FID.
        let groups = vec![
            Group::new(Media::Video, "FID", &[layers[0], rtx[0]]),
            Group::new(Media::Video, "SIM", &layers),
            Group::new(Media::Video, "FID", &[layers[1], rtx[1]]),
            Group::new(Media::Video, "FID", &[layers[2], rtx[2]]),
        ];
        SourceSet::new(sources, groups)
    };
    let camera = video("v0", 0, "camera");
    let screenshare = video("v1", 1, "desktop");
    (audio, camera, screenshare)
}
