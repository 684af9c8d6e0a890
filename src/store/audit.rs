//! The audit log: every change of an occupant's permissions, written off the decision path.
//!
//! The run loop hands each turn's records to an [`AuditWriter`] before it sends the turn's
//! decisions: they are appended to the local spool file ([`super::spool`], synced when one takes
//! something away), and a task reads them back and writes them in batches, one transaction each.
//! Enforcement never waits on the database (a pass that did held revokes back during an outage);
//! the database never loses a record either:
//!
//! - a failed write is retried without limit (capped back-off); meanwhile the records wait in the
//!   spool, on disk, and the memory held is one batch;
//! - a kill loses nothing: the next start writes what the spool holds past its checkpoint, in order;
//! - a row the database refuses for its values ([`is_row_error`]) does not hold back the others of
//!   its batch: they are written one by one and that row is set aside in `<spool>.rejected`, logged
//!   with its id (its offset in the spool).
//!
//! Live-view changes ([`ViewWrite`]) are state, not history: they go through memory, and the run
//! loop holds them back while the audit log is behind ([`AuditWriter::backlog`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::spool::{self, Reader, Spool, SpoolError};
use super::view::ViewWrite;
use super::{Store, StoreError};
#[cfg(test)]
use std::fs::OpenOptions;

/// A text stored once in `audit_texts` and referred to by decision rows (an explanation, the
/// reasons, the inputs). Its key is computed once, where the text is made, and every record that
/// refers to it shares it: a pass over 100,000 occupants makes one explanation per room, not one per
/// occupant, and neither copies nor hashes it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditText {
    /// The key in `audit_texts`: the first 64 bits of the SHA-256 of the body and of the key of
    /// `head` ([`super::text_id`]).
    pub id: i64,
    /// The text.
    pub body: Arc<str>,
    /// The text shown before this one (stored once too: the part of explanations every room
    /// shares).
    pub head: Option<Arc<AuditText>>,
}

impl AuditText {
    /// A text and its key.
    pub fn new(body: String, head: Option<Arc<AuditText>>) -> Arc<AuditText> {
        let id = match &head {
            None => super::text_id(&body),
            Some(head) => super::text_id(&format!("{}\0{body}", head.id)),
        };
        Arc::new(AuditText {
            id,
            body: body.into(),
            head,
        })
    }

    /// The whole text, as `decisions_full` shows it.
    pub fn full(&self) -> String {
        match &self.head {
            None => self.body.to_string(),
            Some(head) => format!("{}{}", head.full(), self.body),
        }
    }
}

/// One row of `decisions`. What many records share is shared, not copied (the time of a turn,
/// the room, the texts): a record waits in memory until the writer has it written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// UTC time, RFC 3339.
    pub at: Arc<str>,
    /// Room JID.
    pub room: Arc<str>,
    /// Occupant nick.
    pub nick: String,
    /// Real JID.
    pub real_jid: String,
    /// JWT user id.
    pub user_id: Option<String>,
    /// JWT user name.
    pub user_name: Option<String>,
    /// JWT user email.
    pub user_email: Option<String>,
    /// JWT group.
    pub user_group: Option<String>,
    /// Permissions before, e.g. `none` (`unknown`: podium did not know).
    pub previous: &'static str,
    /// Permissions after, e.g. `audio,video`.
    pub granted: &'static str,
    /// Deciding rule ids, comma-separated.
    pub rule_ids: Arc<str>,
    /// Per-kind reasons (the same for everyone decided the same way: stored once).
    pub reasons: Arc<AuditText>,
    /// What triggered the decision: joined, changed, left, rules, resync.
    pub cause: &'static str,
    /// A dry-run record: what podium *would* have changed (`previous` → `granted`), not enforced.
    pub dry_run: bool,
    /// The evaluator's inputs, JSON ([`crate::rules::Inputs::stored_json`]); `None` for a leave.
    pub inputs: Option<Arc<AuditText>>,
    /// The rules and grants of the room as they stood ([`crate::rules::rules_text`], then
    /// [`crate::rules::room_rules_text`]); `None` for a leave.
    pub explanation: Option<Arc<AuditText>>,
}

