//! A running podium at deployment scale: 10,000 rooms × 10 occupants, 10,000 rules, SQLite.
//!
//! `cargo bench --bench scale` builds podium in release, starts the real binary (so RSS, logs and
//! SIGTERM are the daemon's own) and plays Prosody + mod_podium for it on a local TCP port: it accepts
//! podium's XEP-0114 login, answers snapshot pages (`docs/protocol.md`) and acknowledges every
//! `<permissions/>` with `<applied/>`, counting the entries. It prints:
//!
//! - connect → every occupant decided and sent (and the part spent reading the snapshot);
//! - one global rule edit (`room = '*'`, every occupant's camera flips) → the first and the last of
//!   the 100,000 changes received;
//! - peak RSS (VmHWM) after the resync and after the edit;
//! - the audit log's growth per decision row (on disk, and its `inputs` + `explanation` text);
//! - INFO log lines;
//! - SIGTERM during a second global edit → exit, and the exit status.
//!
//! A bench with `harness = false`, not an example: it needs the release binary
//! (`CARGO_BIN_EXE_podium`, which Cargo sets for benches), prints figures and asserts nothing.
//! `SCALE_ROOMS` changes the number of rooms (10 occupants each) for a quicker look.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use podium::store::Store;

const PER_ROOM: usize = 10;
const RULES: usize = 10_000;
const MUC: &str = "conference.localhost";
const COMPONENT: &str = "podium.localhost";

/// What the stand-in saw, with when.
enum Seen {
    /// A snapshot page was asked for (and answered); `last` when it was the final page.
    SnapshotPage { last: bool },
    /// A `<permissions/>` batch with this many entries.
    Permissions(usize),
    /// podium closed the stream.
    Closed,
}

fn main() {
    let rooms: usize = std::env::var("SCALE_ROOMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let occupants = rooms * PER_ROOM;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scale.db");
    let store = runtime.block_on(async {
        let store = Store::open_sqlite(&db).await.unwrap();
        write_rules(&store, rooms).await;
        store
    });
    let db_before = runtime.block_on(db_bytes(&store));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = dir.path().join("podium.log");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_podium"))
        .env_remove("RUST_LOG")
        .env("PODIUM_XMPP__HOST", "127.0.0.1")
        .env("PODIUM_XMPP__PORT", port.to_string())
        .env("PODIUM_XMPP__SECRET", "scale-bench")
        .env("PODIUM_XMPP__COMPONENT", COMPONENT)
        .env("PODIUM_XMPP__MUC", MUC)
        .env("PODIUM_DATABASE__PATH", &db)
        .env("PODIUM_DATABASE__POLL_INTERVAL_MS", "50")
        .env("PODIUM_LOG__FILTER", "info,sqlx=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();

    let (socket, _) = listener.accept().unwrap();
    let (seen_tx, seen) = mpsc::channel();
    let connected = serve(socket, rooms, seen_tx);
    println!(
        "podium at scale: {rooms} rooms x {PER_ROOM} occupants, {RULES} rules, SQLite, release build"
    );
    println!(
        "  start -> connected                {:>8.0} ms",
        ms(connected - started)
    );

    // Resync: the snapshot, then a decision for every occupant (all start on the module's default).
    let mut snapshot_done = None;
    let mut received = 0;
    let mut first_sent = None;
    while received < occupants {
        match seen.recv_timeout(Duration::from_secs(120)) {
            Ok((at, Seen::SnapshotPage { last: true })) => snapshot_done = Some(at),
            Ok((_, Seen::SnapshotPage { last: false })) => {}
            Ok((at, Seen::Permissions(n))) => {
                first_sent.get_or_insert(at);
                received += n;
            }
            Ok((_, Seen::Closed)) | Err(_) => break,
        }
    }
    let resynced = Instant::now();
    let snapshot_done = snapshot_done.unwrap_or(resynced);
    println!(
        "  connect -> snapshot read           {:>8.0} ms",
        ms(snapshot_done - connected)
    );
    println!(
        "  connect -> first decision sent     {:>8.0} ms",
        ms(first_sent.unwrap_or(resynced) - connected)
    );
    println!(
        "  connect -> all {received} decided and sent {:>8.0} ms",
        ms(resynced - connected)
    );
    println!(
        "  RSS after resync                   {:>8} MiB (peak {} MiB)",
        rss(pid, "VmRSS") / 1024,
        rss(pid, "VmHWM") / 1024
    );
    let info_resync = info_lines(&log);

    // One global edit: the top-priority camera rule for every room turns to deny.
    let (first, all, count) = edit(&runtime, &store, "deny", &seen, occupants);
    println!(
        "  global edit -> first change sent   {:>8.0} ms",
        ms(first)
    );
    println!("  global edit -> all {count} changes sent {:>8.0} ms", ms(all));
    println!(
        "  RSS after the edit                 {:>8} MiB (peak {} MiB)",
        rss(pid, "VmRSS") / 1024,
        rss(pid, "VmHWM") / 1024
    );
    // Let the audit writer catch up before counting its rows and the log.
    thread::sleep(Duration::from_secs(2));
    let info_edit = info_lines(&log) - info_resync;
    println!("  INFO log lines: resync {info_resync}, edit {info_edit}");

    // SIGTERM while a second global edit is being sent.
    runtime.block_on(set_camera(&store, "allow"));
    let edited = Instant::now();
    let mut under_load = false;
    while let Ok((_, seen)) = seen.recv_timeout(Duration::from_secs(30)) {
        if let Seen::Permissions(_) = seen {
            under_load = true;
            break;
        }
    }
    let term = Instant::now();
    sigterm(pid);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if term.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(1));
    };
    println!(
        "  SIGTERM {} the second edit's changes (sent {:.0} ms after the edit) -> exit {:>8.0} ms ({})",
        if under_load { "during" } else { "after" },
        ms(term - edited),
        ms(term.elapsed()),
        match status {
            Some(status) => format!("{status}"),
            None => "killed after 60 s".into(),
        }
    );

    let (rows, text, db_after) = runtime.block_on(async {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM decisions")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let text: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(LENGTH(inputs) + LENGTH(explanation)), 0) FROM decisions",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        (rows, text, db_bytes(&store).await)
    });
    let explained = runtime.block_on(explanation_bytes(&store));
    println!(
        "  audit: {rows} decision rows, database grew {:.1} MB: {:.2} KB per decision on disk \
         (inputs + explanation text {:.2} KB per row{explained})",
        (db_after - db_before) as f64 / 1e6,
        (db_after - db_before) as f64 / rows.max(1) as f64 / 1024.0,
        text as f64 / rows.max(1) as f64 / 1024.0,
    );
    println!("  INFO log lines in all: {}", info_lines(&log));
    runtime.block_on(store.close());
    drop(listener);
    if let Ok(keep) = std::env::var("SCALE_KEEP_DB") {
        std::fs::copy(&db, &keep).unwrap();
        println!("  database kept at {keep}");
    }
}

