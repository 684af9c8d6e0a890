//! The admin commands beside the daemon: `podium rules check` and `podium explain`. Each reads the
//! configured database and returns its report; `main` prints it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;

use crate::config::{Config, ConfigError};
use crate::media::Media;
use crate::rules::check::{Finding, Severity, check_grants, check_rows};
use crate::rules::eval::Standing;
use crate::rules::{Inputs, RuleSet, explain};
use crate::store::{OccupantRow, QueueRow, Store, StoreError};

/// Why a command could not report.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nobody matches.
    #[error("{0}")]
    NotFound(String),
}

/// The report of `podium rules check`: one line per finding and a summary; `true` when there is an
/// error.
pub async fn rules_check(config: &Config, now: Timestamp) -> Result<(String, bool), ToolError> {
    let store = Store::open(&config.database, String::new()).await?;
    let loaded = async {
        Ok::<_, StoreError>((
            store.load_rules().await?,
            store.load_grants().await?,
            store.load_rejected_rules().await?,
        ))
    }
    .await;
    store.close().await;
    let (rows, grants, rejected) = loaded?;
    let skipped: Vec<_> = rows.unreadable.iter().chain(&rejected).cloned().collect();
    let mut findings: Vec<Finding> = check_rows(&rows.rows, &skipped, now);
    findings.extend(check_grants(&grants.rows, &grants.unreadable));
    let mut out = String::new();
    for finding in &findings {
        let _ = writeln!(out, "{finding}");
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let _ = write!(
        out,
        "{} rows, {errors} errors, {} warnings",
        rows.count() + rejected.len(),
        findings.len() - errors
    );
    if grants.count() > 0 {
        let _ = write!(out, " ({} grants checked)", grants.count());
    }
    out.push('\n');
    Ok((out, errors > 0))
}

/// The report of `podium explain ROOM OCCUPANT`: for every occupant podium governs in `room` (its
/// name or JID) matching `who` (nick, real JID, bare JID, token user id or email), per kind the
/// decision at `now`, the rules and grants that decided, the inputs and why other rules lost.
pub async fn explain_occupant(
    config: &Config,
    room: &str,
    who: &str,
    now: Timestamp,
) -> Result<String, ToolError> {
    let default = config.default_permissions()?;
    let store = Store::open(&config.database, String::new()).await?;
    let loaded = async {
        Ok::<_, StoreError>((
            store.load_rules().await?,
            store.load_grants().await?,
            store.load_occupants().await?,
        ))
    }
    .await;
    let (rules, grants, occupants) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            store.close().await;
            return Err(error.into());
        }
    };
    let in_room: Vec<&(String, OccupantRow)> =
        occupants.iter().filter(|(_, o)| room_is(o, room)).collect();
    let found: Vec<&(String, OccupantRow)> = in_room
        .iter()
        .copied()
        .filter(|(_, o)| is_who(o, who))
        .collect();
    if found.is_empty() {
        store.close().await;
        let known: Vec<String> = in_room
            .iter()
            .map(|(_, o)| format!("{} ({})", o.nick, o.real_jid))
            .collect();
        return Err(ToolError::NotFound(if in_room.is_empty() {
            format!("podium governs nobody in room {room:?} now (see the occupants table)")
        } else {
            format!(
                "nobody in room {room:?} matches {who:?} (by nick, JID, user id or email); \
                 podium governs: {}",
                known.join(", ")
            )
        }));
    }
    let (set, mut problems) = RuleSet::from_tables(&rules.rows, &grants.rows, default);
    problems.extend(rules.unreadable.iter().chain(&grants.unreadable).cloned());
    let mut out = String::new();
    for problem in &problems {
        let _ = writeln!(out, "note: {problem}");
    }
    for (instance, occupant) in found {
        let queue = store.load_queue(&occupant.room).await?;
        let inputs = inputs_of(occupant, now);
        let services = inputs.parsed_services();
        let facts = inputs.facts(&services);
        let room_rules = set.for_room(&inputs.room, now);
        let mut decision = room_rules.decide(&facts);
        settle_from_view(&mut decision, occupant, &queue);
        let _ = writeln!(
            out,
            "{}/{} ({}){}",
            occupant.room,
            occupant.nick,
            occupant.real_jid,
            if instance.is_empty() {
                String::new()
            } else {
                format!(", governed by instance {instance}")
            }
        );
        let _ = writeln!(out, "inputs: {}", inputs.summary());
        let _ = writeln!(
            out,
            "may send now: {} (as podium last decided: {})",
            decision.permissions, occupant.permissions
        );
        out.push_str(&explain(&room_rules, &facts, &decision));
    }
    store.close().await;
    Ok(out)
}

