//! A steady Jitsi-shaped load for the restart test and the soak (issue 14, points 6 and 7): `rooms`
//! rooms of `per_room` lib-jitsi-meet stand-ins (each with its Jingle session through the jicofo
//! stand-in and the bridge), joining, leaving and toggling their microphone or camera at a steady
//! rate, and a rule edited every few seconds; plus what the tests compare after a fault: what the
//! rules decide, what the module holds (`<inspect/>`), what the focus holds, podium's view
//! (`occupants`), every decision podium logged against the audit (`decisions`), and the RSS of
//! podium and Prosody and the module's table sizes (through Prosody's admin console).
//!
//! The load pauses by taking every slot's lock (an action holds its slot's lock from the moment it
//! is chosen), so a pause waits for the actions in flight and no new one starts until it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinSet;

use super::bridge::BridgePeer;
use super::c2s::C2s;
use super::conference::{Conference, ssrcs};
use super::focus::{FocusOptions, FocusPeer, SessionState};
use super::participant::{Participant, ParticipantOptions, Shape, Track};
use super::peer::AbortOnDrop;
use super::podium::Podium;
use super::prosody::{CONFERENCE_OPTIONS, MUC, Prosody};
use super::{Held, settle, sqlite3};

/// Everyone may send audio and camera; in rooms `churn-1*` rule 2 denies one kind, video or audio,
/// flipped by every edit.
const RULES: &str = "INSERT INTO rules (id, room, who, media, effect, priority) VALUES
    (1, '*',        'everyone', 'audio,video', 'allow', 0),
    (2, 'churn-1*', 'everyone', 'video',       'deny',  10)";
/// Flips rule 2 between denying video and denying audio: each edit changes what every occupant of
/// the `churn-1*` rooms may send.
const FLIP: &str =
    "UPDATE rules SET media = CASE media WHEN 'video' THEN 'audio' ELSE 'video' END WHERE id = 2";

/// The shape of the load.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub rooms: usize,
    pub per_room: usize,
    /// Joins, leaves and toggles per second, over all occupants.
    pub actions_per_s: f64,
    /// How often rule 2 is flipped.
    pub edit_every: Duration,
}

impl Default for LoadOptions {
    /// Issue 14's load: 200 occupants in 20 rooms.
    fn default() -> LoadOptions {
        LoadOptions {
            rooms: 20,
            per_room: 10,
            actions_per_s: 20.0,
            edit_every: Duration::from_secs(3),
        }
    }
}

/// `churn-07`.
pub fn room_name(room: usize) -> String {
    format!("churn-{room:02}")
}

/// The nick, and the account, of slot `index` of `room`: `r07p3`.
pub fn nick(room: usize, index: usize) -> String {
    format!("r{room:02}p{index}")
}

/// One place in a room, with the participant in it (if any).
struct Slot {
    room: usize,
    nick: String,
    participant: Option<Participant>,
}

/// The rule 2 state, as last committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Denied {
    Video,
    Audio,
}

/// What the load counted so far.
#[derive(Default)]
pub struct Counters {
    pub joins: AtomicU64,
    pub leaves: AtomicU64,
    pub toggles: AtomicU64,
    pub edits: AtomicU64,
    /// Actions that panicked (a stand-in's wait ran out).
    pub failures: AtomicU64,
    /// Unmute requests the focus never answered (within [`patience`]): the participant stays,
    /// the request counts as lost.
    pub unanswered: AtomicU64,
}

/// How long a participant of the load waits for an answer (its conference request, its unmute
/// request) or for its joining or leaving to be confirmed, and the focus for the bridge's answers:
/// 10 s times the process's patience factor ([`super::set_patience`], raised by the soak). On a
/// saturated machine an answer may come late, which is no failure of podium; none at all is (an
/// action that panics counts in `failures`, an unmute request never answered in `unanswered`).
fn patience() -> Duration {
    super::patient(Duration::from_secs(10))
}

/// The load's focus: jicofo's reply timeout raised as the participants' patience (see [`patience`]):
/// on a saturated machine a late answer from the bridge is not a lost one.
fn focus_options() -> FocusOptions {
    FocusOptions {
        reply_timeout: patience(),
        ..FocusOptions::default()
    }
}

/// A participant of the load joins (see [`patience`]).
async fn join(port: u16, room: usize, nick: &str) -> Participant {
    let options = ParticipantOptions {
        patience: patience(),
        ..ParticipantOptions::default()
    };
    Participant::join_with(port, nick, &room_name(room), nick, Shape::Current, options).await
}

