//! `FocusPeer`: a stand-in for jicofo, the conference focus, as participants, the bridge and
//! mod_podium meet it over XMPP.
//!
//! It joins the brewery to find the bridge, joins each conference room as `focus` (an admin of the
//! MUC, so owner and moderator), invites every participant and relays sources between them and the
//! bridge. What it follows (jicofo `Participant.kt`, `JitsiMeetConferenceImpl.java`,
//! `JingleSession.kt`, `JingleIqRequestHandler.kt`, `ValidatingConferenceSourceMap.kt`,
//! `Colibri2Session.kt`, `ColibriV2SessionManager.kt`; research §2, §3, §10):
//! * invite = Colibri2 allocation at the bridge (`create='true'` with the room's name while the
//!   conference does not exist there; `<force-mute>` only when its own view is muted), then a
//!   `session-initiate` with a new sid carrying every other endpoint's sources (simulcast stripped)
//!   and the bridge's own `jvb-a0`/`jvb-v0`, as `<json-message>` or XML; a timeout counts as success;
//! * the endpoint counts as at the bridge from the moment its allocation is sent (jicofo
//!   `ColibriV2SessionManager.doAllocate` records the participant before the answer): a participant
//!   leaving meanwhile has its endpoint expired, and the late answer is ignored ("Participant no
//!   longer active"); an error answer drops the endpoint from the focus's view, nothing sent; no
//!   answer within the reply timeout (`FocusOptions::reply_timeout`, jicofo's
//!   `xmpp.service.reply-timeout`) expires the room's conference at the bridge and re-invites everyone
//!   in the room (jicofo `removeSession` + `bridgeRemoved` -> `reInviteParticipantsById`; one bridge
//!   here, so the same one);
//! * incoming Jingle is routed by `sid` only, never by `from`; an unknown sid is `bad-request`; a
//!   session whose accept failed answers `gone`;
//! * every answer goes to the request's `from` (a participant's occupant JID, as the MUC rewrote it)
//!   with the id it came with (the MUC's rewritten one, Prosody 0.12 `handle_iq_to_occupant`), so it
//!   travels back through the MUC's id rewrite as jicofo's answers do (Smack `createResultIQ`);
//! * a session-terminate ends the participant's part only when its `<bridge-session id>` is the one
//!   the session-initiate gave (else `item-not-found` "<id> is not a currently active session",
//!   `JitsiMeetConferenceImpl.terminateSession`), but it ends the Jingle session either way
//!   (`JingleSession.doProcessIq`): later requests on that sid get `<gone>session ended</gone>`;
//! * a test can make it refuse a Jingle action outright (`refuse`), as jicofo refusing it would;
//! * session-accept, transport-accept and source-add are validated as jicofo does (any failure fails
//!   the whole request with `bad-request` and the exception text, and changes nothing); on success the
//!   bridge gets the endpoint's complete source set (no force-mute), every other participant whose
//!   session is active gets a `source-add`, and participants still pending get them after accepting;
//! * source-remove removes by SSRC (unknown → `bad-request`) and propagates `source-remove`;
//! * a participant's session-terminate, or its leaving the room, drops its sources (propagated) and
//!   its endpoint at the bridge — the whole conference when it was the last one, as jicofo removes an
//!   empty Colibri2 session;
//! * a re-invite (`reinvite`) is jicofo's RestartJingle: endpoint removed at the bridge, sources
//!   removed, `session-terminate` (success, "moving"), then a fresh invite with a new sid and its own
//!   force-mute view;
//! * a participant's restart request (session-terminate with `restart='true'`) is honoured at most
//!   once per 5 s and 5 times a minute; past that the session ends and the answer is
//!   `resource-constraint` "rate-limited" (`Participant.onSessionTerminate`);
//! * ICE failed (session-info `<ice-state>failed` naming the current bridge session) drops the
//!   sources and ends the session "moving", and invites nobody, as jicofo 7ebb13d does (its
//!   re-invite fails: the endpoint is still in its Colibri2 session); other session-info is answered;
//! * a mute IQ for someone else is `not-allowed` unless a moderator mutes (`handleMuteRequest`), and
//!   a moderator's mute is passed on to that participant as `<mute actor>` (`MuteIqHandler`);
//! * Jingle on a known session without an action it reads, or with one it does not handle, is never
//!   answered (jicofo's error with a condition text throws in Smack), only kept in `unanswered`;
//! * `force_mute` is jicofo's dedicated force-mute update (attributes omitted when false).
//!
//! Simplified: one bridge, no bridge selection or health, no Octo, no AV moderation (so force-mute
//! changes only when a test calls `force_mute`), no disco of participants (the JSON-or-XML choice is
//! an option, `FocusOptions::json_sources`), no source-signaling delay, no sender-count limits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use tokio::sync::mpsc;

use super::c2s::{C2s, C2sHandle, CLIENT, PendingAnswer, attr, el};
use super::jingle::{
    COLIBRI2, FOCUS, ICE, JINGLE, MUTE_AUDIO, MUTE_DESKTOP, MUTE_VIDEO, Media, OPENTELEMETRY, SSMA,
    SourceSet, SourcesByOwner, add_sources_to_contents, bundle_group, contents_by_owner,
    first_transport, ice_transport, json_message, rtp_description,
};
use super::peer::{
    AbortOnDrop, Recorder, bare, error_condition, error_for, iq, is_request, is_result, payload,
    random_hex, random_uuid, resource, result_for, result_with,
};
use super::prosody::{BREWERY, FOCUS_ACCOUNT, MUC};

/// jicofo's account name.
pub const FOCUS_USER: &str = "focus";
/// The nick jicofo takes in every room (lib-jitsi-meet recognises the focus by it).
pub const FOCUS_NICK: &str = "focus";
/// jicofo's full JID, where clients send the conference request.
pub const FOCUS_JID: &str = "focus@localhost/focus";
/// The owner jicofo names for the bridge's own sources.
pub const BRIDGE_OWNER: &str = "jvb";

const MUC_NS: &str = "http://jabber.org/protocol/muc";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// How long the focus waits for an answer to what it sends.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// How the focus behaves.
#[derive(Clone, Copy, Debug)]
pub struct FocusOptions {
    /// Remote sources to participants as `<json-message>` (jicofo's default, for clients that
    /// advertise json-encoded-sources), or as XML `<source>` with `<ssrc-info owner>`.
    pub json_sources: bool,
    /// Name a tenant's conference at the bridge by the room's virtual JID, as jicofo does on a
    /// multi-tenant Jitsi (mod_muc_domain_mapper): the room `[acme]lecture@conference.localhost` is
    /// `lecture@conference.acme.localhost` to jicofo.
    pub virtual_names: bool,
    /// How long the focus waits for an answer (jicofo's `jicofo.xmpp.service.reply-timeout`, 15 s
    /// by default; 10 s here unless a test sets it, e.g. the load of tests/common/churn.rs, which
    /// must ride out a saturated machine).
    pub reply_timeout: Duration,
}

impl Default for FocusOptions {
    fn default() -> FocusOptions {
        FocusOptions {
            json_sources: true,
            virtual_names: false,
            reply_timeout: ANSWER_LIMIT,
        }
    }
}

/// A Jingle session's state (jicofo `JingleSession.State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// session-initiate sent, no accept yet: remote sources are queued.
    Pending,
    Active,
    /// The accept failed: further requests get `gone`.
    Ended,
}

/// One participant as the focus knows it.
#[derive(Clone, Debug)]
pub struct EndpointView {
    pub nick: String,
    pub real_jid: Option<String>,
    pub stats_id: Option<String>,
    /// The current Jingle session id (a new one on every invite).
    pub sid: Option<String>,
    pub session: Option<SessionState>,
    /// The endpoint's accepted sources.
    pub sources: SourceSet,
    /// The remote sources this participant has been told about, per owner.
    pub signaled: SourcesByOwner,
    /// The focus's own force-mute view, carried by allocations.
    pub force_mute_audio: bool,
    pub force_mute_video: bool,
    /// Whether the endpoint exists at the bridge (as far as the focus knows): from the moment its
    /// allocation is sent, as jicofo records the participant before the answer
    /// (`ColibriV2SessionManager.doAllocate`), so a leave meanwhile expires it at the bridge.
    pub allocated: bool,
    /// The allocation in flight or last made for this endpoint: an answer for another one (the
    /// participant left, or the bridge session was dropped since) is ignored, as jicofo ignores an
    /// answer for a participant or session no longer active.
    pub allocation: Option<u64>,
    /// How many invites were started.
    pub invites: u32,
    /// The `<bridge-session id>` of the current session; jicofo ends a session only for a
    /// session-terminate naming it (`JitsiMeetConferenceImpl.terminateSession`).
    pub bridge_session: Option<String>,
    /// The MUC role from the occupant's last presence ("moderator", "participant", ...).
    pub role: Option<String>,
    /// When each restart request was accepted (jicofo `Participant.restartRequestsRateLimit`).
    pub restarts: Vec<std::time::Instant>,
}