/// 10,000 rules: rule 1 decides every camera (priority 100), 19 more for every room, 2,000 globs
/// over teams of rooms, the rest for single rooms (the shape of `benches/evaluator.rs`).
async fn write_rules(store: &Store, rooms: usize) {
    let subjects = [
        ("everyone", None),
        ("role", Some("moderator")),
        ("affiliation", Some("owner")),
        ("group", Some("acme")),
        ("user", Some("u-17")),
        ("jid", Some("*@guest.meet.example")),
    ];
    let media = ["audio", "video", "screen", "all", "audio,video"];
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO rules (room, who, media, effect, priority) \
         VALUES ('*', 'everyone', 'video', 'allow', 100)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    for i in 1..RULES {
        let room = match i {
            0..20 => "*".to_owned(),
            20..2020 => format!("team-{}-*", i % 500),
            _ => format!("team-{}-room-{}", i % 500, i % rooms),
        };
        let (who, value) = subjects[i % subjects.len()];
        sqlx::query(
            "INSERT INTO rules (room, who, who_value, media, effect, priority) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(room)
        .bind(who)
        .bind(value)
        .bind(media[i % media.len()])
        .bind(if i % 3 == 0 { "deny" } else { "allow" })
        .bind((i % 7) as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn set_camera(store: &Store, effect: &str) {
    sqlx::query("UPDATE rules SET effect = $1 WHERE room = '*' AND priority = 100")
        .bind(effect)
        .execute(store.pool())
        .await
        .unwrap();
}

/// Edits rule 1 and waits for every occupant's change: (first, all, count).
fn edit(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    effect: &str,
    seen: &mpsc::Receiver<(Instant, Seen)>,
    occupants: usize,
) -> (Duration, Duration, usize) {
    runtime.block_on(set_camera(store, effect));
    let edited = Instant::now();
    let (mut first, mut count) = (None, 0);
    while count < occupants {
        match seen.recv_timeout(Duration::from_secs(120)) {
            Ok((at, Seen::Permissions(n))) => {
                first.get_or_insert(at);
                count += n;
            }
            Ok((_, Seen::SnapshotPage { .. })) => {}
            Ok((_, Seen::Closed)) | Err(_) => break,
        }
    }
    (
        first.map_or(Duration::ZERO, |at| at - edited),
        edited.elapsed(),
        count,
    )
}

async fn db_bytes(store: &Store) -> i64 {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(store.pool())
        .await
        .unwrap();
    pages * size
}

/// The texts stored once and referenced by the rows (`audit_texts`), when the schema has them.
async fn explanation_bytes(store: &Store) -> String {
    let stored: Result<(i64, i64), _> =
        sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM audit_texts")
            .fetch_one(store.pool())
            .await;
    match stored {
        Ok((count, bytes)) => format!(
            "; {count} distinct texts stored once, {:.1} MB",
            bytes as f64 / 1e6
        ),
        Err(_) => String::new(),
    }
}

/// Plays Prosody's component port and mod_podium: logs podium in, then answers on a thread of its
/// own, reporting what it saw. Returns when the login is done.
fn serve(mut socket: TcpStream, rooms: usize, seen: mpsc::Sender<(Instant, Seen)>) -> Instant {
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

fn room_jid(r: usize) -> String {
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

/// One occupant as mod_podium reports it: a token identity for most, the room's item, a nick and
/// the sources' mute state; everyone still on the module's default (nothing allowed).
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
            if o % 2 == 0 { "acme" } else { "globex" }
        )
    };
    format!(
        "<occupant nick='{nick}' real-jid='{jid}'>{identity}\
         <held audio='false' video='false' screen='false' origin='default'/>\
         <presence xmlns='jabber:client'>\
         <nick xmlns='http://jabber.org/protocol/nick'>User {r}-{o}</nick>\
         <SourceInfo>{{\"{nick}-a0\":{{\"muted\":false}},\"{nick}-v0\":{{\"muted\":false}}}}</SourceInfo>\
         <x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='{affiliation}' role='{role}' jid='{jid}'/></x>\
         </presence></occupant>"
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

/// Resident memory in KiB from /proc (`VmRSS` now, `VmHWM` the peak).
fn rss(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

fn info_lines(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .map(|text| text.lines().filter(|l| l.contains(" INFO ")).count())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[allow(unsafe_code)]
fn sigterm(pid: u32) {
    // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
