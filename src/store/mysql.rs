//! MySQL / MariaDB specifics: the production store. The pool hands out a connection within
//! [`ACQUIRE_TIMEOUT`] or fails, so a database outage turns into a quick 503, never a hung request.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    MySql, MySqlPool,
    migrate::MigrateDatabase,
    mysql::{MySqlPoolOptions, MySqlQueryResult},
};

use super::InsertedId;

/// Longest a request waits for a database connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn connect(url: &str, max_connections: u32) -> anyhow::Result<MySqlPool> {
    if !MySql::database_exists(url)
        .await
        .context("cannot reach the MySQL server")?
    {
        tracing::info!("creating the MySQL database named in DATABASE_URL");
        MySql::create_database(url)
            .await
            .context("cannot create the MySQL database")?;
    }
    let pool = MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    Ok(pool)
}

impl InsertedId for MySqlQueryResult {
    fn inserted_id(&self) -> i64 {
        i64::try_from(self.last_insert_id()).unwrap_or(i64::MAX)
    }
}
