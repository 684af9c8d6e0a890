//! `podium rules check`: every row of `rules` examined, with precise messages naming row ids.
//!
//! Errors are rows podium skips when it loads them (the same messages it logs then: unknown media or
//! effect, a bad glob, a missing `who_value`, a rule on the nick). Warnings are rows podium keeps but
//! that are probably not what the admin meant: two enabled rows for the same rooms and the same people
//! at the same priority that decide a kind in opposite ways (deny wins such a tie, so the allow row
//! never takes effect there).

use std::collections::HashMap;
use std::fmt;

use super::model::{Effect, Rule, RuleProblem, RuleRow};
use crate::media::MediaSet;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// podium keeps the row, but it is probably a mistake.
    Warning,
    /// podium skips the row.
    Error,
}

/// One finding about one or more rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `rule` or `grant`: the table the rows are in.
    pub table: &'static str,
    /// How bad.
    pub severity: Severity,
    /// The rows concerned, ascending.
    pub ids: Vec<i64>,
    /// What is wrong, precisely.
    pub message: String,
}

impl Finding {
    /// The error for a row podium skips.
    pub fn skipped(problem: &RuleProblem) -> Finding {
        Finding {
            table: problem.table,
            severity: Severity::Error,
            ids: vec![problem.id],
            message: problem.reason.clone(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.ids.iter().map(i64::to_string).collect();
        let plural = format!("{}s", self.table);
        let what = if self.ids.len() == 1 {
            self.table
        } else {
            &plural
        };
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{what} {}: {severity}: {}",
            ids.join(" and "),
            self.message
        )
    }
}

/// What two rows must share to contradict: room, who, who_value (normalised), priority and the same
/// time window (rows in force at different times do not meet).
type Scope = (String, String, String, i64, String);

/// Examines every row at time `now`, with the rows skipped before they could be examined (`skipped`:
/// a value of the wrong type, or a row the schema upgrade set aside); findings come ordered by first
/// row id.
pub fn check_rows(rows: &[RuleRow], skipped: &[RuleProblem], now: jiff::Timestamp) -> Vec<Finding> {
    let mut findings: Vec<Finding> = skipped.iter().map(Finding::skipped).collect();
    // Valid enabled rows, grouped by what they apply to and their priority.
    let mut groups: HashMap<Scope, Vec<(&RuleRow, Rule)>> = HashMap::new();
    for row in rows {
        match Rule::from_row(row) {
            Err(problem) => findings.push(Finding::skipped(&problem)),
            Ok(None) => {}
            Ok(Some(rule)) => {
                if let Some(message) = cap_warning(row, &rule) {
                    findings.push(Finding {
                        table: "rule",
                        severity: Severity::Warning,
                        ids: vec![row.id],
                        message,
                    });
                }
                if rule.window.as_ref().is_some_and(|w| w.is_over(now)) {
                    findings.push(Finding {
                        table: "rule",
                        severity: Severity::Warning,
                        ids: vec![row.id],
                        message: format!(
                            "its window closed at {}: it will not apply again",
                            row.not_after.as_deref().unwrap_or("").trim()
                        ),
                    });
                }
                let key = (
                    row.room.trim().to_lowercase(),
                    row.who.trim().to_lowercase(),
                    row.who_value.as_deref().unwrap_or("").trim().to_lowercase(),
                    row.priority,
                    [
                        &row.not_before,
                        &row.not_after,
                        &row.schedule,
                        &row.time_zone,
                    ]
                    .map(|c| c.as_deref().unwrap_or("").trim().to_owned())
                    .join("|"),
                );
                groups.entry(key).or_default().push((row, rule));
            }
        }
    }
    for ((room, who, value, priority, _), rules) in &groups {
        for (i, (row_a, a)) in rules.iter().enumerate() {
            for (row_b, b) in &rules[i + 1..] {
                if a.effect == b.effect || a.dry_run != b.dry_run {
                    continue;
                }
                let both: MediaSet = a.media.iter().filter(|m| b.media.contains(*m)).collect();
                if both.is_empty() {
                    continue;
                }
                let ((looser, loose), (stricter, strict)) =
                    if a.effect.strictness() > b.effect.strictness() {
                        ((row_a.id, a.effect), (row_b.id, b.effect))
                    } else {
                        ((row_b.id, b.effect), (row_a.id, a.effect))
                    };
                let never = match loose {
                    Effect::Allow => "allows",
                    Effect::Request => "lets anyone ask for",
                    Effect::Deny => "denies",
                };
                let people = if value.is_empty() {
                    who.clone()
                } else {
                    format!("{who} {value}")
                };
                let mut ids = vec![row_a.id, row_b.id];
                ids.sort_unstable();
                findings.push(Finding {
                table: "rule",
                    severity: Severity::Warning,
                    ids,
                    message: format!(
                        "contradict for {both} in rooms '{room}' for {people} at priority {priority}: \
                         {} (rule {stricter}) wins the tie, so rule {looser} never {never} it there",
                        strict.as_str()
                    ),
                });
            }
        }
    }
    findings.sort_by(|a, b| a.ids.cmp(&b.ids).then(b.severity.cmp(&a.severity)));
    findings
}

/// A cap that means nothing, or admits nobody.
fn cap_warning(row: &RuleRow, rule: &Rule) -> Option<String> {
    match (row.cap, rule.effect) {
        (Some(cap), Effect::Deny) => Some(format!(
            "cap {cap} on a deny rule means nothing (a cap limits how many are allowed); it is ignored"
        )),
        (Some(0), _) => Some(format!(
            "cap 0: nobody in the room gets {} through this rule; everyone it matches waits",
            rule.media
        )),
        _ => None,
    }
}

/// Examines every row of `grants`, with the rows podium could not read: errors are rows podium
/// skips.
pub fn check_grants(rows: &[super::model::GrantRow], unreadable: &[RuleProblem]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = rows
        .iter()
        .filter_map(|row| super::model::Grant::from_row(row).err())
        .chain(unreadable.iter().cloned())
        .map(|problem| Finding::skipped(&problem))
        .collect();
    findings.sort_by(|a, b| a.ids.cmp(&b.ids));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::model::test_row as row;

    #[test]
    fn test_findings_name_rows_and_reasons() {
        let mut disabled = row(6, "*", "everyone", None, "all", "deny", 0);
        disabled.enabled = 0;
        let rows = vec![
            row(1, "*", "everyone", None, "audio,video", "allow", 0),
            row(2, "*", "everyone", None, "video,screen", "deny", 0),
            row(3, "*", "everyone", None, "smell", "allow", 0),
            row(4, "Town*", "role", Some("Moderator"), "all", "allow", 5),
            row(5, "town*", "role", Some("moderator"), "screen", "deny", 5),
            disabled,
            row(7, "*", "everyone", None, "video", "deny", 1),
            row(8, "*", "nick", Some("boss"), "all", "allow", 0),
            RuleRow {
                not_after: Some("2026-01-01T00:00:00Z".into()),
                ..row(9, "*", "everyone", None, "all", "allow", 0)
            },
            RuleRow {
                schedule: Some("mon 18:00-02:00".into()),
                ..row(10, "*", "everyone", None, "all", "allow", 0)
            },
        ];
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let findings: Vec<String> = check_rows(&rows, &[], now)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            findings,
            vec![
                "rules 1 and 2: warning: contradict for video in rooms '*' for everyone at priority 0: deny (rule 2) wins the tie, so rule 1 never allows it there",
                "rule 3: error: media: unknown media kind \"smell\" (expected audio, video, screen, all or none)",
                "rules 4 and 5: warning: contradict for screen in rooms 'town*' for role moderator at priority 5: deny (rule 5) wins the tie, so rule 4 never allows it there",
                "rule 8: error: who \"nick\": rules never key on the nick or display name, which clients choose; use user, email, claim, jid or domain",
                "rule 9: warning: its window closed at 2026-01-01T00:00:00Z: it will not apply again",
                "rule 10: error: schedule \"mon 18:00-02:00\": \"18:00-02:00\" ends before it starts (split a range that crosses midnight)",
            ]
        );
    }

    #[test]
    fn test_clean_rules_have_no_findings() {
        let rows = vec![
            row(1, "*", "everyone", None, "audio", "allow", 0),
            row(2, "*", "everyone", None, "video", "deny", 0),
            row(3, "*", "role", Some("moderator"), "video", "allow", 10),
        ];
        assert!(check_rows(&rows, &[], "2026-11-23T10:00:00Z".parse().unwrap()).is_empty());
    }
}
