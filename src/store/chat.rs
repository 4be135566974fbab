//! Reading the chat: history pages, conversations with unread counts, backlog after a cursor,
//! notifications, people, search and friends.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    Store, StoreError, dialect,
    messages::{Message, MessageRow, SELECT_MESSAGE},
    now, on_pool,
};
use crate::domain::{FileId, GroupId, MessageId, UserId};

/// A conversation, as read marks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversation {
    /// The one-to-one conversation with this (other) user.
    User(UserId),
    Group(GroupId),
}

/// Key of a conversation in `read_marks`: `u:{userId}` or `g:{groupId}`.
pub fn conversation_key(c: Conversation) -> String {
    match c {
        Conversation::User(u) => format!("u:{u}"),
        Conversation::Group(g) => format!("g:{g}"),
    }
}

/// One page of history, oldest first.
#[derive(Debug, Serialize)]
pub struct Page {
    pub messages: Vec<Message>,
    pub has_more: bool,
    /// How far the other participants have read (for "seen"): the partner of a one-to-one
    /// conversation, the other members of a group; absent for "All" (see README, "Seen") and when
    /// there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_marks: Option<Vec<super::ReadMark>>,
}

/// Which of a user's two private channels a backlog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Individual,
    Group,
}

/// A person as lists show them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Person {
    pub id: UserId,
    pub name: String,
    /// The avatar's file id, where the query reads it (`u.avatar`).
    #[sqlx(default)]
    pub avatar: Option<FileId>,
}

