//! A real Prosody (Debian's package) per test: free loopback ports, a fresh data dir, a generated
//! config that loads mod_podium from this repository. Killed on drop, and with the test process.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "localhost";
/// Jitsi's guest domain (`guest.<domain>`): a VirtualHost with `authentication = "anonymous"`, present
/// only when started with [`Prosody::start_with_guests`]. Sign in with [`super::c2s::C2s::connect_anonymous`].
pub const GUEST_DOMAIN: &str = "guest.localhost";
pub const MUC: &str = "conference.localhost";
pub const COMPONENT: &str = "podium.localhost";
/// Jitsi's breakout-room MUC (`breakout_rooms_muc`), with mod_podium and the test stand-in for
/// jitsi-meet's breakout module (`tests/prosody-plugins/mod_test_breakout.lua`).
pub const BREAKOUT_MUC: &str = "breakout.localhost";
/// Jitsi's A/V moderation component, played by `tests/prosody-plugins/mod_test_av_moderation.lua`;
/// mod_podium on the MUC watches it (`podium_av_moderation_component`).
pub const AV_MODERATION: &str = "avmoderation.localhost";
pub const OTHER_COMPONENT: &str = "other.localhost";
/// A MUC without mod_podium, like Jitsi's lobby (`lobby.<domain>`): Jingle through it is not governed.
pub const LOBBY_MUC: &str = "lobby.localhost";
/// The visitors' MUC on a visitor Prosody ([`Prosody::start_visitor_node`]), like Jitsi's
/// `conference.v1.<domain>`; jicofo joins its rooms there with its usual JID.
pub const VISITOR_MUC: &str = "conference.v1.localhost";
pub const SECRET: &str = "podium-test-secret";
pub const OTHER_SECRET: &str = "other-test-secret";
pub const PASSWORD: &str = "pw";
/// The internal MUC where jicofo finds bridges (Jitsi's `internal.auth.<domain>`).
pub const BREWERY_HOST: &str = "internal.localhost";
/// The brewery room every bridge joins and jicofo watches (jicofo's `bridge.brewery-jid`). jicofo
/// must be an owner there, as Jitsi's `admins` on `internal.auth.<domain>` make it: it configures the
/// room when it joins, and on `forbidden` leaves the brewery and invites nobody (`BaseBrewery.start`).
pub const BREWERY: &str = "jvbbrewery@internal.localhost";
/// jicofo's account, an admin of the conference MUC (so owner and moderator in every room), as in
/// Jitsi's `admins = { "focus@auth.<domain>" }`.
pub const FOCUS_ACCOUNT: &str = "focus@localhost";
/// The MUC options conference tests pass to [`Prosody::start_with`]: mod_podium learns the brewery
/// (where it can reach the bridge) and jicofo's account.
pub const CONFERENCE_OPTIONS: &str = r#"    podium_bridge_muc = "jvbbrewery@internal.localhost"
    podium_focus_jids = { "focus@localhost" }
"#;

/// A free loopback port for a Prosody this process starts.
///
/// Tests of one binary run in parallel and each asks for ports before its Prosody binds them, so the
/// kernel may hand the same free port to two of them (one test's c2s port was another's component
/// port); a port is therefore never handed out twice in one process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Kills the child when the test process dies, whatever the way.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub struct Prosody {
    pub dir: tempfile::TempDir,
    pub c2s_port: u16,
    pub component_port: u16,
    /// The loopback HTTP port where `mod_websocket` serves `/xmpp-websocket`, when started with
    /// [`Prosody::start_with_websocket`] (for the real lib-jitsi-meet in a browser).
    pub http_port: Option<u16>,
    /// The loopback port of Prosody's admin console (`mod_admin_telnet`), when started with
    /// [`Prosody::start_with_console`]; talk to it with [`Prosody::console`].
    pub console_port: Option<u16>,
    child: Option<Child>,
}

impl Prosody {
    /// Writes the config and accounts, starts Prosody and waits until both ports accept.
    pub fn start(users: &[&str]) -> Prosody {
        Prosody::start_with(users, "")
    }

    /// Like [`Prosody::start`], with `muc_options` (config lines, e.g. [`CONFERENCE_OPTIONS`])
    /// appended verbatim to the conference MUC's component section.
    pub fn start_with(users: &[&str], muc_options: &str) -> Prosody {
        Prosody::start_configured(users, muc_options, false, false, false)
    }

    /// Like [`Prosody::start_with`], with Prosody's admin console on a free loopback port
    /// (`mod_admin_telnet` with `console_ports`; Debian's 0.12 runs its commands through
    /// `mod_admin_shell`), for the tests that reload modules as an operator would.
    pub fn start_with_console(users: &[&str], muc_options: &str) -> Prosody {
        Prosody::start_configured(users, muc_options, false, false, true)
    }

