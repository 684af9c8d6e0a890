//! A raw c2s client on tokio-xmpp's xmlstream: SASL PLAIN (or ANONYMOUS on the guest domain), bind, then plain `jabber:client` elements.
//!
//! `tokio_xmpp::Client` cannot be used in this build (xmpp-parsers' `component` feature changes its
//! default namespace), so the client speaks the few steps of RFC 6120 itself.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::xmlstream::{StreamHeader, Timeouts, XmlStream, initiate_stream};

use super::prosody::{DOMAIN, MUC, PASSWORD};

pub const CLIENT: &str = "jabber:client";
const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const MUC_NS: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const PODIUM: &str = "urn:podium:0";

type Stream = XmlStream<BufStream<TcpStream>, Element>;

/// What the module holds in a room: nick → (permissions as "audio,video" or "none", origin).
pub type Held = BTreeMap<String, (String, String)>;
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Element>>>>;

pub struct C2s {
    pub jid: String,
    /// The client's end of the TCP connection (to find Prosody's end of it).
    pub local_port: u16,
    handle: C2sHandle,
    /// Every stanza that is not the answer to an IQ sent through [`C2s::iq`] or a [`C2sHandle`].
    pub inbox: mpsc::UnboundedReceiver<Element>,
}

/// A cheap, clonable sending side of a [`C2s`] connection: a peer's background task can own the inbox
/// (see [`C2s::split`]) while tests and other tasks send stanzas and await IQ answers through clones.
/// The connection stays up while any handle (or the `C2s`) is alive.
#[derive(Clone)]
pub struct C2sHandle {
    /// The full JID the server bound.
    pub jid: String,
    outgoing: mpsc::UnboundedSender<Element>,
    waiters: Waiters,
    next_id: Arc<AtomicU64>,
    connection: Arc<Connection>,
    /// Every stanza sent through any clone, once [`C2sHandle::record_sent`] was called.
    sent: Arc<Mutex<Option<Vec<Element>>>>,
}

/// The task that moves stanzas between the socket and the channels; aborted when the last owner goes.
struct Connection {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An IQ already sent whose answer has not been awaited yet (see [`C2sHandle::send_iq`]).
pub struct PendingAnswer {
    id: String,
    answer: oneshot::Receiver<Element>,
    waiters: Waiters,
}

impl PendingAnswer {
    /// The answer (a `result` or `error` IQ), or `None` when none came within `limit` or the
    /// connection closed. A late answer then lands in the inbox like any unexpected stanza.
    pub async fn wait(self, limit: Duration) -> Option<Element> {
        match tokio::time::timeout(limit, self.answer).await {
            Ok(Ok(answer)) => Some(answer),
            _ => {
                self.waiters.lock().unwrap().remove(&self.id);
                None
            }
        }
    }
}

fn header(host: &'static str) -> StreamHeader<'static> {
    StreamHeader {
        to: Some(Cow::Borrowed(host)),
        from: None,
        id: None,
    }
}

/// `room@MUC`, or `room` itself when it is already a JID (a breakout room).
pub fn room_jid(room: &str) -> String {
    if room.contains('@') {
        room.to_owned()
    } else {
        format!("{room}@{MUC}")
    }
}

pub fn el(name: &str, ns: &str) -> minidom::element::ElementBuilder {
    Element::builder(name, ns)
}

pub fn attr(name: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).unwrap()
}

async fn next(stream: &mut Stream) -> Element {
    loop {
        match tokio::time::timeout(super::patient(Duration::from_secs(10)), stream.next()).await {
            Ok(Some(Ok(element))) => return element,
            Ok(Some(Err(tokio_xmpp::xmlstream::ReadError::SoftTimeout))) => continue,
            other => panic!("c2s stream failed: {other:?}"),
        }
    }
}

impl C2s {
    pub async fn connect(port: u16, user: &str, resource: &str) -> C2s {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        let auth = el("auth", SASL)
            .attr(attr("mechanism"), "PLAIN")
            .append(credentials)
            .build();
        C2s::login(port, DOMAIN, auth, user, resource).await
    }

    /// Signs in on an anonymous VirtualHost `host` (e.g. [`super::prosody::GUEST_DOMAIN`] of
    /// [`super::prosody::Prosody::start_with_guests`]) with SASL ANONYMOUS: Prosody binds a random node.
    pub async fn connect_anonymous(port: u16, host: &'static str, resource: &str) -> C2s {
        let auth = el("auth", SASL)
            .attr(attr("mechanism"), "ANONYMOUS")
            .build();
        C2s::login(port, host, auth, "an anonymous guest", resource).await
    }

