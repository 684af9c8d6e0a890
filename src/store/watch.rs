//! Noticing rule edits made by other processes.
//!
//! The `rules_version` row is moved by triggers on every INSERT, UPDATE and DELETE of `rules` and
//! `grants`, whoever makes them (the `sqlite3` or `psql` CLI, an admin tool, a migration). Polling
//! that one row is a point read on a tiny table, cheap enough to do every [`poll_interval_ms`] (200
//! ms by default), which keeps the edit-to-module latency well under a second without a restart.
//!
//! The same triggers log the ids of the rows each edit changed in `rule_changes`, under the version
//! they moved to (migration 20261209000010). When the version moved, podium reads the log entries
//! after the version it holds and then only those rows ([`RuleTables::refresh`]): a global edit
//! among 10,000 rules reads one row, not 10,000 (issue 13, point 4). Every row is read again, as at
//! start-up, whenever the log does not cover every version in between (pruned, TRUNCATE, or the
//! version moved by something that logs nothing), or when an edit changed many rows.
//!
//! On PostgreSQL the trigger also sends `NOTIFY podium_rules`, and podium LISTENs, so an edit reaches
//! every instance sharing the database at once. When the LISTEN connection is lost, podium connects
//! and LISTENs again *before* it reads the version, so an edit made while it was away is found by
//! that read and one made afterwards is heard: nothing is missed. The poll stays as a safety net.
//!
//! [`poll_interval_ms`]: crate::config::DatabaseConfig::poll_interval_ms

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Backend, Rows, Store, StoreError, rows};
use crate::media::MediaSet;
use crate::rules::{GrantRow, RuleProblem, RuleRow, RuleSet};

/// Rows an edit may change and still be read by id; more, and every row is read (a bulk edit).
const MAX_CHANGED_ROWS: usize = 2048;

/// Versions the triggers keep in `rule_changes` (the migration's 4,096); a podium further behind
/// reads every row.
const VERSIONS_LOGGED: i64 = 4096;

/// The tables admins write (`rules`, `grants`) as podium last read them, row by row (a row it
/// could not read is kept as its problem), with the version they were read at.
#[derive(Debug, Default)]
pub struct RuleTables {
    version: i64,
    rules: BTreeMap<i64, Result<RuleRow, RuleProblem>>,
    grants: BTreeMap<i64, Result<GrantRow, RuleProblem>>,
}

/// What [`RuleTables::refresh`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The version has not moved.
    Unchanged,
    /// Only the rows the log names: these rule and grant ids (each read again, or gone).
    Changed {
        /// Rule ids.
        rules: Vec<i64>,
        /// Grant ids.
        grants: Vec<i64>,
    },
    /// Every row.
    All,
}

impl RuleTables {
    /// Reads the version, then every row of `rules` and `grants` (an edit in between is read
    /// twice, never missed).
    pub async fn load(store: &Store) -> Result<RuleTables, StoreError> {
        let version = store.rules_version().await?;
        let rules = store.load_rules().await?;
        let grants = store.load_grants().await?;
        Ok(RuleTables {
            version,
            rules: by_id(rules),
            grants: by_id(grants),
        })
    }

    /// The version the rows were read at (at least).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Brings the rows up to date: nothing when the version has not moved, the rows the log names
    /// when it covers every version since, else every row. On an error nothing is changed.
    pub async fn refresh(&mut self, store: &Store) -> Result<Refresh, StoreError> {
        let version = store.rules_version().await?;
        if version == self.version {
            return Ok(Refresh::Unchanged);
        }
        if version < self.version || version - self.version > VERSIONS_LOGGED {
            debug!(
                from = self.version,
                to = version,
                "rule change log does not reach back; reading every row"
            );
            *self = RuleTables::load(store).await?;
            return Ok(Refresh::All);
        }
        let entries: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT version, tbl, row_id FROM rule_changes WHERE version > $1              ORDER BY version LIMIT $2",
        )
        .bind(self.version)
        .bind((MAX_CHANGED_ROWS + 1) as i64)
        .fetch_all(store.pool())
        .await?;
        let Some(changes) = Changes::from_log(self.version, version, &entries) else {
            debug!(
                from = self.version,
                to = version,
                entries = entries.len(),
                "rule change log does not cover the edit; reading every row"
            );
            *self = RuleTables::load(store).await?;
            return Ok(Refresh::All);
        };
        let rules = rows::load_rules_by_id(store.pool(), &changes.rules).await?;
        let grants = rows::load_grants_by_id(store.pool(), &changes.grants).await?;
        for id in &changes.rules {
            self.rules.remove(id);
        }
        for id in &changes.grants {
            self.grants.remove(id);
        }
        self.rules.extend(by_id(rules));
        self.grants.extend(by_id(grants));
        self.version = changes.version;
        Ok(Refresh::Changed {
            rules: changes.rules,
            grants: changes.grants,
        })
    }

    /// The rule set of these rows, and every row skipped (unreadable, or not understood).
    pub fn build(&self, default: MediaSet) -> (RuleSet, Vec<RuleProblem>) {
        let (set, mut problems) = RuleSet::from_tables(
            self.rules.values().filter_map(|row| row.as_ref().ok()),
            self.grants.values().filter_map(|row| row.as_ref().ok()),
            default,
        );
        problems.extend(
            self.rules
                .values()
                .filter_map(|row| row.as_ref().err())
                .cloned(),
        );
        problems.extend(
            self.grants
                .values()
                .filter_map(|row| row.as_ref().err())
                .cloned(),
        );
        (set, problems)
    }

    /// How many rows the tables hold (read or not).
    fn counts(&self) -> (usize, usize) {
        (self.rules.len(), self.grants.len())
    }
}

