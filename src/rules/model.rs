//! The rule model: one row of the `rules` table, checked and typed.
//!
//! A row says: in rooms matching `room`, occupants matching `who`/`who_value` are allowed (or denied)
//! to send `media`, with a `priority`. Rows are written by admins with plain SQL, so a row podium cannot
//! understand is not an error of podium's: [`Rule::from_row`] says precisely what is wrong, the caller
//! logs it with the row id and goes on without it.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use globset::{Glob, GlobBuilder, GlobMatcher};

use super::window::Window;
use crate::media::MediaSet;
use crate::rooms::{Affiliation, Role};

/// A row of the `rules` table as stored (every column an admin may write).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RuleRow {
    /// Primary key; named in every log line about the row.
    pub id: i64,
    /// `*`, an exact room name, or a glob with `*` and `?`.
    pub room: String,
    /// `everyone`, `role`, `affiliation`, `user`, `group` or `jid`.
    pub who: String,
    /// The value for `who` (a role, an affiliation, a JWT user id or group, a bare-JID glob).
    pub who_value: Option<String>,
    /// `audio`, `video`, `screen`, a comma list of them, or `all`.
    pub media: String,
    /// `allow`, `deny` or `request`.
    pub effect: String,
    /// Higher wins.
    pub priority: i64,
    /// 0 disables the row without deleting it.
    pub enabled: i64,
    /// 1 puts the row in dry-run: podium logs and audits what it *would* change, and enforces as if
    /// the row did not exist.
    pub dry_run: i64,
    /// At most this many occupants of a room hold each kind through capped rules; `NULL`: no cap.
    pub cap: Option<i64>,
    /// RFC 3339: the rule is in force from then on.
    pub not_before: Option<String>,
    /// RFC 3339: the rule is in force until then.
    pub not_after: Option<String>,
    /// A weekly schedule, e.g. `mon-fri 09:00-17:00` (see [`Window`]).
    pub schedule: Option<String>,
    /// The IANA time zone of `schedule`; UTC when empty.
    pub time_zone: Option<String>,
}

/// Which rooms a rule applies to.
#[derive(Debug, Clone)]
pub enum RoomPattern {
    /// `*`: every room.
    All,
    /// One room, by name (compared case-insensitively, as Prosody stores room names lower-case).
    Exact(String),
    /// A glob where `*` is any run of characters and `?` one character.
    Glob(String),
}

/// Whom a rule applies to.
#[derive(Debug, Clone)]
pub enum Subject {
    /// Every occupant.
    Everyone,
    /// Occupants with this MUC role.
    Role(Role),
    /// Occupants with this MUC affiliation.
    Affiliation(Affiliation),
    /// The JWT `context.user.id` the server verified.
    User(String),
    /// The JWT `context.group` the server verified.
    Group(String),
    /// Real bare JIDs matching a glob (`*@guest.meet.example`).
    Jid(GlobMatcher),
    /// The real JID's domain, or a glob of domains (guests on the anonymous domain vs. users).
    Domain(GlobMatcher),
    /// The JWT `context.user.email`, or a glob (`*@example.com`), case-insensitive.
    Email(GlobMatcher),
    /// A token claim: `user.<key>` or `features.<key>` with this value (`true` when none is given).
    Claim {
        /// `user.<key>` or `features.<key>`.
        name: String,
        /// The value it must have.
        value: String,
    },
    /// A Jitsi service component recognised from its presence features, trusted only from the
    /// configured domains (`rules.trusted_service_domains`, like jicofo's `trusted-domains`).
    Service(Service),
}

