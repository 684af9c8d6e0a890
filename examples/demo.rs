//! The live demo conference for `scripts/run`: a focus (jicofo's signalling), a bridge (JVB's Colibri2)
//! and lib-jitsi-meet-shaped participants, the same stand-ins the tests use (tests/common/), meet on a
//! real Prosody with mod_podium while podium decides from SQL rules. After each scripted step, and
//! then whenever anything changes, it prints who may send what, what the focus and the bridge hold,
//! and what the clients were told. Edit rules with `sqlite3` in another terminal and watch.
//!
//! Usage: demo <c2s port> <podium database>   (scripts/run starts Prosody and podium first)

#![allow(dead_code)]

#[path = "../tests/common/bridge.rs"]
mod bridge;
#[path = "../tests/common/c2s.rs"]
mod c2s;
#[path = "../tests/common/focus.rs"]
mod focus;
#[path = "../tests/common/jingle.rs"]
mod jingle;
#[path = "../tests/common/participant.rs"]
mod participant;
#[path = "../tests/common/peer.rs"]
mod peer;

/// The addresses `scripts/run` configures, as the stand-ins expect them.
mod prosody {
    pub const DOMAIN: &str = "localhost";
    pub const MUC: &str = "conference.localhost";
    pub const PASSWORD: &str = "pw";
    pub const BREWERY: &str = "jvbbrewery@internal.localhost";
    pub const FOCUS_ACCOUNT: &str = "focus@localhost";
}

