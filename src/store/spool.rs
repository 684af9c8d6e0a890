//! The audit spool: a local append-only file every decision record goes to before its decision is
//! handed to the link, and that the audit writer ([`super::audit`]) reads back into the database.
//!
//! Why a file and not memory: a decision is enforced at once, and its row may wait for the database
//! (an outage, a write lock held by another process). In memory the rows were lost on a crash or a
//! `kill -9`, dropped after a few failed attempts, and grew without bound during an outage (issue 14
//! point 2, issue 13 point 4). In the spool they survive a kill (the bytes are in the kernel once
//! [`Spool::append`] returns) and, for a record that takes something away (a revoke), a power loss
//! too: the file is flushed and `fdatasync`ed before the revoke is sent. A grant's record is synced
//! with the next revoke or when podium stops. The memory used is one batch being written.
//!
//! Layout: one JSON object per line (`docs`: [`Entry`]). A text (reasons, inputs, explanation) is
//! written once, before the first record that refers to it, and records refer to it by its key; a
//! `reset` line tells the reader that texts start again. Beside the file, `<spool>.pos` holds the
//! offset up to which records are in the database (replaced atomically after each committed batch);
//! on start the records after it are written first, in order. Once the writer has caught up the file
//! is emptied. A record the database refuses for good goes to `<spool>.rejected`, with its error.
//!
//! A kill between a commit and the update of `<spool>.pos` writes that batch again on start: a
//! record may be written twice, never lost.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::{AuditRecord, AuditText};

/// Why the spool cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool file (or its directory) cannot be created, read or written.
    #[error("audit spool {path}: {source} (set database.audit_spool to a writable file)")]
    Io {
        /// Which file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another podium uses the same spool file.
    #[error(
        "audit spool {path} is in use by another podium (give each instance its own database.audit_spool)"
    )]
    InUse {
        /// Which file.
        path: String,
    },
}

/// Texts remembered in the spool before starting again with a `reset` line (bounds the reader's
/// and the writer's memory).
const TEXTS_KEPT: usize = 65_536;

/// One line of the spool (one at a time is made or read: the size of the record variant costs
/// nothing, a box would cost an allocation per record).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry<'a> {
    /// A text records refer to by `id`.
    Text {
        id: i64,
        #[serde(borrow)]
        body: Cow<'a, str>,
        head: Option<i64>,
    },
    /// A decision record.
    Record(#[serde(borrow)] Spooled<'a>),
    /// Texts written before this line are not referred to after it.
    Reset,
}

/// A decision record as spooled: its texts by key.
#[derive(Debug, Serialize, Deserialize)]
struct Spooled<'a> {
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow)]
    room: Cow<'a, str>,
    #[serde(borrow)]
    nick: Cow<'a, str>,
    #[serde(borrow)]
    real_jid: Cow<'a, str>,
    user_id: Option<Cow<'a, str>>,
    user_name: Option<Cow<'a, str>>,
    user_email: Option<Cow<'a, str>>,
    user_group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    previous: Cow<'a, str>,
    #[serde(borrow)]
    granted: Cow<'a, str>,
    #[serde(borrow)]
    rule_ids: Cow<'a, str>,
    reasons: i64,
    #[serde(borrow)]
    cause: Cow<'a, str>,
    dry_run: bool,
    inputs: Option<i64>,
    explanation: Option<i64>,
}

/// Whether a record takes something away from what the module held (its row must be durable
/// before the decision is sent). A leave takes nothing the module enforces; a dry-run record is
/// not sent.
pub fn takes_away(record: &AuditRecord) -> bool {
    if record.dry_run || record.cause == "left" {
        return false;
    }
    if record.previous == "unknown" {
        return true;
    }
    record
        .previous
        .split(',')
        .filter(|kind| !kind.is_empty() && *kind != "none")
        .any(|kind| !record.granted.split(',').any(|g| g == kind))
}

/// The spool file, shared by the run loop (appending) and the audit writer (reading back).
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    append: Mutex<Appender>,
    /// Records appended since start.
    appended: AtomicU64,
    /// Woken on every append (the audit writer waits on it).
    notify: tokio::sync::Notify,
}

#[derive(Debug)]
struct Appender {
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Texts written since the last reset.
    texts: HashSet<i64>,
    /// Bytes written and not yet synced.
    unsynced: bool,
    /// The file ends with part of a failed append (it could not be cut off).
    torn: bool,
    buf: Vec<u8>,
}