/// The Jitsi services that announce themselves in presence `<features>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Recording and live streaming (`http://jitsi.org/protocol/jibri`).
    Jibri,
    /// The SIP gateway (`http://jitsi.org/protocol/jigasi`).
    Jigasi,
    /// Transcription (`http://jitsi.org/protocol/transcriber`).
    Transcriber,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 3] = [Service::Jibri, Service::Jigasi, Service::Transcriber];

    /// The presence feature that announces it (jicofo `ChatRoomMemberImpl`, jitsi-xmpp-extensions
    /// `JibriStatusPacketExt`/`FeaturesExtension`).
    pub fn feature(self) -> &'static str {
        match self {
            Service::Jibri => "http://jitsi.org/protocol/jibri",
            Service::Jigasi => "http://jitsi.org/protocol/jigasi",
            Service::Transcriber => "http://jitsi.org/protocol/transcriber",
        }
    }

    /// The `who_value` naming it.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Jibri => "jibri",
            Service::Jigasi => "jigasi",
            Service::Transcriber => "transcriber",
        }
    }
}

impl std::str::FromStr for Service {
    type Err = String;

    fn from_str(text: &str) -> Result<Service, String> {
        Service::ALL
            .into_iter()
            .find(|service| service.as_str() == text)
            .ok_or_else(|| {
                format!("unknown service {text:?} (expected jibri, jigasi or transcriber)")
            })
    }
}

/// What a rule decides for its kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The occupant may send.
    Allow,
    /// The occupant may not send.
    Deny,
    /// The occupant may ask (raise a hand, Jitsi's `jitsi_participant_raisedHand`), and is then
    /// granted by a free slot of the rule's cap, or by a grant (a moderator's, an admin's).
    Request,
}

impl Effect {
    /// The `effect` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::Request => "request",
        }
    }

    /// Order at equal priority: the stricter first (deny, then request, then allow).
    pub(crate) fn strictness(self) -> u8 {
        match self {
            Effect::Deny => 0,
            Effect::Request => 1,
            Effect::Allow => 2,
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The row id.
    pub id: i64,
    /// Rooms it applies to.
    pub room: RoomPattern,
    /// Occupants it applies to.
    pub subject: Subject,
    /// `who` and `who_value` as written, for explanations (`role moderator`).
    pub who: String,
    /// The kinds it decides.
    pub media: MediaSet,
    /// What it decides.
    pub effect: Effect,
    /// Its weight against other matching rules.
    pub priority: i64,
    /// At most this many holders of each kind in a room (allow and request rules).
    pub cap: Option<u32>,
    /// In dry-run: evaluated for "would", never enforced.
    pub dry_run: bool,
    /// When it is in force; `None`: always.
    pub window: Option<Window>,
}

/// Why a row was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} {id} skipped: {reason}")]
pub struct RuleProblem {
    /// `rule` or `grant`: the table the row is in.
    pub table: &'static str,
    /// The row id.
    pub id: i64,
    /// What is wrong, naming the column.
    pub reason: String,
}

/// Builds a glob where only `*` and `?` are special (case-insensitive), so room names like
/// `[acme]standup` stay literal.
///
/// Compiled matchers are kept by pattern: 10,000 rules often share a few globs, and a rule edit
/// rebuilds the whole set, so compiling each once (not once per rule and per edit) takes most of
/// the time out of loading rules (a regex compile each).
pub(crate) fn literal_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    /// Distinct patterns kept; past this the cache starts afresh.
    const KEPT: usize = 4096;
    static COMPILED: LazyLock<Mutex<HashMap<String, GlobMatcher>>> = LazyLock::new(Mutex::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(matcher) = compiled.get(pattern) {
        return Ok(matcher.clone());
    }
    let matcher = glob(pattern)?.compile_matcher();
    if compiled.len() >= KEPT {
        compiled.clear();
    }
    compiled.insert(pattern.to_owned(), matcher.clone());
    Ok(matcher)
}

/// The [`Glob`] behind [`literal_glob`], for building a `GlobSet`.
pub(crate) fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    let mut escaped = String::with_capacity(pattern.len() + 8);
    for c in pattern.to_lowercase().chars() {
        match c {
            '[' | ']' | '{' | '}' => {
                escaped.push('[');
                escaped.push(c);
                escaped.push(']');
            }
            c => escaped.push(c),
        }
    }
    GlobBuilder::new(&escaped)
        .literal_separator(false)
        .backslash_escape(false)
        .build()
}

