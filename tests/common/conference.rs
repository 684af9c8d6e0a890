//! A whole conference for the enforcement tests: a real Prosody (with the bridge MUC), the real podium
//! binary, an inspector, and the stand-ins for the bridge and jicofo (`Conference`); the waits on
//! what the focus, the bridge and the participants hold; and the small stanza helpers several test
//! files share (breakout rooms, A/V moderation).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minidom::Element;

use super::bridge::BridgePeer;
use super::c2s::{C2s, CLIENT, PODIUM, attr, el};
use super::focus::{FocusOptions, FocusPeer, JingleReceived, SessionState};
use super::jingle::{JINGLE, Media, SourceSet};
use super::participant::{Participant, Shape, Track};
use super::podium::{Podium, write_config};
use super::prosody::{AV_MODERATION, BREAKOUT_MUC, CONFERENCE_OPTIONS, MUC, Prosody};
use super::{Held, decided, edit_rules, wait_held};

/// Everyone may send everything.
pub const EVERYTHING: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
    (1, '*', 'everyone', NULL, 'all', 'allow', 0)";

/// Everyone may send everything; participants may not show a camera in lecture rooms; alice (the
/// lecturer) may do anything everywhere. So bob is restricted, and P2P is off in lecture rooms.
pub const LECTURE_RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority, note) VALUES
    (1, '*',         'everyone', NULL,          'all',   'allow', 0,  'default: everything'),
    (2, 'lecture-*', 'role',     'participant', 'video', 'deny',  10, 'no cameras in lectures'),
    (3, '*',         'jid',      'alice@*',     'all',   'allow', 20, 'the lecturer')";

/// Prosody (with the bridge MUC), podium, the inspector, the bridge and the focus.
pub struct Conference {
    pub prosody: Prosody,
    pub podium: Option<Podium>,
    pub db: PathBuf,
    pub inspector: C2s,
    pub bridge: BridgePeer,
    pub focus: FocusPeer,
}

impl Conference {
    /// Prosody for `users` with the conference MUC options, podium (with no extra configuration)
    /// and `rules`.
    pub async fn start(users: &[&str], rules: &str) -> Conference {
        Conference::start_with(
            users,
            CONFERENCE_OPTIONS,
            FocusOptions::default(),
            "",
            rules,
        )
        .await
    }

    /// Like [`Conference::start`], with the MUC options, the focus options and podium's extra
    /// configuration lines.
    pub async fn start_with(
        users: &[&str],
        muc_options: &str,
        focus: FocusOptions,
        podium_extra: &str,
        rules: &str,
    ) -> Conference {
        let mut conference = Conference::without_podium(users, muc_options, focus).await;
        conference.start_podium(podium_extra).await;
        edit_rules(conference.podium(), &conference.db, rules).await;
        conference
    }

    /// Prosody, the inspector, the bridge and the focus; podium not yet started.
    pub async fn without_podium(
        users: &[&str],
        muc_options: &str,
        focus: FocusOptions,
    ) -> Conference {
        Conference::around(Prosody::start_with(users, muc_options), focus).await
    }

    /// The inspector, the bridge and the focus on a Prosody the caller started (say, with its admin
    /// console); podium not yet started.
    pub async fn around(prosody: Prosody, focus: FocusOptions) -> Conference {
        let db = prosody.data_dir().join("rules/podium.db");
        let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
        let bridge = BridgePeer::connect(prosody.c2s_port).await;
        let focus = FocusPeer::connect_with(prosody.c2s_port, focus).await;
        Conference {
            prosody,
            podium: None,
            db,
            inspector,
            bridge,
            focus,
        }
    }

    /// Starts podium (with `extra` configuration lines) and waits for its first resync.
    pub async fn start_podium(&mut self, extra: &str) {
        let podium = Podium::start(&write_config(&self.prosody, &self.db, extra));
        podium.wait_for(&["resync complete"]).await;
        self.podium = Some(podium);
    }

    pub fn podium(&self) -> &Podium {
        self.podium.as_ref().expect("podium is running")
    }

    /// `nick` (account = nick) joins `room` as lib-jitsi-meet does today; returns once the module
    /// holds `held` for the room.
    pub async fn join(&mut self, room: &str, nick: &str, held: &[(&str, &str)]) -> Participant {
        self.join_shaped(room, nick, Shape::Current, held).await
    }