impl Spool {
    /// Opens (creating if missing) the spool at `path`, locks it for this process and cuts a line a
    /// kill left half written (its decision was never sent).
    pub fn open(path: &Path) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::InUse {
                    path: path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let len = complete_length(&file).map_err(io)?;
        file.set_len(len).map_err(io)?;
        // The rejected file must be writable too: find out now, not when a row is refused.
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(rejected_path(path))
            .map_err(|source| SpoolError::Io {
                path: rejected_path(path).display().to_string(),
                source,
            })?;
        Ok(Spool {
            path: path.to_owned(),
            append: Mutex::new(Appender {
                file,
                len,
                // Texts are written again after a start: the reader may skip to the checkpoint.
                texts: HashSet::new(),
                unsynced: false,
                torn: false,
                buf: Vec::new(),
            }),
            appended: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
        })
    }

    /// Where the spool is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Completes after the next append (or at once if one came since the last wait).
    pub fn appended_notify(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Records appended since start.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }

    /// Appends records (with the texts they refer to that the spool does not hold yet); when one of
    /// them takes something away, flushes and syncs the file before returning. A kill after this
    /// returns loses none of them.
    pub fn append(&self, records: &[AuditRecord]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let sync = records.iter().any(takes_away);
        let mut a = self.append.lock().unwrap_or_else(|e| e.into_inner());
        let a = &mut *a;
        a.buf.clear();
        if a.torn {
            // A partial append could not be cut off: end it here, an unreadable line of its own.
            a.buf.push(b'\n');
        }
        for r in records {
            if a.texts.len() > TEXTS_KEPT {
                a.texts.clear();
                line(&mut a.buf, &Entry::Reset);
            }
            for text in [Some(&r.reasons), r.inputs.as_ref(), r.explanation.as_ref()]
                .into_iter()
                .flatten()
            {
                spool_text(&mut a.buf, &mut a.texts, text);
            }
            line(&mut a.buf, &Entry::Record(Spooled::of(r)));
        }
        if let Err(error) = a.file.write_all(&a.buf) {
            // Part of the buffer may be in the file (a full disk): cut it off, or the next line
            // would be glued to it and lost, and the texts it named be taken as written.
            a.texts.clear();
            if let Err(cut) = a.file.set_len(a.len) {
                tracing::error!(%cut, spool = %self.path.display(), "cannot cut a partial append off the audit spool");
                a.len = a.file.metadata().map_or(a.len, |m| m.len());
                a.torn = true;
            }
            return Err(error);
        }
        a.len += a.buf.len() as u64;
        a.torn = false;
        a.unsynced = true;
        if a.buf.capacity() > 1 << 20 {
            a.buf = Vec::new();
        }
        self.appended
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        if sync {
            a.file.sync_data()?;
            a.unsynced = false;
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Syncs what was appended (podium stops).
    pub fn sync(&self) -> std::io::Result<()> {
        let mut a = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if a.unsynced {
            a.file.sync_data()?;
            a.unsynced = false;
        }
        Ok(())
    }

    /// Bytes in the file.
    fn len(&self) -> u64 {
        self.append.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    /// Empties the file if nothing was appended past `upto`, and sets the checkpoint to 0 before
    /// anything can be appended again; true if it did. (A kill between the two leaves the
    /// checkpoint past the end, which [`Reader::open`] reads as 0.)
    fn truncate_if_at(&self, upto: u64) -> std::io::Result<bool> {
        let mut a = self.append.lock().unwrap_or_else(|e| e.into_inner());
        if a.len != upto || upto == 0 {
            return Ok(false);
        }
        // The checkpoint 0 is on disk before the file is emptied: an older checkpoint coming back
        // after a power loss would otherwise count the first bytes of the records appended next
        // as written (a crash between the two only writes the records left a second time).
        write_checkpoint_durably(&self.path, 0)?;
        a.file.set_len(0)?;
        a.len = 0;
        a.texts.clear();
        Ok(true)
    }
}

impl<'a> Spooled<'a> {
    fn of(r: &'a AuditRecord) -> Spooled<'a> {
        Spooled {
            at: Cow::Borrowed(&r.at),
            room: Cow::Borrowed(&r.room),
            nick: Cow::Borrowed(&r.nick),
            real_jid: Cow::Borrowed(&r.real_jid),
            user_id: r.user_id.as_deref().map(Cow::Borrowed),
            user_name: r.user_name.as_deref().map(Cow::Borrowed),
            user_email: r.user_email.as_deref().map(Cow::Borrowed),
            user_group: r.user_group.as_deref().map(Cow::Borrowed),
            previous: Cow::Borrowed(r.previous),
            granted: Cow::Borrowed(r.granted),
            rule_ids: Cow::Borrowed(&r.rule_ids),
            reasons: r.reasons.id,
            cause: Cow::Borrowed(r.cause),
            dry_run: r.dry_run,
            inputs: r.inputs.as_ref().map(|t| t.id),
            explanation: r.explanation.as_ref().map(|t| t.id),
        }
    }
}

fn line(buf: &mut Vec<u8>, entry: &Entry<'_>) {
    // Serialising our own types into a Vec cannot fail.
    serde_json::to_writer(&mut *buf, entry).expect("a spool entry serialises");
    buf.push(b'\n');
}

fn spool_text(buf: &mut Vec<u8>, texts: &mut HashSet<i64>, text: &AuditText) {
    if texts.contains(&text.id) {
        return;
    }
    if let Some(head) = &text.head {
        spool_text(buf, texts, head);
    }
    texts.insert(text.id);
    line(
        buf,
        &Entry::Text {
            id: text.id,
            body: Cow::Borrowed(&text.body),
            head: text.head.as_ref().map(|h| h.id),
        },
    );
}

/// The length of the file up to its last complete line.
fn complete_length(file: &File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut reader = file;
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        reader.seek(SeekFrom::Start(start))?;
        let part = &mut chunk[..(end - start) as usize];
        reader.read_exact(part)?;
        if let Some(at) = part.iter().rposition(|b| *b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// `<spool>.pos`.
fn checkpoint_path(spool: &Path) -> PathBuf {
    let mut name = spool.as_os_str().to_owned();
    name.push(".pos");
    PathBuf::from(name)
}

/// Replaces `<spool>.pos` atomically (a kill leaves the old value or the new one).
fn write_checkpoint(spool: &Path, done: u64) -> std::io::Result<()> {
    let path = checkpoint_path(spool);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, done.to_string())?;
    std::fs::rename(&tmp, &path)
}

/// [`write_checkpoint`], synced with the directory holding it (for the checkpoint 0 before the
/// spool is emptied; a later checkpoint lost to a power loss only writes records twice).
fn write_checkpoint_durably(spool: &Path, done: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = checkpoint_path(spool);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(done.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// `<spool>.rejected`: records the database refused for good, one JSON object a line.
pub fn rejected_path(spool: &Path) -> PathBuf {
    let mut name = spool.as_os_str().to_owned();
    name.push(".rejected");
    PathBuf::from(name)
}

/// A spooled record read back: where it ends in the file (its id in logs) and the record.
pub type ReadRecord = (u64, AuditRecord);

/// The audit writer's side: reads records back in order from the last checkpoint.
#[derive(Debug)]
pub struct Reader {
    spool: Arc<Spool>,
    file: BufReader<File>,
    /// Offset of the next line to read.
    pos: u64,
    /// Records before this offset are in the database (read on start for their texts only).
    done: u64,
    texts: HashMap<i64, Arc<AuditText>>,
    /// Records ending at or before this offset were left by a previous run (not counted among
    /// this run's appends); 0 once the file is emptied.
    replayed_until: u64,
}

impl Reader {
    /// Opens the reading side, at the start of the file (texts are needed from there) with the
    /// records up to the checkpoint skipped.
    pub fn open(spool: Arc<Spool>) -> Result<Reader, SpoolError> {
        let path = spool.path().to_owned();
        let io = |source| SpoolError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let len = spool.len();
        let done = std::fs::read_to_string(checkpoint_path(&path))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        // A kill between emptying the file and writing the checkpoint leaves it past the end.
        let done = if done > len { 0 } else { done };
        Ok(Reader {
            spool,
            file: BufReader::with_capacity(1 << 16, file),
            pos: 0,
            done,
            texts: HashMap::new(),
            replayed_until: len,
        })
    }

    /// Whether the record read back ending at `pos` was left by a previous run.
    pub fn is_replay(&self, pos: u64) -> bool {
        pos <= self.replayed_until
    }

    /// Whether records wait in the file.
    pub fn pending(&self) -> bool {
        self.spool.len() > self.pos
    }

    /// Up to `max` records, in order, from the complete lines appended so far.
    pub fn next_batch(&mut self, max: usize) -> std::io::Result<Vec<ReadRecord>> {
        let len = self.spool.len();
        let mut out = Vec::new();
        let mut line = Vec::new();
        self.file.seek(SeekFrom::Start(self.pos))?;
        while self.pos < len && out.len() < max {
            line.clear();
            let n = (&mut self.file)
                .take(len - self.pos)
                .read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            self.pos += n as u64;
            let entry: Entry<'_> = match serde_json::from_slice(&line) {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::error!(%error, offset = self.pos, spool = %self.spool.path.display(), "unreadable audit spool line skipped");
                    continue;
                }
            };
            match entry {
                Entry::Reset => self.texts.clear(),
                Entry::Text { id, body, head } => {
                    let text = match head {
                        None => Arc::new(AuditText {
                            id,
                            body: body.into(),
                            head: None,
                        }),
                        Some(h) => match self.texts.get(&h) {
                            Some(head) => Arc::new(AuditText {
                                id,
                                body: body.into(),
                                head: Some(Arc::clone(head)),
                            }),
                            // Its key names the head it lacks: keyed again, as for a lost text.
                            None => AuditText::new(body.into_owned(), Some(missing_text(h))),
                        },
                    };
                    self.texts.insert(id, text);
                }
                Entry::Record(r) if self.pos > self.done => {
                    out.push((self.pos, self.record(r)));
                }
                Entry::Record(_) => {}
            }
        }
        Ok(out)
    }

    fn text(&mut self, id: i64) -> Arc<AuditText> {
        // A lost text is logged once; its placeholder stands in for it from then on.
        Arc::clone(self.texts.entry(id).or_insert_with(|| missing_text(id)))
    }

    fn record(&mut self, r: Spooled<'_>) -> AuditRecord {
        AuditRecord {
            at: r.at.into(),
            room: r.room.into(),
            nick: r.nick.into_owned(),
            real_jid: r.real_jid.into_owned(),
            user_id: r.user_id.map(Cow::into_owned),
            user_name: r.user_name.map(Cow::into_owned),
            user_email: r.user_email.map(Cow::into_owned),
            user_group: r.user_group.map(Cow::into_owned),
            previous: intern(&r.previous),
            granted: intern(&r.granted),
            rule_ids: r.rule_ids.into(),
            reasons: self.text(r.reasons),
            cause: intern(&r.cause),
            dry_run: r.dry_run,
            inputs: r.inputs.map(|id| self.text(id)),
            explanation: r.explanation.map(|id| self.text(id)),
        }
    }

    /// Every record read so far is in the database: moves the checkpoint, and empties the file
    /// when nothing was appended since.
    pub fn commit(&mut self) -> std::io::Result<()> {
        if self.pos <= self.done {
            return Ok(());
        }
        self.done = self.pos;
        if self.spool.truncate_if_at(self.pos)? {
            self.replayed_until = 0;
            self.pos = 0;
            self.done = 0;
            self.texts.clear();
            return Ok(());
        }
        write_checkpoint(&self.spool.path, self.done)
    }
}

/// A placeholder for a text the spool lost (a garbled line; never expected, since a text is written
/// before the records referring to it): the record is kept. It gets a key of its own, never the lost
/// text's: texts are stored once per key, and an empty text under that key would stand for the real
/// one in every later record.
fn missing_text(id: i64) -> Arc<AuditText> {
    tracing::error!(
        text = id,
        "an audit text is missing from the spool; its records name it"
    );
    AuditText::new(format!("(text {id} missing from the audit spool)"), None)
}

/// Keeps a record it could not write: appends it with its error to `<spool>.rejected` (synced).
pub fn reject(spool: &Path, id: u64, record: &AuditRecord, error: &str) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Rejected<'a> {
        id: u64,
        error: &'a str,
        record: Spooled<'a>,
        reasons: String,
        inputs: Option<String>,
        explanation: Option<String>,
    }
    let mut buf = serde_json::to_vec(&Rejected {
        id,
        error,
        record: Spooled::of(record),
        reasons: record.reasons.full(),
        inputs: record.inputs.as_ref().map(|t| t.full()),
        explanation: record.explanation.as_ref().map(|t| t.full()),
    })
    .map_err(std::io::Error::other)?;
    buf.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(rejected_path(spool))?;
    file.write_all(&buf)?;
    file.sync_data()
}

/// The `&'static str` of a permission or cause spelling read back (a handful of values).
fn intern(s: &str) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(s) {
        return s;
    }
    let s: &'static str = Box::leak(s.to_owned().into_boxed_str());
    seen.insert(s);
    s
}
