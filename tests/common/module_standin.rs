//! A stand-in for Prosody's component port and mod_podium's side of the protocol
//! (`docs/protocol.md`), for many rooms: it accepts podium's XEP-0114 login, answers snapshot pages
//! of `rooms` rooms of [`PER_ROOM`] occupants (everyone on the module's default) and acknowledges
//! every `<permissions/>` with `<applied/>`, reporting what it saw. Shared by `benches/scale.rs`
//! and `tests/scale.rs`; the XML is split by counting tags, which is enough for podium's own output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

/// Occupants per room.
pub const PER_ROOM: usize = 10;
/// The MUC host the stand-in plays.
pub const MUC: &str = "conference.localhost";
/// podium's component domain.
pub const COMPONENT: &str = "podium.localhost";

/// What the stand-in saw, with when.
pub enum Seen {
    /// A snapshot page was asked for (and answered); `last` when it was the final page.
    SnapshotPage { last: bool },
    /// A `<permissions/>` batch with this many entries.
    Permissions(usize),
    /// podium closed the stream.
    Closed,
}

/// Plays Prosody's component port and mod_podium: logs podium in, then answers on a thread of its
/// own, reporting what it saw. Returns when the login is done.
pub fn serve(mut socket: TcpStream, rooms: usize, seen: mpsc::Sender<(Instant, Seen)>) -> Instant {
    socket.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    // podium's stream header, then its handshake (not checked: this is podium's own bench).
    let mut scanner = Scanner::default();
    let mut header = Vec::new();
    while scanner.depth == 0 {
        let mut byte = [0u8];
        reader.read_exact(&mut byte).unwrap();
        header.push(byte[0]);
        scanner.feed(byte[0]);
    }
    socket
        .write_all(
            b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
              xmlns='jabber:component:accept' from='podium.localhost' id='scale-bench'>",
        )
        .unwrap();
    let handshake = next_stanza(&mut reader, &mut scanner).unwrap();
    assert!(handshake.starts_with("<handshake"), "{handshake}");
    socket.write_all(b"<handshake/>").unwrap();
    let connected = Instant::now();

    let (out_tx, out_rx) = mpsc::channel::<String>();
    let mut writer = socket;
    thread::spawn(move || {
        while let Ok(first) = out_rx.recv() {
            let mut chunk = first;
            while let Ok(more) = out_rx.try_recv() {
                chunk.push_str(&more);
            }
            if writer.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let mut order: Vec<(String, usize)> = (0..rooms).map(|r| (room_jid(r), r)).collect();
    order.sort();
    thread::spawn(move || {
        while let Some(stanza) = next_stanza(&mut reader, &mut scanner) {
            let at = Instant::now();
            let id = attr(&stanza, "id").unwrap_or_default();
            if stanza.starts_with("<iq") && stanza.contains("<snapshot") {
                let after = attr_in(&stanza, "<snapshot", "after");
                let max: usize = attr_in(&stanza, "<snapshot", "max")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(500);
                let (page, last) = snapshot_page(&order, after.as_deref(), max);
                let _ = out_tx.send(format!(
                    "<iq type='result' from='{MUC}' to='{COMPONENT}' id='{id}'>{page}</iq>"
                ));
                let _ = seen.send((at, Seen::SnapshotPage { last }));
            } else if stanza.starts_with("<iq") && stanza.contains("<permissions") {
                let count = stanza.matches("<occupant ").count();
                let _ = out_tx.send(format!(
                    "<iq type='result' from='{MUC}' to='{COMPONENT}' id='{id}'>\
                     <applied xmlns='urn:podium:0' count='{count}'/></iq>"
                ));
                let _ = seen.send((at, Seen::Permissions(count)));
            } else if stanza.starts_with("<iq")
                && (attr(&stanza, "type").as_deref() == Some("get")
                    || attr(&stanza, "type").as_deref() == Some("set"))
            {
                // Keepalive pings and anything else: an empty result.
                let _ = out_tx.send(format!(
                    "<iq type='result' from='{MUC}' to='{COMPONENT}' id='{id}'/>"
                ));
            }
        }
        let _ = seen.send((Instant::now(), Seen::Closed));
    });
    connected
}

pub fn room_jid(r: usize) -> String {
    format!("team-{}-room-{r}@{MUC}", r % 500)
}

/// A page of the rooms, `order` sorted by JID as the module sorts them: whole rooms until it holds
/// `max` occupants, after the room `after`.
fn snapshot_page(order: &[(String, usize)], after: Option<&str>, max: usize) -> (String, bool) {
    let rooms = order.len();
    let start = match after {
        Some(after) => order
            .binary_search_by(|(jid, _)| jid.as_str().cmp(after))
            .map_or(rooms, |p| p + 1),
        None => 0,
    };
    let per_page = max.div_ceil(PER_ROOM).max(1);
    let end = (start + per_page).min(rooms);
    let mut page = String::new();
    for (jid, r) in &order[start..end] {
        let r = *r;
        page.push_str(&format!("<room jid='{jid}'>"));
        for o in 0..PER_ROOM {
            page.push_str(&occupant(r, o));
        }
        page.push_str("</room>");
    }
    let last = end >= rooms;
    let next = if last {
        String::new()
    } else {
        format!(" next='{}'", order[end - 1].0)
    };
    (
        format!("<snapshot xmlns='urn:podium:0'{next}>{page}</snapshot>"),
        last,
    )
}

/// One occupant as mod_podium reports it: a token identity for most, role and affiliation, the kinds
/// it sends; everyone still on the module's default (nothing allowed).
fn occupant(r: usize, o: usize) -> String {
    let nick = format!("{r:05x}{o:03x}");
    let (role, affiliation) = if o == 0 {
        ("moderator", "owner")
    } else {
        ("participant", "none")
    };
    let domain = if o % 4 == 3 {
        "guest.meet.example"
    } else {
        "meet.example"
    };
    let jid = format!("user-{r}-{o}@{domain}/web-{o}");
    let identity = if o % 4 == 3 {
        String::new()
    } else {
        format!(
            "<identity id='u-{}' name='User {r}-{o}' email='user-{r}-{o}@meet.example' group='{}'/>",
            (r * PER_ROOM + o) % 40,
            if o.is_multiple_of(2) {
                "acme"
            } else {
                "globex"
            }
        )
    };
    format!(
        "<occupant nick='{nick}' real-jid='{jid}' role='{role}' affiliation='{affiliation}' \
         sending='audio video'>{identity}\
         <held audio='false' video='false' screen='false' origin='default'/></occupant>"
    )
}

/// Splits podium's stream into top-level elements by counting tags (quotes respected).
#[derive(Default)]
struct Scanner {
    depth: usize,
    in_tag: bool,
    quote: Option<u8>,
    tag: Vec<u8>,
}

impl Scanner {
    /// Feeds one byte; `true` when it closed a top-level child of the stream.
    fn feed(&mut self, byte: u8) -> bool {
        if !self.in_tag {
            if byte == b'<' {
                self.in_tag = true;
                self.tag.clear();
            }
            return false;
        }
        if let Some(q) = self.quote {
            if byte == q {
                self.quote = None;
            }
            self.tag.push(byte);
            return false;
        }
        match byte {
            b'\'' | b'"' => {
                self.quote = Some(byte);
                self.tag.push(byte);
                false
            }
            b'>' => {
                self.in_tag = false;
                let tag = &self.tag;
                if tag.first() == Some(&b'?') || tag.first() == Some(&b'!') {
                    false
                } else if tag.first() == Some(&b'/') {
                    self.depth = self.depth.saturating_sub(1);
                    self.depth == 1
                } else if tag.last() == Some(&b'/') {
                    self.depth == 1
                } else {
                    self.depth += 1;
                    false
                }
            }
            _ => {
                self.tag.push(byte);
                false
            }
        }
    }
}

fn next_stanza(reader: &mut BufReader<TcpStream>, scanner: &mut Scanner) -> Option<String> {
    let mut stanza = Vec::new();
    loop {
        let buf = reader.fill_buf().ok()?;
        if buf.is_empty() {
            return None;
        }
        let mut used = 0;
        let mut done = false;
        for &byte in buf {
            used += 1;
            if scanner.depth >= 1 && (scanner.depth > 1 || scanner.in_tag || byte == b'<') {
                stanza.push(byte);
            }
            if scanner.feed(byte) {
                done = true;
                break;
            }
        }
        reader.consume(used);
        if done {
            return Some(String::from_utf8_lossy(&stanza).into_owned());
        }
        if scanner.depth == 0 {
            return None;
        }
    }
}

/// The value of the first `name` attribute of the stanza's own tag.
fn attr(stanza: &str, name: &str) -> Option<String> {
    let head = &stanza[..stanza.find('>').unwrap_or(stanza.len())];
    value_in(head, name)
}

/// The value of `name` on the first `element` tag.
fn attr_in(stanza: &str, element: &str, name: &str) -> Option<String> {
    let start = stanza.find(element)?;
    let rest = &stanza[start..];
    value_in(&rest[..rest.find('>').unwrap_or(rest.len())], name)
}

fn value_in(head: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let key = format!(" {name}={quote}");
        if let Some(at) = head.find(&key) {
            let rest = &head[at + key.len()..];
            return rest.find(quote).map(|end| unescape(&rest[..end]));
        }
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