impl Counters {
    /// Actions that failed or requests never answered: the load did not run as it should.
    pub fn errors(&self) -> u64 {
        self.failures.load(Ordering::Relaxed) + self.unanswered.load(Ordering::Relaxed)
    }
}

impl std::fmt::Display for Counters {
    /// `joins 12 leaves 30 toggles 98 edits 3 failures 0 unanswered 0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "joins {} leaves {} toggles {} edits {} failures {} unanswered {}",
            self.joins.load(Ordering::Relaxed),
            self.leaves.load(Ordering::Relaxed),
            self.toggles.load(Ordering::Relaxed),
            self.edits.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
            self.unanswered.load(Ordering::Relaxed),
        )
    }
}

/// The load on a whole conference.
pub struct Load {
    // The load's tasks go first, before what they use.
    _driver: AbortOnDrop,
    _editor: AbortOnDrop,
    pub conference: Conference,
    pub options: LoadOptions,
    pub counters: Arc<Counters>,
    slots: Vec<Arc<Mutex<Slot>>>,
    denied: Arc<Mutex<Denied>>,
    /// Every podium this load killed, in order.
    pub killed: Vec<Killed>,
}

/// The load's actions held still: every slot's lock (and the rule editor's, when it is held too).
pub struct Paused {
    slots: Vec<OwnedMutexGuard<Slot>>,
    _edits: Option<OwnedMutexGuard<Denied>>,
    denied: Denied,
}

/// An occupant as the rules should have it, with the SSRCs the focus must then hold.
#[derive(Clone, Debug)]
pub struct Expected {
    pub room: String,
    pub nick: String,
    pub permissions: &'static str,
    pub ssrcs: BTreeSet<u32>,
}

/// A podium the load killed.
pub struct Killed {
    /// Its log.
    pub lines: Vec<String>,
    /// When it was killed.
    pub at: jiff::Timestamp,
    /// The last `decisions` row written before the next podium started.
    pub last_row: i64,
    /// What the module held in every room right after the kill.
    pub held: BTreeMap<String, Held>,
}

/// A decision a podium logged without its row in `decisions`.
#[derive(Debug, Clone)]
pub struct Unaudited {
    /// Which podium: 0 the first one the load started.
    pub podium: usize,
    pub decided: Decided,
    /// The log line's time.
    pub logged: jiff::Timestamp,
    /// How long before its podium was killed (`None`: the podium still runs).
    pub before_kill: Option<Duration>,
    /// Whether the module held that decision (podium's, for that occupant) right after the kill.
    pub enforced: bool,
}

/// When each side held what the rules decide, from the pause of the load.
#[derive(Debug, Clone, Copy)]
pub struct Converged {
    /// The module (`<inspect/>` of every room).
    pub module: Duration,
    /// The focus.
    pub focus: Duration,
    /// podium's view (`occupants`).
    pub view: Duration,
}

