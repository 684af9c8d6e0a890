//! Noticing rule edits made by other processes.
//!
//! The `rules_version` row is moved by triggers on every INSERT, UPDATE and DELETE of `rules`,
//! whoever makes them (the `sqlite3` or `psql` CLI, an admin tool, a migration). Polling that one row
//! is a point read on a tiny table, cheap enough to do every [`poll_interval_ms`] (200 ms by default),
//! which keeps the edit-to-module latency well under a second without a restart.
//!
//! On PostgreSQL the trigger also sends `NOTIFY podium_rules`, and podium LISTENs, so an edit reaches
//! every instance sharing the database at once. When the LISTEN connection is lost, podium connects
//! and LISTENs again *before* it reads the version, so an edit made while it was away is found by
//! that read and one made afterwards is heard: nothing is missed. The poll stays as a safety net.
//!
//! [`poll_interval_ms`]: crate::config::DatabaseConfig::poll_interval_ms

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Backend, Store, StoreError};
use crate::media::MediaSet;
use crate::rules::RuleSet;

/// Loads every rule row and builds the rule set, logging each skipped row with its id: a row with a
/// value of the wrong type or one the rule model does not understand is skipped alone, and every
/// other row applies. Fails only when the database cannot be read (the caller keeps the rules in
/// force).
pub async fn load_rule_set(store: &Store, default: MediaSet) -> Result<RuleSet, StoreError> {
    let rows = store.load_rules().await?;
    let grants = store.load_grants().await?;
    let (set, mut problems) = RuleSet::from_tables(&rows.rows, &grants.rows, default);
    problems.extend(rows.unreadable.iter().chain(&grants.unreadable).cloned());
    for problem in &problems {
        warn!(
            table = problem.table,
            rule_id = problem.id,
            reason = %problem.reason,
            "rule skipped"
        );
    }
    info!(
        rows = rows.count(),
        in_force = set.len(),
        grants = grants.count(),
        skipped = problems.len(),
        "rules loaded"
    );
    Ok(set)
}

/// Logs the rule rows the schema upgrade set aside in `rules_rejected` (once, at start-up): they
/// are not in force until the admin puts them back.
pub async fn warn_rejected_rules(store: &Store) {
    match store.load_rejected_rules().await {
        Ok(rejected) => {
            for problem in rejected {
                warn!(rule_id = problem.id, reason = %problem.reason, "rule set aside");
            }
        }
        Err(error) => warn!(%error, "cannot read rules_rejected"),
    }
}

/// The NOTIFY channel the PostgreSQL trigger sends on (migrations/postgres/).
pub const CHANNEL: &str = "podium_rules";

/// How long to wait before connecting the LISTEN connection again after a failure (a refused
/// connection costs little; the rules are polled meanwhile).
const LISTEN_RETRY: Duration = Duration::from_millis(250);

/// Watches `rules_version` until cancelled (polling, and on PostgreSQL listening too); publishes a
/// new rule set whenever it moves.
pub async fn watch_rules(
    store: Store,
    default: MediaSet,
    interval: Duration,
    seen_version: i64,
    publish: watch::Sender<Arc<RuleSet>>,
    poke: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let mut watcher = Watcher {
        store,
        default,
        seen_version,
        publish,
    };
    let url = match watcher.store.backend() {
        Backend::Postgres { url } => Some(url.clone()),
        Backend::Sqlite => None,
    };
    let mut listener: Option<PgListener> = None;
    // When to try LISTEN again after a failure (the server is down or restarting).
    let mut listen_at = tokio::time::Instant::now();
    let mut listen_failures = 0u64;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(url) = &url
            && listener.is_none()
            && tokio::time::Instant::now() >= listen_at
        {
            // LISTEN first, then read the version: an edit in between is both read and heard.
            listener = tokio::select! {
                _ = cancel.cancelled() => return,
                connected = listen(url, listen_failures) => connected,
            };
            listen_failures = if listener.is_some() {
                0
            } else {
                listen_failures + 1
            };
            if listener.is_some() && !watcher.check().await {
                return;
            }
            // Polling goes on meanwhile (the ticker below); LISTEN is tried again shortly, so an
            // edit made as the server comes back applies well within a second (issue 14 point 2).
            listen_at = tokio::time::Instant::now() + LISTEN_RETRY;
        }
        let relisten = url.is_some() && listener.is_none();
        let heard = async {
            match listener.as_mut() {
                Some(listener) => listener.try_recv().await,
                None => std::future::pending().await,
            }
        };
        let relisten = async move {
            if relisten {
                tokio::time::sleep_until(listen_at).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = relisten => continue,
            _ = ticker.tick() => {}
            // This instance wrote a grant itself: read it now, not at the next poll.
            _ = poke.notified() => {}
            heard = heard => match heard {
                Ok(Some(notification)) => {
                    debug!(payload = notification.payload(), "rules notification");
                }
                Ok(None) | Err(_) => {
                    warn!("lost the LISTEN connection to PostgreSQL; listening again");
                    listener = None;
                    continue;
                }
            },
        }
        if !watcher.check().await {
            return;
        }
    }
}

/// Connects a LISTEN connection; logs a failure (the first of a run at WARN) and returns None (the
/// caller tries again).
async fn listen(url: &str, failed_before: u64) -> Option<PgListener> {
    let connected = async {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match connected.await {
        Ok(listener) => {
            info!(channel = CHANNEL, "listening for rule edits");
            Some(listener)
        }
        Err(error) if failed_before == 0 => {
            warn!(%error, "cannot LISTEN for rule edits; polling meanwhile");
            None
        }
        Err(error) => {
            debug!(%error, attempts = failed_before + 1, "cannot LISTEN for rule edits yet");
            None
        }
    }
}

struct Watcher {
    store: Store,
    default: MediaSet,
    seen_version: i64,
    publish: watch::Sender<Arc<RuleSet>>,
}

impl Watcher {
    /// Reads the version and reloads the rules when it moved. False once nobody listens any more.
    async fn check(&mut self) -> bool {
        let version = match self.store.rules_version().await {
            Ok(version) => version,
            Err(error) => {
                warn!(%error, "cannot read rules_version; keeping the rules in force");
                return true;
            }
        };
        if version == self.seen_version {
            return true;
        }
        match load_rule_set(&self.store, self.default).await {
            Ok(set) => {
                info!(version, "rules changed");
                self.seen_version = version;
                self.publish.send(Arc::new(set)).is_ok()
            }
            Err(error) => {
                warn!(%error, "cannot reload rules; keeping the rules in force");
                true
            }
        }
    }
}
