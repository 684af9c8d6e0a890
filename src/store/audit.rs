//! The audit log: every change of an occupant's permissions, written off the decision path.
//!
//! The engine hands records to an [`AuditWriter`] and moves on; a task writes them in batches, one
//! transaction each. A failed write is retried with backoff, and on shutdown the queue is drained
//! before the task ends, so a decision is never sent without its record being attempted. The writer
//! counts what is queued ([`AuditWriter::backlog`]). A pass over every room does not wait for it:
//! enforcement never waits on the database (a pass that did held revokes back during an outage), so
//! during a long outage the queue grows with the changes made (issue 14 makes the audit durable).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::Store;
use super::view::ViewWrite;

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

/// The sending side of the audit queue.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    queue: mpsc::UnboundedSender<Vec<Write>>,
    /// Writes queued and not yet written.
    backlog: Arc<AtomicUsize>,
    /// Set when podium stops: the live view is about to be cleared, so the view writes still
    /// queued before that need not be made (the decision records all are).
    closing: Arc<AtomicBool>,
}

impl AuditWriter {
    /// Starts the writing task; it ends once every writer is dropped and the queue is drained.
    pub fn spawn(store: Store) -> (AuditWriter, tokio::task::JoinHandle<()>) {
        let (queue, records) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let closing = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(write_batches(
            store,
            records,
            Arc::clone(&backlog),
            Arc::clone(&closing),
        ));
        (
            AuditWriter {
                queue,
                backlog,
                closing,
            },
            task,
        )
    }

    /// How many writes are queued and not yet written.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Queues a record.
    pub fn record(&self, record: AuditRecord) {
        self.write(vec![Write::Decision(Box::new(record))]);
    }

    /// Queues a change to the live view.
    pub fn view(&self, view: ViewWrite) {
        self.write(vec![Write::View(view)]);
    }

    /// Queues writes, in order (one message for a whole turn of the run loop).
    pub fn write(&self, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        let count = writes.len();
        self.backlog.fetch_add(count, Ordering::Relaxed);
        if self.queue.send(writes).is_err() {
            error!(count, "audit writer stopped; writes were not made");
        }
    }

    /// podium stops: queues the clearing of this instance's live view, after which the view writes
    /// still queued are skipped (the decision records are all written).
    pub fn close_view(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.view(ViewWrite::Clear);
    }
}

/// Writes per transaction at most: large transactions write each touched page once for many rows
/// (a pass over every room touches every page of the indexes), so the writer keeps up with
/// 100,000 decisions in a second or two.
const BATCH: usize = 4096;

const ATTEMPTS: u32 = 5;

async fn write_batches(
    store: Store,
    mut queue: mpsc::UnboundedReceiver<Vec<Write>>,
    backlog: Arc<AtomicUsize>,
    closing: Arc<AtomicBool>,
) {
    let mut messages = Vec::new();
    let mut batch: Vec<Write> = Vec::with_capacity(BATCH);
    let mut known = super::KnownTexts::default();
    loop {
        // What is queued, up to about BATCH writes (whole messages).
        if messages.is_empty() && queue.recv_many(&mut messages, 64).await == 0 {
            return;
        }
        let mut taken = 0;
        for writes in messages.drain(..) {
            taken += writes.len();
            batch.extend(writes);
        }
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(writes) => {
                    taken += writes.len();
                    batch.extend(writes);
                }
                Err(_) => break,
            }
        }
        if closing.load(Ordering::Relaxed) {
            batch.retain(|w| matches!(w, Write::Decision(_) | Write::View(ViewWrite::Clear)));
        }
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            match store.write_knowing(&batch, &mut known).await {
                Ok(()) => {
                    debug!(records = batch.len(), "audit records written");
                    break;
                }
                Err(err) if attempt < ATTEMPTS => {
                    // A text taken to be stored may be what failed the write.
                    known.forget();
                    warn!(error = %err, attempt, records = batch.len(), "audit write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => {
                    error!(error = %err, records = batch.len(), "audit write failed; records lost");
                }
            }
        }
        backlog.fetch_sub(taken, Ordering::Relaxed);
        batch.clear();
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