/// Every account the load needs, plus the focus, the bridge and the inspector.
pub fn accounts(options: &LoadOptions) -> Vec<String> {
    let mut users: Vec<String> = ["focus", "jvb", "inspector"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for room in 0..options.rooms {
        for index in 0..options.per_room {
            users.push(nick(room, index));
        }
    }
    users
}

impl Load {
    /// Prosody (with its admin console), the conference stand-ins, podium on SQLite with the load's
    /// rules; every occupant joins (20 at a time), then the load starts.
    pub async fn start(options: LoadOptions) -> Load {
        let users = accounts(&options);
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        let prosody = Prosody::start_with_console(&users, CONFERENCE_OPTIONS);
        let mut conference = Conference::around(prosody, focus_options()).await;
        conference.start_podium("").await;
        super::edit_rules(conference.podium(), &conference.db, RULES).await;
        let slots: Vec<Arc<Mutex<Slot>>> = (0..options.rooms)
            .flat_map(|room| {
                (0..options.per_room).map(move |index| {
                    Arc::new(Mutex::new(Slot {
                        room,
                        nick: nick(room, index),
                        participant: None,
                    }))
                })
            })
            .collect();
        let port = conference.prosody.c2s_port;
        let mut guards = Vec::new();
        for slot in &slots {
            guards.push(Arc::clone(slot).lock_owned().await);
        }
        join_all(port, guards.iter_mut().map(|guard| &mut **guard).collect()).await;
        drop(guards);
        let counters = Arc::new(Counters::default());
        let denied = Arc::new(Mutex::new(Denied::Video));
        let driver = tokio::spawn(drive(
            port,
            slots.clone(),
            options.actions_per_s,
            Arc::clone(&counters),
        ));
        let editor = tokio::spawn(edit(
            conference.db.clone(),
            Arc::clone(&denied),
            options.edit_every,
            Arc::clone(&counters),
        ));
        Load {
            conference,
            options,
            counters,
            slots,
            denied,
            killed: Vec::new(),
            _driver: AbortOnDrop(driver),
            _editor: AbortOnDrop(editor),
        }
    }

    pub fn podium(&self) -> &Podium {
        self.conference.podium()
    }

    /// Holds every slot (waiting for the actions in flight); with `edits`, the rule editor too.
    pub async fn pause(&self, edits: bool) -> Paused {
        let edits = match edits {
            true => Some(Arc::clone(&self.denied).lock_owned().await),
            false => None,
        };
        let mut slots = Vec::new();
        for slot in &self.slots {
            slots.push(Arc::clone(slot).lock_owned().await);
        }
        let denied = match &edits {
            Some(guard) => **guard,
            None => *self.denied.lock().await,
        };
        Paused {
            slots,
            _edits: edits,
            denied,
        }
    }

    /// Waits until the load has done `actions` more actions and `edits` more rule edits.
    pub async fn run_for(&self, actions: u64, edits: u64) {
        let counters = &self.counters;
        let count = || {
            counters.joins.load(Ordering::Relaxed)
                + counters.leaves.load(Ordering::Relaxed)
                + counters.toggles.load(Ordering::Relaxed)
        };
        let (start_actions, start_edits) = (count(), counters.edits.load(Ordering::Relaxed));
        let deadline = Instant::now() + Duration::from_secs(120);
        // The counters have no signal of their own; the load's own pace is the clock here (a
        // tenth of the time between two actions).
        let step = Duration::from_secs_f64(0.1 / self.options.actions_per_s);
        while count() < start_actions + actions
            || counters.edits.load(Ordering::Relaxed) < start_edits + edits
        {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(step.max(Duration::from_millis(5))).await;
        }
    }

    /// `kill -9` of podium (by its PID), `gap` later a new podium on the same configuration; returns
    /// when it logged "resync complete", with the time from the kill.
    pub async fn kill_podium(&mut self, gap: Duration) -> Duration {
        let mut podium = self.conference.podium.take().expect("podium is running");
        let config = podium.config.clone();
        let killed = Instant::now();
        podium.kill9();
        let at = jiff::Timestamp::now();
        let mut held = BTreeMap::new();
        for room in (0..self.options.rooms).map(room_name) {
            let holds = self.conference.inspector.inspect(&room).await;
            held.insert(room, holds);
        }
        let last_row = sqlite3(
            &self.conference.db,
            "SELECT coalesce(max(id), 0) FROM decisions",
        )
        .trim()
        .parse()
        .unwrap();
        tokio::time::sleep(gap.saturating_sub(killed.elapsed())).await;
        self.killed.push(Killed {
            lines: podium.lines(),
            at,
            last_row,
            held,
        });
        drop(podium);
        let podium = Podium::start(&config);
        podium.wait_for(&["resync complete"]).await;
        self.conference.podium = Some(podium);
        killed.elapsed()
    }

    /// Restarts Prosody (SIGKILL by its PID, then the same ports): the focus, the bridge and the
    /// inspector connect again and everyone present rejoins (20 at a time), as clients reconnect.
    /// Returns when podium has resynced after its link came back and everyone is in again, with the
    /// times from the kill to podium's "resync complete" and to everyone being in.
    pub async fn restart_prosody(&mut self) -> (Duration, Duration) {
        let mut paused = self.pause(false).await;
        let present: Vec<bool> = paused
            .slots
            .iter()
            .map(|slot| slot.participant.is_some())
            .collect();
        for slot in &mut paused.slots {
            slot.participant = None;
        }
        let podium = self.conference.podium.as_ref().expect("podium is running");
        let mark = podium.mark();
        let killed = Instant::now();
        self.conference.prosody.restart();
        podium.wait_for_after(mark, &["link up"]).await;
        podium.wait_for_after(mark, &["resync complete"]).await;
        let resynced = killed.elapsed();
        let port = self.conference.prosody.c2s_port;
        self.conference.bridge = BridgePeer::connect(port).await;
        self.conference.focus = FocusPeer::connect_with(port, focus_options()).await;
        self.conference.inspector = C2s::connect(port, "inspector", "i").await;
        let back: Vec<&mut Slot> = paused
            .slots
            .iter_mut()
            .zip(present)
            .filter(|(_, present)| *present)
            .map(|(slot, _)| &mut **slot)
            .collect();
        join_all(port, back).await;
        let back = killed.elapsed();
        drop(paused);
        (resynced, back)
    }

    /// What the rules decide for everyone present, with what the focus must then hold.
    pub fn expected(paused: &Paused) -> Vec<Expected> {
        paused
            .slots
            .iter()
            .filter_map(|slot| {
                let participant = slot.participant.as_ref()?;
                let permissions = match (slot.room >= 10, paused.denied) {
                    (false, _) => "audio,video",
                    (true, Denied::Video) => "audio",
                    (true, Denied::Audio) => "video",
                };
                let mut sources = super::jingle::SourceSet::default();
                if permissions.contains("audio") {
                    sources = sources.union(&participant.track(Track::Audio));
                }
                if permissions.contains("video") {
                    sources = sources.union(&participant.track(Track::Camera));
                }
                Some(Expected {
                    room: room_name(slot.room),
                    nick: slot.nick.clone(),
                    permissions,
                    ssrcs: ssrcs(&sources),
                })
            })
            .collect()
    }

    /// Pauses the load (and the rule edits) and waits until the module (`<inspect/>` of every
    /// room), the focus and podium's view (`occupants`) all hold what the rules decide for everyone
    /// present. Returns the pause, so the caller can look further before the load goes on.
    pub async fn converge(&mut self) -> (Paused, Converged) {
        let paused = self.pause(true).await;
        let start = Instant::now();
        let expected = Load::expected(&paused);
        let rooms: Vec<String> = (0..self.options.rooms).map(room_name).collect();
        // The module.
        let mut held: BTreeMap<String, Held> = rooms
            .iter()
            .map(|room| (room.clone(), Held::new()))
            .collect();
        for occupant in &expected {
            held.get_mut(&occupant.room).unwrap().insert(
                occupant.nick.clone(),
                (occupant.permissions.to_owned(), "podium".to_owned()),
            );
        }
        let podium = self.conference.podium.as_ref().expect("podium is running");
        let inspector = &mut self.conference.inspector;
        settle(podium, "what the module holds", &held, async || {
            let mut found = BTreeMap::new();
            for room in &rooms {
                found.insert(room.clone(), inspector.inspect(room).await);
            }
            found
        })
        .await;
        let module = start.elapsed();
        // The focus: each present occupant's session is active and holds exactly what is allowed.
        let focus_expected = expected.clone();
        self.conference
            .focus
            .wait_for(
                "the focus holds what the rules allow",
                super::patient(Duration::from_secs(30)),
                move |view| {
                    let wrong: Vec<String> = focus_expected
                        .iter()
                        .filter_map(|occupant| {
                            let key = format!("{}/{}", occupant.room, occupant.nick);
                            let endpoint = view.endpoint(&key);
                            let active =
                                endpoint.is_some_and(|e| e.session == Some(SessionState::Active));
                            let found = endpoint.map(|e| ssrcs(&e.sources)).unwrap_or_default();
                            (!active || found != occupant.ssrcs).then(|| {
                                let session = endpoint.map(|e| (e.session, e.invites, e.restarts.len()));
                                format!(
                                    "{key}: (session, invites, restarts) {session:?}, holds {found:?}, expected {:?}",
                                    occupant.ssrcs
                                )
                            })
                        })
                        .collect();
                    (!wrong.is_empty()).then(|| {
                        format!(
                            "{} wrong, the first: {:?}",
                            wrong.len(),
                            &wrong[..wrong.len().min(5)]
                        )
                    })
                },
            )
            .await;
        let focus = start.elapsed();
        // podium's view.
        let mut rows: Vec<String> = expected
            .iter()
            .map(|o| format!("{}@{MUC}|{}|{}", o.room, o.nick, o.permissions))
            .collect();
        rows.sort();
        let view = rows.join("\n") + if rows.is_empty() { "" } else { "\n" };
        let db = self.conference.db.clone();
        settle(podium, "podium's view (occupants)", &view, async || {
            sqlite3(
                &db,
                "SELECT room, nick, permissions FROM occupants ORDER BY room || '|' || nick",
            )
        })
        .await;
        let converged = Converged {
            module,
            focus,
            view: start.elapsed(),
        };
        (paused, converged)
    }

    /// The decisions the running podium logged, each with its row in `decisions` (waits for the audit
    /// writer, on its "audit records written" lines).
    pub async fn wait_audited(&self) {
        let podium = self.podium();
        let live = self.killed.len();
        settle(
            podium,
            "decisions of the running podium without their audit row",
            &Vec::new(),
            async || {
                self.unaudited()
                    .into_iter()
                    .filter(|gap| gap.podium == live)
                    .map(|gap| gap.decided)
                    .collect::<Vec<_>>()
            },
        )
        .await;
    }

    /// Every decision a podium of this load logged without its row in `decisions`: each podium's
    /// decisions are matched one for one with the rows it wrote (a killed podium's are those up to
    /// its `last_row`).
    pub fn unaudited(&self) -> Vec<Unaudited> {
        let rows = audited(&self.conference.db);
        let live = self.podium().lines();
        let mut gaps = Vec::new();
        let mut first_row = 0;
        let generations = self
            .killed
            .iter()
            .map(|killed| (&killed.lines, Some(killed)))
            .chain([(&live, None)]);
        for (podium, (lines, killed)) in generations.enumerate() {
            let last_row = killed.map_or(i64::MAX, |k| k.last_row);
            let mut written: BTreeMap<&Decided, usize> = BTreeMap::new();
            for (_, row) in rows
                .iter()
                .filter(|(id, _)| *id > first_row && *id <= last_row)
            {
                *written.entry(row).or_default() += 1;
            }
            first_row = last_row;
            for (stamp, decided) in logged_decisions(lines) {
                match written.get_mut(&decided) {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => {
                        let logged: jiff::Timestamp = stamp.parse().unwrap();
                        let enforced = killed.is_some_and(|k| {
                            k.held
                                .get(decided.room.split('@').next().unwrap_or_default())
                                .and_then(|held| held.get(&decided.nick))
                                .is_some_and(|(set, origin)| {
                                    *set == decided.granted && origin == "podium"
                                })
                        });
                        gaps.push(Unaudited {
                            podium,
                            before_kill: killed
                                .map(|k| (k.at - logged).try_into().unwrap_or(Duration::ZERO)),
                            enforced,
                            logged,
                            decided,
                        });
                    }
                }
            }
        }
        gaps
    }

    /// RSS of podium and Prosody, KiB.
    pub fn rss(&self) -> (u64, u64) {
        let podium = self.podium().pid().expect("podium is running");
        let prosody = self.conference.prosody.pid().expect("prosody is running");
        (rss_kib(podium), rss_kib(prosody))
    }

    /// The module's tables on the conference MUC (what `module.save` hands to a reload: rooms,
    /// occupants, forwarded and withheld sources, Jingle sessions, conferences at the bridge, P2P
    /// sessions, IQs in flight), Prosody's c2s sessions and its live Lua heap (after a full
    /// collection), as `name=count` pairs, through the admin console.
    pub async fn module_tables(&self) -> String {
        let answer = self.conference.prosody.console(TABLES).await;
        answer
            .lines()
            .find_map(|line| line.find("rooms=").map(|at| line[at..].trim().to_owned()))
            .unwrap_or_else(|| panic!("the console printed no table sizes: {answer:?}"))
    }
}

/// One console line: counts what mod_podium on the conference MUC would save for a reload.
const TABLES: &str = concat!(
    r#">collectgarbage("collect"); "#,
    r#"local s = prosody.hosts["conference.localhost"].modules.podium.module.save(); "#,
    r#"local function c(t) local n = 0; for _ in pairs(t or {}) do n = n + 1; end return n; end; "#,
    r#"local rooms, occupants, forwarded, withheld, sids = 0, 0, 0, 0, 0; "#,
    r#"for _, room in pairs(s.rooms) do rooms = rooms + 1; for _, r in pairs(room) do "#,
    r#"occupants = occupants + 1; local m = r.media; if m then forwarded = forwarded + c(m.forwarded); "#,
    r#"withheld = withheld + c(m.withheld); if m.sid then sids = sids + 1; end end end end; "#,
    r#"return ("rooms=%d occupants=%d forwarded=%d withheld=%d sids=%d joins=%d conferences=%d "#,
    r#"meeting_rooms=%d p2p=%d injected=%d sessions=%d lua_kib=%d"):format(rooms, occupants, "#,
    r#"forwarded, withheld, sids, c(s.joins), c(s.conferences), c(s.meeting_rooms), "#,
    r#"c(s.p2p_sessions), c(s.injected), c(prosody.full_sessions), "#,
    r#"math.floor(collectgarbage("count")))"#
);

/// VmRSS of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A decision as podium logs it and as `decisions` keeps it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Decided {
    pub room: String,
    pub nick: String,
    pub previous: String,
    pub granted: String,
    pub cause: String,
}

