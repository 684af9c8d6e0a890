//! podium's live view in SQL: the `occupants` it governs and the `queue` of each room, so admins
//! see queue positions with a `SELECT` and `podium explain` can evaluate an occupant from another
//! process. Written only by podium, off the decision path, through the same writer as the audit log;
//! each instance writes and clears only its own rows.

use std::sync::Arc;

use super::AuditText;

/// One row of `occupants`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct OccupantRow {
    /// Room JID.
    pub room: String,
    /// The name rules match: the JID's local part; `main/breakout` for a breakout room.
    pub room_name: String,
    /// Nick.
    pub nick: String,
    /// Real full JID.
    pub real_jid: String,
    /// MUC role.
    pub role: String,
    /// MUC affiliation.
    pub affiliation: String,
    /// JWT user id.
    pub user_id: Option<String>,
    /// JWT user name.
    pub user_name: Option<String>,
    /// JWT email.
    pub user_email: Option<String>,
    /// JWT group.
    pub user_group: Option<String>,
    /// Other claims, a JSON object.
    pub claims: String,
    /// Trusted services, comma-separated.
    pub services: String,
    /// RFC 3339.
    pub joined_at: String,
    /// RFC 3339, while the hand is up.
    pub hand_raised_at: Option<String>,
    /// What the occupant may send now.
    pub permissions: String,
    /// Per-kind reasons.
    pub reasons: String,
}

/// One row of `queue`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueRow {
    /// Room JID.
    pub room: String,
    /// The kind waited for.
    pub media: String,
    /// 1 is next.
    pub position: i64,
    /// Nick.
    pub nick: String,
    /// Real full JID.
    pub real_jid: String,
    /// The capped or request rule the occupant waits under.
    pub rule_id: i64,
    /// `slot` or `approval`.
    pub waiting_for: String,
    /// RFC 3339, while the hand is up.
    pub hand_raised_at: Option<String>,
    /// RFC 3339.
    pub joined_at: String,
}

/// A change to the live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewWrite {
    /// Forget every row of this instance (podium resyncs, or stops).
    Clear,
    /// Insert or replace an occupant.
    Occupant(Box<OccupantRow>),
    /// An occupant's decision changed and the rest of its row stands: only `permissions` and
    /// `reasons` are written (a rule edit changes 100,000 of them at once).
    Decided {
        /// Room JID.
        room: String,
        /// Nick.
        nick: String,
        /// What the occupant may send now.
        permissions: String,
        /// Per-kind reasons (the text the audit record refers to).
        reasons: Arc<AuditText>,
    },
    /// An occupant left.
    Gone {
        /// Room JID.
        room: String,
        /// Nick.
        nick: String,
    },
    /// The room's queue is now exactly these rows.
    Queue {
        /// Room JID.
        room: String,
        /// Rows, any order.
        rows: Vec<QueueRow>,
    },
}
