//! SQLite: the embedded deployment's metadata store, one file under the data
//! directory. WAL lets readers run beside the single writer; transactions start
//! with `BEGIN IMMEDIATE` so a read-then-write transaction waits for the write
//! lock instead of failing with SQLITE_BUSY half-way. `synchronous = FULL`:
//! in WAL mode, NORMAL lets a committed transaction roll back after a power
//! cut, and pan answers 2xx (a signup, a stored file, a merge's rows) only on
//! commit, so every commit syncs the WAL.

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

use super::rows::{Dialect, SqlRepo};
use crate::domain::error::{Error, Result};

pub(super) static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Opens (creating if needed) the SQLite database at `url`, leaving its
/// schema as it is (see [`super::open`], which migrates it).
pub async fn connect(url: &str) -> Result<SqlRepo> {
    sqlx::any::install_default_drivers();
    if let Some(path) = url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p))
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Unavailable { what: "database directory", source: Box::new(e) })?;
    }
    let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
    // A connection to a file in this process cannot have gone away: no ping
    // before each use (a round trip to the connection's thread per query).
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(|e| Error::Unavailable { what: "database", source: Box::new(e) })?;
    // Leases and hash progress change several times per chunk; losing the
    // last of them to a power cut only repeats some work, so their commits
    // skip the fsync (still atomic: NORMAL in WAL mode loses, never tears).
    let volatile = AnyPoolOptions::new()
        .max_connections(2)
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(|e| Error::Unavailable { what: "database", source: Box::new(e) })?;
    Ok(SqlRepo::new(pool, volatile, Dialect::Sqlite))
}
