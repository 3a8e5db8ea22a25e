//! Opens every backend the settings name, once, at start-up. A bad or
//! unreachable backend is an [`OpenError`] naming the setting to fix.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::runtime::config::Settings;
use crate::stores::connection::RedisCon;
use crate::stores::limits::redis::{RedisBuckets, RedisSlots};
use crate::stores::limits::{MemoryBuckets, MemorySlots, RateBuckets, SlotTable};
use crate::stores::locks::LockStore;
use crate::stores::locks::redis::RedisLocks;
use crate::stores::meta::{self as db, MetaRepo};
use crate::stores::objects::{self, Store};
use crate::stores::queue::JobQueues;
use crate::stores::uploads::UploadStore;
use crate::stores::uploads::redis::RedisUploads;
use crate::stores::uploads::sql::SqlUploads;

/// A backend could not be opened: which setting, and why.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct OpenError {
    /// The setting (env var) to look at.
    pub setting: &'static str,
    /// What went wrong, on one line.
    pub message: String,
}

pub(crate) fn fail(setting: &'static str) -> impl Fn(crate::Error) -> OpenError {
    move |e| {
        let mut message = e.to_string();
        // The setting name is already in front; avoid saying it twice.
        if let Some(rest) = message.strip_prefix(&format!("{setting}: ")) {
            message = rest.to_owned();
        }
        OpenError { setting, message: message.replace('\n', " ") }
    }
}

/// The stores that hold data: all but the job queue, which `api admin
/// audit` does not need (and must not wait for: the running api may hold
/// its SQLite file's write lock).
#[derive(Clone)]
pub(crate) struct DataStores {
    /// Users, tokens, files.
    pub(crate) repo: Arc<dyn MetaRepo>,
    /// Upload sessions and chunk state.
    pub(crate) uploads: Arc<dyn UploadStore>,
    /// Chunks waiting for their merge.
    pub(crate) staging: Store,
    /// Finished files.
    pub(crate) files: Store,
    /// Backup copies of finished files, when configured.
    pub(crate) backup: Option<Store>,
    /// Where files bound for a remote store are assembled.
    pub(crate) scratch: std::path::PathBuf,
    /// Rate limits' buckets: in Redis when there is one (every api process
    /// shares them), else in this process.
    pub(crate) limits: Arc<dyn RateBuckets>,
    /// Per-user slots for bodies being received: in Redis when there is one
    /// (every api process counts against the same), else in this process.
    pub(crate) slots: Arc<dyn SlotTable>,
    /// WebDAV locks: in Redis when there is one (every api process sees
    /// the same), else in the SQL database.
    pub(crate) locks: Arc<dyn LockStore>,
    /// The connection to Redis when it holds the upload state: the job
    /// queue shares it when it lives on the same server.
    redis: Option<crate::stores::connection::RedisCon>,
}

/// Every backend a pan process uses, cheap to clone.
#[derive(Clone)]
pub(crate) struct Backends {
    /// The stores that hold data.
    pub(crate) data: DataStores,
    /// Where jobs go.
    pub(crate) jobs: JobQueues,
}

impl DataStores {
    /// Opens the data stores the settings name.
    pub(crate) async fn open(settings: &Settings) -> Result<Self, OpenError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| OpenError {
            setting: "PAN_DATA_DIR",
            message: format!("cannot create {}: {e}", settings.data_dir.display()),
        })?;
        let repo = db::open(&settings.database_url()).await.map_err(fail("DATABASE_URL"))?;
        // Files bound for a remote store are assembled here.
        let scratch = settings.data_dir.join("tmp");
        let staging =
            objects::open(&settings.staging_url(), "PAN_STAGING_URL", &scratch).map_err(fail("PAN_STAGING_URL"))?;
        let files = objects::open(&settings.store_url(), "PAN_STORE_URL", &scratch).map_err(fail("PAN_STORE_URL"))?;
        let backup = match &settings.backup_url {
            Some(url) => Some(objects::open(url, "PAN_BACKUP_URL", &scratch).map_err(fail("PAN_BACKUP_URL"))?),
            None => None,
        };
        type Shared = (Arc<dyn UploadStore>, Arc<dyn RateBuckets>, Arc<dyn SlotTable>, Arc<dyn LockStore>);
        let ((uploads, limits, slots, locks), redis): (Shared, _) = match &settings.redis_url {
            Some(url) => {
                let con = crate::stores::connection::connect(url)
                    .await
                    .map_err(|message| OpenError { setting: "REDIS_URL", message })?;
                let prefix = &settings.redis_prefix;
                let uploads = RedisUploads::new(con.clone(), prefix, settings.upload_ttl);
                if !crate::stores::connection::is_cluster_url(url) {
                    match uploads.tag_old_keys().await {
                        Ok(0) => {}
                        Ok(renamed) => tracing::info!(renamed, "upload keys of an earlier release renamed"),
                        Err(e) => tracing::warn!(error = %e, "renaming upload keys of an earlier release failed"),
                    }
                }
                let shared: Shared = (
                    Arc::new(uploads),
                    Arc::new(RedisBuckets::new(con.clone(), prefix)),
                    Arc::new(RedisSlots::new(con.clone(), prefix)),
                    Arc::new(RedisLocks::new(con.clone(), prefix)),
                );
                (shared, Some(con))
            }
            None => {
                let local: Shared = (
                    Arc::new(SqlUploads::new(repo.clone(), settings.upload_ttl)),
                    Arc::new(MemoryBuckets::default()),
                    Arc::new(MemorySlots::default()),
                    Arc::new(repo.clone()),
                );
                (local, None)
            }
        };
        Ok(DataStores { repo: Arc::new(repo), uploads, staging, files, backup, scratch, limits, slots, locks, redis })
    }
}

