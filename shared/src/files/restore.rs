//! `api admin restore`: a new installation brought back from the backup
//! store — the metadata from a metadata backup ([`super::metadata`]), the
//! bytes from the files' backup copies.
//!
//! Only into an empty database (no user, no content), so a restore never
//! mixes two installations. The database is migrated to the backup's
//! schema, loaded in one transaction, then migrated to this build's newest:
//! a backup made by an older pan restores into a newer one. The bytes of
//! every content are then copied from the backup store into the file store
//! (a few at a time; one already there with its size is kept), and the
//! report lists any content whose backup copy is missing.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use super::metadata::{self, MetadataBackup};
use crate::domain::StoredFile;
use crate::domain::error::Error;
use crate::runtime::config::Settings;
use crate::stores::meta::{self as db, ArchiveHeader, ArchiveSummary, MetaRepo};
use crate::stores::objects::{self, Store, TempFile};
use crate::stores::open::{OpenError, fail};

/// Contents copied at once.
const PARALLEL_COPIES: usize = 4;

/// Why a restore did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A backend could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// No backup store is configured.
    #[error("PAN_BACKUP_URL is not set: a restore reads the backup store")]
    NoBackupStore,
    /// The backup store holds no metadata backup.
    #[error("the backup store holds no metadata backup (`api admin backup` takes one)")]
    NoBackup,
    /// The backup asked for is not there.
    #[error("no metadata backup {0:?} in the backup store (`api admin backups` lists them)")]
    UnknownBackup(String),
    /// The database already holds an installation.
    #[error("the database already holds users or files: a restore goes into a new, empty installation")]
    NotEmpty,
    /// The backup's schema is newer than this build's.
    #[error(
        "the backup was made by a newer pan (schema {backup}; this one knows up to {known}): restore with that release"
    )]
    NewerSchema { backup: i64, known: i64 },
    /// The database was migrated past the backup's schema.
    #[error("the database is at schema {database}, past the backup's {backup}: restore into a database never migrated")]
    AheadOfBackup { database: i64, backup: i64 },
    /// Reading, loading or copying failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// What a restore loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The metadata backup it read.
    pub backup: MetadataBackup,
    /// That backup's first line.
    pub header: ArchiveHeader,
    /// What it loaded.
    pub summary: ArchiveSummary,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The metadata it loaded; `None` when this run finished an earlier
    /// one's copy of the bytes.
    pub loaded: Option<Loaded>,
    /// Whether the restore is finished (every content back, or the missing
    /// ones accepted): an api may start.
    pub finished: bool,
    /// Contents the database records.
    pub contents: u64,
    /// Copied from the backup store now.
    pub copied: u64,
    /// Already in the file store with their size.
    pub present: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Contents not brought back, and why.
    pub missing: Vec<String>,
}

/// Tries per content before it counts as missing (a store away for a moment).
const COPY_TRIES: u32 = 3;

/// How one content came back.
enum Brought {
    Present,
    Copied(u64),
    Missing(String),
}

/// A restore's stores: the database (not migrated until the backup says
/// how far), the file store and the backup store.
pub struct Restore {
    repo: Arc<dyn MetaRepo>,
    files: Store,
    backup: Store,
}