/// The decisions in a podium's log ("decision" lines).
pub fn logged_decisions(lines: &[String]) -> Vec<(String, Decided)> {
    lines
        .iter()
        .filter_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            if json["message"] != "decision" {
                return None;
            }
            let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
            Some((
                text("timestamp"),
                Decided {
                    room: text("room"),
                    nick: text("occupant"),
                    previous: text("previous"),
                    granted: text("granted"),
                    cause: text("cause"),
                },
            ))
        })
        .collect()
}

/// Every row of `decisions`, with its id.
pub fn audited(db: &Path) -> Vec<(i64, Decided)> {
    sqlite3(
        db,
        "SELECT id, room, nick, previous, granted, cause FROM decisions ORDER BY id",
    )
    .lines()
    .map(|line| {
        let mut fields = line.split('|').map(str::to_owned);
        let id = fields.next().unwrap_or_default().parse().unwrap();
        let mut next = || fields.next().unwrap_or_default();
        (
            id,
            Decided {
                room: next(),
                nick: next(),
                previous: next(),
                granted: next(),
                cause: next(),
            },
        )
    })
    .collect()
}

/// Joins everyone of `slots` who is not in (20 at a time, as a crowd reconnecting).
async fn join_all(port: u16, slots: Vec<&mut Slot>) {
    use futures::StreamExt;
    futures::stream::iter(slots)
        .for_each_concurrent(20, |slot| async move {
            slot.participant = Some(join(port, slot.room, &slot.nick).await);
        })
        .await;
}

