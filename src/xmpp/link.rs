//! The connection loop: log in, serve the stream, and come back after every loss.
//!
//! What the loop owns, so the engine never has to:
//! - **keepalive**: after `keepalive_secs` of silence a ping goes to the MUC host; its answer (any
//!   answer) keeps the stream alive, and no answer within another interval counts as a lost link;
//! - **unparsable stanzas**: logged with their header and skipped; an IQ get/set among them is answered
//!   `bad-request` so its sender is not left waiting;
//! - **reconnection**: capped exponential backoff from `reconnect_min_ms` to `reconnect_max_secs`, each
//!   cause logged; the delay starts afresh only after a link that stayed up for the cap. Every
//!   successful login starts a new *generation*; stanzas the engine queued for an
//!   older generation are dropped, because the engine resyncs after every [`LinkEvent::Up`].

use std::str::FromStr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::Stanza;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, RawStanzaHeader, ReadError, StreamElementError, XmppStreamElement,
};
use tracing::{debug, info, warn};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::Jid;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::depth::{MAX_STANZA_DEPTH, was_cut};
use super::stream::{ComponentStream, login};
use crate::config::XmppConfig;

/// What the link tells the engine.
#[derive(Debug)]
pub enum LinkEvent {
    /// Logged in; stanzas sent from now on must carry this generation.
    Up {
        /// Increases with every login.
        generation: u64,
    },
    /// The link is lost; reconnection is under way.
    Down,
    /// A stanza from Prosody.
    Stanza(Box<Stanza>),
}

/// A stanza queued for sending, tagged with the generation it was made for.
#[derive(Debug)]
pub struct Outbound {
    generation: u64,
    stanza: Stanza,
}

/// The engine's handle for sending.
#[derive(Debug, Clone)]
pub struct Link {
    outbound: mpsc::UnboundedSender<Outbound>,
}

impl Link {
    /// Queues a stanza for the given link generation.
    pub fn send(&self, generation: u64, stanza: impl Into<Stanza>) {
        let _ = self.outbound.send(Outbound {
            generation,
            stanza: stanza.into(),
        });
    }
}

const KEEPALIVE_ID: &str = "podium-keepalive";

/// Starts the connection loop. It ends when `cancel` fires, after closing the stream.
pub fn spawn(
    config: XmppConfig,
    events: mpsc::Sender<LinkEvent>,
    cancel: CancellationToken,
) -> (Link, tokio::task::JoinHandle<()>) {
    let (outbound, queue) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(config, events, queue, cancel));
    (Link { outbound }, task)
}