    /// Runs one admin console command (e.g. `module:reload("podium", "conference.localhost")`) and
    /// returns what the console printed for it. The console ends each answer with a NUL byte.
    pub async fn console(&self, command: &str) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let port = self.console_port.expect("started with start_with_console");
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("the admin console accepts");
        let (read, mut write) = stream.into_split();
        let mut read = tokio::io::BufReader::new(read);
        async fn answer(
            read: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
        ) -> Vec<u8> {
            let mut answer = Vec::new();
            read.read_until(0, &mut answer)
                .await
                .expect("the console answers");
            assert_eq!(answer.pop(), Some(0), "the console closed: {answer:?}");
            answer
        }
        let answer = tokio::time::timeout(super::patient(Duration::from_secs(20)), async {
            answer(&mut read).await; // the banner
            write
                .write_all(format!("{command}\n").as_bytes())
                .await
                .unwrap();
            answer(&mut read).await
        })
        .await
        .expect("the console answered within 20 s");
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Like [`Prosody::start_with`], plus Jitsi's guest domain: the VirtualHost [`GUEST_DOMAIN`] with
    /// `authentication = "anonymous"` (SASL ANONYMOUS, a random node per session), whose sessions
    /// mod_podium treats as proving no identity.
    pub fn start_with_guests(users: &[&str], muc_options: &str) -> Prosody {
        Prosody::start_configured(users, muc_options, false, true, false)
    }

    /// Like [`Prosody::start_with`], and also serves XMPP over WebSocket on a free loopback HTTP port
    /// ([`Prosody::http_port`]), for a real lib-jitsi-meet in a browser: `mod_websocket` with
    /// `cross_domain_websocket` (the page is served from another origin) and
    /// `consider_websocket_secure` (plain `ws://` on loopback, so SASL PLAIN is offered). The
    /// conference MUC also exposes real JIDs to everyone (`muc_room_default_public_jids`, Jitsi's
    /// `whois=anyone`): lib-jitsi-meet recognises the focus by the real JID of occupant `focus`
    /// (`focusjid + '/'`), and otherwise rejects its session-initiate as from a non-focus.
    pub fn start_with_websocket(users: &[&str], muc_options: &str) -> Prosody {
        Prosody::start_configured(users, muc_options, true, false, false)
    }

    /// Like [`Prosody::start`], without mod_podium on the conference and breakout MUCs: every Jingle
    /// request reaches the focus as the client sent it (the jicofo conformance tests).
    pub fn start_without_podium(users: &[&str]) -> Prosody {
        let prosody = Prosody::new_dir(None);
        prosody.write_config("", false);
        let config = std::fs::read_to_string(prosody.config_path())
            .unwrap()
            .replacen("    modules_enabled = { \"podium\" }\n", "", 1)
            .replace("\"podium\"; \"test_breakout\"", "\"test_breakout\"");
        std::fs::write(prosody.config_path(), config).unwrap();
        for user in users {
            prosody.add_user(user);
        }
        let mut prosody = prosody;
        prosody.launch();
        prosody
    }

    /// A Prosody on a config file the caller writes whole (`config` gets the new Prosody, for its
    /// ports and directory), with `users` as accounts: the shard bench's lean, Jitsi-shaped config
    /// (benches/shard.rs), which leaves out the test modules so that their cost does not dilute a
    /// CPU ratio.
    pub fn start_custom(users: &[&str], config: impl FnOnce(&Prosody) -> String) -> Prosody {
        let mut prosody = Prosody::new_dir(None);
        std::fs::create_dir_all(prosody.dir.path().join("data")).unwrap();
        std::fs::create_dir_all(prosody.dir.path().join("certs")).unwrap();
        std::fs::write(prosody.config_path(), config(&prosody)).unwrap();
        for user in users {
            prosody.add_user(user);
        }
        prosody.launch();
        prosody
    }

    /// The process id of the running Prosody (for /proc figures and CPU pinning).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A Jitsi visitor Prosody ("vnode"): the same `localhost` accounts (jicofo signs in there with
    /// its usual JID, as Jitsi's `prosody.cfg.lua.visitor.template` does), the visitors' MUC
    /// [`VISITOR_MUC`] without mod_podium, and `mod_podium_visitor` on every VirtualHost (global
    /// `modules_enabled`), as the README tells operators.
    pub fn start_visitor_node(users: &[&str]) -> Prosody {
        let prosody = Prosody::new_dir(None);
        prosody.write_visitor_config();
        for user in users {
            prosody.add_user(user);
        }
        let mut prosody = prosody;
        prosody.launch();
        prosody
    }

