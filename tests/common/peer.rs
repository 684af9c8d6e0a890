//! What the Jitsi stand-ins (focus, bridge, participants) share: a recorded view that tests wait on,
//! IQ replies and errors as Smack and Strophe build them, random ids, and a task guard.
//!
//! Each peer's background task owns its connection's inbox and writes what it sees into a
//! [`Recorder`]; tests read the view or wait for a condition on it. Every change bumps a `watch`, so a
//! wait re-checks exactly when something happened, never on a timer.

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use minidom::Element;
use tokio::sync::watch;

use super::c2s::{CLIENT, attr, el};

/// RFC 6120 stanza error conditions and their `<text>`.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// How long a wait on a peer's view may take before the test fails with the view printed.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// A peer's view behind a lock, with a change counter that waiters watch.
pub struct Recorder<View> {
    view: Mutex<View>,
    changed: watch::Sender<u64>,
}

impl<View: Clone + Debug> Recorder<View> {
    /// A recorder starting from `view`.
    pub fn new(view: View) -> Recorder<View> {
        Recorder {
            view: Mutex::new(view),
            changed: watch::Sender::new(0),
        }
    }

    /// Changes the view and wakes every waiter.
    pub fn update<R>(&self, change: impl FnOnce(&mut View) -> R) -> R {
        let result = change(&mut self.view.lock().unwrap());
        self.changed.send_modify(|count| *count += 1);
        result
    }

    /// Reads the view without waking anyone.
    pub fn read<R>(&self, look: impl FnOnce(&View) -> R) -> R {
        look(&self.view.lock().unwrap())
    }

    /// A copy of the whole view.
    pub fn snapshot(&self) -> View {
        self.read(View::clone)
    }

    /// Waits until `condition` holds, re-checking after every change; panics after [`WAIT_LIMIT`]
    /// naming `what` and printing the view.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&View) -> bool) {
        let mut changes = self.changed.subscribe();
        let limit = super::patient(WAIT_LIMIT);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.read(&condition) {
                return;
            }
            let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                panic!(
                    "{what}: not reached within {limit:?}; view:\n{:#?}",
                    self.snapshot()
                );
            }
        }
    }

    /// Waits until `mismatch` finds nothing wrong (returns `None`), re-checking after every change;
    /// panics after `limit` with `what` and the last mismatch (not the whole view, which for a
    /// load of hundreds of participants is megabytes).
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mismatch: impl Fn(&View) -> Option<String>,
    ) {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Some(wrong) = self.read(&mismatch) else {
                return;
            };
            let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                panic!("{what}: not reached within {limit:?}: {wrong}");
            }
        }
    }
}

/// Aborts a peer's background task when the peer is dropped (which also closes its connection).
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A random lowercase hex string of `len` characters (Jingle sids, meeting ids, ICE credentials).
pub fn random_hex(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(super::unique());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(len);
    out
}

/// A random UUID-shaped string, as jicofo and mod_muc_meeting_id make meeting ids.
pub fn random_uuid() -> String {
    let hex = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The bare part of a JID.
pub fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// The resource of a JID (for an occupant JID: the nick), if any.
pub fn resource(jid: &str) -> Option<&str> {
    jid.split_once('/').map(|(_, resource)| resource)
}

/// Whether `stanza` is an IQ request (`get` or `set`).
pub fn is_request(stanza: &Element) -> bool {
    stanza.name() == "iq" && matches!(stanza.attr("type"), Some("get" | "set"))
}

/// The first child of an IQ: its payload.
pub fn payload(iq: &Element) -> Option<&Element> {
    iq.children().next()
}

/// An empty `result` answering `request`.
pub fn result_for(request: &Element) -> Element {
    result_with(request, None)
}

/// A `result` answering `request`, carrying `child` when given.
pub fn result_with(request: &Element, child: Option<Element>) -> Element {
    let mut answer = el("iq", CLIENT)
        .attr(attr("type"), "result")
        .attr(attr("id"), request.attr("id").unwrap_or(""));
    if let Some(from) = request.attr("from") {
        answer = answer.attr(attr("to"), from);
    }
    if let Some(child) = child {
        answer = answer.append(child);
    }
    answer.build()
}

/// The error type RFC 6120 §8.3.3 (and Smack's defaults) pair with `condition`.
pub fn error_type_of(condition: &str) -> &'static str {
    match condition {
        "bad-request" | "not-acceptable" | "jid-malformed" => "modify",
        "forbidden" | "not-authorized" => "auth",
        "resource-constraint" => "wait",
        _ => "cancel",
    }
}

/// An `error` answering `request` with `condition`, an optional `<text>` and optional application
/// elements (e.g. a Colibri2 `<error reason>`).
pub fn error_for(
    request: &Element,
    condition: &str,
    text: Option<&str>,
    application: Vec<Element>,
) -> Element {
    let mut error = el("error", CLIENT)
        .attr(attr("type"), error_type_of(condition))
        .append(el(condition, STANZAS));
    if let Some(text) = text {
        error = error.append(el("text", STANZAS).append(text));
    }
    let mut answer = el("iq", CLIENT)
        .attr(attr("type"), "error")
        .attr(attr("id"), request.attr("id").unwrap_or(""));
    if let Some(from) = request.attr("from") {
        answer = answer.attr(attr("to"), from);
    }
    answer.append(error.append_all(application)).build()
}

/// The defined condition of an error IQ (e.g. "bad-request"), if it is one.
pub fn error_condition(answer: &Element) -> Option<String> {
    let error = answer.get_child("error", CLIENT)?;
    error
        .children()
        .find(|child| child.ns() == STANZAS && child.name() != "text")
        .map(|child| child.name().to_owned())
}

/// The `<text>` of an error IQ, if any: in the stanzas namespace, or in none of its own as jicofo's
/// Smack writes it on the wire (recorded: tests/fixtures/jicofo/source-add-ssrc-of-other.xml).
pub fn error_text(answer: &Element) -> Option<String> {
    let error = answer.get_child("error", CLIENT)?;
    error
        .get_child("text", STANZAS)
        .or_else(|| error.get_child("text", CLIENT))
        .map(Element::text)
}

/// Whether `answer` is an IQ `result`.
pub fn is_result(answer: &Element) -> bool {
    answer.attr("type") == Some("result")
}

/// An IQ request of `type_` to `to` with a fresh id from `id`.
pub fn iq(type_: &str, to: &str, id: &str, payload: Element) -> Element {
    el("iq", CLIENT)
        .attr(attr("type"), type_)
        .attr(attr("to"), to)
        .attr(attr("id"), id)
        .append(payload)
        .build()
}