/// A stored notification row (group_created, added_to_group).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '!'`.
fn like_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// A page of the one-to-one conversation between `a` and `b`: up to `limit` messages older
    /// than `before` (newest when `None`), oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn history_between(
        &self,
        a: UserId,
        b: UserId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SELECT_MESSAGE} WHERE m.pair_lo = ? AND m.pair_hi = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?"
        ));
        let rows: Vec<MessageRow> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(a.min(b))
                .bind(a.max(b))
                .bind(before.map_or(i64::MAX, |m| m.0))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let mut page = page(rows, limit);
        self.fill_attachments(&mut page.messages).await?;
        Ok(page)
    }

    /// A page of a group's history (see [`Store::history_between`]).
    ///
    /// # Errors
    /// Database errors.
    pub async fn group_history(
        &self,
        group: GroupId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SELECT_MESSAGE} WHERE m.group_id = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?"
        ));
        let rows: Vec<MessageRow> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(group)
                .bind(before.map_or(i64::MAX, |m| m.0))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let mut page = page(rows, limit);
        self.fill_attachments(&mut page.messages).await?;
        self.attach_mentions(&mut page.messages).await?;
        Ok(page)
    }

    /// Messages on `user`'s individual or group channel with ids after `after`, oldest first, at
    /// most `limit`. `skip_own` leaves out what the user sent itself (for notifications).
    ///
    /// # Errors
    /// Database errors.
    pub async fn messages_after(
        &self,
        user: UserId,
        stream: Stream,
        after: i64,
        limit: u32,
        skip_own: bool,
    ) -> Result<Vec<Message>, StoreError> {
        let own = if skip_own { user.0 } else { 0 };
        let sql = sqlx::AssertSqlSafe(match stream {
            Stream::Individual => {
                format!(
                    "{SELECT_MESSAGE} WHERE m.recipient_id = ? AND m.id > ? AND m.sender_id <> ? ORDER BY m.id LIMIT ?"
                )
            }
            Stream::Group => format!(
                "{SELECT_MESSAGE} JOIN group_members gm ON gm.group_id = m.group_id AND gm.user_id = ? \
                 WHERE m.id > ? AND m.sender_id <> ? ORDER BY m.id LIMIT ?"
            ),
        });
        let rows: Vec<MessageRow> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(user).bind(after).bind(own).bind(i64::from(limit)).fetch_all(pool).await?
        });
        let mut messages: Vec<Message> = rows.into_iter().map(Message::from).collect();
        self.fill_attachments(&mut messages).await?;
        if stream == Stream::Group {
            self.attach_mentions(&mut messages).await?;
        }
        Ok(messages)
    }

    /// The newest message of a conversation, if any.
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_message(&self, me: UserId, c: Conversation) -> Result<Option<Message>, StoreError> {
        let page = match c {
            Conversation::User(other) => self.history_between(me, other, None, 1).await?,
            Conversation::Group(g) => self.group_history(g, None, 1).await?,
        };
        Ok(page.messages.into_iter().next())
    }

    /// Messages in a conversation newer than `after` that `me` did not send.
    ///
    /// # Errors
    /// Database errors.
    pub async fn unread(&self, me: UserId, c: Conversation, after: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => match c {
            Conversation::User(other) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE recipient_id = ? AND sender_id = ? AND id > ?",
            )
            .bind(me)
            .bind(other)
            .bind(after)
            .fetch_one(pool)
            .await?,
            Conversation::Group(g) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE group_id = ? AND sender_id <> ? AND id > ?",
            )
            .bind(g)
            .bind(me)
            .bind(after)
            .fetch_one(pool)
            .await?,
        }))
    }

    /// The other users `me` has exchanged one-to-one messages with, with the newest message id,
    /// newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn partners(&self, me: UserId) -> Result<Vec<(UserId, i64)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT partner, MAX(id) AS last_id FROM ( \
                   SELECT pair_hi AS partner, id FROM messages WHERE pair_lo = ? \
                   UNION ALL SELECT pair_lo AS partner, id FROM messages WHERE pair_hi = ? \
                 ) t GROUP BY partner ORDER BY last_id DESC",
            )
            .bind(me)
            .bind(me)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every user, by name.
    ///
    /// # Errors
    /// Database errors.
    pub async fn people(&self) -> Result<Vec<Person>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, avatar FROM users ORDER BY name_key").fetch_all(pool).await?
        }))
    }

    /// Users whose name starts with `prefix` (case-insensitive), at most `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn search_people(&self, prefix: &str, limit: u32) -> Result<Vec<Person>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name FROM users WHERE name_key LIKE ? ESCAPE '!' ORDER BY name_key LIMIT ?")
                .bind(like_prefix(&prefix.to_lowercase()))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }))
    }

    /// Groups `member` belongs to whose name starts with `prefix` (case-insensitive).
    ///
    /// # Errors
    /// Database errors.
    pub async fn search_groups(
        &self,
        member: UserId,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<(GroupId, String)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT g.id, g.name FROM chat_groups g JOIN group_members gm ON gm.group_id = g.id AND gm.user_id = ? \
                 WHERE g.name LIKE ? ESCAPE '!' ORDER BY g.name LIMIT ?",
            )
            .bind(member)
            .bind(like_prefix(prefix))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    /// The user with this name (case-insensitive: by [`crate::domain::UserName::key`]), if any.
    ///
    /// # Errors
    /// Database errors.
    pub async fn person_named(&self, name: &str) -> Result<Option<Person>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name FROM users WHERE name_key = ?").bind(name.to_lowercase()).fetch_optional(pool).await?
        }))
    }

    /// `me`'s friends, by name.
    ///
    /// # Errors
    /// Database errors.
    pub async fn friends(&self, me: UserId) -> Result<Vec<Person>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT u.id, u.name, u.avatar FROM friends f JOIN users u ON u.id = f.friend_id WHERE f.user_id = ? ORDER BY u.name_key",
            )
            .bind(me)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Adds a friend; adding one twice is not an error.
    ///
    /// # Errors
    /// Database errors.
    pub async fn add_friend(&self, me: UserId, friend: UserId) -> Result<(), StoreError> {
        let sql = dialect!(self,
            mysql: "INSERT IGNORE INTO friends (user_id, friend_id, created_at) VALUES (?, ?, ?)",
            sqlite: "INSERT OR IGNORE INTO friends (user_id, friend_id, created_at) VALUES (?, ?, ?)",
        );
        on_pool!(self, pool => sqlx::query(sql).bind(me).bind(friend).bind(now()).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Removes a friend; true if it was one.
    ///
    /// # Errors
    /// Database errors.
    pub async fn remove_friend(&self, me: UserId, friend: UserId) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("DELETE FROM friends WHERE user_id = ? AND friend_id = ?")
                .bind(me)
                .bind(friend)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Notification rows of `user` after `after`, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn events_after(&self, user: UserId, after: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, payload, created_at FROM notifications WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?",
            )
            .bind(user)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Names of users, by id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn user_names(&self, ids: &[UserId]) -> Result<std::collections::HashMap<UserId, String>, StoreError> {
        let names = self
            .names_by_id("SELECT id, name FROM users WHERE id IN (", ids.iter().map(|u| u.0))
            .await?;
        Ok(names.into_iter().map(|(id, name)| (UserId(id), name)).collect())
    }

    /// Names of groups, by id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn group_names(&self, ids: &[GroupId]) -> Result<std::collections::HashMap<GroupId, String>, StoreError> {
        let names = self
            .names_by_id(
                "SELECT id, name FROM chat_groups WHERE id IN (",
                ids.iter().map(|g| g.0),
            )
            .await?;
        Ok(names.into_iter().map(|(id, name)| (GroupId(id), name)).collect())
    }

    /// `(id, name)` rows of `select` (a query ending in `WHERE id IN (`) for `ids`.
    async fn names_by_id(
        &self,
        select: &'static str,
        ids: impl Iterator<Item = i64>,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let ids: Vec<i64> = ids.collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(select);
            let mut list = q.separated(", ");
            for id in &ids {
                list.push_bind(*id);
            }
            q.push(")");
            q.build_query_as().fetch_all(pool).await?
        }))
    }
}

fn page(mut rows: Vec<MessageRow>, limit: u32) -> Page {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    rows.reverse();
    Page {
        messages: rows.into_iter().map(Message::from).collect(),
        has_more,
        read_marks: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_prefix("a_b%c!"), "a!_b!%c!!%");
        assert_eq!(like_prefix("ann"), "ann%");
    }
}
