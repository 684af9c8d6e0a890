//! Reading the tables admins write (`rules`, `grants`) one value at a time, so that one bad value
//! skips its row and never the others.
//!
//! SQLite keeps whatever it is given in a column (a column's type is only an affinity): before the
//! constraints of migration 20261208000002, `UPDATE rules SET priority = 'high'` succeeded, and
//! reading the table into typed rows then failed as a whole ("mismatched types; i64 vs TEXT"), so
//! podium kept its old rules for ever and would not start again. Constraints cannot cover everything
//! (an old row, a constraint switched off with `PRAGMA ignore_check_constraints`, a file written by
//! another tool), so here each value is read on its own: a row one of whose values has the wrong
//! type is a [`RuleProblem`] naming the row, the column and the value, and every other row is read.
//! Should a row not even convert (SQLite text that is not UTF-8), the rows are read again one by one,
//! and only that row is skipped.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::StoreError;
use crate::rules::{GrantRow, RuleProblem, RuleRow};

/// The rows of an admin-written table as read: every row podium could read, and a problem for each
/// row it could not (which is then skipped, like a row whose values it does not understand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows<T> {
    /// The rows read, by id.
    pub rows: Vec<T>,
    /// The rows skipped, by id, with what is wrong.
    pub unreadable: Vec<RuleProblem>,
}

impl<T> Default for Rows<T> {
    fn default() -> Rows<T> {
        Rows {
            rows: Vec::new(),
            unreadable: Vec::new(),
        }
    }
}

impl<T> Rows<T> {
    /// How many rows the table holds (read or not).
    pub fn count(&self) -> usize {
        self.rows.len() + self.unreadable.len()
    }
}

/// The longest piece of a bad value a problem quotes (a log line stays small whatever was written).
const SHOWN: usize = 60;

/// One row of a query, read a value at a time.
struct Values<'r>(&'r AnyRow);

impl Values<'_> {
    fn text(&self, column: &str) -> Result<String, String> {
        self.opt_text(column)?
            .ok_or_else(|| format!("{column} is NULL"))
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, String> {
        self.0
            .try_get::<Option<String>, _>(column)
            .map_err(|_| format!("{column} {} is not text", self.shown(column)))
    }

    fn int(&self, column: &str) -> Result<i64, String> {
        self.opt_int(column)?
            .ok_or_else(|| format!("{column} is NULL"))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, String> {
        self.0
            .try_get::<Option<i64>, _>(column)
            .map_err(|_| format!("{column} {} is not a whole number", self.shown(column)))
    }

    /// The value as the admin would recognise it: quoted text, a number, or what it is.
    fn shown(&self, column: &str) -> String {
        if let Ok(text) = self.0.try_get::<String, _>(column) {
            let mut cut: String = text.chars().take(SHOWN).collect();
            if cut.len() < text.len() {
                cut.push_str("...");
            }
            return format!("{cut:?}");
        }
        if let Ok(number) = self.0.try_get::<f64, _>(column) {
            return number.to_string();
        }
        if let Ok(bytes) = self.0.try_get::<Vec<u8>, _>(column) {
            return format!("(a blob of {} bytes)", bytes.len());
        }
        "(a value of another type)".to_owned()
    }
}

/// The columns of `rules` podium reads.
const RULE_COLUMNS: &str = "id, room, who, who_value, media, effect, priority, enabled, dry_run, \
                            cap, not_before, not_after, schedule, time_zone";

fn rule_row(values: &Values<'_>) -> Result<RuleRow, String> {
    Ok(RuleRow {
        id: values.int("id")?,
        room: values.text("room")?,
        who: values.text("who")?,
        who_value: values.opt_text("who_value")?,
        media: values.text("media")?,
        effect: values.text("effect")?,
        priority: values.int("priority")?,
        enabled: values.int("enabled")?,
        dry_run: values.int("dry_run")?,
        cap: values.opt_int("cap")?,
        not_before: values.opt_text("not_before")?,
        not_after: values.opt_text("not_after")?,
        schedule: values.opt_text("schedule")?,
        time_zone: values.opt_text("time_zone")?,
    })
}

/// The columns of `grants` podium reads.
const GRANT_COLUMNS: &str =
    "id, room, who, who_value, media, expires_at, granted_by, source, meeting";

fn grant_row(values: &Values<'_>) -> Result<GrantRow, String> {
    Ok(GrantRow {
        id: values.int("id")?,
        room: values.text("room")?,
        who: values.text("who")?,
        who_value: values.opt_text("who_value")?,
        media: values.text("media")?,
        expires_at: values.text("expires_at")?,
        granted_by: values.text("granted_by")?,
        source: values.text("source")?,
        meeting: values.opt_text("meeting")?,
    })
}

/// Every row of `rules`, valid or not (checking the values is the rule model's job); rows with a
/// value of the wrong type are skipped with their reason.
pub async fn load_rules(pool: &AnyPool) -> Result<Rows<RuleRow>, StoreError> {
    load(pool, "rules", "rule", RULE_COLUMNS, rule_row).await
}

/// Every row of `grants`, expired or not, read as [`load_rules`] reads `rules`.
pub async fn load_grants(pool: &AnyPool) -> Result<Rows<GrantRow>, StoreError> {
    load(pool, "grants", "grant", GRANT_COLUMNS, grant_row).await
}

/// Whether an error is about one value (a decode), not about the database (a lost connection, a
/// missing table): only the first kind skips a row; the second fails the read (and podium keeps
/// the rules in force).
fn is_about_a_value(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)
    )
}

