//! Sign-in with OpenID Connect: the identities that find an account by the provider's
//! (issuer, subject), and the sign-ins under way between the redirect to the provider and its
//! callback.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, now, on_pool};
use crate::domain::UserId;

/// Inserts an `oidc_identities` row on `$conn`; a clash is [`StoreError::Duplicate`] `"identity"`.
macro_rules! insert_identity {
    ($conn:expr, $issuer:expr, $subject:expr, $user:expr) => {
        sqlx::query("INSERT INTO oidc_identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)")
            .bind($issuer)
            .bind($subject)
            .bind($user)
            .bind($crate::store::now())
            .execute($conn)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                    $crate::store::StoreError::Duplicate("identity")
                }
                e => $crate::store::StoreError::from(e),
            })
    };
}
pub(super) use insert_identity;

/// A sign-in under way, as the callback takes it back.
#[derive(Debug, sqlx::FromRow)]
pub struct PendingLogin {
    pub nonce: String,
    pub pkce_verifier: String,
}

impl Store {
    /// Remembers a sign-in under way, under the hashes of its `state` and of the browser's cookie.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn insert_oidc_login(
        &self,
        state_hash: &str,
        browser_hash: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO oidc_logins (state_hash, browser_hash, nonce, pkce_verifier, created_at) VALUES (?, ?, ?, ?, ?)")
                .bind(state_hash)
                .bind(browser_hash)
                .bind(nonce)
                .bind(pkce_verifier)
                .bind(now())
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }

    /// Takes the sign-in under way with this `state` started by this browser after
    /// `started_after`: at most one caller ever gets it (also across nodes), and it is gone
    /// afterwards whatever the caller does with it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn take_oidc_login(
        &self,
        state_hash: &str,
        browser_hash: &str,
        started_after: DateTime<Utc>,
    ) -> Result<Option<PendingLogin>, StoreError> {
        const WHERE: &str = "WHERE state_hash = ? AND browser_hash = ? AND created_at > ?";
        Ok(on_pool!(self, pool => {
            let found: Option<PendingLogin> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT nonce, pkce_verifier FROM oidc_logins {WHERE}")))
                    .bind(state_hash)
                    .bind(browser_hash)
                    .bind(started_after)
                    .fetch_optional(pool)
                    .await?;
            // Whoever deletes the row owns it: a second callback with the same state finds nothing.
            let taken = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM oidc_logins {WHERE}")))
                .bind(state_hash)
                .bind(browser_hash)
                .bind(started_after)
                .execute(pool)
                .await?
                .rows_affected();
            found.filter(|_| taken == 1)
        }))
    }

    /// Deletes sign-ins started before `started_before` (never finished); returns how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn delete_expired_oidc_logins(&self, started_before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query("DELETE FROM oidc_logins WHERE created_at <= ?").bind(started_before).execute(pool).await?.rows_affected()
        }))
    }

    /// The account the provider's `(issuer, subject)` signs in to, if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn oidc_identity(&self, issuer: &str, subject: &str) -> Result<Option<UserId>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT user_id FROM oidc_identities WHERE issuer = ? AND subject = ?")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Links `(issuer, subject)` to the existing account `user`, which from now on signs in
    /// through the provider only: the account's password, chosen by whoever registered an
    /// address nobody had proved to own, stops working, and every session and token it had
    /// ends (SECURITY.md, item 14).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] `"identity"` when the identity is already linked (a parallel
    /// callback won); [`StoreError::UnknownReference`] when the user is gone.
    pub async fn link_oidc_identity(
        &self,
        issuer: &str,
        subject: &str,
        user: UserId,
        no_password: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_identity!(&mut *tx, issuer, subject, user)?;
            sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?").bind(no_password).bind(user).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM api_tokens WHERE user_id = ?").bind(user).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = ?").bind(user).execute(&mut *tx).await?;
            tx.commit().await?
        });
        Ok(())
    }
}
