//! Enforcement in media, not in signalling: two real lib-jitsi-meet clients (the page of
//! `tests/real-client/` in Chromium, fake microphone and camera) send media through the operator's
//! jitsi-videobridge, signalled by the operator's jicofo, in a real Prosody with mod_podium and the
//! real podium binary on SQLite. The receiving page samples WebRTC `getStats` every 100 ms
//! (`sample` in page.js); the test counts its inbound RTP bytes per kind (and the sender's outbound
//! bytes, to show the sender was sending) and prints, per figure, the median and range in ms:
//! * a denied kind arrives with 0 bytes while the sender sends it (at join, after a revoke with the
//!   sender unmuting again, and a screenshare while the screen is denied);
//! * after a SQL grant, the first bytes of that kind arrive within [`START_LIMIT`];
//! * after a SQL revoke, that kind's bytes stop growing within [`STOP_LIMIT`].
//!
//! Opt-in, because CI has no jicofo and no bridge: `cargo test --test real_media -- --ignored
//! --nocapture` with `TEST_JICOFO` and `TEST_JVB` set to shell commands that start the
//! operator's jicofo and bridge with the configuration file this test writes, named by `{config}`
//! in the command (e.g. `java -Dconfig.file={config} -cp '<install>/lib/*' org.jitsi.jicofo.Main`
//! for jicofo, `org.jitsi.videobridge.MainKt` for the bridge). `TEST_JVB_ADDRESS`, if set, is the
//! only address the bridge offers for ICE (it ignores loopback, so give it another local address);
//! `TEST_MEDIA_ROUNDS` sets the rounds (default 5); `TEST_REAL_CLIENT_DIR` picks the library, as
//! for `tests/real_client.rs`. Each round uses a fresh room and fresh pages: the 2021
//! lib-jitsi-meet fails a renegotiation that adds back a source it saw removed ("Duplicate a=msid
//! lines", the conference fails with `conference.offerAnswerFailed`), so a kind is granted at most
//! once per conference here.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use common::browser::{Browser, PageParams};
use common::c2s::C2s;
use common::conference::LECTURE_RULES;
use common::podium::{Podium, write_config};
use common::prosody::{
    BREWERY, CONFERENCE_OPTIONS, DOMAIN, MUC, PASSWORD, Prosody, die_with_parent, free_port,
};
use common::{decided, edit_rules, wait_held};

const USERS: &[&str] = &["focus", "jvb", "alice", "bob", "inspector"];

/// The first bytes of a granted kind arrive within this long after the SQL edit.
const START_LIMIT: Duration = Duration::from_secs(5);
/// A revoked kind's bytes stop growing within this long after the SQL edit.
const STOP_LIMIT: Duration = Duration::from_secs(2);
/// How long the receiving page is watched after a revoke.
const STOP_WATCH: Duration = Duration::from_secs(4);
/// How long a window of "nothing of this kind arrives" lasts.
const WINDOW: Duration = Duration::from_secs(3);

/// bob (a participant) may not speak: added to [`LECTURE_RULES`], which already deny him a camera.
const BOB_SILENT: &str = "INSERT INTO rules (id, room, who, who_value, media, effect, priority)
    VALUES (4, 'lecture-*', 'jid', 'bob@*', 'audio', 'deny', 30)";
const BOB_SPEAKS: &str = "DELETE FROM rules WHERE id = 4";
/// Rule 2 of [`LECTURE_RULES`] (no cameras for participants) off and on.
const CAMERAS_ALLOWED: &str = "UPDATE rules SET enabled = 0 WHERE id = 2";
const CAMERAS_DENIED: &str = "UPDATE rules SET enabled = 1 WHERE id = 2";
/// bob may not share his screen.
const BOB_NO_SCREEN: &str = "INSERT INTO rules (id, room, who, who_value, media, effect, priority)
    VALUES (5, 'lecture-*', 'jid', 'bob@*', 'screen', 'deny', 30)";

/// Milliseconds since the epoch: the clock the page stamps its samples with (same machine).
fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap()
}

