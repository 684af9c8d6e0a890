//! Noticing rule edits made by other processes.
//!
//! The `rules_version` row is moved by triggers on every INSERT, UPDATE and DELETE of `rules`,
//! whoever makes them (the `sqlite3` CLI, an admin tool, a migration). Polling that one row is a
//! point read on a tiny table, cheap enough to do every [`poll_interval_ms`] (200 ms by default), which
//! keeps the edit-to-module latency well under a second without a restart.
//!
//! [`poll_interval_ms`]: crate::config::DatabaseConfig::poll_interval_ms

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Store, StoreError};
use crate::media::MediaSet;
use crate::rules::RuleSet;

/// Loads every rule row and builds the rule set, logging each skipped row with its id.
pub async fn load_rule_set(store: &Store, default: MediaSet) -> Result<RuleSet, StoreError> {
    let rows = store.load_rules().await?;
    let (set, problems) = RuleSet::from_rows(&rows, default);
    for problem in &problems {
        warn!(rule_id = problem.id, reason = %problem.reason, "rule skipped");
    }
    info!(
        rows = rows.len(),
        in_force = set.len(),
        skipped = problems.len(),
        "rules loaded"
    );
    Ok(set)
}

/// Polls `rules_version` until cancelled; publishes a new rule set whenever it moves.
pub async fn watch_rules(
    store: Store,
    default: MediaSet,
    interval: Duration,
    mut seen_version: i64,
    publish: watch::Sender<Arc<RuleSet>>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let version = match store.rules_version().await {
            Ok(version) => version,
            Err(error) => {
                warn!(%error, "cannot read rules_version; keeping the rules in force");
                continue;
            }
        };
        if version == seen_version {
            continue;
        }
        match load_rule_set(&store, default).await {
            Ok(set) => {
                info!(version, "rules changed");
                seen_version = version;
                if publish.send(Arc::new(set)).is_err() {
                    return;
                }
            }
            Err(error) => warn!(%error, "cannot reload rules; keeping the rules in force"),
        }
    }
}