/// One write of the audit writer: a decision record, or a change to the live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A row of `decisions`.
    Decision(Box<AuditRecord>),
    /// A change to `occupants` or `queue`.
    View(ViewWrite),
}

/// The sending side of the audit log: records go to the spool ([`Spool`]) before their decision is
/// sent, live-view changes to a queue in memory (state, not history: the run loop holds them back
/// while the audit log is behind, see [`AuditWriter::backlog`]).
#[derive(Debug, Clone)]
pub struct AuditWriter {
    spool: Arc<Spool>,
    queue: mpsc::UnboundedSender<Vec<Write>>,
    /// Writes in the memory queue and not yet written.
    queued: Arc<AtomicUsize>,
    /// Records read back from the spool and written (or set aside).
    written: Arc<AtomicU64>,
    /// Set when podium stops: the live view is about to be cleared, so the view writes still
    /// queued before that need not be made (the decision records all are).
    closing: Arc<AtomicBool>,
}

impl AuditWriter {
    /// Starts the writing task on `spool`: first the records a previous run left in it, in order,
    /// then what is appended. The task ends once every writer is dropped and the spool is written
    /// (or, with the database still out, a little later: the rest waits in the spool for the next
    /// start).
    pub fn spawn(
        store: Store,
        spool: Arc<Spool>,
    ) -> Result<(AuditWriter, tokio::task::JoinHandle<()>), SpoolError> {
        let reader = Reader::open(Arc::clone(&spool))?;
        if reader.pending() {
            info!(spool = %spool.path().display(), "writing the audit records a previous run left in the spool");
        }
        let (queue, records) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let closing = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(
            Task {
                store,
                spool: Arc::clone(&spool),
                known: super::KnownTexts::default(),
                queued: Arc::clone(&queued),
                written: Arc::clone(&written),
                closing: Arc::clone(&closing),
                open: true,
            }
            .run(reader, records),
        );
        Ok((
            AuditWriter {
                spool,
                queue,
                queued,
                written,
                closing,
            },
            task,
        ))
    }

    /// How many writes wait: records in the spool and view changes in memory.
    pub fn backlog(&self) -> usize {
        let spooled = self
            .spool
            .appended()
            .saturating_sub(self.written.load(Ordering::Relaxed));
        usize::try_from(spooled)
            .unwrap_or(usize::MAX)
            .saturating_add(self.queued.load(Ordering::Relaxed))
    }

    /// Spools a record.
    pub fn record(&self, record: AuditRecord) {
        self.write(vec![Write::Decision(Box::new(record))]);
    }

    /// Queues a change to the live view.
    pub fn view(&self, view: ViewWrite) {
        self.write(vec![Write::View(view)]);
    }

    /// Spools the records (synced when one takes something away: call this before sending the
    /// decisions) and queues the view changes, in order.
    pub fn write(&self, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        let mut records = Vec::new();
        let mut rest = Vec::new();
        for write in writes {
            match write {
                Write::Decision(record) => records.push(*record),
                view => rest.push(view),
            }
        }
        if let Err(error) = self.spool.append(&records) {
            // Not lost: written from memory (a kill before that loses them; the log says so).
            error!(%error, count = records.len(), spool = %self.spool.path().display(),
                "cannot spool audit records; keeping them in memory until written");
            rest.extend(records.into_iter().map(|r| Write::Decision(Box::new(r))));
        }
        if rest.is_empty() {
            return;
        }
        let count = rest.len();
        self.queued.fetch_add(count, Ordering::Relaxed);
        if self.queue.send(rest).is_err() {
            error!(count, "audit writer stopped; writes were not made");
        }
    }

