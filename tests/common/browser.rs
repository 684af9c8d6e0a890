//! `Browser`: the real lib-jitsi-meet (the 2021 npm bundle `@lyno/lib-jitsi-meet@2.6726.2` with
//! jquery 3.6.0) in Debian's headless Chromium, as a test participant.
//!
//! A tiny HTTP server on a free loopback port serves `tests/real-client/page.html` and `page.js`, the
//! two bundles `scripts/test` fetched (see [`client_dir`]), and two endpoints for the page:
//! * `GET /step` is held until the test queues a step ([`Browser::step`]), then answers it as JSON;
//! * `POST /event` takes one JSON event (`{"type": ...}`) the page reports: library events, every IQ
//!   the client receives, the library's warnings and errors, the results of steps.
//!
//! The page connects over WebSocket to the test's Prosody ([`Prosody::start_with_websocket`]), sends
//! its conference request to the test focus and joins the room with the fake microphone and camera.
//! Tests wait for reported events with a deadline ([`Browser::wait_event`]), never on a timer.
//! Chromium runs with a fresh profile in its own process group, killed on drop and with the test
//! process. No browser automation library: the page reports by itself (research: real-client.md).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

use super::focus::FOCUS_JID;
use super::peer::{AbortOnDrop, Recorder};
use super::prosody::{DOMAIN, MUC, PASSWORD, Prosody, die_with_parent};

/// Where the fetched bundles are: `$TEST_REAL_CLIENT_DIR`, or `target/real-client/` in this
/// repository, as `ensure_real_client` in `scripts/lib.sh` leaves them.
pub fn client_dir() -> PathBuf {
    std::env::var_os("TEST_REAL_CLIENT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/real-client"))
}

/// The bundles the page loads, served from [`client_dir`].
const BUNDLES: [&str; 2] = ["jquery.min.js", "lib-jitsi-meet.min.js"];

/// Everything the page reported, in order.
#[derive(Clone, Debug, Default)]
pub struct PageView {
    pub events: Vec<Value>,
}

impl PageView {
    /// The reported events of `kind` (their `type`).
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|event| event["type"] == kind)
            .collect()
    }
}

/// Who the page is and where it goes.
pub struct PageParams<'a> {
    /// The account (created in Prosody) the client logs in with.
    pub user: &'a str,
    /// The room's local part.
    pub room: &'a str,
    /// The display name.
    pub nick: &'a str,
    /// lib-jitsi-meet's `sourceNameSignaling` flag: sources carry names and presence carries
    /// `<SourceInfo>`. Off (the 2021 default), presence says a screenshare with `<videoType>`.
    pub source_names: bool,
    /// The video codecs a current lib-jitsi-meet prefers, in order (`videoQuality.codecPreferenceOrder`,
    /// e.g. "vp8"), when not its default; the 2021 bundle has no such option.
    pub codecs: Option<&'a str>,
}

/// A headless Chromium running the page, and the server it reports to.
pub struct Browser {
    recorder: Arc<Recorder<PageView>>,
    steps: mpsc::UnboundedSender<Value>,
    next_step: AtomicU64,
    chromium: Child,
    profile: tempfile::TempDir,
    _server: AbortOnDrop,
}