async fn run(
    config: XmppConfig,
    events: mpsc::Sender<LinkEvent>,
    mut queue: mpsc::UnboundedReceiver<Outbound>,
    cancel: CancellationToken,
) {
    let addr = format!("{}:{}", config.host, config.port);
    let keepalive = Duration::from_secs(config.keepalive_secs);
    let min_delay = Duration::from_millis(config.reconnect_min_ms);
    let max_delay = Duration::from_secs(config.reconnect_max_secs).max(min_delay);
    let mut delay = min_delay;
    let mut generation = 0;
    loop {
        let attempt = tokio::select! {
            _ = cancel.cancelled() => return,
            attempt = login(&addr, &config.component, config.secret.expose(), keepalive) => attempt,
        };
        match attempt {
            Ok(stream) => {
                generation += 1;
                let up_since = tokio::time::Instant::now();
                info!(%addr, component = %config.component, generation, "link up");
                if events.send(LinkEvent::Up { generation }).await.is_err() {
                    return;
                }
                let end = serve(stream, &config, generation, &events, &mut queue, &cancel).await;
                let _ = events.send(LinkEvent::Down).await;
                // A link that stayed up a while starts the backoff afresh; one that is accepted and
                // dropped at once (a flapping server) keeps backing off.
                if up_since.elapsed() >= max_delay {
                    delay = min_delay;
                }
                match end {
                    End::Cancelled => return,
                    End::Lost(cause) => warn!(%cause, "link lost; reconnecting"),
                }
            }
            Err(error) => {
                warn!(%addr, %error, retry_in_ms = delay.as_millis() as u64, "cannot log in to Prosody")
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(max_delay);
    }
}

enum End {
    Cancelled,
    Lost(String),
}

async fn serve(
    mut stream: ComponentStream,
    config: &XmppConfig,
    generation: u64,
    events: &mpsc::Sender<LinkEvent>,
    queue: &mut mpsc::UnboundedReceiver<Outbound>,
    cancel: &CancellationToken,
) -> End {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                // Send what the engine queued before shutting down, then close the stream.
                while let Ok(out) = queue.try_recv() {
                    if out.generation == generation {
                        let _ = stream.send(&XmppStreamElement::Stanza(out.stanza)).await;
                    }
                }
                let _ = stream.shutdown().await;
                return End::Cancelled;
            }
            out = queue.recv() => {
                let Some(out) = out else { return End::Cancelled };
                if out.generation != generation {
                    debug!(stale = out.generation, generation, "dropping a stanza queued for an earlier link");
                    continue;
                }
                if let Err(e) = stream.send(&XmppStreamElement::Stanza(out.stanza)).await {
                    return End::Lost(format!("write failed: {e}"));
                }
            }
            item = stream.next() => match item {
                Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza)))) => {
                    if is_keepalive_answer(&stanza) {
                        continue;
                    }
                    if stanza_was_cut(&stanza) {
                        let (name, header) = header_of(&stanza);
                        warn!(stanza = name, from = ?header.from, to = ?header.to, id = ?header.id, r#type = ?header.type_,
                              max_stanza_depth = MAX_STANZA_DEPTH, "stanza nested too deep refused");
                        if name == "iq"
                            && let Some(reply) = bad_request(&header, "Element nested too deep.")
                            && let Err(e) = stream.send(&XmppStreamElement::Stanza(reply.into())).await
                        {
                            return End::Lost(format!("write failed: {e}"));
                        }
                        continue;
                    }
                    if events.send(LinkEvent::Stanza(Box::new(stanza))).await.is_err() {
                        return End::Cancelled;
                    }
                }
                Some(Ok(FallibleStreamElement::Err(StreamElementError::InvalidStanza { name, header, error, .. }))) => {
                    warn!(stanza = %name, from = ?header.from, to = ?header.to, id = ?header.id, r#type = ?header.type_,
                          %error, "unparsable stanza skipped");
                    if name.to_string() == "iq"
                        && let Some(reply) = bad_request(&header, &error.to_string())
                        && let Err(e) = stream.send(&XmppStreamElement::Stanza(reply.into())).await
                    {
                        return End::Lost(format!("write failed: {e}"));
                    }
                }
                Some(Ok(FallibleStreamElement::Err(error))) => warn!(%error, "unparsable element skipped"),
                Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(error)))) => {
                    return End::Lost(format!("stream error from server: {error:?}"));
                }
                Some(Ok(FallibleStreamElement::Ok(other))) => debug!(element = ?other, "non-stanza element ignored"),
                Some(Err(ReadError::SoftTimeout)) => {
                    debug!(to = %config.muc, "keepalive ping sent");
                    let ping = keepalive_ping(config);
                    if let Err(e) = stream.send(&XmppStreamElement::Stanza(ping.into())).await {
                        return End::Lost(format!("keepalive write failed: {e}"));
                    }
                }
                Some(Err(ReadError::ParseError(error))) => warn!(%error, "malformed XML skipped"),
                Some(Err(ReadError::StreamFooterReceived)) => return End::Lost("server closed the stream".into()),
                Some(Err(ReadError::HardError(e))) => return End::Lost(format!("read failed: {e}")),
                None => return End::Lost("stream ended".into()),
            }
        }
    }
}

fn keepalive_ping(config: &XmppConfig) -> Iq {
    let mut ping = Iq::from_get(KEEPALIVE_ID, Ping);
    if let (Ok(from), Ok(to)) = (Jid::from_str(&config.component), Jid::from_str(&config.muc)) {
        ping = ping.with_from(from).with_to(to);
    }
    ping
}

/// Whether the depth guard cut an element out of the stanza (its marker is in a payload).
fn stanza_was_cut(stanza: &Stanza) -> bool {
    match stanza {
        Stanza::Iq(Iq::Get { payload, .. } | Iq::Set { payload, .. }) => was_cut(payload),
        Stanza::Iq(Iq::Result { payload, .. }) => payload.as_ref().is_some_and(was_cut),
        Stanza::Iq(Iq::Error { payload, error, .. }) => {
            payload.as_ref().is_some_and(was_cut) || error.other.as_ref().is_some_and(was_cut)
        }
        Stanza::Message(message) => message.payloads.iter().any(was_cut),
        Stanza::Presence(presence) => presence.payloads.iter().any(was_cut),
    }
}