fn by_id<T: HasId>(rows: Rows<T>) -> BTreeMap<i64, Result<T, RuleProblem>> {
    let mut map = BTreeMap::new();
    for row in rows.rows {
        map.insert(row.id(), Ok(row));
    }
    for problem in rows.unreadable {
        map.insert(problem.id, Err(problem));
    }
    map
}

trait HasId {
    fn id(&self) -> i64;
}

impl HasId for RuleRow {
    fn id(&self) -> i64 {
        self.id
    }
}

impl HasId for GrantRow {
    fn id(&self) -> i64 {
        self.id
    }
}

/// The rows an edit changed, from the log.
#[derive(Debug, PartialEq, Eq)]
struct Changes {
    /// The last version the entries reach.
    version: i64,
    rules: Vec<i64>,
    grants: Vec<i64>,
}

impl Changes {
    /// The ids the log entries after `since` name, when they cover every version from `since` to at
    /// least `current` and name single rows of `rules` and `grants`, at most
    /// [`MAX_CHANGED_ROWS`] of them; `None` otherwise (then every row is read).
    fn from_log(
        since: i64,
        current: i64,
        entries: &[(i64, String, Option<i64>)],
    ) -> Option<Changes> {
        if entries.len() > MAX_CHANGED_ROWS {
            return None;
        }
        let (mut rules, mut grants) = (BTreeSet::new(), BTreeSet::new());
        let mut last = since;
        for (version, table, id) in entries {
            // Every version in turn: a version without an entry is an edit the log does not name.
            if *version != last && *version != last + 1 {
                return None;
            }
            last = *version;
            let id = (*id)?;
            match table.as_str() {
                "rules" => rules.insert(id),
                "grants" => grants.insert(id),
                _ => return None,
            };
        }
        (last >= current).then(|| Changes {
            version: last,
            rules: rules.into_iter().collect(),
            grants: grants.into_iter().collect(),
        })
    }
}

