//! The real jicofo, for the opt-in verification tests (tests/real_jicofo.rs): started from the
//! classpath the operator names in `PODIUM_JICOFO_CLASSPATH` (their installed jicofo: its jar and
//! its dependencies, `:`-separated), main class `org.jitsi.jicofo.Main`, against the test Prosody.
//! Nothing here builds jicofo; without the variable the test dies saying what to set.
//!
//! The configuration is the least jicofo needs on a bare Prosody (`jicofo.conf`, HOCON, keys from
//! jicofo's `reference.conf`): c2s without TLS as `focus@localhost`, the conference MUC, the
//! brewery where the bridge stand-in (tests/common/bridge.rs) announces itself, health checks off
//! (the stand-in answers no health-check conference), SCTP off (the stand-in has no data channel)
//! and a free port for its REST API. Everything else is jicofo's default.
//!
//! jicofo is ready when it logs the bridge as a new videobridge (`BridgeSelector.addJvbAddress`):
//! before that it joins conferences but invites nobody.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::prosody::{BREWERY, DOMAIN, MUC, PASSWORD, Prosody, die_with_parent, free_port};

/// The environment variable naming jicofo's classpath.
pub const CLASSPATH_VAR: &str = "PODIUM_JICOFO_CLASSPATH";
/// jicofo's entry point.
pub const MAIN_CLASS: &str = "org.jitsi.jicofo.Main";
/// How long jicofo may take to start and find the bridge (a JVM on a loaded two-core machine).
const START_LIMIT: Duration = Duration::from_secs(120);

/// One jicofo at a time in a test process: each is a JVM, and the verification runs on small
/// machines; tests take this lock for their whole run.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running jicofo; killed (by its own PID) on drop. When the test fails, its log is printed.
pub struct RealJicofo {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    notify: Arc<Notify>,
    log_path: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

/// The classpath from [`CLASSPATH_VAR`]; panics with what to set when it is missing.
pub fn classpath() -> String {
    match std::env::var(CLASSPATH_VAR) {
        Ok(classpath) if !classpath.trim().is_empty() => classpath.trim().to_owned(),
        _ => panic!(
            "{CLASSPATH_VAR} is not set: these tests run a real jicofo. Set it to your jicofo's \
             classpath (its jar and every dependency jar, ':'-separated, as your jicofo \
             package starts it); main class {MAIN_CLASS}; `java` from JAVA_HOME or PATH."
        ),
    }
}

impl RealJicofo {
    /// Writes `jicofo.conf` for `prosody`, starts jicofo and waits until it has found the bridge
    /// (which must already be in the brewery).
    pub async fn start(prosody: &Prosody) -> RealJicofo {
        let classpath = classpath();
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let config = prosody.data_dir().join("jicofo.conf");
        std::fs::write(
            &config,
            format!(
                r#"jicofo {{
  xmpp.client {{
    hostname = "127.0.0.1"
    port = {c2s}
    domain = "{DOMAIN}"
    xmpp-domain = "{DOMAIN}"
    username = "focus"
    password = "{PASSWORD}"
    use-tls = false
    conference-muc-jid = "{MUC}"
  }}
  bridge {{
    brewery-jid = "{BREWERY}"
    health-checks.enabled = false
  }}
  sctp.enabled = false
  rest.port = {rest}
}}
"#,
                c2s = prosody.c2s_port,
                rest = free_port(),
            ),
        )
        .unwrap();
        let java = std::env::var_os("JAVA_HOME")
            .map(|home| PathBuf::from(home).join("bin/java"))
            .unwrap_or_else(|| PathBuf::from("java"));
        let mut command = Command::new(java);
        command
            .arg("-Xmx512m")
            .arg(format!("-Dconfig.file={}", config.display()))
            // Smack logs every stanza: the log shown on failure says what jicofo saw and sent.
            .arg("-Dsmack.debugEnabled=true")
            .arg("-cp")
            .arg(classpath)
            .arg(MAIN_CLASS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("could not start java for jicofo: {error}"));
        let log_path = prosody.data_dir().join("jicofo.log");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let notify = Arc::new(Notify::new());
        let log = Arc::new(Mutex::new(std::fs::File::create(&log_path).unwrap()));
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let (lines, notify, log) = (Arc::clone(&lines), Arc::clone(&notify), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let _ = writeln!(log.lock().unwrap(), "{line}");
                    lines.lock().unwrap().push(line);
                    notify.notify_waiters();
                }
                notify.notify_waiters();
            });
        }
        let jicofo = RealJicofo {
            child: Some(child),
            lines,
            notify,
            log_path,
            _turn: turn,
        };
        jicofo
            .wait_for(
                "jicofo finds the bridge",
                "Added new videobridge",
                START_LIMIT,
            )
            .await;
        jicofo
    }

    /// Waits for a log line containing `needle`; panics after `limit` (or when jicofo exits).
    pub async fn wait_for(&self, what: &str, needle: &str, limit: Duration) {
        self.wait_for_count(what, needle, 1, limit).await;
    }

    /// Waits until `count` log lines contain `needle`; returns the last of them.
    pub async fn wait_for_count(
        &self,
        what: &str,
        needle: &str,
        count: usize,
        limit: Duration,
    ) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            let found: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line.contains(needle))
                .take(count)
                .cloned()
                .collect();
            if found.len() == count {
                return found[count - 1].clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{what}: jicofo never logged {needle:?} {count} times (log: {})",
                    self.log_path.display()
                );
            }
        }
    }

    /// Everything jicofo logged so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for RealJicofo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() || std::env::var_os("ECHO_JICOFO_LOG").is_some() {
            let lines = self.log();
            let tail = &lines[lines.len().saturating_sub(400)..];
            eprintln!(
                "--- jicofo log (last {} lines) ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}