    /// Like [`Conference::join`], for a client of `shape`.
    pub async fn join_shaped(
        &mut self,
        room: &str,
        nick: &str,
        shape: Shape,
        held: &[(&str, &str)],
    ) -> Participant {
        let participant = Participant::join(self.prosody.c2s_port, nick, room, nick, shape).await;
        self.wait_held(room, held).await;
        participant
    }

    /// Waits until the module holds `held` (nick, permissions; all decided by podium) in `room`.
    pub async fn wait_held(&mut self, room: &str, held: &[(&str, &str)]) {
        let expected: Held = decided(held);
        let podium = self.podium.as_ref().expect("podium is running");
        wait_held(&mut self.inspector, podium, room, &expected).await;
    }

    /// Edits rules; returns when podium has loaded them (the module is updated right after).
    pub async fn edit(&self, sql: &str) -> Instant {
        let started = Instant::now();
        edit_rules(self.podium(), &self.db, sql).await;
        started
    }

    /// alice and bob in `room`, each allowed `held`; the focus holds both their audio and camera.
    pub async fn two(&mut self, room: &str, held: &str) -> (Participant, Participant) {
        let alice = self.join(room, "alice", &[("alice", held)]).await;
        let bob = self
            .join(room, "bob", &[("alice", held), ("bob", held)])
            .await;
        self.focus_holds("alice", &sent(&alice)).await;
        self.focus_holds("bob", &sent(&bob)).await;
        (alice, bob)
    }

    /// Waits until the focus holds exactly `sources` for `key` on an active session.
    pub async fn focus_holds(&self, key: &str, sources: &SourceSet) {
        let expected = ssrcs(sources);
        self.focus
            .wait_until(&format!("the focus holds {key}'s {expected:?}"), |view| {
                view.endpoint(key).is_some_and(|endpoint| {
                    endpoint.session == Some(SessionState::Active)
                        && ssrcs(&endpoint.sources) == expected
                })
            })
            .await;
    }

    /// Waits until the focus holds exactly the SSRCs of `sources` for `nick`, whatever the state of
    /// its session.
    pub async fn focus_has(&self, nick: &str, sources: &SourceSet) {
        let expected = ssrcs(sources);
        self.focus
            .wait_until(&format!("the focus holds {nick}'s {expected:?}"), |view| {
                view.endpoint(nick)
                    .is_some_and(|endpoint| ssrcs(&endpoint.sources) == expected)
            })
            .await;
    }

    /// Waits until the focus holds for `nick` exactly `ssrcs`, each as many times as listed, whatever
    /// the state of its session.
    pub async fn focus_has_exactly(&self, nick: &str, ssrcs: &[u32]) {
        let mut expected = ssrcs.to_vec();
        expected.sort_unstable();
        self.focus
            .wait_until(&format!("the focus holds {nick}'s {expected:?}"), |view| {
                view.endpoint(nick).is_some_and(|endpoint| {
                    let mut held = endpoint.sources.ssrcs();
                    held.sort_unstable();
                    held == expected
                })
            })
            .await;
    }

    /// Waits until the bridge holds exactly `sources` for `nick` in `room`.
    pub async fn bridge_holds(&self, room: &str, nick: &str, sources: &SourceSet) {
        bridge_holds(&self.bridge, room, nick, sources).await;
    }

    pub async fn bridge_force_mute(&self, room: &str, nick: &str, audio: bool, video: bool) {
        self.bridge
            .wait_until(
                &format!("the bridge force-mutes {nick}: audio {audio}, video {video}"),
                |view| {
                    view.endpoint(room, nick).is_some_and(|endpoint| {
                        endpoint.force_mute_audio == audio && endpoint.force_mute_video == video
                    })
                },
            )
            .await;
    }

    /// The module's count of P2P sessions it tracks in `room` (`<inspect/>`).
    pub async fn p2p_sessions(&mut self, room: &str) -> usize {
        let ((_, p2p_sessions), _) = kept(&mut self.inspector, room).await;
        p2p_sessions.parse().expect("a p2p-sessions count")
    }
}

/// Waits until `bridge` holds exactly `sources` for `nick` in `room`.
pub async fn bridge_holds(bridge: &BridgePeer, room: &str, nick: &str, sources: &SourceSet) {
    let (audio, video) = (
        sources.ssrcs_of(Media::Audio),
        sources.ssrcs_of(Media::Video),
    );
    bridge
        .wait_until(
            &format!("the bridge holds {nick}'s audio {audio:?} video {video:?}"),
            |view| {
                view.endpoint(room, nick).is_some_and(|endpoint| {
                    endpoint.audio_ssrcs == audio && endpoint.video_ssrcs == video
                })
            },
        )
        .await;
}