/// Builds the rule set of `tables` and logs it: every skipped row (or, after an edit read from the
/// log, those among the rows it changed), and one summary line.
pub fn build_logged(tables: &RuleTables, default: MediaSet, changed: Option<&Refresh>) -> RuleSet {
    let (set, problems) = tables.build(default);
    let shown = |problem: &&RuleProblem| match changed {
        Some(Refresh::Changed { rules, grants }) => match problem.table {
            "grant" => grants.binary_search(&problem.id).is_ok(),
            _ => rules.binary_search(&problem.id).is_ok(),
        },
        _ => true,
    };
    for problem in problems.iter().filter(shown) {
        warn!(
            table = problem.table,
            rule_id = problem.id,
            reason = %problem.reason,
            "rule skipped"
        );
    }
    let (rows, grants) = tables.counts();
    let read = match changed {
        Some(Refresh::Changed { rules, grants }) => rules.len() + grants.len(),
        _ => rows + grants,
    };
    info!(
        rows,
        in_force = set.len(),
        grants,
        skipped = problems.len(),
        read,
        "rules loaded"
    );
    set
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
    tables: RuleTables,
    publish: watch::Sender<Arc<RuleSet>>,
    poke: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let mut watcher = Watcher {
        store,
        default,
        tables,
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
    tables: RuleTables,
    publish: watch::Sender<Arc<RuleSet>>,
}

impl Watcher {
    /// Reads what changed and publishes the new rules when the version moved. False once nobody
    /// listens any more.
    async fn check(&mut self) -> bool {
        match self.tables.refresh(&self.store).await {
            Ok(Refresh::Unchanged) => true,
            Ok(refresh) => {
                let set = build_logged(&self.tables, self.default, Some(&refresh));
                info!(version = self.tables.version(), "rules changed");
                self.publish.send(Arc::new(set)).is_ok()
            }
            Err(error) => {
                warn!(%error, "cannot reload rules; keeping the rules in force");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule ids in force and the problems of a rule set built from `tables`, and the same from
    /// every row read afresh: an edit read from the log must leave podium where a restart would.
    async fn same_as_a_full_read(store: &Store, tables: &RuleTables) -> (Vec<i64>, Vec<String>) {
        let summary = |tables: &RuleTables| {
            let (set, problems) = tables.build(MediaSet::NONE);
            let mut ids: Vec<i64> = set.rules().iter().map(|r| r.id).collect();
            ids.sort_unstable();
            let mut grants: Vec<i64> = set.grants().iter().map(|g| g.id).collect();
            grants.sort_unstable();
            ids.extend(grants.iter().map(|g| -g));
            let mut problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            problems.sort();
            (ids, problems)
        };
        let fresh = RuleTables::load(store).await.unwrap();
        assert_eq!(fresh.version(), tables.version());
        let (mine, full) = (summary(tables), summary(&fresh));
        assert_eq!(mine, full, "read from the log vs every row");
        mine
    }

    async fn exec(store: &Store, sql: &str) {
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *conn)
            .await
            .unwrap();
    }

    /// Issue 13, point 4: after an edit, only the rows it changed are read (from the log the
    /// triggers keep), and the rules are then exactly those of a full read: an edit, a delete, a
    /// rule switched off, a row changing its id, a row with a bad value, a grant, a row the CHECK
    /// constraints refuse (nothing changes).
    #[tokio::test]
    async fn test_an_edit_reads_only_the_rows_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("w.db")).await.unwrap();
        for i in 1..=20 {
            exec(
                &store,
                &format!(
                    "INSERT INTO rules (id, room, media, effect, priority) \
                     VALUES ({i}, 'room-{i}', 'video', 'allow', {i})"
                ),
            )
            .await;
        }
        let mut tables = RuleTables::load(&store).await.unwrap();
        assert_eq!(tables.refresh(&store).await.unwrap(), Refresh::Unchanged);
        let changed = |rules: &[i64], grants: &[i64]| Refresh::Changed {
            rules: rules.to_vec(),
            grants: grants.to_vec(),
        };

        exec(&store, "UPDATE rules SET effect = 'deny' WHERE id = 3").await;
        exec(&store, "DELETE FROM rules WHERE id = 4").await;
        exec(&store, "UPDATE rules SET enabled = 0 WHERE id = 5").await;
        exec(&store, "UPDATE rules SET id = 40 WHERE id = 6").await;
        assert_eq!(
            tables.refresh(&store).await.unwrap(),
            changed(&[3, 4, 5, 6, 40], &[])
        );
        let (ids, problems) = same_as_a_full_read(&store, &tables).await;
        assert!(!ids.contains(&4) && !ids.contains(&5) && !ids.contains(&6));
        assert!(ids.contains(&40) && ids.contains(&3));
        assert!(problems.is_empty(), "{problems:?}");
        let three = tables.rules[&3].as_ref().unwrap();
        assert_eq!(three.effect, "deny");

        // A value of the wrong type, written past the constraints; then put right.
        exec(
            &store,
            "PRAGMA ignore_check_constraints = ON; UPDATE rules SET priority = 'high' WHERE id = 7; \
             PRAGMA ignore_check_constraints = OFF",
        )
        .await;
        assert_eq!(tables.refresh(&store).await.unwrap(), changed(&[7], &[]));
        let (ids, problems) = same_as_a_full_read(&store, &tables).await;
        assert!(!ids.contains(&7));
        assert_eq!(
            problems,
            vec!["rule 7 skipped: priority \"high\" is not a whole number"]
        );
        exec(&store, "UPDATE rules SET priority = 7 WHERE id = 7").await;
        // A row the constraints refuse changes nothing (the statement fails, the log with it).
        let refused = sqlx::query("INSERT INTO rules (who, effect) VALUES ('wizard', 'allow')")
            .execute(store.pool())
            .await;
        assert!(refused.is_err());
        exec(
            &store,
            "INSERT INTO grants (id, room, who, who_value, media, expires_at, granted_by) \
             VALUES (1, 'room-1', 'user', 'u-1', 'audio', '2999-01-01T00:00:00Z', 'admin')",
        )
        .await;
        assert_eq!(tables.refresh(&store).await.unwrap(), changed(&[7], &[1]));
        let (ids, problems) = same_as_a_full_read(&store, &tables).await;
        assert!(ids.contains(&7) && ids.contains(&-1), "{ids:?}");
        assert!(problems.is_empty(), "{problems:?}");

        // Text that is not UTF-8: the row cannot be converted, and is skipped alone.
        exec(
            &store,
            "UPDATE rules SET schedule = CAST(x'ff' AS TEXT) WHERE id = 8",
        )
        .await;
        assert_eq!(tables.refresh(&store).await.unwrap(), changed(&[8], &[]));
        let (ids, problems) = same_as_a_full_read(&store, &tables).await;
        assert!(!ids.contains(&8));
        assert_eq!(problems.len(), 1, "{problems:?}");
        exec(&store, "DELETE FROM rules WHERE id = 8").await;
        exec(&store, "DELETE FROM grants").await;
        assert_eq!(tables.refresh(&store).await.unwrap(), changed(&[8], &[1]));
        same_as_a_full_read(&store, &tables).await;
    }

    /// Whenever the log does not name every edit since the version podium holds, every row is
    /// read: entries pruned, the version moved by something that logs nothing, a bulk edit.
    #[tokio::test]
    async fn test_every_row_is_read_when_the_log_does_not_cover_the_edit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("g.db")).await.unwrap();
        exec(&store, "INSERT INTO rules (id, effect) VALUES (1, 'allow')").await;
        let mut tables = RuleTables::load(&store).await.unwrap();

        exec(&store, "UPDATE rules SET media = 'audio' WHERE id = 1").await;
        exec(&store, "DELETE FROM rule_changes").await;
        assert_eq!(tables.refresh(&store).await.unwrap(), Refresh::All);
        same_as_a_full_read(&store, &tables).await;

        exec(&store, "UPDATE rules SET media = 'video' WHERE id = 1").await;
        exec(&store, "UPDATE rules_version SET version = version + 1").await;
        assert_eq!(tables.refresh(&store).await.unwrap(), Refresh::All);
        let video = tables.rules[&1].as_ref().unwrap();
        assert_eq!(video.media, "video");

        exec(
            &store,
            "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 2200) \
             INSERT INTO rules (id, room, effect) SELECT i, 'r' || i, 'deny' FROM n",
        )
        .await;
        assert_eq!(tables.refresh(&store).await.unwrap(), Refresh::All);
        assert_eq!(same_as_a_full_read(&store, &tables).await.0.len(), 2200);
        // The log keeps the last 4,096 versions.
        let logged: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT version) FROM rule_changes")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(logged, 2200, "the edit before and each row");
        exec(&store, "UPDATE rules SET priority = priority + 1").await;
        let logged: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT version) FROM rule_changes")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(logged, VERSIONS_LOGGED);
    }

    #[test]
    fn test_changes_from_log() {
        let entry = |v: i64, t: &str, id: Option<i64>| (v, t.to_owned(), id);
        let log = [
            entry(5, "rules", Some(3)),
            entry(6, "rules", Some(9)),
            entry(6, "rules", Some(2)),
            entry(7, "grants", Some(1)),
        ];
        assert_eq!(
            Changes::from_log(4, 7, &log),
            Some(Changes {
                version: 7,
                rules: vec![2, 3, 9],
                grants: vec![1],
            })
        );
        // An edit committed after the version was read is read too.
        assert_eq!(Changes::from_log(4, 6, &log).map(|c| c.version), Some(7));
        // A version missing at the start, in the middle, or at the end.
        assert_eq!(Changes::from_log(3, 7, &log), None);
        assert_eq!(
            Changes::from_log(4, 7, &[log[0].clone(), log[3].clone()]),
            None
        );
        assert_eq!(Changes::from_log(4, 8, &log), None);
        // The whole table, or a table podium does not know.
        assert_eq!(Changes::from_log(4, 5, &[entry(5, "rules", None)]), None);
        assert_eq!(Changes::from_log(4, 5, &[entry(5, "other", Some(1))]), None);
    }
}
