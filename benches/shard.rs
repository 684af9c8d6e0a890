//! The project's own benchmark of mod_podium's cost on a Jitsi shard (issue 13, figures 1-3): a plain
//! Prosody against one with mod_podium and the podium binary, on real XMPP connections.
//!
//! ```sh
//! cargo bench --bench shard -- cpu  [--pairs 5] [--rules allow-all|deny-video]
//! cargo bench --bench shard -- join [--pairs 5] [--rates 50,100] [--joins 500]
//! cargo bench --bench shard -- edit [--pairs 5] [--poll-ms 50] [--postgres]
//! cargo bench --bench shard                 # all three, with their defaults
//! ```
//!
//! * `cpu`: per pair, a plain Prosody and a Prosody with mod_podium + podium run **side by side**,
//!   both pinned to the last CPU (the generator and podium on the first), start order alternating
//!   between pairs. Each gets the same Jitsi-shaped load: 50 rooms x 10 participants; each participant
//!   logs in (SASL PLAIN), joins with lib-jitsi-meet's presence, answers the focus's session-initiate,
//!   sends a session-accept (audio + simulcast camera), a screenshare source-add and source-remove,
//!   5 presence updates, and leaves once its room is done; the focus stand-in creates the rooms,
//!   sends each new occupant a session-initiate and answers every IQ. Prosody's CPU is utime+stime
//!   from /proc/<pid>/stat from before the focus connects until it left every room; RSS is VmHWM.
//! * `join`: per pair and rate, a fresh plain Prosody and a fresh Prosody + podium, one after the
//!   other on the same CPU (order alternating). Participants log in first (not timed), then send
//!   their join presence at the rate; the focus answers each join with its session-initiate, the
//!   participant with its session-accept (mod_podium takes a session only from jicofo's initiate).
//!   Figures, p50/p99 per run: join -> self-presence; join -> podium decided (the timestamp of
//!   podium's "decision" log line); join -> the focus holds the participant's sources (the accept if
//!   it came with them, otherwise the module's source-add releasing them). Plain Prosody's join ->
//!   focus holds the sources is the same path without the module.
//! * `edit`: 50 rooms x 10 participants holding audio and camera; one SQL UPDATE revokes video for
//!   everyone, one grants it back, timed from just before the UPDATE until the focus has a
//!   source-remove (source-add) from every occupant. SQLite polled every `--poll-ms`, or PostgreSQL
//!   (`--postgres`, LISTEN/NOTIFY, on `TEST_POSTGRES_URL`).
//!
//! Every figure is printed as median [min-max] over the pairs (or cycles). Any error stanza, SASL
//! failure, stream error, error line in Prosody's log or ERROR in podium's log fails the run loudly.
//!
//! The generator is cheap on purpose: raw tokio TCP on one thread, stanzas personalised once from
//! the recorded lib-jitsi-meet and jicofo stanzas (tests/fixtures/) before the clock starts, and
//! framed by byte search (Prosody escapes `<` and `>` everywhere, and no stanza here nests an
//! element of its own name). Prosody and podium come from the integration harness (tests/common).

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Barrier, Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

#[path = "../tests/common/mod.rs"]
mod common;

use common::podium::Podium;
use common::prosody::{COMPONENT, DOMAIN, MUC, PASSWORD, Prosody, SECRET};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// How long any single wait may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Connections logging in at once: below Prosody's accept backlog (128), so no SYN is dropped.
const LOGIN_WINDOW: usize = 100;
/// Presence updates per participant in the `cpu` workload.
const UPDATES: usize = 5;
const FOCUS_USER: &str = "focus";

#[derive(Parser, Debug)]
#[command(about = "mod_podium's cost on a Jitsi shard: CPU, join latency, edit latency")]
struct Cli {
    #[command(subcommand)]
    figure: Option<Figure>,
    /// Pairs (cpu, join) or runs (edit); each figure is the median [min-max] over them.
    #[arg(long, default_value_t = 5, global = true)]
    pairs: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true, global = true)]
    bench: bool,
}

#[derive(Subcommand, Debug, Clone)]
enum Figure {
    /// Prosody CPU and RSS, plain vs mod_podium + podium, side by side on one CPU.
    Cpu {
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        #[arg(long, default_value_t = 10)]
        participants: usize,
        /// allow-all (everyone sends everything) or deny-video (cameras withheld from participants).
        #[arg(long, default_value = "allow-all")]
        rules: String,
    },
    /// Join -> self-presence / podium decided / focus holds the sources, at fixed join rates.
    Join {
        /// Joins per second, comma-separated.
        #[arg(long, default_value = "50,100")]
        rates: String,
        #[arg(long, default_value_t = 500)]
        joins: usize,
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        /// Add `network_settings = { nagle = false }` to both Prosodys.
        #[arg(long)]
        no_nagle: bool,
    },
    /// One SQL edit revoking (then granting) video for everyone -> the focus has every change.
    Edit {
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        #[arg(long, default_value_t = 10)]
        participants: usize,
        /// podium's database.poll_interval_ms.
        #[arg(long, default_value_t = 50)]
        poll_ms: u64,
        /// Revoke + grant cycles per run.
        #[arg(long, default_value_t = 3)]
        cycles: usize,
        /// PostgreSQL (LISTEN/NOTIFY) on TEST_POSTGRES_URL instead of SQLite.
        #[arg(long)]
        postgres: bool,
    },
}

fn main() -> Res<()> {
    let cli = Cli::parse();
    let cpus = Cpus::pin_self()?;
    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("{}", machine_line(&cpus));
    let figures = match cli.figure.clone() {
        Some(figure) => vec![figure],
        None => vec![
            Figure::Cpu {
                rooms: 50,
                participants: 10,
                rules: "allow-all".into(),
            },
            Figure::Join {
                rates: "50,100".into(),
                joins: 500,
                rooms: 50,
                no_nagle: false,
            },
            Figure::Edit {
                rooms: 50,
                participants: 10,
                poll_ms: 50,
                cycles: 3,
                postgres: false,
            },
        ],
    };
    for figure in figures {
        match figure {
            Figure::Cpu {
                rooms,
                participants,
                rules,
            } => {
                let rules = Rules::parse(&rules)?;
                runtime.block_on(cpu_figure(&cpus, cli.pairs, rooms, participants, rules))?
            }
            Figure::Join {
                rates,
                joins,
                rooms,
                no_nagle,
            } => {
                let rates = rates
                    .split(',')
                    .map(|r| r.trim().parse::<f64>())
                    .collect::<Result<Vec<_>, _>>()?;
                runtime.block_on(join_figure(
                    &cpus, cli.pairs, &rates, joins, rooms, no_nagle,
                ))?
            }
            Figure::Edit {
                rooms,
                participants,
                poll_ms,
                cycles,
                postgres,
            } => runtime.block_on(edit_figure(
                &cpus,
                cli.pairs,
                rooms,
                participants,
                poll_ms,
                cycles,
                postgres,
            ))?,
        }
    }
    println!("{}", machine_line(&cpus));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The machine: CPUs, /proc

/// The generator (this process, and podium, which inherits its affinity) on the first CPU, the
/// Prosodys on the last.
struct Cpus {
    generator: usize,
    prosody: Option<usize>,
}

impl Cpus {
    fn pin_self() -> Res<Cpus> {
        let allowed = affinity(0)?;
        let (Some(&first), Some(&last)) = (allowed.first(), allowed.last()) else {
            return Err("no CPU in this process's affinity".into());
        };
        if first == last {
            return Ok(Cpus {
                generator: first,
                prosody: None,
            });
        }
        pin(0, first)?;
        Ok(Cpus {
            generator: first,
            prosody: Some(last),
        })
    }

    fn pin_prosody(&self, prosody: &Prosody) -> Res<()> {
        if let Some(cpu) = self.prosody {
            pin(prosody_pid(prosody)?, cpu)?;
        }
        Ok(())
    }
}

fn affinity(pid: i32) -> Res<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel writes at most its size.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect())
    }
}

fn pin(pid: i32, cpu: usize) -> Res<()> {
    // SAFETY: the set is built locally; sched_setaffinity only reads it.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// Every connection of both Prosodys is a file descriptor here and in Prosody (which inherits it).
fn raise_file_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    #[allow(unsafe_code)]
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn machine_line(cpus: &Cpus) -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "load average {}; generator and podium on CPU {}, Prosody on CPU {}",
        load.join(" "),
        cpus.generator,
        cpus.prosody
            .map_or("(not pinned: one CPU)".to_owned(), |c| c.to_string())
    )
}