/// A lecture room (under [`LECTURE_RULES`]): alice (the lecturer) and bob (a participant, no
/// camera) have joined.
pub async fn lecture(users: &[&str], room: &str) -> (Conference, Participant, Participant) {
    let mut conference = Conference::start(users, LECTURE_RULES).await;
    let alice = conference
        .join(room, "alice", &[("alice", "audio,video,screen")])
        .await;
    let bob = conference
        .join(
            room,
            "bob",
            &[("alice", "audio,video,screen"), ("bob", "audio,screen")],
        )
        .await;
    (conference, alice, bob)
}

/// The module's own account of a room: (bridge endpoints, P2P sessions) and per nick (session,
/// forwarded, withheld), from `<inspect/>`.
pub type Kept = (
    (String, String),
    Vec<(String, Option<String>, String, String)>,
);

pub async fn kept(inspector: &mut C2s, room: &str) -> Kept {
    let answer = inspector
        .iq(
            "get",
            MUC,
            el("inspect", PODIUM)
                .attr(attr("room"), format!("{room}@{MUC}"))
                .build(),
        )
        .await;
    let list = answer
        .get_child("inspect", PODIUM)
        .expect("an inspect answer");
    let text = |element: &Element, name: &str| element.attr(name).unwrap_or("").to_owned();
    let mut occupants: Vec<_> = list
        .children()
        .map(|o| {
            (
                text(o, "jid").rsplit('/').next().unwrap().to_owned(),
                o.attr("session").map(str::to_owned),
                text(o, "forwarded"),
                text(o, "withheld"),
            )
        })
        .collect();
    occupants.sort();
    (
        (text(list, "bridge-endpoints"), text(list, "p2p-sessions")),
        occupants,
    )
}

pub fn ssrcs(sources: &SourceSet) -> BTreeSet<u32> {
    sources.ssrcs().into_iter().collect()
}

/// Audio and camera: what a participant sends from its session-accept.
pub fn sent(participant: &Participant) -> SourceSet {
    participant
        .track(Track::Audio)
        .union(&participant.track(Track::Camera))
}

/// What jicofo relays of a participant's sources to the others: simulcast stripped.
pub fn relayed(sources: &SourceSet) -> BTreeSet<u32> {
    ssrcs(&sources.strip_simulcast())
}

/// Waits until `participant` has learnt exactly `expected` of `owner`'s SSRCs.
pub async fn learns(participant: &Participant, owner: &str, expected: BTreeSet<u32>) {
    participant
        .wait_until(
            &format!("{} learns {owner}'s {expected:?}", participant.nick),
            |view| view.remote.get(owner).map(ssrcs).unwrap_or_default() == expected,
        )
        .await;
}

/// The Jingle requests (and their sources) the focus received from `room/nick` after the first
/// `since`.
pub fn jingle_from_since(
    focus: &FocusPeer,
    since: usize,
    room: &str,
    nick: &str,
) -> Vec<(JingleReceived, SourceSet)> {
    let from = format!("{room}@{MUC}/{nick}");
    focus
        .jingle_received()
        .into_iter()
        .skip(since)
        .filter(|received| received.from == from)
        .map(|received| {
            let jingle = received.iq.get_child("jingle", JINGLE).unwrap().clone();
            let sources = SourceSet::from_contents(&jingle).unwrap_or_default();
            (received, sources)
        })
        .collect()
}