    /// podium stops: queues the clearing of this instance's live view, after which the view writes
    /// still queued are skipped (the decision records are all written), and syncs the spool.
    pub fn close_view(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.view(ViewWrite::Clear);
        if let Err(error) = self.spool.sync() {
            error!(%error, spool = %self.spool.path().display(), "cannot sync the audit spool");
        }
    }
}

/// Writes per transaction at most: large transactions write each touched page once for many rows
/// (a pass over every room touches every page of the indexes), so the writer keeps up with
/// 100,000 decisions in a second or two. Also the records held in memory at most.
const BATCH: usize = 4096;

/// The longest wait between two attempts while the database fails.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// How long podium, stopping, keeps trying a failing database before it leaves the records in the
/// spool for its next start.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Whether a failed write failed because of a row's values (retrying it cannot help, and the other
/// rows of its batch are written without it), not because of the database (locked, down,
/// unreachable: retried without limit).
pub fn is_row_error(backend: &super::Backend, error: &StoreError) -> bool {
    use sqlx::error::ErrorKind;
    let StoreError::Query(sqlx::Error::Database(db)) = error else {
        return false;
    };
    if matches!(
        db.kind(),
        ErrorKind::UniqueViolation
            | ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::CheckViolation
    ) {
        return true;
    }
    let Some(code) = db.code() else {
        return false;
    };
    match backend {
        // SQLSTATE classes 22 (data exception: a NUL in a text, a value out of range) and 23
        // (integrity constraint violation).
        super::Backend::Postgres { .. } => code.starts_with("22") || code.starts_with("23"),
        // Primary result codes (the low byte of the extended code): SQLITE_TOOBIG 18,
        // SQLITE_CONSTRAINT 19 (also a trigger's RAISE(ABORT)), SQLITE_MISMATCH 20, SQLITE_RANGE 25.
        super::Backend::Sqlite => code
            .parse::<i64>()
            .is_ok_and(|code| matches!(code & 0xff, 18 | 19 | 20 | 25)),
    }
}

/// The writing task.
struct Task {
    store: Store,
    spool: Arc<Spool>,
    known: super::KnownTexts,
    queued: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    /// False once every [`AuditWriter`] is dropped (podium stops).
    open: bool,
}

/// podium stopped while the database was out: what is left stays in the spool.
struct GaveUp;

impl Task {
    async fn run(mut self, mut reader: Reader, mut queue: mpsc::UnboundedReceiver<Vec<Write>>) {
        let mut memory: Vec<Write> = Vec::new();
        loop {
            while memory.len() < BATCH {
                match queue.try_recv() {
                    Ok(writes) => memory.extend(writes),
                    Err(_) => break,
                }
            }
            let spooled = match reader.next_batch(BATCH) {
                Ok(batch) => batch,
                Err(error) => {
                    error!(%error, spool = %self.spool.path().display(), "cannot read the audit spool; trying again");
                    tokio::time::sleep(MAX_DELAY).await;
                    continue;
                }
            };
            if spooled.is_empty() && memory.is_empty() {
                if !self.open {
                    return;
                }
                tokio::select! {
                    _ = self.spool.appended_notify() => {}
                    got = queue.recv() => match got {
                        Some(writes) => memory.extend(writes),
                        None => self.open = false,
                    },
                }
                continue;
            }
            if !spooled.is_empty() {
                // The records a previous run left are not among this run's appends.
                let count = spooled
                    .iter()
                    .filter(|(id, _)| !reader.is_replay(*id))
                    .count();
                let (ids, writes): (Vec<u64>, Vec<Write>) = spooled
                    .into_iter()
                    .map(|(id, r)| (id, Write::Decision(Box::new(r))))
                    .unzip();
                if self.write(writes, &ids).await.is_err() {
                    self.give_up();
                    return;
                }
                if let Err(error) = reader.commit() {
                    error!(%error, spool = %self.spool.path().display(), "cannot move the audit spool's checkpoint");
                }
                self.written.fetch_add(count as u64, Ordering::Relaxed);
            }
            if !memory.is_empty() {
                let count = memory.len();
                let mut writes = std::mem::take(&mut memory);
                if self.closing.load(Ordering::Relaxed) {
                    writes.retain(|w| {
                        matches!(w, Write::Decision(_) | Write::View(ViewWrite::Clear))
                    });
                }
                let gave_up = self.write(writes, &[]).await.is_err();
                self.queued.fetch_sub(count, Ordering::Relaxed);
                if gave_up {
                    self.give_up();
                    return;
                }
            }
        }
    }

