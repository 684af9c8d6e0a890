//! SQL storage: the rules admins write, the audit log podium writes.
//!
//! SQLite by default; PostgreSQL when several podium instances (one per Prosody shard) share one rule
//! store. Queries are checked at run time over sqlx's `Any` driver (no `DATABASE_URL` at build time)
//! and use only types both backends share (64-bit integers, `TEXT`). Migrations are embedded per
//! backend (`migrations/sqlite/`, `migrations/postgres/`, versions kept in step) with
//! `sqlx::migrate!` and run at start-up; on PostgreSQL sqlx holds an advisory lock while migrating, so
//! instances starting together do not race. [`watch`] notices rule edits made by other processes
//! (and, on PostgreSQL, hears them by LISTEN/NOTIFY); [`audit`] writes decisions in batches off the
//! decision path, each with the name of the instance that decided, from the local [`spool`] every
//! record reaches before its decision is sent.
//!
//! [`rows`] reads the tables admins write (`rules`, `grants`) a value at a time, so that one bad value
//! skips its own row, never the reload.

pub mod audit;
pub mod grants;
pub mod rows;
pub mod spool;
pub mod view;
pub mod watch;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, AssertSqlSafe, Executor};
use tracing::instrument;

use crate::config::DatabaseConfig;
use crate::rules::{GrantRow, RuleProblem, RuleRow};

/// `postgres://user:password@host:5432/db` → `postgres://host:5432/db`: what a log may show.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => "(unparsable database URL)".to_owned(),
    }
}

pub use audit::{AuditRecord, AuditText, AuditWriter, Write};
pub use grants::{AV_MODERATION, ApprovalKey, GrantChange};
pub use rows::Rows;
pub use spool::{Spool, SpoolError};
pub use view::{OccupantRow, QueueRow, ViewWrite};