    async fn login(
        port: u16,
        host: &'static str,
        auth: Element,
        user: &str,
        resource: &str,
    ) -> C2s {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let local_port = tcp.local_addr().unwrap().port();
        let pending = initiate_stream(BufStream::new(tcp), CLIENT, header(host), Timeouts::tight())
            .await
            .unwrap();
        let (_, mut stream): (_, Stream) = pending.recv_features().await.unwrap();
        stream.send(&auth).await.unwrap();
        let answer = next(&mut stream).await;
        assert!(
            answer.is("success", SASL),
            "SASL failed for {user}: {answer:?}"
        );
        let pending = stream
            .initiate_reset()
            .send_header(header(host))
            .await
            .unwrap();
        let (_, mut stream): (_, Stream) = pending.recv_features().await.unwrap();
        let bind = el("iq", CLIENT)
            .attr(attr("type"), "set")
            .attr(attr("id"), "bind")
            .append(el("bind", BIND).append(el("resource", BIND).append(resource)))
            .build();
        stream.send(&bind).await.unwrap();
        let bound = next(&mut stream).await;
        let jid = bound
            .get_child("bind", BIND)
            .and_then(|b| b.get_child("jid", BIND))
            .map(|j| j.text())
            .unwrap_or_else(|| panic!("bind failed: {bound:?}"));

        let (outgoing, mut queue) = mpsc::unbounded_channel::<Element>();
        let (deliver, inbox) = mpsc::unbounded_channel();
        let waiters: Waiters = Arc::default();
        let task_waiters = Arc::clone(&waiters);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = queue.recv() => {
                        let Some(out) = out else { let _ = stream.shutdown().await; return };
                        if stream.send(&out).await.is_err() { return; }
                    }
                    item = stream.next() => match item {
                        Some(Ok(element)) => {
                            let is_answer = element.name() == "iq"
                                && matches!(element.attr("type"), Some("result" | "error"));
                            let waiter = if is_answer {
                                element.attr("id").and_then(|id| task_waiters.lock().unwrap().remove(id))
                            } else {
                                None
                            };
                            match waiter {
                                Some(waiter) => { let _ = waiter.send(element); }
                                None => { let _ = deliver.send(element); }
                            }
                        }
                        Some(Err(tokio_xmpp::xmlstream::ReadError::SoftTimeout)) => {
                            let ping = el("iq", CLIENT).attr(attr("type"), "get").attr(attr("id"), "c2s-ping")
                                .append(el("ping", "urn:xmpp:ping")).build();
                            if stream.send(&ping).await.is_err() { return; }
                        }
                        Some(Err(tokio_xmpp::xmlstream::ReadError::ParseError(_))) => continue,
                        _ => return,
                    }
                }
            }
        });
        let handle = C2sHandle {
            jid: jid.clone(),
            outgoing,
            waiters,
            next_id: Arc::default(),
            connection: Arc::new(Connection { task }),
            sent: Arc::default(),
        };
        C2s {
            jid,
            local_port,
            handle,
            inbox,
        }
    }

    pub fn send(&self, element: Element) {
        self.handle.send(element);
    }

    /// Sends an IQ (its id is set here) and waits for the answer.
    pub async fn iq(&mut self, type_: &str, to: &str, payload: Element) -> Element {
        self.handle.iq(type_, to, payload).await
    }

    /// A sending handle sharing this connection; the inbox stays here.
    pub fn handle(&self) -> C2sHandle {
        self.handle.clone()
    }

    /// Splits the connection into a sending handle and the inbox, so a background task can own the
    /// inbox while others send and await answers.
    pub fn split(self) -> (C2sHandle, mpsc::UnboundedReceiver<Element>) {
        (self.handle, self.inbox)
    }

    /// Joins `room@MUC` (or `room`, when it is a JID) as `nick` with Jitsi-like presence extensions;
    /// waits for the self-presence.
    pub async fn join(&mut self, room: &str, nick: &str) {
        let to = format!("{}/{nick}", room_jid(room));
        let presence = el("presence", CLIENT)
            .attr(attr("to"), to.as_str())
            .append(el("x", MUC_NS))
            .append(el("nick", "http://jabber.org/protocol/nick").append(format!("Nick {nick}")))
            .append(
                el("SourceInfo", CLIENT).append(format!("{{\"{nick}-a0\":{{\"muted\":false}}}}")),
            )
            .build();
        self.send(presence);
        self.wait_self_presence(&to, false).await;
    }

    /// Sends a presence update to the room (e.g. raising a hand).
    pub fn update_presence(&self, room: &str, nick: &str, children: Vec<Element>) {
        let to = format!("{}/{nick}", room_jid(room));
        self.send(
            el("presence", CLIENT)
                .attr(attr("to"), to.as_str())
                .append_all(children)
                .build(),
        );
    }

    pub async fn leave(&mut self, room: &str, nick: &str) {
        let to = format!("{}/{nick}", room_jid(room));
        self.send(
            el("presence", CLIENT)
                .attr(attr("to"), to.as_str())
                .attr(attr("type"), "unavailable")
                .build(),
        );
        self.wait_self_presence(&to, true).await;
    }

    async fn wait_self_presence(&mut self, from: &str, unavailable: bool) {
        let deadline = tokio::time::Instant::now() + super::patient(Duration::from_secs(10));
        loop {
            let element = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("no self-presence from {from}"))
                .expect("connection closed");
            if element.name() == "presence" && element.attr("from") == Some(from) {
                assert_ne!(
                    element.attr("type"),
                    Some("error"),
                    "join refused: {element:?}"
                );
                let is_self = element.get_child("x", MUC_USER).is_some_and(|x| {
                    x.children()
                        .any(|c| c.name() == "status" && c.attr("code") == Some("110"))
                });
                if is_self && (element.attr("type") == Some("unavailable")) == unavailable {
                    return;
                }
            }
        }
    }

    /// Asks the module what it holds in `room` (this account must be in `podium_inspectors`).
    pub async fn inspect(&mut self, room: &str) -> Held {
        let room_jid = room_jid(room);
        let host = room_jid.split_once('@').map_or(MUC, |(_, host)| host);
        let answer = self
            .iq(
                "get",
                host,
                el("inspect", PODIUM)
                    .attr(attr("room"), room_jid.as_str())
                    .build(),
            )
            .await;
        assert_eq!(
            answer.attr("type"),
            Some("result"),
            "inspect refused: {answer:?}"
        );
        let list = answer
            .get_child("inspect", PODIUM)
            .expect("inspect payload");
        list.children()
            .map(|o| {
                let nick = o
                    .attr("jid")
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let kinds: Vec<&str> = ["audio", "video", "screen"]
                    .into_iter()
                    .filter(|k| o.attr(*k) == Some("true"))
                    .collect();
                let set = if kinds.is_empty() {
                    "none".to_owned()
                } else {
                    kinds.join(",")
                };
                (nick, (set, o.attr("origin").unwrap_or("").to_owned()))
            })
            .collect()
    }

    /// Drops the TCP connection without a goodbye.
    pub fn abort(self) {
        self.handle.connection.task.abort();
    }
}

