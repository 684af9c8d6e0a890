//! Kill and restart under load (issue 14, point 6): 200 occupants in 20 rooms joining, leaving and
//! toggling their microphone or camera at a steady rate, a rule flipped every 3 s
//! (`common::churn`); podium is killed with SIGKILL (by the PID this test started) and started
//! again 2 s later, and Prosody is killed (by PID) and started again on the same ports. After each,
//! the module (`<inspect/>` of every room), the jicofo stand-in and podium's view (`occupants`) hold
//! what the rules decide for everyone present, and every decision podium logged has its row in
//! `decisions`. The memory over 10 such cycles and the 30-minute soak are figures of
//! `cargo bench --bench soak`.

mod common;

use std::time::{Duration, Instant};

use common::churn::{Load, LoadOptions};

/// Two `kill -9` cycles of podium and one restart of Prosody under the load: after each, everyone
/// present holds exactly what the rules decide at the module, at the focus and in podium's view,
/// and every decision a podium still running logged has its audit row (what a killed podium had
/// not written yet is counted and printed: see `a_kill_right_after_a_rule_edit_loses_no_audit_row`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_under_load_converge_to_the_rules_with_every_decision_audited() {
    let started = Instant::now();
    let mut load = Load::start(LoadOptions::default()).await;
    println!("200 occupants in after {:?}", started.elapsed());
    load.run_for(40, 1).await;
    drop(load.converge().await.0);
    load.wait_audited().await;

    for cycle in 1..=2 {
        load.run_for(40, 1).await;
        let resynced = load.kill_podium(Duration::from_secs(2)).await;
        load.run_for(20, 1).await;
        let (paused, converged) = load.converge().await;
        println!(
            "kill -9 cycle {cycle}: resync complete {resynced:?} after the kill; then {converged:?} after the load paused; {}",
            load.counters
        );
        load.wait_audited().await;
        drop(paused);
    }

    let (resynced, back) = load.restart_prosody().await;
    load.run_for(40, 1).await;
    let (paused, converged) = load.converge().await;
    println!(
        "Prosody restart: podium resynced {resynced:?} and everyone back in {back:?} after the kill; then {converged:?} after the load paused; {}",
        load.counters
    );
    load.wait_audited().await;
    drop(paused);

    for gap in load.unaudited() {
        println!(
            "no audit row: podium {} logged {:?} {:?} before its kill (module held it: {})",
            gap.podium, gap.decided, gap.before_kill, gap.enforced
        );
    }
    assert_eq!(load.counters.errors(), 0, "{}", load.counters);
}

/// A `kill -9` between sending a decision and writing its audit row. The window is short on a quiet
/// disk (none of the kills of the test above fell in it), so this test widens it the way a busy
/// database does: another process holds SQLite's write lock while bob joins. podium decides and
/// sends bob's grant at once (the module holds it) and keeps the row in its memory queue
/// (`src/store/audit.rs`), retrying; then podium is killed. The restarted podium finds bob's grant
/// held and decides nothing new for him, so his row never comes: the module enforces a decision the
/// audit does not show.
#[tokio::test]
#[ignore = "issue 14 point 2: the audit queue is in memory, so a kill -9 after a decision is sent and before its \
            row is written loses the row for good (the restarted podium finds the decision held and writes \
            nothing); the fix is the durable audit (row no later than the send, or a spool replayed on \
            start), which the audit rework owns"]
async fn a_decision_sent_before_a_kill_keeps_its_audit_row() {
    use std::io::{BufRead, Write};
    let (prosody, mut podium, db, mut inspector) = common::conference::start_with_rules(
        &["alice", "bob", "inspector"],
        "",
        "INSERT INTO rules (id, media, effect) VALUES (1, 'audio,video', 'allow')",
    )
    .await;
    let mut alice = common::c2s::C2s::connect(prosody.c2s_port, "alice", "web").await;
    alice.join("standup", "alice").await;
    let alice_only = common::decided(&[("alice", "audio,video")]);
    common::wait_held(&mut inspector, &podium, "standup", &alice_only).await;

    // Another process takes SQLite's write lock (as a long admin transaction or a backup would).
    let mut locker = std::process::Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 must be installed");
    let mut lock_input = locker.stdin.take().unwrap();
    writeln!(lock_input, "BEGIN IMMEDIATE; SELECT 'locked';").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(locker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    // bob joins: podium sends his grant at once; his row waits in podium's memory.
    let mut bob = common::c2s::C2s::connect(prosody.c2s_port, "bob", "web").await;
    bob.join("standup", "bob").await;
    let both = common::decided(&[("alice", "audio,video"), ("bob", "audio,video")]);
    common::wait_held(&mut inspector, &podium, "standup", &both).await;
    let logged = common::churn::logged_decisions(&podium.lines())
        .into_iter()
        .filter(|(_, d)| d.nick == "bob")
        .count();
    assert_eq!(logged, 1, "podium decided bob once");
    podium.kill9();

    // The lock goes, podium comes back.
    drop(lock_input);
    locker.wait().unwrap();
    let podium = common::podium::Podium::start(&podium.config);
    podium.wait_for(&["resync complete"]).await;
    common::wait_held(&mut inspector, &podium, "standup", &both).await;
    let rows = common::sqlite3(
        &db,
        "SELECT previous, granted, cause FROM decisions WHERE nick = 'bob'",
    );
    assert_eq!(
        rows, "none|audio,video|joined\n",
        "the module holds bob's grant (audio,video by podium); the audit has for him: {rows:?}"
    );
}
