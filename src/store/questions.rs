//! Anonymous questions: the key pseudonyms are made with, the groups' switch, and the askers an
//! owner muted (by pseudonym only: nothing here maps a pseudonym back to a user).

use super::{Store, StoreError, now, on_pool};
use crate::domain::GroupId;

/// Where the key of anonymous askers' pseudonyms is kept (made once, 32 random bytes).
const PSEUDONYM_KEY: &str = "pseudonym_key";

impl Store {
    /// The key pseudonyms are made with: 32 random bytes made on first use and kept in
    /// `app_settings`, so pseudonyms stay the same across restarts and nodes.
    ///
    /// # Errors
    /// Database errors.
    pub async fn pseudonym_key(&self) -> Result<Vec<u8>, StoreError> {
        let hex_key = self
            .setting_or_insert(PSEUDONYM_KEY, || {
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                hex::encode(bytes)
            })
            .await?;
        Ok(hex::decode(&hex_key).unwrap_or_else(|_| hex_key.into_bytes()))
    }

    /// Turns anonymous questions in `group` on or off.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_questions(&self, group: GroupId, on: bool) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE chat_groups SET questions = ? WHERE id = ? AND is_all = FALSE")
                .bind(on)
                .bind(group)
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }

    /// Whether some anonymous question in `group` was asked under `pseudonym`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn pseudonym_in(&self, group: GroupId, pseudonym: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT 1 FROM messages WHERE group_id = ? AND pseudonym = ? LIMIT 1")
                .bind(group)
                .bind(pseudonym)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// Mutes (`true`) or unmutes the anonymous asker `pseudonym` in `group`; true if that changed
    /// anything.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_muted(&self, group: GroupId, pseudonym: &str, muted: bool) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            if muted {
                let present: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM group_muted WHERE group_id = ? AND pseudonym = ?")
                        .bind(group)
                        .bind(pseudonym)
                        .fetch_optional(pool)
                        .await?;
                if present.is_some() {
                    0
                } else {
                    sqlx::query("INSERT INTO group_muted (group_id, pseudonym, muted_at) VALUES (?, ?, ?)")
                        .bind(group)
                        .bind(pseudonym)
                        .bind(now())
                        .execute(pool)
                        .await?
                        .rows_affected()
                }
            } else {
                sqlx::query("DELETE FROM group_muted WHERE group_id = ? AND pseudonym = ?")
                    .bind(group)
                    .bind(pseudonym)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        });
        Ok(n > 0)
    }

    /// The pseudonyms muted in `group`, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn muted(&self, group: GroupId) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT pseudonym FROM group_muted WHERE group_id = ? ORDER BY muted_at, pseudonym")
                .bind(group)
                .fetch_all(pool)
                .await?
        }))
    }
}
