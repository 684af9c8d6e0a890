//! `BridgePeer`: a stand-in for jitsi-videobridge as jicofo (and mod_podium) meet it over XMPP.
//!
//! It joins the brewery MUC as `jvb-1` and answers Colibri2 `conference-modify` (type get or set) the
//! way JVB does. Facts it follows (jitsi-videobridge `Videobridge.java`,
//! `colibri2/Colibri2ConferenceHandler.kt`, `colibri2/Colibri2Util.kt`; jicoco `MucClient.java`):
//! * any IQ whose `from` bare JID is not the brewery MUC gets `forbidden` (MucClient "Received an IQ
//!   from a non-MUC member"), so only requests routed through the brewery room reach the handler;
//! * the conference is found by `meeting-id`; `create='true'` creates it (`conflict` "Conference
//!   already exists for ID: …" when it exists); without it an unknown id gets `item-not-found`
//!   "Conference not found for ID: …" with `<error xmlns='jitsi:colibri2' reason='conference_not_found'/>`;
//! * more than one `<endpoint>` only when none has create/media/transport/sources
//!   (`feature-not-implemented`); then unknown endpoints are skipped, otherwise an unknown endpoint is
//!   `item-not-found` "Endpoint not found for ID: …";
//! * creating an endpoint needs a `<transport>` and the `source-names` capability (`bad-request`);
//! * `<sources>` replaces the endpoint's audio and video sources; `<force-mute audio video/>` sets both
//!   flags, a missing attribute meaning false; a new endpoint starts unmuted;
//! * the answer is `<conference-modified>` (no attributes: jitsi-xmpp-extensions
//!   `ConferenceModifiedIQ.Builder.createResponse`) with the created endpoints' transports and, on any
//!   create, the bridge's own feedback sources `jvb-a0`/`jvb-v0`;
//! * a create whose `name` is not a bare JID is `bad-request` "Invalid conference name (not a JID)"
//!   (`Videobridge.getOrCreateConference`, `JidCreate.entityBareFrom`);
//! * a `conference-modify` without `meeting-id` gets no answer at all: Smack's provider throws
//!   `RequiredAttributeMissingException` and the default parsing callback only logs it;
//! * a conference expires on `expire='true'` or when a request that does not create leaves it without
//!   endpoints.
//!
//! Simplified: no media, no relays (Octo), no ICE; transports are made-up credentials and a loopback
//! candidate nobody listens on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minidom::Element;

use super::c2s::{C2s, C2sHandle, CLIENT, attr, el};
use super::jingle::{COLIBRI2, SSMA, ice_transport};
use super::peer::{
    AbortOnDrop, Recorder, bare, error_for, is_request, payload, random_hex, result_with,
};
use super::prosody::BREWERY;

/// The bridge's account.
pub const BRIDGE_ACCOUNT: &str = "jvb";
/// Its nick in the brewery, as JVB's default `muc_nickname` looks.
pub const BRIDGE_NICK: &str = "jvb-1";
/// The namespace of the stats JVB publishes in its brewery presence.
pub const COLIBRI_STATS: &str = "http://jitsi.org/protocol/colibri";
const MUC_NS: &str = "http://jabber.org/protocol/muc";
const MUC_USER: &str = "http://jabber.org/protocol/muc#user";

/// One endpoint as the bridge holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointView {
    pub audio_ssrcs: BTreeSet<u32>,
    pub video_ssrcs: BTreeSet<u32>,
    /// The `<media-source id>`s last signalled (source names).
    pub media_source_ids: BTreeSet<String>,
    pub force_mute_audio: bool,
    pub force_mute_video: bool,
    pub stats_id: Option<String>,
}

/// One conference at the bridge.
#[derive(Clone, Debug)]
pub struct ConferenceView {
    pub meeting_id: String,
    /// The room JID jicofo gave on create.
    pub name: Option<String>,
    pub endpoints: BTreeMap<String, EndpointView>,
    /// The bridge's own feedback sources.
    pub audio_ssrc: u32,
    pub video_ssrc: u32,
}

