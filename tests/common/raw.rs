//! A c2s client that writes raw XML (several stanzas in one write, if asked) and never parses what it
//! receives, only drains it: a presence nested 30,000 deep comes back to every occupant, and a parser
//! building an element tree from it would overflow the test's own stack.

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::prosody::PASSWORD;

/// See the module doc.
pub struct RawClient {
    write: tokio::net::tcp::OwnedWriteHalf,
    drain: tokio::task::JoinHandle<()>,
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

/// Reads until `needle` has arrived (the login steps only).
async fn read_until(tcp: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "waiting for {needle}, got {}",
                    String::from_utf8_lossy(seen)
                )
            })
            .unwrap();
        assert!(n > 0, "connection closed while waiting for {needle}");
        seen.extend_from_slice(&buf[..n]);
    }
    seen.clear();
}

impl RawClient {
    /// Logs `user` in (SASL PLAIN) on the c2s port and binds a resource.
    pub async fn connect(port: u16, user: &str) -> RawClient {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
        let mut seen = Vec::new();
        tcp.write_all(header.as_bytes()).await.unwrap();
        read_until(&mut tcp, &mut seen, "</stream:features>").await;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        tcp.write_all(
            format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>")
                .as_bytes(),
        )
        .await
        .unwrap();
        read_until(&mut tcp, &mut seen, "<success").await;
        tcp.write_all(header.as_bytes()).await.unwrap();
        read_until(&mut tcp, &mut seen, "</stream:features>").await;
        tcp.write_all(
            b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
              <resource>raw</resource></bind></iq>",
        )
        .await
        .unwrap();
        read_until(&mut tcp, &mut seen, "</iq>").await;
        let (mut read, write) = tcp.into_split();
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        RawClient { write, drain }
    }

    /// Writes `xml` as it is, in one write.
    pub async fn send(&mut self, xml: &str) {
        self.write.write_all(xml.as_bytes()).await.unwrap();
    }
}