fn prosody_pid(prosody: &Prosody) -> Res<i32> {
    Ok(prosody.pid().ok_or("prosody is not running")? as i32)
}

/// A process's CPU time (all threads) and memory, from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu_s: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

fn usage(pid: i32) -> Res<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are fixed (proc(5): utime is field 14).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("odd /proc stat")?
        .1
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_s = (fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(Usage {
        cpu_s,
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
    })
}

/// A process's time on a CPU and waiting for one (seconds, from /proc/<pid>/schedstat of its main
/// thread: Prosody has one). Waiting means another process held the CPU: the machine's noise.
fn sched(pid: i32) -> Res<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>());
    let run = fields.next().ok_or("empty schedstat")??;
    let wait = fields.next().ok_or("short schedstat")??;
    Ok((run / 1e9, wait / 1e9))
}

/// Prosody's share of a wall-clock interval on a CPU and waiting for one, as "on-cpu 45% waiting 30%".
struct Busy {
    at: Instant,
    run: f64,
    wait: f64,
}

impl Busy {
    fn start(pid: i32) -> Res<Busy> {
        let (run, wait) = sched(pid)?;
        Ok(Busy {
            at: Instant::now(),
            run,
            wait,
        })
    }

    fn show(&self, pid: i32) -> Res<String> {
        let (run, wait) = sched(pid)?;
        let wall = self.at.elapsed().as_secs_f64();
        Ok(format!(
            "on-cpu {:.0}% waiting-for-cpu {:.0}%",
            100.0 * (run - self.run) / wall,
            100.0 * (wait - self.wait) / wall
        ))
    }
}

fn own_cpu_s() -> f64 {
    usage(std::process::id() as i32).map_or(0.0, |u| u.cpu_s)
}

/// Waits until a process's CPU time stops moving (under 1 ms in 50 ms, at most 3 s): start-up or
/// the login burst is then not charged to what follows.
async fn quiesce(pid: i32) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = usage(pid)?.cpu_s;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = usage(pid)?.cpu_s;
        if now - last < 0.001 {
            return Ok(());
        }
        last = now;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A bed: one Prosody (plain, or with mod_podium and podium beside it)

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arm {
    Plain,
    Podium,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Plain => "plain",
            Arm::Podium => "podium",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Rules {
    AllowAll,
    DenyVideo,
}

/// The workload's rules. The harness has no tokens, so the sign-in domain stands for a group.
const RULES_ALLOW_ALL: &str = "\
INSERT INTO rules (room, who, who_value, media, effect, priority, note) VALUES ('*', 'everyone', NULL, 'audio', 'allow', 0, 'bench 1: everyone may talk');
INSERT INTO rules (room, who, who_value, media, effect, priority, note) VALUES ('*', 'role', 'moderator', 'all', 'allow', 10, 'bench 2: moderators send anything');
INSERT INTO rules (room, who, who_value, media, effect, priority, note) VALUES ('*', 'domain', 'localhost', 'video,screen', 'allow', 0, 'bench 3: the group sends camera and screen');";
const RULE_DENY_VIDEO: &str = "
INSERT INTO rules (room, who, who_value, media, effect, priority, note) VALUES ('*', 'role', 'participant', 'video', 'deny', 5, 'bench 4: participants may not show a camera');";
/// The `edit` figure's two edits of rule 3 (the group's camera and screen).
const REVOKE: &str = "UPDATE rules SET media = 'screen' WHERE id = 3";
const GRANT: &str = "UPDATE rules SET media = 'video,screen' WHERE id = 3";

impl Rules {
    fn parse(text: &str) -> Res<Rules> {
        match text {
            "allow-all" => Ok(Rules::AllowAll),
            "deny-video" => Ok(Rules::DenyVideo),
            other => Err(format!("--rules {other}: allow-all or deny-video").into()),
        }
    }

    fn sql(self) -> String {
        match self {
            Rules::AllowAll => RULES_ALLOW_ALL.to_owned(),
            Rules::DenyVideo => format!("{RULES_ALLOW_ALL}{RULE_DENY_VIDEO}"),
        }
    }
}

enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(common::postgres::TestDatabase),
}

struct BedOptions {
    rules: Rules,
    poll_ms: u64,
    postgres: bool,
    no_nagle: bool,
}

struct Bed {
    arm: Arm,
    // Dropped before Prosody, so podium does not log a lost link.
    podium: Option<Podium>,
    store: Option<Store>,
    prosody: Prosody,
    pid: i32,
}

impl Bed {
    async fn start(arm: Arm, users: &[&str], cpus: &Cpus, options: &BedOptions) -> Res<Bed> {
        let mut accounts: Vec<&str> = users.to_vec();
        accounts.push(FOCUS_USER);
        let prosody = Prosody::start_custom(&accounts, |p| prosody_config(p, arm, options));
        let pid = prosody_pid(&prosody)?;
        cpus.pin_prosody(&prosody)?;
        let (podium, store) = match arm {
            Arm::Plain => (None, None),
            Arm::Podium => {
                let (podium, store) = start_podium(&prosody, options).await?;
                (Some(podium), Some(store))
            }
        };
        Ok(Bed {
            arm,
            podium,
            store,
            prosody,
            pid,
        })
    }

    fn port(&self) -> u16 {
        self.prosody.c2s_port
    }

    fn podium_pid(&self) -> Option<i32> {
        self.podium.as_ref().and_then(|p| p.pid()).map(|p| p as i32)
    }

    /// Prosody's error log lines and podium's ERROR lines: a module that threw or a podium that
    /// failed shows there, not in the clients' stanzas.
    fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .prosody
            .log()
            .lines()
            .filter(|l| l.contains("\terror\t"))
            .map(|l| format!("prosody: {l}"))
            .collect();
        if let Some(podium) = &self.podium {
            out.extend(
                podium
                    .lines()
                    .into_iter()
                    .filter(|l| l.contains("\"level\":\"ERROR\""))
                    .map(|l| format!("podium: {l}")),
            );
        }
        out
    }

    fn check(&self) -> Res<()> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} logged {} errors, the first: {}",
            self.arm.name(),
            problems.len(),
            problems[0]
        )
        .into())
    }
}

/// Prosody as a Jitsi shard has it, and nothing more: one VirtualHost, the conference MUC (with
/// mod_podium for the podium arm), podium's component slot, log level info as Jitsi ships it.
fn prosody_config(prosody: &Prosody, arm: Arm, options: &BedOptions) -> String {
    let dir = prosody.data_dir().display().to_string();
    // SHARD_PLUGIN_PATH: another copy of prosody-plugins/ (a profiling copy of the module, say).
    let plugins = std::env::var("SHARD_PLUGIN_PATH")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/prosody-plugins").to_owned());
    let muc_podium = match arm {
        Arm::Plain => String::new(),
        Arm::Podium => format!(
            "    modules_enabled = {{ \"podium\" }}\n    podium_component = \"{COMPONENT}\"\n    \
             podium_focus_jids = {{ \"focus@{DOMAIN}\" }}\n"
        ),
    };
    let nagle = if options.no_nagle {
        "network_settings = { nagle = false }\n"
    } else {
        ""
    };
    format!(
        r#"run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
plugin_paths = {{ "{plugins}" }}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix"; }}
modules_disabled = {{ "s2s"; "tls"; "offline"; }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
{nagle}
VirtualHost "{DOMAIN}"

Component "{MUC}" "muc"
{muc_podium}    admins = {{ "focus@{DOMAIN}" }}
    restrict_room_creation = false
    muc_room_locking = false
    muc_room_cache_size = 1000

Component "{COMPONENT}"
    component_secret = "{SECRET}"
"#,
        c2s = prosody.c2s_port,
        component = prosody.component_port,
    )
}

/// Starts podium (release build, inheriting the generator's CPU) on a fresh store, waits for its
/// resync, seeds the rules and waits until podium has loaded them.
async fn start_podium(prosody: &Prosody, options: &BedOptions) -> Res<(Podium, Store)> {
    let store = if options.postgres {
        Store::Postgres(common::postgres::TestDatabase::create())
    } else {
        Store::Sqlite(prosody.data_dir().join("podium.db"))
    };
    let database = match &store {
        Store::Sqlite(path) => format!(
            "[database]\npath = \"{}\"\npoll_interval_ms = {}",
            path.display(),
            options.poll_ms
        ),
        Store::Postgres(db) => format!(
            "[database]\nurl = \"{}\"\ninstance = \"bench\"\npoll_interval_ms = {}\naudit_spool = \"{}\"",
            db.url,
            options.poll_ms,
            prosody.data_dir().join("podium-audit.spool").display()
        ),
    };
    let config = prosody.data_dir().join("podium.toml");
    std::fs::write(
        &config,
        format!(
            "[xmpp]\nhost = \"127.0.0.1\"\nport = {port}\ncomponent = \"{COMPONENT}\"\n\
             secret = \"{SECRET}\"\nmuc = \"{MUC}\"\n\n{database}\n\n[log]\n\
             filter = \"info,sqlx=warn\"\nformat = \"json\"\n",
            port = prosody.component_port
        ),
    )?;
    let podium = Podium::start(&config);
    podium.wait_for(&["resync complete"]).await;
    let mark = podium.mark();
    let sql = options.rules.sql();
    let version = match &store {
        Store::Sqlite(path) => {
            common::sqlite3(path, &format!("{sql} SELECT version FROM rules_version;"))
        }
        Store::Postgres(db) => db.psql(&format!("{sql} SELECT version FROM rules_version;")),
    };
    let version = format!("\"version\":{}", version.trim());
    podium
        .wait_for_after(mark, &["rules changed", &version])
        .await;
    Ok((podium, store))
}

// ---------------------------------------------------------------------------------------------
// The wire: raw c2s connections that write pre-built bytes and frame stanzas by byte search

const STREAM_OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Iq,
    Presence,
    Message,
    /// SASL `<success/>`.
    Success,
}

