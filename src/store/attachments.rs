//! Attachments and avatars: their rows here, their bytes in [`crate::files::Storage`]. The store
//! owns both so that whatever deletes a row deletes its files too.
//!
//! Life of an attachment: uploaded (owned by the uploader, `attached` false) → taken by a message
//! in the message's own transaction ([`attach!`], used by `Store::insert_message`) → deleted
//! with its message. Rows whose message is gone (`attached` true, `message_id` NULL after
//! `ON DELETE SET NULL`) and uploads never attached within [`PENDING_TTL`] are swept with their
//! files; files without a row (a crash between writing and inserting) are swept after a day.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, now, on_pool};
use crate::{
    domain::{FileId, GroupId, MessageId, UserId},
    files::FileKey,
};

/// Uploads not attached to a message within a day are deleted.
pub const PENDING_TTL: Duration = Duration::from_secs(86_400);

/// Most files looked at per sweep step, so one sweep holds no long transaction.
const SWEEP_BATCH: usize = 500;

/// An attachment as messages carry it (API.md § Richer messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    #[schema(value_type = String)]
    pub id: FileId,
    /// The uploaded file's name, cleaned (shown only; never a path).
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Sniffed from the bytes, from an allow-list; `application/octet-stream` otherwise.
    pub content_type: String,
    /// `GET` it (only those who may read the message).
    pub url: String,
    /// A picture's thumbnail (at most 320 px a side); null for other files and small pictures.
    pub thumbnail_url: Option<String>,
}

/// An upload to record (see [`Store::insert_attachment`]).
pub struct NewAttachment {
    pub id: FileId,
    pub owner: UserId,
    pub name: String,
    pub size: i64,
    pub content_type: &'static str,
    pub has_thumbnail: bool,
}

#[derive(sqlx::FromRow)]
pub(super) struct AttachmentRow {
    id: FileId,
    message_id: Option<MessageId>,
    name: String,
    size: i64,
    content_type: String,
    has_thumbnail: bool,
}

/// Columns of [`AttachmentRow`] in table `a`, in the order every list uses.
pub(super) const ATTACHMENT_COLUMNS: &str = "a.id, a.message_id, a.name, a.size, a.content_type, a.has_thumbnail";

impl From<AttachmentRow> for Attachment {
    fn from(r: AttachmentRow) -> Self {
        let url = format!("/api/attachments/{}", r.id);
        Self {
            thumbnail_url: r.has_thumbnail.then(|| format!("{url}/thumbnail")),
            url,
            id: r.id,
            name: r.name,
            size: r.size,
            content_type: r.content_type,
        }
    }
}

/// An attachment with what deciding who may read it needs.
#[derive(Debug)]
pub struct Readable {
    pub attachment: Attachment,
    pub owner_id: UserId,
    /// Taken by a message (which may since be gone: then nobody may read it).
    pub attached: bool,
    pub has_thumbnail: bool,
    /// The message's participants, when it exists.
    pub sender_id: Option<UserId>,
    pub recipient_id: Option<UserId>,
    pub group_id: Option<GroupId>,
}

#[derive(sqlx::FromRow)]
struct ReadableRow {
    #[sqlx(flatten)]
    row: AttachmentRow,
    owner_id: UserId,
    attached: bool,
    sender_id: Option<UserId>,
    recipient_id: Option<UserId>,
    group_id: Option<GroupId>,
}