/// A cheap random number (the load needs no quality, only spread).
fn random(below: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(super::unique());
    (hasher.finish() % below as u64) as usize
}

/// Every 1/rate s, one action on a slot chosen at random (skipped when that slot is busy or paused):
/// join when out; when in, leave (one in four) or toggle the microphone or the camera.
async fn drive(port: u16, slots: Vec<Arc<Mutex<Slot>>>, rate: f64, counters: Arc<Counters>) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut actions = JoinSet::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(done) = actions.join_next() => {
                if done.is_err() {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
        }
        let Ok(mut slot) = Arc::clone(&slots[random(slots.len())]).try_lock_owned() else {
            continue;
        };
        let counters = Arc::clone(&counters);
        let choice = random(8);
        actions.spawn(async move {
            match slot.participant.take() {
                None => {
                    slot.participant = Some(join(port, slot.room, &slot.nick).await);
                    counters.joins.fetch_add(1, Ordering::Relaxed);
                }
                Some(participant) if choice < 2 => {
                    participant.leave().await;
                    counters.leaves.fetch_add(1, Ordering::Relaxed);
                }
                Some(participant) => {
                    let track = if choice.is_multiple_of(2) {
                        Track::Audio
                    } else {
                        Track::Camera
                    };
                    let muted = participant.view().muted.get(&format!(
                        "{}-{}",
                        participant.nick,
                        if track == Track::Audio { "a0" } else { "v0" }
                    )) == Some(&true);
                    let answered = participant
                        .set_muted_within(track, !muted, patience())
                        .await;
                    if answered.is_err() {
                        counters.unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                    slot.participant = Some(participant);
                    counters.toggles.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// Every `every`, flips rule 2 with the sqlite3 CLI (another process, as an admin would).
async fn edit(
    db: std::path::PathBuf,
    denied: Arc<Mutex<Denied>>,
    every: Duration,
    counters: Arc<Counters>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let mut state = denied.lock().await;
        let db = db.clone();
        tokio::task::spawn_blocking(move || sqlite3(&db, FLIP))
            .await
            .unwrap();
        *state = match *state {
            Denied::Video => Denied::Audio,
            Denied::Audio => Denied::Video,
        };
        counters.edits.fetch_add(1, Ordering::Relaxed);
    }
}