/// One conference room.
#[derive(Clone, Debug)]
pub struct RoomView {
    pub jid: String,
    pub meeting_id: String,
    pub joined: bool,
    pub join_error: Option<Element>,
    /// Whether the focus believes the conference exists at the bridge.
    pub bridge_conference: bool,
    /// The bridge's own sources, from the allocation answer.
    pub feedback: SourceSet,
    pub endpoints: BTreeMap<String, EndpointView>,
    /// Conference requests waiting for the focus to be in the room.
    pub waiting_requests: Vec<Element>,
}

/// A Jingle request the focus received and how it answered.
#[derive(Clone, Debug)]
pub struct JingleReceived {
    pub action: String,
    pub sid: String,
    pub from: String,
    /// "room/nick" of the session the sid belongs to, when known.
    pub endpoint: Option<String>,
    pub iq: Element,
    pub answer: Element,
}

/// An IQ the focus sent (to a participant or to the bridge) and its answer.
#[derive(Clone, Debug)]
pub struct SentIq {
    pub room: String,
    /// The participant it concerns.
    pub nick: Option<String>,
    /// "allocate", "update", "expire", "force-mute", or the Jingle action.
    pub what: String,
    pub iq: Element,
    /// `None` until answered, or when no answer came within 10 s (see `done`).
    pub answer: Option<Element>,
    pub done: bool,
}

/// A mute IQ a participant sent to the focus.
#[derive(Clone, Debug)]
pub struct MuteReceived {
    pub from: String,
    /// "audio", "video" or "desktop".
    pub media: String,
    pub jid: Option<String>,
    pub text: String,
    pub answer: Element,
}

/// Everything the focus holds and has seen.
#[derive(Clone, Debug, Default)]
pub struct FocusView {
    /// The bridge's occupant JID in the brewery.
    pub bridge: Option<String>,
    pub rooms: BTreeMap<String, RoomView>,
    /// sid → (room, nick): the only routing jicofo does.
    pub sessions: BTreeMap<String, (String, String)>,
    pub jingle: Vec<JingleReceived>,
    pub sent: Vec<SentIq>,
    pub mutes: Vec<MuteReceived>,
    /// Answers that matched no waiter.
    pub strays: Vec<Element>,
    /// Jingle requests left unanswered, as jicofo leaves them (see `never_answered`).
    pub unanswered: Vec<Element>,
    /// Rooms of another MUC (a breakout MUC) the focus is in without a conference, as jicofo is in a
    /// room with fewer than `conference.min-participants` (2) participants: it invites nobody there.
    pub lone_rooms: BTreeSet<String>,
    /// Jingle actions answered with an error (action → condition) whatever they carry, as a test
    /// configured it with [`FocusPeer::refuse`].
    pub refusing: BTreeMap<String, String>,
}

impl FocusView {
    /// (room, nick) for "nick" (which must be in exactly one room) or "room/nick".
    pub fn locate(&self, key: &str) -> Option<(String, String)> {
        if let Some((room, nick)) = key.split_once('/') {
            return self
                .rooms
                .get(room)
                .filter(|r| r.endpoints.contains_key(nick))
                .map(|_| (room.to_owned(), nick.to_owned()));
        }
        let mut found = self
            .rooms
            .iter()
            .filter(|(_, room)| room.endpoints.contains_key(key))
            .map(|(name, _)| (name.clone(), key.to_owned()));
        let first = found.next();
        assert!(
            found.next().is_none(),
            "{key} is in several rooms: say room/nick"
        );
        first
    }

    /// The endpoint for "nick" or "room/nick".
    pub fn endpoint(&self, key: &str) -> Option<&EndpointView> {
        let (room, nick) = self.locate(key)?;
        self.rooms.get(&room)?.endpoints.get(&nick)
    }

    /// The endpoint's accepted sources (empty when unknown).
    pub fn sources(&self, key: &str) -> SourceSet {
        self.endpoint(key)
            .map(|endpoint| endpoint.sources.clone())
            .unwrap_or_default()
    }

    /// The current Jingle sid of "nick" or "room/nick".
    pub fn sid(&self, key: &str) -> Option<String> {
        self.endpoint(key)?.sid.clone()
    }

    /// What the focus sent concerning `nick` ("nick" or "room/nick"), in order.
    pub fn sent_to(&self, key: &str) -> Vec<&SentIq> {
        let (room, nick) = match key.split_once('/') {
            Some((room, nick)) => (Some(room), nick),
            None => (None, key),
        };
        self.sent
            .iter()
            .filter(|sent| {
                sent.nick.as_deref() == Some(nick) && room.is_none_or(|room| sent.room == room)
            })
            .collect()
    }
}

/// The focus's connection to a visitor Prosody ([`FocusPeer::attach_visitor_node`]).
pub struct VisitorConnection {
    pub handle: C2sHandle,
    _task: AbortOnDrop,
}

/// The focus: jicofo's signalling, driven by a background task that owns the inbox.
pub struct FocusPeer {
    /// The focus's real (full) JID.
    pub jid: String,
    core: Arc<Focus>,
    _task: AbortOnDrop,
}

impl FocusPeer {
    /// Connects as `focus@localhost/focus`, joins the brewery and waits to see the bridge there.
    pub async fn connect(port: u16) -> FocusPeer {
        FocusPeer::connect_with(port, FocusOptions::default()).await
    }

    /// Like [`FocusPeer::connect`], with options.
    pub async fn connect_with(port: u16, options: FocusOptions) -> FocusPeer {
        let c2s = C2s::connect(port, FOCUS_USER, FOCUS_NICK).await;
        assert_eq!(c2s.jid, FOCUS_JID, "the focus must be bound as {FOCUS_JID}");
        let (handle, inbox) = c2s.split();
        let core = Arc::new(Focus {
            handle,
            options,
            recorder: Arc::new(Recorder::new(FocusView::default())),
        });
        let task = tokio::spawn(Arc::clone(&core).run(inbox));
        core.handle.send(
            el("presence", CLIENT)
                .attr(attr("to"), format!("{BREWERY}/{FOCUS_NICK}"))
                .append(el("x", MUC_NS))
                .build(),
        );
        core.recorder
            .wait_until("the focus sees a bridge in the brewery", |view| {
                view.bridge.is_some()
            })
            .await;
        FocusPeer {
            jid: core.handle.jid.clone(),
            core,
            _task: AbortOnDrop(task),
        }
    }

    /// Enters `room_jid` (a room of another MUC, e.g. a breakout room) and waits until it is in; it
    /// starts no conference there (see [`FocusView::lone_rooms`]), yet routes any Jingle it gets by sid.
    pub async fn enter_lone_room(&self, room_jid: &str) {
        self.core.handle.send(
            el("presence", CLIENT)
                .attr(attr("to"), format!("{room_jid}/{FOCUS_NICK}"))
                .append(el("x", MUC_NS))
                .build(),
        );
        self.core
            .recorder
            .wait_until(&format!("the focus enters {room_jid}"), |view| {
                view.lone_rooms.contains(room_jid)
            })
            .await;
    }

    /// Connects to a visitor Prosody with the same JID, as jicofo keeps a connection to every visitor
    /// node (jicofo `XmppServices.visitorConnections`), joins `rooms` there (full JIDs, e.g. on
    /// `VISITOR_MUC`) as `focus`, and routes Jingle arriving there through the same sid table as the
    /// main connection: jicofo registers one `JingleIqRequestHandler` on all of them, which finds the
    /// session by sid alone. Other requests get `service-unavailable`.
    pub async fn attach_visitor_node(&self, port: u16, rooms: &[&str]) -> VisitorConnection {
        let mut c2s = C2s::connect(port, FOCUS_USER, FOCUS_NICK).await;
        assert_eq!(c2s.jid, FOCUS_JID, "the focus must be bound as {FOCUS_JID}");
        for room in rooms {
            c2s.join(room, FOCUS_NICK).await;
        }
        let (handle, mut inbox) = c2s.split();
        let core = Arc::clone(&self.core);
        let reply = handle.clone();
        let task = tokio::spawn(async move {
            while let Some(stanza) = inbox.recv().await {
                if stanza.name() != "iq" || !is_request(&stanza) {
                    continue;
                }
                match payload(&stanza) {
                    Some(child) if child.is("jingle", JINGLE) => {
                        core.on_jingle(&reply, &stanza, child)
                    }
                    _ => reply.send(jicofo_error(&stanza, "service-unavailable", None, vec![])),
                }
            }
        });
        VisitorConnection {
            handle,
            _task: AbortOnDrop(task),
        }
    }