impl ConferenceView {
    /// Whether this conference is `meeting_or_room`: its meeting id, its room JID or the room's name.
    pub fn is(&self, meeting_or_room: &str) -> bool {
        self.meeting_id == meeting_or_room
            || self.name.as_deref().is_some_and(|name| {
                name == meeting_or_room || name.split('@').next() == Some(meeting_or_room)
            })
    }
}

/// How the bridge answered one IQ.
#[derive(Clone, Debug)]
pub struct ColibriRequest {
    pub from: String,
    pub iq: Element,
    /// Refused by the brewery check (`forbidden`) before reaching the Colibri2 handler.
    pub refused: bool,
    /// Answered `result`.
    pub accepted: bool,
    /// The answer; `None` where JVB sends none (a `conference-modify` without `meeting-id`).
    pub answer: Option<Element>,
}

/// Everything the bridge has seen and holds.
#[derive(Clone, Debug, Default)]
pub struct BridgeView {
    pub joined: bool,
    pub conferences: BTreeMap<String, ConferenceView>,
    /// Meeting ids of conferences that expired, in order.
    pub expired: Vec<String>,
    /// Every IQ request received, in order.
    pub requests: Vec<ColibriRequest>,
    /// How many more requests carrying a `<force-mute>` to refuse (`internal-server-error`, as JVB
    /// answers a request its handler failed on), as a test configured it.
    pub refuse_force_mutes: u32,
    /// Answers kept back, in order, while a test holds them (a slow bridge): `None` sends at once.
    pub held_answers: Option<Vec<Element>>,
}

impl BridgeView {
    /// The conference by meeting id, room JID or room name.
    pub fn conference(&self, meeting_or_room: &str) -> Option<&ConferenceView> {
        self.conferences
            .values()
            .find(|conference| conference.is(meeting_or_room))
    }

    /// The endpoint `nick` of that conference.
    pub fn endpoint(&self, meeting_or_room: &str, nick: &str) -> Option<&EndpointView> {
        self.conference(meeting_or_room)?.endpoints.get(nick)
    }

    /// The requests refused with `forbidden` by the brewery check.
    pub fn refusals(&self) -> Vec<&ColibriRequest> {
        self.requests
            .iter()
            .filter(|request| request.refused)
            .collect()
    }
}

/// The bridge: a c2s client in the brewery answering Colibri2 like JVB.
pub struct BridgePeer {
    /// The bridge's real (full) JID.
    pub jid: String,
    /// Its occupant JID in the brewery, where jicofo sends Colibri2.
    pub occupant_jid: String,
    handle: C2sHandle,
    recorder: Arc<Recorder<BridgeView>>,
    _task: AbortOnDrop,
}

impl BridgePeer {
    /// Connects as `jvb@localhost` and joins the brewery as `jvb-1` (the account must exist).
    pub async fn connect(port: u16) -> BridgePeer {
        let c2s = C2s::connect(port, BRIDGE_ACCOUNT, "jvb").await;
        let (handle, mut inbox) = c2s.split();
        let recorder = Arc::new(Recorder::new(BridgeView::default()));
        let occupant_jid = format!("{BREWERY}/{BRIDGE_NICK}");
        let task = {
            let (handle, recorder) = (handle.clone(), Arc::clone(&recorder));
            tokio::spawn(async move {
                while let Some(stanza) = inbox.recv().await {
                    on_stanza(&handle, &recorder, &stanza);
                }
            })
        };
        handle.send(
            el("presence", CLIENT)
                .attr(attr("to"), occupant_jid.as_str())
                .append(el("x", MUC_NS))
                .append(
                    el("stats", COLIBRI_STATS)
                        .append(stat("stress_level", "0.0"))
                        .append(stat("version", "podium-test-bridge")),
                )
                .build(),
        );
        recorder
            .wait_until("the bridge joins the brewery", |view| view.joined)
            .await;
        BridgePeer {
            jid: handle.jid.clone(),
            occupant_jid,
            handle,
            recorder,
            _task: AbortOnDrop(task),
        }
    }

    /// A copy of everything the bridge holds and has seen.
    pub fn view(&self) -> BridgeView {
        self.recorder.snapshot()
    }