    /// podium stops ([`AuditWriter::close_view`]).
    fn stopping(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    fn give_up(&self) {
        warn!(
            spool = %self.spool.path().display(),
            "podium stops with the database out: the audit records left are in the spool and are written at the next start"
        );
    }

    /// Writes in one transaction, retrying without limit while the database fails; when a row's
    /// values fail the transaction, writes the others row by row and sets that one aside.
    async fn write(&mut self, writes: Vec<Write>, ids: &[u64]) -> Result<(), GaveUp> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut failing = Failing::default();
        // A text taken to be stored may be what failed the write (gone since: a foreign key
        // fails): once, the batch is tried again with every text.
        let mut texts_again = true;
        loop {
            match self.store.write_knowing(&writes, &mut self.known).await {
                Ok(()) => {
                    debug!(writes = writes.len(), "audit records written");
                    failing.ended(writes.len());
                    return Ok(());
                }
                Err(err) if is_row_error(self.store.backend(), &err) && texts_again => {
                    self.known.forget();
                    texts_again = false;
                    debug!(error = %err, "audit write refused; trying again with every text");
                }
                Err(err) if is_row_error(self.store.backend(), &err) && writes.len() > 1 => {
                    self.known.forget();
                    warn!(error = %err, writes = writes.len(), "a row of the audit batch was refused; writing them one by one");
                    break;
                }
                Err(err) if is_row_error(self.store.backend(), &err) => {
                    self.known.forget();
                    self.set_aside(&writes[0], ids.first().copied().unwrap_or(0), &err);
                    return Ok(());
                }
                Err(err) => {
                    self.known.forget();
                    failing.wait(&err, writes.len(), self.stopping()).await?;
                }
            }
        }
        for (at, write) in writes.iter().enumerate() {
            let id = ids.get(at).copied().unwrap_or(0);
            let one = std::slice::from_ref(write);
            loop {
                match self.store.write_knowing(one, &mut self.known).await {
                    Ok(()) => {
                        failing.ended(1);
                        break;
                    }
                    Err(err) if is_row_error(self.store.backend(), &err) => {
                        self.known.forget();
                        self.set_aside(write, id, &err);
                        break;
                    }
                    Err(err) => {
                        self.known.forget();
                        failing.wait(&err, 1, self.stopping()).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A write the database refuses for good: a record goes to `<spool>.rejected` with its error
    /// (and is logged with its id, its offset in the spool); a view change is only logged (the view
    /// is state, rewritten at the next change or resync).
    fn set_aside(&self, write: &Write, id: u64, err: &StoreError) {
        match write {
            Write::Decision(record) => {
                let file = spool::rejected_path(self.spool.path());
                match spool::reject(self.spool.path(), id, record, &err.to_string()) {
                    Ok(()) => error!(
                        id, error = %err, room = %record.room, nick = %record.nick,
                        rejected = %file.display(),
                        "audit record refused by the database; kept in the rejected file"
                    ),
                    Err(io) => error!(
                        id, error = %err, room = %record.room, nick = %record.nick,
                        at = %record.at, previous = record.previous, granted = record.granted,
                        cause = record.cause, rejected = %file.display(), write_error = %io,
                        "audit record refused by the database and not kept: this log line is all that is left"
                    ),
                }
            }
            Write::View(view) => {
                warn!(error = %err, ?view, "live-view change refused by the database; skipped");
            }
        }
    }
}

/// The back-off while the database fails: doubling up to [`MAX_DELAY`], logging the first failure
/// and then every 30th, without limit (or, once podium stops, for [`STOP_GRACE`]).
#[derive(Default)]
struct Failing {
    attempts: u32,
    since: Option<std::time::Instant>,
}

impl Failing {
    async fn wait(
        &mut self,
        err: &StoreError,
        writes: usize,
        stopping: bool,
    ) -> Result<(), GaveUp> {
        self.attempts += 1;
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        if self.attempts == 1 || self.attempts.is_multiple_of(30) {
            warn!(error = %err, attempt = self.attempts, writes, failing_for = ?since.elapsed(),
                "audit write failed; retrying (the records are kept in the spool)");
        }
        if stopping && since.elapsed() > STOP_GRACE {
            return Err(GaveUp);
        }
        let delay = Duration::from_millis(100)
            .saturating_mul(1 << self.attempts.min(8))
            .min(MAX_DELAY);
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn ended(&mut self, writes: usize) {
        if let Some(since) = self.since.take() {
            info!(attempts = self.attempts, failed_for = ?since.elapsed(), writes, "audit write succeeded again");
        }
        self.attempts = 0;
    }
}

/// How often old audit records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes audit records older than `retention` at start and then every hour, until cancelled.
/// Several instances sharing a database may all prune; the deletes are idempotent.
pub async fn prune_old_records(
    store: Store,
    retention: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Ok(span) = jiff::SignedDuration::try_from(retention) else {
            return;
        };
        let cutoff = jiff::Timestamp::now() - span;
        match store.prune_decisions(&cutoff.to_string()).await {
            Ok(deleted) => tracing::info!(deleted, before = %cutoff, "audit records pruned"),
            Err(err) => warn!(error = %err, "cannot prune audit records; trying again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nick: &str, previous: &'static str, granted: &'static str) -> AuditRecord {
        AuditRecord {
            at: "2026-12-08T10:00:00Z".into(),
            room: "class@conference.localhost".into(),
            nick: nick.into(),
            real_jid: format!("{nick}@localhost/x"),
            user_id: None,
            user_name: Some(format!("{nick} \"quoted\"\n")),
            user_email: None,
            user_group: None,
            previous,
            granted,
            rule_ids: "1".into(),
            reasons: AuditText::new(format!("audio: {granted}"), None),
            cause: "rules",
            dry_run: false,
            inputs: Some(AuditText::new(format!("{{\"nick\":\"{nick}\"}}"), None)),
            explanation: Some(AuditText::new(
                "room class\n".into(),
                Some(AuditText::new("every room\n".into(), None)),
            )),
        }
    }

    async fn nicks(store: &Store) -> Vec<String> {
        sqlx::query_scalar("SELECT nick FROM decisions ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap()
    }

    /// Issue 14 point 2: one row the database refuses (here a trigger refuses mallory's) must not
    /// take the others of its batch with it: they are written, in order, and mallory's record is
    /// kept in `<spool>.rejected` with its id and the error, not dropped.
    #[tokio::test]
    async fn test_a_refused_row_is_set_aside_and_its_batch_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("a.db")).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_mallory BEFORE INSERT ON decisions WHEN NEW.nick = 'mallory' \
             BEGIN SELECT RAISE(ABORT, 'mallory refused'); END",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let path = dir.path().join("a.spool");
        let spool = Arc::new(Spool::open(&path).unwrap());
        let (writer, task) = AuditWriter::spawn(store.clone(), spool).unwrap();
        writer.write(
            ["ada", "mallory", "ben"]
                .into_iter()
                .map(|nick| Write::Decision(Box::new(record(nick, "none", "audio"))))
                .collect(),
        );
        writer.close_view();
        drop(writer);
        task.await.unwrap();
        assert_eq!(nicks(&store).await, ["ada", "ben"]);
        let rejected = std::fs::read_to_string(spool::rejected_path(&path)).unwrap();
        let lines: Vec<serde_json::Value> = rejected
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{rejected}");
        assert_eq!(lines[0]["record"]["nick"], "mallory");
        assert!(lines[0]["id"].as_u64().unwrap() > 0);
        assert!(
            lines[0]["error"]
                .as_str()
                .unwrap()
                .contains("mallory refused"),
            "{rejected}"
        );
        assert_eq!(lines[0]["explanation"], "every room\nroom class\n");
    }

    /// A podium killed before its records reached the database: the next start writes them from
    /// the spool, in order, with their texts, and the records the database already had (before the
    /// checkpoint) are not written again.
    #[tokio::test]
    async fn test_records_left_in_the_spool_are_written_on_start_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("a.db")).await.unwrap();
        let path = dir.path().join("a.spool");
        {
            let spool = Arc::new(Spool::open(&path).unwrap());
            let (writer, task) = AuditWriter::spawn(store.clone(), Arc::clone(&spool)).unwrap();
            writer.record(record("ada", "none", "audio"));
            while writer.backlog() > 0 {
                tokio::task::yield_now().await;
            }
            // "Killed": the task stops, the next records stay in the file only.
            task.abort();
            let _ = task.await;
            writer.record(record("ben", "audio", "none"));
            writer.record(record("cy", "none", "audio,video"));
            // A line a kill cut in the middle (its decision was never sent).
            drop(writer);
            drop(spool);
            let mut file = OpenOptions::new().append(true).open(&path).unwrap();
            std::io::Write::write_all(&mut file, b"{\"record\":{\"at\":").unwrap();
        }
        assert_eq!(nicks(&store).await, ["ada"]);
        let spool = Arc::new(Spool::open(&path).unwrap());
        let (writer, task) = AuditWriter::spawn(store.clone(), spool).unwrap();
        writer.record(record("di", "video", "none"));
        drop(writer);
        task.await.unwrap();
        assert_eq!(nicks(&store).await, ["ada", "ben", "cy", "di"]);
        let (user_name, explanation): (String, String) =
            sqlx::query_as("SELECT user_name, explanation FROM decisions_full WHERE nick = 'cy'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(user_name, "cy \"quoted\"\n");
        assert_eq!(explanation, "every room\nroom class\n");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "caught up: emptied"
        );
    }

    /// A full disk cuts an append short (part of its bytes reach the file): the records appended
    /// after it are read back whole, with their texts, and the file is emptied once they are read.
    /// Before the fix the next record was glued to the partial line (lost, its texts with it) and
    /// the spool's length no longer matched the file (the last record not read, never emptied).
    /// The full disk is a file size limit (RLIMIT_FSIZE), set in a child process of its own.
    #[test]
    #[allow(unsafe_code)]
    fn test_a_spool_append_cut_short_by_a_full_disk_loses_no_later_record() {
        const CHILD: &str = "PODIUM_TEST_SPOOL_FSIZE_CHILD";
        const NAME: &str = "store::audit::tests::test_a_spool_append_cut_short_by_a_full_disk_loses_no_later_record";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stdout}\n{stderr}");
            assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.spool");
        let spool = Arc::new(Spool::open(&path).unwrap());
        spool.append(&[record("ada", "none", "audio")]).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on this process (the child runs this test alone).
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
            let full = libc::rlimit {
                rlim_cur: before + 40,
                rlim_max: limit.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &full), 0);
        }
        let failed = spool.append(&[record("ben", "audio", "none")]);
        // SAFETY: as above; the soft limit goes back to what it was.
        unsafe {
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        }
        assert!(failed.is_err(), "the disk was full");
        spool.append(&[record("cy", "audio", "none")]).unwrap();
        let mut reader = Reader::open(Arc::clone(&spool)).unwrap();
        let read = reader.next_batch(16).unwrap();
        let nicks: Vec<&str> = read.iter().map(|(_, r)| r.nick.as_str()).collect();
        assert_eq!(nicks, ["ada", "cy"]);
        let cy = &read[1].1;
        assert_eq!(&*cy.reasons.body, "audio: none");
        assert_eq!(&*cy.inputs.as_ref().unwrap().body, "{\"nick\":\"cy\"}");
        reader.commit().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "caught up: emptied"
        );
    }

    /// A text line the spool lost (garbled on disk): the record referring to it is written with a
    /// placeholder under a key of its own, never an empty text under the lost text's key. Texts are
    /// keyed by their content and stored once (ON CONFLICT DO NOTHING), so the empty text took the
    /// key for good and every later record with the same reasons showed them empty.
    #[tokio::test]
    async fn test_a_text_lost_from_the_spool_does_not_empty_that_text_for_later_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("a.db")).await.unwrap();
        let path = dir.path().join("a.spool");
        {
            let spool = Spool::open(&path).unwrap();
            spool.append(&[record("ben", "audio", "none")]).unwrap();
        }
        // The reasons' line is garbled.
        let spooled = std::fs::read_to_string(&path).unwrap();
        let garbled: String = spooled
            .lines()
            .map(|l| {
                if l.contains("audio: none") {
                    "{\"text\":{\"id\":\n".replace('\n', "")
                } else {
                    l.to_owned()
                }
            })
            .map(|l| l + "\n")
            .collect();
        assert_ne!(garbled, spooled);
        std::fs::write(&path, garbled).unwrap();
        let spool = Arc::new(Spool::open(&path).unwrap());
        let (writer, task) = AuditWriter::spawn(store.clone(), spool).unwrap();
        while writer.backlog() > 0 {
            tokio::task::yield_now().await;
        }
        writer.record(record("cy", "audio", "none"));
        drop(writer);
        task.await.unwrap();
        let reasons: Vec<(String, String)> =
            sqlx::query_as("SELECT nick, reasons FROM decisions_full ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0].0, "ben");
        assert!(reasons[0].1.contains("missing"), "{reasons:?}");
        assert_eq!(reasons[1], ("cy".to_owned(), "audio: none".to_owned()));
    }

    /// The backlog counts this run's records not yet written: the records a previous run left in
    /// the spool, written on start, are not subtracted from it (before, 3 records replayed hid the
    /// next 3 appended, and the live view was written while the audit log was behind).
    #[tokio::test]
    async fn test_records_replayed_on_start_do_not_hide_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("a.db")).await.unwrap();
        let path = dir.path().join("a.spool");
        {
            let spool = Spool::open(&path).unwrap();
            for nick in ["ada", "ben", "cy"] {
                spool.append(&[record(nick, "audio", "none")]).unwrap();
            }
        }
        let spool = Arc::new(Spool::open(&path).unwrap());
        let (writer, task) = AuditWriter::spawn(store.clone(), spool).unwrap();
        while nicks(&store).await.len() < 3 {
            tokio::task::yield_now().await;
        }
        // The test runs on one thread: the writer cannot write this one before it is counted.
        writer.record(record("di", "audio", "none"));
        assert_eq!(writer.backlog(), 1);
        drop(writer);
        task.await.unwrap();
        assert_eq!(nicks(&store).await, ["ada", "ben", "cy", "di"]);
    }

    /// A second podium on the same spool is refused with the file named.
    #[test]
    fn test_invalid_spool_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.spool");
        let _first = Spool::open(&path).unwrap();
        let err = Spool::open(&path).unwrap_err().to_string();
        assert!(err.contains("in use by another podium"), "{err}");
        assert!(err.contains("a.spool"), "{err}");
    }

    #[test]
    fn test_takes_away() {
        assert!(spool::takes_away(&record("a", "audio,video", "audio")));
        assert!(spool::takes_away(&record("a", "unknown", "audio")));
        assert!(!spool::takes_away(&record("a", "audio", "audio,video")));
        assert!(!spool::takes_away(&record("a", "none", "audio")));
        let mut left = record("a", "audio", "none");
        left.cause = "left";
        assert!(!spool::takes_away(&left));
    }
}
