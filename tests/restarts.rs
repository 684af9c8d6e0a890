//! Kill and restart under load (issue 14, point 6): 200 occupants in 20 rooms joining, leaving and
//! toggling their microphone or camera at a steady rate, a rule flipped every 3 s
//! (`common::churn`); podium is killed with SIGKILL (by the PID this test started) and started
//! again 2 s later, and Prosody is killed (by PID) and started again on the same ports. After each,
//! the module (`<inspect/>` of every room), the jicofo stand-in and podium's view (`occupants`) hold
//! what the rules decide for everyone present, and every decision podium logged has its row in
//! `decisions`. The memory over 10 such cycles and the 30-minute soak are figures of
//! `cargo bench --bench soak`.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::churn::{Load, LoadOptions};

/// Prints what the load did so far.
fn counters(load: &Load) -> String {
    let c = &load.counters;
    format!(
        "joins {} leaves {} toggles {} edits {} failures {}",
        c.joins.load(Ordering::Relaxed),
        c.leaves.load(Ordering::Relaxed),
        c.toggles.load(Ordering::Relaxed),
        c.edits.load(Ordering::Relaxed),
        c.failures.load(Ordering::Relaxed),
    )
}

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
            counters(&load)
        );
        load.wait_audited().await;
        drop(paused);
    }

    let (resynced, back) = load.restart_prosody().await;
    load.run_for(40, 1).await;
    let (paused, converged) = load.converge().await;
    println!(
        "Prosody restart: podium resynced {resynced:?} and everyone back in {back:?} after the kill; then {converged:?} after the load paused; {}",
        counters(&load)
    );
    load.wait_audited().await;
    drop(paused);

    for gap in load.unaudited() {
        println!(
            "no audit row: podium {} logged {:?} {:?} before its kill (module held it: {})",
            gap.podium, gap.decided, gap.before_kill, gap.enforced
        );
    }
    assert_eq!(load.counters.failures.load(Ordering::Relaxed), 0);
}
