//! Job payloads and the queue they travel through: apalis on SQLite (embedded,
//! its own `jobs.db`) or on Redis (fleet). One queue per job type, named under
//! the configured prefix.

use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Assemble, verify and store the file of a completed upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeJob {
    /// The upload to merge (state `merging`).
    pub upload_id: String,
}

/// How often a worker reports that it is alive. Short, because apalis also
/// makes a freshly started worker wait one interval before its first fetch.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Missed heartbeats before a worker's jobs count as orphaned and another
/// worker takes them over (2 s × 10 = 20 s after a crash).
pub const MISSED_HEARTBEATS: usize = 10;

/// The merge queue, on whichever backend the deployment uses.
#[derive(Clone)]
pub enum MergeQueue {
    /// apalis-sqlite in `<data dir>/jobs.db`.
    Sqlite(SqliteStorage<MergeJob>),
    /// apalis-redis under the Redis prefix.
    Redis(RedisStorage<MergeJob>),
}

impl MergeQueue {
    /// The SQLite queue in the file at `path`, created and migrated if needed.
    pub async fn sqlite(path: &std::path::Path) -> Result<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = SqlitePool::connect(&url)
            .await
            .map_err(|e| Error::Unavailable { what: "job queue database", source: Box::new(e) })?;
        SqliteStorage::<()>::setup(&pool).await.map_err(|e| Error::internal("setting up the job queue", e))?;
        let config = apalis_sqlite::Config::default()
            .queue("merge")
            .batch_size(1)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS);
        Ok(MergeQueue::Sqlite(SqliteStorage::new(&pool).with_config(config)))
    }

    /// The Redis queue `<prefix>:merge` on an existing connection.
    pub fn redis(con: redis::aio::ConnectionManager, prefix: &str) -> Self {
        let config = apalis_redis::Config::default()
            .queue(format!("{prefix}:merge"))
            .batch_size(1)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS);
        MergeQueue::Redis(RedisStorage::new(con).with_config(config))
    }

    /// Enqueues a merge.
    pub async fn push(&self, job: MergeJob) -> Result<()> {
        match self.clone() {
            MergeQueue::Sqlite(mut s) => {
                s.push(job).await.map_err(|e| Error::internal("enqueueing merge", e.to_string()))
            }
            MergeQueue::Redis(mut s) => {
                s.push(job).await.map_err(|e| Error::internal("enqueueing merge", e.to_string()))
            }
        }
    }
}
