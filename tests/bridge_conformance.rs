//! The bridge stand-in against recorded reality: the scenario of `tests/common/bridge_conformance.rs`
//! was run against the real jitsi-videobridge (commit and setup in each fixture's header,
//! tests/fixtures/jvb/), and here the stand-in (tests/common/bridge.rs) gets the same requests and
//! must answer as JVB did: the same type, error condition, text and colibri2 reason, the same
//! `conference-modified` shape, no answer where JVB gave none, and the same force-mute flags after
//! each force-mute. A real Prosody without mod_podium, so every request reaches the bridge as sent.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::bridge::{BRIDGE_NICK, BridgePeer};
use common::bridge_conformance::{self, Driver, MuteState, Outcome, Step};
use common::c2s::CLIENT;
use common::conference::lecture;
use common::jingle::COLIBRI2;
use common::prosody::{Prosody, die_with_parent};
use minidom::Element;

const USERS: &[&str] = &["focus", "jvb"];
const FIXTURE_NS: &str = "urn:podium:fixture";

/// A recorded exchange (or session): the XML after the header comment.
fn fixture(name: &str) -> Element {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jvb")
        .join(format!("{name}.xml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let start = text.find("-->").map_or(0, |end| end + 3);
    let body = text[start..].trim();
    body.parse()
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn part<'a>(exchange: &'a Element, name: &str) -> Option<&'a Element> {
    exchange
        .get_child(name, FIXTURE_NS)
        .unwrap_or_else(|| panic!("no <{name}> in the fixture"))
        .get_child("iq", CLIENT)
}

/// The `meeting-id` of a request, if any.
fn meeting_id(request: &Element) -> Option<&str> {
    request
        .get_child("conference-modify", COLIBRI2)?
        .attr("meeting-id")
}

/// The recorded outcome, its texts naming this run's meeting id where the recording named its own.
fn expected(step: &Step, exchange: &Element) -> Option<Outcome> {
    let mut outcome = Outcome::of(part(exchange, "answer"))?;
    let recorded = part(exchange, "request").and_then(meeting_id);
    if let (Some(text), Some(old), Some(new)) =
        (&mut outcome.text, recorded, meeting_id(&step.request))
    {
        *text = text.replace(old, new);
    }
    Some(outcome)
}

fn recorded_states(recording: &Element) -> Vec<MuteState> {
    recording
        .get_child("state", FIXTURE_NS)
        .expect("a <state> in the fixture")
        .children()
        .map(|state| MuteState {
            endpoint: state.attr("endpoint").unwrap_or("").to_owned(),
            audio: state.attr("audio") == Some("true"),
            video: state.attr("video") == Some("true"),
        })
        .collect()
}

/// The stand-in's force-mute flags of `endpoint`, in whichever conference has it.
fn flags(bridge: &BridgePeer, endpoint: &str) -> Option<(bool, bool)> {
    bridge
        .conferences()
        .values()
        .find_map(|conference| conference.endpoints.get(endpoint))
        .map(|view| (view.force_mute_audio, view.force_mute_video))
}

async fn run_against_stand_in() -> Vec<Step> {
    let prosody = Prosody::start_without_podium(USERS);
    let bridge = BridgePeer::connect(prosody.c2s_port).await;
    let driver = Driver::join(prosody.c2s_port, BRIDGE_NICK).await;
    let read = |endpoint: &str| flags(&bridge, endpoint);
    let steps = bridge_conformance::run(&driver, &read).await;
    drop(prosody);
    steps
}

/// Every recorded request gets JVB's answer (or none where JVB sent none), and every force-mute
/// leaves the flags JVB had.
#[tokio::test(flavor = "multi_thread")]
async fn test_stand_in_answers_as_recorded_jvb() {
    let steps = run_against_stand_in().await;
    assert_eq!(steps.len(), 20);
    let mut differences = Vec::new();
    for step in &steps {
        let exchange = fixture(step.label);
        let want = expected(step, &exchange);
        let got = Outcome::of(step.answer.as_ref());
        if got != want {
            differences.push(format!("{}: JVB {want:?}, stand-in {got:?}", step.label));
        }
        let want_states = recorded_states(&exchange);
        if step.states != want_states {
            differences.push(format!(
                "{} force-mute: JVB {want_states:?}, stand-in {:?}",
                step.label, step.states
            ));
        }
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Every Colibri2 request of a real conference (jicofo's, as mod_podium rewrote its force-mutes, and
/// mod_podium's own), replayed to the stand-in in order, gets the answer JVB gave, and the force-mute
/// flags end as JVB's did.
#[tokio::test(flavor = "multi_thread")]
async fn test_stand_in_answers_a_recorded_conference_as_jvb() {
    let session = fixture("session-with-jicofo-and-podium");
    let prosody = Prosody::start_without_podium(USERS);
    let bridge = BridgePeer::connect(prosody.c2s_port).await;
    let driver = Driver::join(prosody.c2s_port, BRIDGE_NICK).await;
    let mut differences = Vec::new();
    let exchanges: Vec<&Element> = session
        .children()
        .filter(|child| child.is("exchange", FIXTURE_NS))
        .collect();
    assert_eq!(exchanges.len(), 12);
    for (index, exchange) in exchanges.into_iter().enumerate() {
        let request = part(exchange, "request").expect("a recorded request");
        let payload = request
            .get_child("conference-modify", COLIBRI2)
            .expect("a conference-modify")
            .clone();
        let answer = driver
            .ask(request.attr("type").unwrap_or("get"), payload)
            .await;
        let want = Outcome::of(part(exchange, "answer"));
        let got = Outcome::of(answer.as_ref());
        if got != want {
            differences.push(format!("request {index}: JVB {want:?}, stand-in {got:?}"));
        }
    }
    for state in recorded_states(&session) {
        let got = flags(&bridge, &state.endpoint);
        if got != Some((state.audio, state.video)) {
            differences.push(format!(
                "{} force-mute: JVB {state:?}, stand-in {got:?}",
                state.endpoint
            ));
        }
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Opt-in: the same requests against the operator's own jitsi-videobridge, which must answer as the
/// recorded one did (its force-mute flags are not read: that needs the bridge's private REST API).
/// `PODIUM_REAL_JVB_CMD` runs under `sh -c` with `PODIUM_C2S_PORT` set to the test Prosody's c2s
/// port (plain XMPP on 127.0.0.1, domain `localhost`); the bridge it starts must sign in there as
/// `jvb` (password `pw`) and join `jvbbrewery@internal.localhost` as `jvb-1`, with SCTP off.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs an operator-supplied jitsi-videobridge: set PODIUM_REAL_JVB_CMD"]
async fn test_real_jvb_answers_as_recorded() {
    let Ok(command) = std::env::var("PODIUM_REAL_JVB_CMD") else {
        panic!(
            "PODIUM_REAL_JVB_CMD is not set: give a shell command that starts your \
             jitsi-videobridge against the Prosody on 127.0.0.1:$PODIUM_C2S_PORT (see this test's doc)"
        );
    };
    let prosody = Prosody::start_without_podium(USERS);
    let mut bridge = Command::new("sh");
    bridge
        .arg("-c")
        .arg(&command)
        .env("PODIUM_C2S_PORT", prosody.c2s_port.to_string())
        .stdin(Stdio::null())
        .process_group(0);
    die_with_parent(&mut bridge);
    let mut bridge = bridge.spawn().expect("PODIUM_REAL_JVB_CMD starts");
    let group = i32::try_from(bridge.id()).expect("a pid");
    let driver = Driver::join_waiting(prosody.c2s_port, BRIDGE_NICK, Duration::from_secs(120))
        .await
        .with_answer_limit(Duration::from_secs(30));
    let steps = bridge_conformance::run(&driver, &|_| None).await;
    // SAFETY: signals only the process group this test started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-group, libc::SIGTERM);
    }
    let _ = bridge.wait();
    let differences: Vec<String> = steps
        .iter()
        .filter_map(|step| {
            let want = expected(step, &fixture(step.label));
            let got = Outcome::of(step.answer.as_ref());
            (got != want).then(|| format!("{}: recorded {want:?}, this bridge {got:?}", step.label))
        })
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
}

/// The `audio` and `video` attributes of the `<force-mute>` in a Colibri2 request, as written.
fn force_mute_attrs(request: &Element) -> (Option<String>, Option<String>) {
    let force_mute = request
        .get_child("conference-modify", COLIBRI2)
        .and_then(|modify| modify.get_child("endpoint", COLIBRI2))
        .and_then(|endpoint| endpoint.get_child("force-mute", COLIBRI2))
        .unwrap_or_else(|| panic!("no <force-mute> in {request:?}"));
    let value = |name: &str| force_mute.attr(name).map(str::to_owned);
    (value("audio"), value("video"))
}

/// jicofo's own force-mute updates (A/V moderation switched on, then a whitelisted self-unmute), as
/// the real jicofo sent them while podium denied bob everything, reach the bridge as the real JVB
/// received them after mod_podium's rewrite: the focus stand-in sends jicofo's shape, the module
/// keeps both of podium's mutes.
#[tokio::test(flavor = "multi_thread")]
async fn test_jicofo_force_mutes_reach_the_bridge_as_recorded() {
    let recording = fixture("jicofo-force-mutes-rewritten");
    let room = "lecture-1";
    let (conference, _alice, _bob) =
        lecture(&["focus", "jvb", "alice", "bob", "inspector"], room).await;
    conference
        .edit(
            "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
            (4, 'lecture-*', 'jid', 'bob@*', 'all', 'deny', 30)",
        )
        .await;
    conference.bridge_force_mute(room, "bob", true, true).await;
    let rewrites: Vec<&Element> = recording
        .children()
        .filter(|child| child.is("rewrite", FIXTURE_NS))
        .collect();
    assert_eq!(rewrites.len(), 2);
    for rewrite in rewrites {
        let iq = |name: &str| {
            rewrite
                .get_child(name, FIXTURE_NS)
                .and_then(|part| part.get_child("iq", CLIENT))
                .unwrap_or_else(|| panic!("no <{name}><iq> in the fixture"))
        };
        let jicofo_sent = force_mute_attrs(iq("sent"));
        let jvb_received = force_mute_attrs(iq("received"));
        let mark = conference.bridge.requests().len();
        let answer = conference
            .focus
            .force_mute(
                "bob",
                jicofo_sent.0.as_deref() == Some("true"),
                jicofo_sent.1.as_deref() == Some("true"),
            )
            .await;
        assert_eq!(answer.attr("type"), Some("result"), "{answer:?}");
        let focus_sent = conference
            .focus
            .sent_to("bob")
            .into_iter()
            .rfind(|sent| sent.what == "force-mute")
            .expect("the focus sent a force-mute");
        assert_eq!(
            force_mute_attrs(&focus_sent.iq),
            jicofo_sent,
            "jicofo's shape"
        );
        let at_bridge = conference
            .bridge
            .requests()
            .into_iter()
            .skip(mark)
            .find(|request| {
                request.from.ends_with("/focus")
                    && request
                        .iq
                        .get_child("conference-modify", COLIBRI2)
                        .and_then(|modify| modify.get_child("endpoint", COLIBRI2))
                        .is_some_and(|endpoint| endpoint.has_child("force-mute", COLIBRI2))
            })
            .expect("the focus's force-mute reached the bridge");
        assert_eq!(
            force_mute_attrs(&at_bridge.iq),
            jvb_received,
            "as JVB received it"
        );
        conference.bridge_force_mute(room, "bob", true, true).await;
    }
}
