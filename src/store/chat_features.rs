//! Richer messages: one message by id, edits and deletions (each with its broadcast job in the
//! same transaction), mentions, read marks as others see them. Anonymous questions are in
//! `questions.rs`.

use std::collections::HashMap;

use serde::Serialize;

use super::{
    Conversation, InsertedId, Store, StoreError, conversation_key, insert_outbox,
    messages::{Destination, Mention, Message, MessageRow, SELECT_MESSAGE, record_mentions},
    now, on_pool,
};
use crate::domain::{GroupId, MessageBody, MessageId, UserId, chat_features::MAX_MENTIONS};

/// How far another participant has read a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReadMark {
    pub user_id: UserId,
    pub name: String,
    pub up_to: i64,
}

/// Who sent a stored message and where it went, for the sender-only checks of edit and delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authored {
    pub sender: UserId,
    pub to: Destination,
}

/// A change written with its broadcast job: the message as it is now, and the outbox row.
pub struct Changed {
    pub message: Option<Message>,
    pub outbox_id: i64,
    pub job: String,
}

impl Store {
    /// Fills in the mentions of `messages` (one query for all of them).
    ///
    /// # Errors
    /// Database errors.
    pub(super) async fn attach_mentions(&self, messages: &mut [Message]) -> Result<(), StoreError> {
        let ids: Vec<MessageId> = messages.iter().filter(|m| m.group_id.is_some()).map(|m| m.id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rows: Vec<(MessageId, UserId, String)> = on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT mm.message_id, u.id, u.name FROM message_mentions mm JOIN users u ON u.id = mm.user_id \
                 WHERE mm.message_id IN (",
            );
            let mut list = q.separated(", ");
            for id in &ids {
                list.push_bind(*id);
            }
            q.push(") ORDER BY mm.message_id, u.name_key");
            q.build_query_as().fetch_all(pool).await?
        });
        let mut by_message: HashMap<MessageId, Vec<Mention>> = HashMap::new();
        for (m, id, name) in rows {
            by_message.entry(m).or_default().push(Mention { id, name });
        }
        for m in messages {
            m.mentions = by_message.remove(&m.id).unwrap_or_default();
        }
        Ok(())
    }

    /// The members of `group` that `candidates` name (from
    /// [`crate::domain::chat_features::mention_candidates`]): for each `@`, the longest candidate
    /// that is a member's name key. Each member once, never `skip` (the sender of a named message;
    /// an anonymous asker who names itself is mentioned like anyone, or the missing mention would
    /// name it), at most [`MAX_MENTIONS`].
    ///
    /// # Errors
    /// Database errors.
    pub async fn members_named(
        &self,
        group: GroupId,
        candidates: &[Vec<String>],
        skip: Option<UserId>,
    ) -> Result<Vec<Mention>, StoreError> {
        let keys: Vec<&String> = candidates.iter().flatten().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(UserId, String, String)> = on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT u.id, u.name, u.name_key FROM users u \
                 JOIN group_members gm ON gm.user_id = u.id AND gm.group_id = ",
            );
            q.push_bind(group).push(" WHERE u.name_key IN (");
            let mut list = q.separated(", ");
            for k in &keys {
                list.push_bind(k.as_str());
            }
            q.push(")");
            q.build_query_as().fetch_all(pool).await?
        });
        let found: HashMap<String, Mention> = rows
            .into_iter()
            .map(|(id, name, key)| (key, Mention { id, name }))
            .collect();
        let mut out: Vec<Mention> = Vec::new();
        for at in candidates {
            if let Some(m) = at.iter().find_map(|k| found.get(k))
                && Some(m.id) != skip
                && !out.iter().any(|o| o.id == m.id)
                && out.len() < MAX_MENTIONS
            {
                out.push(m.clone());
            }
        }
        Ok(out)
    }

    /// One message as clients see it, if it exists.
    ///
    /// # Errors
    /// Database errors.
    pub async fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT_MESSAGE} WHERE m.id = ?"));
        let row: Option<MessageRow> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        let mut found: Vec<Message> = row.map(Message::from).into_iter().collect();
        self.attach_mentions(&mut found).await?;
        Ok(found.pop())
    }

    /// Who sent message `id` (also of an anonymous question: for the sender-only checks, never
    /// shown) and where it went.
    ///
    /// # Errors
    /// Database errors.
    pub async fn authored(&self, id: MessageId) -> Result<Option<Authored>, StoreError> {
        let row: Option<(UserId, Option<UserId>, Option<GroupId>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT sender_id, recipient_id, group_id FROM messages WHERE id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(sender, recipient, group)| {
            let to = match (recipient, group) {
                (Some(u), _) => Destination::User(u),
                (None, Some(g)) => Destination::Group(g),
                (None, None) => return None,
            };
            Some(Authored { sender, to })
        }))
    }

    /// Replaces the body of message `id`, sets its `edited_at` and its mentions (an edit notifies
    /// nobody), and writes the broadcast job `job` builds from the changed message, in one
    /// transaction. `message` is `None` when the message is gone (deleted meanwhile).
    ///
    /// # Errors
    /// Database errors.
    pub async fn update_message(
        &self,
        id: MessageId,
        body: &MessageBody,
        mentions: Vec<Mention>,
        job: impl FnOnce(&Message) -> String,
    ) -> Result<Option<Changed>, StoreError> {
        let at = now();
        let Some(mut message) = self.message(id).await? else {
            return Ok(None);
        };
        message.body = body.as_str().to_owned();
        message.edited_at = Some(at);
        message.mentions = mentions;
        let job = job(&message);
        let outbox_id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE messages SET body = ?, edited_at = ? WHERE id = ?")
                .bind(&message.body)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(None);
            }
            sqlx::query("DELETE FROM message_mentions WHERE message_id = ?").bind(id).execute(&mut *tx).await?;
            record_mentions!(tx, &message, notify: false);
            let outbox_id = insert_outbox!(&mut *tx, &job, at);
            tx.commit().await?;
            outbox_id
        });
        Ok(Some(Changed {
            message: Some(message),
            outbox_id,
            job,
        }))
    }

    /// Deletes message `id` with everything that belongs to it (its mentions and their
    /// notifications) and writes the broadcast job `job` in one transaction; `None` when there was
    /// no such message. The one place a message is deleted: whatever else a message owns is
    /// removed here, in the same transaction.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_message(&self, id: MessageId, job: &str) -> Result<Option<Changed>, StoreError> {
        let outbox_id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM notifications WHERE message_id = ?").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM message_mentions WHERE message_id = ?").bind(id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM messages WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(None);
            }
            let outbox_id = insert_outbox!(&mut *tx, job, now());
            tx.commit().await?;
            outbox_id
        });
        Ok(Some(Changed {
            message: None,
            outbox_id,
            job: job.to_owned(),
        }))
    }

    /// The newest message of conversation `c` (as `me` sees it) with an id at most `upto`; 0 if
    /// none. Read marks are clamped to it, so nobody announces having read what does not exist.
    ///
    /// # Errors
    /// Database errors.
    pub async fn newest_up_to(&self, me: UserId, c: Conversation, upto: i64) -> Result<i64, StoreError> {
        let newest: Option<i64> = on_pool!(self, pool => match c {
            Conversation::User(other) => sqlx::query_scalar(
                "SELECT MAX(id) FROM messages WHERE pair_lo = ? AND pair_hi = ? AND id <= ?",
            )
            .bind(me.min(other))
            .bind(me.max(other))
            .bind(upto)
            .fetch_one(pool)
            .await?,
            Conversation::Group(g) => sqlx::query_scalar("SELECT MAX(id) FROM messages WHERE group_id = ? AND id <= ?")
                .bind(g)
                .bind(upto)
                .fetch_one(pool)
                .await?,
        });
        Ok(newest.unwrap_or(0))
    }

    /// Moves `user`'s read mark of `c` forward to `upto`; true if it moved (never backwards).
    ///
    /// # Errors
    /// Database errors.
    pub async fn advance_read_mark(&self, user: UserId, c: Conversation, upto: i64) -> Result<bool, StoreError> {
        let key = conversation_key(c);
        let moved = on_pool!(self, pool => {
            let n = sqlx::query(
                "UPDATE read_marks SET last_read_id = ? WHERE user_id = ? AND conversation = ? AND last_read_id < ?",
            )
            .bind(upto)
            .bind(user)
            .bind(&key)
            .bind(upto)
            .execute(pool)
            .await?
            .rows_affected();
            if n > 0 {
                true
            } else {
                let present: Option<i64> =
                    sqlx::query_scalar("SELECT last_read_id FROM read_marks WHERE user_id = ? AND conversation = ?")
                        .bind(user)
                        .bind(&key)
                        .fetch_optional(pool)
                        .await?;
                if present.is_some() {
                    false
                } else {
                    self.mark_read(user, &key, upto).await?;
                    upto > 0
                }
            }
        });
        Ok(moved)
    }

    /// How far the other participants have read conversation `c` of `me`: the partner's mark of
    /// a one-to-one conversation, or every other member's mark of a group (members only).
    ///
    /// # Errors
    /// Database errors.
    pub async fn read_marks_of_others(&self, me: UserId, c: Conversation) -> Result<Vec<ReadMark>, StoreError> {
        Ok(on_pool!(self, pool => match c {
            Conversation::User(other) => sqlx::query_as(
                "SELECT u.id AS user_id, u.name, r.last_read_id AS up_to FROM read_marks r JOIN users u ON u.id = r.user_id \
                 WHERE r.user_id = ? AND r.conversation = ?",
            )
            .bind(other)
            .bind(conversation_key(Conversation::User(me)))
            .fetch_all(pool)
            .await?,
            Conversation::Group(g) => sqlx::query_as(
                "SELECT u.id AS user_id, u.name, r.last_read_id AS up_to FROM group_members gm \
                 JOIN read_marks r ON r.user_id = gm.user_id AND r.conversation = ? \
                 JOIN users u ON u.id = gm.user_id WHERE gm.group_id = ? AND gm.user_id <> ? ORDER BY u.name_key",
            )
            .bind(conversation_key(c))
            .bind(g)
            .bind(me)
            .fetch_all(pool)
            .await?,
        }))
    }
}
