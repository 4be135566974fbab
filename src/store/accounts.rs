//! Users and their bearer tokens.

use chrono::{DateTime, Utc};

use super::{Conversation, Cursor, InsertedId, Store, StoreError, conversation_key, now, on_duplicate, on_pool};
use crate::domain::{Email, GroupId, UserId, UserName};

/// A registered user as stored (without the password hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Credentials {
    #[sqlx(flatten)]
    user: User,
    password_hash: String,
}

impl Store {
    /// Stores a new user and makes it a member of "All", in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] with `"email"` or `"name"` when either is taken.
    pub async fn create_user(&self, name: &UserName, email: &Email, password_hash: &str) -> Result<User, StoreError> {
        let created_at = now();
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query("INSERT INTO users (name, email, password_hash, created_at) VALUES (?, ?, ?, ?)")
                .bind(name.as_str())
                .bind(email.as_str())
                .bind(password_hash)
                .bind(created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| on_duplicate(e, "users", &["email", "name"]))?
                .inserted_id();
            sqlx::query("INSERT INTO group_members (group_id, user_id, joined_at) VALUES (?, ?, ?)")
                .bind(GroupId::ALL)
                .bind(id)
                .bind(created_at)
                .execute(&mut *tx)
                .await?;
            // Cursors and the read mark of "All" start at the newest ids: no history flood.
            let (newest_message, newest_event): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages), (SELECT COALESCE(MAX(id), 0) FROM notifications)",
            )
            .fetch_one(&mut *tx)
            .await?;
            for cursor in Cursor::ALL {
                let at = if cursor == Cursor::NotifiedEvent { newest_event } else { newest_message };
                sqlx::query("INSERT INTO delivery_cursors (user_id, kind, last_id) VALUES (?, ?, ?)")
                    .bind(id)
                    .bind(cursor.key())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO read_marks (user_id, conversation, last_read_id) VALUES (?, ?, ?)")
                .bind(id)
                .bind(conversation_key(Conversation::Group(GroupId::ALL)))
                .bind(newest_message)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        });
        Ok(User {
            id: UserId(id),
            name: name.as_str().to_owned(),
            email: email.as_str().to_owned(),
            created_at,
        })
    }

    /// The user with this e-mail and its password hash, for login.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn credentials(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<Credentials> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, email, created_at, password_hash FROM users WHERE email = ?")
                .bind(email)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|c| (c.user, c.password_hash)))
    }

    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, email, created_at FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Remembers a bearer token by its SHA-256 (hex); the token itself is never stored.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn insert_token(&self, user: UserId, token_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)")
                .bind(user)
                .bind(token_hash)
                .bind(now())
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }

    /// The owner of the token with this hash, if the token is still valid.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT u.id, u.name, u.email, u.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = ?",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Revokes one token (logout with a bearer token). Revoking an unknown token is not an error.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn delete_token(&self, token_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM api_tokens WHERE token_hash = ?").bind(token_hash).execute(pool).await.map(drop))?;
        Ok(())
    }
}
