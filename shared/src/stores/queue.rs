//! Job payloads and the queues they travel through: apalis on SQLite
//! (embedded, its own `jobs.db`) or on Redis (fleet). One queue per job type,
//! named under the configured prefix.

use std::time::Duration;

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::error::{Error, Result};

/// Assemble, verify and store the file of a completed upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeJob {
    /// The upload to merge (state `merging`), parsed when the job is read.
    pub upload_id: crate::domain::UploadId,
}

/// Copy a stored file to the backup store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupJob {
    /// The stored content's row id.
    pub file_id: i64,
}

/// How often a worker reports that it is alive. Short, because apalis also
/// makes a freshly started worker wait one interval before its first fetch.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Missed heartbeats before a worker's jobs count as orphaned and another
/// worker takes them over (2 s × 10 = 20 s after a crash).
pub const MISSED_HEARTBEATS: usize = 10;

/// One job queue, on whichever backend the deployment uses.
pub enum Queue<T> {
    /// apalis-sqlite in `<data dir>/jobs.db`.
    Sqlite(SqliteStorage<T>),
    /// apalis-redis under the Redis prefix.
    Redis(RedisStorage<T>),
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        match self {
            Queue::Sqlite(s) => Queue::Sqlite(s.clone()),
            Queue::Redis(s) => Queue::Redis(s.clone()),
        }
    }
}

impl<T> Queue<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
{
    fn sqlite(pool: &SqlitePool, name: &str) -> Self {
        let config = apalis_sqlite::Config::default()
            .queue(name)
            .batch_size(1)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS);
        Queue::Sqlite(SqliteStorage::new(pool).with_config(config))
    }

    fn redis(con: redis::aio::ConnectionManager, name: &str) -> Self {
        let config = apalis_redis::Config::default()
            .queue(name)
            .batch_size(1)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS);
        Queue::Redis(RedisStorage::new(con).with_config(config))
    }

    /// Enqueues a job.
    pub async fn push(&self, job: T) -> Result<()> {
        // The queue's backend (Redis, the job database) is away: retryable.
        let failed = |e: String| Error::Unavailable { what: "job queue", source: e.into() };
        match self.clone() {
            Queue::Sqlite(mut s) => s.push(job).await.map_err(|e| failed(e.to_string())),
            Queue::Redis(mut s) => s.push(job).await.map_err(|e| failed(e.to_string())),
        }
    }
}

/// Every queue pan uses.
#[derive(Clone)]
pub struct JobQueues {
    /// Merges of completed uploads.
    pub merges: Queue<MergeJob>,
    /// Copies of stored files to the backup store.
    pub backups: Queue<BackupJob>,
}

impl JobQueues {
    /// The SQLite queues in the file at `path`, created and migrated if needed.
    pub async fn sqlite(path: &std::path::Path) -> Result<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = SqlitePool::connect(&url)
            .await
            .map_err(|e| Error::Unavailable { what: "job queue database", source: Box::new(e) })?;
        SqliteStorage::<()>::setup(&pool).await.map_err(|e| Error::internal("setting up the job queue", e))?;
        Ok(JobQueues { merges: Queue::sqlite(&pool, "merge"), backups: Queue::sqlite(&pool, "backup") })
    }

    /// Drops records of jobs finished longer than `age` ago. Best effort:
    /// a failure is logged and retried at the next clean-up.
    pub async fn vacuum(&self, age: Duration) {
        use apalis_core::backend::Vacuum;
        let result = match (self.merges.clone(), self.backups.clone()) {
            (Queue::Sqlite(mut m), Queue::Sqlite(mut b)) => {
                m.vacuum_before(age).await.and(b.vacuum_before(age).await).map_err(|e| e.to_string())
            }
            (Queue::Redis(mut m), Queue::Redis(mut b)) => {
                m.vacuum_before(age).await.and(b.vacuum_before(age).await).map_err(|e| e.to_string())
            }
            _ => Ok(0),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "vacuuming finished jobs failed");
        }
    }

    /// The Redis queues `<prefix>:merge` and `<prefix>:backup`.
    pub fn redis(con: redis::aio::ConnectionManager, prefix: &str) -> Self {
        JobQueues {
            merges: Queue::redis(con.clone(), &format!("{prefix}:merge")),
            backups: Queue::redis(con, &format!("{prefix}:backup")),
        }
    }
}