/// A kind the evaluator left to the room's queue takes its standing from the live view: a queue
/// row, or the slot podium last granted.
fn settle_from_view(
    decision: &mut crate::rules::Decision,
    occupant: &OccupantRow,
    queue: &[QueueRow],
) {
    for media in Media::ALL {
        if !matches!(
            decision.standing(media),
            Standing::Unsettled | Standing::Approved
        ) {
            continue;
        }
        let waiting = queue
            .iter()
            .find(|q| q.nick == occupant.nick && q.media == media.to_string());
        let held = occupant
            .permissions
            .split(',')
            .any(|kind| kind.trim() == media.to_string());
        match waiting {
            Some(row) => decision.set(
                media,
                false,
                Standing::Waiting {
                    position: u32::try_from(row.position).unwrap_or(u32::MAX),
                    for_approval: row.waiting_for == "approval",
                },
            ),
            None if held => decision.set(media, true, Standing::Holding),
            None => {}
        }
    }
}

fn inputs_of(occupant: &OccupantRow, now: Timestamp) -> Inputs {
    let bare = occupant
        .real_jid
        .split_once('/')
        .map_or(occupant.real_jid.as_str(), |(bare, _)| bare);
    let claims: BTreeMap<String, String> =
        serde_json::from_str(&occupant.claims).unwrap_or_default();
    Inputs {
        room: if occupant.room_name.is_empty() {
            room_name(&occupant.room).to_owned()
        } else {
            occupant.room_name.clone()
        },
        role: occupant.role.clone(),
        affiliation: occupant.affiliation.clone(),
        real_jid: bare.to_owned(),
        user_id: occupant.user_id.clone(),
        group: occupant.user_group.clone(),
        email: occupant.user_email.clone(),
        claims,
        services: occupant
            .services
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        hand_raised_at: occupant
            .hand_raised_at
            .as_deref()
            .and_then(|t| t.parse().ok()),
        joined_at: occupant.joined_at.parse().unwrap_or(now),
        // The live view keeps no meeting id: grants scoped to a meeting (approvals) are not
        // counted here; the decision podium recorded (`decisions`) has them.
        meeting: None,
        time: now,
    }
}

fn room_name(jid: &str) -> &str {
    jid.split_once('@').map_or(jid, |(name, _)| name)
}

/// The room by JID, local part, or the name rules match (`main/breakout` for a breakout room).
fn room_is(occupant: &OccupantRow, wanted: &str) -> bool {
    occupant.room.eq_ignore_ascii_case(wanted)
        || room_name(&occupant.room).eq_ignore_ascii_case(wanted)
        || occupant.room_name.eq_ignore_ascii_case(wanted)
}

fn is_who(occupant: &OccupantRow, who: &str) -> bool {
    let bare = occupant
        .real_jid
        .split_once('/')
        .map_or(occupant.real_jid.as_str(), |(bare, _)| bare);
    occupant.nick == who
        || occupant.real_jid.eq_ignore_ascii_case(who)
        || bare.eq_ignore_ascii_case(who)
        || occupant.user_id.as_deref() == Some(who)
        || occupant
            .user_email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(who))
}
