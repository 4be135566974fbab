//! SQLite specifics: the embedded default. One file, WAL journal so readers never block the
//! writer, foreign keys on, and a busy timeout so concurrent writers queue instead of failing.

use std::{str::FromStr, time::Duration};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous},
};

use super::InsertedId;

/// How long a writer waits for the write lock before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn connect(url: &str, max_connections: u32) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
        // the last transactions.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(BUSY_TIMEOUT)
        .connect_with(options)
        .await?;
    Ok(pool)
}

impl InsertedId for SqliteQueryResult {
    fn inserted_id(&self) -> i64 {
        self.last_insert_rowid()
    }
}