    /// Joins `room` (a conference request does the same) and waits until it is in.
    pub async fn join_room(&self, room: &str) {
        self.core
            .recorder
            .update(|view| self.core.ensure_room(view, room));
        self.core
            .recorder
            .wait_until(&format!("the focus joins {room}"), |view| {
                view.rooms
                    .get(room)
                    .is_some_and(|r| r.joined || r.join_error.is_some())
            })
            .await;
        let error = self
            .core
            .recorder
            .read(|view| view.rooms[room].join_error.clone());
        assert!(
            error.is_none(),
            "the focus could not join {room}: {error:?}"
        );
    }

    /// jicofo's RestartJingle re-invite of `key` ("nick" or "room/nick"): the endpoint is removed at
    /// the bridge, its sources are removed (and that is propagated), its session is terminated, then
    /// it is invited again. Returns once the new session-initiate is answered (or timed out).
    pub async fn reinvite(&self, key: &str) {
        let (room, nick) = self.locate(key);
        let pending = self.core.recorder.update(|view| {
            let mut pending = Vec::new();
            self.core
                .remove_from_bridge(view, &mut pending, &room, &nick);
            self.core.drop_sources(view, &mut pending, &room, &nick);
            self.core
                .end_session(view, &mut pending, &room, &nick, true);
            pending
        });
        self.core.record_later(pending);
        Arc::clone(&self.core).invite(room, nick).await;
    }

    /// Drops `ssrcs` from `key`'s sources without telling anyone: jicofo no longer has sources the
    /// module believes it forwarded, and answers a source-remove of them "Source does not exist".
    pub fn forget(&self, key: &str, ssrcs: &BTreeSet<u32>) {
        let (room, nick) = self.locate(key);
        self.core.recorder.update(|view| {
            let endpoint = self.core.endpoint_mut(view, &room, &nick);
            endpoint.sources = endpoint.sources.without_ssrcs(ssrcs);
        });
    }

    /// From now on answers every Jingle `action` (e.g. "source-remove") with `condition`, as jicofo
    /// refusing it would; `None` accepts it again.
    pub fn refuse(&self, action: &str, condition: Option<&str>) {
        self.core.recorder.update(|view| match condition {
            Some(condition) => view
                .refusing
                .insert(action.to_owned(), condition.to_owned()),
            None => view.refusing.remove(action),
        });
    }

    /// jicofo's dedicated force-mute update for `key`: sets the focus's own view and sends
    /// `<force-mute [audio='true'] [video='true']/>`. Returns the bridge's answer.
    pub async fn force_mute(&self, key: &str, audio: bool, video: bool) -> Element {
        let (room, nick) = self.locate(key);
        let (index, pending) = self.core.recorder.update(|view| {
            let endpoint = view
                .rooms
                .get_mut(&room)
                .unwrap()
                .endpoints
                .get_mut(&nick)
                .unwrap();
            endpoint.force_mute_audio = audio;
            endpoint.force_mute_video = video;
            let request = self.core.conference_modify(view, &room, false).append(
                el("endpoint", COLIBRI2)
                    .attr(attr("id"), nick.as_str())
                    .append(force_mute_element(audio, video)),
            );
            self.core
                .send_to_bridge(view, &room, Some(&nick), "force-mute", request.build())
                .expect("no bridge")
        });
        self.core
            .await_recorded(index, pending)
            .await
            .expect("the bridge did not answer the force-mute update")
    }

    /// A copy of everything the focus holds and has seen.
    pub fn view(&self) -> FocusView {
        self.core.recorder.snapshot()
    }

    /// The accepted sources of `key` ("nick" or "room/nick").
    pub fn sources(&self, key: &str) -> SourceSet {
        self.core.recorder.read(|view| view.sources(key))
    }

    /// The current Jingle sid of `key`.
    /// The current Jingle sid of "nick" or "room/nick".
    pub fn sid(&self, key: &str) -> Option<String> {
        self.core.recorder.read(|view| view.sid(key))
    }

    /// Every Jingle request received, in order, with the answer given.
    pub fn jingle_received(&self) -> Vec<JingleReceived> {
        self.core.recorder.read(|view| view.jingle.clone())
    }

    /// What the focus sent concerning `key`, with the answers.
    pub fn sent_to(&self, key: &str) -> Vec<SentIq> {
        self.core
            .recorder
            .read(|view| view.sent_to(key).into_iter().cloned().collect())
    }

    /// Mute IQs received from participants.
    pub fn mutes(&self) -> Vec<MuteReceived> {
        self.core.recorder.read(|view| view.mutes.clone())
    }

    /// The meeting id the focus uses for `room` at the bridge.
    pub fn meeting_id(&self, room: &str) -> Option<String> {
        self.core
            .recorder
            .read(|view| view.rooms.get(room).map(|r| r.meeting_id.clone()))
    }

    /// Waits until `condition` holds on the focus's view; panics after 10 s with the view.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&FocusView) -> bool) {
        self.core.recorder.wait_until(what, condition).await;
    }

    /// Waits until `mismatch` returns `None` on the focus's view; panics after `limit` with the last
    /// mismatch.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mismatch: impl Fn(&FocusView) -> Option<String>,
    ) {
        self.core.recorder.wait_for(what, limit, mismatch).await;
    }

    /// The connection, e.g. to send something raw as the focus.
    pub fn handle(&self) -> &C2sHandle {
        &self.core.handle
    }

    fn locate(&self, key: &str) -> (String, String) {
        self.core
            .recorder
            .read(|view| view.locate(key))
            .unwrap_or_else(|| panic!("the focus knows no participant {key}"))
    }
}

/// IQs sent from inside a view update whose answers are recorded once they come.
type Pending = Vec<(usize, PendingAnswer)>;

/// Why an allocation gave no endpoint.
enum AllocationFailed {
    /// The bridge did not answer within the limit.
    TimedOut,
    /// An error answer, or the answer is no longer wanted.
    Other,
}

struct Focus {
    handle: C2sHandle,
    options: FocusOptions,
    recorder: Arc<Recorder<FocusView>>,
}

impl Focus {
    async fn run(self: Arc<Self>, mut inbox: mpsc::UnboundedReceiver<Element>) {
        while let Some(stanza) = inbox.recv().await {
            match stanza.name() {
                "presence" => self.on_presence(&stanza),
                "iq" if is_request(&stanza) => self.on_request(&stanza),
                "iq" => self.recorder.update(|view| view.strays.push(stanza)),
                _ => {}
            }
        }
    }

    /// Records `iq` as sent and sends it now (so sends keep the order of the updates).
    fn send_tracked(
        &self,
        view: &mut FocusView,
        room: &str,
        nick: Option<&str>,
        what: &str,
        iq: Element,
    ) -> (usize, PendingAnswer) {
        let pending = self.handle.send_iq(iq.clone());
        view.sent.push(SentIq {
            room: room.to_owned(),
            nick: nick.map(str::to_owned),
            what: what.to_owned(),
            iq,
            answer: None,
            done: false,
        });
        (view.sent.len() - 1, pending)
    }

    /// Sends a Colibri2 request to the bridge's brewery occupant; `None` when no bridge is known.
    fn send_to_bridge(
        &self,
        view: &mut FocusView,
        room: &str,
        nick: Option<&str>,
        what: &str,
        request: Element,
    ) -> Option<(usize, PendingAnswer)> {
        let bridge = view.bridge.clone()?;
        let request = iq("get", &bridge, &self.handle.next_id(), request);
        Some(self.send_tracked(view, room, nick, what, request))
    }

    /// Records the answers of `pending` as they come, without waiting for them here.
    fn record_later(&self, pending: Pending) {
        for (index, answer) in pending {
            let recorder = Arc::clone(&self.recorder);
            let limit = self.options.reply_timeout;
            tokio::spawn(async move {
                await_recorded(&recorder, index, answer, limit).await;
            });
        }
    }

    async fn await_recorded(&self, index: usize, pending: PendingAnswer) -> Option<Element> {
        await_recorded(&self.recorder, index, pending, self.options.reply_timeout).await
    }

