//! Simulated occupants for `scripts/run`: people join, change role and leave a room while an admin
//! edits a rule with SQL; after each step the demo shows what mod_podium holds for everyone.
//!
//! Usage: demo <c2s port> <podium database>   (scripts/run starts Prosody and podium first)

#[path = "../tests/common/c2s.rs"]
#[allow(dead_code)]
mod c2s;

/// The addresses `scripts/run` configures, as the test client expects them.
mod prosody {
    pub const DOMAIN: &str = "localhost";
    pub const MUC: &str = "conference.localhost";
    pub const PASSWORD: &str = "pw";
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use c2s::{C2s, attr, el};

const ROOM: &str = "demo";

fn step(text: &str) {
    println!("\n\x1b[1;36m▶ {text}\x1b[0m");
}

fn sql(db: &Path, statement: &str) {
    println!("  \x1b[33msqlite3> {statement}\x1b[0m");
    let status = std::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(db)
        .arg(statement)
        .status()
        .expect("sqlite3");
    assert!(status.success());
}

/// Waits a moment for podium to decide, then prints what the module holds.
async fn show(inspector: &mut C2s) {
    tokio::time::sleep(Duration::from_millis(800)).await;
    let held = inspector.inspect(ROOM).await;
    if held.is_empty() {
        println!("  (room is empty)");
    }
    for (nick, (kinds, origin)) in held {
        let kinds = if kinds == "none" {
            "nothing".to_owned()
        } else {
            kinds.replace(',', " + ")
        };
        println!("  {nick:<8} may send {kinds:<24} ({origin})");
    }
}

async fn make_moderator(owner: &mut C2s, nick: &str) {
    let answer = owner
        .iq(
            "set",
            &format!("{ROOM}@{}", prosody::MUC),
            el("query", "http://jabber.org/protocol/muc#admin")
                .append(
                    el("item", "http://jabber.org/protocol/muc#admin")
                        .attr(attr("nick"), nick)
                        .attr(attr("role"), "moderator"),
                )
                .build(),
        )
        .await;
    assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: demo <c2s port> <db>");
    let db = PathBuf::from(args.next().expect("usage: demo <c2s port> <db>"));

    let mut inspector = C2s::connect(port, "inspector", "demo").await;
    for round in 1.. {
        println!(
            "\n\x1b[1m━━━ round {round}: room {ROOM}@{} ━━━\x1b[0m",
            prosody::MUC
        );
        step("ada joins and creates the room (owner, so moderator)");
        let mut ada = C2s::connect(port, "ada", "web").await;
        ada.join(ROOM, "ada").await;
        show(&mut inspector).await;

        step("ben joins (participant)");
        let mut ben = C2s::connect(port, "ben", "web").await;
        ben.join(ROOM, "ben").await;
        show(&mut inspector).await;

        step("cleo joins with a token (JWT group acme)");
        let mut cleo = C2s::connect(port, "token-cleo", "web").await;
        cleo.join(ROOM, "cleo").await;
        show(&mut inspector).await;

        step(
            "an admin edits a rule with SQL while everyone is in the room: acme may share screens",
        );
        sql(
            &db,
            "UPDATE rules SET enabled = 1 WHERE note = 'demo: acme shares screens';",
        );
        show(&mut inspector).await;

        step("ada makes ben a moderator");
        make_moderator(&mut ada, "ben").await;
        show(&mut inspector).await;

        step("ben leaves");
        ben.leave(ROOM, "ben").await;
        show(&mut inspector).await;

        step("the admin turns the rule off again");
        sql(
            &db,
            "UPDATE rules SET enabled = 0 WHERE note = 'demo: acme shares screens';",
        );
        show(&mut inspector).await;

        step("cleo and ada leave");
        cleo.leave(ROOM, "cleo").await;
        ada.leave(ROOM, "ada").await;
        show(&mut inspector).await;
        println!(
            "\n(the audit log: sqlite3 {} 'SELECT * FROM decisions ORDER BY id DESC LIMIT 10')",
            db.display()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}
