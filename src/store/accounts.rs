//! Users and their bearer tokens.

use chrono::{DateTime, Utc};

use super::oidc::insert_identity;
use super::{
    Conversation, Cursor, InsertedId, Store, StoreError, conversation_key, dialect, now, on_duplicate, on_pool,
};
use crate::domain::{Email, GroupId, UserId, UserName};

/// A registered user as stored (without the password hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    /// Granted by an operator (`chatbox admin grant`), never by anything a user can do.
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// The columns of [`User`], for `SELECT {USER_COLUMNS} FROM users u`.
const USER_COLUMNS: &str = "u.id, u.name, u.email, u.is_admin, u.created_at";

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
        self.insert_user(name, email, password_hash, None).await
    }

    /// Stores a new user signed in through an OpenID Connect provider, with its
    /// `(issuer, subject)`, in one transaction (see [`Store::create_user`]).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] with `"email"`, `"name"` or `"identity"` (a parallel callback
    /// for the same subject won).
    pub async fn create_oidc_user(
        &self,
        name: &UserName,
        email: &Email,
        password_hash: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<User, StoreError> {
        self.insert_user(name, email, password_hash, Some((issuer, subject)))
            .await
    }

    async fn insert_user(
        &self,
        name: &UserName,
        email: &Email,
        password_hash: &str,
        identity: Option<(&str, &str)>,
    ) -> Result<User, StoreError> {
        let created_at = now();
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query("INSERT INTO users (name, name_key, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)")
                .bind(name.as_str())
                .bind(name.key())
                .bind(email.as_str())
                .bind(password_hash)
                .bind(created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| match on_duplicate(e, "users", &["email", "name_key"]) {
                    StoreError::Duplicate("name_key") => StoreError::Duplicate("name"),
                    other => other,
                })?
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
            if let Some((issuer, subject)) = identity {
                insert_identity!(&mut *tx, issuer, subject, id)?;
            }
            tx.commit().await?;
            id
        });
        Ok(User {
            id: UserId(id),
            name: name.as_str().to_owned(),
            email: email.as_str().to_owned(),
            is_admin: false,
            created_at,
        })
    }

    /// The user with this e-mail and its password hash, for login.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn credentials(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<Credentials> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email = ?")))
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
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?")))
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

    /// The owner of the token with this hash, if the token is still valid: issued after
    /// `issued_after` (tokens expire a configured time after they are issued).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn user_by_token(
        &self,
        token_hash: &str,
        issued_after: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = ? AND t.created_at > ?",
            )))
            .bind(token_hash)
            .bind(issued_after)
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

    /// Signs `user` out everywhere: every bearer token and every browser session it has.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn revoke_everything_of(&self, user: UserId) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM api_tokens WHERE user_id = ?").bind(user).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = ?").bind(user).execute(&mut *tx).await?;
            tx.commit().await?
        });
        Ok(())
    }

    /// Deletes tokens issued before `issued_before` (expired); returns how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn delete_expired_tokens(&self, issued_before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM api_tokens WHERE created_at <= ?").bind(issued_before).execute(pool).await?.rows_affected()
        }))
    }

    /// Grants or revokes admin rights for the user with this e-mail or id; the user, if found.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn set_admin(&self, who: &AccountRef, admin: bool) -> Result<Option<User>, StoreError> {
        let (column, value) = match who {
            AccountRef::Id(id) => ("id", id.0.to_string()),
            AccountRef::Email(e) => ("email", e.as_str().to_owned()),
        };
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE users SET is_admin = ? WHERE {column} = ?")))
                .bind(admin)
                .bind(&value)
                .execute(pool)
                .await
                .map(drop)?
        });
        match who {
            AccountRef::Id(id) => self.user(*id).await,
            AccountRef::Email(e) => Ok(self.credentials(e.as_str()).await?.map(|(u, _)| u)),
        }
    }

    /// Every admin, by id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn admins(&self) -> Result<Vec<User>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u WHERE u.is_admin ORDER BY u.id")))
                .fetch_all(pool)
                .await?
        }))
    }

    /// The value kept under `name` in `app_settings`, made by `make` and stored on first use.
    /// Two nodes starting at once agree: the first insert wins and both read it back.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn setting_or_insert(&self, name: &str, make: impl FnOnce() -> String) -> Result<String, StoreError> {
        let insert = dialect!(self,
            mysql: "INSERT IGNORE INTO app_settings (name, value) VALUES (?, ?)",
            sqlite: "INSERT INTO app_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        );
        let value = make();
        Ok(on_pool!(self, pool => {
            sqlx::query(insert).bind(name).bind(&value).execute(pool).await?;
            sqlx::query_scalar("SELECT value FROM app_settings WHERE name = ?").bind(name).fetch_one(pool).await?
        }))
    }
}

/// An account named on the command line: by id or by e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef {
    Id(UserId),
    Email(Email),
}

impl std::str::FromStr for AccountRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(id) = s.parse() {
            return Ok(Self::Id(id));
        }
        Email::parse(s)
            .map(Self::Email)
            .map_err(|_| format!("{s:?} is neither a user id nor an e-mail address"))
    }
}