    /// Starts joining `room` unless already there or on the way.
    fn ensure_room(&self, view: &mut FocusView, room: &str) {
        if view.rooms.contains_key(room) {
            return;
        }
        let jid = format!("{room}@{MUC}");
        view.rooms.insert(
            room.to_owned(),
            RoomView {
                jid: jid.clone(),
                meeting_id: random_uuid(),
                joined: false,
                join_error: None,
                bridge_conference: false,
                feedback: SourceSet::default(),
                endpoints: BTreeMap::new(),
                waiting_requests: Vec::new(),
            },
        );
        self.handle.send(
            el("presence", CLIENT)
                .attr(attr("to"), format!("{jid}/{FOCUS_NICK}"))
                .append(el("x", MUC_NS))
                .build(),
        );
    }

    fn on_presence(self: &Arc<Self>, presence: &Element) {
        let from = presence.attr("from").unwrap_or("");
        let Some(nick) = resource(from) else { return };
        let unavailable = presence.attr("type") == Some("unavailable");
        let error = presence.attr("type") == Some("error");
        if bare(from) == BREWERY {
            if nick != FOCUS_NICK && !error {
                self.recorder.update(|view| {
                    if !unavailable {
                        view.bridge = Some(from.to_owned());
                    } else if view.bridge.as_deref() == Some(from) {
                        view.bridge = None;
                    }
                });
            }
            return;
        }
        let Some(room) = bare(from).strip_suffix(&format!("@{MUC}")) else {
            if nick == FOCUS_NICK && !error && !unavailable {
                self.recorder
                    .update(|view| view.lone_rooms.insert(bare(from).to_owned()));
            }
            return;
        };
        if nick == FOCUS_NICK {
            self.on_own_presence(room, presence, error);
            return;
        }
        if error {
            return;
        }
        if unavailable {
            self.on_leave(room, nick);
            return;
        }
        let item = presence
            .get_child("x", MUC_USER)
            .and_then(|x| x.get_child("item", MUC_USER));
        let real_jid = item.and_then(|item| item.attr("jid")).map(str::to_owned);
        let role = item.and_then(|item| item.attr("role")).map(str::to_owned);
        let stats_id = presence.get_child("stats-id", CLIENT).map(Element::text);
        let joined = self.recorder.update(|view| {
            let Some(room_view) = view.rooms.get_mut(room) else {
                return false;
            };
            if let Some(endpoint) = room_view.endpoints.get_mut(nick) {
                endpoint.real_jid = real_jid.clone().or(endpoint.real_jid.take());
                endpoint.stats_id = stats_id.clone().or(endpoint.stats_id.take());
                endpoint.role = role.clone().or(endpoint.role.take());
                return false;
            }
            room_view.endpoints.insert(
                nick.to_owned(),
                EndpointView {
                    nick: nick.to_owned(),
                    real_jid,
                    stats_id,
                    sid: None,
                    session: None,
                    sources: SourceSet::default(),
                    signaled: SourcesByOwner::new(),
                    force_mute_audio: false,
                    force_mute_video: false,
                    allocated: false,
                    allocation: None,
                    invites: 0,
                    bridge_session: None,
                    role,
                    restarts: Vec::new(),
                },
            );
            true
        });
        if joined {
            tokio::spawn(Arc::clone(self).invite(room.to_owned(), nick.to_owned()));
        }
    }

    fn on_own_presence(&self, room: &str, presence: &Element, error: bool) {
        let waiting = self.recorder.update(|view| {
            let Some(room_view) = view.rooms.get_mut(room) else {
                return Vec::new();
            };
            if error {
                room_view.join_error = Some(presence.clone());
            } else if presence.attr("type") != Some("unavailable") {
                room_view.joined = true;
            }
            std::mem::take(&mut room_view.waiting_requests)
        });
        for request in waiting {
            self.handle.send(self.conference_answer(&request));
        }
    }

    fn conference_answer(&self, request: &Element) -> Element {
        let room = payload(request).and_then(|c| c.attr("room")).unwrap_or("");
        result_with(
            request,
            Some(
                el("conference", FOCUS)
                    .attr(attr("ready"), "true")
                    .attr(attr("room"), room)
                    .attr(attr("focusjid"), FOCUS_ACCOUNT)
                    .build(),
            ),
        )
    }

    fn on_request(self: &Arc<Self>, request: &Element) {
        let Some(child) = payload(request) else {
            self.handle
                .send(jicofo_error(request, "bad-request", None, vec![]));
            return;
        };
        if child.is("jingle", JINGLE) {
            self.on_jingle(&self.handle, request, child);
        } else if child.name() == "mute" {
            self.on_mute(request, child);
        } else if child.is("conference", FOCUS) {
            self.on_conference_request(request, child);
        } else {
            self.handle
                .send(jicofo_error(request, "service-unavailable", None, vec![]));
        }
    }

    /// The conference request a client sends before joining: join the room, then answer ready.
    fn on_conference_request(&self, request: &Element, conference: &Element) {
        let room_jid = conference.attr("room").unwrap_or("");
        let Some(room) = room_jid.strip_suffix(&format!("@{MUC}")) else {
            self.handle.send(jicofo_error(
                request,
                "bad-request",
                Some("unknown room"),
                vec![],
            ));
            return;
        };
        let ready = self.recorder.update(|view| {
            self.ensure_room(view, room);
            let room_view = view.rooms.get_mut(room).unwrap();
            if !room_view.joined {
                room_view.waiting_requests.push(request.clone());
            }
            room_view.joined
        });
        if ready {
            self.handle.send(self.conference_answer(request));
        }
    }

    /// jicofo's MuteIqHandler for a participant's own mute: needs `jid` and a text; answers result.
    fn on_mute(&self, request: &Element, mute: &Element) {
        let media = match mute.ns().as_str() {
            MUTE_AUDIO => "audio",
            MUTE_VIDEO => "video",
            MUTE_DESKTOP => "desktop",
            _ => {
                self.handle
                    .send(jicofo_error(request, "service-unavailable", None, vec![]));
                return;
            }
        };
        let jid = mute.attr("jid").map(str::to_owned);
        let text = mute.text();
        let from = request.attr("from").unwrap_or("");
        let muter = bare(from)
            .strip_suffix(&format!("@{MUC}"))
            .zip(resource(from))
            .map(|(room, nick)| format!("{room}/{nick}"));
        let answer = self.recorder.update(|view| {
            // jicofo `JitsiMeetConferenceImpl.handleMuteRequest`: only a moderator mutes someone
            // else, and nobody unmutes someone else (recorded:
            // tests/fixtures/jicofo/mute-other-without-moderator-rights.xml,
            // unmute-other-without-moderator-rights.xml).
            let muter_is_moderator = muter
                .and_then(|muter| view.locate(&muter))
                .and_then(|(room, nick)| view.rooms[&room].endpoints.get(&nick))
                .is_some_and(|endpoint| endpoint.role.as_deref() == Some("moderator"));
            let remote = jid.as_deref().is_some_and(|jid| jid != from);
            let answer = if jid.is_none() || text.is_empty() {
                jicofo_error(request, "bad-request", None, vec![])
            } else if remote && (!muter_is_moderator || text.trim() != "true") {
                jicofo_error(request, "not-allowed", None, vec![])
            } else {
                result_for(request)
            };
            view.mutes.push(MuteReceived {
                from: request.attr("from").unwrap_or("").to_owned(),
                media: media.to_owned(),
                jid: jid.clone(),
                text: text.clone(),
                answer: answer.clone(),
            });
            answer
        });
        let remote = jid.as_deref().filter(|jid| *jid != from);
        self.handle.send(answer.clone());
        // A mute of someone else that jicofo granted is passed on to that participant, naming who
        // asked (`MuteIqHandler`: `<mute actor>`, no `jid`; no answer is awaited; recorded:
        // tests/fixtures/jicofo/mute-other-as-moderator.xml).
        if let Some(target) = remote.filter(|_| is_result(&answer)) {
            let told = el("mute", mute.ns().as_str())
                .attr(attr("actor"), from)
                .append(text.as_str())
                .build();
            self.handle
                .send(iq("set", target, &self.handle.next_id(), told));
        }
    }

    fn on_leave(&self, room: &str, nick: &str) {
        let pending = self.recorder.update(|view| {
            let mut pending = Vec::new();
            let known = view
                .rooms
                .get(room)
                .is_some_and(|r| r.endpoints.contains_key(nick));
            if known {
                // jicofo terminateParticipant: session, sources (propagated), then the bridge.
                self.end_session(view, &mut pending, room, nick, false);
                self.drop_sources(view, &mut pending, room, nick);
                self.remove_from_bridge(view, &mut pending, room, nick);
                view.rooms.get_mut(room).unwrap().endpoints.remove(nick);
            }
            pending
        });
        self.record_later(pending);
    }

