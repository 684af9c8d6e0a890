//! podium under a big resync, against the stand-in for Prosody + mod_podium in
//! `common/module_standin.rs` (no Prosody here: the point is podium's own behaviour with many
//! occupants). Behaviour only; the figures are `cargo bench --bench scale`'s.

mod common;

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::module_standin::{COMPONENT, MUC, PER_ROOM, Seen, serve};
use common::podium::Podium;
use podium::store::Store;

const ROOMS: usize = 2_000;

/// SIGTERM while podium is deciding and sending the resync of 20,000 occupants: it stops cleanly
/// (exit status 0, "stopped" logged), and every decision the stand-in received has its audit record.
#[test]
fn a_sigterm_during_a_big_resync_exits_cleanly_with_every_sent_decision_audited() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("podium.db");
    let store = runtime.block_on(async {
        let store = Store::open_sqlite(&db).await.unwrap();
        sqlx::query("INSERT INTO rules (room, media, effect) VALUES ('*', 'audio,video', 'allow')")
            .execute(store.pool())
            .await
            .unwrap();
        store
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("podium.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[xmpp]
host = "127.0.0.1"
port = {port}
component = "{COMPONENT}"
secret = "scale"
muc = "{MUC}"

[database]
path = "{db}"

[log]
filter = "info,sqlx=warn"
format = "json"
"#,
            port = listener.local_addr().unwrap().port(),
            db = db.display()
        ),
    )
    .unwrap();
    let mut podium = Podium::start(&config);
    let (socket, _) = listener.accept().unwrap();
    let (seen_tx, seen) = mpsc::channel();
    serve(socket, ROOMS, seen_tx);

    // The first decisions arrive while the rest of the pass is still to be decided.
    let mut received = 0;
    while received == 0 {
        match seen.recv_timeout(Duration::from_secs(60)) {
            Ok((_, Seen::Permissions(n))) => received += n,
            Ok((_, Seen::SnapshotPage { .. })) => {}
            other => panic!("no decision arrived: {:?}", other.is_ok()),
        }
    }
    let status = podium.terminate();
    while let Ok((_, seen)) = seen.recv_timeout(Duration::from_secs(5)) {
        match seen {
            Seen::Permissions(n) => received += n,
            Seen::Closed => break,
            Seen::SnapshotPage { .. } => {}
        }
    }
    assert!(status.success(), "{status}");
    assert!(
        podium.lines().iter().any(|l| l.contains("\"stopped\"")),
        "{}",
        podium.lines().join("\n")
    );
    let audited: i64 = runtime.block_on(async {
        sqlx::query_scalar("SELECT COUNT(*) FROM decisions_full WHERE cause = 'resync'")
            .fetch_one(store.pool())
            .await
            .unwrap()
    });
    eprintln!(
        "sent before podium stopped: {received} of {}; audited: {audited}",
        ROOMS * PER_ROOM
    );
    assert!(
        audited >= received as i64,
        "{received} decisions sent, {audited} audited"
    );
    runtime.block_on(store.close());
}