struct Stanza {
    kind: Kind,
    xml: String,
    at: Instant,
}

/// An attribute's value in an opening tag (either quote).
fn attr<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    let bytes = head.as_bytes();
    let mut from = 0;
    while let Some(found) = head[from..].find(name) {
        let at = from + found;
        let after = at + name.len();
        if at > 0
            && bytes[at - 1].is_ascii_whitespace()
            && bytes.get(after) == Some(&b'=')
            && let Some(&quote) = bytes.get(after + 1)
            && (quote == b'\'' || quote == b'"')
        {
            let start = after + 2;
            let end = start + head[start..].find(quote as char)?;
            return Some(&head[start..end]);
        }
        from = after;
    }
    None
}

impl Stanza {
    fn head(&self) -> &str {
        let end = self.xml.find('>').map_or(self.xml.len(), |e| e + 1);
        &self.xml[..end]
    }

    fn attr(&self, name: &str) -> Option<&str> {
        attr(self.head(), name)
    }

    fn typ(&self) -> Option<&str> {
        self.attr("type")
    }

    fn from(&self) -> &str {
        self.attr("from").unwrap_or("")
    }

    /// The action of a Jingle IQ.
    fn jingle_action(&self) -> Option<&str> {
        let start = self.xml.find("<jingle ")?;
        let tail = &self.xml[start..];
        let end = tail.find('>')?;
        attr(&tail[..end], "action")
    }

    /// `<source>` elements (sources and group members), as jicofo would read them.
    fn sources(&self) -> usize {
        self.xml.matches("<source ").count()
    }
}

/// Error stanzas, SASL failures and stream errors any connection of a run received.
#[derive(Default)]
struct Errors {
    count: AtomicUsize,
    samples: Mutex<Vec<String>>,
}

impl Errors {
    fn record(&self, who: &str, what: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap();
        if samples.len() < 5 {
            samples.push(format!("{who}: {}", &what[..what.len().min(600)]));
        }
    }

    fn check(&self, arm: Arm) -> Res<()> {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return Ok(());
        }
        Err(format!(
            "{}: {count} error stanzas; the first: {:?}",
            arm.name(),
            self.samples.lock().unwrap()
        )
        .into())
    }
}

struct Link {
    who: String,
    out: mpsc::UnboundedSender<Vec<u8>>,
    inbox: mpsc::UnboundedReceiver<Stanza>,
}

impl Link {
    /// Connects, logs in with SASL PLAIN and binds `resource`.
    async fn connect(
        port: u16,
        user: &str,
        resource: &str,
        errors: &Arc<Errors>,
        window: &Semaphore,
    ) -> Res<Link> {
        let permit = window.acquire().await?;
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(mut bytes) = outgoing.recv().await {
                while let Ok(more) = outgoing.try_recv() {
                    bytes.extend_from_slice(&more);
                }
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(
            read,
            inbox_tx,
            out.clone(),
            Arc::clone(errors),
            user.to_owned(),
        ));
        let mut link = Link {
            who: user.to_owned(),
            out,
            inbox,
        };
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        link.send(format!(
            "{STREAM_OPEN}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        ));
        link.next_where(|s| s.kind == Kind::Success).await?;
        drop(permit);
        link.send(format!(
            "{STREAM_OPEN}<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        ));
        link.next_where(|s| s.kind == Kind::Iq && s.attr("id") == Some("bind"))
            .await?;
        Ok(link)
    }

    fn send(&self, bytes: impl Into<Vec<u8>>) {
        let _ = self.out.send(bytes.into());
    }

    async fn next(&mut self) -> Res<Stanza> {
        match tokio::time::timeout(TIMEOUT, self.inbox.recv()).await {
            Ok(Some(stanza)) => Ok(stanza),
            Ok(None) => Err(format!("{}: connection closed", self.who).into()),
            Err(_) => Err(format!("{}: nothing received within {TIMEOUT:?}", self.who).into()),
        }
    }

    async fn next_where(&mut self, wanted: impl Fn(&Stanza) -> bool) -> Res<Stanza> {
        loop {
            let stanza = self.next().await?;
            if wanted(&stanza) {
                return Ok(stanza);
            }
        }
    }
}

/// Reads one connection: frames top-level elements, answers IQ sets with `result` at once (as
/// strophe.jingle.js and jicofo do; lib-jitsi-meet never answers a mute IQ), records errors, and
/// hands every stanza to the connection's owner.
async fn read_loop(
    mut read: OwnedReadHalf,
    inbox: mpsc::UnboundedSender<Stanza>,
    out: mpsc::UnboundedSender<Vec<u8>>,
    errors: Arc<Errors>,
    who: String,
) {
    let fd = read.as_ref().as_raw_fd();
    let mut buffer: Vec<u8> = Vec::with_capacity(32 * 1024);
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Prosody keeps Nagle on: without a quick ACK its next small write waits for our delayed
        // ACK (40 ms), and the latencies would measure that instead of Prosody.
        quick_ack(fd);
        buffer.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        while let Some((start, end, name)) = next_element(&buffer, pos) {
            pos = end;
            let element = &buffer[start..end];
            let kind = match name.as_str() {
                "iq" => Kind::Iq,
                "presence" => Kind::Presence,
                "message" => Kind::Message,
                "success" => Kind::Success,
                "/stream:stream" => return,
                "failure" | "stream:error" => {
                    errors.record(&who, &String::from_utf8_lossy(element));
                    continue;
                }
                _ => continue,
            };
            let stanza = Stanza {
                kind,
                xml: String::from_utf8_lossy(element).into_owned(),
                at: Instant::now(),
            };
            if stanza.typ() == Some("error") {
                errors.record(&who, &stanza.xml);
            }
            if kind == Kind::Iq && stanza.typ() == Some("set") && !stanza.xml.contains("<mute ") {
                let _ = out.send(
                    format!(
                        "<iq type='result' to='{}' id='{}'/>",
                        stanza.from(),
                        stanza.attr("id").unwrap_or("")
                    )
                    .into_bytes(),
                );
            }
            let _ = inbox.send(stanza);
        }
        buffer.drain(..pos);
    }
}

fn quick_ack(fd: i32) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on our own socket with a c_int option value.
    #[allow(unsafe_code)]
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    let first = needle[0];
    let mut at = from;
    while let Some(i) = hay[at..].iter().position(|&b| b == first) {
        let candidate = at + i;
        if hay[candidate..].starts_with(needle) {
            return Some(candidate);
        }
        if hay.len() - candidate < needle.len() {
            return None;
        }
        at = candidate + 1;
    }
    None
}

/// The next complete top-level element at or after `pos`: (start, end, name). A closing tag (only
/// `</stream:stream>` closes at the top level), the stream header and the XML declaration come back
/// at once with their names (`/stream:stream`, `stream:stream`, `?xml`).
fn next_element(buffer: &[u8], pos: usize) -> Option<(usize, usize, String)> {
    let lt = find(buffer, b"<", pos)?;
    let gt = find(buffer, b">", lt)?;
    let name_end = buffer[lt + 2..gt]
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/')
        .map_or(gt, |i| lt + 2 + i);
    let name = String::from_utf8_lossy(&buffer[lt + 1..name_end]).into_owned();
    if name.starts_with('/') || name == "?xml" || name == "stream:stream" || buffer[gt - 1] == b'/'
    {
        return Some((lt, gt + 1, name));
    }
    let close = format!("</{name}>");
    let end = find(buffer, close.as_bytes(), gt)? + close.len();
    Some((lt, end, name))
}

// ---------------------------------------------------------------------------------------------
// The plan: every stanza of every participant, personalised from the recorded ones before the
// clock starts

/// The recorded stanzas of a current lib-jitsi-meet (tests/fixtures/lib-jitsi-meet) and the real
/// jicofo's session-initiate (tests/fixtures/jicofo).
struct Templates {
    join: String,
    accept: String,
    source_add: String,
    /// Five presence updates: the SourceInfo changes of accepting, sharing the screen, muting the
    /// camera, stopping the share and unmuting the camera.
    updates: [String; UPDATES],
    initiate: String,
    /// Every SSRC the templates use, in order: a participant's k-th SSRC replaces the k-th.
    ssrcs: Vec<String>,
}

fn sent(fixture: &str) -> Vec<&str> {
    let start = fixture.find("<sent>").expect("a <sent> block") + "<sent>".len();
    let end = fixture.find("</sent>").expect("a </sent>");
    fixture[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('<'))
        .collect()
}

fn one_sent(fixture: &str, prefix: &str, containing: &str) -> String {
    sent(fixture)
        .into_iter()
        .find(|l| l.starts_with(prefix) && l.contains(containing))
        .unwrap_or_else(|| panic!("no {prefix} with {containing} in a fixture"))
        .to_owned()
}

impl Templates {
    fn load() -> Templates {
        let fixture = |name: &str| -> &'static str {
            match name {
                "join" => include_str!("../tests/fixtures/lib-jitsi-meet/join.xml"),
                "accept" => include_str!("../tests/fixtures/lib-jitsi-meet/session-accept.xml"),
                "add-desktop" => include_str!("../tests/fixtures/lib-jitsi-meet/add-desktop.xml"),
                "mute-camera" => include_str!("../tests/fixtures/lib-jitsi-meet/mute-camera.xml"),
                "stop-desktop" => {
                    include_str!("../tests/fixtures/lib-jitsi-meet/stop-desktop.xml")
                }
                "unmute-camera" => {
                    include_str!("../tests/fixtures/lib-jitsi-meet/unmute-camera.xml")
                }
                _ => unreachable!(),
            }
        };
        let accept = one_sent(fixture("accept"), "<iq", "session-accept");
        let source_add = one_sent(fixture("add-desktop"), "<iq", "source-add");
        let initiate = {
            let recorded = include_str!("../tests/fixtures/jicofo/session-initiate.xml");
            let start = recorded.find("<request>").unwrap() + "<request>".len();
            let end = recorded.find("</request>").unwrap();
            recorded[start..end].to_owned()
        };
        let mut ssrcs = Vec::new();
        for xml in [&accept, &source_add] {
            let mut rest = xml.as_str();
            while let Some(i) = rest.find("ssrc=\"") {
                rest = &rest[i + 6..];
                let value = &rest[..rest.find('"').unwrap()];
                if !ssrcs.iter().any(|s| s == value) {
                    ssrcs.push(value.to_owned());
                }
            }
        }
        Templates {
            join: one_sent(fixture("join"), "<presence", ""),
            updates: [
                one_sent(fixture("accept"), "<presence", ""),
                one_sent(fixture("add-desktop"), "<presence", ""),
                one_sent(fixture("mute-camera"), "<presence", ""),
                one_sent(fixture("stop-desktop"), "<presence", ""),
                one_sent(fixture("unmute-camera"), "<presence", ""),
            ],
            accept,
            source_add,
            initiate,
            ssrcs,
        }
    }
}

struct Person {
    index: usize,
    user: String,
    room: String,
    nick: String,
    resource: String,
    sid: String,
}

impl Person {
    fn occupant(&self) -> String {
        format!("{}/{}", self.room, self.nick)
    }

