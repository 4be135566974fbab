//! Messages and the transactional outbox.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{InsertedId, Store, StoreError, attachments::attach, is_unique_violation, now, on_pool};
use crate::domain::{ClientId, FileId, GroupId, MessageBody, MessageId, UserId};

/// The sender as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub id: UserId,
    pub name: String,
}

/// A stored message, in the shape API.md gives clients (also the event payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub sender: Sender,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    pub body: String,
    #[serde(serialize_with = "crate::domain::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Files sent with it, oldest upload first; empty for text only.
    #[serde(default)]
    pub attachments: Vec<super::Attachment>,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    User(UserId),
    Group(GroupId),
}

#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    id: MessageId,
    sender_id: UserId,
    sender_name: String,
    recipient_id: Option<UserId>,
    group_id: Option<GroupId>,
    body: String,
    client_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id,
            sender: Sender {
                id: r.sender_id,
                name: r.sender_name,
            },
            recipient_id: r.recipient_id,
            group_id: r.group_id,
            body: r.body,
            created_at: r.created_at,
            client_id: r.client_id,
            attachments: Vec::new(),
        }
    }
}

impl Message {
    pub fn destination(&self) -> Destination {
        match (self.recipient_id, self.group_id) {
            (Some(u), _) => Destination::User(u),
            (None, Some(g)) => Destination::Group(g),
            (None, None) => unreachable!("every stored message has a recipient or a group"),
        }
    }
}

/// What [`Store::insert_message`] did.
pub enum Inserted {
    /// Stored now, with its outbox row `(outbox_id, job)`.
    New {
        message: Message,
        outbox_id: i64,
        job: String,
    },
    /// A retry: the message stored earlier under the same sender and client id.
    Replay(Message),
}

pub(super) const SELECT_MESSAGE: &str = "SELECT m.id, m.sender_id, u.name AS sender_name, m.recipient_id, m.group_id, m.body, \
     m.client_id, m.created_at FROM messages m JOIN users u ON u.id = m.sender_id";

impl Store {
    /// Stores a message, gives it the sender's uploads `attachments`, and stores its broadcast
    /// job (built by `job` from the stored message), in one transaction: all or nothing.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] with `"client_id"` when the client id was used before for another
    /// destination; [`StoreError::UnusableAttachment`] when an attachment is not the sender's
    /// or was already sent; database errors.
    pub async fn insert_message(
        &self,
        sender: &Sender,
        to: Destination,
        body: &MessageBody,
        client_id: Option<&ClientId>,
        attachments: &[FileId],
        job: impl FnOnce(&Message) -> String,
    ) -> Result<Inserted, StoreError> {
        let (recipient_id, group_id, pair) = match to {
            Destination::User(u) => (Some(u), None, Some((sender.id.min(u), sender.id.max(u)))),
            Destination::Group(g) => (None, Some(g), None),
        };
        let mut message = Message {
            id: MessageId(0),
            sender: sender.clone(),
            recipient_id,
            group_id,
            body: body.as_str().to_owned(),
            created_at: now(),
            client_id: client_id.map(|c| c.as_str().to_owned()),
            attachments: Vec::new(),
        };
        let inserted = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let result = sqlx::query(
                "INSERT INTO messages (sender_id, recipient_id, group_id, pair_lo, pair_hi, body, client_id, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(sender.id)
            .bind(recipient_id)
            .bind(group_id)
            .bind(pair.map(|p| p.0))
            .bind(pair.map(|p| p.1))
            .bind(&message.body)
            .bind(&message.client_id)
            .bind(message.created_at)
            .execute(&mut *tx)
            .await;
            match result {
                Err(e) if is_unique_violation(&e, "messages", "client") || is_unique_violation(&e, "messages", "client_id") => None,
                Err(e) => return Err(e.into()),
                Ok(done) => {
                    message.id = MessageId(done.inserted_id());
                    if !attachments.is_empty() {
                        message.attachments = attach!(tx, message.id, sender.id, attachments);
                    }
                    let job = job(&message);
                    let outbox_id = sqlx::query("INSERT INTO outbox (job, created_at) VALUES (?, ?)")
                        .bind(&job)
                        .bind(message.created_at)
                        .execute(&mut *tx)
                        .await?
                        .inserted_id();
                    tx.commit().await?;
                    Some((outbox_id, job))
                }
            }
        });
        let Some((outbox_id, job)) = inserted else {
            let client_id = client_id.expect("only a client id can clash");
            let earlier = self.message_by_client_id(sender.id, client_id).await?;
            return match earlier {
                Some(m) if m.destination() == to => Ok(Inserted::Replay(m)),
                _ => Err(StoreError::Duplicate("client_id")),
            };
        };
        Ok(Inserted::New {
            message,
            outbox_id,
            job,
        })
    }

    async fn message_by_client_id(&self, sender: UserId, client_id: &ClientId) -> Result<Option<Message>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT_MESSAGE} WHERE m.sender_id = ? AND m.client_id = ?"));
        let row: Option<MessageRow> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(sender).bind(client_id.as_str()).fetch_optional(pool).await?
        });
        let mut found: Vec<Message> = row.map(Message::from).into_iter().collect();
        self.fill_attachments(&mut found).await?;
        Ok(found.pop())
    }

    /// Outbox rows older than `age`, oldest first: `(outbox_id, job)`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn stale_outbox(&self, age: Duration, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let before = now() - chrono::Duration::from_std(age).unwrap_or_default();
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, job FROM outbox WHERE created_at < ? ORDER BY id LIMIT ?")
                .bind(before)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?
        }))
    }

    /// Deletes outbox rows whose jobs are on the queue.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_outbox(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new("DELETE FROM outbox WHERE id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(")");
            q.build().execute(pool).await.map(drop)?
        });
        Ok(())
    }

    /// Writes a broadcast job to the outbox on its own (for changes that are not messages);
    /// returns the outbox id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn insert_outbox(&self, job: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("INSERT INTO outbox (job, created_at) VALUES (?, ?)")
                .bind(job)
                .bind(now())
                .execute(pool)
                .await?
                .inserted_id()
        }))
    }
}