impl RoomPattern {
    /// Whether this is `*` (every room).
    pub fn is_all(&self) -> bool {
        matches!(self, RoomPattern::All)
    }

    /// Reads a `room` column: `*`, an exact name, or a glob with `*` and `?`.
    pub fn parse(text: &str) -> Result<RoomPattern, String> {
        let text = text.trim();
        if text.is_empty() {
            Err("room is empty (use '*' for every room)".into())
        } else if text.contains('/')
            && (text.matches('/').count() > 1 || text.starts_with('/') || text.ends_with('/'))
        {
            Err(format!(
                "room {text:?}: a breakout room is named main/breakout (e.g. 'lecture/*', '*/*')"
            ))
        } else if text == "*" {
            Ok(RoomPattern::All)
        } else if text.contains(['*', '?']) {
            literal_glob(text).map_err(|e| format!("room glob {text:?}: {e}"))?;
            Ok(RoomPattern::Glob(text.to_lowercase()))
        } else {
            Ok(RoomPattern::Exact(text.to_lowercase()))
        }
    }

    /// Whether the pattern is written for breakout rooms (`main/breakout`, `lecture/*`, `*/*`): it
    /// holds a `/`, which no main room's name does.
    pub fn is_for_breakout(&self) -> bool {
        match self {
            RoomPattern::All => false,
            RoomPattern::Exact(text) | RoomPattern::Glob(text) => text.contains('/'),
        }
    }

    /// Whether this pattern names `room` itself (an exact name or a glob, not `*`).
    pub fn names(&self, room: &str) -> bool {
        match self {
            RoomPattern::All => false,
            RoomPattern::Exact(name) => *name == room.to_lowercase(),
            RoomPattern::Glob(pattern) => {
                literal_glob(pattern).is_ok_and(|g| g.is_match(room.to_lowercase()))
            }
        }
    }
}

impl Subject {
    /// Reads the `who` and `who_value` columns.
    pub fn parse(who: &str, who_value: Option<&str>) -> Result<Subject, String> {
        let value = who_value.map(str::trim).filter(|v| !v.is_empty());
        let need = |what: &str| {
            value.ok_or_else(|| format!("who '{}' needs who_value ({what})", who.trim()))
        };
        let glob_value =
            |glob: &str| literal_glob(glob).map_err(|e| format!("who_value glob {glob:?}: {e}"));
        Ok(match who.trim().to_ascii_lowercase().as_str() {
            "everyone" | "*" => Subject::Everyone,
            "role" => Subject::Role(
                need("moderator, participant or visitor")?
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|e: String| format!("who_value: {e}"))?,
            ),
            "affiliation" => Subject::Affiliation(
                need("owner, admin, member, none or outcast")?
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|e: String| format!("who_value: {e}"))?,
            ),
            "user" => Subject::User(need("a JWT context.user.id")?.to_owned()),
            "group" => Subject::Group(need("a JWT context.group")?.to_owned()),
            "jid" => Subject::Jid(glob_value(need(
                "a bare JID or glob such as *@guest.meet.example",
            )?)?),
            "domain" => Subject::Domain(glob_value(need(
                "a domain or glob such as guest.meet.example",
            )?)?),
            "email" => Subject::Email(glob_value(need(
                "a JWT email or glob such as *@example.com",
            )?)?),
            "claim" => {
                let text = need("user.<key>=<value> or features.<key>[=<value>]")?;
                let (name, value) = text.split_once('=').unwrap_or((text, "true"));
                let name = name.trim();
                let key = name
                    .strip_prefix("user.")
                    .or_else(|| name.strip_prefix("features."));
                if key.is_none_or(str::is_empty) {
                    return Err(format!(
                        "who_value {text:?}: a claim is user.<key>=<value> or features.<key>[=<value>]"
                    ));
                }
                Subject::Claim {
                    name: name.to_owned(),
                    value: value.trim().to_owned(),
                }
            }
            "service" => Subject::Service(
                need("jibri, jigasi or transcriber")?
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|e: String| format!("who_value: {e}"))?,
            ),
            "nick" | "name" | "display_name" => {
                return Err(format!(
                    "who {:?}: rules never key on the nick or display name, which clients choose; \
                     use user, email, claim, jid or domain",
                    who.trim()
                ));
            }
            other => {
                return Err(format!(
                    "who {other:?} is not one of everyone, role, affiliation, user, group, email, claim, jid, domain, service"
                ));
            }
        })
    }
}