/// The stanza's name and header (for the log, and to answer an IQ get/set).
fn header_of(stanza: &Stanza) -> (&'static str, RawStanzaHeader) {
    let text = |jid: &Option<Jid>| jid.as_ref().map(Jid::to_string);
    let header = |from, to, id, type_: Option<&str>| RawStanzaHeader {
        from,
        to,
        id,
        type_: type_.map(str::to_owned),
    };
    match stanza {
        Stanza::Iq(iq) => {
            let (from, to, id, type_) = match iq {
                Iq::Get { from, to, id, .. } => (from, to, id, "get"),
                Iq::Set { from, to, id, .. } => (from, to, id, "set"),
                Iq::Result { from, to, id, .. } => (from, to, id, "result"),
                Iq::Error { from, to, id, .. } => (from, to, id, "error"),
            };
            (
                "iq",
                header(text(from), text(to), Some(id.clone()), Some(type_)),
            )
        }
        Stanza::Message(m) => (
            "message",
            header(
                text(&m.from),
                text(&m.to),
                m.id.as_ref().map(|i| i.0.clone()),
                None,
            ),
        ),
        Stanza::Presence(p) => (
            "presence",
            header(text(&p.from), text(&p.to), p.id.clone(), None),
        ),
    }
}

fn is_keepalive_answer(stanza: &Stanza) -> bool {
    match stanza {
        Stanza::Iq(Iq::Result { id, .. } | Iq::Error { id, .. }) => id == KEEPALIVE_ID,
        _ => false,
    }
}

/// `bad-request` for an unparsable IQ get/set, addressed back to its sender.
fn bad_request(header: &RawStanzaHeader, text: &str) -> Option<Iq> {
    if !matches!(header.type_.as_deref(), Some("get" | "set")) {
        return None;
    }
    let to = Jid::from_str(header.from.as_deref()?).ok()?;
    let mut reply = Iq::from_error(
        header.id.clone().unwrap_or_default(),
        StanzaError::new(ErrorType::Modify, DefinedCondition::BadRequest, "en", text),
    )
    .with_to(to);
    if let Some(from) = header.to.as_deref().and_then(|f| Jid::from_str(f).ok()) {
        reply = reply.with_from(from);
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(type_: &str) -> RawStanzaHeader {
        RawStanzaHeader {
            from: Some("alice@localhost/web".into()),
            to: Some("podium.localhost".into()),
            type_: Some(type_.into()),
            id: Some("q1".into()),
        }
    }

    #[test]
    fn test_unparsable_get_or_set_is_answered_bad_request() {
        for type_ in ["get", "set"] {
            match bad_request(&header(type_), "Invalid value for show.") {
                Some(Iq::Error {
                    from,
                    to,
                    id,
                    error,
                    ..
                }) => {
                    assert_eq!(id, "q1");
                    assert_eq!(to.unwrap().to_string(), "alice@localhost/web");
                    assert_eq!(from.unwrap().to_string(), "podium.localhost");
                    assert_eq!(error.defined_condition, DefinedCondition::BadRequest);
                }
                other => panic!("expected an error reply, got {other:?}"),
            }
        }
    }

    #[test]
    fn test_unparsable_result_or_error_is_not_answered() {
        assert!(bad_request(&header("result"), "x").is_none());
        assert!(bad_request(&header("error"), "x").is_none());
        let mut no_sender = header("get");
        no_sender.from = None;
        assert!(bad_request(&no_sender, "x").is_none());
    }

    #[test]
    fn test_a_cut_stanza_is_recognised_and_an_iq_is_answered() {
        use crate::xmpp::depth::DepthScanner;
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        let mut scanner = DepthScanner::new(MAX_STANZA_DEPTH, 1);
        let mut out = Vec::new();
        scanner.feed(
            format!("<iq xmlns='jabber:component:accept' type='get' id='q1' from='alice@localhost/web' to='podium.localhost'><q xmlns='urn:x'>{deep}</q></iq>")
                .as_bytes(),
            &mut out,
        );
        let element: minidom::Element = String::from_utf8(out).unwrap().parse().unwrap();
        let stanza = Stanza::Iq(Iq::try_from(element).unwrap());
        assert!(stanza_was_cut(&stanza));
        let (name, header) = header_of(&stanza);
        assert_eq!(name, "iq");
        assert!(matches!(bad_request(&header, "x"), Some(Iq::Error { .. })));
        let fine = Stanza::Iq(Iq::from_get("q2", Ping));
        assert!(!stanza_was_cut(&fine));
    }

    #[test]
    fn test_keepalive_answers_are_recognised() {
        let answer = Stanza::Iq(Iq::Result {
            from: None,
            to: None,
            id: KEEPALIVE_ID.into(),
            payload: None,
        });
        assert!(is_keepalive_answer(&answer));
        let other = Stanza::Iq(Iq::Result {
            from: None,
            to: None,
            id: "podium-snapshot-1".into(),
            payload: None,
        });
        assert!(!is_keepalive_answer(&other));
    }
}
