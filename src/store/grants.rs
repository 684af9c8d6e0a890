//! Grants podium writes itself: a moderator's approval in Jitsi's A/V moderation becomes a row of
//! `grants` (`source = 'av_moderation'`), and its withdrawal removes that row. Admins see and edit
//! these rows like their own; the usual edit detection (version counter, NOTIFY) makes every podium
//! instance re-decide.

use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use super::{Store, StoreError};

/// `grants.source` of the rows podium writes for A/V-moderation approvals.
pub const AV_MODERATION: &str = "av_moderation";

/// Who an approval is for, where and for what: the key of an approval's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalKey {
    /// The room's name, as rules match it (`class-7`, `lecture/6f1c…`).
    pub room: String,
    /// `user` (the token's user id) or `jid` (the real bare JID).
    pub who: String,
    /// The user id or bare JID.
    pub who_value: String,
    /// `audio`, `video` or `screen`.
    pub media: String,
}

/// A change to the approval rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChange {
    /// A moderator approved: the row for `key` is (re)written, ending at `expires_at`.
    Approve {
        /// What is approved.
        key: ApprovalKey,
        /// RFC 3339.
        expires_at: String,
        /// The moderator's real bare JID.
        granted_by: String,
        /// Says where the row came from, for admins.
        note: String,
        /// The meeting the approval is for: the row counts only while the room holds it.
        meeting: String,
    },
    /// A moderator withdrew the approval: the row for the key is removed.
    Withdraw(ApprovalKey),
}

impl Store {
    /// Applies one approval change in a transaction; an approval given twice keeps one row, with the
    /// later expiry.
    pub async fn apply_grant_change(&self, change: &GrantChange) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let key = match change {
            GrantChange::Approve { key, .. } | GrantChange::Withdraw(key) => key,
        };
        sqlx::query(
            "DELETE FROM grants WHERE source = $1 AND room = $2 AND who = $3 AND who_value = $4 \
             AND media = $5",
        )
        .bind(AV_MODERATION)
        .bind(&key.room)
        .bind(&key.who)
        .bind(&key.who_value)
        .bind(&key.media)
        .execute(&mut *tx)
        .await?;
        if let GrantChange::Approve {
            key,
            expires_at,
            granted_by,
            note,
            meeting,
        } = change
        {
            sqlx::query(
                "INSERT INTO grants (room, who, who_value, media, expires_at, granted_by, note, source, \
                 meeting) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&key.room)
            .bind(&key.who)
            .bind(&key.who_value)
            .bind(&key.media)
            .bind(expires_at)
            .bind(granted_by)
            .bind(note)
            .bind(AV_MODERATION)
            .bind(meeting)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Writes approval changes in order, off the decision path, and pokes the rule watcher after each
/// so this instance reloads at once (others hear it through NOTIFY or their poll). A failed write is
/// logged and dropped: the moderator can approve again, and nothing is granted that was not written.
pub async fn write_grant_changes(
    store: Store,
    mut changes: mpsc::Receiver<GrantChange>,
    written: std::sync::Arc<Notify>,
) {
    while let Some(change) = changes.recv().await {
        match store.apply_grant_change(&change).await {
            Ok(()) => {
                info!(change = ?change, "approval written to grants");
                written.notify_one();
            }
            Err(error) => warn!(%error, change = ?change, "approval not written to grants"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_approve_twice_keeps_one_row_and_withdraw_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("g.db")).await.unwrap();
        let key = ApprovalKey {
            room: "class-7".into(),
            who: "user".into(),
            who_value: "u-17".into(),
            media: "audio".into(),
        };
        let approve = |expires_at: &str| GrantChange::Approve {
            key: key.clone(),
            expires_at: expires_at.into(),
            granted_by: "teacher@localhost".into(),
            note: "A/V moderation".into(),
            meeting: "m-1".into(),
        };
        let version = store.rules_version().await.unwrap();
        store
            .apply_grant_change(&approve("2026-11-23T11:00:00Z"))
            .await
            .unwrap();
        store
            .apply_grant_change(&approve("2026-11-23T12:00:00Z"))
            .await
            .unwrap();
        let rows = store.load_grants().await.unwrap().rows;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].expires_at, "2026-11-23T12:00:00Z");
        assert_eq!(rows[0].granted_by, "teacher@localhost");
        assert_eq!(rows[0].meeting.as_deref(), Some("m-1"));
        assert_eq!(rows[0].source, AV_MODERATION);
        assert!(store.rules_version().await.unwrap() > version);

        // An admin's own grant for the same person is never touched by a withdrawal.
        sqlx::query(
            "INSERT INTO grants (room, who, who_value, media, expires_at, granted_by) \
             VALUES ('class-7', 'user', 'u-17', 'audio', '2026-11-23T13:00:00Z', 'admin')",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        store
            .apply_grant_change(&GrantChange::Withdraw(key.clone()))
            .await
            .unwrap();
        let rows = store.load_grants().await.unwrap().rows;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].granted_by, "admin");
    }
}