/// Distinct numbers for the stand-ins' ids and SSRCs.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The stand-ins' limits as in the tests (tests/common/mod.rs `patient`, factor 1).
fn patient(limit: Duration) -> Duration {
    limit
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge::BridgePeer;
use c2s::{C2s, attr, el};
use focus::FocusPeer;
use jingle::{MUTE_AUDIO, MUTE_DESKTOP, MUTE_VIDEO, Media, SourceSet};
use participant::{Participant, Shape};

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

/// "audio 1, camera 6, screen 6" for a set of sources.
fn describe(sources: &SourceSet) -> String {
    let audio = sources.ssrcs_of(Media::Audio).len();
    let screen = sources.desktop().len();
    let camera = sources.ssrcs_of(Media::Video).len() - screen;
    let mut parts = Vec::new();
    for (name, count) in [("audio", audio), ("camera", camera), ("screen", screen)] {
        if count > 0 {
            parts.push(format!("{name} {count}"));
        }
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One line per participant: what podium allows, what jicofo and the bridge hold, what the client
/// was told.
async fn table(
    inspector: &mut C2s,
    focus: &FocusPeer,
    bridge: &BridgePeer,
    people: &[&Participant],
) -> String {
    let held = inspector.inspect(ROOM).await;
    let mut out = format!(
        "  {:<6} {:<20} {:<28} {:<24} {}\n",
        "who",
        "may send (podium)",
        "focus (jicofo) holds",
        "bridge holds / force-mute",
        "client was told"
    );
    for person in people {
        let may = held
            .get(&person.nick)
            .map(|(kinds, origin)| {
                let kinds = if kinds == "none" {
                    "nothing".to_owned()
                } else {
                    kinds.replace(',', "+")
                };
                if origin == "default" {
                    format!("{kinds} (default)")
                } else {
                    kinds
                }
            })
            .unwrap_or_else(|| "-".to_owned());
        let at_focus = describe(&focus.sources(&format!("{ROOM}/{}", person.nick)));
        let at_bridge = match bridge.endpoint(ROOM, &person.nick) {
            Some(endpoint) => {
                let mut muted = Vec::new();
                if endpoint.force_mute_audio {
                    muted.push("audio");
                }
                if endpoint.force_mute_video {
                    muted.push("video");
                }
                format!(
                    "a{} v{} / {}",
                    endpoint.audio_ssrcs.len(),
                    endpoint.video_ssrcs.len(),
                    if muted.is_empty() {
                        "-".to_owned()
                    } else {
                        muted.join("+")
                    }
                )
            }
            None => "-".to_owned(),
        };
        let told: Vec<&str> = person
            .mutes()
            .iter()
            .map(|mute| match mute.namespace.as_str() {
                MUTE_AUDIO => "mute audio",
                MUTE_VIDEO => "mute camera",
                MUTE_DESKTOP => "mute screen",
                _ => "mute ?",
            })
            .collect();
        out.push_str(&format!(
            "  {:<6} {:<20} {:<28} {:<24} {}\n",
            person.nick,
            may,
            at_focus,
            at_bridge,
            if told.is_empty() {
                "-".to_owned()
            } else {
                told.join(", ")
            }
        ));
    }
    out
}

/// Lets podium decide and the signalling settle (a demo may wait; the tests wait on signals), then
/// prints the table.
async fn show(
    inspector: &mut C2s,
    focus: &FocusPeer,
    bridge: &BridgePeer,
    people: &[&Participant],
) {
    tokio::time::sleep(Duration::from_millis(800)).await;
    print!("{}", table(inspector, focus, bridge, people).await);
}

/// jicofo makes a participant moderator (its AutoOwnerRoleManager gives the first one owner).
async fn make_moderator(focus: &FocusPeer, nick: &str) {
    let answer = focus
        .handle()
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
    step("the bridge (jvb-1) joins the bridge MUC; the focus joins it and finds the bridge");
    let bridge = BridgePeer::connect(port).await;
    let focus = FocusPeer::connect(port).await;
    println!("  bridge {} · focus {}", bridge.jid, focus.jid);

    step(
        "ada, ben and cleo (token user, JWT group acme) join: the focus invites each, they accept with audio and camera",
    );
    let ada = Participant::join(port, "ada", ROOM, "ada", Shape::Current).await;
    make_moderator(&focus, "ada").await;
    let ben = Participant::join(port, "ben", ROOM, "ben", Shape::Current).await;
    let cleo = Participant::join(port, "token-cleo", ROOM, "cleo", Shape::Current).await;
    let people = [&ada, &ben, &cleo];
    show(&mut inspector, &focus, &bridge, &people).await;
    println!(
        "  (ben's camera was withheld from jicofo: nobody else learns it, the bridge drops it)"
    );

    step(
        "ben starts a screenshare: his source-add is answered by mod_podium and never reaches jicofo",
    );
    let _ = ben.add_screenshare().await;
    show(&mut inspector, &focus, &bridge, &people).await;

    step("an admin lets acme share screens (SQL, while everyone is in the room); cleo shares hers");
    sql(
        &db,
        "UPDATE rules SET enabled = 1 WHERE note = 'demo: acme shares screens';",
    );
    let _ = cleo.add_screenshare().await;
    show(&mut inspector, &focus, &bridge, &people).await;

    step(
        "the admin silences ben: source-remove to jicofo, force-mute at the bridge, a mute IQ to his client",
    );
    sql(
        &db,
        "INSERT INTO rules (room, who, who_value, media, effect, priority, note) VALUES ('demo', 'jid', 'ben@*', 'audio', 'deny', 5, 'demo: ben is silenced');",
    );
    show(&mut inspector, &focus, &bridge, &people).await;

    step(
        "ada makes ben a moderator: moderators may send anything (priority 10 beats 5); his withheld camera and screen are released",
    );
    make_moderator(&focus, "ben").await;
    show(&mut inspector, &focus, &bridge, &people).await;

    println!(
        "\n\x1b[1mYour turn.\x1b[0m Edit the rules from another terminal, for example:\n  \
         sqlite3 -cmd '.timeout 5000' {db} \"UPDATE rules SET enabled = 0 WHERE note = 'demo: acme shows cameras';\"\n  \
         sqlite3 -cmd '.timeout 5000' {db} \"SELECT id, room, who, who_value, media, effect, priority, enabled, note FROM rules;\"\n  \
         sqlite3 -cmd '.timeout 5000' {db} \"SELECT at, nick, previous, granted, cause FROM decisions ORDER BY id DESC LIMIT 10;\"\n\
         This table is printed again whenever something changes. Ctrl-C stops everything.",
        db = db.display()
    );
    let mut last = String::new();
    loop {
        let now = table(&mut inspector, &focus, &bridge, &people).await;
        if now != last {
            println!();
            print!("{now}");
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