    /// The endpoint `nick` in the conference `meeting_or_room` (meeting id, room JID or room name).
    pub fn endpoint(&self, meeting_or_room: &str, nick: &str) -> Option<EndpointView> {
        self.recorder
            .read(|view| view.endpoint(meeting_or_room, nick).cloned())
    }

    /// The live conferences by meeting id.
    pub fn conferences(&self) -> BTreeMap<String, ConferenceView> {
        self.recorder.read(|view| view.conferences.clone())
    }

    /// Every IQ request received, in order, with the answer given.
    pub fn requests(&self) -> Vec<ColibriRequest> {
        self.recorder.read(|view| view.requests.clone())
    }

    /// Refuses the next `count` requests that carry a `<force-mute>`.
    pub fn refuse_force_mutes(&self, count: u32) {
        self.recorder.update(|view| view.refuse_force_mutes = count);
    }

    /// From now on handles requests as ever but keeps the answers back (a bridge slow to answer),
    /// until [`BridgePeer::release_answers`].
    pub fn hold_answers(&self) {
        self.recorder
            .update(|view| view.held_answers.get_or_insert_with(Vec::new).clear());
    }

    /// Sends the answers held back, in order, and answers at once again.
    pub fn release_answers(&self) {
        let held = self.recorder.update(|view| view.held_answers.take());
        for answer in held.unwrap_or_default() {
            self.handle.send(answer);
        }
    }

    /// The requests refused by the brewery check.
    pub fn refusals(&self) -> Vec<ColibriRequest> {
        self.recorder
            .read(|view| view.refusals().into_iter().cloned().collect())
    }

    /// Waits until `condition` holds on the bridge's view; panics after 10 s with the view.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&BridgeView) -> bool) {
        self.recorder.wait_until(what, condition).await;
    }

    /// The connection, e.g. to send something raw as the bridge.
    pub fn handle(&self) -> &C2sHandle {
        &self.handle
    }
}

fn stat(name: &str, value: &str) -> Element {
    el("stat", COLIBRI_STATS)
        .attr(attr("name"), name)
        .attr(attr("value"), value)
        .build()
}

fn on_stanza(handle: &C2sHandle, recorder: &Recorder<BridgeView>, stanza: &Element) {
    if stanza.name() == "presence" {
        let from = stanza.attr("from").unwrap_or("");
        let is_self = bare(from) == BREWERY
            && stanza.get_child("x", MUC_USER).is_some_and(|x| {
                x.children()
                    .any(|c| c.name() == "status" && c.attr("code") == Some("110"))
            });
        if is_self && stanza.attr("type") != Some("unavailable") {
            recorder.update(|view| view.joined = true);
        }
        return;
    }
    if !is_request(stanza) {
        return;
    }
    let answer = recorder.update(|view| {
        let (answer, refused) = answer_request(view, stanza);
        view.requests.push(ColibriRequest {
            from: stanza.attr("from").unwrap_or("").to_owned(),
            iq: stanza.clone(),
            refused,
            accepted: answer
                .as_ref()
                .is_some_and(|answer| answer.attr("type") == Some("result")),
            answer: answer.clone(),
        });
        match (&mut view.held_answers, answer) {
            (Some(held), Some(answer)) => {
                held.push(answer);
                None
            }
            (_, answer) => answer,
        }
    });
    if let Some(answer) = answer {
        handle.send(answer);
    }
}

/// The answer to one IQ request (`None`: JVB sends none), and whether the brewery check refused it.
fn answer_request(view: &mut BridgeView, iq: &Element) -> (Option<Element>, bool) {
    // jicoco MucClient.handleIq: only IQs from the brewery MUC reach JVB.
    let from = iq.attr("from").unwrap_or("");
    if !bare(from).eq_ignore_ascii_case(BREWERY) {
        return (Some(error_for(iq, "forbidden", None, vec![])), true);
    }
    let Some(request) = payload(iq).filter(|p| p.is("conference-modify", COLIBRI2)) else {
        return (
            Some(error_for(iq, "service-unavailable", None, vec![])),
            false,
        );
    };
    if request.attr("meeting-id").is_none_or(str::is_empty) {
        return (None, false);
    }
    let force_mute = request
        .children()
        .any(|endpoint| endpoint.get_child("force-mute", COLIBRI2).is_some());
    if force_mute && view.refuse_force_mutes > 0 {
        view.refuse_force_mutes -= 1;
        return (
            Some(error_for(
                iq,
                "internal-server-error",
                Some("refused by the test"),
                vec![],
            )),
            false,
        );
    }
    let answer = match conference_modify(view, request) {
        Ok(modified) => result_with(iq, Some(modified)),
        Err(failure) => error_for(
            iq,
            failure.condition,
            Some(&failure.text),
            failure.application,
        ),
    };
    (Some(answer), false)
}