fn who_text(who: &str, value: Option<&str>) -> String {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => format!("{} {value}", who.trim()),
        None => who.trim().to_owned(),
    }
}

fn parse_media(text: &str) -> Result<MediaSet, String> {
    let media = MediaSet::parse_list(text).map_err(|e| format!("media: {e}"))?;
    if media.is_empty() {
        return Err("media is empty (use audio, video, screen or all)".into());
    }
    Ok(media)
}

impl Rule {
    /// Checks a row; a problem names the column and the accepted values.
    pub fn from_row(row: &RuleRow) -> Result<Option<Rule>, RuleProblem> {
        let problem = |reason: String| RuleProblem {
            table: "rule",
            id: row.id,
            reason,
        };
        if row.enabled == 0 {
            return Ok(None);
        }
        let room = RoomPattern::parse(&row.room).map_err(problem)?;
        let subject = Subject::parse(&row.who, row.who_value.as_deref()).map_err(problem)?;
        let media = parse_media(&row.media).map_err(problem)?;
        let window = Window::from_columns(
            row.not_before.as_deref(),
            row.not_after.as_deref(),
            row.schedule.as_deref(),
            row.time_zone.as_deref(),
        )
        .map_err(problem)?;
        let effect = match row.effect.trim().to_ascii_lowercase().as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            "request" => Effect::Request,
            other => {
                return Err(problem(format!(
                    "effect {other:?} is not allow, deny or request"
                )));
            }
        };
        let cap = match row.cap {
            None => None,
            Some(cap) if cap < 0 => {
                return Err(problem(format!(
                    "cap {cap} is negative (use a number of holders, or NULL for no cap)"
                )));
            }
            // A cap on a deny rule means nothing; `rules check` warns, the deny stays in force.
            Some(_) if effect == Effect::Deny => None,
            Some(cap) => Some(u32::try_from(cap).unwrap_or(u32::MAX)),
        };
        Ok(Some(Rule {
            id: row.id,
            room,
            subject,
            who: who_text(&row.who, row.who_value.as_deref()),
            media,
            effect,
            priority: row.priority,
            cap,
            dry_run: row.dry_run != 0,
            window,
        }))
    }
}

/// A row of the `grants` table: a temporary grant admins, tools or moderators insert.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantRow {
    /// Primary key.
    pub id: i64,
    /// As `rules.room`.
    pub room: String,
    /// As `rules.who`.
    pub who: String,
    /// As `rules.who_value`.
    pub who_value: Option<String>,
    /// The kinds granted.
    pub media: String,
    /// RFC 3339: the grant ends then.
    pub expires_at: String,
    /// Who granted.
    pub granted_by: String,
    /// Who wrote the row: `sql` (admins, tools) or `av_moderation` (a moderator's approval).
    #[sqlx(default)]
    pub source: String,
    /// The Jitsi meeting the grant is for; `NULL`: any (see [`Grant::meeting`]).
    #[sqlx(default)]
    pub meeting: Option<String>,
}