impl Backends {
    /// Opens everything the settings name.
    pub(crate) async fn open(settings: &Settings) -> Result<Self, OpenError> {
        let data = DataStores::open(settings).await?;
        if data.repo.restore_pending().await.map_err(fail("DATABASE_URL"))? {
            return Err(OpenError {
                setting: "DATABASE_URL",
                message: "a restore into this database is unfinished: run `api admin restore` again to finish it"
                    .into(),
            });
        }
        let queue = match (queue_url(settings)?, &data.redis) {
            // The same server as the upload state: one connection, which
            // reconnects once for both after Redis restarts.
            (Some(("REDIS_URL", _)), Some(RedisCon::Single(con))) => Some(con.clone()),
            (Some((setting, url)), _) => Some(connect_redis(setting, url).await?),
            (None, _) => None,
        };
        let jobs = match queue {
            Some(con) => JobQueues::redis(con, &settings.redis_prefix),
            None => JobQueues::sqlite(&settings.jobs_db_path()).await.map_err(fail("PAN_DATA_DIR"))?,
        };
        Ok(Backends { data, jobs })
    }

    /// The stores' own housekeeping, part of the scheduled clean-up:
    /// temporary merge files older than a day (left by killed workers) go,
    /// and so do multipart uploads older than a day that were never
    /// finished (their parts are bytes an S3 store keeps but lists
    /// nowhere), and records of jobs finished a week ago. A store away now
    /// is tried again at the next tick; returns how many uploads went.
    pub(crate) async fn housekeep(&self) -> usize {
        const DAY: Duration = Duration::from_secs(86_400);
        let d = &self.data;
        for dir in [d.files.scratch_dir(), d.staging.scratch_dir(), &d.scratch] {
            remove_old_files(dir, DAY);
        }
        let mut stale = 0;
        for store in [&d.staging, &d.files].into_iter().chain(d.backup.as_ref()) {
            match store.abort_stale_uploads(DAY).await {
                Ok(n) => stale += n,
                Err(e) => tracing::warn!(error = %e, "aborting unfinished multipart uploads failed"),
            }
        }
        self.jobs.vacuum(7 * DAY).await;
        stale
    }
}

/// Removes files older than `age` from a directory (not recursive).
fn remove_old_files(dir: &std::path::Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|d| d > age);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Where the job queue lives when upload state is on Redis: `PAN_QUEUE_URL`,
/// else `REDIS_URL` itself — unless that is a cluster: apalis-redis builds
/// its keys at run time across slots and connects without cluster support,
/// so a cluster needs a plain Redis beside it for the queue.
fn queue_url(settings: &Settings) -> Result<Option<(&'static str, &str)>, OpenError> {
    match (&settings.queue_url, &settings.redis_url) {
        (Some(queue), _) => Ok(Some(("PAN_QUEUE_URL", queue.as_str()))),
        (None, Some(redis)) if crate::stores::connection::is_cluster_url(redis) => Err(OpenError {
            setting: "PAN_QUEUE_URL",
            message: "REDIS_URL names a Redis Cluster; the job queue needs a plain Redis: set PAN_QUEUE_URL".into(),
        }),
        (None, Some(redis)) => Ok(Some(("REDIS_URL", redis.as_str()))),
        (None, None) => Ok(None),
    }
}

async fn connect_redis(setting: &'static str, url: &str) -> Result<ConnectionManager, OpenError> {
    let bad = |message: String| OpenError { setting, message };
    let client = redis::Client::open(url).map_err(|e| bad(format!("invalid URL: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(2);
    let mut con = tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager_with_config(config))
        .await
        .map_err(|_| bad(format!("{} did not answer within 5 s", crate::runtime::config::redact_url(url))))?
        .map_err(|e| bad(format!("cannot connect to {}: {e}", crate::runtime::config::redact_url(url))))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .map_err(|e| bad(format!("{} does not answer PING: {e}", crate::runtime::config::redact_url(url))))?;
    Ok(con)
}