/// A Colibri2 failure: stanza condition, text and the colibri2 `<error reason>` (and more).
struct Failure {
    condition: &'static str,
    text: String,
    application: Vec<Element>,
}

fn failure(condition: &'static str, text: String, reason: Option<&str>) -> Failure {
    let application = reason
        .map(|reason| vec![el("error", COLIBRI2).attr(attr("reason"), reason).build()])
        .unwrap_or_default();
    Failure {
        condition,
        text,
        application,
    }
}

fn has_update(endpoint: &Element) -> bool {
    endpoint.attr("create") == Some("true")
        || endpoint.has_child("media", COLIBRI2)
        || endpoint.has_child("transport", COLIBRI2)
        || endpoint.has_child("sources", COLIBRI2)
}

/// Handles one `conference-modify` like JVB: returns the `conference-modified` or the failure.
fn conference_modify(view: &mut BridgeView, request: &Element) -> Result<Element, Failure> {
    let meeting_id = request.attr("meeting-id").unwrap_or("").to_owned();
    let create = request.attr("create") == Some("true");
    let exists = view.conferences.contains_key(&meeting_id);
    if create && exists {
        return Err(failure(
            "conflict",
            format!("Conference already exists for ID: {meeting_id}"),
            Some("conference_already_exists"),
        ));
    }
    if !create && !exists {
        return Err(failure(
            "item-not-found",
            format!("Conference not found for ID: {meeting_id}"),
            Some("conference_not_found"),
        ));
    }
    if create && request.attr("name").is_some_and(|name| !is_bare_jid(name)) {
        return Err(failure(
            "bad-request",
            "Invalid conference name (not a JID)".to_owned(),
            None,
        ));
    }
    if create {
        let [audio_ssrc, video_ssrc] = [random_ssrc(), random_ssrc()];
        view.conferences.insert(
            meeting_id.clone(),
            ConferenceView {
                meeting_id: meeting_id.clone(),
                name: request.attr("name").map(str::to_owned),
                endpoints: BTreeMap::new(),
                audio_ssrc,
                video_ssrc,
            },
        );
    }
    let endpoints: Vec<&Element> = request
        .children()
        .filter(|child| child.is("endpoint", COLIBRI2))
        .collect();
    if endpoints.len() > 1 && endpoints.iter().any(|endpoint| has_update(endpoint)) {
        return Err(failure(
            "feature-not-implemented",
            "Creating or updating media, sources or transport for more than one endpoint in a request."
                .to_owned(),
            Some("feature_not_implemented"),
        ));
    }
    let ignore_unknown = !endpoints.iter().any(|endpoint| has_update(endpoint));
    let conference = view.conferences.get_mut(&meeting_id).unwrap();
    let mut answered = Vec::new();
    for endpoint in &endpoints {
        answered.push(modify_endpoint(conference, endpoint, ignore_unknown)?);
    }
    let mut modified = el("conference-modified", COLIBRI2).append_all(answered);
    if create
        || endpoints
            .iter()
            .any(|endpoint| endpoint.attr("create") == Some("true"))
    {
        modified = modified.append(feedback_sources(conference));
    }
    let expire =
        request.attr("expire") == Some("true") || (!create && conference.endpoints.is_empty());
    if expire {
        view.conferences.remove(&meeting_id);
        view.expired.push(meeting_id);
    }
    Ok(modified.build())
}

