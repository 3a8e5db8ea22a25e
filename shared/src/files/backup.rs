//! The BackupJob: copy a stored file to the backup store (Aliyun OSS, S3,
//! Garage…) with bounded memory, and record the outcome on its row.
//!
//! Idempotent: the backup key is the file's content-addressed key, so a
//! repeated copy writes the same object. Failures are recorded (`failed`,
//! attempts + 1) and returned as errors so the queue retries with backoff; the
//! clean-up job also re-enqueues backups that stayed `pending` or `failed`.

use object_store::path::Path;

use super::Files;
use crate::domain::BackupState;
use crate::domain::error::Result;
use crate::stores::objects::{ByteStore, delete_quietly};
use crate::stores::queue::BackupJob;

impl Files {
    /// Copies one file to the backup store.
    #[tracing::instrument(name = "back up file", skip(self), fields(file = job.file_id, mb_s))]
    pub async fn back_up(&self, job: &BackupJob) -> Result<()> {
        let Some(backup) = &self.backup else {
            tracing::info!("no backup store configured; nothing to do");
            return Ok(());
        };
        let Some(stored) = self.repo.stored_file_by_id(job.file_id).await? else {
            tracing::info!("file is gone; nothing to back up");
            return Ok(());
        };
        if stored.backup_state == BackupState::Done {
            return Ok(());
        }
        let key = Path::from(stored.storage_key.as_str());
        // The key is recorded before the copy starts, so a delete of the last
        // reference while the copy runs knows which backup object to remove.
        self.repo.set_backup(job.file_id, BackupState::Pending, Some(key.as_ref()), crate::now()).await?;
        let started = std::time::Instant::now();
        match backup.copy_from(&*self.files, &key, &key).await {
            Ok(bytes) => {
                crate::runtime::crash::point("backup.after_copy");
                let secs = started.elapsed().as_secs_f64();
                let rate = if secs > 0.0 { bytes as f64 / 1e6 / secs } else { 0.0 };
                tracing::Span::current().record("mb_s", rate.round());
                if self.repo.stored_file_by_id(job.file_id).await?.is_none() {
                    // Deleted while we copied: the delete may have come before our
                    // object existed, so remove what we wrote.
                    delete_quietly(&**backup, &key).await;
                    tracing::info!("file deleted during its backup; the copy is removed");
                    return Ok(());
                }
                self.repo.set_backup(job.file_id, BackupState::Done, Some(key.as_ref()), crate::now()).await?;
                crate::runtime::metrics::BACKUPS_DONE.inc();
                tracing::info!(bytes, seconds = secs, "backed up");
                Ok(())
            }
            Err(e) => {
                crate::runtime::metrics::BACKUPS_FAILED.inc();
                self.repo.set_backup(job.file_id, BackupState::Failed, None, crate::now()).await?;
                Err(e)
            }
        }
    }

    /// Enqueues again the backups still `pending` a minute after they were
    /// asked for, or `failed` (the clean-up); how many.
    pub(crate) async fn requeue_backups(&self) -> Result<usize> {
        if self.backup.is_none() {
            return Ok(0);
        }
        let mut requeued = 0;
        for file_id in self.repo.backups_due(crate::now() - 60, 1000).await? {
            self.backups.push(BackupJob { file_id }).await?;
            requeued += 1;
        }
        Ok(requeued)
    }

    /// Deletes stored files that no `files` row points at and that are older
    /// than a day (a merge killed between storing and recording its file
    /// leaves one; the day keeps clear of merges still on their way to the
    /// commit), and backup objects of files deleted while their copy ran.
    pub(crate) async fn scrub(&self) -> Result<usize> {
        let repo = &self.repo;
        let mut removed = scrub_store(&*self.files, |key| async move { repo.is_referenced(&key).await }).await?;
        if let Some(backup) = &self.backup {
            // Metadata backups are no file's: they are kept by their own count.
            let referenced = |key: String| async move {
                Ok(super::metadata::is_metadata_key(&key) || repo.is_backup_referenced(&key).await?)
            };
            removed += scrub_store(&**backup, referenced).await?;
        }
        Ok(removed)
    }
}

/// Deletes the objects of `store` older than a day that `referenced` says
/// no row points at.
async fn scrub_store<F, Fut>(store: &dyn ByteStore, referenced: F) -> Result<usize>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    use futures::TryStreamExt;
    let cutoff = crate::now() - 86_400;
    let mut listing = store.list(None);
    let mut removed = 0;
    while let Some(meta) = listing.try_next().await? {
        let key = meta.key.as_ref();
        if meta.last_modified > cutoff || referenced(key.to_owned()).await? {
            continue;
        }
        store.delete(&meta.key).await?;
        removed += 1;
        tracing::warn!(key, "deleted an unreferenced object");
    }
    Ok(removed)
}