/// Inside a message's transaction `$tx`: gives the sender's pending uploads `$ids` (deduplicated)
/// to message `$message` and evaluates to their [`Attachment`]s. Returns
/// [`StoreError::UnusableAttachment`] from the enclosing function (rolling the transaction back
/// when it is dropped) unless every id names an upload of `$owner` that no message took yet.
macro_rules! attach {
    ($tx:expr, $message:expr, $owner:expr, $ids:expr) => {{
        let ids: &[$crate::domain::FileId] = $ids;
        let mut q = sqlx::QueryBuilder::new("UPDATE attachments SET message_id = ");
        q.push_bind($message)
            .push(", attached = TRUE WHERE attached = FALSE AND owner_id = ")
            .push_bind($owner)
            .push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.as_str());
        }
        q.push(")");
        let taken = q.build().execute(&mut *$tx).await?.rows_affected();
        if taken != ids.len() as u64 {
            return Err($crate::store::StoreError::UnusableAttachment);
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM attachments a WHERE a.message_id = ? ORDER BY a.created_at, a.id",
            $crate::store::attachments::ATTACHMENT_COLUMNS
        ));
        let rows: Vec<$crate::store::attachments::AttachmentRow> =
            sqlx::query_as(sql).bind($message).fetch_all(&mut *$tx).await?;
        rows.into_iter()
            .map($crate::store::Attachment::from)
            .collect::<Vec<_>>()
    }};
}
pub(super) use attach;

