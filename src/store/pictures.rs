//! Avatars (a file per user, named by a fresh id each time so its URL changes with it) and what
//! a group's picture is made of.

use super::{Store, StoreError, dialect, on_pool};
use crate::{
    domain::{FileId, GroupId, UserId},
    files::FileKey,
};

/// Members shown in a group's picture (a 2 × 2 grid).
pub const GROUP_PICTURE_TILES: u32 = 4;

/// The URL of a user's avatar; it names the file, so a new avatar has a new URL.
pub fn avatar_url(user: UserId, avatar: Option<&FileId>) -> Option<String> {
    avatar.map(|a| format!("/api/users/{user}/avatar/{a}"))
}

/// A member as a group picture shows them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PictureMember {
    pub id: UserId,
    pub name: String,
    pub avatar: Option<FileId>,
}

impl Store {
    /// Stores `picture` (already re-encoded) as `user`'s avatar, replacing and deleting the
    /// previous one; returns the new avatar's id.
    ///
    /// # Errors
    /// Database errors, or the file cannot be written ([`StoreError::Files`]).
    pub async fn set_avatar(&self, user: UserId, picture: &[u8]) -> Result<FileId, StoreError> {
        let id = FileId::random();
        self.files
            .put(&FileKey::Avatar(id.clone()), picture)
            .await
            .map_err(StoreError::Files)?;
        let previous = self.replace_avatar(user, Some(&id)).await;
        if previous.is_err() {
            self.delete_file(&FileKey::Avatar(id.clone())).await;
        }
        if let Some(old) = previous? {
            self.delete_file(&FileKey::Avatar(old)).await;
        }
        Ok(id)
    }

    /// Removes `user`'s avatar (initials are shown again); false when there was none.
    ///
    /// # Errors
    /// Database errors.
    pub async fn clear_avatar(&self, user: UserId) -> Result<bool, StoreError> {
        let previous = self.replace_avatar(user, None).await?;
        let had = previous.is_some();
        if let Some(old) = previous {
            self.delete_file(&FileKey::Avatar(old)).await;
        }
        Ok(had)
    }

    /// Sets `users.avatar` and returns what it was, in one transaction.
    async fn replace_avatar(&self, user: UserId, avatar: Option<&FileId>) -> Result<Option<FileId>, StoreError> {
        // Two uploads at once: MySQL makes the second wait for the first; SQLite refuses the
        // second's write (its snapshot is stale). Either way no avatar is replaced unseen.
        let select = dialect!(self,
            mysql: "SELECT avatar FROM users WHERE id = ? FOR UPDATE",
            sqlite: "SELECT avatar FROM users WHERE id = ?",
        );
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let previous: Option<Option<FileId>> = sqlx::query_scalar(select)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query("UPDATE users SET avatar = ? WHERE id = ?")
                .bind(avatar.map(FileId::as_str))
                .bind(user)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            previous.flatten()
        }))
    }

    /// `user`'s avatar id, if it has one.
    ///
    /// # Errors
    /// Database errors.
    pub async fn avatar_of(&self, user: UserId) -> Result<Option<FileId>, StoreError> {
        let found: Option<Option<FileId>> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT avatar FROM users WHERE id = ?").bind(user).fetch_optional(pool).await?
        });
        Ok(found.flatten())
    }

    /// The bytes of avatar `avatar`, if stored.
    ///
    /// # Errors
    /// The file cannot be read ([`StoreError::Files`]).
    pub async fn avatar_bytes(&self, avatar: &FileId) -> Result<Option<Vec<u8>>, StoreError> {
        self.files
            .read(&FileKey::Avatar(avatar.clone()))
            .await
            .map_err(StoreError::Files)
    }

    /// The members a group's picture shows: the first [`GROUP_PICTURE_TILES`] by id, those with
    /// an avatar first (so a large group shows faces rather than initials).
    ///
    /// # Errors
    /// Database errors.
    pub async fn picture_members(&self, group: GroupId) -> Result<Vec<PictureMember>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT u.id, u.name, u.avatar FROM group_members gm JOIN users u ON u.id = gm.user_id \
                 WHERE gm.group_id = ? ORDER BY CASE WHEN u.avatar IS NULL THEN 1 ELSE 0 END, u.id LIMIT ?",
            )
            .bind(group)
            .bind(i64::from(GROUP_PICTURE_TILES))
            .fetch_all(pool)
            .await?
        }))
    }
}
