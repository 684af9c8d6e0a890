//! A hostile occupant's presence against the module's own reading of it (issue 13 review): the module
//! no longer forwards presence to podium, it reports role and affiliation as the room computed them
//! and a few facts it read, and it batches the reports of one turn of Prosody's loop into one message.
//! Stanzas written in one TCP write are handled in one turn, so a join, a leave, a rejoin and a nick
//! change below reach podium in one message, in order. Asserted on podium's own view (its
//! `occupants` table) and on what the module holds, on a real Prosody with the real podium binary.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::conference::start_with_rules;
use common::prosody::{MUC, PASSWORD};
use common::{decided, wait_audit, wait_held};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROOM: &str = "hostile-presence";

/// A c2s client that writes raw XML (several stanzas in one write) and only drains what it receives.
struct RawClient {
    write: tokio::net::tcp::OwnedWriteHalf,
    drain: tokio::task::JoinHandle<()>,
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

async fn read_until(tcp: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("waiting for {needle}"))
            .unwrap();
        assert!(n > 0, "connection closed while waiting for {needle}");
        seen.extend_from_slice(&buf[..n]);
    }
    seen.clear();
}

impl RawClient {
    async fn connect(port: u16, user: &str) -> RawClient {
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

    async fn send(&mut self, xml: &str) {
        self.write.write_all(xml.as_bytes()).await.unwrap();
    }
}

/// A presence to `nick` in the room, with `extra` children.
fn presence(nick: &str, extra: &str) -> String {
    format!(
        "<presence to='{ROOM}@{MUC}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/>\
         <SourceInfo>{{\"{nick}-a0\":{{\"muted\":false}}}}</SourceInfo>{extra}</presence>"
    )
}

/// What a modified client may claim about itself: the room's own muc#user item naming it moderator
/// and owner, a recorder's feature, text where podium reads words.
const FORGED: &str = "<x xmlns='http://jabber.org/protocol/muc#user'>\
    <item role='moderator' affiliation='owner' jid='alice@localhost/raw'/></x>\
    <features><feature var='http://jitsi.org/protocol/jibri'/><feature var='a b'/></features>\
    <jitsi_participant_raisedHand>&lt;x role=&quot;moderator&quot;/&gt;</jitsi_participant_raisedHand>";

#[tokio::test]
async fn a_forged_presence_and_a_burst_of_joins_leaves_and_nick_changes_leave_podium_with_the_room_as_it_is()
 {
    let (prosody, podium, db, mut inspector) = start_with_rules(
        &["alice", "mallory", "inspector"],
        "",
        "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
        (1, '*', 'everyone', NULL, 'audio', 'allow', 0),
        (2, '*', 'role', 'moderator', 'all', 'allow', 10)",
    )
    .await;
    // alice creates the room: its owner, a moderator.
    let mut alice = RawClient::connect(prosody.c2s_port, "alice").await;
    alice.send(&presence("alice", "")).await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen")]),
    )
    .await;

    // One write: join as m1 (forged), leave, join as m2 (forged), change nick to m3 (forged).
    let mut mallory = RawClient::connect(prosody.c2s_port, "mallory").await;
    let burst = [
        presence("m1", FORGED),
        format!("<presence to='{ROOM}@{MUC}/m1' type='unavailable'/>"),
        presence("m2", FORGED),
        presence("m3", FORGED),
    ]
    .concat();
    mallory.send(&burst).await;

    // podium sees the room as it is: alice the owner, m3 a participant, no one else; m3 is decided
    // as a participant (audio only), never as the moderator it claimed to be.
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen"), ("m3", "audio")]),
    )
    .await;
    wait_audit(
        &podium,
        &db,
        &format!(
            "SELECT nick, role, affiliation, services FROM occupants \
             WHERE room = '{ROOM}@{MUC}' ORDER BY nick"
        ),
        "alice|moderator|owner|\nm3|participant|none|\n",
    )
    .await;

    // A presence update carrying the same forgeries changes nothing podium believes.
    mallory.send(&presence("m3", FORGED)).await;
    alice
        .send(&presence(
            "alice",
            "<jitsi_participant_raisedHand>1</jitsi_participant_raisedHand>",
        ))
        .await;
    wait_audit(
        &podium,
        &db,
        &format!(
            "SELECT nick, role, affiliation, hand_raised_at IS NOT NULL FROM occupants \
             WHERE room = '{ROOM}@{MUC}' ORDER BY nick"
        ),
        "alice|moderator|owner|1\nm3|participant|none|1\n",
    )
    .await;
    wait_held(
        &mut inspector,
        &podium,
        ROOM,
        &decided(&[("alice", "audio,video,screen"), ("m3", "audio")]),
    )
    .await;
}