impl C2sHandle {
    /// Queues a stanza for sending; panics when the connection is gone.
    pub fn send(&self, element: Element) {
        if let Some(sent) = self.sent.lock().unwrap().as_mut() {
            sent.push(element.clone());
        }
        self.outgoing.send(element).expect("c2s connection closed");
    }

    /// From now on, keeps a copy of every stanza sent through this connection (see
    /// [`C2sHandle::sent`]); off by default, so floods keep nothing.
    pub fn record_sent(&self) {
        self.sent.lock().unwrap().get_or_insert_with(Vec::new);
    }

    /// The stanzas sent since [`C2sHandle::record_sent`], in the order they were queued.
    pub fn sent(&self) -> Vec<Element> {
        self.sent.lock().unwrap().clone().unwrap_or_default()
    }

    /// A fresh IQ id, unique on this connection.
    pub fn next_id(&self) -> String {
        format!("t{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Sends a fully built IQ now (it must carry an id) and returns its pending answer. Stanzas sent
    /// one after another through this leave in that order, whoever awaits the answers later.
    pub fn send_iq(&self, iq: Element) -> PendingAnswer {
        let id = iq.attr("id").expect("an IQ needs an id").to_owned();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id.clone(), tx);
        self.send(iq);
        PendingAnswer {
            id,
            answer: rx,
            waiters: Arc::clone(&self.waiters),
        }
    }

    /// Sends a fully built IQ (id set by the caller) and waits for its answer; panics after 10 s.
    pub async fn iq_from_element(&self, iq: Element) -> Element {
        let described = format!("{iq:?}");
        self.send_iq(iq)
            .wait(super::patient(Duration::from_secs(10)))
            .await
            .unwrap_or_else(|| panic!("no answer within 10 s to {described}"))
    }

    /// Sends an IQ (its id is set here) and waits for the answer; panics after 10 s.
    pub async fn iq(&self, type_: &str, to: &str, payload: Element) -> Element {
        let id = self.next_id();
        self.iq_from_element(
            el("iq", CLIENT)
                .attr(attr("type"), type_)
                .attr(attr("to"), to)
                .attr(attr("id"), id.as_str())
                .append(payload)
                .build(),
        )
        .await
    }
}