/// A checked grant.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The row id.
    pub id: i64,
    /// Rooms it applies to.
    pub room: RoomPattern,
    /// Whom it applies to.
    pub subject: Subject,
    /// `who` and `who_value` as written, for explanations.
    pub who: String,
    /// The kinds it grants.
    pub media: MediaSet,
    /// When it ends.
    pub expires_at: jiff::Timestamp,
    /// Who granted.
    pub granted_by: String,
    /// A moderator's A/V-moderation approval (`source = 'av_moderation'`): it lets the occupant in
    /// only where a `request` rule decides the kind, and under that rule's cap (see
    /// [`crate::rules::queue`]); it never lifts a deny or an `allow` rule's cap.
    pub approval: bool,
    /// The Jitsi meeting (the room's meeting id) the grant is for: it counts only while the room
    /// holds that meeting, so it ends with the meeting. `None`: any meeting (an admin extends an
    /// approval beyond its meeting by setting the column to NULL).
    pub meeting: Option<String>,
}

impl Grant {
    /// Checks a row. An expired grant is valid (it just no longer counts).
    pub fn from_row(row: &GrantRow) -> Result<Grant, RuleProblem> {
        let problem = |reason: String| RuleProblem {
            table: "grant",
            id: row.id,
            reason,
        };
        let expires_at = row
            .expires_at
            .trim()
            .parse::<jiff::Timestamp>()
            .map_err(|e| {
                problem(format!(
                    "expires_at {:?} is not an RFC 3339 time such as 2026-12-01T10:00:00Z: {e}",
                    row.expires_at
                ))
            })?;
        Ok(Grant {
            id: row.id,
            room: RoomPattern::parse(&row.room).map_err(problem)?,
            subject: Subject::parse(&row.who, row.who_value.as_deref()).map_err(problem)?,
            who: who_text(&row.who, row.who_value.as_deref()),
            media: parse_media(&row.media).map_err(problem)?,
            expires_at,
            granted_by: row.granted_by.clone(),
            approval: row.source == crate::store::AV_MODERATION,
            meeting: row.meeting.clone().filter(|m| !m.is_empty()),
        })
    }
}