    fn new_dir(http_port: Option<u16>) -> Prosody {
        let dir = tempfile::Builder::new()
            .prefix("podium-it-")
            .tempdir()
            .unwrap();
        Prosody {
            c2s_port: free_port(),
            component_port: free_port(),
            http_port,
            console_port: None,
            dir,
            child: None,
        }
    }

    fn write_visitor_config(&self) {
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        let config = format!(
            r#"
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
plugin_paths = {{ "{plugins}" }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix"; "podium_visitor"; }}
modules_disabled = {{ "s2s"; "tls"; "offline"; }}
podium_focus_jids = {{ "{FOCUS_ACCOUNT}" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"

VirtualHost "{DOMAIN}"

Component "{VISITOR_MUC}" "muc"
    restrict_room_creation = false
    muc_room_locking = false
    muc_room_default_public_jids = true
    admins = {{ "{FOCUS_ACCOUNT}" }}

Component "{OTHER_COMPONENT}"
    component_secret = "{OTHER_SECRET}"
"#,
            dir = dir.display(),
            plugins = Self::repo().join("prosody-plugins").display(),
            c2s = self.c2s_port,
            component = self.component_port,
        );
        std::fs::write(self.config_path(), config).unwrap();
    }

    fn start_configured(
        users: &[&str],
        muc_options: &str,
        websocket: bool,
        guests: bool,
        console: bool,
    ) -> Prosody {
        let dir = tempfile::Builder::new()
            .prefix("podium-it-")
            .tempdir()
            .unwrap();
        let prosody = Prosody {
            c2s_port: free_port(),
            component_port: free_port(),
            http_port: websocket.then(free_port),
            console_port: console.then(free_port),
            dir,
            child: None,
        };
        prosody.write_config(muc_options, guests);
        for user in users {
            prosody.add_user(user);
        }
        let mut prosody = prosody;
        prosody.launch();
        prosody
    }

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    /// Opt-in: `TEST_JITSI_PLUGINS=<jitsi-meet checkout>/resources/prosody-plugins` runs the tests with
    /// jitsi-meet's own modules in place of the stand-ins for them: `av_moderation_component` (with
    /// `muc_mapper_domain_base`) as the A/V moderation component, `features_identity` and
    /// `jitsi_session` as global modules, `muc_breakout_rooms` on the VirtualHost (breakout rooms get
    /// random names; [`super::conference::create_breakout`] asks for one as Jitsi's clients do). The
    /// tests' clients connect over plain c2s, without the web
    /// URL that names the room, so `mod_test_jitsi_session` still keeps the room a session joins, and
    /// `mod_test_room_metadata` gives rooms the `jitsiMetadata` jitsi-meet's metadata component keeps.
    /// Unset (CI): the stand-ins in tests/prosody-plugins/.
    pub fn jitsi_plugins() -> Option<PathBuf> {
        std::env::var_os("TEST_JITSI_PLUGINS")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    }

    fn write_config(&self, muc_options: &str, guests: bool) {
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        let repo = Self::repo();
        // Empty unless started with `start_with_websocket`, so other tests get the same config.
        let (http_ports, websocket_module, websocket_options, public_jids) = match self.http_port {
            Some(port) => (
                port.to_string(),
                r#" "websocket";"#,
                "http_interfaces = { \"127.0.0.1\" }\ncross_domain_websocket = true\nconsider_websocket_secure = true\n",
                "    muc_room_default_public_jids = true\n",
            ),
            None => (String::new(), "", "", ""),
        };
        // The stand-ins unless TEST_JITSI_PLUGINS names jitsi-meet's own modules.
        let (jitsi_path, identity_modules, av_moderation_module, av_moderation_options) =
            match Self::jitsi_plugins() {
                Some(jitsi) => (
                    format!(", \"{}\"", jitsi.display()),
                    r#""features_identity"; "jitsi_session"; "test_room_metadata";"#,
                    "av_moderation_component",
                    format!("    muc_mapper_domain_base = \"{DOMAIN}\"\n"),
                ),
                None => (
                    String::new(),
                    r#""test_features_identity";"#,
                    "test_av_moderation",
                    String::new(),
                ),
            };
        let (main_host_options, breakout_modules) = match Self::jitsi_plugins() {
            Some(_) => (
                format!(
                    "    modules_enabled = {{ \"muc_breakout_rooms\" }}\n    breakout_rooms_muc = \"{BREAKOUT_MUC}\"\n    main_muc = \"{MUC}\"\n"
                ),
                r#""podium""#,
            ),
            None => (String::new(), r#""podium"; "test_breakout""#),
        };
        // Empty unless started with `start_with_console`: the admin console, on loopback only.
        let (console_module, console_options) = match self.console_port {
            Some(port) => (
                r#" "admin_telnet";"#,
                format!(
                    "console_ports = {{ {port} }}\nconsole_interfaces = {{ \"127.0.0.1\" }}\nconsole_banner = \"short\"\n"
                ),
            ),
            None => ("", String::new()),
        };
        // Empty unless started with `start_with_guests`.
        let guest_host = if guests {
            format!("VirtualHost \"{GUEST_DOMAIN}\"\n    authentication = \"anonymous\"\n")
        } else {
            String::new()
        };
        let config = format!(
            r#"
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
plugin_paths = {{ "{plugins}", "{test_plugins}"{jitsi_path} }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {http_ports} }}
https_ports = {{ }}
{websocket_options}{console_options}modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix"; "test_identity"; {identity_modules} "test_jitsi_session";{websocket_module}{console_module} }}
test_jitsi_session_muc = "{MUC}"
test_room_metadata_muc = "{MUC}"
modules_disabled = {{ "s2s"; "tls"; "offline"; }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"

VirtualHost "{DOMAIN}"
{main_host_options}{guest_host}
Component "{MUC}" "muc"
    modules_enabled = {{ "podium" }}
    podium_component = "{COMPONENT}"
    podium_inspectors = {{ "inspector@{DOMAIN}" }}
    podium_av_moderation_component = "{AV_MODERATION}"
    restrict_room_creation = false
    muc_room_locking = false
    admins = {{ "{FOCUS_ACCOUNT}" }}
{public_jids}{muc_options}
Component "{BREAKOUT_MUC}" "muc"
    modules_enabled = {{ {breakout_modules} }}
    podium_component = "{COMPONENT}"
    podium_main_muc = "{MUC}"
    test_main_muc = "{MUC}"
    podium_inspectors = {{ "inspector@{DOMAIN}" }}
    muc_room_locking = false
    admins = {{ "{FOCUS_ACCOUNT}" }}
{muc_options}
Component "{AV_MODERATION}" "{av_moderation_module}"
    muc_component = "{MUC}"
{av_moderation_options}

Component "{BREWERY_HOST}" "muc"
    restrict_room_creation = false
    muc_room_locking = false
    admins = {{ "{FOCUS_ACCOUNT}" }}

Component "{COMPONENT}"
    component_secret = "{SECRET}"

Component "{OTHER_COMPONENT}"
    component_secret = "{OTHER_SECRET}"

Component "{LOBBY_MUC}" "muc"
    restrict_room_creation = false
    muc_room_locking = false
"#,
            dir = dir.display(),
            plugins = repo.join("prosody-plugins").display(),
            test_plugins = repo.join("tests/prosody-plugins").display(),
            c2s = self.c2s_port,
            component = self.component_port,
        );
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Creates an account the way internal_plain stores it (no prosodyctl process needed).
    pub fn add_user(&self, user: &str) {
        let accounts = self.dir.path().join("data").join(DOMAIN).join("accounts");
        std::fs::create_dir_all(&accounts).unwrap();
        std::fs::write(
            accounts.join(format!("{}.dat", user.replace('-', "%2d"))),
            format!("return {{ [\"password\"] = \"{PASSWORD}\"; }};\n"),
        )
        .unwrap();
    }

    fn launch(&mut self) {
        // A fresh log per start, so readiness is judged on this process's lines only.
        let _ = std::fs::remove_file(self.log_path());
        let mut command = Command::new("prosody");
        command
            .args(["-F", "--config"])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        self.child = Some(
            command
                .spawn()
                .expect("prosody must be installed (scripts/test installs it)"),
        );
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "prosody exited early ({status}); log:\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let listening = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if log.contains("Activated service 'c2s'")
                && listening(self.c2s_port)
                && listening(self.component_port)
                && self.http_port.is_none_or(listening)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prosody did not become ready; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no room saving), then start again on the same ports with the same accounts.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Logs in on the component port as [`OTHER_COMPONENT`], another component Prosody knows, with
    /// its own secret.
    pub async fn login_other_component(&self) -> podium::xmpp::stream::ComponentStream {
        let addr = format!("127.0.0.1:{}", self.component_port);
        podium::xmpp::stream::login(
            &addr,
            OTHER_COMPONENT,
            OTHER_SECRET,
            Duration::from_secs(30),
        )
        .await
        .unwrap()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if std::env::var_os("ECHO_PROSODY_LOG").is_some() {
            eprintln!("--- prosody log ---\n{}", self.log());
        }
        self.kill();
    }
}
