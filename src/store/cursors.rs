//! Per-user cursors, one row per (user, kind) in `delivery_cursors`: how far a user's
//! individual and group channels were acknowledged (backlog starts after it) and how far its
//! notifications were fetched. All start at the newest ids when the user registers, so a new user
//! is not flooded with history.

use super::{Store, StoreError, Stream, dialect, on_pool};
use crate::domain::UserId;

/// What a cursor tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Newest message acknowledged on `private-individual.message.{user}`.
    Individual,
    /// Newest message acknowledged on `private-group.message.{user}`.
    Group,
    /// Newest message already returned as a notification.
    NotifiedMessage,
    /// Newest `notifications` row already returned.
    NotifiedEvent,
}

impl Cursor {
    pub const ALL: [Cursor; 4] = [
        Cursor::Individual,
        Cursor::Group,
        Cursor::NotifiedMessage,
        Cursor::NotifiedEvent,
    ];

    pub(super) fn key(self) -> &'static str {
        match self {
            Self::Individual => "individual",
            Self::Group => "group",
            Self::NotifiedMessage => "notify_msg",
            Self::NotifiedEvent => "notify_evt",
        }
    }
}

impl Store {
    /// The cursor's position (0 when never set).
    ///
    /// # Errors
    /// Database errors.
    pub async fn cursor(&self, user: UserId, cursor: Cursor) -> Result<i64, StoreError> {
        let v: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT last_id FROM delivery_cursors WHERE user_id = ? AND kind = ?")
                .bind(user)
                .bind(cursor.key())
                .fetch_optional(pool)
                .await?
        });
        Ok(v.unwrap_or(0))
    }

    /// Moves the cursor forward to `to`; never backwards.
    ///
    /// # Errors
    /// Database errors.
    pub async fn advance_cursor(&self, user: UserId, cursor: Cursor, to: i64) -> Result<(), StoreError> {
        let sql = dialect!(self,
            mysql: "INSERT INTO delivery_cursors (user_id, kind, last_id) VALUES (?, ?, ?) \
                    ON DUPLICATE KEY UPDATE last_id = GREATEST(last_id, VALUES(last_id))",
            sqlite: "INSERT INTO delivery_cursors (user_id, kind, last_id) VALUES (?, ?, ?) \
                     ON CONFLICT (user_id, kind) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
        );
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user).bind(cursor.key()).bind(to).execute(pool).await.map(drop)?
        });
        Ok(())
    }

    /// Records that `user` received everything up to message `upto` on its individual or group
    /// channel, clamped to the newest message at or below `upto` that exists and was addressed to
    /// `user` on that stream (individual: sent to `user`; group: in a group `user` is a member of,
    /// "All" included). An id from the future, or one of somebody else's messages, therefore never
    /// acknowledges a message `user` was not yet sent. One statement; never moves backwards.
    ///
    /// # Errors
    /// Database errors.
    pub async fn acknowledge(&self, user: UserId, stream: Stream, upto: i64) -> Result<(), StoreError> {
        // `newest` is the newest addressed message <= upto; its placeholders follow user and kind.
        let (cursor, newest) = match stream {
            Stream::Individual => (
                Cursor::Individual,
                "SELECT MAX(id) FROM messages WHERE recipient_id = ? AND id <= ?",
            ),
            // One indexed lookup per group the user is in, rather than a scan of every message of
            // "All" up to `upto`.
            Stream::Group => (
                Cursor::Group,
                "SELECT MAX(newest) FROM (SELECT (SELECT MAX(m.id) FROM messages m                  WHERE m.group_id = gm.group_id AND m.id <= ?) AS newest                  FROM group_members gm WHERE gm.user_id = ?) AS per_group",
            ),
        };
        let sql = sqlx::AssertSqlSafe(dialect!(self,
            mysql: format!("INSERT INTO delivery_cursors (user_id, kind, last_id) VALUES (?, ?, COALESCE(({newest}), 0)) \
                    ON DUPLICATE KEY UPDATE last_id = GREATEST(last_id, VALUES(last_id))"),
            sqlite: format!("INSERT INTO delivery_cursors (user_id, kind, last_id) VALUES (?, ?, COALESCE(({newest}), 0)) \
                     ON CONFLICT (user_id, kind) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)"),
        ));
        on_pool!(self, pool => {
            let q = sqlx::query(sql).bind(user).bind(cursor.key());
            let q = match stream {
                Stream::Individual => q.bind(user).bind(upto),
                Stream::Group => q.bind(upto).bind(user),
            };
            q.execute(pool).await.map(drop)?
        });
        Ok(())
    }

    /// Marks a conversation (`u:{userId}` or `g:{groupId}`) read up to `message_id`; never backwards.
    ///
    /// # Errors
    /// Database errors.
    pub async fn mark_read(&self, user: UserId, conversation: &str, message_id: i64) -> Result<(), StoreError> {
        let sql = dialect!(self,
            mysql: "INSERT INTO read_marks (user_id, conversation, last_read_id) VALUES (?, ?, ?) \
                    ON DUPLICATE KEY UPDATE last_read_id = GREATEST(last_read_id, VALUES(last_read_id))",
            sqlite: "INSERT INTO read_marks (user_id, conversation, last_read_id) VALUES (?, ?, ?) \
                     ON CONFLICT (user_id, conversation) DO UPDATE SET last_read_id = MAX(last_read_id, excluded.last_read_id)",
        );
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user).bind(conversation).bind(message_id).execute(pool).await.map(drop)?
        });
        Ok(())
    }

    /// The caller's read marks: conversation → last read message id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn read_marks(&self, user: UserId) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT conversation, last_read_id FROM read_marks WHERE user_id = ?")
                .bind(user)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().collect())
    }
}