    /// A Jingle request that came in on `reply`'s connection (the main one, or a visitor node's),
    /// answered there.
    fn on_jingle(self: &Arc<Self>, reply: &C2sHandle, request: &Element, jingle: &Element) {
        let action = jingle.attr("action").unwrap_or("").to_owned();
        let sid = jingle.attr("sid").unwrap_or("").to_owned();
        let from = request.attr("from").unwrap_or("").to_owned();
        let (pending, restart) = self.recorder.update(|view| {
            let mut pending = Vec::new();
            // jicofo JingleIqRequestHandler: the sid alone picks the session.
            let session = view.sessions.get(&sid).cloned();
            let (answer, restart) = match &session {
                None => (jicofo_error(request, "bad-request", None, vec![]), false),
                Some((room, nick)) if never_answered(view, room, nick, &action) => {
                    view.unanswered.push(request.clone());
                    return (pending, None);
                }
                Some((room, nick)) => {
                    self.jingle_for_session(view, &mut pending, request, jingle, room, nick)
                }
            };
            view.jingle.push(JingleReceived {
                action: action.clone(),
                sid: sid.clone(),
                from: from.clone(),
                endpoint: session
                    .as_ref()
                    .map(|(room, nick)| format!("{room}/{nick}")),
                iq: request.clone(),
                answer: answer.clone(),
            });
            reply.send(answer);
            (pending, restart.then_some(session).flatten())
        });
        self.record_later(pending);
        if let Some((room, nick)) = restart {
            tokio::spawn(Arc::clone(self).invite(room, nick));
        }
    }

    /// Handles a Jingle request of a known session; returns the answer and whether the participant
    /// asked for a restart (session-terminate with `<bridge-session restart='true'>`).
    fn jingle_for_session(
        &self,
        view: &mut FocusView,
        pending: &mut Pending,
        request: &Element,
        jingle: &Element,
        room: &str,
        nick: &str,
    ) -> (Element, bool) {
        let action = jingle.attr("action").unwrap_or("");
        let state = view.rooms[room].endpoints[nick].session;
        if state == Some(SessionState::Ended) {
            return (gone_session_ended(request), false);
        }
        let failed = |text: String| jicofo_error(request, "bad-request", Some(&text), vec![]);
        if let Some(condition) = view.refusing.get(action) {
            return (
                jicofo_error(request, condition, Some("refused by the test"), vec![]),
                false,
            );
        }
        match action {
            "session-accept" | "transport-accept" => {
                if action == "session-accept" {
                    self.endpoint_mut(view, room, nick).session = Some(SessionState::Active);
                }
                let outcome = SourceSet::from_contents(jingle)
                    .and_then(|added| self.try_add(view, room, nick, &added));
                match outcome {
                    Err(text) => {
                        if action == "session-accept" {
                            self.endpoint_mut(view, room, nick).session = Some(SessionState::Ended);
                        }
                        (failed(text), false)
                    }
                    Ok(()) => {
                        self.update_bridge_endpoint(
                            view,
                            pending,
                            room,
                            nick,
                            first_transport(jingle),
                        );
                        self.propagate(view, pending, room, nick);
                        self.sync_remote(view, pending, room, nick);
                        (result_for(request), false)
                    }
                }
            }
            "source-add" | "addsource" => {
                let outcome = SourceSet::from_contents(jingle).and_then(|added| {
                    if added.is_empty() {
                        return Ok(false);
                    }
                    self.try_add(view, room, nick, &added).map(|()| true)
                });
                match outcome {
                    Err(text) => (failed(text), false),
                    Ok(changed) => {
                        if changed {
                            self.update_bridge_endpoint(view, pending, room, nick, None);
                            self.propagate(view, pending, room, nick);
                        }
                        (result_for(request), false)
                    }
                }
            }
            "source-remove" | "removesource" => {
                let outcome = SourceSet::from_contents(jingle).and_then(|removed| {
                    if removed.is_empty() {
                        return Ok(false);
                    }
                    let endpoint = self.endpoint_mut(view, room, nick);
                    let (remaining, _) = endpoint.sources.try_remove(&removed)?;
                    endpoint.sources = remaining;
                    Ok(true)
                });
                match outcome {
                    Err(text) => (failed(text), false),
                    Ok(changed) => {
                        if changed {
                            self.update_bridge_endpoint(view, pending, room, nick, None);
                            self.propagate(view, pending, room, nick);
                        }
                        (result_for(request), false)
                    }
                }
            }
            "session-terminate" => {
                let bridge_session = jingle.get_child("bridge-session", FOCUS);
                let restart = bridge_session.is_some_and(|b| b.attr("restart") == Some("true"));
                let named = bridge_session.and_then(|b| b.attr("id"));
                let current = view.rooms[room].endpoints[nick].bridge_session.as_deref();
                if named != current {
                    // jicofo `JingleSession.doProcessIq` ends the Jingle session on any
                    // session-terminate, even one `terminateSession` refuses: the participant keeps
                    // its sources and its endpoint, and every later request on the sid is `gone`
                    // (recorded: tests/fixtures/jicofo/session-terminate-after-wrong-bridge-session.xml).
                    self.endpoint_mut(view, room, nick).session = Some(SessionState::Ended);
                    // Kotlin's string template: a missing id reads "null".
                    let named = named.unwrap_or("null");
                    return (
                        jicofo_error(
                            request,
                            "item-not-found",
                            Some(&format!("{named} is not a currently active session")),
                            vec![],
                        ),
                        false,
                    );
                }
                // jicofo `Participant.onSessionTerminate`: a restart is honoured at most once per
                // 5 s and 5 times a minute (`restart-request-rate-limits`); past that the session
                // still ends, nobody is invited again, and the answer says so (recorded:
                // tests/fixtures/jicofo/session-terminate-restart-again.xml).
                let rate_limited = restart && !accept_restart(self.endpoint_mut(view, room, nick));
                self.end_session(view, pending, room, nick, false);
                self.drop_sources(view, pending, room, nick);
                self.remove_from_bridge(view, pending, room, nick);
                if rate_limited {
                    let limited =
                        jicofo_error(request, "resource-constraint", Some("rate-limited"), vec![]);
                    return (limited, false);
                }
                (result_for(request), restart)
            }
            "transport-info" => {
                if let Some(transport) = first_transport(jingle) {
                    self.update_bridge_endpoint(view, pending, room, nick, Some(transport));
                    (result_for(request), false)
                } else {
                    (failed("missing transport".to_owned()), false)
                }
            }
            "session-info" => {
                // jicofo `JitsiMeetConferenceImpl.iceFailed`: ICE failed on the current bridge
                // session is a re-invite (RestartJingle): the sources go (the others are told), the
                // session ends ("moving"), and the new allocation fails because the endpoint was
                // never removed from the Colibri2 session ("participant already exists"), so
                // nobody is invited and the bridge keeps the endpoint (recorded:
                // tests/fixtures/jicofo/session-info-ice-failed.xml). Another bridge session:
                // ignored.
                let failed = jingle
                    .get_child("ice-state", FOCUS)
                    .is_some_and(|state| state.text().trim().eq_ignore_ascii_case("failed"));
                let named = jingle
                    .get_child("bridge-session", FOCUS)
                    .and_then(|bridge_session| bridge_session.attr("id"));
                let current = view.rooms[room].endpoints[nick].bridge_session.as_deref();
                if failed && named.is_some() && named == current {
                    self.drop_sources(view, pending, room, nick);
                    self.end_session(view, pending, room, nick, true);
                }
                (result_for(request), false)
            }
            "transport-reject" => (result_for(request), false),
            _ => unreachable!("on_jingle leaves {action} unanswered, as jicofo does"),
        }
    }

