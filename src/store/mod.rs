//! Storage: the relational database is the source of truth (DESIGN.md). One [`Store`] facade with
//! one method per use case; the backend (MySQL or SQLite, both through sqlx) is chosen once at
//! start-up from `DATABASE_URL`, and nothing above this module knows which one runs.
//!
//! Both dialects take `?` placeholders, so each query is written once and run on whichever pool is
//! live through [`on_pool!`]; the few statements that differ (upserts, connection set-up) live in
//! `mysql.rs` and `sqlite.rs`.

mod accounts;
pub(crate) mod attachments;
mod chat;
mod chat_features;
mod cursors;
mod groups;
mod messages;
mod mysql;
mod oidc;
mod pictures;
mod questions;
mod sessions;
mod sqlite;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{MySqlPool, SqlitePool};

use crate::{
    config::{Config, DatabaseKind},
    files::Storage,
};

pub use accounts::{AccountRef, User};
pub use attachments::{Attachment, NewAttachment, PENDING_TTL, Readable};
pub use chat::{Conversation, EventRow, Page, Person, Stream, conversation_key};
pub use chat_features::{Authored, Changed, ReadMark};
pub use cursors::Cursor;
pub use groups::Group;
pub use messages::{Destination, Extras, Inserted, Mention, Message, Sender};
pub use oidc::PendingLogin;
pub use pictures::{GROUP_PICTURE_TILES, PictureMember, avatar_url};
pub use sessions::SESSION_USER_KEY;

/// Handle to the database and the files stored beside it (attachments, avatars: their rows and
/// bytes are deleted together); cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    files: Storage,
}

#[derive(Clone, Debug)]
enum Backend {
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// Runs the same query code against whichever pool is live. `$pool` is bound to `&MySqlPool` or
/// `&SqlitePool`; the body is type-checked once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::MySql($pool) => $body,
            $crate::store::Backend::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Writes broadcast job `$job` to the outbox on `$executor` (a transaction, `&mut *tx`, or a
/// pool) at `$at`, and evaluates to its outbox id: the one statement every change that
/// announces itself commits with.
macro_rules! insert_outbox {
    ($executor:expr, $job:expr, $at:expr) => {
        sqlx::query("INSERT INTO outbox (job, created_at) VALUES (?, ?)")
            .bind($job)
            .bind($at)
            .execute($executor)
            .await?
            .inserted_id()
    };
}
pub(crate) use insert_outbox;

/// Picks the statement text for the live dialect.
macro_rules! dialect {
    ($store:expr, mysql: $my:expr, sqlite: $lite:expr $(,)?) => {
        match &$store.backend {
            $crate::store::Backend::MySql(_) => $my,
            $crate::store::Backend::Sqlite(_) => $lite,
        }
    };
}
pub(crate) use dialect;

/// What can go wrong in a store call, sorted by what the caller should answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or did not hand out a connection in time (HTTP 503).
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A unique key refused the row; names the field (`"email"`, `"name"`).
    #[error("{0} is already taken")]
    Duplicate(&'static str),
    /// A referenced row does not exist (a foreign key refused the write).
    #[error("a referenced row does not exist")]
    UnknownReference,
    /// An attachment id names no upload of the sender that a message could still take (someone
    /// else's, already attached, or unknown) (HTTP 422).
    #[error("an attachment cannot be used")]
    UnusableAttachment,
    /// A stored file cannot be written or read (HTTP 500).
    #[error("file storage error")]
    Files(#[source] std::io::Error),
    /// Anything else: a bug or a schema mismatch (HTTP 500).
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(ref db) if is_connection_lost(db.message()) => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => StoreError::UnknownReference,
            e => StoreError::Other(e),
        }
    }
}

fn is_connection_lost(message: &str) -> bool {
    message.contains("server has gone away") || message.contains("Lost connection")
}

/// Whether `err` is a unique-key violation on `table.column`. MySQL names the key
/// (`… for key 'uq_users_email'`), SQLite the column (`UNIQUE constraint failed: users.email`);
/// the migrations name every unique key `uq_{table}_{column}` so both can be recognised.
fn is_unique_violation(err: &sqlx::Error, table: &str, column: &str) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    let msg = db.message();
    db.is_unique_violation()
        && (msg.ends_with(&format!("uq_{table}_{column}'")) || msg.ends_with(&format!("{table}.{column}")))
}

/// Maps a unique violation on one of `fields` of `table` to [`StoreError::Duplicate`].
fn on_duplicate(err: sqlx::Error, table: &str, fields: &[&'static str]) -> StoreError {
    match fields.iter().find(|f| is_unique_violation(&err, table, f)) {
        Some(field) => StoreError::Duplicate(field),
        None => err.into(),
    }
}

/// The current time at the precision both backends keep (microseconds), so what a client is
/// answered equals what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Id of the row an INSERT just wrote, whichever backend wrote it.
trait InsertedId {
    fn inserted_id(&self) -> i64;
}

impl Store {
    /// Connects to the configured database, creating the SQLite file or the MySQL database when
    /// it does not exist yet, and opens `ATTACHMENTS_DIR` (created when missing).
    ///
    /// # Errors
    /// The database cannot be reached or refused the credentials; the folder cannot be created.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let url = config.database_url.expose();
        let backend = match config.database_kind {
            DatabaseKind::Sqlite => Backend::Sqlite(sqlite::connect(url, config.db_max_connections).await?),
            DatabaseKind::MySql => Backend::MySql(mysql::connect(url, config.db_max_connections).await?),
        };
        let files = Storage::open(&config.attachments_dir).await.map_err(|e| {
            anyhow::anyhow!(
                "ATTACHMENTS_DIR: cannot create {}: {e}",
                config.attachments_dir.display()
            )
        })?;
        Ok(Self { backend, files })
    }

    /// Applies the migrations of the live dialect that are not applied yet.
    ///
    /// # Errors
    /// A migration failed, or the database holds migrations this binary does not know.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::MySql(pool) => sqlx::migrate!("migrations/mysql").run(pool).await?,
            Backend::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// Which backend this store runs on (for logs and health output).
    pub fn kind(&self) -> DatabaseKind {
        match self.backend {
            Backend::MySql(_) => DatabaseKind::MySql,
            Backend::Sqlite(_) => DatabaseKind::Sqlite,
        }
    }

    /// A round trip to the database.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not answer within the pool's acquire timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Open connections in the pool and how many of them are idle.
    pub fn pool_usage(&self) -> (u32, usize) {
        on_pool!(self, pool => (pool.size(), pool.num_idle()))
    }

    /// Closes every pooled connection; waits for connections in use to be returned.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}