/// One `<endpoint>` of a request; returns the endpoint element for the answer.
fn modify_endpoint(
    conference: &mut ConferenceView,
    request: &Element,
    ignore_unknown: bool,
) -> Result<Element, Failure> {
    let id = request.attr("id").unwrap_or("").to_owned();
    let answer = el("endpoint", COLIBRI2).attr(attr("id"), id.as_str());
    if request.attr("expire") == Some("true") {
        conference.endpoints.remove(&id);
        return Ok(answer.attr(attr("expire"), "true").build());
    }
    let create = request.attr("create") == Some("true");
    if create {
        if conference.endpoints.contains_key(&id) {
            return Err(failure(
                "conflict",
                format!("Endpoint with ID {id} already exists"),
                None,
            ));
        }
        if !request.has_child("transport", COLIBRI2) {
            return Err(failure(
                "bad-request",
                format!("Attempt to create endpoint {id} with no <transport>"),
                None,
            ));
        }
        let source_names = request
            .children()
            .any(|c| c.is("capability", COLIBRI2) && c.attr("name") == Some("source-names"));
        if !source_names {
            return Err(failure(
                "bad-request",
                "Source name support is mandatory.".to_owned(),
                None,
            ));
        }
        conference.endpoints.insert(
            id.clone(),
            EndpointView {
                stats_id: request.attr("stats-id").map(str::to_owned),
                ..EndpointView::default()
            },
        );
    }
    let Some(endpoint) = conference.endpoints.get_mut(&id) else {
        if ignore_unknown {
            return Ok(answer.build());
        }
        let mut unknown = failure(
            "item-not-found",
            format!("Endpoint not found for ID: {id}"),
            Some("unknown_endpoint"),
        );
        unknown.application.push(
            el("endpoint", COLIBRI2)
                .attr(attr("id"), id.as_str())
                .build(),
        );
        return Err(unknown);
    };
    if let Some(sources) = request.get_child("sources", COLIBRI2) {
        endpoint.audio_ssrcs.clear();
        endpoint.video_ssrcs.clear();
        endpoint.media_source_ids.clear();
        for media_source in sources
            .children()
            .filter(|c| c.is("media-source", COLIBRI2))
        {
            if let Some(source_id) = media_source.attr("id") {
                endpoint.media_source_ids.insert(source_id.to_owned());
            }
            let ssrcs = media_source
                .children()
                .filter(|c| c.is("source", SSMA))
                .filter_map(|c| c.attr("ssrc").and_then(|ssrc| ssrc.parse::<u32>().ok()));
            match media_source.attr("type") {
                Some("audio") => endpoint.audio_ssrcs.extend(ssrcs),
                Some("video") => endpoint.video_ssrcs.extend(ssrcs),
                _ => {}
            }
        }
    }
    if let Some(force_mute) = request.get_child("force-mute", COLIBRI2) {
        endpoint.force_mute_audio = force_mute.attr("audio") == Some("true");
        endpoint.force_mute_video = force_mute.attr("video") == Some("true");
    }
    let mut answer = answer;
    if create {
        answer = answer.append(el("transport", COLIBRI2).append(ice_transport(
            &random_hex(8),
            &random_hex(24),
            "actpass",
            Some(10000),
        )));
    }
    Ok(answer.build())
}

/// `<sources>` with the bridge's own `jvb-a0` and `jvb-v0`.
fn feedback_sources(conference: &ConferenceView) -> Element {
    let media_source = |type_: &str, name: &str, ssrc: u32| {
        el("media-source", COLIBRI2)
            .attr(attr("type"), type_)
            .attr(attr("id"), name)
            .append(
                el("source", SSMA)
                    .attr(attr("ssrc"), ssrc.to_string())
                    .attr(attr("name"), name),
            )
    };
    el("sources", COLIBRI2)
        .append(media_source("audio", "jvb-a0", conference.audio_ssrc))
        .append(media_source("video", "jvb-v0", conference.video_ssrc))
        .build()
}

/// Whether `name` parses as a bare JID `node@domain` the way JVB's `JidCreate.entityBareFrom` needs:
/// one `@` with something on each side, no resource.
fn is_bare_jid(name: &str) -> bool {
    let mut parts = name.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(node), Some(domain), None) if !node.is_empty() && !domain.is_empty() && !domain.contains('/')
    )
}

fn random_ssrc() -> u32 {
    u32::from_str_radix(&random_hex(8), 16).unwrap().max(1)
}
