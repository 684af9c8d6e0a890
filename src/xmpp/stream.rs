//! XEP-0114 login on tokio-xmpp's `xmlstream` API.
//!
//! XEP-0114 §3: the component opens a stream in `jabber:component:accept` to its own domain, the server
//! answers with a stream id, and the component proves the shared secret with
//! `<handshake>hex(SHA-1(stream id + secret))</handshake>`. An empty `<handshake/>` back means accepted;
//! a wrong secret ends in a `<stream:error/>`.

use std::borrow::Cow;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement,
    initiate_stream,
};
use xmpp_parsers::component::Handshake;

use super::depth::DepthGuard;
use super::ns;

/// The stream type of an authenticated component link: everything read passes the depth bound
/// ([`DepthGuard`]) before tokio-xmpp parses it.
pub type ComponentStream = XmppStream<BufStream<DepthGuard<TcpStream>>>;

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// TCP connect or stream I/O failed.
    #[error("cannot reach {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server sent no stream id.
    #[error("server sent no stream id")]
    NoStreamId,
    /// The server refused the handshake (wrong secret or unknown component domain).
    #[error("handshake refused: {0}")]
    Refused(String),
    /// No answer in time.
    #[error("handshake timed out after {0:?}")]
    Timeout(Duration),
}

/// Connects, opens the stream and authenticates.
pub async fn login(
    addr: &str,
    domain: &str,
    secret: &str,
    keepalive: Duration,
) -> Result<ComponentStream, LoginError> {
    let limit = keepalive.max(Duration::from_secs(5));
    tokio::time::timeout(limit, login_inner(addr, domain, secret, keepalive))
        .await
        .map_err(|_| LoginError::Timeout(limit))?
}

async fn login_inner(
    addr: &str,
    domain: &str,
    secret: &str,
    keepalive: Duration,
) -> Result<ComponentStream, LoginError> {
    let io_error = |source| LoginError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let tcp = TcpStream::connect(addr).await.map_err(io_error)?;
    tcp.set_nodelay(true).map_err(io_error)?;
    let timeouts = Timeouts {
        read_timeout: keepalive,
        response_timeout: keepalive,
    };
    let mut pending = initiate_stream(
        BufStream::new(DepthGuard::new(tcp)),
        ns::COMPONENT_ACCEPT,
        StreamHeader {
            to: Some(Cow::Owned(domain.to_owned())),
            from: None,
            id: None,
        },
        timeouts,
    )
    .await
    .map_err(io_error)?;
    let stream_id = pending
        .take_header()
        .id
        .ok_or(LoginError::NoStreamId)?
        .into_owned();
    // XEP-0114 has no <stream:features/>.
    let mut stream: ComponentStream = pending.skip_features();
    stream
        .send(&XmppStreamElement::ComponentHandshake(
            Handshake::from_stream_id_and_password(stream_id, secret),
        ))
        .await
        .map_err(io_error)?;
    loop {
        match stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::ComponentHandshake(_)))) => {
                return Ok(stream);
            }
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                return Err(LoginError::Refused(format!("{e:?}")));
            }
            Some(Err(ReadError::HardError(e))) => return Err(io_error(e)),
            other => return Err(LoginError::Refused(format!("unexpected answer: {other:?}"))),
        }
    }
}