impl Store {
    /// Records an upload whose file is stored, unless `owner` already has `max_pending` uploads
    /// no message took: then false, and nothing is recorded. (Uploads finishing at the same
    /// moment are counted one by one, so the bound holds up to the uploads in flight.)
    ///
    /// # Errors
    /// Database errors.
    pub async fn insert_attachment(&self, new: &NewAttachment, max_pending: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO attachments (id, owner_id, message_id, attached, name, size, content_type, has_thumbnail, created_at) \
                 SELECT ?, ?, NULL, FALSE, ?, ?, ?, ?, ? FROM (SELECT 1 AS one) one \
                 WHERE (SELECT COUNT(*) FROM attachments WHERE owner_id = ? AND attached = FALSE) < ?",
            )
            .bind(new.id.as_str())
            .bind(new.owner)
            .bind(&new.name)
            .bind(new.size)
            .bind(new.content_type)
            .bind(new.has_thumbnail)
            .bind(now())
            .bind(new.owner)
            .bind(max_pending)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// How many uploads of `owner` no message took yet.
    ///
    /// # Errors
    /// Database errors.
    pub async fn pending_attachments(&self, owner: UserId) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM attachments WHERE owner_id = ? AND attached = FALSE")
                .bind(owner)
                .fetch_one(pool)
                .await?
        }))
    }

    /// The attachment `id` with its message's participants, if it exists.
    ///
    /// # Errors
    /// Database errors.
    pub async fn readable_attachment(&self, id: &FileId) -> Result<Option<Readable>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ATTACHMENT_COLUMNS}, a.owner_id, a.attached, m.sender_id, m.recipient_id, m.group_id \
             FROM attachments a LEFT JOIN messages m ON m.id = a.message_id WHERE a.id = ?"
        ));
        let row: Option<ReadableRow> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(id.as_str()).fetch_optional(pool).await?
        });
        Ok(row.map(|r| Readable {
            has_thumbnail: r.row.has_thumbnail,
            attachment: r.row.into(),
            owner_id: r.owner_id,
            attached: r.attached,
            sender_id: r.sender_id,
            recipient_id: r.recipient_id,
            group_id: r.group_id,
        }))
    }

    /// Fills in the attachments of `messages` (one query for all of them).
    ///
    /// # Errors
    /// Database errors.
    pub(super) async fn fill_attachments(&self, messages: &mut [super::Message]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let rows: Vec<AttachmentRow> = on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new(format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.message_id IN ("
            ));
            let mut list = q.separated(", ");
            for m in messages.iter() {
                list.push_bind(m.id);
            }
            q.push(") ORDER BY a.created_at, a.id");
            q.build_query_as().fetch_all(pool).await?
        });
        let mut by_message: std::collections::HashMap<MessageId, Vec<Attachment>> = Default::default();
        for row in rows {
            if let Some(m) = row.message_id {
                by_message.entry(m).or_default().push(row.into());
            }
        }
        for m in messages {
            m.attachments = by_message.remove(&m.id).unwrap_or_default();
        }
        Ok(())
    }

    /// Deletes the attachments of a message, rows and files (for deleting a message; deleting
    /// the message first is fine too: its attachments are then found as orphans).
    ///
    /// # Errors
    /// Database errors. A file that cannot be deleted is logged and left to the sweep of files
    /// without rows.
    pub async fn delete_attachments_of(&self, message: MessageId) -> Result<usize, StoreError> {
        let ids = self.attachment_ids_of(message).await?;
        self.delete_attachments(&ids).await
    }

    /// The attachments of `message` (read before deleting a message: its rows then lose it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn attachment_ids_of(&self, message: MessageId) -> Result<Vec<FileId>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM attachments WHERE message_id = ?").bind(message).fetch_all(pool).await?
        }))
    }

    /// Deletes attachments whose message is gone (deleted itself or with its group), rows and
    /// files; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_orphaned_attachments(&self) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let ids: Vec<FileId> = on_pool!(self, pool => {
                sqlx::query_scalar("SELECT id FROM attachments WHERE attached = TRUE AND message_id IS NULL LIMIT ?")
                    .bind(SWEEP_BATCH as i64)
                    .fetch_all(pool)
                    .await?
            });
            if ids.is_empty() {
                return Ok(deleted);
            }
            deleted += self.delete_attachments(&ids).await?;
        }
    }

    /// Deletes uploads that no message took within [`PENDING_TTL`]; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_stale_uploads(&self) -> Result<usize, StoreError> {
        let before = now() - chrono::Duration::from_std(PENDING_TTL).unwrap_or_default();
        let ids: Vec<FileId> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM attachments WHERE attached = FALSE AND created_at < ? LIMIT ?")
                .bind(before)
                .bind(SWEEP_BATCH as i64)
                .fetch_all(pool)
                .await?
        });
        self.delete_attachments(&ids).await
    }

    /// Deletes stored files older than `age` that no row names (left by a crash between writing
    /// a file and recording it, or by rows deleted with their user); returns how many.
    ///
    /// # Errors
    /// Database errors; a folder that cannot be read is logged.
    pub async fn delete_unrecorded_files(&self, age: Duration) -> Result<usize, StoreError> {
        let before = std::time::SystemTime::now() - age;
        let keys = match self.files.older_than(before, SWEEP_BATCH * 20).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "the attachments folder cannot be read");
                return Ok(0);
            }
        };
        let mut deleted = 0;
        for key in keys {
            let known: Option<i64> = match &key {
                FileKey::Attachment(id) | FileKey::Thumbnail(id) => on_pool!(self, pool => {
                    sqlx::query_scalar("SELECT 1 FROM attachments WHERE id = ?").bind(id.as_str()).fetch_optional(pool).await?
                }),
                FileKey::Avatar(id) => on_pool!(self, pool => {
                    sqlx::query_scalar("SELECT 1 FROM users WHERE avatar = ?").bind(id.as_str()).fetch_optional(pool).await?
                }),
            };
            if known.is_none() {
                self.delete_file(&key).await;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Deletes the rows, then the files, of `ids`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_attachments(&self, ids: &[FileId]) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        on_pool!(self, pool => {
            let mut q = sqlx::QueryBuilder::new("DELETE FROM attachments WHERE id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id.as_str());
            }
            q.push(")");
            q.build().execute(pool).await.map(drop)?
        });
        for id in ids {
            self.delete_file(&FileKey::Attachment(id.clone())).await;
            self.delete_file(&FileKey::Thumbnail(id.clone())).await;
        }
        Ok(ids.len())
    }

    /// Deletes a file; a failure is logged (the file is then found again by the sweep).
    pub(super) async fn delete_file(&self, key: &FileKey) {
        if let Err(e) = self.files.delete(key).await {
            tracing::warn!(error = %e, ?key, "a stored file could not be deleted");
        }
    }

    /// The file storage (attachments and avatars).
    pub fn files(&self) -> &crate::files::Storage {
        &self.files
    }
}