    fn endpoint_mut<'v>(
        &self,
        view: &'v mut FocusView,
        room: &str,
        nick: &str,
    ) -> &'v mut EndpointView {
        view.rooms
            .get_mut(room)
            .and_then(|r| r.endpoints.get_mut(nick))
            .expect("a known endpoint")
    }

    /// Validates and stores `added` for `nick` (jicofo `tryToAdd`); nothing changes on failure.
    fn try_add(
        &self,
        view: &mut FocusView,
        room: &str,
        nick: &str,
        added: &SourceSet,
    ) -> Result<(), String> {
        let room_view = &view.rooms[room];
        let others: Vec<&SourceSet> = room_view
            .endpoints
            .iter()
            .filter(|(other, _)| other.as_str() != nick)
            .map(|(_, endpoint)| &endpoint.sources)
            .collect();
        let (resulting, _) = room_view.endpoints[nick].sources.try_add(added, &others)?;
        self.endpoint_mut(view, room, nick).sources = resulting;
        Ok(())
    }

    /// `<conference-modify meeting-id [name create]>` for `room`, to be completed with endpoints.
    fn conference_modify(
        &self,
        view: &FocusView,
        room: &str,
        create: bool,
    ) -> minidom::element::ElementBuilder {
        let room_view = &view.rooms[room];
        let mut request = el("conference-modify", COLIBRI2)
            .attr(attr("meeting-id"), room_view.meeting_id.as_str());
        if create {
            let name = match room.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((tenant, node)) if self.options.virtual_names => {
                    let (prefix, base) = MUC.split_once('.').expect("the MUC is a subdomain");
                    format!("{node}@{prefix}.{tenant}.{base}")
                }
                _ => room_view.jid.clone(),
            };
            request = request
                .attr(attr("name"), name)
                .attr(attr("create"), "true");
        }
        request
    }

    /// jicofo `updateParticipant`: the endpoint's complete sources (and transport, when given).
    fn update_bridge_endpoint(
        &self,
        view: &mut FocusView,
        pending: &mut Pending,
        room: &str,
        nick: &str,
        transport: Option<&Element>,
    ) {
        let endpoint = &view.rooms[room].endpoints[nick];
        if !endpoint.allocated {
            return;
        }
        let mut update = el("endpoint", COLIBRI2).attr(attr("id"), nick);
        if let Some(stats_id) = &endpoint.stats_id {
            update = update.attr(attr("stats-id"), stats_id.as_str());
        }
        if let Some(transport) = transport {
            update = update.append(el("transport", COLIBRI2).append(transport.clone()));
        }
        update = update.append(colibri_sources(nick, &endpoint.sources));
        let request = self
            .conference_modify(view, room, false)
            .append(update)
            .build();
        pending.extend(self.send_to_bridge(view, room, Some(nick), "update", request));
    }

    /// jicofo `ColibriV2SessionManager.removeParticipant`: expires the endpoint, or the whole
    /// conference when no other endpoint of the room is at the bridge.
    fn remove_from_bridge(
        &self,
        view: &mut FocusView,
        pending: &mut Pending,
        room: &str,
        nick: &str,
    ) {
        let room_view = &view.rooms[room];
        if !room_view.endpoints[nick].allocated {
            return;
        }
        let others_allocated = room_view
            .endpoints
            .iter()
            .any(|(other, endpoint)| other != nick && endpoint.allocated);
        let request = if others_allocated {
            self.conference_modify(view, room, false)
                .append(
                    el("endpoint", COLIBRI2)
                        .attr(attr("id"), nick)
                        .attr(attr("expire"), "true"),
                )
                .build()
        } else {
            self.conference_modify(view, room, false)
                .attr(attr("expire"), "true")
                .build()
        };
        self.endpoint_mut(view, room, nick).allocated = false;
        if !others_allocated {
            view.rooms.get_mut(room).unwrap().bridge_conference = false;
        }
        pending.extend(self.send_to_bridge(view, room, Some(nick), "expire", request));
    }

    /// jicofo `removeParticipantSources`: the endpoint's sources go, and the others are told.
    fn drop_sources(&self, view: &mut FocusView, pending: &mut Pending, room: &str, nick: &str) {
        self.endpoint_mut(view, room, nick).sources = SourceSet::default();
        self.propagate(view, pending, room, nick);
    }

    /// Ends the endpoint's session: unregisters its sid, optionally sending session-terminate
    /// (jicofo's "moving" on a re-invite).
    fn end_session(
        &self,
        view: &mut FocusView,
        pending: &mut Pending,
        room: &str,
        nick: &str,
        send_terminate: bool,
    ) {
        let endpoint = self.endpoint_mut(view, room, nick);
        let sid = endpoint.sid.take();
        endpoint.session = None;
        endpoint.signaled.clear();
        let Some(sid) = sid else { return };
        view.sessions.remove(&sid);
        if send_terminate {
            // No `initiator` (jicofo's JinglePacketFactory.createSessionTerminate; recorded:
            // tests/fixtures/jicofo/session-terminate-moving.xml).
            let terminate = el("jingle", JINGLE)
                .attr(attr("action"), "session-terminate")
                .attr(attr("sid"), sid.as_str())
                .append(
                    el("reason", JINGLE)
                        .append(el("success", JINGLE))
                        .append(el("text", JINGLE).append("moving")),
                )
                .build();
            let to = format!("{}/{nick}", view.rooms[room].jid);
            let request = iq("set", &to, &self.handle.next_id(), terminate);
            pending.push(self.send_tracked(view, room, Some(nick), "session-terminate", request));
        }
    }

    /// What `nick` should know: every other endpoint's sources (simulcast stripped) and the bridge's.
    fn desired_remote(&self, view: &FocusView, room: &str, nick: &str) -> SourcesByOwner {
        let room_view = &view.rooms[room];
        let mut desired = SourcesByOwner::new();
        for (other, endpoint) in &room_view.endpoints {
            if other != nick && !endpoint.sources.is_empty() {
                desired.insert(
                    other.clone(),
                    endpoint.sources.strip_simulcast().owned_by(other),
                );
            }
        }
        if !room_view.feedback.is_empty() {
            desired.insert(BRIDGE_OWNER.to_owned(), room_view.feedback.clone());
        }
        desired
    }

    /// jicofo `sendQueuedRemoteSources`: when `nick`'s session is active, sends it what changed
    /// since it was last told (source-remove first, then source-add).
    fn sync_remote(&self, view: &mut FocusView, pending: &mut Pending, room: &str, nick: &str) {
        let endpoint = &view.rooms[room].endpoints[nick];
        if endpoint.session != Some(SessionState::Active) {
            return;
        }
        let Some(sid) = endpoint.sid.clone() else {
            return;
        };
        let told = endpoint.signaled.clone();
        let desired = self.desired_remote(view, room, nick);
        let mut removed = SourcesByOwner::new();
        let mut added = SourcesByOwner::new();
        for owner in told.keys().chain(desired.keys()) {
            if owner == BRIDGE_OWNER {
                continue; // the bridge's own sources travel in the session-initiate only
            }
            let before = told.get(owner).cloned().unwrap_or_default();
            let after = desired.get(owner).cloned().unwrap_or_default();
            let gone = before.minus(&after);
            let new = after.minus(&before);
            if !gone.is_empty() {
                removed.insert(owner.clone(), gone);
            }
            if !new.is_empty() {
                added.insert(owner.clone(), new);
            }
        }
        let to = format!("{}/{nick}", view.rooms[room].jid);
        for (action, changed) in [("source-remove", removed), ("source-add", added)] {
            if changed.is_empty() {
                continue;
            }
            let jingle = el("jingle", JINGLE)
                .attr(attr("action"), action)
                .attr(attr("sid"), sid.as_str())
                .append_all(self.sources_payload(&changed))
                .build();
            let request = iq("set", &to, &self.handle.next_id(), jingle);
            pending.push(self.send_tracked(view, room, Some(nick), action, request));
        }
        let mut desired = desired;
        match told.get(BRIDGE_OWNER) {
            Some(bridge) => desired.insert(BRIDGE_OWNER.to_owned(), bridge.clone()),
            None => desired.remove(BRIDGE_OWNER),
        };
        self.endpoint_mut(view, room, nick).signaled = desired;
    }

    /// Brings every other participant of `room` up to date after `changed`'s sources changed.
    fn propagate(&self, view: &mut FocusView, pending: &mut Pending, room: &str, changed: &str) {
        let others: Vec<String> = view.rooms[room]
            .endpoints
            .keys()
            .filter(|other| other.as_str() != changed)
            .cloned()
            .collect();
        for other in others {
            self.sync_remote(view, pending, room, &other);
        }
    }

    /// Remote sources as this focus encodes them: one `<json-message>` or XML contents.
    fn sources_payload(&self, by_owner: &SourcesByOwner) -> Vec<Element> {
        if self.options.json_sources {
            vec![json_message(by_owner)]
        } else {
            contents_by_owner(by_owner)
        }
    }

    /// jicofo's ParticipantInviteRunnable: allocate at the bridge, then session-initiate.
    async fn invite(self: Arc<Self>, room: String, nick: String) {
        let allocation = match self.allocate(&room, &nick).await {
            Ok(allocation) => allocation,
            Err(AllocationFailed::TimedOut) => {
                self.bridge_session_lost(&room);
                return;
            }
            Err(AllocationFailed::Other) => return,
        };
        let started = self.recorder.update(|view| {
            let room_view = view.rooms.get_mut(&room)?;
            if let Some(sources) = allocation.get_child("sources", COLIBRI2) {
                room_view.feedback = feedback_sources(sources);
            }
            room_view.endpoints.get_mut(&nick)?.allocated = true;
            let transport = allocation
                .children()
                .filter(|c| c.is("endpoint", COLIBRI2) && c.attr("id") == Some(nick.as_str()))
                .find_map(|endpoint| endpoint.get_child("transport", COLIBRI2))
                .and_then(|transport| transport.get_child("transport", ICE))
                .cloned();
            let sid = random_hex(12);
            let offered = self.desired_remote(view, &room, &nick);
            let bridge_session = random_uuid();
            let initiate = self.session_initiate(&sid, &bridge_session, transport, &offered);
            let endpoint = self.endpoint_mut(view, &room, &nick);
            endpoint.bridge_session = Some(bridge_session);
            endpoint.sid = Some(sid.clone());
            endpoint.session = Some(SessionState::Pending);
            endpoint.signaled = offered;
            view.sessions
                .insert(sid.clone(), (room.clone(), nick.clone()));
            let to = format!("{}/{nick}", view.rooms[&room].jid);
            let request = iq("set", &to, &self.handle.next_id(), initiate);
            Some((
                sid,
                self.send_tracked(view, &room, Some(&nick), "session-initiate", request),
            ))
        });
        let Some((sid, (index, pending))) = started else {
            return;
        };
        // jicofo JingleSession.initiateSession: a timeout counts as success.
        let answer = self.await_recorded(index, pending).await;
        if answer.is_some_and(|answer| answer.attr("type") == Some("error")) {
            self.recorder.update(|view| {
                if let Some(endpoint) = view
                    .rooms
                    .get_mut(&room)
                    .and_then(|r| r.endpoints.get_mut(&nick))
                    .filter(|endpoint| endpoint.sid.as_deref() == Some(sid.as_str()))
                {
                    endpoint.session = Some(SessionState::Ended);
                }
            });
        }
    }

    /// The Colibri2 allocation; retried once with `create='true'` when the bridge no longer knows
    /// the conference. Returns the `conference-modified`. As jicofo (`ColibriV2SessionManager.doAllocate`)
    /// the endpoint counts as at the bridge from the moment the request is sent; an answer that
    /// comes after the participant left (or after the bridge session was dropped) is ignored
    /// (`Other`), as is the endpoint on an error answer (jicofo `remove(participantInfo)`, nothing
    /// sent); no answer within the limit is `TimedOut` (jicofo `ColibriAllocationFailedException`
    /// "Timeout", `removeBridge`: see [`Focus::bridge_session_lost`]).
    async fn allocate(&self, room: &str, nick: &str) -> Result<Element, AllocationFailed> {
        for attempt in 0..2 {
            let token = super::unique();
            let sent = self.recorder.update(|view| {
                let room_view = view.rooms.get_mut(room)?;
                let endpoint = room_view.endpoints.get_mut(nick)?;
                if attempt == 0 {
                    endpoint.invites += 1;
                }
                let create = !room_view.bridge_conference;
                let endpoint = self.allocation_endpoint(&view.rooms[room].endpoints[nick]);
                let request = self
                    .conference_modify(view, room, create)
                    .append(endpoint)
                    .build();
                let sent = self.send_to_bridge(view, room, Some(nick), "allocate", request)?;
                view.rooms.get_mut(room).unwrap().bridge_conference = true;
                let endpoint = self.endpoint_mut(view, room, nick);
                endpoint.allocated = true;
                endpoint.allocation = Some(token);
                Some(sent)
            });
            let (index, pending) = sent.ok_or(AllocationFailed::Other)?;
            let answer = self.await_recorded(index, pending).await;
            let conference_gone = self.recorder.update(|view| {
                let room_view = view.rooms.get_mut(room)?;
                let endpoint = room_view
                    .endpoints
                    .get_mut(nick)
                    .filter(|endpoint| endpoint.allocation == Some(token))?;
                let answer = answer.as_ref()?;
                if answer.attr("type") == Some("result") {
                    return Some(false);
                }
                endpoint.allocated = false;
                endpoint.allocation = None;
                let conference_gone = error_condition(answer).as_deref() == Some("item-not-found")
                    && answer
                        .get_child("error", CLIENT)
                        .and_then(|error| error.get_child("error", COLIBRI2))
                        .is_some_and(|reason| {
                            reason.attr("reason") == Some("conference_not_found")
                        });
                if conference_gone {
                    room_view.bridge_conference = false;
                }
                Some(conference_gone)
            });
            match (conference_gone, answer) {
                // No longer this participant's allocation: the leave (or a dropped session) did
                // the rest.
                (None, Some(_)) => return Err(AllocationFailed::Other),
                (None, None) if !self.is_current(room, nick, token) => {
                    return Err(AllocationFailed::Other);
                }
                (None, None) => return Err(AllocationFailed::TimedOut),
                (Some(false), Some(answer)) => {
                    return answer
                        .get_child("conference-modified", COLIBRI2)
                        .cloned()
                        .ok_or(AllocationFailed::Other);
                }
                (Some(true), _) => continue,
                (Some(false), None) => return Err(AllocationFailed::Other),
            }
        }
        Err(AllocationFailed::Other)
    }

    /// Whether `token` is still the allocation of `room`'s `nick`.
    fn is_current(&self, room: &str, nick: &str, token: u64) -> bool {
        self.recorder.read(|view| {
            view.rooms
                .get(room)
                .and_then(|room_view| room_view.endpoints.get(nick))
                .is_some_and(|endpoint| endpoint.allocation == Some(token))
        })
    }

    /// The bridge did not answer an allocation in time: as jicofo (`doAllocate` on a timeout marks
    /// the bridge non-operational and `removeSession` expires the room's whole Colibri2 session,
    /// then `bridgeRemoved` re-invites its participants with RestartJingle: sources removed,
    /// session-terminate "moving", a fresh invite), the conference is expired at the bridge and
    /// everyone in the room is invited again. One bridge here, so the same bridge (jicofo would pick
    /// another; with none left its invites fail until the bridge is operational again). Allocations
    /// still in flight for the room are no longer current, so their own timeouts change nothing.
    fn bridge_session_lost(self: &Arc<Self>, room: &str) {
        let (pending, nicks) = self.recorder.update(|view| {
            let mut pending = Vec::new();
            let Some(room_view) = view.rooms.get(room) else {
                return (pending, Vec::new());
            };
            let nicks: Vec<String> = room_view.endpoints.keys().cloned().collect();
            if room_view.bridge_conference {
                let request = self
                    .conference_modify(view, room, false)
                    .attr(attr("expire"), "true")
                    .build();
                pending.extend(self.send_to_bridge(view, room, None, "expire", request));
            }
            let room_view = view.rooms.get_mut(room).unwrap();
            room_view.bridge_conference = false;
            for endpoint in room_view.endpoints.values_mut() {
                endpoint.allocated = false;
                endpoint.allocation = None;
            }
            for nick in &nicks {
                self.drop_sources(view, &mut pending, room, nick);
                self.end_session(view, &mut pending, room, nick, true);
            }
            (pending, nicks)
        });
        self.record_later(pending);
        for nick in nicks {
            tokio::spawn(Arc::clone(self).invite(room.to_owned(), nick));
        }
    }

    /// jicofo `Colibri2Session.sendAllocationRequest`'s endpoint.
    fn allocation_endpoint(&self, endpoint: &EndpointView) -> Element {
        let media = |media: Media| {
            let description = rtp_description(media, vec![]);
            el("media", COLIBRI2)
                .attr(attr("type"), media.as_str())
                .append_all(
                    description
                        .children()
                        .filter(|c| c.name() == "payload-type" || c.name() == "rtp-hdrext")
                        .cloned(),
                )
        };
        let mut allocation = el("endpoint", COLIBRI2)
            .attr(attr("id"), endpoint.nick.as_str())
            .attr(attr("create"), "true");
        if let Some(stats_id) = &endpoint.stats_id {
            allocation = allocation.attr(attr("stats-id"), stats_id.as_str());
        }
        allocation = allocation
            .append(el("capability", COLIBRI2).attr(attr("name"), "source-names"))
            .append(colibri_sources(&endpoint.nick, &endpoint.sources))
            .append(media(Media::Audio))
            .append(media(Media::Video))
            .append(el("transport", COLIBRI2).attr(attr("ice-controlling"), "true"));
        if endpoint.force_mute_audio || endpoint.force_mute_video {
            allocation = allocation.append(force_mute_element(
                endpoint.force_mute_audio,
                endpoint.force_mute_video,
            ));
        }
        allocation.build()
    }

    /// The `<jingle action='session-initiate'>` offer: audio and video over the bridge's transport,
    /// BUNDLE, `<bridge-session>`, and the remote sources.
    fn session_initiate(
        &self,
        sid: &str,
        bridge_session: &str,
        transport: Option<Element>,
        offered: &SourcesByOwner,
    ) -> Element {
        let transport = transport.unwrap_or_else(|| {
            ice_transport(&random_hex(8), &random_hex(24), "actpass", Some(10000))
        });
        let mut contents: Vec<Element> = [Media::Audio, Media::Video]
            .into_iter()
            .map(|media| {
                el("content", JINGLE)
                    .attr(attr("creator"), "initiator")
                    .attr(attr("name"), media.as_str())
                    .attr(attr("senders"), "both")
                    .append(rtp_description(media, vec![]))
                    .append(transport.clone())
                    .build()
            })
            .collect();
        let mut jingle = el("jingle", JINGLE)
            .attr(attr("action"), "session-initiate")
            .attr(attr("initiator"), self.handle.jid.as_str())
            .attr(attr("sid"), sid);
        if self.options.json_sources {
            jingle = jingle.append_all(contents).append(json_message(offered));
        } else {
            add_sources_to_contents(&mut contents, offered);
            jingle = jingle.append_all(contents);
        }
        jingle
            .append(bundle_group(&["audio", "video"]))
            // No `region`: jicofo names the bridge's region only when the bridge has one
            // (recorded: tests/fixtures/jicofo/session-initiate.xml).
            .append(el("bridge-session", FOCUS).attr(attr("id"), bridge_session))
            // jicofo's OpenTelemetry context, all zeros without a tracer (recorded
            // tests/fixtures/jicofo/session-initiate.xml); a current lib-jitsi-meet echoes it in its
            // session-accept (JingleSessionPC `_sendSessionAccept`).
            .append(
                el("traceparent", OPENTELEMETRY)
                    .attr(attr("trace_id"), "0".repeat(32))
                    .attr(attr("parent_id"), "0".repeat(16))
                    .attr(attr("trace_flags"), "00"),
            )
            .build()
    }
}

