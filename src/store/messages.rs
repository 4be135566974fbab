//! Messages and the transactional outbox.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{InsertedId, Store, StoreError, attachments::attach, insert_outbox, is_unique_violation, now, on_pool};
use crate::domain::{ClientId, FileId, GroupId, MessageBody, MessageId, UserId};

/// Records in the open transaction `$tx` the mentions of `$message` (a stored group message):
/// a `message_mentions` row and a `mention` notification row per member named. The notification
/// names the sender as the message shows it (`null` and the pseudonym for an anonymous question).
///
/// With `notify: false` (an edit) only the mention rows are written: an edit notifies nobody.
macro_rules! record_mentions {
    ($tx:expr, $message:expr, notify: $notify:expr) => {{
        let message: &Message = $message;
        let notify: bool = $notify;
        if let (Some(group), false) = (message.group_id, message.mentions.is_empty()) {
            let name: Option<String> = sqlx::query_scalar("SELECT name FROM chat_groups WHERE id = ?")
                .bind(group)
                .fetch_optional(&mut *$tx)
                .await?;
            let mut payload = serde_json::json!({
                "type": "mention", "from": message.sender, "group": { "id": group, "name": name },
                "message_id": message.id,
            });
            if let Some(p) = &message.pseudonym {
                payload["pseudonym"] = serde_json::json!(p);
            }
            let payload = payload.to_string();
            let at = now();
            for m in &message.mentions {
                sqlx::query("INSERT INTO message_mentions (message_id, user_id) VALUES (?, ?)")
                    .bind(message.id)
                    .bind(m.id)
                    .execute(&mut *$tx)
                    .await?;
                if !notify {
                    continue;
                }
                sqlx::query("INSERT INTO notifications (user_id, payload, created_at, message_id) VALUES (?, ?, ?, ?)")
                    .bind(m.id)
                    .bind(&payload)
                    .bind(at)
                    .bind(message.id)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}
pub(super) use record_mentions;

/// The sender as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub id: UserId,
    pub name: String,
}

/// A stored message, in the shape API.md gives clients (also the event payload).
///
/// An anonymous question has `sender: None` (JSON `null`) and a `pseudonym`: its sender is not
/// even read from the database when a message is loaded (see [`SELECT_MESSAGE`]), so it cannot
/// reach an answer, an event, a notification or a log line. Its `client_id` is not shown either
/// (only the asker's own send answer carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub sender: Option<Sender>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    pub body: String,
    #[serde(serialize_with = "crate::domain::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the sender last changed the body (the "edited" mark); absent if never.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::domain::rfc3339_opt"
    )]
    pub edited_at: Option<DateTime<Utc>>,
    /// Members this group message names with `@name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Mention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Files sent with it, oldest upload first; empty for text only.
    #[serde(default)]
    pub attachments: Vec<super::Attachment>,
}

/// A member named in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Mention {
    pub id: UserId,
    pub name: String,
}

/// What a message has beyond sender, destination and body.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Set for an anonymous question: the asker's pseudonym in the group.
    pub pseudonym: Option<String>,
    /// Members named with `@name` (at most [`crate::domain::chat_features::MAX_MENTIONS`]).
    pub mentions: Vec<Mention>,
    /// The sender's own uploads sent with it (checked: its own, not yet sent).
    pub attachments: Vec<FileId>,
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
    sender_id: Option<UserId>,
    sender_name: Option<String>,
    pseudonym: Option<String>,
    recipient_id: Option<UserId>,
    group_id: Option<GroupId>,
    body: String,
    client_id: Option<String>,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        let sender = match (r.sender_id, r.sender_name) {
            (Some(id), Some(name)) => Some(Sender { id, name }),
            _ => None,
        };
        Self {
            id: r.id,
            sender,
            pseudonym: r.pseudonym,
            recipient_id: r.recipient_id,
            group_id: r.group_id,
            body: r.body,
            created_at: r.created_at,
            edited_at: r.edited_at,
            mentions: Vec::new(),
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

/// Selects [`MessageRow`]s (`m` is the message). For an anonymous question the sender's id and
/// name, and the client id, come out as NULL: nothing above the store ever holds them.
pub(super) const SELECT_MESSAGE: &str = "SELECT m.id, \
     CASE WHEN m.anonymous THEN NULL ELSE m.sender_id END AS sender_id, \
     CASE WHEN m.anonymous THEN NULL ELSE u.name END AS sender_name, \
     m.pseudonym, m.recipient_id, m.group_id, m.body, \
     CASE WHEN m.anonymous THEN NULL ELSE m.client_id END AS client_id, \
     m.created_at, m.edited_at FROM messages m JOIN users u ON u.id = m.sender_id";

impl Store {
    /// Stores a message, gives it the sender's uploads (`extras.attachments`), and stores its
    /// broadcast job (built by `job` from the stored message) in one transaction, with its
    /// mentions and their `mention` notifications: either all are committed or nothing. The job
    /// of an anonymous question holds no sender (and no client id).
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
        extras: Extras,
        job: impl FnOnce(&Message) -> String,
    ) -> Result<Inserted, StoreError> {
        let (recipient_id, group_id, pair) = match to {
            Destination::User(u) => (Some(u), None, Some((sender.id.min(u), sender.id.max(u)))),
            Destination::Group(g) => (None, Some(g), None),
        };
        let anonymous = extras.pseudonym.is_some();
        let attachments = extras.attachments;
        let mut message = Message {
            id: MessageId(0),
            sender: (!anonymous).then(|| sender.clone()),
            pseudonym: extras.pseudonym,
            recipient_id,
            group_id,
            body: body.as_str().to_owned(),
            created_at: now(),
            edited_at: None,
            mentions: extras.mentions,
            client_id: client_id.map(|c| c.as_str().to_owned()),
            attachments: Vec::new(),
        };
        let inserted = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let result = sqlx::query(
                "INSERT INTO messages (sender_id, recipient_id, group_id, pair_lo, pair_hi, body, client_id, created_at, \
                 anonymous, pseudonym) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(sender.id)
            .bind(recipient_id)
            .bind(group_id)
            .bind(pair.map(|p| p.0))
            .bind(pair.map(|p| p.1))
            .bind(&message.body)
            .bind(&message.client_id)
            .bind(message.created_at)
            .bind(anonymous)
            .bind(&message.pseudonym)
            .execute(&mut *tx)
            .await;
            match result {
                Err(e) if is_unique_violation(&e, "messages", "client") || is_unique_violation(&e, "messages", "client_id") => None,
                Err(e) => return Err(e.into()),
                Ok(done) => {
                    message.id = MessageId(done.inserted_id());
                    if !attachments.is_empty() {
                        message.attachments = attach!(tx, message.id, sender.id, &attachments);
                    }
                    record_mentions!(tx, &message, notify: true);
                    // What others see: the job carries no client id of an anonymous question.
                    let shown = Message { client_id: None, ..message.clone() };
                    let job = job(if anonymous { &shown } else { &message });
                    let outbox_id = insert_outbox!(&mut *tx, &job, message.created_at);
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
        self.attach_mentions(&mut found).await?;
        Ok(found.pop().map(|mut m| {
            // The asker's own retry: it sent this client id.
            m.client_id = Some(client_id.as_str().to_owned());
            m
        }))
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
        Ok(on_pool!(self, pool => insert_outbox!(pool, job, now())))
    }
}