async fn load<T>(
    pool: &AnyPool,
    table: &str,
    kind: &'static str,
    columns: &str,
    read: fn(&Values<'_>) -> Result<T, String>,
) -> Result<Rows<T>, StoreError> {
    let problem = |id: i64, reason: String| RuleProblem {
        table: kind,
        id,
        reason,
    };
    let all = format!("SELECT {columns} FROM {table} ORDER BY id");
    let rows = match sqlx::query(sqlx::AssertSqlSafe(all)).fetch_all(pool).await {
        Ok(rows) => rows,
        Err(error) if is_about_a_value(&error) => {
            return load_one_by_one(pool, table, columns, read, problem).await;
        }
        Err(error) => return Err(error.into()),
    };
    let mut loaded = Rows {
        rows: Vec::with_capacity(rows.len()),
        unreadable: Vec::new(),
    };
    for row in &rows {
        let values = Values(row);
        match read(&values) {
            Ok(row) => loaded.rows.push(row),
            Err(reason) => {
                let id = values.int("id").unwrap_or_default();
                loaded.unreadable.push(problem(id, reason));
            }
        }
    }
    Ok(loaded)
}

/// The slow path, taken only when a row cannot even be converted: the ids, then each row alone.
async fn load_one_by_one<T>(
    pool: &AnyPool,
    table: &str,
    columns: &str,
    read: fn(&Values<'_>) -> Result<T, String>,
    problem: impl Fn(i64, String) -> RuleProblem,
) -> Result<Rows<T>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} ORDER BY id"
    )))
    .fetch_all(pool)
    .await?;
    let one = format!("SELECT {columns} FROM {table} WHERE id = $1");
    let mut loaded = Rows::default();
    for id in ids {
        match sqlx::query(sqlx::AssertSqlSafe(one.clone()))
            .bind(id)
            .fetch_optional(pool)
            .await
        {
            // Deleted since the ids were read.
            Ok(None) => {}
            Ok(Some(row)) => match read(&Values(&row)) {
                Ok(row) => loaded.rows.push(row),
                Err(reason) => loaded.unreadable.push(problem(id, reason)),
            },
            Err(error) if is_about_a_value(&error) => loaded
                .unreadable
                .push(problem(id, format!("the row cannot be read: {error}"))),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(loaded)
}