async fn await_recorded(
    recorder: &Recorder<FocusView>,
    index: usize,
    pending: PendingAnswer,
    limit: Duration,
) -> Option<Element> {
    let answer = pending.wait(limit).await;
    recorder.update(|view| {
        view.sent[index].answer = answer.clone();
        view.sent[index].done = true;
    });
    answer
}

/// jicofo's answer on a session it ended: Smack's `setConditionText` puts "session ended" inside
/// An error answer as jicofo's Smack puts it on the wire: the condition in the stanzas namespace,
/// the `<text>` in none of its own (so in `jabber:client`; recorded:
/// tests/fixtures/jicofo/source-add-ssrc-of-other.xml, session-terminate-restart-again.xml).
fn jicofo_error(
    request: &Element,
    condition: &str,
    text: Option<&str>,
    application: Vec<Element>,
) -> Element {
    let mut answer = error_for(request, condition, None, application);
    if let (Some(text), Some(error)) = (text, answer.get_child_mut("error", CLIENT)) {
        error.append_child(el("text", CLIENT).append(text).build());
    }
    answer
}

/// The Jingle actions jicofo's `JingleSession.doProcessIq` handles.
const HANDLED_ACTIONS: &[&str] = &[
    "session-accept",
    "session-info",
    "session-terminate",
    "transport-accept",
    "transport-info",
    "transport-reject",
    "addsource",
    "source-add",
    "removesource",
    "source-remove",
];

