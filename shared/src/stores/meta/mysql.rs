//! MySQL / MariaDB: the fleet's metadata store, shared by every api and worker
//! process. InnoDB row locks serialise the reference-count updates.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

use super::rows::{Dialect, SqlRepo};
use crate::domain::error::{Error, Result};

pub(super) static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/mysql");

/// Connects to the MySQL database at `url`, leaving its schema as it is
/// (see [`super::open`], which migrates it).
pub async fn connect(url: &str) -> Result<SqlRepo> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        // An upload's status lists its segments with GROUP_CONCAT, whose
        // result MariaDB cuts at 1 MiB by default: room for 100,000 of them.
        .after_connect(|con, _| {
            Box::pin(async move {
                sqlx::Executor::execute(con, "SET SESSION group_concat_max_len = 16777216").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| Error::Unavailable { what: "database", source: Box::new(e) })?;
    Ok(SqlRepo::new(pool.clone(), pool, Dialect::MySql))
}