    /// A recorded stanza in this participant's name: room, nick, JID, session and SSRCs replaced.
    fn personalise(&self, template: &str, templates: &Templates) -> String {
        let text = template
            .replace("room1@conference.localhost", &self.room)
            .replace("122e984b", &self.nick)
            .replace(
                "alice@localhost/J4R6VdNeyAmu",
                &format!("{}@{DOMAIN}/{}", self.user, self.resource),
            )
            .replace(">alice</nick>", &format!(">{}</nick>", self.user))
            .replace("3f0db85d15ba", &self.sid);
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(i) = rest.find("ssrc=\"") {
            out.push_str(&rest[..i + 6]);
            rest = &rest[i + 6..];
            let end = rest.find('"').unwrap();
            match templates.ssrcs.iter().position(|s| s == &rest[..end]) {
                Some(k) => out.push_str(&(1_000_000 + self.index * 32 + k).to_string()),
                None => out.push_str(&rest[..end]),
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}

/// Replaces the `id` of a stanza's opening tag.
fn with_id(stanza: &str, id: &str) -> String {
    let head_end = stanza.find('>').unwrap();
    let start = stanza[..head_end].find(" id=\"").expect("an id") + 5;
    let end = start + stanza[start..].find('"').unwrap();
    format!("{}{id}{}", &stanza[..start], &stanza[end..])
}

struct ParticipantPlan {
    /// Where it is in [`Plan::rooms`].
    room: usize,
    index: usize,
    user: String,
    resource: String,
    occupant: String,
    join: Vec<u8>,
    accept: Vec<u8>,
    add: Vec<u8>,
    remove: Vec<u8>,
    updates: [Vec<u8>; UPDATES],
    leave: Vec<u8>,
    /// What the focus sends this occupant.
    initiate: Vec<u8>,
}

struct RoomPlan {
    jid: String,
    participants: Vec<ParticipantPlan>,
}

struct Plan {
    rooms: Vec<RoomPlan>,
}

impl Plan {
    fn build(rooms: usize, per_room: usize) -> Plan {
        let templates = Templates::load();
        let rooms = (0..rooms)
            .map(|r| {
                let jid = format!("shard{r:04}@{MUC}");
                let participants = (0..per_room)
                    .map(|p| {
                        let index = r * per_room + p;
                        let person = Person {
                            index,
                            user: format!("p{r:04}x{p:03}"),
                            room: jid.clone(),
                            // A bijection of u32: unique per room, 8 hex digits like an endpoint id.
                            nick: format!("{:08x}", (index as u32).wrapping_mul(2_654_435_761)),
                            resource: format!("web{index:06x}"),
                            sid: format!("{:012x}", (index as u64 + 1) * 0x9e37_79b9),
                        };
                        participant_plan(&person, &templates, r, p)
                    })
                    .collect();
                RoomPlan { jid, participants }
            })
            .collect();
        Plan { rooms }
    }

    fn users(&self) -> Vec<&str> {
        self.participants().map(|p| p.user.as_str()).collect()
    }

    fn participants(&self) -> impl Iterator<Item = &ParticipantPlan> {
        self.rooms.iter().flat_map(|r| r.participants.iter())
    }

    fn count(&self) -> usize {
        self.participants().count()
    }
}

fn participant_plan(
    person: &Person,
    templates: &Templates,
    room: usize,
    index: usize,
) -> ParticipantPlan {
    let occupant = person.occupant();
    let own = |t: &str| person.personalise(t, templates);
    let accept = with_id(&own(&templates.accept), "acc");
    let add = with_id(&own(&templates.source_add), "add");
    let remove = with_id(
        &add.replace("action=\"source-add\"", "action=\"source-remove\""),
        "rem",
    );
    let initiate = {
        let body_start = templates.initiate.find('>').unwrap() + 1;
        format!(
            "<iq xmlns='jabber:client' to='{occupant}' id='si-{}' type='set'>{}",
            person.nick,
            &templates.initiate[body_start..]
        )
        .replace("58auto9dmdaes", &person.sid)
    };
    ParticipantPlan {
        room,
        index,
        user: person.user.clone(),
        resource: person.resource.clone(),
        join: own(&templates.join).into_bytes(),
        accept: accept.into_bytes(),
        add: add.into_bytes(),
        remove: remove.into_bytes(),
        updates: templates.updates.clone().map(|u| own(&u).into_bytes()),
        leave: format!("<presence to='{occupant}' type='unavailable'/>").into_bytes(),
        initiate: initiate.into_bytes(),
        occupant,
    }
}

// ---------------------------------------------------------------------------------------------
// The focus: one connection owning every room as nick `focus`, like jicofo

#[derive(Clone, Debug)]
struct Arrival {
    action: String,
    from: String,
    at: Instant,
    sources: usize,
}

#[derive(Default)]
struct FocusLog {
    arrivals: Mutex<Vec<Arrival>>,
    rooms_left: AtomicUsize,
    changed: Notify,
}

impl FocusLog {
    /// The first arrival of `action` at or after `since`, per occupant.
    fn first_since(&self, action: &str, since: Instant) -> HashMap<String, Arrival> {
        let mut out: HashMap<String, Arrival> = HashMap::new();
        for a in self.arrivals.lock().unwrap().iter() {
            if a.action == action && a.at >= since && !out.contains_key(&a.from) {
                out.insert(a.from.clone(), a.clone());
            }
        }
        out
    }

    /// When the focus first held each occupant's sources: a session-accept that carried them, or
    /// the first source-add after it (the module's release).
    fn sources_held(&self) -> HashMap<String, Instant> {
        let mut out = HashMap::new();
        for a in self.arrivals.lock().unwrap().iter() {
            let carries =
                (a.action == "session-accept" || a.action == "source-add") && a.sources > 0;
            if carries && !out.contains_key(&a.from) {
                out.insert(a.from.clone(), a.at);
            }
        }
        out
    }

    /// Waits until `done` holds, re-checking on every arrival.
    async fn wait(&self, what: &str, done: impl Fn(&FocusLog) -> bool) -> Res<()> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(format!("the focus never saw {what} within {TIMEOUT:?}").into());
            }
        }
    }
}

struct Focus {
    out: mpsc::UnboundedSender<Vec<u8>>,
    log: Arc<FocusLog>,
    rooms: Vec<String>,
}

impl Focus {
    /// Logs in, creates every room (join as `focus`, whois=anyone) and then serves: sends each
    /// new occupant its session-initiate (when `initiate`), answers every IQ, notes Jingle.
    async fn start(
        port: u16,
        plan: &Arc<Plan>,
        initiate: bool,
        errors: &Arc<Errors>,
        window: &Semaphore,
    ) -> Res<Focus> {
        let mut link = Link::connect(port, FOCUS_USER, "focus", errors, window).await?;
        let rooms: Vec<String> = plan.rooms.iter().map(|r| r.jid.clone()).collect();
        for (i, room) in rooms.iter().enumerate() {
            link.send(format!(
                "<presence to='{room}/focus'><x xmlns='http://jabber.org/protocol/muc'/>\
                 <versions xmlns='http://jitsi.org/jitmeet'><component name='focus'>1.0.1080</component>\
                 </versions><conference-properties xmlns='http://jitsi.org/protocol/focus'>\
                 <property key='support-terminate-restart' value='true'/>\
                 <property key='bridge-count' value='1'/></conference-properties></presence>\
                 <iq type='set' to='{room}' id='cfg{i}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                 <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>\
                 <value>http://jabber.org/protocol/muc#roomconfig</value></field>\
                 <field var='muc#roomconfig_whois'><value>anyone</value></field></x></query></iq>"
            ));
        }
        let (mut joined, mut configured) = (HashSet::new(), 0);
        while joined.len() < rooms.len() || configured < rooms.len() {
            let s = link.next().await?;
            match s.kind {
                Kind::Presence if s.from().ends_with("/focus") => {
                    joined.insert(s.from().to_owned());
                }
                Kind::Iq if s.typ() == Some("result") => configured += 1,
                _ => {}
            }
        }
        let initiates: HashMap<String, Vec<u8>> = if initiate {
            plan.participants()
                .map(|p| (p.occupant.clone(), p.initiate.clone()))
                .collect()
        } else {
            HashMap::new()
        };
        let log = Arc::new(FocusLog::default());
        let out = link.out.clone();
        tokio::spawn(focus_loop(link, initiates, Arc::clone(&log)));
        Ok(Focus { out, log, rooms })
    }

