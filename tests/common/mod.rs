//! The integration harness: a real Prosody, the real podium binary, raw c2s clients, real SQLite,
//! and stand-ins for jicofo (`focus`), jitsi-videobridge (`bridge`) and lib-jitsi-meet clients
//! (`participant`) that speak Jingle and Colibri2 over that Prosody (`jingle`: the shared source
//! model; `peer`: what the stand-ins share), the real lib-jitsi-meet in headless Chromium
//! (`browser`), and the operator's real jicofo for the opt-in tests (`real_jicofo`); `conformance`
//! holds the request scenarios and fixtures recorded from the real jicofo; `sockets` reads a child
//! process's TCP socket options; `raw` a c2s client that writes raw XML.
#![allow(dead_code)]

pub mod bridge;
pub mod bridge_conformance;
pub mod browser;
pub mod c2s;
pub mod churn;
pub mod conference;
pub mod conformance;
pub mod focus;
pub mod jingle;
pub mod module_standin;
pub mod participant;
pub mod peer;
pub mod podium;
pub mod postgres;
pub mod prosody;
pub mod raw;
pub mod real_jicofo;
pub mod sockets;

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use c2s::C2s;

/// How many times longer than usual the harness waits before it calls an answer missing: 1 in
/// tests; the soak (benches/soak.rs) raises it, so on a saturated machine an answer that comes late
/// is not taken for one that never comes.
static PATIENCE: AtomicU32 = AtomicU32::new(1);

/// Sets [`patient`]'s factor for the whole process.
pub fn set_patience(factor: u32) {
    PATIENCE.store(factor.max(1), Ordering::Relaxed);
}

/// `limit` stretched by the process's patience factor (see [`set_patience`]).
pub fn patient(limit: Duration) -> Duration {
    limit * PATIENCE.load(Ordering::Relaxed)
}

pub fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs SQL against the database with the `sqlite3` CLI: another process, like an admin would.
pub fn sqlite3(db: &Path, sql: &str) -> String {
    // `.timeout` makes the CLI wait out podium's short audit writes instead of failing with
    // "database is locked", as the README tells operators to do.
    let output = std::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 must be installed (scripts/test installs it)");
    assert!(
        output.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub use c2s::Held;

/// Asks the module (as an inspector) what it holds in `room`.
pub async fn inspect(inspector: &mut C2s, room: &str) -> Held {
    inspector.inspect(room).await
}

/// Builds the expected held map from (nick, permissions) pairs, all decided by podium.
pub fn decided(entries: &[(&str, &str)]) -> Held {
    entries
        .iter()
        .map(|(nick, set)| (nick.to_string(), (set.to_string(), "podium".to_owned())))
        .collect()
}

/// Waits until `probe` returns `expected`. It probes again whenever podium logs a line: podium logs
/// "permissions applied" when the module acknowledges a decision and "audit records written" after each
/// audit batch, so no fixed sleep is involved; 20 s is only a guard against a hang.
pub async fn settle<T: PartialEq + std::fmt::Debug>(
    podium: &podium::Podium,
    what: &str,
    expected: &T,
    mut probe: impl AsyncFnMut() -> T,
) {
    let deadline = tokio::time::Instant::now() + patient(Duration::from_secs(20));
    loop {
        let mark = podium.mark();
        let found = probe().await;
        if &found == expected {
            return;
        }
        if !podium.wait_line_after(mark, deadline).await {
            panic!("{what}: found {found:?}, expected {expected:?}");
        }
    }
}

/// Waits until the module holds `expected` in `room`.
pub async fn wait_held(inspector: &mut C2s, podium: &podium::Podium, room: &str, expected: &Held) {
    let what = format!("what the module holds in {room}");
    settle(podium, &what, expected, async || {
        inspect(inspector, room).await
    })
    .await;
}

/// Waits until `sql` (run with the sqlite3 CLI) prints `expected`.
pub async fn wait_audit(podium: &podium::Podium, db: &Path, sql: &str, expected: &str) {
    let expected = expected.to_owned();
    settle(podium, sql, &expected, async || sqlite3(db, sql)).await;
}

/// Edits rules with the sqlite3 CLI and waits until podium has loaded exactly that version.
pub async fn edit_rules(podium: &podium::Podium, db: &Path, sql: &str) {
    let mark = podium.mark();
    let version = sqlite3(db, &format!("{sql}; SELECT version FROM rules_version;"));
    let version = format!("\"version\":{}", version.trim());
    podium
        .wait_for_after(mark, &["rules changed", &version])
        .await;
}
