//! The metadata's own backup: one consistent copy of the database's lasting
//! tables, written to the backup store beside the files' copies (under
//! `metadata/`), on a schedule and by `api admin backup`. Stored keys hold
//! no names or hashes by design, so without this copy the files' backups
//! are nameless blobs; with it, `api admin restore` ([`super::restore`])
//! brings an installation back.

use futures::TryStreamExt;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use std::sync::Arc;

use crate::domain::error::{Error, Result};
use crate::runtime::config::Settings;
use crate::stores::meta::{ArchiveSummary, MetaRepo};
use crate::stores::objects::{self, ByteStore, ObjectInfo, Store, TempFile};
use crate::stores::open::{OpenError, fail};

/// Where metadata backups live in the backup store. File keys are
/// `ab/<id>` (or older `<sha1>-<size>-<n>` names): never this prefix.
pub const METADATA_PREFIX: &str = "metadata";

/// The scheduled task's name in the `maintenance` table.
const TASK: &str = "metadata_backup";
/// How long a process that claimed the scheduled backup holds it before
/// another may try (it died, or the backup failed).
const CLAIM_SECS: i64 = 900;

/// One metadata backup in the backup store.
#[derive(Debug, Clone)]
pub struct MetadataBackup {
    /// Its key in the backup store.
    pub key: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was stored (Unix seconds).
    pub stored_at: i64,
}

/// What taking a backup did.
#[derive(Debug, Clone)]
pub struct TakenBackup {
    /// Where it went.
    pub backup: MetadataBackup,
    /// What it holds.
    pub summary: ArchiveSummary,
    /// Older backups deleted to keep `PAN_METADATA_BACKUPS_KEPT`.
    pub pruned: usize,
}

/// Whether a key of the backup store is a metadata backup's (the scrub of
/// unreferenced objects leaves them alone).
pub(crate) fn is_metadata_key(key: &str) -> bool {
    key.strip_prefix(METADATA_PREFIX).is_some_and(|rest| rest.starts_with('/'))
}

/// The metadata backups in `store`, oldest first (keys sort by time).
pub(crate) async fn list(store: &dyn ByteStore) -> Result<Vec<MetadataBackup>> {
    let mut found: Vec<ObjectInfo> = store.list(Some(&Path::from(METADATA_PREFIX))).try_collect().await?;
    found.sort_by(|a, b| a.key.as_ref().cmp(b.key.as_ref()));
    Ok(found
        .into_iter()
        .map(|o| MetadataBackup { key: o.key.to_string(), bytes: o.size, stored_at: o.last_modified })
        .collect())
}

/// Metadata backups into the backup store: taken, listed, pruned.
#[derive(Clone)]
pub struct MetadataBackups {
    pub(crate) repo: Arc<dyn MetaRepo>,
    /// The backup store, when configured.
    pub(crate) store: Option<Store>,
    /// Seconds between scheduled backups (0: none).
    pub(crate) every_secs: i64,
    /// How many the store keeps.
    pub(crate) kept: usize,
}

impl MetadataBackups {
    /// On these stores, with the settings' schedule.
    pub(crate) fn new(repo: Arc<dyn MetaRepo>, store: Option<Store>, settings: &Settings) -> Self {
        MetadataBackups {
            repo,
            store,
            every_secs: settings.metadata_backup_secs as i64,
            kept: settings.metadata_backups_kept as usize,
        }
    }

    /// For `api admin backup`: the database and the backup store only (it
    /// runs beside a live api).
    pub async fn open(settings: &Settings) -> std::result::Result<Self, OpenError> {
        let repo = crate::stores::meta::open(&settings.database_url()).await.map_err(fail("DATABASE_URL"))?;
        let scratch = settings.data_dir.join("tmp");
        let store = match &settings.backup_url {
            Some(url) => Some(objects::open(url, "PAN_BACKUP_URL", &scratch).map_err(fail("PAN_BACKUP_URL"))?),
            None => None,
        };
        Ok(Self::new(Arc::new(repo), store, settings))
    }

    fn store(&self) -> Result<&Store> {
        self.store.as_ref().ok_or_else(|| Error::BadSetting {
            message: "PAN_BACKUP_URL: no backup store is configured; the metadata backup goes there".into(),
        })
    }

    /// Takes a metadata backup now and keeps only the newest
    /// `PAN_METADATA_BACKUPS_KEPT`.
    #[tracing::instrument(name = "back up metadata", skip(self))]
    pub async fn take(&self) -> Result<TakenBackup> {
        let store = self.store()?;
        let mut tmp = TempFile::new(&**store, "metadata")?;
        let file = tokio::fs::File::create(&tmp.path)
            .await
            .map_err(|e| Error::internal("creating the metadata backup's file", e))?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let summary = self.repo.dump(&mut out).await?;
        out.flush().await.map_err(|e| Error::internal("writing the metadata backup", e))?;
        let file = out.into_inner();
        // Durable before the rename that puts it into a local store.
        file.sync_all().await.map_err(|e| Error::internal("syncing the metadata backup", e))?;
        let bytes = file.metadata().await.map_err(|e| Error::internal("sizing the metadata backup", e))?.len();
        drop(file);
        let stored_at = crate::now();
        // Seconds first, zero-padded: the keys sort by time.
        let key = format!("{METADATA_PREFIX}/{stored_at:012}-{}.jsonl", crate::random_hex(4));
        store.put_file(&mut tmp, &Path::from(key.as_str())).await?;
        let pruned = self.prune().await?;
        tracing::info!(key, bytes, tables = summary.tables, rows = summary.rows, pruned, "metadata backed up");
        Ok(TakenBackup { backup: MetadataBackup { key, bytes, stored_at }, summary, pruned })
    }

    /// The metadata backups in the backup store, oldest first.
    pub async fn list(&self) -> Result<Vec<MetadataBackup>> {
        list(&**self.store()?).await
    }

    async fn prune(&self) -> Result<usize> {
        let store = self.store()?;
        let all = list(&**store).await?;
        let extra = all.len().saturating_sub(self.kept);
        for old in &all[..extra] {
            store.delete(&Path::from(old.key.as_str())).await?;
        }
        Ok(extra)
    }

    /// The clean-up's step: takes the scheduled metadata backup when one is
    /// due and this process is the one that claimed it (one process of the
    /// fleet at a time). A failure leaves it due again once the claim
    /// lapses.
    pub(crate) async fn take_if_due(&self) -> Result<bool> {
        if self.store.is_none() || self.every_secs == 0 {
            return Ok(false);
        }
        // An installation with nothing in it (one set up to be restored
        // into) takes none: its empty copies would push the backups that
        // matter out of the count kept.
        if !self.repo.holds_data().await? {
            return Ok(false);
        }
        let now = crate::now();
        if !self.repo.claim_task(TASK, now, now + CLAIM_SECS).await? {
            return Ok(false);
        }
        self.take().await?;
        self.repo.set_task_due(TASK, now + self.every_secs).await?;
        Ok(true)
    }
}