    async fn leave(&self) -> Res<()> {
        for room in &self.rooms {
            let _ = self
                .out
                .send(format!("<presence to='{room}/focus' type='unavailable'/>").into_bytes());
        }
        let all = self.rooms.len();
        self.log
            .wait("itself leave every room", |log| {
                log.rooms_left.load(Ordering::Relaxed) >= all
            })
            .await
    }
}

async fn focus_loop(mut link: Link, initiates: HashMap<String, Vec<u8>>, log: Arc<FocusLog>) {
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(s) = link.inbox.recv().await {
        match s.kind {
            Kind::Presence => {
                let from = s.from();
                if from.ends_with("/focus") {
                    if s.typ() == Some("unavailable") {
                        log.rooms_left.fetch_add(1, Ordering::Relaxed);
                        log.changed.notify_waiters();
                    }
                } else if s.typ() == Some("unavailable") {
                    seen.remove(from);
                } else if s.typ().is_none()
                    && seen.insert(from.to_owned())
                    && let Some(initiate) = initiates.get(from)
                {
                    link.send(initiate.clone());
                }
            }
            Kind::Iq if s.typ() == Some("set") => {
                if let Some(action) = s.jingle_action() {
                    log.arrivals.lock().unwrap().push(Arrival {
                        action: action.to_owned(),
                        from: s.from().to_owned(),
                        at: s.at,
                        sources: s.sources(),
                    });
                    log.changed.notify_waiters();
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Participants

/// A participant's connection and what it has seen of itself.
struct Client {
    link: Link,
    occupant: String,
    self_presences: usize,
    first_self_presence: Option<Instant>,
    left: bool,
    initiated: bool,
    results: HashSet<String>,
}

impl Client {
    async fn connect(
        port: u16,
        plan: &ParticipantPlan,
        errors: &Arc<Errors>,
        window: &Semaphore,
    ) -> Res<Client> {
        let link = Link::connect(port, &plan.user, &plan.resource, errors, window).await?;
        Ok(Client {
            link,
            occupant: plan.occupant.clone(),
            self_presences: 0,
            first_self_presence: None,
            left: false,
            initiated: false,
            results: HashSet::new(),
        })
    }

    /// Reads until `done` holds, noting self-presences, the session-initiate and IQ results.
    async fn until(&mut self, done: impl Fn(&Client) -> bool) -> Res<()> {
        while !done(self) {
            let s = self.link.next().await.map_err(|e| {
                format!(
                    "{e} (self-presences {}, session-initiate {}, results {:?}, left {})",
                    self.self_presences, self.initiated, self.results, self.left
                )
            })?;
            if s.typ() == Some("error") {
                return Err(format!("{}: error reply: {}", self.occupant, s.xml).into());
            }
            match s.kind {
                Kind::Presence if s.from() == self.occupant => {
                    if s.typ() == Some("unavailable") {
                        self.left = true;
                    } else {
                        self.self_presences += 1;
                        self.first_self_presence.get_or_insert(s.at);
                    }
                }
                Kind::Iq
                    if s.typ() == Some("set") && s.jingle_action() == Some("session-initiate") =>
                {
                    self.initiated = true;
                }
                Kind::Iq if s.typ() == Some("result") => {
                    if let Some(id) = s.attr("id") {
                        self.results.insert(id.to_owned());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn result(&mut self, id: &str) -> Res<()> {
        self.until(|c| c.results.contains(id)).await
    }
}

/// Everyone in a room has joined; everyone in a room is done.
struct RoomBarriers {
    joined: Barrier,
    done: Barrier,
}

/// The `cpu` workload of one participant (the yardstick's order of stanzas).
async fn participant_load(
    port: u16,
    plan: Arc<Plan>,
    room: usize,
    index: usize,
    barriers: Arc<RoomBarriers>,
    errors: Arc<Errors>,
    window: Arc<Semaphore>,
) -> Res<()> {
    let p = &plan.rooms[room].participants[index];
    let mut c = Client::connect(port, p, &errors, &window).await?;
    c.link.send(p.join.clone());
    c.until(|c| c.self_presences >= 1 && c.initiated).await?;
    c.link.send(p.accept.clone());
    barriers.joined.wait().await;
    c.link.send(p.updates[0].clone());
    c.result("acc").await?;
    c.link
        .send([p.add.clone(), p.updates[1].clone(), p.updates[2].clone()].concat());
    c.result("add").await?;
    c.link
        .send([p.remove.clone(), p.updates[3].clone(), p.updates[4].clone()].concat());
    c.result("rem").await?;
    c.until(|c| c.self_presences > UPDATES).await?;
    barriers.done.wait().await;
    c.link.send(p.leave.clone());
    c.until(|c| c.left).await?;
    c.link.send("</stream:stream>");
    Ok(())
}

async fn join_all(mut tasks: JoinSet<Res<()>>) -> Res<()> {
    while let Some(done) = tasks.join_next().await {
        if let Err(error) = done? {
            tasks.abort_all();
            return Err(error);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Figure 1: CPU and RSS, side by side

struct CpuRun {
    prosody_cpu_s: f64,
    prosody_peak_mib: f64,
    prosody_start_mib: f64,
    podium_cpu_s: f64,
    podium_peak_mib: f64,
    wall_s: f64,
    /// Jingle requests the focus received, by action.
    focus_jingle: String,
    prosody_busy: String,
}

async fn cpu_workload(bed: &Bed, plan: Arc<Plan>, errors: Arc<Errors>) -> Res<CpuRun> {
    let window = Arc::new(Semaphore::new(LOGIN_WINDOW));
    let before = usage(bed.pid)?;
    let podium_before = bed.podium_pid().map(usage).transpose()?;
    let started = Instant::now();
    let busy = Busy::start(bed.pid)?;
    let focus = Focus::start(bed.port(), &plan, true, &errors, &window).await?;
    let mut tasks = JoinSet::new();
    for (r, room) in plan.rooms.iter().enumerate() {
        let n = room.participants.len();
        let barriers = Arc::new(RoomBarriers {
            joined: Barrier::new(n),
            done: Barrier::new(n),
        });
        for i in 0..n {
            tasks.spawn(participant_load(
                bed.port(),
                Arc::clone(&plan),
                r,
                i,
                Arc::clone(&barriers),
                Arc::clone(&errors),
                Arc::clone(&window),
            ));
        }
    }
    join_all(tasks).await?;
    focus.leave().await?;
    let wall_s = started.elapsed().as_secs_f64();
    let prosody_busy = busy.show(bed.pid)?;
    let after = usage(bed.pid)?;
    let podium_after = bed.podium_pid().map(usage).transpose()?;
    let (podium_cpu_s, podium_peak_mib) = match (podium_before, podium_after) {
        (Some(b), Some(a)) => (a.cpu_s - b.cpu_s, a.peak_rss_mib),
        _ => (0.0, 0.0),
    };
    let focus_jingle = {
        let mut by_action: std::collections::BTreeMap<String, usize> = Default::default();
        for a in focus.log.arrivals.lock().unwrap().iter() {
            *by_action.entry(a.action.clone()).or_default() += 1;
        }
        format!("{by_action:?}")
    };
    Ok(CpuRun {
        prosody_cpu_s: after.cpu_s - before.cpu_s,
        prosody_peak_mib: after.peak_rss_mib,
        prosody_start_mib: before.rss_mib,
        podium_cpu_s,
        podium_peak_mib,
        wall_s,
        focus_jingle,
        prosody_busy,
    })
}

async fn cpu_figure(
    cpus: &Cpus,
    pairs: usize,
    rooms: usize,
    per_room: usize,
    rules: Rules,
) -> Res<()> {
    let plan = Arc::new(Plan::build(rooms, per_room));
    let participants = plan.count();
    println!(
        "cpu: {rooms} rooms x {per_room} participants, rules {rules:?}, {pairs} side-by-side pairs"
    );
    let options = BedOptions {
        rules,
        poll_ms: 200,
        postgres: false,
        no_nagle: false,
    };
    let mut runs: Vec<(CpuRun, CpuRun)> = Vec::new();
    for pair in 0..pairs {
        let order = if pair % 2 == 0 {
            [Arm::Plain, Arm::Podium]
        } else {
            [Arm::Podium, Arm::Plain]
        };
        let mut beds = Vec::new();
        for arm in order {
            beds.push(Bed::start(arm, &plan.users(), cpus, &options).await?);
        }
        for bed in &beds {
            quiesce(bed.pid).await?;
            if let Some(pid) = bed.podium_pid() {
                quiesce(pid).await?;
            }
        }
        let generator_before = own_cpu_s();
        let errors: Vec<Arc<Errors>> = beds.iter().map(|_| Arc::default()).collect();
        let (first, second) = tokio::join!(
            cpu_workload(&beds[0], Arc::clone(&plan), Arc::clone(&errors[0])),
            cpu_workload(&beds[1], Arc::clone(&plan), Arc::clone(&errors[1])),
        );
        let generator_s = own_cpu_s() - generator_before;
        let mut results = HashMap::new();
        for ((bed, errors), run) in beds.iter().zip(&errors).zip([first, second]) {
            let run = run.map_err(|e| format!("{}: {e}", bed.arm.name()))?;
            errors.check(bed.arm)?;
            bed.check()?;
            results.insert(bed.arm.name(), run);
        }
        let (plain, podium) = (
            results.remove("plain").unwrap(),
            results.remove("podium").unwrap(),
        );
        println!(
            "pair {}/{pairs} ({} first): prosody cpu plain {:.2} s, podium {:.2} s -> ratio {:.3} | \
             (prosody+podium)/plain {:.3} | rss peak {:.1} / {:.1} MiB | podium {:.2} s cpu, {:.1} MiB | \
             wall {:.1} / {:.1} s | prosody {} / {} | focus jingle {} / {} | generator {:.2} s | errors 0",
            pair + 1,
            order[0].name(),
            plain.prosody_cpu_s,
            podium.prosody_cpu_s,
            podium.prosody_cpu_s / plain.prosody_cpu_s,
            (podium.prosody_cpu_s + podium.podium_cpu_s) / plain.prosody_cpu_s,
            plain.prosody_peak_mib,
            podium.prosody_peak_mib,
            podium.podium_cpu_s,
            podium.podium_peak_mib,
            plain.wall_s,
            podium.wall_s,
            plain.prosody_busy,
            podium.prosody_busy,
            plain.focus_jingle,
            podium.focus_jingle,
            generator_s,
        );
        runs.push((plain, podium));
        drop(beds);
    }
    let spread = |f: &dyn Fn(&(CpuRun, CpuRun)) -> f64| Spread::of(runs.iter().map(f).collect());
    println!(
        "cpu summary, median [min-max] of {pairs} pairs, rules {rules:?}, {participants} participants:"
    );
    println!(
        "  prosody cpu ratio podium/plain {}",
        spread(&|(p, m)| m.prosody_cpu_s / p.prosody_cpu_s).show(3)
    );
    println!(
        "  (prosody + podium cpu) / plain prosody {}",
        spread(&|(p, m)| (m.prosody_cpu_s + m.podium_cpu_s) / p.prosody_cpu_s).show(3)
    );
    println!(
        "  prosody cpu s: plain {}, podium {}",
        spread(&|(p, _)| p.prosody_cpu_s).show(2),
        spread(&|(_, m)| m.prosody_cpu_s).show(2)
    );
    println!(
        "  prosody rss peak MiB: plain {}, podium {}; start {} / {}",
        spread(&|(p, _)| p.prosody_peak_mib).show(1),
        spread(&|(_, m)| m.prosody_peak_mib).show(1),
        spread(&|(p, _)| p.prosody_start_mib).show(1),
        spread(&|(_, m)| m.prosody_start_mib).show(1)
    );
    println!(
        "  module memory per participant KiB (peak difference / {participants}) {}",
        spread(&|(p, m)| (m.prosody_peak_mib - p.prosody_peak_mib) * 1024.0 / participants as f64)
            .show(1)
    );
    println!(
        "  podium cpu s {} ({} of its prosody's), rss peak MiB {}",
        spread(&|(_, m)| m.podium_cpu_s).show(2),
        spread(&|(_, m)| m.podium_cpu_s / m.prosody_cpu_s).show(3),
        spread(&|(_, m)| m.podium_peak_mib).show(1)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Figure 2: join latency

struct JoinRun {
    achieved_rate: f64,
    self_presence_ms: Vec<f64>,
    sources_held_ms: Vec<f64>,
    decided_ms: Vec<f64>,
    not_stripped: usize,
    prosody_busy: String,
}

/// The wall-clock time of each "decision" (cause joined) podium logged, by occupant JID.
fn decisions(podium: &Podium) -> HashMap<String, i128> {
    let mut out = HashMap::new();
    for line in podium.lines() {
        if !line.contains("\"message\":\"decision\"") {
            continue;
        }
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["cause"] != "joined" {
            continue;
        }
        let (Some(room), Some(nick), Some(ts)) = (
            entry["room"].as_str(),
            entry["occupant"].as_str(),
            entry["timestamp"].as_str(),
        ) else {
            continue;
        };
        if let Ok(ts) = ts.parse::<jiff::Timestamp>() {
            out.entry(format!("{room}/{nick}"))
                .or_insert(ts.as_nanosecond());
        }
    }
    out
}

/// Same as `decision` lines' parsing, for the `rules changed` and `re-decided` lines after `mark`.
fn log_time(podium: &Podium, mark: usize, message: &str) -> Option<i128> {
    let needle = format!("\"message\":\"{message}\"");
    podium.lines()[mark..].iter().find_map(|line| {
        if !line.contains(&needle) {
            return None;
        }
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        Some(
            entry["timestamp"]
                .as_str()?
                .parse::<jiff::Timestamp>()
                .ok()?
                .as_nanosecond(),
        )
    })
}

async fn join_run(bed: &Bed, plan: &Arc<Plan>, rate: f64) -> Res<JoinRun> {
    let errors: Arc<Errors> = Arc::default();
    let window = Semaphore::new(LOGIN_WINDOW);
    let focus = Focus::start(bed.port(), plan, true, &errors, &window).await?;
    // Round-robin over the rooms, so every room fills at the same pace.
    let per_room = plan.rooms[0].participants.len();
    let order: Vec<&ParticipantPlan> = (0..per_room)
        .flat_map(|i| plan.rooms.iter().filter_map(move |r| r.participants.get(i)))
        .collect();
    let window = Arc::new(window);
    let mut logins = JoinSet::new();
    for (i, p) in order.iter().enumerate() {
        let (port, errors, window) = (bed.port(), Arc::clone(&errors), Arc::clone(&window));
        let (plan, room, index) = (Arc::clone(plan), p.room, p.index);
        logins.spawn(async move {
            let p = &plan.rooms[room].participants[index];
            Client::connect(port, p, &errors, &window)
                .await
                .map(|c| (i, c))
        });
    }
    let mut clients = Vec::new();
    while let Some(done) = logins.join_next().await {
        clients.push(done??);
    }
    clients.sort_by_key(|(i, _)| *i);
    quiesce(bed.pid).await?;
    let mut waits = JoinSet::new();
    let mut sent: HashMap<String, (Instant, i128)> = HashMap::new();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let busy = Busy::start(bed.pid)?;
    let first = Instant::now();
    for (i, (_, mut client)) in clients.into_iter().enumerate() {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let p = order[i];
        let at = Instant::now();
        sent.insert(
            p.occupant.clone(),
            (at, jiff::Timestamp::now().as_nanosecond()),
        );
        client.link.send(p.join.clone());
        let accept = p.accept.clone();
        waits.spawn(async move {
            client
                .until(|c| c.self_presences >= 1 && c.initiated)
                .await?;
            client.link.send(accept);
            client.result("acc").await?;
            Ok::<_, Box<dyn Error + Send + Sync>>((
                client.occupant.clone(),
                client.first_self_presence.unwrap(),
            ))
        });
    }
    let span = first.elapsed().as_secs_f64();
    let mut self_presence_ms = Vec::new();
    while let Some(done) = waits.join_next().await {
        let (occupant, at) = done??;
        self_presence_ms.push(ms(at - sent[&occupant].0));
    }
    let occupants: Vec<String> = sent.keys().cloned().collect();
    focus
        .log
        .wait("every participant's sources", |log| {
            let held = log.sources_held();
            occupants.iter().all(|o| held.contains_key(o))
        })
        .await?;
    let prosody_busy = busy.show(bed.pid)?;
    let held = focus.log.sources_held();
    let sources_held_ms = occupants.iter().map(|o| ms(held[o] - sent[o].0)).collect();
    let accepts = focus
        .log
        .first_since("session-accept", first - Duration::from_secs(1));
    let not_stripped = accepts.values().filter(|a| a.sources > 0).count();
    let decided_ms = match &bed.podium {
        Some(podium) => {
            let decided = decisions(podium);
            occupants
                .iter()
                .filter_map(|o| decided.get(o).map(|t| (t - sent[o].1) as f64 / 1e6))
                .collect()
        }
        None => Vec::new(),
    };
    errors.check(bed.arm)?;
    bed.check()?;
    Ok(JoinRun {
        achieved_rate: (order.len() - 1) as f64 / span,
        self_presence_ms,
        sources_held_ms,
        decided_ms,
        not_stripped,
        prosody_busy,
    })
}

async fn join_figure(
    cpus: &Cpus,
    pairs: usize,
    rates: &[f64],
    joins: usize,
    rooms: usize,
    no_nagle: bool,
) -> Res<()> {
    let per_room = joins.div_ceil(rooms);
    let plan = Arc::new(Plan::build(rooms, per_room));
    println!(
        "join: {} joins over {rooms} rooms at {rates:?}/s, {pairs} pairs (plain, podium one after the other), nagle {}",
        plan.count(),
        if no_nagle { "off" } else { "on (as shipped)" }
    );
    let options = BedOptions {
        rules: Rules::AllowAll,
        poll_ms: 200,
        postgres: false,
        no_nagle,
    };
    for &rate in rates {
        let mut runs: Vec<(JoinRun, JoinRun)> = Vec::new();
        for pair in 0..pairs {
            let order = if pair % 2 == 0 {
                [Arm::Plain, Arm::Podium]
            } else {
                [Arm::Podium, Arm::Plain]
            };
            let mut results = HashMap::new();
            for arm in order {
                let bed = Bed::start(arm, &plan.users(), cpus, &options).await?;
                quiesce(bed.pid).await?;
                let run = join_run(&bed, &plan, rate)
                    .await
                    .map_err(|e| format!("{}: {e}", arm.name()))?;
                results.insert(arm.name(), run);
            }
            let (plain, podium) = (
                results.remove("plain").unwrap(),
                results.remove("podium").unwrap(),
            );
            println!(
                "{rate}/s pair {}/{pairs}: plain self-presence p50 {:.1} p99 {:.1}, focus has sources p50 {:.1} p99 {:.1} | \
                 podium self-presence p50 {:.1} p99 {:.1}, decided p50 {:.1} p99 {:.1} (n {}), focus has sources p50 {:.1} p99 {:.1} \
                 (accepts not stripped {}) ms | achieved {:.0} / {:.0} joins/s | prosody {} / {}",
                pair + 1,
                pct(&plain.self_presence_ms, 50.0),
                pct(&plain.self_presence_ms, 99.0),
                pct(&plain.sources_held_ms, 50.0),
                pct(&plain.sources_held_ms, 99.0),
                pct(&podium.self_presence_ms, 50.0),
                pct(&podium.self_presence_ms, 99.0),
                pct(&podium.decided_ms, 50.0),
                pct(&podium.decided_ms, 99.0),
                podium.decided_ms.len(),
                pct(&podium.sources_held_ms, 50.0),
                pct(&podium.sources_held_ms, 99.0),
                podium.not_stripped,
                plain.achieved_rate,
                podium.achieved_rate,
                plain.prosody_busy,
                podium.prosody_busy,
            );
            runs.push((plain, podium));
        }
        let spread =
            |f: &dyn Fn(&(JoinRun, JoinRun)) -> f64| Spread::of(runs.iter().map(f).collect());
        println!("join summary at {rate}/s, median [min-max] of {pairs} pairs, ms:");
        for (name, p) in [("p50", 50.0), ("p99", 99.0)] {
            println!(
                "  {name}: plain join -> self-presence {} | podium join -> decided {} | podium join -> focus holds sources {} \
                 | minus plain self-presence {} | podium join -> self-presence {} | plain join -> focus has accept {}",
                spread(&|(pl, _)| pct(&pl.self_presence_ms, p)).show(1),
                spread(&|(_, m)| pct(&m.decided_ms, p)).show(1),
                spread(&|(_, m)| pct(&m.sources_held_ms, p)).show(1),
                spread(&|(pl, m)| pct(&m.sources_held_ms, p) - pct(&pl.self_presence_ms, p))
                    .show(1),
                spread(&|(_, m)| pct(&m.self_presence_ms, p)).show(1),
                spread(&|(pl, _)| pct(&pl.sources_held_ms, p)).show(1),
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Figure 3: SQL edit -> the focus has every change

struct Edit {
    focus_all_ms: f64,
    focus_first_ms: f64,
    noticed_ms: Option<f64>,
    redecided_ms: Option<f64>,
    prosody_busy: String,
}

enum Editor {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Editor {
    async fn open(store: &Store) -> Res<Editor> {
        use sqlx::Connection;
        Ok(match store {
            Store::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(Duration::from_secs(5));
                Editor::Sqlite(sqlx::SqliteConnection::connect_with(&options).await?)
            }
            Store::Postgres(db) => Editor::Postgres(sqlx::PgConnection::connect(&db.url).await?),
        })
    }

    async fn run(&mut self, sql: &'static str) -> Res<()> {
        match self {
            Editor::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await?,
            Editor::Postgres(c) => {
                sqlx::raw_sql(sql).execute(c).await?;
                return Ok(());
            }
        };
        Ok(())
    }
}

async fn edit_once(
    bed: &Bed,
    editor: &mut Editor,
    focus: &Focus,
    occupants: &[String],
    sql: &'static str,
    action: &'static str,
) -> Res<Edit> {
    let podium = bed.podium.as_ref().unwrap();
    let mark = podium.mark();
    let busy = Busy::start(bed.pid)?;
    let t0 = Instant::now();
    let wall0 = jiff::Timestamp::now().as_nanosecond();
    editor.run(sql).await?;
    focus
        .log
        .wait(&format!("a {action} from every occupant"), |log| {
            let got = log.first_since(action, t0);
            occupants.iter().all(|o| got.contains_key(o))
        })
        .await?;
    let prosody_busy = busy.show(bed.pid)?;
    let got = focus.log.first_since(action, t0);
    let times: Vec<f64> = occupants.iter().map(|o| ms(got[o].at - t0)).collect();
    Ok(Edit {
        focus_all_ms: times.iter().cloned().fold(f64::MIN, f64::max),
        focus_first_ms: times.iter().cloned().fold(f64::MAX, f64::min),
        noticed_ms: log_time(podium, mark, "rules changed").map(|t| (t - wall0) as f64 / 1e6),
        redecided_ms: log_time(podium, mark, "re-decided after rule change")
            .map(|t| (t - wall0) as f64 / 1e6),
        prosody_busy,
    })
}

async fn edit_run(
    cpus: &Cpus,
    plan: &Arc<Plan>,
    options: &BedOptions,
    cycles: usize,
) -> Res<Vec<(Edit, Edit)>> {
    let bed = Bed::start(Arm::Podium, &plan.users(), cpus, options).await?;
    quiesce(bed.pid).await?;
    let errors: Arc<Errors> = Arc::default();
    let window = Arc::new(Semaphore::new(LOGIN_WINDOW));
    let focus = Focus::start(bed.port(), plan, true, &errors, &window).await?;
    let mut setups = JoinSet::new();
    for p in plan.participants() {
        let (port, errors, window) = (bed.port(), Arc::clone(&errors), Arc::clone(&window));
        let (plan, room, index) = (Arc::clone(plan), p.room, p.index);
        setups.spawn(async move {
            let p = &plan.rooms[room].participants[index];
            let mut c = Client::connect(port, p, &errors, &window).await?;
            c.link.send(p.join.clone());
            c.until(|c| c.self_presences >= 1 && c.initiated).await?;
            c.link.send(p.accept.clone());
            c.result("acc").await?;
            Ok::<_, Box<dyn Error + Send + Sync>>(c)
        });
    }
    let mut clients = Vec::new();
    while let Some(done) = setups.join_next().await {
        clients.push(done??);
    }
    let occupants: Vec<String> = plan.participants().map(|p| p.occupant.clone()).collect();
    focus
        .log
        .wait("every participant's sources", |log| {
            let held = log.sources_held();
            occupants.iter().all(|o| held.contains_key(o))
        })
        .await?;
    quiesce(bed.pid).await?;
    let mut editor = Editor::open(bed.store.as_ref().unwrap()).await?;
    let mut out = Vec::new();
    for _ in 0..cycles {
        // A pseudo-random wait, so the edit falls anywhere in podium's poll period.
        tokio::time::sleep(Duration::from_millis(200 + jitter(options.poll_ms))).await;
        let revoke = edit_once(
            &bed,
            &mut editor,
            &focus,
            &occupants,
            REVOKE,
            "source-remove",
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(200 + jitter(options.poll_ms))).await;
        let grant = edit_once(&bed, &mut editor, &focus, &occupants, GRANT, "source-add").await?;
        out.push((revoke, grant));
    }
    errors.check(bed.arm)?;
    bed.check()?;
    drop(clients);
    Ok(out)
}

fn jitter(range_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    nanos % range_ms.max(1)
}

async fn edit_figure(
    cpus: &Cpus,
    runs: usize,
    rooms: usize,
    per_room: usize,
    poll_ms: u64,
    cycles: usize,
    postgres: bool,
) -> Res<()> {
    let plan = Arc::new(Plan::build(rooms, per_room));
    let store = if postgres {
        "PostgreSQL (LISTEN/NOTIFY)"
    } else {
        "SQLite"
    };
    println!(
        "edit: {} occupants in {rooms} rooms, {store}, poll {poll_ms} ms, {runs} runs x {cycles} cycles",
        plan.count()
    );
    let options = BedOptions {
        rules: Rules::AllowAll,
        poll_ms,
        postgres,
        no_nagle: false,
    };
    let mut all = Vec::new();
    for run in 0..runs {
        let edits = edit_run(cpus, &plan, &options, cycles).await?;
        for (revoke, grant) in &edits {
            println!(
                "run {}/{runs}: revoke -> focus has all {} source-removes {:.0} ms (first {:.0}, podium noticed {:.0}, \
                 re-decided {:.0}; prosody {}) | grant -> all source-adds {:.0} ms (first {:.0}, noticed {:.0}, \
                 re-decided {:.0}; prosody {})",
                run + 1,
                plan.count(),
                revoke.focus_all_ms,
                revoke.focus_first_ms,
                revoke.noticed_ms.unwrap_or(f64::NAN),
                revoke.redecided_ms.unwrap_or(f64::NAN),
                revoke.prosody_busy,
                grant.focus_all_ms,
                grant.focus_first_ms,
                grant.noticed_ms.unwrap_or(f64::NAN),
                grant.redecided_ms.unwrap_or(f64::NAN),
                grant.prosody_busy,
            );
        }
        all.extend(edits);
    }
    let spread = |f: &dyn Fn(&(Edit, Edit)) -> f64| Spread::of(all.iter().map(f).collect());
    println!(
        "edit summary, {store}, poll {poll_ms} ms, median [min-max] of {} edits each, ms:",
        all.len()
    );
    println!(
        "  revoke: focus has every source-remove {} | first {} | podium noticed {} | re-decided {}",
        spread(&|(r, _)| r.focus_all_ms).show(0),
        spread(&|(r, _)| r.focus_first_ms).show(0),
        spread(&|(r, _)| r.noticed_ms.unwrap_or(f64::NAN)).show(0),
        spread(&|(r, _)| r.redecided_ms.unwrap_or(f64::NAN)).show(0),
    );
    println!(
        "  grant: focus has every source-add {} | first {} | podium noticed {} | re-decided {}",
        spread(&|(_, g)| g.focus_all_ms).show(0),
        spread(&|(_, g)| g.focus_first_ms).show(0),
        spread(&|(_, g)| g.noticed_ms.unwrap_or(f64::NAN)).show(0),
        spread(&|(_, g)| g.redecided_ms.unwrap_or(f64::NAN)).show(0),
    );
    println!(
        "  after podium noticed: revoke {} | grant {}",
        spread(&|(r, _)| r.focus_all_ms - r.noticed_ms.unwrap_or(f64::NAN)).show(0),
        spread(&|(_, g)| g.focus_all_ms - g.noticed_ms.unwrap_or(f64::NAN)).show(0),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (NaN for no samples).
fn pct(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Spread {
        xs.retain(|x| !x.is_nan());
        if xs.is_empty() {
            return Spread {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        };
        Spread {
            median,
            min: xs[0],
            max: xs[n - 1],
        }
    }

    fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}-{:.d$}]",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}