impl Restore {
    /// Opens what the settings name, without migrating the database.
    pub async fn open(settings: &Settings) -> Result<Self, RestoreError> {
        let url = settings.backup_url.as_deref().ok_or(RestoreError::NoBackupStore)?;
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| OpenError {
            setting: "PAN_DATA_DIR",
            message: format!("cannot create {}: {e}", settings.data_dir.display()),
        })?;
        let scratch = settings.data_dir.join("tmp");
        let repo = db::connect(&settings.database_url()).await.map_err(fail("DATABASE_URL"))?;
        let files = objects::open(&settings.store_url(), "PAN_STORE_URL", &scratch).map_err(fail("PAN_STORE_URL"))?;
        let backup = objects::open(url, "PAN_BACKUP_URL", &scratch).map_err(fail("PAN_BACKUP_URL"))?;
        Ok(Restore { repo: Arc::new(repo), files, backup })
    }

    /// The metadata backups, oldest first.
    pub async fn backups(&self) -> Result<Vec<MetadataBackup>, RestoreError> {
        Ok(metadata::list(&*self.backup).await?)
    }

    /// Restores from the backup whose key is (or ends with) `from`, else the
    /// newest; or, when an earlier run loaded the metadata and stopped
    /// before every file was back, goes on with the files. With
    /// `accept_missing`, contents whose backup copy is missing do not keep
    /// the restore unfinished (their rows stay; the audit lists them).
    pub async fn run(&self, from: Option<&str>, accept_missing: bool) -> Result<RestoreReport, RestoreError> {
        let loaded = if self.repo.restore_pending().await? { None } else { Some(self.load(from).await?) };
        let contents = self.repo.all_files().await?;
        let mut report = RestoreReport {
            loaded,
            finished: false,
            contents: contents.len() as u64,
            copied: 0,
            present: 0,
            bytes: 0,
            missing: Vec::new(),
        };
        let mut brought = futures::stream::iter(contents).map(|f| self.bring_back(f)).buffer_unordered(PARALLEL_COPIES);
        while let Some(result) = brought.next().await {
            match result {
                Brought::Present => report.present += 1,
                Brought::Copied(n) => {
                    report.copied += 1;
                    report.bytes += n;
                }
                Brought::Missing(why) => report.missing.push(why),
            }
        }
        report.missing.sort();
        if report.missing.is_empty() || accept_missing {
            self.repo.finish_restore().await?;
            report.finished = true;
        }
        Ok(report)
    }

    /// Loads the metadata from a backup into the empty database.
    async fn load(&self, from: Option<&str>) -> Result<Loaded, RestoreError> {
        let all = self.backups().await?;
        let backup = match from {
            Some(name) => all
                .iter()
                .rev()
                .find(|b| b.key == name || b.key.ends_with(&format!("/{name}")))
                .ok_or_else(|| RestoreError::UnknownBackup(name.to_owned()))?,
            None => all.last().ok_or(RestoreError::NoBackup)?,
        }
        .clone();
        if self.repo.holds_data().await? {
            return Err(RestoreError::NotEmpty);
        }
        // The copy is read twice (its header decides the migrations before
        // the rows go in): fetched to a local file first.
        let tmp = TempFile::new(&*self.backup, "restore")?;
        let mut body = self
            .backup
            .read(&Path::from(backup.key.as_str()), None)
            .await?
            .ok_or_else(|| RestoreError::UnknownBackup(backup.key.clone()))?;
        let mut file =
            tokio::fs::File::create(&tmp.path).await.map_err(|e| Error::internal("creating the restore's file", e))?;
        while let Some(piece) = body.try_next().await? {
            file.write_all(&piece).await.map_err(|e| Error::internal("fetching the metadata backup", e))?;
        }
        file.flush().await.map_err(|e| Error::internal("fetching the metadata backup", e))?;
        drop(file);
        let file =
            tokio::fs::File::open(&tmp.path).await.map_err(|e| Error::internal("reading the restore's file", e))?;
        let mut reader = tokio::io::BufReader::with_capacity(1 << 20, file);
        let header = db::read_header(&mut reader).await?;
        let known = self.repo.newest_schema();
        if header.schema > known {
            return Err(RestoreError::NewerSchema { backup: header.schema, known });
        }
        if let Some(database) = self.repo.schema_version().await?
            && database > header.schema
        {
            return Err(RestoreError::AheadOfBackup { database, backup: header.schema });
        }
        self.repo.migrate_to(Some(header.schema)).await?;
        let mut summary = self.repo.load(header.schema, &mut reader).await?;
        summary.schema = header.schema;
        self.repo.migrate_to(None).await?;
        tracing::info!(key = backup.key, tables = summary.tables, rows = summary.rows, "metadata restored");
        Ok(Loaded { backup, header, summary })
    }

    /// Puts one content's bytes back, tried a few times; a failure that
    /// stays is reported as missing (a later run tries it again).
    async fn bring_back(&self, f: StoredFile) -> Brought {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_bring_back(&f).await {
                Ok(brought) => return brought,
                Err(e) if tries >= COPY_TRIES => {
                    return Brought::Missing(format!("content {} ({}): {e}", f.id, f.storage_key));
                }
                Err(e) => {
                    tracing::warn!(content = f.id, error = %e, "copying a file back failed; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(u64::from(tries))).await;
                }
            }
        }
    }

    /// Puts one content's bytes back into the file store from its backup copy.
    async fn try_bring_back(&self, f: &StoredFile) -> Result<Brought, Error> {
        let key = Path::from(f.storage_key.as_str());
        let size = f.filesize as u64;
        if self.files.head(&key).await?.is_some_and(|o| o.size == size) {
            return Ok(Brought::Present);
        }
        let Some(backup_key) = f.backup_key.as_deref().map(Path::from) else {
            return Ok(Brought::Missing(format!("content {} ({}): never backed up", f.id, f.storage_key)));
        };
        match self.backup.head(&backup_key).await? {
            Some(o) if o.size == size => {}
            Some(o) => {
                return Ok(Brought::Missing(format!(
                    "content {} ({}): its backup copy has {} bytes, not {size}",
                    f.id, f.storage_key, o.size
                )));
            }
            None => return Ok(Brought::Missing(format!("content {} ({}): no backup copy", f.id, f.storage_key))),
        }
        let copied = self.files.copy_from(&*self.backup, &backup_key, &key).await?;
        if copied != size {
            return Ok(Brought::Missing(format!(
                "content {} ({}): copied {copied} bytes, not {size}",
                f.id, f.storage_key
            )));
        }
        Ok(Brought::Copied(copied))
    }
}