/// A moderator of `main` creates the breakout room `name` (through the stand-in for jitsi-meet's
/// breakout module) and waits until the main room lists it. With jitsi-meet's own module
/// (`TEST_JITSI_PLUGINS`) it asks as lib-jitsi-meet's BreakoutRooms does, from its session in `main`,
/// and returns the JID of the room named `name` in the module's next update (a random node).
pub async fn create_breakout(moderator: &mut C2s, main: &str, name: &str) -> String {
    if Prosody::jitsi_plugins().is_some() {
        return create_jitsi_breakout(moderator, name).await;
    }
    moderator.send(
        el("message", CLIENT)
            .attr(attr("to"), BREAKOUT_MUC)
            .append(
                el("add", "urn:podium:test:breakout")
                    .attr(attr("main"), format!("{main}@{MUC}"))
                    .attr(attr("name"), name)
                    .build(),
            )
            .build(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let element = tokio::time::timeout_at(deadline, moderator.inbox.recv())
            .await
            .expect("breakout room created")
            .expect("connection open");
        if let Some(added) = element.get_child("added", "urn:podium:test:breakout") {
            return added.attr("jid").unwrap().to_owned();
        }
        assert_ne!(element.attr("type"), Some("error"), "{element:?}");
    }
}

async fn create_jitsi_breakout(moderator: &mut C2s, name: &str) -> String {
    moderator.send(
        el("message", CLIENT)
            .attr(attr("to"), BREAKOUT_MUC)
            .append(
                el("breakout_rooms", CLIENT)
                    .attr(attr("type"), "features/breakout-rooms/add")
                    .attr(attr("subject"), name)
                    .build(),
            )
            .build(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let element = tokio::time::timeout_at(deadline, moderator.inbox.recv())
            .await
            .expect("breakout room created")
            .expect("connection open");
        assert_ne!(element.attr("type"), Some("error"), "{element:?}");
        let Some(json) = element.get_child("json-message", "http://jitsi.org/jitmeet") else {
            continue;
        };
        let body: serde_json::Value = serde_json::from_str(&json.text()).expect("json");
        if body["event"] != "features/breakout-rooms/update" {
            continue;
        }
        let rooms = body["rooms"].as_object().expect("rooms");
        if let Some(room) = rooms.values().find(|room| room["name"] == name) {
            return room["jid"].as_str().expect("jid").to_owned();
        }
    }
}

/// `<av_moderation/>` as lib-jitsi-meet's AVModeration sends it to the A/V moderation component.
pub fn av_moderation(attr_name: &'static str, occupant: &str, media: &str) -> Element {
    el("message", CLIENT)
        .attr(attr("to"), AV_MODERATION)
        .append(
            el("av_moderation", CLIENT)
                .attr(attr(attr_name), occupant)
                .attr(attr("mediaType"), media)
                .build(),
        )
        .build()
}

/// Prosody for `users` (plain MUC options) and podium (with `extra` configuration lines), after its
/// first resync.
pub async fn start_plain(users: &[&str], extra: &str) -> (Prosody, Podium, PathBuf) {
    let prosody = Prosody::start(users);
    let db = prosody.data_dir().join("rules/podium.db");
    let config = write_config(&prosody, &db, extra);
    let podium = Podium::start(&config);
    podium.wait_for(&["resync complete"]).await;
    (prosody, podium, db)
}

/// Starts Prosody and podium, loads `rules` and connects the inspector (which every user list must
/// name).
pub async fn start_with_rules(
    users: &[&str],
    extra: &str,
    rules: &str,
) -> (Prosody, Podium, PathBuf, C2s) {
    let (prosody, podium, db) = start_plain(users, extra).await;
    edit_rules(&podium, &db, rules).await;
    let inspector = C2s::connect(prosody.c2s_port, "inspector", "i").await;
    (prosody, podium, db, inspector)
}

/// `class` asks participants to request audio; moderators may send everything.
pub const CLASS_RULES: &str =
    "INSERT INTO rules (id, room, who, who_value, media, effect, priority) VALUES
           (1, 'class', 'role', 'participant', 'audio', 'request', 10),
           (2, 'class', 'role', 'moderator',   'all',   'allow',   10)";

/// An A/V-moderated class: Prosody, podium, the inspector, and the teacher (the first to join, so a
/// moderator) and ada in the room.
pub struct Class {
    pub prosody: Prosody,
    pub podium: Podium,
    pub db: PathBuf,
    pub inspector: C2s,
    pub teacher: C2s,
    pub ada: C2s,
}

/// Prosody and podium under `rules`; the teacher, then ada, join `room` (from the web client).
pub async fn class(rules: &str, room: &str) -> Class {
    let (prosody, podium, db, inspector) =
        start_with_rules(&["teacher", "ada", "inspector"], "", rules).await;
    let mut teacher = C2s::connect(prosody.c2s_port, "teacher", "web").await;
    let mut ada = C2s::connect(prosody.c2s_port, "ada", "web").await;
    teacher.join(room, "teacher").await;
    ada.join(room, "ada").await;
    Class {
        prosody,
        podium,
        db,
        inspector,
        teacher,
        ada,
    }
}