impl Browser {
    /// Serves the page and starts Chromium on it. Panics, saying what to run, when the bundles or
    /// Chromium are missing: the real-client tests never skip.
    pub async fn open(prosody: &Prosody, params: PageParams<'_>) -> Browser {
        let dir = client_dir();
        for bundle in BUNDLES {
            assert!(
                dir.join(bundle).is_file(),
                "the real lib-jitsi-meet client is missing ({} not found): run scripts/test, or \
                 `bash -c 'source scripts/lib.sh && ensure_real_client'` (npm pack of \
                 @lyno/lib-jitsi-meet@2.6726.2 and jquery@3.6.0, and Debian's chromium)",
                dir.join(bundle).display()
            );
        }
        let ws_port = prosody
            .http_port
            .expect("the real client needs Prosody::start_with_websocket");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let recorder = Arc::new(Recorder::new(PageView::default()));
        let (steps, queued) = mpsc::unbounded_channel();
        let server = Server {
            dir,
            recorder: Arc::clone(&recorder),
            queued: Mutex::new(queued),
        };
        let server = tokio::spawn(Arc::new(server).run(listener));

        let query = [
            ("ws", ws_port.to_string()),
            ("domain", DOMAIN.to_owned()),
            ("muc", MUC.to_owned()),
            ("focus", FOCUS_JID.to_owned()),
            ("room", params.room.to_owned()),
            ("id", format!("{}@{DOMAIN}", params.user)),
            ("password", PASSWORD.to_owned()),
            ("nick", params.nick.to_owned()),
            ("sourceNames", u8::from(params.source_names).to_string()),
            ("codecs", params.codecs.unwrap_or("").to_owned()),
        ]
        .iter()
        .map(|(key, value)| format!("{key}={}", percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
        let url = format!("http://127.0.0.1:{port}/page.html?{query}");
        let profile = tempfile::Builder::new()
            .prefix("podium-chromium-")
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let mut command = Command::new("chromium");
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--auto-select-desktop-capture-source=Entire screen",
                "--enable-logging=stderr",
            ])
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("data").display()
            ))
            .arg(&url)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so drop can kill the renderer and GPU processes with it.
            .process_group(0);
        die_with_parent(&mut command);
        let chromium = command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot start chromium ({error}): run scripts/test, or `apt-get install chromium`"
            )
        });
        Browser {
            recorder,
            steps,
            next_step: AtomicU64::new(1),
            chromium,
            profile,
            _server: AbortOnDrop(server),
        }
    }

    /// A copy of everything the page reported.
    pub fn view(&self) -> PageView {
        self.recorder.snapshot()
    }

    /// How many events the page reported so far: a mark for [`Browser::wait_event_after`].
    pub fn mark(&self) -> usize {
        self.recorder.read(|view| view.events.len())
    }

    /// Waits until the page reported an event for which `matches` holds, and returns the first
    /// such event. Fails fast when the page reports a page error or a failed connection, and after
    /// 10 s with every event printed.
    pub async fn wait_event(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.wait_event_after(0, what, matches).await
    }

    /// Like [`Browser::wait_event`], among the events reported after the first `mark` (see
    /// [`Browser::mark`]).
    pub async fn wait_event_after(
        &self,
        mark: usize,
        what: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        self.recorder
            .wait_until(what, |view| {
                let broken = view.events.iter().find(|event| {
                    matches!(
                        event["type"].as_str(),
                        Some("page-error" | "connection-failed")
                    )
                });
                if let Some(broken) = broken {
                    panic!(
                        "{what}: the page failed: {broken}; events: {:#?}",
                        view.events
                    );
                }
                view.events.iter().skip(mark).any(&matches)
            })
            .await;
        self.recorder.read(|view| {
            view.events
                .iter()
                .skip(mark)
                .find(|event| matches(event))
                .cloned()
                .unwrap()
        })
    }

    /// Waits for the first event of `kind`.
    pub async fn wait_type(&self, kind: &str) -> Value {
        self.wait_event(&format!("the page reports {kind}"), |event| {
            event["type"] == kind
        })
        .await
    }

    /// Queues `step` (`{"step": name, ...}`, see `steps` in page.js) for the page and waits until it
    /// is done; returns the page's `step-done` event (with the step's results). Panics when it failed.
    pub async fn step(&self, mut step: Value) -> Value {
        let id = self.next_step.fetch_add(1, Ordering::Relaxed);
        step["id"] = id.into();
        let name = step["step"].clone();
        self.steps.send(step).expect("the step server is running");
        let done = self
            .wait_event(&format!("the page does step {name} ({id})"), |event| {
                event["type"] == "step-done" && event["id"] == id
            })
            .await;
        assert_eq!(done["ok"], true, "step {name} failed: {done}");
        done
    }

    /// Chromium's own log (with the page's console) so far.
    pub fn chromium_log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::env::var_os("ECHO_BROWSER_LOG").is_some() {
            eprintln!("--- chromium log ---\n{}", self.chromium_log());
        }
        // SAFETY: kill(2) on the process group this Browser started (its leader is `chromium`).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-(self.chromium.id() as i32), libc::SIGKILL);
        }
        let _ = self.chromium.wait();
    }
}

/// The page's HTTP server: files, held steps, and events into the recorder.
struct Server {
    dir: PathBuf,
    recorder: Arc<Recorder<PageView>>,
    /// Steps the test queued; one page takes them one `GET /step` at a time.
    queued: Mutex<mpsc::UnboundedReceiver<Value>>,
}

/// One parsed HTTP/1.1 request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

impl Server {
    async fn run(self: Arc<Self>, listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(Arc::clone(&self).serve(stream));
        }
    }

    /// Answers one request and closes the connection (`Connection: close`: no keep-alive to track).
    async fn serve(self: Arc<Self>, mut stream: TcpStream) {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        let (status, content_type, body) = self.answer(&request).await;
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        let _ = stream.shutdown().await;
    }

    async fn answer(&self, request: &Request) -> (&'static str, &'static str, Vec<u8>) {
        const JS: &str = "text/javascript";
        let page_file = |name: &str| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/real-client")
                .join(name)
        };
        let path = request.path.split('?').next().unwrap_or("");
        let file = match (request.method.as_str(), path) {
            ("GET", "/page.html") => Some((page_file("page.html"), "text/html; charset=utf-8")),
            ("GET", "/page.js") => Some((page_file("page.js"), JS)),
            ("GET", "/jquery.min.js") => Some((self.dir.join("jquery.min.js"), JS)),
            ("GET", "/lib-jitsi-meet.min.js") => Some((self.dir.join("lib-jitsi-meet.min.js"), JS)),
            _ => None,
        };
        if let Some((file, content_type)) = file {
            return match std::fs::read(&file) {
                Ok(bytes) => ("200 OK", content_type, bytes),
                Err(error) => (
                    "500 Internal Server Error",
                    "text/plain",
                    format!("{}: {error}", file.display()).into_bytes(),
                ),
            };
        }
        match (request.method.as_str(), path) {
            ("GET", "/step") => {
                // Held until the test queues a step; only one page asks at a time.
                let step = self.queued.lock().await.recv().await;
                match step {
                    Some(step) => ("200 OK", "application/json", step.to_string().into_bytes()),
                    None => ("410 Gone", "text/plain", Vec::new()),
                }
            }
            ("POST", "/event") => match serde_json::from_slice::<Value>(&request.body) {
                Ok(event) => {
                    self.recorder.update(|view| view.events.push(event));
                    ("204 No Content", "text/plain", Vec::new())
                }
                Err(error) => (
                    "400 Bad Request",
                    "text/plain",
                    error.to_string().into_bytes(),
                ),
            },
            _ => ("404 Not Found", "text/plain", Vec::new()),
        }
    }
}

/// Reads the request line, the headers and a `Content-Length` body; `None` on a broken request.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    const LIMIT: usize = 1 << 20;
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > LIMIT {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if length > LIMIT {
        return None;
    }
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Request { method, path, body })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for the page's query.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