/// A plain enabled row for tests: (id, room, who, who_value, media, effect, priority).
#[cfg(test)]
pub(crate) fn test_row(
    id: i64,
    room: &str,
    who: &str,
    value: Option<&str>,
    media: &str,
    effect: &str,
    priority: i64,
) -> RuleRow {
    RuleRow {
        id,
        room: room.into(),
        who: who.into(),
        who_value: value.map(Into::into),
        media: media.into(),
        effect: effect.into(),
        priority,
        enabled: 1,
        dry_run: 0,
        cap: None,
        not_before: None,
        not_after: None,
        schedule: None,
        time_zone: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(room: &str, who: &str, who_value: Option<&str>, media: &str, effect: &str) -> RuleRow {
        RuleRow {
            id: 7,
            room: room.into(),
            who: who.into(),
            who_value: who_value.map(Into::into),
            media: media.into(),
            effect: effect.into(),
            priority: 0,
            enabled: 1,
            dry_run: 0,
            cap: None,
            not_before: None,
            not_after: None,
            schedule: None,
            time_zone: None,
        }
    }

    fn problem(r: RuleRow) -> String {
        Rule::from_row(&r).unwrap_err().to_string()
    }

    #[test]
    fn test_valid_rows() {
        let rule = Rule::from_row(&row("*", "everyone", None, "all", "allow"))
            .unwrap()
            .unwrap();
        assert!(matches!(rule.room, RoomPattern::All));
        assert_eq!(rule.media, MediaSet::ALL);
        let rule = Rule::from_row(&row("Town-*", "role", Some("Moderator"), "screen", "deny"))
            .unwrap()
            .unwrap();
        assert!(matches!(rule.room, RoomPattern::Glob(ref g) if g == "town-*"));
        assert!(matches!(rule.subject, Subject::Role(Role::Moderator)));
        assert_eq!(rule.effect, Effect::Deny);
        let rule = Rule::from_row(&row(
            "[acme]standup",
            "jid",
            Some("*@guest.localhost"),
            "audio",
            "allow",
        ))
        .unwrap()
        .unwrap();
        assert!(matches!(rule.room, RoomPattern::Exact(ref r) if r == "[acme]standup"));
    }

    #[test]
    fn test_identity_rows() {
        let subject = |who: &str, value: &str| {
            Rule::from_row(&row("*", who, Some(value), "all", "allow"))
                .unwrap()
                .unwrap()
                .subject
        };
        assert!(matches!(
            subject("domain", "guest.localhost"),
            Subject::Domain(_)
        ));
        assert!(matches!(
            subject("email", "*@Example.com"),
            Subject::Email(_)
        ));
        assert!(matches!(
            subject("claim", "user.department = sales"),
            Subject::Claim { ref name, ref value } if name == "user.department" && value == "sales"
        ));
        assert!(matches!(
            subject("claim", "features.recording"),
            Subject::Claim { ref value, .. } if value == "true"
        ));
        assert!(matches!(
            subject("service", "Jibri"),
            Subject::Service(Service::Jibri)
        ));
        assert_eq!(
            problem(row("*", "claim", Some("room=x"), "all", "allow")),
            "rule 7 skipped: who_value \"room=x\": a claim is user.<key>=<value> or features.<key>[=<value>]"
        );
        assert_eq!(
            problem(row("*", "service", Some("fax"), "all", "allow")),
            "rule 7 skipped: who_value: unknown service \"fax\" (expected jibri, jigasi or transcriber)"
        );
        assert_eq!(
            problem(row("*", "nick", Some("boss"), "all", "allow")),
            "rule 7 skipped: who \"nick\": rules never key on the nick or display name, which clients choose; use user, email, claim, jid or domain"
        );
    }

    #[test]
    fn test_disabled_row_is_not_a_problem() {
        let mut r = row("*", "everyone", None, "all", "allow");
        r.enabled = 0;
        assert!(Rule::from_row(&r).unwrap().is_none());
    }

    #[test]
    fn test_invalid_rows_name_the_column() {
        assert_eq!(
            problem(row("", "everyone", None, "all", "allow")),
            "rule 7 skipped: room is empty (use '*' for every room)"
        );
        assert_eq!(
            problem(row("lecture/", "everyone", None, "all", "allow")),
            "rule 7 skipped: room \"lecture/\": a breakout room is named main/breakout (e.g. 'lecture/*', '*/*')"
        );
        assert!(problem(row("a/b/c", "everyone", None, "all", "allow")).contains("main/breakout"));
        assert!(Rule::from_row(&row("lecture/*", "everyone", None, "all", "allow")).is_ok());
        assert_eq!(
            problem(row("*", "wizard", None, "all", "allow")),
            "rule 7 skipped: who \"wizard\" is not one of everyone, role, affiliation, user, group, email, claim, jid, domain, service"
        );
        assert_eq!(
            problem(row("*", "role", None, "all", "allow")),
            "rule 7 skipped: who 'role' needs who_value (moderator, participant or visitor)"
        );
        assert_eq!(
            problem(row("*", "role", Some("king"), "all", "allow")),
            "rule 7 skipped: who_value: unknown Role \"king\" (expected one of: moderator participant visitor none )"
        );
        assert_eq!(
            problem(row("*", "everyone", None, "smell", "allow")),
            "rule 7 skipped: media: unknown media kind \"smell\" (expected audio, video, screen, all or none)"
        );
        assert_eq!(
            problem(row("*", "everyone", None, "none", "allow")),
            "rule 7 skipped: media is empty (use audio, video, screen or all)"
        );
        assert_eq!(
            problem(row("*", "everyone", None, "audio", "maybe")),
            "rule 7 skipped: effect \"maybe\" is not allow, deny or request"
        );
    }
}