static MIGRATOR_SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATOR_POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database podium talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A local SQLite file.
    Sqlite,
    /// A PostgreSQL server; the URL is kept for the LISTEN connection.
    Postgres {
        /// The connection URL (may carry a password: never logged).
        url: String,
    },
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("cannot migrate database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// The key a text is stored under in `audit_texts`: the first 64 bits of its SHA-256.
pub fn text_id(body: &str) -> i64 {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(body.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(first)
}

/// Texts the audit writer has stored recently, so it does not send them again with every
/// transaction (a rule edit re-decides every occupant with the same inputs as before).
///
/// A text is pruned only once no record refers to it, and records are pruned only when older than
/// the retention (at least a day): a text a record written in the last minutes refers to is still
/// there, whichever podium instance prunes. So what is known is forgotten after a few minutes.
#[derive(Debug, Default)]
pub struct KnownTexts {
    ids: HashSet<i64>,
    since: Option<std::time::Instant>,
}

impl KnownTexts {
    /// How long a stored text is taken to be there (far below the shortest retention, a day).
    const FOR: Duration = Duration::from_secs(600);
    /// Texts remembered at most.
    const MAX: usize = 1 << 20;

    /// Forgets every text: after a failed write one of them may be gone (its records deleted by
    /// hand or by a pruner whose clock runs ahead, then the text pruned), and the next attempt
    /// stores every text again (review 14b).
    pub(crate) fn forget(&mut self) {
        self.ids.clear();
    }

    fn expire(&mut self) {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() > Self::FOR || self.ids.len() > Self::MAX {
            self.ids.clear();
            self.since = Some(std::time::Instant::now());
        }
    }
}

/// Rows per multi-row INSERT (at most 18 values each: 4,608 per statement, well under SQLite's
/// 32,766 and PostgreSQL's 65,535).
const ROWS_PER_STATEMENT: usize = 256;

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values on PostgreSQL, `(?, ?), (?, ?)` on
/// SQLite (sqlx's `Any` passes the SQL through; SQLite looks a `$N` up by name, a scan per value,
/// which made a 64-row insert spend most of its time naming its parameters). Only placeholders:
/// the SQL built with them holds no value, so it is safe to assert so.
fn placeholders(backend: &Backend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres { .. } => {
                    let _ = write!(sql, "${}", row * columns + column + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    instance: String,
}

impl Store {
    /// Opens the configured database (PostgreSQL when `database.url` is set, else SQLite at
    /// `database.path`) and runs its migrations. `instance` names this podium in the audit log.
    pub async fn open(config: &DatabaseConfig, instance: String) -> Result<Store, StoreError> {
        let store = match config.postgres_url() {
            Some(url) => Store::open_postgres(url).await?,
            None => Store::open_sqlite(&config.path).await?,
        };
        Ok(store.named(instance))
    }

    /// Names this instance in the audit log.
    pub fn named(mut self, instance: String) -> Store {
        self.instance = instance;
        self
    }

    /// Which database this is.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Connects to PostgreSQL and runs the migrations. The URL never reaches a log or an error message
    /// (only the host does).
    #[instrument(skip_all)]
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                path: redact_url(url),
                source,
            })?;
        MIGRATOR_POSTGRES.run(&pool).await?;
        Ok(Store {
            pool,
            backend: Backend::Postgres {
                url: url.to_owned(),
            },
            instance: String::new(),
        })
    }

    /// Opens (creating if missing) the SQLite file and runs the migrations.
    #[instrument(skip_all, fields(path = %path.display()))]
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        install_default_drivers();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                source: sqlx::Error::Io(e),
            })?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets the sqlite3 CLI write while podium reads; busy_timeout waits out a
                    // writer instead of failing with SQLITE_BUSY. synchronous = FULL syncs the WAL
                    // at every commit: the audit writer empties its spool once a batch is committed,
                    // so a commit must outlive a power loss (NORMAL could lose the last ones).
                    // One sync per audit batch of up to 4,096 rows.
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL; PRAGMA cache_size = -8192; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8192;")
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        MIGRATOR_SQLITE.run(&pool).await?;
        Ok(Store {
            pool,
            backend: Backend::Sqlite,
            instance: String::new(),
        })
    }

    /// Creates or migrates the database at `url` (`sqlite://…` or `postgres://…`) only up to the last
    /// migration before `version`: the state an older podium left, for tests of an upgrade.
    #[doc(hidden)]
    pub async fn migrate_before(url: &str, version: i64) -> Result<(), StoreError> {
        install_default_drivers();
        let migrator = if url.starts_with("postgres") {
            &MIGRATOR_POSTGRES
        } else {
            &MIGRATOR_SQLITE
        };
        let target = migrator
            .iter()
            .map(|m| m.version)
            .filter(|v| *v < version)
            .max()
            .unwrap_or_default();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                path: redact_url(url),
                source,
            })?;
        let migrated = migrator.run_to(target, &pool).await;
        pool.close().await;
        Ok(migrated?)
    }

    /// Every row of `rules`, valid or not (checking is the rule model's job); a row with a value of
    /// the wrong type is skipped alone, with its reason (see [`rows`]).
    #[instrument(skip_all)]
    pub async fn load_rules(&self) -> Result<Rows<RuleRow>, StoreError> {
        rows::load_rules(&self.pool).await
    }

    /// Every row of `grants`, expired or not, read as [`Store::load_rules`] reads `rules`.
    #[instrument(skip_all)]
    pub async fn load_grants(&self) -> Result<Rows<GrantRow>, StoreError> {
        rows::load_grants(&self.pool).await
    }

    /// The rule rows the upgrade to schema 20261208000002 moved to `rules_rejected` (values its
    /// constraints refuse), each with its reason, until the admin deletes them there.
    pub async fn load_rejected_rules(&self) -> Result<Vec<RuleProblem>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, reason FROM rules_rejected ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, reason)| RuleProblem {
                table: "rule",
                id,
                reason: format!(
                    "set aside in rules_rejected by the schema upgrade: {reason}; fix it, insert it \
                     into rules and delete it from rules_rejected"
                ),
            })
            .collect())
    }

    /// The change counter the triggers move on every edit of `rules` and `grants`.
    pub async fn rules_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT version FROM rules_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Appends audit records in one transaction.
    pub async fn insert_decisions(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let writes: Vec<Write> = records
            .iter()
            .cloned()
            .map(|r| Write::Decision(Box::new(r)))
            .collect();
        self.write(&writes).await
    }

    /// Applies audit records and view changes in order, in one transaction. A record's inputs and
    /// explanation go to `audit_texts` once per distinct text; the row refers to them. Runs of
    /// records and of occupant rows are written a few dozen rows per statement.
    #[instrument(skip_all, fields(count = writes.len()))]
    pub async fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        self.write_knowing(writes, &mut KnownTexts::default()).await
    }

    /// [`Store::write`], skipping the texts `known` says an earlier transaction stored; the
    /// texts this one stores are added to `known` once it is committed.
    pub async fn write_knowing(
        &self,
        writes: &[Write],
        known: &mut KnownTexts,
    ) -> Result<(), StoreError> {
        known.expire();
        let mut tx = self.pool.begin().await?;
        // Texts this transaction stores (each with ON CONFLICT DO NOTHING: another instance may
        // have stored it), besides those known to be there.
        let mut texts = HashSet::new();
        let mut rest = writes;
        while let Some(first) = rest.first() {
            let run = match first {
                Write::Decision(_) => rest
                    .iter()
                    .take(ROWS_PER_STATEMENT)
                    .take_while(|w| matches!(w, Write::Decision(_)))
                    .count(),
                Write::View(ViewWrite::Occupant(_)) => rest
                    .iter()
                    .take(ROWS_PER_STATEMENT)
                    .take_while(|w| matches!(w, Write::View(ViewWrite::Occupant(_))))
                    .count(),
                Write::View(ViewWrite::Decided { .. }) => rest
                    .iter()
                    .take(ROWS_PER_STATEMENT)
                    .take_while(|w| matches!(w, Write::View(ViewWrite::Decided { .. })))
                    .count(),
                Write::View(_) => 1,
            };
            let (now, later) = rest.split_at(run);
            rest = later;
            match first {
                Write::Decision(_) => {
                    let records: Vec<&AuditRecord> = now
                        .iter()
                        .filter_map(|w| match w {
                            Write::Decision(r) => Some(&**r),
                            Write::View(_) => None,
                        })
                        .collect();
                    self.insert_records(&mut tx, &known.ids, &mut texts, &records)
                        .await?;
                }
                Write::View(ViewWrite::Occupant(_)) => {
                    let rows: Vec<&OccupantRow> = now
                        .iter()
                        .filter_map(|w| match w {
                            Write::View(ViewWrite::Occupant(o)) => Some(&**o),
                            _ => None,
                        })
                        .collect();
                    self.upsert_occupants(&mut tx, &rows).await?;
                }
                Write::View(ViewWrite::Decided { .. }) => {
                    let views: Vec<&ViewWrite> = now
                        .iter()
                        .filter_map(|w| match w {
                            Write::View(view) => Some(view),
                            Write::Decision(_) => None,
                        })
                        .collect();
                    self.update_decided(&mut tx, &views).await?;
                }
                Write::View(view) => self.write_view(&mut tx, view).await?,
            }
        }
        tx.commit().await?;
        known.ids.extend(texts);
        Ok(())
    }

    /// Inserts audit records with one statement, after the texts they refer to that neither this
    /// transaction nor a recent one stored ([`KnownTexts`]; each with `ON CONFLICT DO NOTHING`:
    /// another instance may have stored it).
    async fn insert_records(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        known: &HashSet<i64>,
        texts: &mut HashSet<i64>,
        records: &[&AuditRecord],
    ) -> Result<(), StoreError> {
        fn collect<'a>(
            text: &'a AuditText,
            known: &HashSet<i64>,
            texts: &mut HashSet<i64>,
            new: &mut Vec<&'a AuditText>,
        ) {
            if known.contains(&text.id) || texts.contains(&text.id) {
                return;
            }
            // The text shown before it first: this one refers to it.
            if let Some(head) = &text.head {
                collect(head, known, texts, new);
            }
            texts.insert(text.id);
            new.push(text);
        }
        let mut new = Vec::new();
        for r in records {
            for text in [Some(&r.reasons), r.inputs.as_ref(), r.explanation.as_ref()]
                .into_iter()
                .flatten()
            {
                collect(text, known, texts, &mut new);
            }
        }
        for chunk in new.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO audit_texts (id, body, head_id) VALUES {} ON CONFLICT (id) DO NOTHING",
                placeholders(&self.backend, chunk.len(), 3)
            );
            let mut insert = sqlx::query(AssertSqlSafe(sql));
            for text in chunk {
                insert = insert
                    .bind(text.id)
                    .bind(&*text.body)
                    .bind(text.head.as_ref().map(|head| head.id));
            }
            insert.execute(&mut **tx).await?;
        }
        let sql = format!(
            // `inputs` and `explanation` keep their default, '': the texts are in `audit_texts`.
            "INSERT INTO decisions (at, room, nick, real_jid, user_id, user_name, user_email, \
             user_group, previous, granted, rule_ids, reasons, cause, instance, dry_run, \
             inputs_id, explanation_id, reasons_id) VALUES {}",
            placeholders(&self.backend, records.len(), 18)
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql));
        for r in records {
            insert = insert
                .bind(&*r.at)
                .bind(&*r.room)
                .bind(&r.nick)
                .bind(&r.real_jid)
                .bind(&r.user_id)
                .bind(&r.user_name)
                .bind(&r.user_email)
                .bind(&r.user_group)
                .bind(r.previous)
                .bind(r.granted)
                .bind(&*r.rule_ids)
                .bind("")
                .bind(r.cause)
                .bind(&self.instance)
                .bind(i64::from(r.dry_run))
                .bind(r.inputs.as_ref().map(|t| t.id))
                .bind(r.explanation.as_ref().map(|t| t.id))
                .bind(r.reasons.id);
        }
        insert.execute(&mut **tx).await?;
        Ok(())
    }

    /// Writes live-view rows with one statement (the last row wins for an occupant named twice).
    async fn upsert_occupants(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rows: &[&OccupantRow],
    ) -> Result<(), StoreError> {
        let mut seen = HashSet::new();
        let mut latest: Vec<&OccupantRow> = rows
            .iter()
            .rev()
            .filter(|o| seen.insert((o.room.as_str(), o.nick.as_str())))
            .copied()
            .collect();
        latest.reverse();
        let updated_at = jiff::Timestamp::now().to_string();
        let sql = format!(
            "INSERT INTO occupants (instance, room, nick, real_jid, role, affiliation, user_id, \
             user_name, user_email, user_group, claims, services, joined_at, hand_raised_at, \
             permissions, reasons, updated_at, room_name) VALUES {} \
             ON CONFLICT (instance, room, nick) DO UPDATE SET real_jid = excluded.real_jid, \
             role = excluded.role, affiliation = excluded.affiliation, user_id = excluded.user_id, \
             user_name = excluded.user_name, user_email = excluded.user_email, \
             user_group = excluded.user_group, claims = excluded.claims, \
             services = excluded.services, joined_at = excluded.joined_at, \
             hand_raised_at = excluded.hand_raised_at, permissions = excluded.permissions, \
             reasons = excluded.reasons, updated_at = excluded.updated_at, \
             room_name = excluded.room_name",
            placeholders(&self.backend, latest.len(), 18)
        );
        let mut upsert = sqlx::query(AssertSqlSafe(sql));
        for o in &latest {
            upsert = upsert
                .bind(&self.instance)
                .bind(&o.room)
                .bind(&o.nick)
                .bind(&o.real_jid)
                .bind(&o.role)
                .bind(&o.affiliation)
                .bind(&o.user_id)
                .bind(&o.user_name)
                .bind(&o.user_email)
                .bind(&o.user_group)
                .bind(&o.claims)
                .bind(&o.services)
                .bind(&o.joined_at)
                .bind(&o.hand_raised_at)
                .bind(&o.permissions)
                .bind(&o.reasons)
                .bind(&updated_at)
                .bind(&o.room_name);
        }
        upsert.execute(&mut **tx).await?;
        Ok(())
    }

    /// Writes new decisions into live-view rows with one statement (the last wins for an occupant
    /// named twice).
    async fn update_decided(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        views: &[&ViewWrite],
    ) -> Result<(), StoreError> {
        let mut seen = HashSet::new();
        let mut latest: Vec<(&str, &str, &str, &str)> = views
            .iter()
            .rev()
            .filter_map(|v| match v {
                ViewWrite::Decided {
                    room,
                    nick,
                    permissions,
                    reasons,
                } => Some((
                    room.as_str(),
                    nick.as_str(),
                    permissions.as_str(),
                    &*reasons.body,
                )),
                _ => None,
            })
            .filter(|(room, nick, _, _)| seen.insert((*room, *nick)))
            .collect();
        latest.reverse();
        if latest.is_empty() {
            return Ok(());
        }
        let (updated_at, instance) = match self.backend {
            Backend::Sqlite => ("?".to_owned(), "?".to_owned()),
            Backend::Postgres { .. } => (
                format!("${}", latest.len() * 4 + 1),
                format!("${}", latest.len() * 4 + 2),
            ),
        };
        let sql = format!(
            "WITH v (room, nick, permissions, reasons) AS (VALUES {}) \
             UPDATE occupants SET permissions = v.permissions, reasons = v.reasons, \
             updated_at = {updated_at} FROM v \
             WHERE occupants.instance = {instance} AND occupants.room = v.room \
             AND occupants.nick = v.nick",
            placeholders(&self.backend, latest.len(), 4)
        );
        let mut update = sqlx::query(AssertSqlSafe(sql));
        for (room, nick, permissions, reasons) in latest {
            update = update.bind(room).bind(nick).bind(permissions).bind(reasons);
        }
        update
            .bind(jiff::Timestamp::now().to_string())
            .bind(&self.instance)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn write_view(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        view: &ViewWrite,
    ) -> Result<(), StoreError> {
        let instance = &self.instance;
        match view {
            ViewWrite::Clear => {
                sqlx::query("DELETE FROM occupants WHERE instance = $1")
                    .bind(instance)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM queue WHERE instance = $1")
                    .bind(instance)
                    .execute(&mut **tx)
                    .await?;
            }
            ViewWrite::Gone { room, nick } => {
                sqlx::query(
                    "DELETE FROM occupants WHERE instance = $1 AND room = $2 AND nick = $3",
                )
                .bind(instance)
                .bind(room)
                .bind(nick)
                .execute(&mut **tx)
                .await?;
            }
            ViewWrite::Occupant(o) => self.upsert_occupants(tx, &[&**o]).await?,
            ViewWrite::Decided { .. } => self.update_decided(tx, &[view]).await?,
            ViewWrite::Queue { room, rows } => {
                sqlx::query("DELETE FROM queue WHERE instance = $1 AND room = $2")
                    .bind(instance)
                    .bind(room)
                    .execute(&mut **tx)
                    .await?;
                for q in rows {
                    sqlx::query(
                        "INSERT INTO queue (instance, room, media, position, nick, real_jid, rule_id, \
                         waiting_for, hand_raised_at, joined_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(instance)
                    .bind(&q.room)
                    .bind(&q.media)
                    .bind(q.position)
                    .bind(&q.nick)
                    .bind(&q.real_jid)
                    .bind(q.rule_id)
                    .bind(&q.waiting_for)
                    .bind(&q.hand_raised_at)
                    .bind(&q.joined_at)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// The occupants this database's podium instances govern now (every instance), for `explain`.
    pub async fn load_occupants(&self) -> Result<Vec<(String, OccupantRow)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            instance: String,
            #[sqlx(flatten)]
            row: OccupantRow,
        }
        let rows = sqlx::query_as::<_, Row>(
            "SELECT instance, room, room_name, nick, real_jid, role, affiliation, user_id, \
             user_name, user_email, user_group, claims, services, joined_at, hand_raised_at, \
             permissions, reasons FROM occupants ORDER BY room, nick",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.instance, r.row)).collect())
    }

    /// The queue rows of a room (every instance), in order.
    pub async fn load_queue(&self, room: &str) -> Result<Vec<QueueRow>, StoreError> {
        Ok(sqlx::query_as::<_, QueueRow>(
            "SELECT room, media, position, nick, real_jid, rule_id, waiting_for, hand_raised_at, \
             joined_at FROM queue WHERE room = $1 ORDER BY media, waiting_for, position",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes audit records decided before `cutoff` (RFC 3339 UTC, as `decisions.at` is written),
    /// and the audit texts no record refers to any more; returns how many records.
    pub async fn prune_decisions(&self, cutoff: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query("DELETE FROM decisions WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        // A writer storing a record in the meantime holds its texts in its own transaction: on
        // SQLite the two are serialised, on PostgreSQL the foreign key makes this delete wait and
        // fail (tried again at the next prune).
        // Twice: a room's explanation goes first, then the part every room shares, once no
        // explanation shows it.
        for _ in 0..2 {
            sqlx::query(
                "DELETE FROM audit_texts WHERE \
                 NOT EXISTS (SELECT 1 FROM decisions d WHERE d.inputs_id = audit_texts.id) AND \
                 NOT EXISTS (SELECT 1 FROM decisions d WHERE d.explanation_id = audit_texts.id) AND \
                 NOT EXISTS (SELECT 1 FROM decisions d WHERE d.reasons_id = audit_texts.id) AND \
                 NOT EXISTS (SELECT 1 FROM audit_texts t WHERE t.head_id = audit_texts.id)",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    /// The pool, for tests and tools that read the tables directly.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn test_prune_decisions_before_a_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).await.unwrap();
        for at in [
            "2026-01-01T00:00:00Z",
            "2026-11-22T23:59:59Z",
            "2026-11-23T10:00:00Z",
        ] {
            sqlx::query(
                "INSERT INTO decisions (at, room, nick, real_jid, previous, granted, rule_ids, reasons, cause) \
                 VALUES ($1, 'r', 'n', 'j', 'none', 'audio', '', '', 'joined')",
            )
            .bind(at)
            .execute(store.pool())
            .await
            .unwrap();
        }
        assert_eq!(
            store.prune_decisions("2026-11-23T00:00:00Z").await.unwrap(),
            2
        );
        let left: Vec<String> = sqlx::query_scalar("SELECT at FROM decisions")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(left, vec!["2026-11-23T10:00:00Z".to_owned()]);
    }

    #[tokio::test]
    async fn test_live_view_rows_are_written_replaced_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("v.db"))
            .await
            .unwrap()
            .named("shard-1".into());
        let occupant = |nick: &str, permissions: &str| OccupantRow {
            room: "class@conference.localhost".into(),
            room_name: "class".into(),
            nick: nick.into(),
            real_jid: format!("{nick}@localhost/web"),
            role: "participant".into(),
            affiliation: "none".into(),
            user_id: None,
            user_name: None,
            user_email: None,
            user_group: None,
            claims: "{}".into(),
            services: String::new(),
            joined_at: "2026-11-23T10:00:00Z".into(),
            hand_raised_at: Some("2026-11-23T10:01:00Z".into()),
            permissions: permissions.into(),
            reasons: String::new(),
        };
        let waiting = |nick: &str, position: i64| QueueRow {
            room: "class@conference.localhost".into(),
            media: "audio".into(),
            position,
            nick: nick.into(),
            real_jid: format!("{nick}@localhost/web"),
            rule_id: 2,
            waiting_for: "slot".into(),
            hand_raised_at: None,
            joined_at: "2026-11-23T10:00:00Z".into(),
        };
        let view = |v| Write::View(v);
        store
            .write(&[
                view(ViewWrite::Occupant(Box::new(occupant("ada", "none")))),
                view(ViewWrite::Occupant(Box::new(occupant("ada", "audio")))),
                view(ViewWrite::Occupant(Box::new(occupant("ben", "none")))),
                view(ViewWrite::Queue {
                    room: "class@conference.localhost".into(),
                    rows: vec![waiting("ben", 1), waiting("cy", 2)],
                }),
                view(ViewWrite::Queue {
                    room: "class@conference.localhost".into(),
                    rows: vec![waiting("ben", 1)],
                }),
                view(ViewWrite::Gone {
                    room: "class@conference.localhost".into(),
                    nick: "cy".into(),
                }),
            ])
            .await
            .unwrap();
        let occupants = store.load_occupants().await.unwrap();
        let seen: Vec<(&str, &str, &str)> = occupants
            .iter()
            .map(|(i, o)| (i.as_str(), o.nick.as_str(), o.permissions.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![("shard-1", "ada", "audio"), ("shard-1", "ben", "none")]
        );
        let queue = store
            .load_queue("class@conference.localhost")
            .await
            .unwrap();
        assert_eq!(queue, vec![waiting("ben", 1)]);
        // A new decision writes its columns only, the last one for an occupant named twice.
        let decided = |nick: &str, permissions: &str| {
            view(ViewWrite::Decided {
                room: "class@conference.localhost".into(),
                nick: nick.into(),
                permissions: permissions.into(),
                reasons: AuditText::new(format!("{permissions} by rule 1"), None),
            })
        };
        store
            .write(&[
                decided("ada", "video"),
                decided("ben", "audio"),
                decided("ada", "audio,video"),
            ])
            .await
            .unwrap();
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT nick, permissions, reasons, real_jid FROM occupants ORDER BY nick",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    "ada".into(),
                    "audio,video".into(),
                    "audio,video by rule 1".into(),
                    "ada@localhost/web".into()
                ),
                (
                    "ben".into(),
                    "audio".into(),
                    "audio by rule 1".into(),
                    "ben@localhost/web".into()
                ),
            ]
        );
        store.write(&[view(ViewWrite::Clear)]).await.unwrap();
        assert!(store.load_occupants().await.unwrap().is_empty());
        assert!(
            store
                .load_queue("class@conference.localhost")
                .await
                .unwrap()
                .is_empty()
        );
    }

    fn record(
        nick: &str,
        room: &str,
        inputs: &Arc<AuditText>,
        explanation: &Arc<AuditText>,
    ) -> AuditRecord {
        AuditRecord {
            at: "2026-11-23T10:00:00Z".into(),
            room: format!("{room}@conference.localhost").into(),
            nick: nick.into(),
            real_jid: format!("{nick}@localhost/x"),
            user_id: (nick == "ben").then(|| "u-ben".into()),
            user_name: None,
            user_email: None,
            user_group: None,
            previous: "none",
            granted: "audio",
            rule_ids: "1".into(),
            reasons: AuditText::new("audio: allow by rule 1 (priority 0)".into(), None),
            cause: "resync",
            dry_run: false,
            inputs: Some(Arc::clone(inputs)),
            explanation: Some(Arc::clone(explanation)),
        }
    }

    /// The audit log stores each distinct text once: the part of explanations every room shares,
    /// each room's own part, the reasons, the inputs; `decisions_full` shows every record with its
    /// full texts (the inputs with the identity the row holds), and pruning drops the texts no
    /// record (and no other text) refers to.
    async fn check_audit_texts_stored_once(store: &Store) {
        let shared = AuditText::new(
            "every room: rules for '*', first to last\n  rule 1 (allow everyone, audio, priority 0)\n"
                .repeat(20),
            None,
        );
        let room_text = |room: &str| {
            AuditText::new(
                format!("room {room}: its own rules, first to last\n"),
                Some(Arc::clone(&shared)),
            )
        };
        let (class, lab) = (room_text("class"), room_text("lab"));
        let participant = AuditText::new("{\"role\":\"participant\"}".into(), None);
        let moderator = AuditText::new("{\"role\":\"moderator\"}".into(), None);
        store
            .insert_decisions(&[
                record("ada", "class", &participant, &class),
                record("ben", "class", &moderator, &class),
                record("cy", "lab", &participant, &lab),
            ])
            .await
            .unwrap();
        store
            .insert_decisions(&[record("ada", "class", &participant, &class)])
            .await
            .unwrap();
        let texts = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_texts")
                .fetch_one(store.pool())
                .await
                .unwrap()
        };
        assert_eq!(
            texts().await,
            6,
            "the shared part, two rooms' parts, one reasons text, two inputs"
        );
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT nick, reasons, inputs, explanation FROM decisions_full ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 4);
        for (nick, reasons, inputs, explanation) in &rows {
            let room = if nick == "cy" { "lab" } else { "class" };
            assert_eq!(
                explanation,
                &format!("{}room {room}: its own rules, first to last\n", shared.body),
                "{nick}"
            );
            assert_eq!(reasons, "audio: allow by rule 1 (priority 0)");
            let inputs: serde_json::Value = serde_json::from_str(inputs).unwrap();
            let role = if nick == "ben" {
                "moderator"
            } else {
                "participant"
            };
            let mut expected = serde_json::json!({
                "role": role,
                "real_jid": format!("{nick}@localhost"),
            });
            if nick == "ben" {
                expected["user_id"] = "u-ben".into();
            }
            assert_eq!(inputs, expected, "{nick}");
        }
        // Rows written before the texts moved out keep theirs in place, and read the same.
        sqlx::query(
            "INSERT INTO decisions (at, room, nick, real_jid, previous, granted, rule_ids, reasons, \
             cause, inputs, explanation) VALUES ('2026-11-22T10:00:00Z', 'r', 'old', 'j', 'none', \
             'audio', '', 'old reasons', 'joined', '{}', 'old text')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let old: (String, String, String) = sqlx::query_as(
            "SELECT reasons, inputs, explanation FROM decisions_full WHERE nick = 'old'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(old, ("old reasons".into(), "{}".into(), "old text".into()));
        // ben's inputs go with his record, cy's with the lab's part; the shared part stays for
        // ada's records.
        sqlx::query("UPDATE decisions SET at = '2026-11-01T00:00:00Z' WHERE nick IN ('ben', 'cy')")
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(
            store.prune_decisions("2026-11-22T00:00:00Z").await.unwrap(),
            2
        );
        assert_eq!(texts().await, 4, "shared, class, reasons, participant");
        // Once no record refers to a room's part, the shared part goes too.
        assert_eq!(
            store.prune_decisions("2026-12-01T00:00:00Z").await.unwrap(),
            3,
            "ada's two and the old one"
        );
        assert_eq!(texts().await, 0);
    }

    #[tokio::test]
    async fn test_audit_texts_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
        check_audit_texts_stored_once(&store).await;
    }

    #[test]
    fn test_redact_url() {
        assert_eq!(
            redact_url("postgres://podium:s3cret@db.example:5432/rules"),
            "postgres://db.example:5432/rules"
        );
        assert_eq!(
            redact_url("postgres://127.0.0.1/test"),
            "postgres://127.0.0.1/test"
        );
        assert_eq!(redact_url("nonsense"), "(unparsable database URL)");
    }

    /// Review 14b: the writer takes a text it stored in the last ten minutes to be there still. When
    /// the records referring to it go meanwhile (an admin erasing someone's records, a pruner on a
    /// host whose clock runs a day ahead) and the pruner drops the text, a record referring to it
    /// must still be written, with its text, not lost with its whole batch.
    #[tokio::test]
    async fn test_writer_stores_a_text_again_once_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("a.db")).await.unwrap();
        let explanation = AuditText::new("room class: its own rules\n".into(), None);
        let inputs = AuditText::new("{\"role\":\"participant\"}".into(), None);
        let spool = Arc::new(Spool::open(&dir.path().join("a.spool")).unwrap());
        let (writer, task) = AuditWriter::spawn(store.clone(), spool).unwrap();
        writer.record(record("ada", "class", &inputs, &explanation));
        while writer.backlog() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            store.prune_decisions("9999-01-01T00:00:00Z").await.unwrap(),
            1
        );
        writer.record(record("ben", "class", &inputs, &explanation));
        drop(writer);
        task.await.unwrap();
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT nick, inputs, explanation FROM decisions_full")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(rows.len(), 1, "ben's record is written");
        assert_eq!(rows[0].0, "ben");
        assert!(rows[0].1.contains("participant"), "{rows:?}");
        assert_eq!(rows[0].2, "room class: its own rules\n");
    }

    /// Review 14b: a record the previous schema wrote (its texts in `audit_texts`, the inputs with
    /// the identity in them) reads the same through `decisions_full` after the upgrade.
    #[tokio::test]
    async fn test_records_of_the_previous_schema_read_the_same_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v8.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Store::migrate_before(&url, 20261208000001).await.unwrap();
        let old = sqlx::AnyPool::connect(&url).await.unwrap();
        let inputs = r#"{"affiliation":"none","email":"ada@example.com","joined_at":"2026-11-23T09:00:00Z","real_jid":"ada@localhost","role":"participant","room":"class","user_id":"u-\"ada\u00e9"}"#;
        for sql in [
            format!("INSERT INTO audit_texts (id, body) VALUES (1, '{inputs}'), (2, 'why: rule 1')"),
            "INSERT INTO decisions (at, room, nick, real_jid, user_id, user_email, previous, \
             granted, rule_ids, reasons, cause, inputs_id, explanation_id) VALUES \
             ('2026-11-23T10:00:00Z', 'class@conference.localhost', 'ada', 'ada@localhost/web/x', \
             'u-\"adaé', 'ada@example.com', 'none', 'audio', '1', 'audio: allow by rule 1', 'joined', 1, 2), \
             ('2026-11-23T10:00:01Z', 'class@conference.localhost', 'ben', 'ben@localhost/web', \
             NULL, NULL, 'audio', 'none', '', 'left the room', 'left', NULL, NULL)"
                .to_owned(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&old).await.unwrap();
        }
        let before: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT nick, reasons, inputs, explanation FROM decisions_full ORDER BY id",
        )
        .fetch_all(&old)
        .await
        .unwrap();
        old.close().await;
        let store = Store::open_sqlite(&path).await.unwrap();
        let after: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT nick, reasons, inputs, explanation FROM decisions_full ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        store.close().await;
        assert_eq!(after.len(), 2);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((&b.0, &b.1, &b.3), (&a.0, &a.1, &a.3));
            if b.2.is_empty() {
                assert_eq!(a.2, "");
            } else {
                let b: serde_json::Value = serde_json::from_str(&b.2).unwrap();
                let a: serde_json::Value = serde_json::from_str(&a.2).unwrap();
                assert_eq!(a, b);
            }
        }
    }

    #[tokio::test]
    async fn test_migrate_twice_is_noop_and_triggers_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/podium.db");
        let store = Store::open_sqlite(&path).await.unwrap();
        assert_eq!(store.rules_version().await.unwrap(), 0);
        store.close().await;
        let store = Store::open_sqlite(&path).await.unwrap();
        sqlx::query("INSERT INTO rules (room, effect) VALUES ('*', 'allow')")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE rules SET priority = 3")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM rules")
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(store.rules_version().await.unwrap(), 3);
        assert_eq!(store.load_rules().await.unwrap(), Rows::default());
    }

    #[tokio::test]
    async fn test_rule_defaults_and_audit_insert() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).await.unwrap();
        sqlx::query("INSERT INTO rules (effect, note) VALUES ('deny', 'everyone, everything')")
            .execute(store.pool())
            .await
            .unwrap();
        let rows = store.load_rules().await.unwrap().rows;
        assert_eq!(rows[0].room, "*");
        assert_eq!(rows[0].who, "everyone");
        assert_eq!(rows[0].media, "all");
        assert_eq!(rows[0].priority, 0);
        assert_eq!(rows[0].enabled, 1);
        let record = AuditRecord {
            at: "2026-11-23T10:00:00Z".into(),
            room: "r@conference.localhost".into(),
            nick: "alice".into(),
            real_jid: "alice@localhost/x".into(),
            user_id: None,
            user_name: Some("Alice".into()),
            user_email: None,
            user_group: None,
            previous: "none",
            granted: "audio",
            rule_ids: "1".into(),
            reasons: AuditText::new("audio: allow by rule 1 (priority 0)".into(), None),
            cause: "joined",
            dry_run: false,
            inputs: None,
            explanation: None,
        };
        store
            .insert_decisions(&[record.clone(), record])
            .await
            .unwrap();
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM decisions WHERE user_name = 'Alice'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(count, 2);
    }
}
