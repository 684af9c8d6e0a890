//! The real `podium` binary as a child process, configured with a TOML file (`--config`), logging
//! JSON lines to stderr, which the harness reads to wait for readiness signals such as
//! "resync complete".

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::prosody::{COMPONENT, MUC, Prosody, SECRET, die_with_parent};

pub struct Podium {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    notify: Arc<Notify>,
    pub config: PathBuf,
}

/// Writes podium's config for this Prosody: `[xmpp]` (with `extra` lines in it), then `database`
/// (the `[database]` section), with JSON debug logs.
pub fn write_config_with(prosody: &Prosody, extra: &str, database: &str) -> PathBuf {
    let path = prosody
        .data_dir()
        .join(format!("podium-{}.toml", super::unique()));
    std::fs::write(
        &path,
        format!(
            r#"
[xmpp]
host = "127.0.0.1"
port = {port}
component = "{COMPONENT}"
secret = "{SECRET}"
muc = "{MUC}"
reconnect_min_ms = 50
reconnect_max_secs = 1
{extra}

{database}

[log]
filter = "debug,sqlx=warn"
format = "json"
"#,
            port = prosody.component_port,
        ),
    )
    .unwrap();
    path
}

/// Writes podium's config for this Prosody and SQLite database.
pub fn write_config(prosody: &Prosody, db: &Path, extra: &str) -> PathBuf {
    let database = format!(
        "[database]\npath = \"{}\"\npoll_interval_ms = 100",
        db.display()
    );
    write_config_with(prosody, extra, &database)
}

/// Writes podium's config for this Prosody on a PostgreSQL database, as instance `instance`.
pub fn write_config_postgres(
    prosody: &Prosody,
    url: &str,
    instance: &str,
    poll_ms: u64,
) -> PathBuf {
    // Each podium its own audit spool, beside its Prosody (not in the working directory the tests
    // share).
    let spool = prosody
        .data_dir()
        .join(format!("podium-{instance}-audit.spool"));
    let database = format!(
        "[database]\nurl = \"{url}\"\ninstance = \"{instance}\"\npoll_interval_ms = {poll_ms}\naudit_spool = \"{}\"",
        spool.display()
    );
    write_config_with(prosody, "", &database)
}

impl Podium {
    pub fn start(config: &Path) -> Podium {
        let mut command = Command::new(env!("CARGO_BIN_EXE_podium"));
        command
            .arg("--config")
            .arg(config)
            .env_remove("RUST_LOG")
            // The opt-in real-jicofo tests' variable shares podium's PODIUM_ prefix, which podium
            // reads as configuration (an unknown key stops it).
            .env_remove(super::real_jicofo::CLASSPATH_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut command);
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let notify = Arc::new(Notify::new());
        let (thread_lines, thread_notify) = (Arc::clone(&lines), Arc::clone(&notify));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("ECHO_PODIUM_LOG").is_some() {
                    eprintln!("podium: {line}");
                }
                thread_lines.lock().unwrap().push(line);
                thread_notify.notify_waiters();
            }
            thread_notify.notify_waiters();
        });
        Podium {
            child: Some(child),
            lines,
            notify,
            config: config.to_owned(),
        }
    }

    /// The process id of the running podium (for /proc figures).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many log lines so far (a mark for [`Podium::wait_for_after`]).
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a log line after `mark` that contains every needle.
    pub async fn wait_for_after(&self, mark: usize, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + super::patient(Duration::from_secs(20));
        loop {
            let notified = self.notify.notified();
            if let Some(line) = self.lines.lock().unwrap()[mark..]
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "podium never logged {needles:?}; its log:\n{}",
                    self.lines().join("\n")
                );
            }
        }
    }

    /// Waits for any log line after `mark`; false when the deadline passes first.
    pub async fn wait_line_after(&self, mark: usize, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.notify.notified();
            if self.lines.lock().unwrap().len() > mark {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    pub async fn wait_for(&self, needles: &[&str]) -> String {
        self.wait_for_after(0, needles).await
    }

    /// SIGKILL: no goodbye, nothing flushed.
    /// Whether the process is still running (it has not exited, whatever the reason).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("podium is running");
        // SAFETY: sending a signal to our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().unwrap()
    }
}

impl Drop for Podium {
    fn drop(&mut self) {
        self.kill9();
    }
}
