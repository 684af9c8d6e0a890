//! A running podium at deployment scale: 10,000 rooms × 10 occupants, 10,000 rules, SQLite.
//!
//! `cargo bench --bench scale` builds podium in release, starts the real binary (so RSS, logs and
//! SIGTERM are the daemon's own) and plays Prosody + mod_podium for it on a local TCP port: it accepts
//! podium's XEP-0114 login, answers snapshot pages (`docs/protocol.md`) and acknowledges every
//! `<permissions/>` with `<applied/>`, counting the entries. It prints:
//!
//! - connect → every occupant decided and sent (and the part spent reading the snapshot);
//! - one global rule edit (`room = '*'`, every occupant's camera flips) → the first and the last of
//!   the 100,000 changes received, and podium's own part: its "rules loaded" log line → the first;
//! - peak RSS (VmHWM) after the resync and after the edit;
//! - global edit → every decision's audit row written (whether the audit log keeps up);
//! - the audit log's growth per decision row (on disk, and its `inputs` + `explanation` text);
//! - INFO log lines;
//! - SIGTERM during a second global edit → exit, and the exit status.
//!
//! A bench with `harness = false`, not an example: it needs the release binary
//! (`CARGO_BIN_EXE_podium`, which Cargo sets for benches), prints figures and asserts nothing.
//! `SCALE_ROOMS` changes the number of rooms (10 occupants each) for a quicker look.
//! `SCALE_POSTGRES_URL=postgres://user:password@host:5432/db` runs it on PostgreSQL instead (a
//! throwaway database is created beside `db` and dropped; the poll is then 1 s, so NOTIFY alone
//! wakes podium); `SCALE_POLL_MS` sets the poll interval (50 ms on SQLite).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use podium::store::Store;

#[path = "../tests/common/module_standin.rs"]
mod module_standin;

use module_standin::{COMPONENT, MUC, PER_ROOM, Seen, serve};

const RULES: usize = 10_000;

fn main() {
    let rooms: usize = std::env::var("SCALE_ROOMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let occupants = rooms * PER_ROOM;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scale.db");
    let postgres = std::env::var("SCALE_POSTGRES_URL")
        .ok()
        .map(Postgres::create);
    let poll_ms: u64 = std::env::var("SCALE_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if postgres.is_some() { 1000 } else { 50 });
    let store = runtime.block_on(async {
        let store = match &postgres {
            Some(pg) => Store::open_postgres(&pg.url).await.unwrap(),
            None => Store::open_sqlite(&db).await.unwrap(),
        };
        write_rules(&store, rooms).await;
        store
    });
    let db_before = runtime.block_on(db_bytes(&store));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = dir.path().join("podium.log");
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_podium"));
    if let Some(pg) = &postgres {
        command.env("PODIUM_DATABASE__URL", &pg.url);
    }
    let mut child = command
        .env_remove("RUST_LOG")
        .env("PODIUM_XMPP__HOST", "127.0.0.1")
        .env("PODIUM_XMPP__PORT", port.to_string())
        .env("PODIUM_XMPP__SECRET", "scale-bench")
        .env("PODIUM_XMPP__COMPONENT", COMPONENT)
        .env("PODIUM_XMPP__MUC", MUC)
        .env("PODIUM_DATABASE__PATH", &db)
        .env("PODIUM_DATABASE__POLL_INTERVAL_MS", poll_ms.to_string())
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
        "podium at scale: {rooms} rooms x {PER_ROOM} occupants, {RULES} rules, {}, poll {poll_ms} ms, \
         release build",
        if postgres.is_some() {
            "PostgreSQL (NOTIFY)"
        } else {
            "SQLite"
        }
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
    let edit_started = Instant::now();
    let (first, all, count, first_at) = edit(&runtime, &store, "deny", &seen, occupants);
    println!("  global edit -> first change sent   {:>8.0} ms", ms(first));
    // podium's side alone: from its "rules loaded" line (its own clock, the same machine's) to the
    // first change the stand-in received.
    if let Some(loaded) = last_logged(&log, "rules loaded") {
        let handed = first_at.duration_since(loaded).unwrap_or_default();
        println!(
            "  rules loaded -> first change sent  {:>8.0} ms",
            ms(handed)
        );
    }
    println!(
        "  global edit -> all {count} changes sent {:>8.0} ms",
        ms(all)
    );
    println!(
        "  RSS after the edit                 {:>8} MiB (peak {} MiB)",
        rss(pid, "VmRSS") / 1024,
        rss(pid, "VmHWM") / 1024
    );
    // The audit writer catches up: every decision of the resync and of the edit has its row.
    let audited = loop {
        let rows: i64 = runtime
            .block_on(sqlx::query_scalar("SELECT COUNT(*) FROM decisions").fetch_one(store.pool()))
            .unwrap();
        if rows as usize >= 2 * occupants || edit_started.elapsed() > Duration::from_secs(120) {
            break edit_started.elapsed();
        }
        thread::sleep(Duration::from_millis(20));
    };
    println!(
        "  global edit -> every audit row written {:>8.0} ms (RSS now {} MiB, peak {} MiB)",
        ms(audited),
        rss(pid, "VmRSS") / 1024,
        rss(pid, "VmHWM") / 1024
    );
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

    let (rows, db_after) = runtime.block_on(async {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM decisions")
            .fetch_one(store.pool())
            .await
            .unwrap();
        (rows, db_bytes(&store).await)
    });
    let explained = runtime.block_on(explanation_bytes(&store));
    println!(
        "  audit: {rows} decision rows, database grew {:.1} MB (pages in use): {:.2} KB per \
         decision on disk{explained}",
        (db_after - db_before) as f64 / 1e6,
        (db_after - db_before) as f64 / rows.max(1) as f64 / 1024.0,
    );
    println!("  INFO log lines in all: {}", info_lines(&log));
    runtime.block_on(store.close());
    drop(postgres);
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
) -> (Duration, Duration, usize, SystemTime) {
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
    let first = first.unwrap_or(edited);
    (
        first - edited,
        edited.elapsed(),
        count,
        SystemTime::now() - first.elapsed(),
    )
}

/// When podium logged the last line holding `needle` (the text format starts with the time).
fn last_logged(log: &std::path::Path, needle: &str) -> Option<SystemTime> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains(needle))?;
    let at: jiff::Timestamp = line.split_whitespace().next()?.parse().ok()?;
    Some(SystemTime::from(at))
}

/// A throwaway PostgreSQL database beside the one `SCALE_POSTGRES_URL` names, dropped at the end.
struct Postgres {
    admin: String,
    name: String,
    url: String,
}

impl Postgres {
    fn create(admin: String) -> Postgres {
        let name = format!("podium_scale_{}", std::process::id());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin
            .rsplit_once('/')
            .expect("the URL ends with /<database>");
        Postgres {
            url: format!("{base}/{name}"),
            name,
            admin,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) {
    let status = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .status()
        .expect("psql");
    assert!(status.success(), "psql failed on {sql:?}");
}

async fn db_bytes(store: &Store) -> i64 {
    if let podium::store::Backend::Postgres { .. } = store.backend() {
        return sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(store.pool())
            .await
            .unwrap();
    }
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
    let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    // Pages in use: the live view (`occupants`), emptied when podium stops, leaves free pages
    // behind that are not the audit log's.
    (pages - free) * size
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