/// The operator's command in `variable`, with `{config}` replaced by `config`. Panics, saying what
/// to set, when the variable is missing or does not use `{config}`.
fn operator_command(variable: &str, what: &str, config: &Path) -> String {
    let command = std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: this opt-in test runs the operator's {what}. Set {variable} to a \
             shell command that starts it with the configuration file `{{config}}`, e.g. \
             `java -Dconfig.file={{config}} -cp '<install dir>/lib/*' <main class>`"
        )
    });
    assert!(
        command.contains("{config}"),
        "{variable} must name the configuration file this test writes as `{{config}}`: {command}"
    );
    command.replace("{config}", &config.display().to_string())
}

/// A Java server the operator supplied, in its own process group; its output goes to `log`.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(command: &str, log: PathBuf) -> Server {
        let file = std::fs::File::create(&log).unwrap();
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        die_with_parent(&mut shell);
        let child = shell
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start `{command}`: {error}"));
        Server { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log after `limit`.
    async fn wait_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this Server started (its leader is `child`).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// jicofo on the test Prosody: TLS off (plain c2s on loopback), the test brewery, no health checks
/// (they need a bridge REST API), no SCTP (the bridge may have no native SCTP).
fn start_jicofo(prosody: &Prosody) -> Server {
    let config = prosody.data_dir().join("jicofo.conf");
    std::fs::write(
        &config,
        format!(
            "jicofo {{
  xmpp.client {{ hostname = \"127.0.0.1\", port = {c2s}, domain = \"{DOMAIN}\", xmpp-domain = \"{DOMAIN}\",
    username = \"focus\", password = \"{PASSWORD}\", use-tls = false, conference-muc-jid = \"{MUC}\" }}
  bridge {{ brewery-jid = \"{BREWERY}\", health-checks.enabled = false }}
  sctp.enabled = false
  rest {{ port = {rest} }}
}}
",
            c2s = prosody.c2s_port,
            rest = free_port(),
        ),
    )
    .unwrap();
    let command = operator_command("TEST_JICOFO", "jicofo", &config);
    Server::start(&command, prosody.data_dir().join("jicofo.log"))
}

/// The bridge on the test Prosody: joins the brewery as `jvb`, serves the bridge channel over plain
/// WebSocket on loopback, ICE on UDP only, no STUN or AWS address discovery, no SCTP.
fn start_bridge(prosody: &Prosody) -> Server {
    let config = prosody.data_dir().join("jvb.conf");
    let public = free_port();
    let allowed = std::env::var("TEST_JVB_ADDRESS")
        .map(|address| format!("\"{address}\""))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "videobridge {{
  apis.xmpp-client.configs.podium-test {{
    hostname = \"127.0.0.1\", port = \"{c2s}\", domain = \"{DOMAIN}\", username = \"jvb\",
    password = \"{PASSWORD}\", muc_jids = \"{BREWERY}\", muc_nickname = \"jvb-1\",
    disable_certificate_verification = true, security_mode = \"disabled\"
  }}
  sctp.enabled = false
  http-servers.public {{ host = \"127.0.0.1\", port = {public} }}
  http-servers.private {{ host = \"127.0.0.1\", port = {private} }}
  websockets {{ enabled = true, tls = false, domains = [ \"127.0.0.1:{public}\" ], server-id = \"jvb-1\" }}
  ice {{ udp.port = {udp}, tcp.enabled = false }}
}}
ice4j.harvest {{
  use-ipv6 = false
  mapping.aws.enabled = false
  mapping.stun.addresses = [ ]
  allowed-addresses = [ {allowed} ]
}}
",
            c2s = prosody.c2s_port,
            private = free_port(),
            udp = free_port(),
        ),
    )
    .unwrap();
    let command = operator_command("TEST_JVB", "jitsi-videobridge", &config);
    Server::start(&command, prosody.data_dir().join("jvb.log"))
}

/// Everything but the pages: Prosody (WebSocket for the pages), podium under [`LECTURE_RULES`],
/// the operator's bridge and jicofo (once jicofo has found the bridge), the inspector.
struct Stage {
    prosody: Prosody,
    podium: Podium,
    db: PathBuf,
    inspector: C2s,
    _bridge: Server,
    _jicofo: Server,
}

impl Stage {
    async fn start() -> Stage {
        let prosody = Prosody::start_with_websocket(USERS, CONFERENCE_OPTIONS);
        let bridge = start_bridge(&prosody);
        let jicofo = start_jicofo(&prosody);
        // jicofo's own words once the bridge's presence in the brewery is in.
        jicofo
            .wait_log("Added new videobridge", Duration::from_secs(120))
            .await;
        let db = prosody.data_dir().join("rules/podium.db");
        let podium = Podium::start(&write_config(&prosody, &db, ""));
        podium.wait_for(&["resync complete"]).await;
        edit_rules(&podium, &db, LECTURE_RULES).await;
        let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
        Stage {
            prosody,
            podium,
            db,
            inspector,
            _bridge: bridge,
            _jicofo: jicofo,
        }
    }

    /// Edits the rules; returns the time (ms since the epoch) just before the edit.
    async fn edit(&self, sql: &str) -> i64 {
        let started = now_ms();
        edit_rules(&self.podium, &self.db, sql).await;
        started
    }
}

/// One page's `getStats` samples so far (`samples` in page.js).
#[derive(Default)]
struct Samples(Vec<Value>);

impl Samples {
    /// Per sample: its time and the byte counter of each RTP stream of `direction` ("in" or
    /// "out") and `kind` ("audio" or "video"), by SSRC.
    fn counters(&self, direction: &str, kind: &str) -> Vec<(i64, BTreeMap<u64, u64>)> {
        self.0
            .iter()
            .map(|sample| {
                let streams = sample["streams"].as_array().expect("streams");
                let bytes = streams
                    .iter()
                    .filter(|stream| stream["dir"] == direction && stream["kind"] == kind)
                    .map(|stream| {
                        (
                            stream["ssrc"].as_u64().expect("an SSRC"),
                            stream["bytes"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect();
                (sample["t"].as_i64().expect("a time"), bytes)
            })
            .collect()
    }

    /// The times (from `since` on) of the samples in which some stream of `direction` and `kind`
    /// had grown since the sample before.
    fn growth(&self, direction: &str, kind: &str, since: i64) -> Vec<i64> {
        self.counters(direction, kind)
            .windows(2)
            .filter(|pair| pair[1].0 >= since)
            .filter(|pair| {
                pair[1]
                    .1
                    .iter()
                    .any(|(ssrc, bytes)| *bytes > pair[0].1.get(ssrc).copied().unwrap_or(0))
            })
            .map(|pair| pair[1].0)
            .collect()
    }

    /// The SSRCs of every stream of `direction` and `kind` sampled so far.
    fn ssrcs(&self, direction: &str, kind: &str) -> BTreeSet<u64> {
        self.counters(direction, kind)
            .into_iter()
            .flat_map(|(_, counters)| counters.into_keys())
            .collect()
    }

    /// The bytes of `direction` and `kind` that arrived (or left) between `from` and `to`.
    fn bytes(&self, direction: &str, kind: &str, from: i64, to: i64) -> u64 {
        self.bytes_except(direction, kind, from, to, &BTreeSet::new())
    }

    /// Like [`Samples::bytes`], leaving out the streams of `except` (SSRCs).
    fn bytes_except(
        &self,
        direction: &str,
        kind: &str,
        from: i64,
        to: i64,
        except: &BTreeSet<u64>,
    ) -> u64 {
        let mut before = BTreeMap::new();
        let mut last = BTreeMap::new();
        for (at, counters) in self.counters(direction, kind) {
            let into = if at < from {
                &mut before
            } else if at <= to {
                &mut last
            } else {
                continue;
            };
            into.extend(
                counters
                    .into_iter()
                    .filter(|(ssrc, _)| !except.contains(ssrc)),
            );
        }
        last.iter()
            .map(|(ssrc, bytes)| bytes.saturating_sub(before.get(ssrc).copied().unwrap_or(0)))
            .sum()
    }

    fn ice(&self) -> &str {
        self.0
            .last()
            .and_then(|sample| sample["ice"].as_str())
            .unwrap_or("")
    }
}

/// Bytes of one window: what alice received and bob sent, per kind.
#[derive(Debug)]
struct Window {
    received_audio: u64,
    received_video: u64,
    sent_audio: u64,
    sent_video: u64,
}

/// alice (the lecturer, receiving) and bob (a participant, sending) in one room.
struct Pair {
    alice: Browser,
    bob: Browser,
    room: &'static str,
    alice_nick: String,
    bob_nick: String,
    received: Samples,
    sent: Samples,
}

impl Pair {
    /// alice joins, then bob; returns once the module holds `bob_may` for bob, both pages sample
    /// `getStats` and ICE is connected on both. Each page asks the bridge for video up to 720p
    /// (without receiver constraints the bridge forwards no video).
    async fn join(stage: &mut Stage, room: &'static str, bob_may: &str) -> Pair {
        let page = |user| PageParams {
            user,
            room,
            nick: user,
            source_names: false,
            codecs: None,
        };
        let alice = Browser::open(&stage.prosody, page("alice")).await;
        let alice_nick = nick(&alice).await;
        let everything = "audio,video,screen";
        let held = [(alice_nick.as_str(), everything)];
        wait_held(&mut stage.inspector, &stage.podium, room, &decided(&held)).await;
        let bob = Browser::open(&stage.prosody, page("bob")).await;
        let bob_nick = nick(&bob).await;
        let held = [
            (alice_nick.as_str(), everything),
            (bob_nick.as_str(), bob_may),
        ];
        wait_held(&mut stage.inspector, &stage.podium, room, &decided(&held)).await;
        for browser in [&alice, &bob] {
            let constraints = json!({"lastN": -1, "defaultConstraints": {"maxHeight": 720}});
            browser
                .step(json!({"step": "receive", "constraints": constraints}))
                .await;
            browser.step(json!({"step": "sample", "every": 100})).await;
        }
        let mut pair = Pair {
            alice,
            bob,
            room,
            alice_nick,
            bob_nick,
            received: Samples::default(),
            sent: Samples::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            pair.pull().await;
            let connected = |samples: &Samples| matches!(samples.ice(), "connected" | "completed");
            if connected(&pair.received) && connected(&pair.sent) {
                return pair;
            }
            assert!(
                Instant::now() < deadline,
                "ICE to the bridge: alice {}, bob {}",
                pair.received.ice(),
                pair.sent.ice()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Takes the samples both pages took since the last pull.
    async fn pull(&mut self) {
        for (browser, samples) in [
            (&self.alice, &mut self.received),
            (&self.bob, &mut self.sent),
        ] {
            let answer = browser.step(json!({"step": "samples"})).await;
            samples
                .0
                .extend(answer["samples"].as_array().cloned().unwrap_or_default());
        }
    }

    /// Watches both pages for `length`; returns the bytes of the window.
    async fn window(&mut self, label: &str, length: Duration) -> Window {
        let from = now_ms();
        tokio::time::sleep(length).await;
        self.pull().await;
        let to = now_ms();
        let window = Window {
            received_audio: self.received.bytes("in", "audio", from, to),
            received_video: self.received.bytes("in", "video", from, to),
            sent_audio: self.sent.bytes("out", "audio", from, to),
            sent_video: self.sent.bytes("out", "video", from, to),
        };
        println!("  {label}: {window:?}");
        window
    }

    /// bob turns `kind` on (his page's unmute) as soon as the module holds `bob_may` for him, as a
    /// person does once allowed: the module muted his track when it withheld the kind, and nothing
    /// unmutes a client but the client (jicofo never does).
    async fn bob_turns_on(&self, stage: &mut Stage, bob_may: &str, kind: &str) {
        let held = [
            (self.alice_nick.as_str(), "audio,video,screen"),
            (self.bob_nick.as_str(), bob_may),
        ];
        wait_held(
            &mut stage.inspector,
            &stage.podium,
            self.room,
            &decided(&held),
        )
        .await;
        self.bob.step(json!({"step": "unmute", "kind": kind})).await;
    }

    /// Waits (at most `limit`) until alice receives bytes of `kind` after `since`; the ms from
    /// `since`.
    async fn first_bytes(&mut self, kind: &str, since: i64, limit: Duration) -> i64 {
        let deadline = Instant::now() + limit;
        loop {
            self.pull().await;
            if let Some(at) = self.received.growth("in", kind, since).first() {
                return at - since;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} bytes at alice within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Watches alice for [`STOP_WATCH`] after `since`; the ms from `since` to the last sample in
    /// which her `kind` bytes grew (0: none grew).
    async fn last_bytes(&mut self, kind: &str, since: i64) -> i64 {
        tokio::time::sleep(STOP_WATCH).await;
        self.pull().await;
        let last = self.received.growth("in", kind, since).last().copied();
        last.map_or(0, |at| at - since)
    }
}

/// The page's endpoint id (its MUC nick), once it has joined.
async fn nick(browser: &Browser) -> String {
    let joined = browser.wait_type("conference-joined").await;
    joined["myUserId"]
        .as_str()
        .expect("an endpoint id")
        .to_owned()
}

/// Asserts that nothing of bob's arrived at alice in `window`, while bob sent audio. bob's video
/// counts in `video_sent`: a current lib-jitsi-meet may stop sending a video the bridge forwards to
/// nobody (the bridge's sender constraints), so the caller checks that some window had it.
fn nothing_arrives(window: &Window, video_sent: &mut usize) {
    assert!(window.sent_audio > 0, "bob sends audio: {window:?}");
    if window.sent_video > 0 {
        *video_sent += 1;
    } else {
        println!("  (bob's library sent no video in this window)");
    }
    assert_eq!(
        (window.received_audio, window.received_video),
        (0, 0),
        "{window:?}"
    );
}

/// Notes `value` (ms) under `figure` and prints it.
fn record(figures: &mut BTreeMap<&'static str, Vec<i64>>, figure: &'static str, value: i64) {
    println!("  {figure}: {value} ms");
    figures.entry(figure).or_default().push(value);
}

/// "median [min-max] ms (n)" of `values`.
fn spread(values: &[i64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    format!(
        "{} ms [{}-{}] (n={})",
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
        sorted.len()
    )
}

/// A camera and a microphone withheld at join carry no media; each grant brings its kind within
/// [`START_LIMIT`], each revoke stops it within [`STOP_LIMIT`], and a revoked sender who unmutes
/// again reaches nobody. Then a screenshare while the screen is denied carries no media.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the operator's jicofo and jitsi-videobridge: set TEST_JICOFO and TEST_JVB (see the file's doc)"]
async fn media_follows_the_rules_through_the_real_bridge() {
    let rounds: usize = std::env::var("TEST_MEDIA_ROUNDS")
        .ok()
        .map(|rounds| rounds.parse().expect("TEST_MEDIA_ROUNDS is a number"))
        .unwrap_or(5);
    let mut stage = Stage::start().await;
    let mut figures: BTreeMap<&str, Vec<i64>> = BTreeMap::new();

    stage.edit(BOB_SILENT).await;
    let mut video_sent_while_denied = 0;
    for round in 0..rounds {
        let room: &'static str = Box::leak(format!("lecture-media-{round}").into_boxed_str());
        println!("round {round} ({room})");
        let mut pair = Pair::join(&mut stage, room, "screen").await;
        let at_join = pair.window("denied at join", WINDOW).await;
        nothing_arrives(&at_join, &mut video_sent_while_denied);

        let granted = stage.edit(BOB_SPEAKS).await;
        pair.bob_turns_on(&mut stage, "audio,screen", "audio").await;
        let started = pair.first_bytes("audio", granted, START_LIMIT).await;
        record(&mut figures, "audio: grant to first bytes", started);
        let camera_denied = pair.window("camera denied, audio granted", WINDOW).await;
        assert!(camera_denied.received_audio > 0, "{camera_denied:?}");
        if camera_denied.sent_video > 0 {
            video_sent_while_denied += 1;
        }
        assert_eq!(camera_denied.received_video, 0, "{camera_denied:?}");

        let granted = stage.edit(CAMERAS_ALLOWED).await;
        pair.bob_turns_on(&mut stage, "audio,video,screen", "video")
            .await;
        let started = pair.first_bytes("video", granted, START_LIMIT).await;
        record(&mut figures, "video: grant to first bytes", started);
        pair.window("both granted", WINDOW).await;

        let revoked = stage.edit(CAMERAS_DENIED).await;
        let stopped = pair.last_bytes("video", revoked).await;
        record(&mut figures, "video: revoke to last bytes", stopped);
        let revoked = stage.edit(BOB_SILENT).await;
        let stopped = pair.last_bytes("audio", revoked).await;
        record(&mut figures, "audio: revoke to last bytes", stopped);

        // The revoke muted bob's tracks (the mute IQs), and an unmute is told to mute again; a
        // modified client sends both anyway, behind its library's back.
        for kind in ["video", "audio"] {
            let done = pair
                .bob
                .step(json!({"step": "send-anyway", "kind": kind}))
                .await;
            println!(
                "  bob sends {kind} anyway on {} transceivers ({})",
                done["replaced"], done["directions"]
            );
        }
        let unmuted = pair.window("both revoked, bob sends anyway", WINDOW).await;
        nothing_arrives(&unmuted, &mut video_sent_while_denied);
    }
    assert!(
        video_sent_while_denied > 0,
        "in no window did bob send video while it was denied: nothing was tested"
    );

    stage.edit(BOB_SPEAKS).await;
    stage.edit(CAMERAS_ALLOWED).await;
    // Round 0 is the control: the screen allowed, its bytes must arrive (so the zeros below are
    // the rule's doing, not the measurement's). Then the screen is denied.
    for round in 0..=rounds {
        let allowed = round == 0;
        if round == 1 {
            stage.edit(BOB_NO_SCREEN).await;
        }
        let room: &'static str = Box::leak(format!("lecture-screen-{round}").into_boxed_str());
        println!("screenshare round {round} ({room}), screen allowed: {allowed}");
        let bob_may = if allowed {
            "audio,video,screen"
        } else {
            "audio,video"
        };
        let mut pair = Pair::join(&mut stage, room, bob_may).await;
        // A camera allowed at join: the bridge forwards it once it has a keyframe.
        pair.first_bytes("video", now_ms(), Duration::from_secs(15))
            .await;
        pair.window("camera allowed", WINDOW).await;
        let (received_before, sent_before) = (
            pair.received.ssrcs("in", "video"),
            pair.sent.ssrcs("out", "video"),
        );
        let shared = now_ms();
        let done = pair.bob.step(json!({"step": "share-screen"})).await;
        if !allowed {
            // The module tells bob's client to mute the screen it withholds; a modified client
            // sends it anyway.
            let anyway = pair
                .bob
                .step(json!({"step": "send-anyway", "kind": "video"}))
                .await;
            println!(
                "  bob sends his video anyway on {} transceivers ({})",
                anyway["replaced"], anyway["directions"]
            );
        }
        if done["mode"] == "replace" {
            // The 2021 library: the screen replaces the camera on the same sources, so everything
            // of bob's video stops when the screen is denied.
            let stopped = pair.last_bytes("video", shared).await;
            if !allowed {
                record(
                    &mut figures,
                    "screenshare: switch to last camera bytes",
                    stopped,
                );
            }
            let sharing = pair.window("bob shares his screen", WINDOW).await;
            assert!(sharing.sent_video > 0, "bob sends his screen: {sharing:?}");
            assert_eq!(sharing.received_video > 0, allowed, "{sharing:?}");
        } else {
            // A current library: the screen is a second video track with sources of its own;
            // the camera goes on, and nothing arrives on another stream unless the screen is
            // allowed.
            let from = now_ms();
            let sharing = pair
                .window("bob shares his screen beside his camera", WINDOW)
                .await;
            let to = now_ms();
            let screen_sent = pair
                .sent
                .bytes_except("out", "video", from, to, &sent_before);
            let screen_received =
                pair.received
                    .bytes_except("in", "video", from, to, &received_before);
            println!("  screen: sent {screen_sent} B, received {screen_received} B");
            assert!(screen_sent > 0, "bob sends his screen: {sharing:?}");
            assert_eq!(screen_received > 0, allowed, "{sharing:?}");
            assert!(
                sharing.received_video > 0,
                "the camera goes on: {sharing:?}"
            );
        }
    }

    for (figure, values) in &figures {
        println!("{figure}: {}", spread(values));
    }
    for (figure, values) in &figures {
        let limit = if figure.contains("first") {
            START_LIMIT
        } else {
            STOP_LIMIT
        };
        assert!(
            values.iter().all(|value| *value <= ms(limit)),
            "{figure}: {values:?} (limit {limit:?})"
        );
    }
}
