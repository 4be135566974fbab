//! Browser sessions for tower-sessions, kept in the `sessions` table so they survive restarts and
//! are shared by every node. Records are stored as JSON; expired ones are never returned and are
//! swept by [`Store::delete_expired_sessions`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store,
};

use super::{Store, StoreError, dialect, is_unique_violation, on_pool};

/// Session key holding the signed-in user's id; also kept in the `user_id` column.
pub const SESSION_USER_KEY: &str = "user_id";

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn expiry(record: &Record) -> DateTime<Utc> {
    let at = record.expiry_date;
    DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Store {
    /// Deletes sessions whose expiry date has passed; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Other`] from the database.
    pub async fn delete_expired_sessions(&self) -> Result<u64, StoreError> {
        let done = on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE expiry_date < ?").bind(Utc::now()).execute(pool).await?.rows_affected()
        });
        Ok(done)
    }

    async fn insert_session(&self, record: &Record, upsert: bool) -> Result<(), sqlx::Error> {
        let data = serde_json::to_vec(record).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        // The signed-in user, in a column of its own so "sign out everywhere" can find them all.
        let user = record.data.get(SESSION_USER_KEY).and_then(serde_json::Value::as_i64);
        let sql = match upsert {
            false => "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES (?, ?, ?, ?)",
            true => dialect!(self,
                mysql: "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES (?, ?, ?, ?) \
                        ON DUPLICATE KEY UPDATE data = VALUES(data), expiry_date = VALUES(expiry_date), user_id = VALUES(user_id)",
                sqlite: "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date, user_id = excluded.user_id",
            ),
        };
        on_pool!(self, pool => {
            sqlx::query(sql).bind(record.id.to_string()).bind(data).bind(expiry(record)).bind(user).execute(pool).await.map(drop)?
        });
        Ok(())
    }
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A fresh random 128-bit id collides with negligible probability; retry a few times anyway.
        for _ in 0..3 {
            match self.insert_session(record, false).await {
                Ok(()) => return Ok(()),
                Err(e) if is_unique_violation(&e, "sessions", "id") || is_primary_key_clash(&e) => {
                    record.id = Id::default();
                }
                Err(e) => return Err(backend(StoreError::from(e))),
            }
        }
        Err(backend("could not allocate a unique session id"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.insert_session(record, true)
            .await
            .map_err(|e| backend(StoreError::from(e)))
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(Vec<u8>, DateTime<Utc>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT data, expiry_date FROM sessions WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
                .map_err(|e| backend(StoreError::from(e)))?
        });
        match row {
            Some((data, expires)) if expires > Utc::now() => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| session_store::Error::Decode(e.to_string())),
            _ => Ok(None),
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE id = ?").bind(id.to_string()).execute(pool).await.map(drop)
        })
        .map_err(|e| backend(StoreError::from(e)))?;
        Ok(())
    }
}

/// The sessions primary key is reported as `PRIMARY` by MySQL and `sessions.id` by SQLite.
fn is_primary_key_clash(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation() && db.message().contains("PRIMARY"))
}