/// The other actions jitsi-xmpp-extensions' `JingleAction` knows.
const OTHER_ACTIONS: &[&str] = &[
    "content-accept",
    "content-add",
    "content-modify",
    "content-reject",
    "content-remove",
    "description-info",
    "security-info",
    "session-initiate",
    "transport-replace",
];

/// Whether jicofo leaves a request on a known session unanswered: one without an action it can
/// read, or (while the session lasts) with one it does not handle. It builds "Missing 'action'" or
/// "Unsupported 'action'" as a condition text on `bad-request` / `feature-not-implemented`, which
/// Smack's `StanzaError` refuses (texts there are for `gone` and `redirect` only); the exception ends
/// the handling and nothing is sent (recorded: tests/fixtures/jicofo/jingle-content-add.xml,
/// jingle-without-action.xml).
fn never_answered(view: &FocusView, room: &str, nick: &str, action: &str) -> bool {
    if HANDLED_ACTIONS.contains(&action) {
        return false;
    }
    let ended = view.rooms[room].endpoints[nick].session == Some(SessionState::Ended);
    !(OTHER_ACTIONS.contains(&action) && ended)
}

/// Whether a restart request is honoured now (jicofo `Participant.acceptRestartRequest`, with
/// `restart-request-rate-limits`' defaults: 5 s apart, at most 5 a minute); records it when it is.
fn accept_restart(endpoint: &mut EndpointView) -> bool {
    let now = std::time::Instant::now();
    endpoint
        .restarts
        .retain(|at| now.duration_since(*at) < Duration::from_secs(60));
    let too_soon = endpoint
        .restarts
        .last()
        .is_some_and(|last| now.duration_since(*last) < Duration::from_secs(5));
    if too_soon || endpoint.restarts.len() >= 5 {
        return false;
    }
    endpoint.restarts.push(now);
    true
}

/// `<gone>` (where XMPP carries a redirect URI), with no `<text>` (recorded:
/// tests/fixtures/jicofo/session-terminate-after-wrong-bridge-session.xml).
fn gone_session_ended(request: &Element) -> Element {
    let mut answer = jicofo_error(request, "gone", None, vec![]);
    if let Some(gone) = answer
        .get_child_mut("error", CLIENT)
        .and_then(|error| error.get_child_mut("gone", STANZAS))
    {
        gone.append_text_node("session ended");
    }
    answer
}

/// `<force-mute [audio='true'] [video='true']/>`: attributes are left out when false.
fn force_mute_element(audio: bool, video: bool) -> Element {
    let mut force_mute = el("force-mute", COLIBRI2);
    if audio {
        force_mute = force_mute.attr(attr("audio"), "true");
    }
    if video {
        force_mute = force_mute.attr(attr("video"), "true");
    }
    force_mute.build()
}

/// jicofo `EndpointSourceSet.toColibriMediaSources`: one `<media-source>` per source name (nameless
/// sources become `<nick>-a0` / `<nick>-v0`), msid left out, groups with their first source's name.
fn colibri_sources(nick: &str, sources: &SourceSet) -> Element {
    let mut media_sources: Vec<(String, Media, Vec<Element>)> = Vec::new();
    let mut add = |id: String, media: Media, element: Element| match media_sources
        .iter_mut()
        .find(|(known, _, _)| *known == id)
    {
        Some((_, _, children)) => children.push(element),
        None => media_sources.push((id, media, vec![element])),
    };
    let default_name = |media: Media| format!("{nick}-{}0", &media.as_str()[..1]);
    for source in &sources.sources {
        let id = source
            .name
            .clone()
            .unwrap_or_else(|| default_name(source.media));
        let mut element = el("source", SSMA).attr(attr("ssrc"), source.ssrc.to_string());
        if let Some(name) = &source.name {
            element = element.attr(attr("name"), name.as_str());
        }
        if let Some(video_type) = &source.video_type {
            element = element.attr(attr("videoType"), video_type.as_str());
        }
        add(id, source.media, element.build());
    }
    for group in &sources.groups {
        let Some(first) = group.ssrcs.iter().find_map(|ssrc| sources.source(*ssrc)) else {
            continue;
        };
        let id = first
            .name
            .clone()
            .unwrap_or_else(|| default_name(group.media));
        add(id, group.media, group.to_element());
    }
    el("sources", COLIBRI2)
        .append_all(media_sources.into_iter().map(|(id, media, children)| {
            el("media-source", COLIBRI2)
                .attr(attr("type"), media.as_str())
                .attr(attr("id"), id)
                .append_all(children)
        }))
        .build()
}

/// The bridge's feedback sources from an allocation answer's `<sources>` (owner "jvb").
fn feedback_sources(sources: &Element) -> SourceSet {
    let mut set = SourceSet::default();
    for media_source in sources
        .children()
        .filter(|c| c.is("media-source", COLIBRI2))
    {
        let Some(media) = media_source.attr("type").and_then(Media::parse) else {
            continue;
        };
        for source in media_source.children().filter(|c| c.is("source", SSMA)) {
            if let Ok(source) = super::jingle::Source::from_element(media, source) {
                set.sources.push(source.owned_by(BRIDGE_OWNER));
            }
        }
    }
    set
}
